//! What a hunt keeps of a hit's script when a backtest asks: its first characters, to show
//! a person, and the hash of its normalised text, to group scripts that differ only in
//! what changes from run to run.
//!
//! A fleet runs the same administration script with another temp file name, GUID, process
//! id or date each time; those all become one shape. Normalising lowercases the text (as
//! PowerShell reads it), turns every word holding a digit into `0` and every run of
//! white space into one space; punctuation and the other words stay. Two scripts of one
//! shape therefore share every word without a digit, in the same order.

use serde::{Serialize, Serializer};
use twox_hash::XxHash3_128;

/// Characters of a script kept to show.
pub const HEAD_CHARS: usize = 200;

/// A hit's script, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptSummary {
    /// The hash of the normalised text (shown as 16 hex digits).
    #[serde(serialize_with = "hex")]
    pub shape: u64,
    /// The first [`HEAD_CHARS`] characters.
    pub head: String,
    /// The script is longer than its head.
    pub truncated: bool,
}

fn hex<S: Serializer>(shape: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{shape:016x}"))
}

impl ScriptSummary {
    pub fn of(text: &str) -> ScriptSummary {
        let cut = text
            .char_indices()
            .nth(HEAD_CHARS)
            .map_or(text.len(), |(i, _)| i);
        ScriptSummary {
            shape: shape(text),
            head: text[..cut].to_string(),
            truncated: cut < text.len(),
        }
    }

    /// The head without a word the cut may have split: what is surely in the script as
    /// written.
    pub fn whole_words(&self) -> &str {
        if !self.truncated {
            return &self.head;
        }
        match self.head.rfind(char::is_whitespace) {
            Some(i) => &self.head[..i],
            None => "",
        }
    }
}

/// The hash of the normalised text.
pub fn shape(text: &str) -> u64 {
    let mut hasher = XxHash3_128::new();
    let mut word = String::new();
    let mut word_has_digit = false;
    let mut in_space = false;
    let mut other = [0u8; 4];
    let flush = |word: &mut String, has_digit: &mut bool, hasher: &mut XxHash3_128| {
        if !word.is_empty() {
            hasher.write(if *has_digit { b"0" } else { word.as_bytes() });
            word.clear();
            *has_digit = false;
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            in_space = false;
            word_has_digit |= c.is_ascii_digit();
            word.extend(c.to_lowercase());
            continue;
        }
        flush(&mut word, &mut word_has_digit, &mut hasher);
        if c.is_whitespace() {
            if !in_space {
                hasher.write(b" ");
                in_space = true;
            }
        } else {
            in_space = false;
            hasher.write(c.encode_utf8(&mut other).as_bytes());
        }
    }
    flush(&mut word, &mut word_has_digit, &mut hasher);
    hasher.finish_128() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_to_run_differences_share_a_shape_and_real_changes_do_not() {
        let a = "Remove-Item -Path C:\\Temp\\tmp4F2A.tmp  -Force # run 1712\r\n$Pid = 4411";
        let b = "remove-item -path c:\\temp\\tmp9C01.tmp -Force\t# run 88\n$pid = 12";
        let c = "Remove-Item -Path C:\\Temp\\tmp4F2A.tmp -Recurse # run 1712\n$Pid = 4411";
        assert_eq!(shape(a), shape(b));
        assert_ne!(shape(a), shape(c));
        assert_ne!(shape("a b"), shape("ab"), "a space is not nothing");
        assert_ne!(
            shape("a1"),
            shape("a"),
            "a word with a digit is not the word"
        );
    }

    #[test]
    fn the_head_keeps_whole_characters_and_says_when_it_cut() {
        let long = "é".repeat(HEAD_CHARS + 5);
        let s = ScriptSummary::of(&long);
        assert_eq!(s.head.chars().count(), HEAD_CHARS);
        assert!(s.truncated);
        let short = ScriptSummary::of("Get-Process");
        assert_eq!(
            (short.head.as_str(), short.truncated),
            ("Get-Process", false)
        );
        assert_eq!(short.whole_words(), "Get-Process");
        let cut = ScriptSummary::of(&format!("{} tail", "x ".repeat(HEAD_CHARS / 2)));
        assert!(cut.whole_words().ends_with('x') && !cut.whole_words().contains("tail"));
    }
}
