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
    let mut out = Vec::new();
    let mut offset = 0;
    'restart: while offset < text.len() {
        for (start, word) in text[offset..].split_word_bound_indices() {
            if !is_token_word(word) {
                continue;
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
            offset += start + cut;
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

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
}

/// Java's `Character.toLowerCase` per code point: one character in, one out.
fn lowercase(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => l,
                // Only U+0130 lowercases to two characters; Java maps it to `i`.
                _ => 'i',
            }
        })
        .collect()
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
