//! KQL, parsed exactly as Kibana's grammar (`kbn-es-query`, `grammar.peggy`) parses it.
//!
//! [`parse`] turns query text into a [`Query`] tree or a [`SyntaxError`] with line, column and
//! what was expected there. The parser is a direct PEG: ordered choices with backtracking and
//! the same keyword look-ahead as Kibana (`or`/`and` need whitespace on both sides, `not`
//! only after it), so a query Kibana rejects is rejected here too (`f: cannot find` stops at
//! `can`). Value lists (`field:(a or not b)`) are distributed over the field while parsing,
//! so the tree holds only field-level leaves. [`Query::to_kql`] prints a normalised form that
//! parses back to the same tree. [`lower`] turns the tree into the language-neutral
//! [`Cond`] the planner and the reference evaluator run, as Kibana turns KQL into Query DSL.

use std::fmt;

use crate::cond::glob::{self, WildToken};
pub use crate::cond::RangeOp;
use crate::cond::{Cond, FieldSel, GlobCase, Pred, Test};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// The empty query and `*:*`.
    MatchAll,
    Or(Vec<Query>),
    And(Vec<Query>),
    Not(Box<Query>),
    /// `field: value`; a value with no field is free text, searched in every field.
    Is {
        field: Option<Literal>,
        value: Literal,
    },
    /// `field: *`.
    Exists {
        field: Literal,
    },
    /// `field < value` and the other comparisons.
    Range {
        field: Literal,
        op: RangeOp,
        value: Literal,
    },
    /// `path: { query }`: the inner field names are relative to `path`.
    Nested {
        path: Literal,
        query: Box<Query>,
    },
}

/// A piece of a literal: text, or the `*` wildcard of an unquoted literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chunk {
    Text(String),
    Star,
}

/// A field name or value as written: quoted or not, with its wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Literal {
    pub chunks: Vec<Chunk>,
    pub quoted: bool,
}

impl Literal {
    pub fn text(s: &str, quoted: bool) -> Literal {
        Literal {
            chunks: if s.is_empty() {
                Vec::new()
            } else {
                vec![Chunk::Text(s.to_string())]
            },
            quoted,
        }
    }

    /// Whether the literal holds a `*` wildcard (only unquoted literals do).
    pub fn has_wildcard(&self) -> bool {
        self.chunks.contains(&Chunk::Star)
    }

    /// The lone `*`.
    pub fn is_star(&self) -> bool {
        self.chunks == [Chunk::Star]
    }

    /// The value with every wildcard written as `*` (for display and field names).
    pub fn display(&self) -> String {
        let mut s = String::new();
        for c in &self.chunks {
            match c {
                Chunk::Text(t) => s.push_str(t),
                Chunk::Star => s.push('*'),
            }
        }
        s
    }

    fn push_char(&mut self, c: char) {
        match self.chunks.last_mut() {
            Some(Chunk::Text(t)) => t.push(c),
            _ => self.chunks.push(Chunk::Text(c.to_string())),
        }
    }

    /// KQL text that parses back to this literal.
    pub fn to_kql(&self) -> String {
        if self.quoted {
            let mut s = String::from('"');
            for c in self.display().chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    '\t' => s.push_str("\\t"),
                    '\r' => s.push_str("\\r"),
                    '\n' => s.push_str("\\n"),
                    c => s.push(c),
                }
            }
            s.push('"');
            return s;
        }
        let mut s = String::new();
        for chunk in &self.chunks {
            match chunk {
                Chunk::Star => s.push('*'),
                Chunk::Text(t) => {
                    for c in t.chars() {
                        match c {
                            '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}' => {
                                s.push('\\');
                                s.push(c);
                            }
                            '\t' => s.push_str("\\t"),
                            '\r' => s.push_str("\\r"),
                            '\n' => s.push_str("\\n"),
                            c if is_space(c) && c != ' ' => {
                                s.push_str(&format!("\\u{:04x}", c as u32))
                            }
                            c => s.push(c),
                        }
                    }
                }
            }
        }
        // Keywords inside an unquoted literal are escaped so they stay text.
        escape_keywords(&s)
    }
}

/// Escapes the words `or`, `and` and `not` wherever Kibana's keyword look-ahead would see a
/// keyword, including at the end of the literal, since the printer may put a space after it.
fn escape_keywords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            // An escape sequence the printer wrote: `\uXXXX` or a backslash and one character.
            let len = if chars.get(i + 1) == Some(&'u') { 6 } else { 2 };
            let end = (i + len).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        let at_word_start = i == 0 || chars[i - 1] == ' ';
        let keyword = ["or", "and", "not"].into_iter().find(|k| {
            let n = k.len();
            let word_here = chars.len() >= i + n
                && chars[i..i + n]
                    .iter()
                    .zip(k.chars())
                    .all(|(c, k)| c.to_ascii_lowercase() == k);
            let boundary_after = chars.get(i + n).is_none_or(|c| *c == ' ');
            word_here && boundary_after && (at_word_start || *k == "not")
        });
        if let Some(k) = keyword {
            let len = k.len();
            if chars[i] == 'n' {
                // `\n` would be a newline: write the `n` as a unicode escape instead.
                out.push_str("\\u006e");
                out.extend(&chars[i + 1..i + len]);
            } else {
                out.push('\\');
                out.extend(&chars[i..i + len]);
            }
            i += len;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

impl Query {
    /// A normalised KQL text of the query: explicit groups, one space around keywords.
    pub fn to_kql(&self) -> String {
        self.print(0)
    }

    fn print(&self, parent: u8) -> String {
        let (text, level) = match self {
            Query::MatchAll => ("*:*".to_string(), 3),
            Query::Or(items) => (join(items, " or ", 1), 1),
            Query::And(items) => (join(items, " and ", 2), 2),
            Query::Not(inner) => (format!("not {}", inner.print(3)), 3),
            Query::Is { field: None, value } => (value.to_kql(), 3),
            Query::Is {
                field: Some(f),
                value,
            } => (format!("{}:{}", f.to_kql(), value.to_kql()), 3),
            Query::Exists { field } => (format!("{}:*", field.to_kql()), 3),
            Query::Range { field, op, value } => (
                format!("{} {} {}", field.to_kql(), op.symbol(), value.to_kql()),
                3,
            ),
            Query::Nested { path, query } => {
                (format!("{}:{{ {} }}", path.to_kql(), query.print(0)), 3)
            }
        };
        if level < parent {
            format!("({text})")
        } else {
            text
        }
    }

    /// Every field-level leaf, left to right.
    pub fn leaves(&self) -> Vec<&Query> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'a>(&'a self, out: &mut Vec<&'a Query>) {
        match self {
            Query::Or(items) | Query::And(items) => {
                items.iter().for_each(|q| q.collect_leaves(out));
            }
            Query::Not(inner) => inner.collect_leaves(out),
            Query::Nested { query, .. } => query.collect_leaves(out),
            leaf => out.push(leaf),
        }
    }
}

fn join(items: &[Query], sep: &str, level: u8) -> String {
    items
        .iter()
        .map(|q| q.print(level + 1))
        .collect::<Vec<_>>()
        .join(sep)
}

/// Where and why a query does not parse.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// 1-based line and column (in characters) of the furthest point the parser reached.
    pub line: usize,
    pub column: usize,
    /// What could have come next there.
    pub expected: Vec<String>,
    /// What was found instead (`end of input` at the end).
    pub found: String,
    /// The query line holding the error.
    pub source_line: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: expected {} but found {}",
            self.line,
            self.column,
            self.expected.join(", "),
            self.found
        )
    }
}

impl std::error::Error for SyntaxError {}

impl SyntaxError {
    /// The offending line with a caret under the column.
    pub fn caret(&self) -> String {
        format!(
            "{}\n{}^",
            self.source_line.replace('\t', " "),
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

/// Parses a KQL query as Kibana does.
pub fn parse(text: &str) -> Result<Query, SyntaxError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        furthest: 0,
        expected: Vec::new(),
        depth: 0,
    };
    p.skip_spaces();
    if p.pos == p.chars.len() {
        return Ok(Query::MatchAll);
    }
    let query = p.or_query();
    p.skip_spaces();
    match query {
        Some(q) if p.pos == p.chars.len() => Ok(q),
        _ => {
            if p.pos >= p.furthest {
                p.fail_at(p.pos, "end of input");
            }
            Err(p.error(text))
        }
    }
}

/// Nesting deeper than this is refused (Kibana's parser would exhaust its stack long before).
const MAX_DEPTH: usize = 200;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    furthest: usize,
    expected: Vec<String>,
    depth: usize,
}

/// Kibana's `Space`: space, TAB, CR, LF and NBSP.
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn fail_at(&mut self, pos: usize, what: &str) {
        if pos > self.furthest {
            self.furthest = pos;
            self.expected.clear();
        }
        if pos == self.furthest && !self.expected.iter().any(|e| e == what) {
            self.expected.push(what.to_string());
        }
    }

    fn error(&self, text: &str) -> SyntaxError {
        let before: String = self.chars[..self.furthest.min(self.chars.len())]
            .iter()
            .collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let found = match self.chars.get(self.furthest) {
            None => "end of input".to_string(),
            Some(c) => format!("{c:?}"),
        };
        let mut expected = self.expected.clone();
        expected.sort();
        SyntaxError {
            line,
            column,
            expected,
            found,
            source_line: text.lines().nth(line - 1).unwrap_or_default().to_string(),
        }
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            self.fail_at(self.pos, &format!("{c:?}"));
            false
        }
    }

    /// Whether the word `kw` (case-insensitive) is at `pos`.
    fn word_at(&self, pos: usize, kw: &str) -> bool {
        kw.chars().enumerate().all(|(i, k)| {
            self.chars
                .get(pos + i)
                .is_some_and(|c| c.to_ascii_lowercase() == k)
        })
    }

    /// `Space+ kw Space+` at `pos`: the end position, or None.
    fn binary_keyword_at(&self, pos: usize, kw: &str) -> Option<usize> {
        let mut p = pos;
        while self.chars.get(p).copied().is_some_and(is_space) {
            p += 1;
        }
        if p == pos || !self.word_at(p, kw) {
            return None;
        }
        p += kw.len();
        let after = p;
        while self.chars.get(p).copied().is_some_and(is_space) {
            p += 1;
        }
        (p > after).then_some(p)
    }

    /// `not Space+` at `pos`: the end position, or None.
    fn not_keyword_at(&self, pos: usize) -> Option<usize> {
        if !self.word_at(pos, "not") {
            return None;
        }
        let mut p = pos + 3;
        let after = p;
        while self.chars.get(p).copied().is_some_and(is_space) {
            p += 1;
        }
        (p > after).then_some(p)
    }

    /// Kibana's `Keyword` look-ahead: `Or`, `And` or `Not` starts at `pos`.
    fn keyword_at(&self, pos: usize) -> bool {
        self.binary_keyword_at(pos, "or").is_some()
            || self.binary_keyword_at(pos, "and").is_some()
            || self.not_keyword_at(pos).is_some()
    }

    fn binary_keyword(&mut self, kw: &str) -> bool {
        match self.binary_keyword_at(self.pos, kw) {
            Some(end) => {
                self.pos = end;
                true
            }
            None => {
                self.fail_at(self.pos, kw);
                false
            }
        }
    }

    fn or_query(&mut self) -> Option<Query> {
        self.nested(|p| p.chain(Self::and_query, "or", Query::Or))
    }

    /// Runs `inner` one nesting level deeper, refusing depths over [`MAX_DEPTH`].
    fn nested<T>(&mut self, inner: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth >= MAX_DEPTH {
            self.fail_at(self.pos, "less nesting");
            return None;
        }
        self.depth += 1;
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn and_query(&mut self) -> Option<Query> {
        self.chain(Self::not_query, "and", Query::And)
    }

    /// `item (kw item)*`: an n-ary chain of `and` or `or`, for queries and value lists alike.
    fn chain<T>(
        &mut self,
        item: fn(&mut Self) -> Option<T>,
        kw: &str,
        make: fn(Vec<T>) -> T,
    ) -> Option<T> {
        let first = item(self)?;
        let mut items = vec![first];
        loop {
            let save = self.pos;
            if !self.binary_keyword(kw) {
                break;
            }
            match item(self) {
                Some(q) => items.push(q),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        Some(if items.len() == 1 {
            items.pop()?
        } else {
            make(items)
        })
    }

    fn not_query(&mut self) -> Option<Query> {
        self.negatable(Self::sub_query, Query::Not)
    }

    /// `not item` (Kibana's `Not` needs whitespace after it) or just `item`.
    fn negatable<T>(
        &mut self,
        item: fn(&mut Self) -> Option<T>,
        not: fn(Box<T>) -> T,
    ) -> Option<T> {
        if let Some(end) = self.not_keyword_at(self.pos) {
            let save = self.pos;
            self.pos = end;
            if let Some(q) = item(self) {
                return Some(not(Box::new(q)));
            }
            self.pos = save;
        } else {
            self.fail_at(self.pos, "not");
        }
        item(self)
    }

    fn sub_query(&mut self) -> Option<Query> {
        if self.peek() == Some('(') {
            return self.group(Self::or_query);
        }
        self.fail_at(self.pos, "'('");
        self.nested_query()
    }

    /// `( inner )`, spaces allowed inside; the position is restored when it fails.
    fn group<T>(&mut self, inner: fn(&mut Self) -> Option<T>) -> Option<T> {
        let save = self.pos;
        self.pos += 1;
        self.skip_spaces();
        if let Some(q) = inner(self) {
            self.skip_spaces();
            if self.eat(')') {
                return Some(q);
            }
        }
        self.pos = save;
        None
    }

    fn nested_query(&mut self) -> Option<Query> {
        let save = self.pos;
        if let Some(path) = self.literal() {
            self.skip_spaces();
            if self.eat(':') {
                self.skip_spaces();
                if self.eat('{') {
                    self.skip_spaces();
                    if let Some(q) = self.or_query() {
                        self.skip_spaces();
                        if self.eat('}') {
                            return Some(Query::Nested {
                                path,
                                query: Box::new(q),
                            });
                        }
                    }
                }
            }
        }
        self.pos = save;
        self.expression()
    }

    fn expression(&mut self) -> Option<Query> {
        let save = self.pos;
        if let Some(q) = self.range_expression() {
            return Some(q);
        }
        self.pos = save;
        if let Some(q) = self.field_value_expression() {
            return Some(q);
        }
        self.pos = save;
        let value = self.literal()?;
        Some(if value.is_star() {
            // A lone `*` is Kibana's match-all free text.
            Query::MatchAll
        } else {
            Query::Is { field: None, value }
        })
    }

    fn range_expression(&mut self) -> Option<Query> {
        let field = self.literal()?;
        self.skip_spaces();
        let op = self.range_operator()?;
        self.skip_spaces();
        let value = self.literal()?;
        Some(Query::Range { field, op, value })
    }

    fn range_operator(&mut self) -> Option<RangeOp> {
        let two: String = self.chars.iter().skip(self.pos).take(2).collect();
        let op = if two == "<=" {
            RangeOp::Lte
        } else if two == ">=" {
            RangeOp::Gte
        } else if two.starts_with('<') {
            RangeOp::Lt
        } else if two.starts_with('>') {
            RangeOp::Gt
        } else {
            for e in ["'<'", "'<='", "'>'", "'>='"] {
                self.fail_at(self.pos, e);
            }
            return None;
        };
        self.pos += op.symbol().len();
        Some(op)
    }

    fn field_value_expression(&mut self) -> Option<Query> {
        let field = self.literal()?;
        self.skip_spaces();
        if !self.eat(':') {
            return None;
        }
        self.skip_spaces();
        let values = self.list_of_values()?;
        Some(distribute(&field, values))
    }

    fn list_of_values(&mut self) -> Option<ValueTree> {
        if self.peek() == Some('(') {
            return self.group(Self::or_values);
        }
        self.fail_at(self.pos, "'('");
        self.literal().map(ValueTree::Value)
    }

    fn or_values(&mut self) -> Option<ValueTree> {
        self.nested(|p| p.chain(Self::and_values, "or", ValueTree::Or))
    }

    fn and_values(&mut self) -> Option<ValueTree> {
        self.chain(Self::not_values, "and", ValueTree::And)
    }

    fn not_values(&mut self) -> Option<ValueTree> {
        self.negatable(Self::list_of_values, ValueTree::Not)
    }

    fn literal(&mut self) -> Option<Literal> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        self.fail_at(self.pos, "'\"'");
        self.unquoted()
    }

    fn quoted(&mut self) -> Option<Literal> {
        let save = self.pos;
        self.pos += 1;
        let mut lit = Literal {
            chunks: Vec::new(),
            quoted: true,
        };
        loop {
            match self.peek() {
                None => {
                    self.fail_at(self.pos, "'\"'");
                    self.pos = save;
                    return None;
                }
                Some('"') => {
                    self.pos += 1;
                    return Some(lit);
                }
                Some('\\') => {
                    let next = self.chars.get(self.pos + 1).copied();
                    let (c, len) = match next {
                        Some('t') => ('\t', 2),
                        Some('r') => ('\r', 2),
                        Some('n') => ('\n', 2),
                        Some('"') => ('"', 2),
                        Some('\\') => ('\\', 2),
                        Some('u') => match self.unicode_escape(self.pos) {
                            Some(c) => (c, 6),
                            None => ('\\', 1),
                        },
                        _ => ('\\', 1),
                    };
                    lit.push_char(c);
                    self.pos += len;
                }
                Some(c) => {
                    lit.push_char(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `\uXXXX` at `pos` (lowercase `u`, four hex digits).
    fn unicode_escape(&self, pos: usize) -> Option<char> {
        if self.chars.get(pos + 1) != Some(&'u') {
            return None;
        }
        let hex: String = self.chars.get(pos + 2..pos + 6)?.iter().collect();
        if hex.len() != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)
    }

    fn unquoted(&mut self) -> Option<Literal> {
        let start = self.pos;
        let mut lit = Literal {
            chunks: Vec::new(),
            quoted: false,
        };
        while let Some(c) = self.peek() {
            if c == '\\' {
                let next = self.chars.get(self.pos + 1).copied();
                match next {
                    Some('t') => {
                        lit.push_char('\t');
                        self.pos += 2;
                    }
                    Some('r') => {
                        lit.push_char('\r');
                        self.pos += 2;
                    }
                    Some('n') => {
                        lit.push_char('\n');
                        self.pos += 2;
                    }
                    Some(s) if is_special(s) => {
                        lit.push_char(s);
                        self.pos += 2;
                    }
                    Some('u') if self.unicode_escape(self.pos).is_some() => {
                        if let Some(u) = self.unicode_escape(self.pos) {
                            lit.push_char(u);
                        }
                        self.pos += 6;
                    }
                    _ => {
                        let kw = ["or", "and", "not"]
                            .into_iter()
                            .find(|k| self.word_at(self.pos + 1, k));
                        match kw {
                            Some(k) => {
                                for &ch in &self.chars[self.pos + 1..self.pos + 1 + k.len()] {
                                    lit.push_char(ch);
                                }
                                self.pos += 1 + k.len();
                            }
                            None => {
                                self.fail_at(self.pos, "an escape sequence");
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            if c == '*' {
                lit.chunks.push(Chunk::Star);
                self.pos += 1;
                continue;
            }
            if is_special(c) || self.keyword_at(self.pos) {
                break;
            }
            lit.push_char(c);
            self.pos += 1;
        }
        if self.pos == start {
            self.fail_at(self.pos, "a value");
            return None;
        }
        trim_literal(&mut lit);
        if lit.chunks.is_empty() {
            // Only whitespace was read (an escaped space cannot be written unquoted).
            self.pos = start;
            self.fail_at(self.pos, "a value");
            return None;
        }
        Some(lit)
    }
}

/// Trims whitespace from both ends of an unquoted literal, as Kibana's `trim()` does.
fn trim_literal(lit: &mut Literal) {
    if let Some(Chunk::Text(t)) = lit.chunks.first_mut() {
        *t = t.trim_start_matches(is_js_space).to_string();
    }
    if let Some(Chunk::Text(t)) = lit.chunks.last_mut() {
        *t = t.trim_end_matches(is_js_space).to_string();
    }
    lit.chunks
        .retain(|c| !matches!(c, Chunk::Text(t) if t.is_empty()));
}

/// JavaScript's `String.prototype.trim` whitespace (it also strips escaped `\t` etc.).
fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// A value list before it is distributed over its field.
enum ValueTree {
    Value(Literal),
    Or(Vec<ValueTree>),
    And(Vec<ValueTree>),
    Not(Box<ValueTree>),
}

fn distribute(field: &Literal, values: ValueTree) -> Query {
    match values {
        ValueTree::Value(v) => {
            if field.is_star() && v.is_star() {
                Query::MatchAll
            } else if v.is_star() {
                Query::Exists {
                    field: field.clone(),
                }
            } else {
                Query::Is {
                    field: Some(field.clone()),
                    value: v,
                }
            }
        }
        ValueTree::Or(items) => {
            Query::Or(items.into_iter().map(|v| distribute(field, v)).collect())
        }
        ValueTree::And(items) => {
            Query::And(items.into_iter().map(|v| distribute(field, v)).collect())
        }
        ValueTree::Not(inner) => Query::Not(Box::new(distribute(field, *inner))),
    }
}

/// The condition a query means, as Kibana's `toElasticsearchQuery` builds it: a value is a
/// `match` (`match_phrase` when quoted), a value with `*` a `query_string` wildcard (lowered
/// on analyzed text), `field: *` an `exists`, comparisons `range`s; nested field names are
/// prefixed with their path. Reports name each predicate as the query writes it.
pub fn lower(query: &Query) -> Cond {
    lower_in(query, "")
}

fn lower_in(query: &Query, prefix: &str) -> Cond {
    let pred = |field: FieldSel, test: Test, shown: String| Cond::Pred(Pred { field, test, shown });
    match query {
        Query::MatchAll => Cond::True,
        Query::Or(items) => Cond::Or(items.iter().map(|i| lower_in(i, prefix)).collect()),
        Query::And(items) => Cond::And(items.iter().map(|i| lower_in(i, prefix)).collect()),
        Query::Not(inner) => Cond::Not(Box::new(lower_in(inner, prefix))),
        Query::Is { field, value } => {
            let field = match field {
                Some(f) => field_sel(f, prefix),
                None => FieldSel::All,
            };
            pred(field, value_test(value), format!(": {}", value.to_kql()))
        }
        Query::Exists { field } => pred(field_sel(field, prefix), Test::Exists, ": *".into()),
        Query::Range { field, op, value } => pred(
            field_sel(field, prefix),
            Test::Range {
                op: *op,
                bound: value.display(),
            },
            format!(" {} {}", op.symbol(), value.to_kql()),
        ),
        Query::Nested { path, query } => lower_in(query, &format!("{prefix}{}.", path.display())),
    }
}

fn value_test(value: &Literal) -> Test {
    match value.has_wildcard() {
        true => Test::Glob {
            pattern: literal_glob(value),
            case: GlobCase::LowerOnText,
        },
        false => Test::Match {
            text: value.display(),
            phrase: value.quoted,
        },
    }
}

fn field_sel(field: &Literal, prefix: &str) -> FieldSel {
    let written = format!("{prefix}{}", field.display());
    match field.has_wildcard() {
        true => {
            let mut pattern = glob::literal(prefix);
            pattern.extend(literal_glob(field));
            FieldSel::Pattern { pattern, written }
        }
        false => FieldSel::Name(written),
    }
}

/// A literal as a glob: its `*` are wildcards, every other character (`?` too) literal.
fn literal_glob(lit: &Literal) -> Vec<WildToken> {
    let mut out = Vec::new();
    for c in &lit.chunks {
        match c {
            Chunk::Star => out.push(WildToken::AnyRun),
            Chunk::Text(t) => out.extend(glob::literal(t)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(field: &str, value: &str) -> Query {
        Query::Is {
            field: Some(Literal::text(field, false)),
            value: Literal::text(value, false),
        }
    }

    #[test]
    fn precedence_is_not_and_or() {
        let q = parse("a:1 or b:2 and not c:3").expect("parse");
        assert_eq!(
            q,
            Query::Or(vec![
                is("a", "1"),
                Query::And(vec![is("b", "2"), Query::Not(Box::new(is("c", "3")))])
            ])
        );
    }

    #[test]
    fn keywords_need_whitespace() {
        assert!(parse("a:x or\"b\"").is_err());
        let e = parse("f: cannot find").expect_err("Kibana rejects it");
        assert_eq!((e.line, e.column), (1, 7));
        assert_eq!(
            parse("a:x OR b:y").expect("parse"),
            Query::Or(vec![is("a", "x"), is("b", "y")])
        );
    }

    #[test]
    fn unquoted_values_keep_inner_spaces() {
        assert_eq!(
            parse("f: quick brown ").expect("parse"),
            is("f", "quick brown")
        );
    }

    #[test]
    fn quoted_escapes() {
        let q = parse(r#"f:"C:\Program Files\tmp \"x\" \\ \u0041""#).expect("parse");
        let Query::Is { value, .. } = q else {
            panic!("not a leaf")
        };
        assert_eq!(value.display(), "C:\\Program Files\tmp \"x\" \\ A");
        assert!(value.quoted);
    }

    #[test]
    fn lists_distribute_and_star_is_exists() {
        let q = parse("f:(a or not b) and g:*").expect("parse");
        assert_eq!(
            q,
            Query::And(vec![
                Query::Or(vec![is("f", "a"), Query::Not(Box::new(is("f", "b")))]),
                Query::Exists {
                    field: Literal::text("g", false)
                }
            ])
        );
        assert_eq!(parse("").expect("empty"), Query::MatchAll);
        assert_eq!(parse("*:*").expect("all"), Query::MatchAll);
    }

    #[test]
    fn printing_round_trips() {
        for text in [
            "a:1 or b:2 and not c:3",
            r#"f:("x y" or z*) and not g:\(\)"#,
            "n <= 5 and p:{ q:1 }",
            r#"f:"tab\there""#,
            "f:can\\not",
            "f:x \\not y",
            "f:x \\Or y \\and z",
            "\u{1}      not>=tc",
            "f:(\\or or not \\Not)",
            "x and \\or y",
            "f:a \\not",
        ] {
            let q = parse(text).expect(text);
            let printed = q.to_kql();
            assert_eq!(parse(&printed).expect(&printed), q, "{text} -> {printed}");
        }
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("a:1 and\n  (b:2").expect_err("unclosed");
        assert_eq!(e.line, 2);
        assert!(e.expected.iter().any(|x| x.contains(')')), "{e}");
        assert!(e.caret().ends_with('^'));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let q = format!("{}a:1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&q).is_err());
    }
}
