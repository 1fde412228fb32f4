//! EQL, parsed as Elasticsearch's EQL parser (`x-pack/plugin/eql`, grammar `EqlBase.g4` and
//! its builders) parses it.
//!
//! [`parse`] turns query text into a [`Query`] or a [`SyntaxError`] with line, column and
//! what was wrong, for everything Elasticsearch rejects while parsing: tokens and grammar,
//! and the builders' checks (time units of `maxspan`, `with runs`, `by` after `with`, missing
//! events, single-quoted strings, pipes other than `head`/`tail`, `join` and process
//! relationships, which Elasticsearch parses but does not run). [`Query::to_eql`] prints a
//! normalised form that parses back to the same tree.
//!
//! The grammar's shape, loosest binding first: `or`, `and`, `not`; a comparison (`==`, `!=`,
//! `<`, `<=`, `>`, `>=`, not chained); `+ -`; `* / %`; unary `-`/`+`; a primary (constant,
//! function call, field, parenthesised expression) with an optional predicate (`in`, `in~`,
//! `not in`, `not in~` with a list of expressions; `:`, `like`, `like~`, `regex`, `regex~`
//! with a constant or a list of constants).

mod check;
mod lexer;
pub mod lower;
mod parser;
mod print;
pub mod reference;

pub use check::{check, FUNCTIONS};

/// An expression as EQL writes it.
pub fn print_expr(e: &Expr) -> String {
    print::expr(e)
}

use std::fmt;

/// A parsed EQL statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub body: Body,
    pub pipes: Vec<Pipe>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Event(EventFilter),
    Sequence(Sequence),
    Sample(Sample),
}

/// `<category> where <condition>`; `any where` has no category.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFilter {
    pub category: Option<String>,
    pub condition: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The top-level `by` keys, joined with every step's own.
    pub by: Vec<Expr>,
    pub maxspan: Option<Span>,
    pub steps: Vec<Step>,
    pub until: Option<Step>,
}

/// One bracketed query of a sequence or sample (a step written `with runs=N` is there N
/// times, as Elasticsearch expands it).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub filter: EventFilter,
    pub by: Vec<Expr>,
    /// `![...]`: an event that must not occur.
    pub missing: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub by: Vec<Expr>,
    pub steps: Vec<Step>,
}

/// A `maxspan` duration as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub value: u64,
    pub unit: TimeUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn millis(self) -> u64 {
        match self {
            TimeUnit::Millis => 1,
            TimeUnit::Seconds => 1_000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }

    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Millis => "ms",
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "m",
            TimeUnit::Hours => "h",
            TimeUnit::Days => "d",
        }
    }
}

impl Span {
    pub fn millis(self) -> u64 {
        self.value.saturating_mul(self.unit.millis())
    }
}

/// `| head N` or `| tail N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    Head(u64),
    Tail(u64),
}

/// An expression of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Field(Field),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    /// `x in (...)`, `x in~ (...)`, `x not in (...)`.
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        insensitive: bool,
        negated: bool,
    },
    /// `x : p`, `x like p`, `x regex p` and their lists; `:` is `like~`.
    Match {
        value: Box<Expr>,
        kind: MatchKind,
        insensitive: bool,
        patterns: Vec<Expr>,
    },
    Call {
        name: String,
        insensitive: bool,
        args: Vec<Expr>,
        at: Pos,
    },
}

/// Where a field or call starts in the query text (1-based line and column). Positions take
/// no part in comparing trees: a query and its normalised text parse to equal trees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl Eq for Pos {}

/// A field reference: its dotted path, and `?` for an optional field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub path: String,
    pub optional: bool,
    pub at: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Neq => "!=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

/// How a [`Expr::Match`] reads its patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// `:` (always case-insensitive) and `like`: `*` any run, `?` one character.
    Wildcard,
    /// `regex`: Lucene's regular-expression syntax against the whole value.
    Regex,
}

/// Why Elasticsearch would reject a query: 1-based line and column, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The query line holding the error.
    pub source_line: String,
}

impl SyntaxError {
    fn at(source: &str, line: usize, column: usize, message: String) -> SyntaxError {
        SyntaxError {
            line,
            column,
            message,
            source_line: source
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The offending line with a caret under the column.
    pub fn caret(&self) -> String {
        let pad: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{}\n{pad}^", self.source_line)
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses an EQL statement (see [`check`] for what Elasticsearch rejects after parsing).
pub fn parse(source: &str) -> Result<Query, SyntaxError> {
    let tokens = lexer::tokens(source)?;
    parser::Parser::new(source, tokens).statement()
}

impl Query {
    /// Every field the query reads, in order of first use.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out: Vec<&Field> = Vec::new();
        for e in self.expressions() {
            collect_fields(e, &mut out);
        }
        out
    }

    /// The top-level expressions: conditions and join keys.
    pub(super) fn expressions(&self) -> Vec<&Expr> {
        fn step_exprs(s: &Step) -> Vec<&Expr> {
            std::iter::once(&s.filter.condition)
                .chain(s.by.iter())
                .collect()
        }
        match &self.body {
            Body::Event(f) => vec![&f.condition],
            Body::Sequence(s) => {
                s.by.iter()
                    .chain(s.steps.iter().chain(s.until.iter()).flat_map(step_exprs))
                    .collect()
            }
            Body::Sample(s) => {
                s.by.iter()
                    .chain(s.steps.iter().flat_map(step_exprs))
                    .collect()
            }
        }
    }
}

/// The distinct fields of an expression, in order of first use.
fn collect_fields<'a>(e: &'a Expr, out: &mut Vec<&'a Field>) {
    e.each_field(&mut |f| {
        if !out.contains(&f) {
            out.push(f);
        }
    });
}

impl Expr {
    /// Calls `f` on every field occurrence, in order, repeats included.
    pub fn each_field<'a>(&'a self, f: &mut dyn FnMut(&'a Field)) {
        match self {
            Expr::Field(field) => f(field),
            Expr::Not(a) | Expr::Neg(a) => a.each_field(f),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) | Expr::Arith(_, a, b) => {
                a.each_field(f);
                b.each_field(f);
            }
            Expr::In { value, list, .. } => {
                value.each_field(f);
                list.iter().for_each(|x| x.each_field(f));
            }
            Expr::Match {
                value, patterns, ..
            } => {
                value.each_field(f);
                patterns.iter().for_each(|x| x.each_field(f));
            }
            Expr::Call { args, .. } => args.iter().for_each(|x| x.each_field(f)),
            Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) => {}
        }
    }

    /// The expression with every field occurrence, in order, replaced by what `f` makes of
    /// it (or the first error).
    pub fn map_fields<E>(&self, f: &mut dyn FnMut(&Field) -> Result<Expr, E>) -> Result<Expr, E> {
        let boxed =
            |x: &Expr, f: &mut dyn FnMut(&Field) -> Result<Expr, E>| x.map_fields(f).map(Box::new);
        Ok(match self {
            Expr::Field(field) => f(field)?,
            Expr::Not(a) => Expr::Not(boxed(a, f)?),
            Expr::Neg(a) => Expr::Neg(boxed(a, f)?),
            Expr::And(a, b) => Expr::And(boxed(a, f)?, boxed(b, f)?),
            Expr::Or(a, b) => Expr::Or(boxed(a, f)?, boxed(b, f)?),
            Expr::Compare(op, a, b) => Expr::Compare(*op, boxed(a, f)?, boxed(b, f)?),
            Expr::Arith(op, a, b) => Expr::Arith(*op, boxed(a, f)?, boxed(b, f)?),
            Expr::In {
                value,
                list,
                insensitive,
                negated,
            } => Expr::In {
                value: boxed(value, f)?,
                list: list
                    .iter()
                    .map(|x| x.map_fields(f))
                    .collect::<Result<_, _>>()?,
                insensitive: *insensitive,
                negated: *negated,
            },
            Expr::Match {
                value,
                kind,
                insensitive,
                patterns,
            } => Expr::Match {
                value: boxed(value, f)?,
                kind: *kind,
                insensitive: *insensitive,
                patterns: patterns
                    .iter()
                    .map(|x| x.map_fields(f))
                    .collect::<Result<_, _>>()?,
            },
            Expr::Call {
                name,
                insensitive,
                args,
                at,
            } => Expr::Call {
                name: name.clone(),
                insensitive: *insensitive,
                args: args
                    .iter()
                    .map(|x| x.map_fields(f))
                    .collect::<Result<_, _>>()?,
                at: *at,
            },
            literal => literal.clone(),
        })
    }
}

impl CompareOp {
    /// The operator with its sides swapped (`1 < x` is `x > 1`).
    pub fn mirrored(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Lte => CompareOp::Gte,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Gte => CompareOp::Lte,
            same => same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(q: &str) -> Expr {
        match parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).body {
            Body::Event(f) => f.condition,
            other => panic!("{other:?}"),
        }
    }

    fn field(path: &str) -> Expr {
        Expr::Field(Field {
            path: path.into(),
            optional: false,
            at: Pos::default(),
        })
    }

    fn rejected(q: &str) -> String {
        match parse(q).and_then(|p| check(&p, q)) {
            Ok(()) => panic!("{q} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn precedence_follows_the_grammar() {
        // `not` binds tighter than `and`, predicates tighter than unary minus.
        assert_eq!(
            condition("any where not a and b"),
            Expr::And(
                Box::new(Expr::Not(Box::new(field("a")))),
                Box::new(field("b"))
            )
        );
        assert_eq!(
            condition("any where -x in (1)"),
            Expr::Neg(Box::new(Expr::In {
                value: Box::new(field("x")),
                list: vec![Expr::Int(1)],
                insensitive: false,
                negated: false,
            }))
        );
        let Expr::Compare(CompareOp::Eq, left, _) = condition("any where 1 + 2 * 3 == 7") else {
            panic!()
        };
        assert_eq!(
            *left,
            Expr::Arith(
                ArithOp::Add,
                Box::new(Expr::Int(1)),
                Box::new(Expr::Arith(
                    ArithOp::Mul,
                    Box::new(Expr::Int(2)),
                    Box::new(Expr::Int(3))
                ))
            )
        );
        // Keywords are lower-case only: `AND` is a field.
        assert_eq!(
            condition("any where AND == 1"),
            Expr::Compare(
                CompareOp::Eq,
                Box::new(field("AND")),
                Box::new(Expr::Int(1))
            )
        );
    }

    #[test]
    fn operators_and_literals_read_as_elasticsearch_reads_them() {
        let Expr::Match {
            kind,
            insensitive,
            patterns,
            ..
        } = condition(r#"process where process.name : ("a*.EXE", "b?")"#)
        else {
            panic!()
        };
        assert_eq!(
            (kind, insensitive, patterns.len()),
            (MatchKind::Wildcard, true, 2)
        );
        let Expr::In {
            insensitive,
            negated,
            ..
        } = condition(r#"any where x not in~ ("a", "b")"#)
        else {
            panic!()
        };
        assert!(insensitive && negated);
        // Escapes, raw strings (with up to two quotes swallowed), unicode, comments.
        assert_eq!(
            condition(r#"any where x == "a\"\\\t\u{41}""#),
            Expr::Compare(
                CompareOp::Eq,
                Box::new(field("x")),
                Box::new(Expr::Str("a\"\\\tA".into()))
            )
        );
        assert_eq!(
            condition(r##"any where x == """C:\temp\""""""##),
            Expr::Compare(
                CompareOp::Eq,
                Box::new(field("x")),
                Box::new(Expr::Str("C:\\temp\\\"\"".into()))
            )
        );
        assert_eq!(
            condition("any /* a /* nested */ b */ where `my field`.x == ?y // end"),
            Expr::Compare(
                CompareOp::Eq,
                Box::new(field("my field.x")),
                Box::new(Expr::Field(Field {
                    path: "y".into(),
                    optional: true,
                    at: Pos::default()
                }))
            )
        );
        let q = parse(r#""process" where true | head 5"#).expect("parse");
        assert_eq!(q.pipes, vec![Pipe::Head(5)]);
    }

    #[test]
    fn sequences_expand_runs_and_take_until_from_the_last_term() {
        let q =
            parse("sequence by host.id with maxspan=5m [a where true] with runs=3 [b where true]")
                .expect("parse");
        let Body::Sequence(s) = q.body else { panic!() };
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.maxspan.map(Span::millis), Some(300_000));
        // Elasticsearch counts `until` among the two queries a sequence needs.
        let q = parse("sequence [a where true] until [b where true]").expect("parse");
        let Body::Sequence(s) = q.body else { panic!() };
        assert_eq!((s.steps.len(), s.until.is_some()), (1, true));
        let q = parse("sequence with maxspan=1h [a where true] ![b where true] [c where true]")
            .expect("parse");
        let Body::Sequence(s) = q.body else { panic!() };
        assert!(s.steps[1].missing);
    }

    #[test]
    fn rejections_carry_elasticsearchs_messages_and_positions() {
        for (query, message) in [
            (
                "process where name=='hello world'",
                "line 1:22: Use double quotes [\"] to define string literals, not single quotes [']",
            ),
            (
                r#"process where name == ?"hello world""#,
                "line 1:24: Use triple double quotes [\"\"\"] to define unescaped string literals, not [?\"]",
            ),
            (
                "sequence with maxspan=1s by key [a where true] [b where true]",
                "line 1:2: Please specify sequence [by] before [with] not after",
            ),
            (
                "sequence with maxspan=30 [a where true] [b where true]",
                "line 1:24: No time unit specified, did you mean [s] as in [30s]?",
            ),
            (
                "sequence with maxspan=30sec [a where true] [b where true]",
                "line 1:24: Unrecognized time unit [sec] in [30sec], please specify one of [ms, s, m, h, d]",
            ),
            (
                "sequence [a where true] with runs=101 [b where true]",
                "line 1:36: A query cannot be repeated more than 100 times; found [101]",
            ),
            (
                "sequence [a where true] with fork=2 [b where true]",
                "line 1:31: Unrecognized option [fork], expecting [runs]",
            ),
            (
                "sequence [a where true]",
                "line 1:2: A sequence requires a minimum of 2 queries, found [1]",
            ),
            (
                "process where true | sort x",
                "line 1:23: Pipe [sort] is not supported",
            ),
            (
                "process where descendant of [file where true]",
                "line 1:15: Process relationships are not supported",
            ),
            (
                "process where a[0] == 1",
                "line 1:16: Array indexes are not supported",
            ),
            (
                r#"any where x == "\u{D}""#,
                "line 1:17: Unicode sequence should use [2-8] hex digits, [\\u{D}] has [1]",
            ),
            (r#"any where x == "\w""#, "line 1:16: token recognition error at: '\"\\w'"),
            ("any where x == 1;", "line 1:17: token recognition error at: ';'"),
            ("join [a where true] [b where true]", "line 1:1: JOIN command is not supported"),
            (
                "process where between(a, b) == \"x\"",
                "line 1:16: error building [between]: expects three or four arguments",
            ),
            ("process where wildcard(a, \"x*\")", "line 1:15: Unknown function [wildcard]"),
            (
                "process where length(host.name) == length(user.name) - 1",
                "line 1:36: Comparisons against fields are not (currently) supported; offender [length(user.name) - 1] in [==]",
            ),
        ] {
            assert_eq!(rejected(query), message, "{query}");
        }
    }

    #[test]
    fn function_names_are_case_insensitive_and_tilde_needs_a_form() {
        let q = r#"process where startsWith~(process.name, "x") and STRINGCONTAINS(a, "b")"#;
        assert!(parse(q).and_then(|p| check(&p, q)).is_ok());
        assert!(rejected("process where length~(a) == 1").contains("case-insensitivity"));
    }
}
