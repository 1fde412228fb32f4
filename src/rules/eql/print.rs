//! The normalised text of a parsed query: one space between tokens, keywords lower-case,
//! strings double-quoted with escapes, every binary operation parenthesised where the tree
//! needs it; it parses back to the same tree.

use super::{ArithOp, Body, EventFilter, Expr, Field, MatchKind, Pipe, Query, Step};

impl Query {
    pub fn to_eql(&self) -> String {
        let mut out = match &self.body {
            Body::Event(f) => filter(f),
            Body::Sequence(s) => {
                let mut out = "sequence".to_string();
                if !s.by.is_empty() {
                    out.push_str(&format!(" by {}", list(&s.by)));
                }
                if let Some(span) = s.maxspan {
                    out.push_str(&format!(
                        " with maxspan={}{}",
                        span.value,
                        span.unit.suffix()
                    ));
                }
                for st in &s.steps {
                    out.push_str(&format!(" {}", step(st)));
                }
                if let Some(u) = &s.until {
                    out.push_str(&format!(" until {}", step(u)));
                }
                out
            }
            Body::Sample(s) => {
                let mut out = "sample".to_string();
                if !s.by.is_empty() {
                    out.push_str(&format!(" by {}", list(&s.by)));
                }
                for st in &s.steps {
                    out.push_str(&format!(" {}", step(st)));
                }
                out
            }
        };
        for p in &self.pipes {
            match p {
                Pipe::Head(n) => out.push_str(&format!(" | head {n}")),
                Pipe::Tail(n) => out.push_str(&format!(" | tail {n}")),
            }
        }
        out
    }
}

fn filter(f: &EventFilter) -> String {
    let category = match &f.category {
        None => "any".to_string(),
        Some(c) if is_plain_identifier(c) => c.clone(),
        Some(c) => string(c),
    };
    format!("{category} where {}", expr(&f.condition))
}

fn step(s: &Step) -> String {
    let mut out = format!(
        "{}{}]",
        if s.missing { "![" } else { "[" },
        filter(&s.filter)
    );
    if !s.by.is_empty() {
        out.push_str(&format!(" by {}", list(&s.by)));
    }
    out
}

fn list(items: &[Expr]) -> String {
    items.iter().map(expr).collect::<Vec<_>>().join(", ")
}

/// An expression with only the parentheses the grammar needs to read it back as the same
/// tree (a right operand of the same operator keeps its own).
pub(super) fn expr(e: &Expr) -> String {
    at_least(e, 0)
}

/// Binding strength, loosest first: `or`, `and`, `not`, comparison, `+ -`, `* / %`, unary
/// minus, predicate, primary.
fn level(e: &Expr) -> u8 {
    match e {
        Expr::Or(..) => 1,
        Expr::And(..) => 2,
        Expr::Not(_) => 3,
        Expr::Compare(..) => 4,
        Expr::Arith(ArithOp::Add | ArithOp::Sub, ..) => 5,
        Expr::Arith(..) => 6,
        Expr::Neg(_) => 7,
        Expr::Int(i) if *i < 0 => 7,
        Expr::Float(f) if *f < 0.0 => 7,
        Expr::In { .. } | Expr::Match { .. } => 8,
        _ => 9,
    }
}

fn at_least(e: &Expr, min: u8) -> String {
    let text = bare(e);
    if level(e) < min {
        format!("({text})")
    } else {
        text
    }
}

fn bare(e: &Expr) -> String {
    match e {
        Expr::Null => "null".into(),
        Expr::Bool(b) => b.to_string(),
        Expr::Int(i) => i.to_string(),
        Expr::Float(f) => format!("{f:?}"),
        Expr::Str(s) => string(s),
        Expr::Field(f) => field(f),
        Expr::Not(a) => format!("not {}", at_least(a, 3)),
        Expr::And(a, b) => format!("{} and {}", at_least(a, 2), at_least(b, 3)),
        Expr::Or(a, b) => format!("{} or {}", at_least(a, 1), at_least(b, 2)),
        Expr::Compare(op, a, b) => {
            format!("{} {} {}", at_least(a, 5), op.symbol(), at_least(b, 5))
        }
        Expr::Arith(op, a, b) => {
            let own = level(e);
            format!(
                "{} {} {}",
                at_least(a, own),
                op.symbol(),
                at_least(b, own + 1)
            )
        }
        Expr::Neg(a) => format!("-{}", at_least(a, 8)),
        Expr::In {
            value,
            list: items,
            insensitive,
            negated,
        } => format!(
            "{}{} {} ({})",
            at_least(value, 9),
            if *negated { " not" } else { "" },
            if *insensitive { "in~" } else { "in" },
            list(items)
        ),
        Expr::Match {
            value,
            kind,
            insensitive,
            patterns,
        } => {
            let op = match (kind, insensitive) {
                (MatchKind::Wildcard, true) => ":",
                (MatchKind::Wildcard, false) => "like",
                (MatchKind::Regex, true) => "regex~",
                (MatchKind::Regex, false) => "regex",
            };
            let patterns = match patterns.as_slice() {
                [one] => at_least(one, 9),
                many => format!("({})", list(many)),
            };
            format!("{} {op} {patterns}", at_least(value, 9))
        }
        Expr::Call {
            name,
            insensitive,
            args,
            ..
        } => format!(
            "{name}{}({})",
            if *insensitive { "~" } else { "" },
            list(args)
        ),
    }
}

fn field(f: &Field) -> String {
    let parts: Vec<String> = f
        .path
        .split('.')
        .map(|part| {
            if is_plain_identifier(part) {
                part.to_string()
            } else {
                format!("`{}`", part.replace('`', "``"))
            }
        })
        .collect();
    format!("{}{}", if f.optional { "?" } else { "" }, parts.join("."))
}

const KEYWORDS: &[&str] = &[
    "and", "any", "by", "false", "in", "join", "like", "maxspan", "not", "null", "of", "or",
    "regex", "sample", "sequence", "true", "until", "where", "with",
];

fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '@');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !KEYWORDS.contains(&s)
}

fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
