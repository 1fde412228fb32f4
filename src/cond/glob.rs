//! Globs: the wildcard patterns of every rule language, parsed once into [`WildToken`]s and
//! matched against a whole value by [`glob`].
//!
//! KQL has only `*` (an unquoted literal's star), Query DSL `wildcard` has `*`, `?` and `\`
//! escapes ([`parse_wildcard`]), index patterns have `*` and a leading `-` that excludes
//! ([`index_matches`]). Each source turns its syntax into tokens; matching is shared.

/// One token of a parsed glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WildToken {
    /// This character, exactly.
    Char(char),
    /// Any one character.
    Any,
    /// Any run of characters, the empty one included.
    AnyRun,
}

/// `text` as tokens that match only itself.
pub fn literal(text: &str) -> Vec<WildToken> {
    text.chars().map(WildToken::Char).collect()
}

/// Elasticsearch's wildcard syntax: `*` any run, `?` one character, `\` escapes.
pub fn parse_wildcard(pattern: &str) -> Vec<WildToken> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => WildToken::AnyRun,
            '?' => WildToken::Any,
            '\\' => match chars.next() {
                Some(n) => WildToken::Char(n),
                None => WildToken::Char('\\'),
            },
            c => WildToken::Char(c),
        });
    }
    out
}

/// The same pattern with every literal character mapped through `f` (a case fold).
pub fn map_chars(pattern: &[WildToken], f: impl Fn(char) -> char) -> Vec<WildToken> {
    pattern
        .iter()
        .map(|t| match t {
            WildToken::Char(c) => WildToken::Char(f(*c)),
            other => *other,
        })
        .collect()
}

/// The runs of literal characters between wildcards, in order.
pub fn literal_runs(pattern: &[WildToken]) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    for t in pattern {
        match t {
            WildToken::Char(c) => run.push(*c),
            _ => {
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Whether the pattern holds a wildcard.
pub fn has_wildcard(pattern: &[WildToken]) -> bool {
    pattern.iter().any(|t| !matches!(t, WildToken::Char(_)))
}

/// Elasticsearch's `wildcard` query on one value, with its `case_insensitive` flag.
pub fn wildcard_matches(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let lower = |s: &str| {
        if case_insensitive {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    let p: Vec<WildToken> = parse_wildcard(&lower(pattern));
    let t: Vec<char> = lower(text).chars().collect();
    glob(&p, &t)
}

/// Whole-text glob match (iterative, with backtracking to the last `*`).
pub fn glob(p: &[WildToken], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(WildToken::AnyRun) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(WildToken::Any) => {
                pi += 1;
                ti += 1;
            }
            Some(WildToken::Char(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|w| *w == WildToken::AnyRun)
}

/// [`glob`] on a string.
pub fn glob_str(p: &[WildToken], t: &str) -> bool {
    glob(p, &t.chars().collect::<Vec<_>>())
}

/// Whether one of a rule's `index` patterns would have searched `index` (`*` wildcards;
/// a pattern starting with `-` excludes).
pub fn index_matches(patterns: &[String], index: &str) -> bool {
    let glob_match = |p: &str| {
        let tokens: Vec<WildToken> = p
            .chars()
            .map(|c| match c {
                '*' => WildToken::AnyRun,
                c => WildToken::Char(c),
            })
            .collect();
        glob_str(&tokens, index)
    };
    let included = patterns
        .iter()
        .filter(|p| !p.starts_with('-'))
        .any(|p| glob_match(p));
    let excluded = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('-'))
        .any(glob_match);
    included && !excluded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_semantics() {
        assert!(wildcard_matches("a*c", "abbbc", false));
        assert!(wildcard_matches("a?c", "abc", false));
        assert!(!wildcard_matches("a?c", "ac", false));
        assert!(wildcard_matches("a\\*c", "a*c", false));
        assert!(!wildcard_matches("a\\*c", "abc", false));
        assert!(wildcard_matches("*", "", false));
        assert!(!wildcard_matches("A*", "abc", false));
        assert!(wildcard_matches("A*", "abc", true));
    }

    #[test]
    fn literal_runs_split_at_wildcards() {
        let p = parse_wildcard("ab*c?de\\*");
        assert_eq!(literal_runs(&p), ["ab", "c", "de*"]);
        assert!(has_wildcard(&p));
        assert!(!has_wildcard(&literal("a*")));
    }
}
