//! Every text leaf of one analyzed column, matched in one pass over a value.
//!
//! The value is lowercased (ASCII) into a scratch buffer and searched once with one
//! Aho-Corasick automaton over the *anchors* of all leaves: every token of a `match` leaf, the
//! longest token of a `match_phrase` leaf. A hit is a candidate; the analyzer decides:
//!
//! - Pattern analyzer (tokens are maximal runs of `[A-Za-z0-9_-]`, every other byte
//!   separates, then ASCII lowercase): a candidate is a token when the bytes around it are
//!   separators, and a phrase is checked by walking to the neighbouring tokens. Anchors hold
//!   token bytes only, so a leftmost-longest search cannot step over a whole-token occurrence
//!   (a match overlapping a token from its left would have to contain the separator before
//!   it). Exact without tokenizing.
//! - Standard analyzer (Unicode word breaks): a token is a substring of the value, so for an
//!   ASCII value an anchor absent from the lowercased value rules its leaf out; when some
//!   anchor is present the value is tokenized once and the leaves are decided on its tokens.
//!   Values with non-ASCII text are always tokenized (Unicode lowercasing can turn a non-ASCII
//!   letter into an ASCII one).
//!
//! Wildcard leaves (`*` in the value) are decided on the value's tokens, when the longest
//! literal run of the pattern occurs in the lowercased value (always, when it has none).

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem;

use crate::cond::analyzer::{is_pattern_token_byte, Analyzer};
use crate::cond::{eval, glob, TextQuery};

#[derive(Debug)]
enum Kind {
    /// No token in the value: matches nothing.
    Never,
    /// `match`: any of the tokens (all anchors).
    AnyToken,
    /// `match_phrase` of two or more tokens, anchored on `tokens[anchor]`.
    Phrase { tokens: Vec<String>, anchor: usize },
    /// Per-token wildcard, checked on tokens when `chunk` (lowercase) occurs.
    Wildcard {
        chunk: Option<Box<memmem::Finder<'static>>>,
    },
}

#[derive(Debug)]
struct TextLeaf {
    query: TextQuery,
    kind: Kind,
}

/// The matcher of one column's text leaves. Leaves are numbered as given to [`TextMatcher::new`].
#[derive(Debug)]
pub struct TextMatcher {
    analyzer: Analyzer,
    leaves: Vec<TextLeaf>,
    searcher: Option<AhoCorasick>,
    /// With the pattern analyzer and more anchors than the packed searcher takes: every
    /// token of the value looked up in a table of the anchors instead.
    table: Option<TokenTable>,
    /// For each anchor pattern, the leaves it anchors.
    anchored: Vec<Vec<usize>>,
    wildcards: Vec<usize>,
}

/// The leaves a value matched: a set of leaf numbers that clears in time proportional to
/// its size, not to the number of leaves.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    flags: Vec<bool>,
    list: Vec<usize>,
}

impl Hits {
    pub fn new(leaves: usize) -> Hits {
        Hits {
            flags: vec![false; leaves],
            list: Vec::new(),
        }
    }

    pub fn insert(&mut self, leaf: usize) {
        if !self.flags[leaf] {
            self.flags[leaf] = true;
            self.list.push(leaf);
        }
    }

    pub fn contains(&self, leaf: usize) -> bool {
        self.flags[leaf]
    }

    /// The leaves, in the order they were found.
    pub fn leaves(&self) -> &[usize] {
        &self.list
    }

    pub fn clear(&mut self) {
        for &l in &self.list {
            self.flags[l] = false;
        }
        self.list.clear();
    }
}

/// Per-thread buffers of a matcher.
#[derive(Debug, Default)]
pub struct Scratch {
    lower: Vec<u8>,
    candidates: Vec<bool>,
}

impl TextMatcher {
    /// The matcher of `queries`; fails only when the automaton outgrows aho-corasick's limits.
    pub fn new(
        analyzer: Analyzer,
        queries: &[TextQuery],
    ) -> Result<TextMatcher, aho_corasick::BuildError> {
        let mut anchors: Vec<String> = Vec::new();
        let mut anchored: Vec<Vec<usize>> = Vec::new();
        let mut add_anchor = |anchor: &str, leaf: usize| {
            let at = match anchors.iter().position(|a| a == anchor) {
                Some(at) => at,
                None => {
                    anchors.push(anchor.to_string());
                    anchored.push(Vec::new());
                    anchors.len() - 1
                }
            };
            if !anchored[at].contains(&leaf) {
                anchored[at].push(leaf);
            }
        };
        let mut leaves = Vec::new();
        let mut wildcards = Vec::new();
        for (i, query) in queries.iter().enumerate() {
            let kind = match query {
                TextQuery::Glob(pattern) => {
                    wildcards.push(i);
                    let chunk = glob::literal_runs(pattern)
                        .into_iter()
                        .map(|t| t.to_ascii_lowercase())
                        .filter(|t| t.is_ascii())
                        .max_by_key(String::len)
                        .filter(|t| !t.is_empty());
                    Kind::Wildcard {
                        chunk: chunk
                            .map(|c| Box::new(memmem::Finder::new(c.as_bytes()).into_owned())),
                    }
                }
                TextQuery::Match { text, phrase } => {
                    let tokens = analyzer.tokens(text);
                    match tokens.len() {
                        0 => Kind::Never,
                        n if n == 1 || !phrase => {
                            for t in &tokens {
                                add_anchor(t, i);
                            }
                            Kind::AnyToken
                        }
                        _ => {
                            let anchor = (0..tokens.len())
                                .max_by_key(|&k| (tokens[k].len(), std::cmp::Reverse(k)))
                                .unwrap_or(0);
                            add_anchor(&tokens[anchor], i);
                            Kind::Phrase { tokens, anchor }
                        }
                    }
                }
            };
            leaves.push(TextLeaf {
                query: query.clone(),
                kind,
            });
        }
        let table = (analyzer == Analyzer::Pattern
            && anchors.len() > PACKED_LIMIT
            && anchors.iter().all(|a| a.len() < MAX_TABLE_TOKEN))
        .then(|| TokenTable::new(&anchors));
        // The automaton only where the table does not take the anchors.
        let searcher = if anchors.is_empty() || table.is_some() {
            None
        } else {
            let kind = match analyzer {
                Analyzer::Pattern => MatchKind::LeftmostLongest,
                Analyzer::Standard => MatchKind::Standard,
            };
            Some(
                AhoCorasick::builder()
                    .match_kind(kind)
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .build(&anchors)?,
            )
        };
        Ok(TextMatcher {
            analyzer,
            leaves,
            searcher,
            table,
            anchored,
            wildcards,
        })
    }

    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// [`TextMatcher::eval_value`] on raw bytes. The pattern analyzer's tokens are ASCII, and
    /// no byte of a multi-byte UTF-8 sequence is ASCII, so without wildcard leaves its result
    /// does not depend on the rest of the value: the bytes are matched as they are. Otherwise
    /// they must be UTF-8.
    pub fn eval_bytes(
        &self,
        bytes: &[u8],
        scratch: &mut Scratch,
        out: &mut Hits,
    ) -> Result<(), std::str::Utf8Error> {
        if self.analyzer == Analyzer::Pattern && self.wildcards.is_empty() {
            match &self.table {
                Some(table) => self.pattern_tokens(table, bytes, out),
                None => {
                    scratch.lower.clear();
                    scratch
                        .lower
                        .extend(bytes.iter().map(u8::to_ascii_lowercase));
                    self.pattern_value(&scratch.lower, out);
                }
            }
            return Ok(());
        }
        self.eval_value(std::str::from_utf8(bytes)?, scratch, out);
        Ok(())
    }

    /// Adds every leaf that matches `value` to `out` (never removes).
    pub fn eval_value(&self, value: &str, scratch: &mut Scratch, out: &mut Hits) {
        let bytes = value.as_bytes();
        scratch.lower.clear();
        if self.table.is_none() || !self.wildcards.is_empty() {
            scratch
                .lower
                .extend(bytes.iter().map(u8::to_ascii_lowercase));
        }
        scratch.candidates.clear();
        scratch.candidates.resize(self.leaves.len(), false);
        let lower = scratch.lower.as_slice();
        match self.analyzer {
            Analyzer::Pattern => match &self.table {
                Some(table) => self.pattern_tokens(table, bytes, out),
                None => self.pattern_value(lower, out),
            },
            Analyzer::Standard => {
                if value.is_ascii() {
                    if let Some(searcher) = &self.searcher {
                        for m in searcher.find_overlapping_iter(lower) {
                            for &leaf in &self.anchored[m.pattern().as_usize()] {
                                scratch.candidates[leaf] = true;
                            }
                        }
                    }
                } else {
                    scratch.candidates.iter_mut().for_each(|c| *c = true);
                }
            }
        }
        for &w in &self.wildcards {
            if let Kind::Wildcard { chunk } = &self.leaves[w].kind {
                let possible = match (chunk, self.analyzer) {
                    (None, _) => true,
                    (Some(_), Analyzer::Standard) if !value.is_ascii() => true,
                    (Some(finder), _) => finder.find(lower).is_some(),
                };
                scratch.candidates[w] |= possible;
            }
        }
        if !scratch.candidates.iter().any(|c| *c) {
            return;
        }
        let tokens = vec![self.analyzer.tokens(value)];
        for (i, leaf) in self.leaves.iter().enumerate() {
            if scratch.candidates[i]
                && !out.contains(i)
                && !matches!(leaf.kind, Kind::Never)
                && eval::tokens_match(&tokens, self.analyzer, &leaf.query)
            {
                out.insert(i);
            }
        }
    }

    fn pattern_value(&self, lower: &[u8], out: &mut Hits) {
        let Some(searcher) = &self.searcher else {
            return;
        };
        let token_byte = |i: usize| lower.get(i).is_some_and(|b| is_pattern_token_byte(*b));
        for m in searcher.find_iter(lower) {
            if (m.start() > 0 && token_byte(m.start() - 1)) || token_byte(m.end()) {
                continue;
            }
            self.anchor_found(m.pattern().as_usize(), lower, m.start(), m.end(), out);
        }
    }

    /// Every token of `bytes` looked up among the anchors. Most tokens of a script are
    /// not anchors and are turned away by their length and first two bytes before they
    /// are lowercased and hashed.
    fn pattern_tokens(&self, table: &TokenTable, bytes: &[u8], out: &mut Hits) {
        let mut lowered = [0u8; MAX_TABLE_TOKEN];
        let mut i = 0;
        let n = bytes.len();
        while i < n {
            while i < n && TOKEN_LOWER[bytes[i] as usize] == 0 {
                i += 1;
            }
            let start = i;
            while i < n && TOKEN_LOWER[bytes[i] as usize] != 0 {
                i += 1;
            }
            let len = i - start;
            if len == 0 || len >= MAX_TABLE_TOKEN || table.lengths & (1u128 << len) == 0 {
                continue;
            }
            let first = TOKEN_LOWER[bytes[start] as usize];
            let second = TOKEN_LOWER[bytes[start + 1.min(len - 1)] as usize];
            let last = TOKEN_LOWER[bytes[i - 1] as usize];
            if !table.may_hold(len, first, second, last) {
                continue;
            }
            let mut hash = 0u64;
            for (k, &b) in bytes[start..i].iter().enumerate() {
                let c = TOKEN_LOWER[b as usize];
                lowered[k] = c;
                hash = fx_step(hash, c);
            }
            if let Some(anchor) = table.find(hash, &lowered[..len]) {
                self.anchor_found(anchor, bytes, start, i, out);
            }
        }
    }

    /// Anchor `anchor` is the whole token at `start..end` of `text` (original or lowercased).
    fn anchor_found(&self, anchor: usize, text: &[u8], start: usize, end: usize, out: &mut Hits) {
        for &leaf in &self.anchored[anchor] {
            if out.contains(leaf) {
                continue;
            }
            let hit = match &self.leaves[leaf].kind {
                Kind::AnyToken => true,
                Kind::Phrase { tokens, anchor } => phrase_around(text, start, end, tokens, *anchor),
                Kind::Never | Kind::Wildcard { .. } => false,
            };
            if hit {
                out.insert(leaf);
            }
        }
    }
}

/// Above this many anchors the automaton has no packed (Teddy) searcher and a table of
/// tokens is faster (measured with the 589 PowerShell versions: `cargo bench --bench hunt`).
const PACKED_LIMIT: usize = 64;

/// The table takes anchors shorter than this (a matcher with a longer one keeps the
/// automaton).
const MAX_TABLE_TOKEN: usize = 128;

/// For each byte: its lowercase form when it is a pattern-analyzer token byte, else 0.
const TOKEN_LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// One byte of the Fx hash (rustc's multiply-rotate hash): the table is built from rule
/// text, so hash flooding is not a concern.
fn fx_step(hash: u64, byte: u8) -> u64 {
    (hash.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// A token's length, first, second and last bytes, hashed to 16 bits.
fn shape(len: usize, first: u8, second: u8, last: u8) -> usize {
    let key =
        (len as u64) << 24 | u64::from(first) << 16 | u64::from(second) << 8 | u64::from(last);
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize
}

/// The anchors of a pattern-analyzer matcher as an open-addressing hash table of tokens.
#[derive(Debug)]
struct TokenTable {
    /// Anchor number + 1 in each slot; 0 is empty.
    slots: Vec<u32>,
    anchors: Vec<(u64, Box<[u8]>)>,
    /// Bit `n` set when some anchor is `n` bytes long.
    lengths: u128,
    /// A one-hash Bloom filter of the anchors' length, first two and last bytes.
    shapes: Box<[u64; 1024]>,
}

impl TokenTable {
    fn new(anchors: &[String]) -> TokenTable {
        let size = (anchors.len() * 4).next_power_of_two();
        let mut table = TokenTable {
            slots: vec![0; size],
            anchors: Vec::with_capacity(anchors.len()),
            lengths: 0,
            shapes: Box::new([0; 1024]),
        };
        for a in anchors {
            let hash = a.bytes().fold(0, fx_step);
            let mut at = hash as usize & (size - 1);
            while table.slots[at] != 0 {
                at = (at + 1) & (size - 1);
            }
            table.anchors.push((hash, a.as_bytes().into()));
            table.slots[at] = table.anchors.len() as u32;
            table.lengths |= 1u128 << a.len().min(127);
            let b = a.as_bytes();
            if let (Some(&first), Some(&last)) = (b.first(), b.last()) {
                let bit = shape(b.len(), first, b[1.min(b.len() - 1)], last);
                table.shapes[bit >> 6] |= 1 << (bit & 63);
            }
        }
        table
    }

    /// Whether some anchor may be `len` bytes long with these first, second and last bytes.
    fn may_hold(&self, len: usize, first: u8, second: u8, last: u8) -> bool {
        let bit = shape(len, first, second, last);
        self.shapes[bit >> 6] & (1 << (bit & 63)) != 0
    }

    /// The anchor equal to `token` (lowercase) whose hash is `hash`.
    fn find(&self, hash: u64, token: &[u8]) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return None;
            }
            let (h, anchor) = &self.anchors[slot as usize - 1];
            if *h == hash && **anchor == *token {
                return Some(slot as usize - 1);
            }
            at = (at + 1) & mask;
        }
    }
}

/// Whether the tokens before and after the token at `start..end` are the rest of the phrase
/// (`lower` may be the original text: tokens compare ignoring ASCII case).
fn phrase_around(lower: &[u8], start: usize, end: usize, tokens: &[String], anchor: usize) -> bool {
    let is_token = |b: u8| is_pattern_token_byte(b);
    let mut pos = start;
    for want in tokens[..anchor].iter().rev() {
        let mut p = pos;
        while p > 0 && !is_token(lower[p - 1]) {
            p -= 1;
        }
        let token_end = p;
        while p > 0 && is_token(lower[p - 1]) {
            p -= 1;
        }
        if p == token_end || !lower[p..token_end].eq_ignore_ascii_case(want.as_bytes()) {
            return false;
        }
        pos = p;
    }
    let mut pos = end;
    for want in &tokens[anchor + 1..] {
        let mut p = pos;
        while p < lower.len() && !is_token(lower[p]) {
            p += 1;
        }
        let token_start = p;
        while p < lower.len() && is_token(lower[p]) {
            p += 1;
        }
        if p == token_start || !lower[token_start..p].eq_ignore_ascii_case(want.as_bytes()) {
            return false;
        }
        pos = p;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cond::analyzer;

    /// A query written as a rule writes a value: `"..."` a phrase, `*` a wildcard.
    fn literal(value: &str) -> TextQuery {
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(phrase) => TextQuery::Match {
                text: phrase.to_string(),
                phrase: true,
            },
            None if value.contains('*') => {
                let pattern = value
                    .chars()
                    .map(|c| match c {
                        '*' => glob::WildToken::AnyRun,
                        c => glob::WildToken::Char(analyzer::lower_char(c)),
                    })
                    .collect();
                TextQuery::Glob(pattern)
            }
            None => TextQuery::Match {
                text: value.to_string(),
                phrase: false,
            },
        }
    }

    /// Checks the matcher against the reference, as given and with 80 more leaves (which
    /// turns the pattern analyzer's automaton into a token table).
    fn check(analyzer: Analyzer, values: &[&str], texts: &[&str]) {
        check_leaves(analyzer, values, texts);
        let fillers: Vec<String> = (0..80).map(|i| format!("filler{i}")).collect();
        let mut more: Vec<&str> = values.to_vec();
        more.extend(fillers.iter().map(String::as_str));
        check_leaves(analyzer, &more, texts);
    }

    fn check_leaves(analyzer: Analyzer, values: &[&str], texts: &[&str]) {
        let lits: Vec<TextQuery> = values.iter().map(|v| literal(v)).collect();
        let m = TextMatcher::new(analyzer, &lits).expect("matcher");
        let mut scratch = Scratch::default();
        for text in texts {
            let mut out = Hits::new(lits.len());
            m.eval_value(text, &mut scratch, &mut out);
            let mut from_bytes = Hits::new(lits.len());
            m.eval_bytes(text.as_bytes(), &mut scratch, &mut from_bytes)
                .expect("UTF-8");
            for (i, lit) in lits.iter().enumerate() {
                assert_eq!(out.contains(i), from_bytes.contains(i), "bytes and text");
                let want = eval::text_matches(analyzer, &[text.to_string()], lit);
                assert_eq!(
                    out.contains(i),
                    want,
                    "{analyzer:?} {:?} on {text:?}",
                    values[i]
                );
            }
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_matched_where_the_result_cannot_depend_on_them() {
        let value = b"\xff$x.NetShareEnum(\xc3)";
        for values in [vec!["NetShareEnum"], vec!["NetShareEnum"; 80]] {
            let lits: Vec<TextQuery> = values.iter().map(|v| literal(v)).collect();
            let m = TextMatcher::new(Analyzer::Pattern, &lits).expect("matcher");
            let mut out = Hits::new(lits.len());
            m.eval_bytes(value, &mut Scratch::default(), &mut out)
                .expect("no wildcard: bytes are enough");
            assert!(out.contains(0));
        }
        for (analyzer, value) in [(Analyzer::Pattern, "Net*"), (Analyzer::Standard, "x")] {
            let lits = vec![literal(value)];
            let m = TextMatcher::new(analyzer, &lits).expect("matcher");
            let mut out = Hits::new(1);
            let result = m.eval_bytes(b"\xff", &mut Scratch::default(), &mut out);
            assert!(result.is_err(), "{analyzer:?} {value}");
        }
    }

    #[test]
    fn pattern_analyzer_tokens_and_phrases_match_the_reference() {
        check(
            Analyzer::Pattern,
            &[
                "NetShareEnum",
                "\"Get-Process foo\"",
                "\"a b c\"",
                "get",
                "get-process",
                "Invoke*",
                "*ocess",
                "\"\"",
                "x y",
            ],
            &[
                "$Mod.NetShareEnum(",
                "NetShareEnumAll",
                "NetShareEnum-x",
                "get-process FOO",
                "Get-Process  -- foo",
                "get-processfoo",
                "A B C",
                "a b x c",
                "b c a b c",
                "Invoke-Expression",
                "é get é",
                "y",
                "",
            ],
        );
    }

    #[test]
    fn standard_analyzer_matches_the_reference() {
        check(
            Analyzer::Standard,
            &[
                "NetShareEnum",
                "\"mod.netshareenum\"",
                "\"a b\"",
                "can't",
                "Stra*",
            ],
            &[
                "$Mod.NetShareEnum(",
                "NetShareEnum-x",
                "A B",
                "a.b",
                "CAN'T stop",
                "STRAßE",
                "\u{212A}ill netshareenum",
            ],
        );
    }
}
