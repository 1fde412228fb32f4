//! Lucene regular expressions (`org.apache.lucene.util.automaton.RegExp`), the syntax of an
//! Elasticsearch `regexp` query, matched against a whole value.
//!
//! Lucene's syntax is not Perl's: there are no anchors (the whole term must match), `.` is any
//! character including a newline, `"..."` is a literal string, `\c` is the character `c` (bar
//! the shorthand classes `\d \D \s \S \w \W`), and with the flags Elasticsearch turns on by
//! default (`ALL`) `@` is any string, `#` the empty language, `&` intersection, `~`
//! complement and `<n-m>` a numeric interval. [`LuceneRegex::parse`] reads that syntax and
//! compiles it to the `regex` crate's, which has no intersection or complement: patterns
//! using `&`, `~` or `<n-m>` are refused with the reason, rather than read differently.
//! Case-insensitive matching folds ASCII letters of literal characters and strings only, as
//! Lucene's `ASCII_CASE_INSENSITIVE` does; classes and ranges stay as written.

use std::fmt;
use std::sync::Arc;

/// A compiled Lucene regular expression.
#[derive(Clone)]
pub struct LuceneRegex {
    /// The pattern as Lucene reads it.
    pub source: String,
    pub case_insensitive: bool,
    regex: Arc<regex::Regex>,
}

impl fmt::Debug for LuceneRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LuceneRegex({:?}, ci={})",
            self.source, self.case_insensitive
        )
    }
}

impl PartialEq for LuceneRegex {
    fn eq(&self, other: &LuceneRegex) -> bool {
        self.source == other.source && self.case_insensitive == other.case_insensitive
    }
}

/// Why a pattern cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError {
    /// Character offset in the pattern.
    pub at: usize,
    pub message: String,
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.at)
    }
}

impl std::error::Error for RegexError {}

impl LuceneRegex {
    pub fn parse(source: &str, case_insensitive: bool) -> Result<LuceneRegex, RegexError> {
        let mut p = Parser {
            chars: source.chars().collect(),
            at: 0,
            case_insensitive,
        };
        let body = p.union()?;
        if p.at < p.chars.len() {
            return Err(p.error("unexpected character"));
        }
        let regex = regex::RegexBuilder::new(&format!("^(?s:{body})$"))
            .size_limit(64 << 20)
            .build()
            .map_err(|e| RegexError {
                at: 0,
                message: format!("pattern too large to compile ({e})"),
            })?;
        Ok(LuceneRegex {
            source: source.to_string(),
            case_insensitive,
            regex: Arc::new(regex),
        })
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// A recursive-descent reader of Lucene's grammar (Lucene 9's `RegExp` parser, whose
/// quirks it keeps: an operator with nothing before it is a literal, `*a` is the string
/// `*a`) that writes the `regex` crate's syntax.
struct Parser {
    chars: Vec<char>,
    at: usize,
    case_insensitive: bool,
}

impl Parser {
    fn error(&self, message: &str) -> RegexError {
        RegexError {
            at: self.at,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn more(&self) -> bool {
        self.at < self.chars.len()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Result<char, RegexError> {
        let c = self
            .peek()
            .ok_or_else(|| self.error("unexpected end-of-string"))?;
        self.at += 1;
        Ok(c)
    }

    /// `a|b|...`
    fn union(&mut self) -> Result<String, RegexError> {
        let mut items = vec![self.intersection()?];
        while self.eat('|') {
            items.push(self.intersection()?);
        }
        Ok(match items.len() {
            1 => items.remove(0),
            _ => format!("(?:{})", items.join("|")),
        })
    }

    fn intersection(&mut self) -> Result<String, RegexError> {
        let left = self.concatenation()?;
        if self.peek() == Some('&') {
            return Err(self.error("the intersection operator `&` is not supported by quarry"));
        }
        Ok(left)
    }

    /// One item at least, then more until `)`, `|` or `&`.
    fn concatenation(&mut self) -> Result<String, RegexError> {
        let mut out = self.repeat()?;
        while self.more() && !matches!(self.peek(), Some(')' | '|' | '&')) {
            out.push_str(&self.repeat()?);
        }
        Ok(out)
    }

    /// An item with its postfix operators, each applied to all before it.
    fn repeat(&mut self) -> Result<String, RegexError> {
        let mut item = self.complement()?;
        while let Some(c) = self.peek().filter(|c| "?*+{".contains(*c)) {
            self.at += 1;
            let op = match c {
                '{' => match self.bounds()? {
                    (min, Some(max)) if max == min => format!("{{{min}}}"),
                    (min, Some(max)) => format!("{{{min},{max}}}"),
                    (min, None) => format!("{{{min},}}"),
                },
                c => c.to_string(),
            };
            item = format!("(?:{item}){op}");
        }
        Ok(item)
    }

    /// `n}`, `n,}` or `n,m}` after a `{`.
    fn bounds(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        let min = self.number()?;
        let max = match self.eat(',') {
            true if self.peek() == Some('}') => None,
            true => Some(self.number()?),
            false => Some(min),
        };
        if !self.eat('}') {
            return Err(self.error("expected '}'"));
        }
        if let Some(max) = max.filter(|&m| m < min) {
            return Err(self.error(&format!(
                "invalid repetition range(out of order): {min}..{max}"
            )));
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32, RegexError> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits: String = self.chars[start..self.at].iter().collect();
        match digits.parse::<u32>() {
            Ok(n) if n <= 1000 => Ok(n),
            Ok(_) => Err(self.error("repetition counts over 1000 are not supported by quarry")),
            Err(_) => Err(self.error("integer expected")),
        }
    }

    fn complement(&mut self) -> Result<String, RegexError> {
        if self.peek() == Some('~') {
            return Err(self.error("the complement operator `~` is not supported by quarry"));
        }
        self.class_or_simple()
    }

    fn class_or_simple(&mut self) -> Result<String, RegexError> {
        if !self.eat('[') {
            return self.simple();
        }
        let negated = self.eat('^');
        let mut out = String::from(if negated { "[^" } else { "[" });
        // The first item is read whatever it is, `]` included.
        out.push_str(&self.class_item()?);
        while self.more() && self.peek() != Some(']') {
            out.push_str(&self.class_item()?);
        }
        if !self.eat(']') {
            return Err(self.error("expected ']'"));
        }
        out.push(']');
        Ok(out)
    }

    /// A shorthand class, a character, or a range `c-d` (which case folding leaves alone).
    fn class_item(&mut self) -> Result<String, RegexError> {
        if let Some(set) = self.shorthand()? {
            return Ok(set.to_string());
        }
        let lo = self.escaped_or_next()?;
        if !self.eat('-') {
            return Ok(self.class_literal(lo));
        }
        let hi = self.escaped_or_next()?;
        if hi < lo {
            return Err(self.error(&format!(
                "invalid range: from ({}) cannot be > to ({})",
                lo as u32, hi as u32
            )));
        }
        Ok(format!("{}-{}", class_escape(lo), class_escape(hi)))
    }

    /// At a `\`: a shorthand class, or nothing (the escape is left to the caller);
    /// a backslash before another ASCII letter is an error, as in Lucene 9.
    fn shorthand(&mut self) -> Result<Option<&'static str>, RegexError> {
        if self.peek() != Some('\\') {
            return Ok(None);
        }
        let Some(&e) = self.chars.get(self.at + 1) else {
            self.at += 1;
            return Err(self.error("unexpected end-of-string"));
        };
        if let Some(set) = shorthand(e) {
            self.at += 2;
            return Ok(Some(set));
        }
        if e.is_ascii_alphabetic() {
            return Err(self.error(&format!("invalid character class \\{}", e as u32)));
        }
        Ok(None)
    }

    /// The next character, or the one after a backslash.
    fn escaped_or_next(&mut self) -> Result<char, RegexError> {
        self.eat('\\');
        self.next()
    }

    fn simple(&mut self) -> Result<String, RegexError> {
        if let Some(set) = self.shorthand()? {
            return Ok(format!("[{set}]"));
        }
        let escaped = self.peek() == Some('\\');
        if escaped {
            self.at += 1;
        }
        let c = self.next()?;
        if escaped {
            return Ok(self.literal(c));
        }
        Ok(match c {
            '.' => ".".to_string(),
            '@' => ".*".to_string(),
            // The empty language: a character that is and is not a digit.
            '#' => r"[0-9&&[^0-9]]".to_string(),
            '<' => return Err(self.error("numeric intervals `<n-m>` are not supported by quarry")),
            '"' => {
                let mut s = String::new();
                loop {
                    match self.peek() {
                        Some('"') => break,
                        Some(c) => {
                            self.at += 1;
                            s.push_str(&self.literal(c));
                        }
                        None => return Err(self.error("expected '\"'")),
                    }
                }
                self.at += 1;
                format!("(?:{s})")
            }
            '(' => {
                if self.eat(')') {
                    return Ok(String::new());
                }
                let inner = self.union()?;
                if !self.eat(')') {
                    return Err(self.error("expected ')'"));
                }
                format!("(?:{inner})")
            }
            c => self.literal(c),
        })
    }

    /// One literal character, both ASCII cases when matching case-insensitively.
    fn literal(&self, c: char) -> String {
        if self.case_insensitive && c.is_ascii_alphabetic() {
            format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
        } else {
            regex::escape(c.encode_utf8(&mut [0; 4]))
        }
    }

    /// One literal character inside a class, both ASCII cases when case-insensitive.
    fn class_literal(&self, c: char) -> String {
        if self.case_insensitive && c.is_ascii_alphabetic() {
            format!("{}{}", c.to_ascii_lowercase(), c.to_ascii_uppercase())
        } else {
            class_escape(c)
        }
    }
}

/// The body of a shorthand class, as it goes inside `[...]` (Lucene's ASCII sets, not the
/// `regex` crate's Unicode ones).
fn shorthand(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => r"0-9",
        'D' => r"\x00-/:-\x{10FFFF}",
        's' => r" \t\n\r",
        'S' => r"\x00-\x08\x0B\x0C\x0E-\x1F!-\x{10FFFF}",
        'w' => r"a-zA-Z0-9_",
        'W' => r"\x00-/:-@\[-\^`\{-\x{10FFFF}",
        _ => return None,
    })
}

/// A character as it is written inside a `regex` class.
fn class_escape(c: char) -> String {
    match c {
        '\\' | ']' | '[' | '^' | '-' | '&' | '~' => format!("\\{c}"),
        c => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, v: &str) -> bool {
        LuceneRegex::parse(p, false).unwrap().is_match(v)
    }

    #[test]
    fn the_whole_value_must_match() {
        assert!(m("ab.", "abc"));
        assert!(!m("ab", "abc"));
        assert!(m("a.c", "a\nc"));
        assert!(m(".*[0-9]{1,3}(\\.[0-9]{1,3}){3}.*", "x 10.1.2.3 y"));
        assert!(m("php?[0-9]?\\.?[0-9]{0,2}", "ph"));
    }

    #[test]
    fn escapes_are_literal_characters() {
        // A backslash before another ASCII letter is an error (Lucene 9).
        assert!(LuceneRegex::parse("C:\\Program", false).is_err());
        assert!(m("C:\\\\Program", "C:\\Program"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
    }

    #[test]
    fn classes_ranges_and_shorthands() {
        assert!(m("[C-Z]:\\\\x", "D:\\x"));
        assert!(!m("[C-Z]:\\\\x", "B:\\x"));
        assert!(m("[a-z0-9\\-\\_\\.]+", "a-b_c.d"));
        assert!(m("[^\"]", "x"));
        assert!(m("\\w+", "abc_1"));
        assert!(!m("\\w+", "ab-c"));
        assert!(m(".*\\s-x", "cmd -x"));
        assert!(m("[ʰ-˿]+", "ˀ"));
    }

    #[test]
    fn quoted_strings_any_string_and_empty() {
        assert!(m("\"a.b\"c", "a.bc"));
        assert!(!m("\"a.b\"c", "axbc"));
        assert!(m("x@", "xyz"));
        assert!(!m("#", ""));
        assert!(m("a()b", "ab"));
        // An operator with nothing before it is a literal.
        assert!(m("*a", "*a"));
        assert!(m("a||b", "|b"));
    }

    #[test]
    fn case_folding_is_ascii_and_on_literals_only() {
        let ci = |p: &str, v: &str| LuceneRegex::parse(p, true).unwrap().is_match(v);
        assert!(ci("abc", "ABC"));
        assert!(!ci("é", "É"));
        assert!(!ci("[a-c]", "B"));
        assert!(ci("[ab]", "B"));
        assert!(!ci("[^a]", "A"));
        assert!(ci("\"ab\"", "AB"));
    }

    #[test]
    fn unsupported_operators_and_bad_patterns_are_refused() {
        for p in [
            "a&b", "~a", "<1-5>", "(ab", "[ab", "a{2,1}", "a{x}", "[ab-]", "\\n", "a|",
        ] {
            assert!(LuceneRegex::parse(p, false).is_err(), "{p}");
        }
    }
}
