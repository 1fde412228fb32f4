//! The two analyzers of `powershell.file.script_block_text`, and tokens with positions.
//!
//! * [`Analyzer::Pattern`]: Elasticsearch's pattern analyzer with `[\W&&[^-]]+` (Winlogbeat 8,
//!   Windows integration ≥ 1.4.0): a token is a maximal run of ASCII `[A-Za-z0-9_-]`, every
//!   other character separates; lowercased.
//! * [`Analyzer::Standard`]: Lucene's StandardTokenizer (UAX#29 word boundaries, only words
//!   holding a letter, digit, ideograph or emoji become tokens, runs over 255 UTF-16 units are
//!   cut and scanning restarts after the cut) and a per-code-point lowercase, as Java's
//!   `Character.toLowerCase` does it (U+0130 becomes `i`). The word boundaries come from the
//!   `unicode-segmentation` crate, which follows a newer Unicode than Lucene 8's Unicode 9:
//!   the two can differ on scripts and emoji whose properties changed since; ASCII text, the
//!   case that matters for PowerShell, segments the same.

use unicode_segmentation::UnicodeSegmentation;

/// How a text field is tokenized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Analyzer {
    Pattern,
    Standard,
}

/// Lucene's default maximum token length, in UTF-16 units.
pub const MAX_TOKEN_LENGTH: usize = 255;

impl Analyzer {
    pub fn parse(name: &str) -> Option<Analyzer> {
        match name {
            "pattern" => Some(Analyzer::Pattern),
            "standard" => Some(Analyzer::Standard),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Pattern => "pattern",
            Analyzer::Standard => "standard",
        }
    }

    /// The tokens of `text`, in order; a token's position is its index.
    pub fn tokens(self, text: &str) -> Vec<String> {
        match self {
            Analyzer::Pattern => pattern_tokens(text),
            Analyzer::Standard => standard_tokens(text),
        }
    }
}

/// A byte of a pattern-analyzer token: `[A-Za-z0-9_-]`.
pub fn is_pattern_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn pattern_tokens(text: &str) -> Vec<String> {
    text.as_bytes()
        .split(|b| !is_pattern_token_byte(*b))
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).to_ascii_lowercase())
        .collect()
}

fn standard_tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // End (byte offset) of the last token when it was a run of South-East Asian letters:
    // Lucene keeps such runs whole where UAX#29 alone breaks between every letter.
    let mut sea_run_end: Option<usize> = None;
    let mut offset = 0;
    'restart: while offset < text.len() {
        for (start, word) in text[offset..].split_word_bound_indices() {
            let at = offset + start;
            if !is_token_word(word) {
                continue;
            }
            if word.chars().all(is_south_east_asian) {
                if let (Some(end), Some(last)) = (sea_run_end, out.last_mut()) {
                    if end == at {
                        last.push_str(word);
                        sea_run_end = Some(at + word.len());
                        continue;
                    }
                }
                sea_run_end = Some(at + word.len());
            } else {
                sea_run_end = None;
            }
            let units: usize = word.chars().map(char::len_utf16).sum();
            if units <= MAX_TOKEN_LENGTH {
                out.push(lowercase(word));
                continue;
            }
            // Lucene emits the first 255 units and starts scanning again after them.
            let mut cut = 0;
            let mut taken = 0;
            for (i, c) in word.char_indices() {
                if taken + c.len_utf16() > MAX_TOKEN_LENGTH {
                    cut = i;
                    break;
                }
                taken += c.len_utf16();
            }
            out.push(lowercase(&word[..cut]));
            sea_run_end = None;
            offset = at + cut;
            continue 'restart;
        }
        break;
    }
    out
}

/// Whether a UAX#29 word segment is a token for Lucene: it holds a letter or digit (any
/// script, ideographs and kana included) or is an emoji sequence.
fn is_token_word(word: &str) -> bool {
    word.chars().any(|c| c.is_alphanumeric() || is_emoji(c))
}

/// Emoji that Lucene 8 emits as tokens of their own (Extended_Pictographic), the common
/// ranges and the Latin-1/letterlike symbols among them (`©`, `®`, `™`).
fn is_emoji(c: char) -> bool {
    matches!(
        c as u32,
        0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x2199 | 0x21A9..=0x21AA
            | 0x231A..=0x231B | 0x2328 | 0x23CF | 0x23E9..=0x23F3 | 0x23F8..=0x23FA
            | 0x24C2 | 0x25AA..=0x25AB | 0x25B6 | 0x25C0 | 0x25FB..=0x25FE
            | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B00..=0x2BFF | 0x3030 | 0x303D
            | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF
    )
}

/// Thai, Lao, Myanmar and Khmer letters (Line_Break=SA), which Lucene tokenizes as runs.
fn is_south_east_asian(c: char) -> bool {
    matches!(c as u32, 0x0E00..=0x0EFF | 0x1000..=0x109F | 0x1780..=0x17FF | 0x19E0..=0x19FF)
}

/// Java's `Character.toLowerCase` per code point: one character in, one out.
pub fn lowercase(s: &str) -> String {
    s.chars().map(lower_char).collect()
}

/// One code point lowercased as Java's `Character.toLowerCase` does it.
pub fn lower_char(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        // Only U+0130 lowercases to two characters; Java maps it to `i`.
        _ => 'i',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(a: Analyzer, s: &str) -> Vec<String> {
        a.tokens(s)
    }

    #[test]
    fn design_examples() {
        assert_eq!(
            toks(Analyzer::Pattern, "$Mod.NetShareEnum("),
            ["mod", "netshareenum"]
        );
        assert_eq!(
            toks(Analyzer::Standard, "$Mod.NetShareEnum("),
            ["mod.netshareenum"]
        );
        assert_eq!(
            toks(Analyzer::Pattern, "NetShareEnum-x"),
            ["netshareenum-x"]
        );
        assert_eq!(
            toks(Analyzer::Standard, "NetShareEnum-x"),
            ["netshareenum", "x"]
        );
        assert_eq!(
            toks(
                Analyzer::Pattern,
                "Invoke-Mimikatz 'sekurlsa::logonpasswords'"
            ),
            ["invoke-mimikatz", "sekurlsa", "logonpasswords"]
        );
        assert_eq!(
            toks(
                Analyzer::Standard,
                "Invoke-Mimikatz 'sekurlsa::logonpasswords'"
            ),
            ["invoke", "mimikatz", "sekurlsa", "logonpasswords"]
        );
    }

    #[test]
    fn standard_joins_and_splits_like_lucene() {
        assert_eq!(
            toks(Analyzer::Standard, "System.Reflection.Assembly"),
            ["system.reflection.assembly"]
        );
        assert_eq!(
            toks(Analyzer::Standard, "a.1 1.5 a_b don't a:b"),
            ["a", "1", "1.5", "a_b", "don't", "a:b"]
        );
        assert_eq!(toks(Analyzer::Standard, "\u{130}STANBUL"), ["istanbul"]);
        assert_eq!(toks(Analyzer::Standard, "-- ** !!"), Vec::<String>::new());
    }

    #[test]
    fn long_runs_are_cut_at_255_units() {
        let long = "a".repeat(600);
        let t = toks(Analyzer::Standard, &long);
        assert_eq!(
            t.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(toks(Analyzer::Pattern, &long).len(), 1);
    }

    #[test]
    fn pattern_splits_non_ascii_letters() {
        assert_eq!(
            toks(Analyzer::Pattern, "caf\u{e9}bar Ünter"),
            ["caf", "bar", "nter"]
        );
    }
}
