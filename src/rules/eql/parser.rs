//! A recursive-descent reading of `EqlBase.g4`, with the checks Elasticsearch's plan and
//! expression builders make while building the tree.

use super::lexer::{Tok, Token};
use super::{
    ArithOp, Body, CompareOp, EventFilter, Expr, Field, MatchKind, Pipe, Pos, Query, Sample,
    Sequence, Span, Step, SyntaxError, TimeUnit,
};

pub(super) struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// How deeply expressions nest here, bounded so that a deep query is refused rather
    /// than overflowing the stack (Elasticsearch refuses it when its own stack overflows).
    depth: usize,
}

/// Nesting deeper than this is refused, and `and`/`or` chains longer than `MAX_CHAIN`.
const MAX_DEPTH: usize = 200;
const MAX_CHAIN: usize = 5_000;

type Parsed<T> = Result<T, SyntaxError>;

/// `LogicalPlanBuilder`'s limits.
const MAX_RUNS: u64 = 100;
const MAX_SEQUENCE_QUERIES: usize = 256;
const MAX_SAMPLE_QUERIES: usize = 5;

impl<'a> Parser<'a> {
    pub(super) fn new(source: &'a str, tokens: Vec<Token>) -> Parser<'a> {
        Parser {
            source,
            tokens,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is(&self, sym: &str) -> bool {
        matches!(&self.peek().tok, Tok::Sym(s) if *s == sym)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if self.is(sym) {
            self.next();
            true
        } else {
            false
        }
    }

    fn error_at(&self, t: &Token, message: String) -> SyntaxError {
        SyntaxError::at(self.source, t.line, t.column, message)
    }

    /// An error raised by Elasticsearch's tree builders, which report one column further
    /// right than the parser does (their `Source` column is already 1-based and the
    /// exception adds one again).
    fn builder_error_at(&self, t: &Token, message: String) -> SyntaxError {
        SyntaxError::at(self.source, t.line, t.column + 1, message)
    }

    /// ANTLR's message for a token the grammar does not allow here.
    fn unexpected(&self, expecting: &str) -> SyntaxError {
        self.unexpected_at(self.peek(), expecting)
    }

    fn unexpected_at(&self, t: &Token, expecting: &str) -> SyntaxError {
        if let Tok::BadStr(message) = &t.tok {
            return self.builder_error_at(t, message.clone());
        }
        let found = match &t.tok {
            Tok::Eof => "<EOF>".to_string(),
            _ => format!("'{}'", t.text),
        };
        self.error_at(t, format!("mismatched input {found} expecting {expecting}"))
    }

    fn expect(&mut self, sym: &str) -> Parsed<()> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{sym}'")))
        }
    }

    pub(super) fn statement(mut self) -> Parsed<Query> {
        let start = self.peek().clone();
        let body = self.query()?;
        let mut pipes = Vec::new();
        while self.is("|") {
            pipes.push(self.pipe()?);
        }
        if matches!(body, Body::Sample(_)) && !pipes.is_empty() {
            return Err(self.builder_error_at(&start, "Samples do not support pipes yet".into()));
        }
        if !matches!(self.peek().tok, Tok::Eof) {
            return Err(self.unexpected("<EOF>"));
        }
        Ok(Query { body, pipes })
    }

    fn query(&mut self) -> Parsed<Body> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Sym("sequence") => {
                self.next();
                self.sequence().map(Body::Sequence)
            }
            Tok::Sym("sample") => {
                self.next();
                self.sample().map(Body::Sample)
            }
            Tok::Sym("join") => Err(self.error_at(&t, "JOIN command is not supported".into())),
            _ => self.event_filter().map(Body::Event),
        }
    }

    /// `| name args`: only `head` and `tail` run; the other pipes Elasticsearch knows are
    /// refused as not supported, any other name as unrecognised.
    fn pipe(&mut self) -> Parsed<Pipe> {
        self.expect("|")?;
        let t = self.next();
        let Tok::Ident(kind) = &t.tok else {
            return Err(self.unexpected_at(&t, "IDENTIFIER"));
        };
        let mut args = Vec::new();
        if !matches!(self.peek().tok, Tok::Eof | Tok::Sym("|")) {
            args.push(self.expression()?);
            while self.eat(",") {
                args.push(self.expression()?);
            }
        }
        let pipe: fn(u64) -> Pipe = match kind.as_str() {
            "head" => Pipe::Head,
            "tail" => Pipe::Tail,
            "count" | "filter" | "sort" | "unique" | "unique_count" => {
                return Err(self.builder_error_at(&t, format!("Pipe [{kind}] is not supported")));
            }
            other => {
                return Err(self.builder_error_at(&t, format!("Unrecognized pipe [{other}]")));
            }
        };
        match args.as_slice() {
            [Expr::Int(n)] if *n >= 0 => Ok(pipe(*n as u64)),
            [other] => Err(self.builder_error_at(
                &t,
                format!(
                    "Pipe [{kind}] expects a positive integer but found [{}]",
                    super::print::expr(other)
                ),
            )),
            _ => Err(self.builder_error_at(
                &t,
                format!(
                    "Pipe [{kind}] expects exactly one argument but found [{}]",
                    args.len()
                ),
            )),
        }
    }

    fn event_filter(&mut self) -> Parsed<EventFilter> {
        let t = self.next();
        let category = match &t.tok {
            Tok::Sym("any") => None,
            Tok::Ident(name) | Tok::Str(name) => Some(name.clone()),
            Tok::Quoted(_) => {
                return Err(
                    self.error_at(&t, format!("no viable alternative at input '{}'", t.text))
                )
            }
            Tok::BadStr(message) => return Err(self.builder_error_at(&t, message.clone())),
            _ => {
                return Err(self.unexpected_at(
                    &t,
                    "{'any', 'join', 'sample', 'sequence', STRING, IDENTIFIER, ESCAPED_IDENTIFIER}",
                ));
            }
        };
        self.expect("where")?;
        let condition = self.expression()?;
        Ok(EventFilter {
            category,
            condition,
        })
    }

    /// `sequence [by k, ...] [with maxspan=N]`, its steps and `until`, checked and expanded
    /// as `LogicalPlanBuilder.visitSequence` does: every step (the `until` one included)
    /// repeated `with runs=N` times, at least two in all, and the last one is `until`'s.
    fn sequence(&mut self) -> Parsed<Sequence> {
        let start = self.tokens[self.pos.saturating_sub(1)].clone();
        let mut by = Vec::new();
        let mut maxspan = None;
        if self.is("by") {
            by = self.join_keys()?;
        }
        if self.is("with") {
            maxspan = Some(self.maxspan()?);
            if self.is("by") {
                return Err(self.builder_error_at(
                    &start,
                    "Please specify sequence [by] before [with] not after".into(),
                ));
            }
        }
        let mut terms = Vec::new();
        while self.is("[") || self.is("![") {
            terms.push(self.sequence_term()?);
        }
        if terms.is_empty() {
            return Err(self.unexpected("{'[', '!['}"));
        }
        let until_term = if self.eat("until") {
            Some(self.sequence_term()?)
        } else {
            None
        };
        let has_until = until_term.is_some();
        let mut steps: Vec<Step> = Vec::new();
        for (at, step, runs) in terms.into_iter().chain(until_term) {
            self.same_key_count(&at, steps.first(), &step)?;
            for _ in 0..runs {
                steps.push(step.clone());
            }
            if steps.len() > MAX_SEQUENCE_QUERIES {
                return Err(self.builder_error_at(
                    &at,
                    format!(
                        "Sequence cannot contain more than {MAX_SEQUENCE_QUERIES} queries; found [{}]",
                        steps.len()
                    ),
                ));
            }
        }
        if steps.len() < 2 {
            return Err(self.builder_error_at(
                &start,
                format!(
                    "A sequence requires a minimum of 2 queries, found [{}]",
                    steps.len()
                ),
            ));
        }
        let until = if has_until { steps.pop() } else { None };
        if steps.iter().all(|s| s.missing) {
            return Err(self.builder_error_at(
                &start,
                "A sequence requires at least one positive event query; found none".into(),
            ));
        }
        if maxspan.is_none() && steps.iter().chain(until.iter()).any(|s| s.missing) {
            return Err(self.builder_error_at(
                &start,
                "[maxspan] is required for sequences with missing events queries".into(),
            ));
        }
        Ok(Sequence {
            by,
            maxspan,
            steps,
            until,
        })
    }

    /// One bracketed step of a sequence with its `by` keys and `with runs=N` (the token it
    /// starts at and its run count).
    fn sequence_term(&mut self) -> Parsed<(Token, Step, u64)> {
        let at = self.peek().clone();
        let step = self.subquery()?;
        let mut runs = 1;
        if self.is("with") {
            self.next();
            let key = self.next();
            if !matches!(&key.tok, Tok::Ident(_)) {
                return Err(self.unexpected_at(&key, "IDENTIFIER"));
            }
            self.expect("=")?;
            let n = self.next();
            let value = match &n.tok {
                Tok::Int(d) => Some(d.parse::<u64>().unwrap_or(u64::MAX)),
                // Elasticsearch reads only integer counts; a decimal leaves one run.
                Tok::Decimal(_) => None,
                _ => {
                    return Err(self.unexpected_at(&n, "{DECIMAL_VALUE, INTEGER_VALUE}"));
                }
            };
            if !matches!(&key.tok, Tok::Ident(k) if k == "runs") {
                return Err(self.builder_error_at(
                    &key,
                    format!("Unrecognized option [{}], expecting [runs]", key.text),
                ));
            }
            if let Some(v) = value {
                if v < 1 {
                    return Err(self.builder_error_at(
                        &n,
                        format!("A positive runs value is required; found [{v}]"),
                    ));
                }
                if v > MAX_RUNS {
                    return Err(self.builder_error_at(
                        &n,
                        format!(
                            "A query cannot be repeated more than {MAX_RUNS} times; found [{}]",
                            n.text
                        ),
                    ));
                }
                runs = v;
            }
        }
        Ok((at, step, runs))
    }

    /// `sample [by k, ...]` and its steps, checked as `visitSample` does.
    fn sample(&mut self) -> Parsed<Sample> {
        let start = self.tokens[self.pos.saturating_sub(1)].clone();
        let by = if self.is("by") {
            self.join_keys()?
        } else {
            Vec::new()
        };
        let mut steps: Vec<Step> = Vec::new();
        while self.is("[") || self.is("![") {
            let at = self.peek().clone();
            let step = self.subquery()?;
            self.same_key_count(&at, steps.first(), &step)?;
            let names: Vec<String> = by
                .iter()
                .chain(step.by.iter())
                .map(super::print::expr)
                .collect();
            let mut dups: Vec<&String> = names
                .iter()
                .enumerate()
                .filter(|(i, n)| names[..*i].contains(n))
                .map(|(_, n)| n)
                .collect();
            dups.dedup();
            if !dups.is_empty() {
                let list: Vec<&str> = dups.iter().map(|s| s.as_str()).collect();
                return Err(self.builder_error_at(
                    &at,
                    format!(
                        "Join keys must be used only once, found duplicates: [{}]",
                        list.join(",")
                    ),
                ));
            }
            if by.is_empty() && step.by.is_empty() {
                return Err(self.builder_error_at(
                    &at,
                    "A sample must have at least one join key, found none".into(),
                ));
            }
            steps.push(step);
            if steps.len() > MAX_SAMPLE_QUERIES {
                return Err(self.builder_error_at(
                    &at,
                    format!(
                        "A sample cannot contain more than {MAX_SAMPLE_QUERIES} queries, found [{}]",
                        steps.len()
                    ),
                ));
            }
        }
        if steps.len() < 2 {
            if steps.is_empty() {
                return Err(self.unexpected("{'[', '!['}"));
            }
            return Err(self.builder_error_at(
                &start,
                format!(
                    "A sample requires a minimum of 2 queries, found [{}]",
                    steps.len()
                ),
            ));
        }
        Ok(Sample { by, steps })
    }

    /// Every step of a sequence or sample names as many keys as the first one.
    fn same_key_count(&self, at: &Token, first: Option<&Step>, step: &Step) -> Parsed<()> {
        match first {
            Some(first) if first.by.len() != step.by.len() => Err(self.builder_error_at(
                at,
                format!(
                    "Inconsistent number of join keys specified; expected [{}] but found [{}]",
                    first.by.len(),
                    step.by.len()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `by k, ...`: each key a field (Elasticsearch's message names none).
    fn join_keys(&mut self) -> Parsed<Vec<Expr>> {
        self.expect("by")?;
        let mut keys = Vec::new();
        loop {
            let at = self.peek().clone();
            let key = self.expression()?;
            if !matches!(key, Expr::Field(_)) {
                return Err(self.builder_error_at(&at, "Unsupported join key ".into()));
            }
            keys.push(key);
            if !self.eat(",") {
                return Ok(keys);
            }
        }
    }

    /// `with maxspan=N<unit>`.
    fn maxspan(&mut self) -> Parsed<Span> {
        self.expect("with")?;
        self.expect("maxspan")?;
        self.expect("=")?;
        let n = self.next();
        let value = match &n.tok {
            Tok::Int(digits) => digits.parse::<u64>().map_err(|_| {
                self.builder_error_at(&n, format!("Number [{digits}] is too large"))
            })?,
            Tok::Decimal(_) => {
                return Err(self.builder_error_at(
                    &n,
                    format!(
                        "Decimal time interval [{}] not supported; please use an positive integer",
                        n.text
                    ),
                ))
            }
            _ => {
                return Err(self.unexpected_at(&n, "{DECIMAL_VALUE, INTEGER_VALUE}"));
            }
        };
        if value == 0 {
            return Err(self.builder_error_at(
                &n,
                format!("A positive maxspan value is required; found [{value}]"),
            ));
        }
        let unit = match &self.peek().tok {
            Tok::Ident(u) => {
                let u = u.clone();
                self.next();
                match u.as_str() {
                    "ms" => TimeUnit::Millis,
                    "s" => TimeUnit::Seconds,
                    "m" => TimeUnit::Minutes,
                    "h" => TimeUnit::Hours,
                    "d" => TimeUnit::Days,
                    _ => {
                        return Err(self.builder_error_at(
                            &n,
                            format!(
                                "Unrecognized time unit [{u}] in [{value}{u}], please specify one of [ms, s, m, h, d]"
                            ),
                        ))
                    }
                }
            }
            _ => {
                return Err(self.builder_error_at(
                    &n,
                    format!("No time unit specified, did you mean [s] as in [{value}s]?"),
                ))
            }
        };
        Ok(Span { value, unit })
    }

    /// `[filter]` or `![filter]`, then its `by` keys.
    fn subquery(&mut self) -> Parsed<Step> {
        let missing = if self.eat("![") {
            true
        } else {
            self.expect("[")?;
            false
        };
        let filter = self.event_filter()?;
        self.expect("]")?;
        let by = if self.is("by") {
            self.join_keys()?
        } else {
            Vec::new()
        };
        Ok(Step {
            filter,
            by,
            missing,
        })
    }

    pub(super) fn expression(&mut self) -> Parsed<Expr> {
        self.nested(Self::or)
    }

    /// Runs `inner` one level deeper.
    fn nested(&mut self, inner: fn(&mut Self) -> Parsed<Expr>) -> Parsed<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.peek().clone();
            return Err(self.error_at(
                &t,
                format!(
                    "EQL statement is too large, causing stack overflow when generating the parsing tree: [{}]",
                    self.source
                ),
            ));
        }
        let result = inner(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Parsed<Expr> {
        let mut left = self.and()?;
        let mut terms = 1;
        while self.eat("or") {
            terms = self.one_more(terms)?;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Parsed<Expr> {
        let mut left = self.not()?;
        let mut terms = 1;
        while self.eat("and") {
            terms = self.one_more(terms)?;
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Counts one more operand of an `and`/`or` or arithmetic chain, which the tree nests
    /// one level per operand: a chain longer than `MAX_CHAIN` is refused as too large.
    fn one_more(&self, terms: usize) -> Parsed<usize> {
        if terms >= MAX_CHAIN {
            let t = self.peek().clone();
            return Err(self.error_at(
                &t,
                format!(
                    "EQL statement is too large, causing stack overflow when generating the parsing tree: [{}]",
                    self.source
                ),
            ));
        }
        Ok(terms + 1)
    }

    fn not(&mut self) -> Parsed<Expr> {
        if self.eat("not") {
            return Ok(Expr::Not(Box::new(self.nested(Self::not)?)));
        }
        if let (Tok::Ident(_), Tok::Sym("of")) = (&self.peek().tok, self.peek_at(1)) {
            let t = self.peek().clone();
            return Err(self.error_at(&t, "Process relationships are not supported".into()));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed<Expr> {
        let left = self.additive()?;
        let op = match &self.peek().tok {
            Tok::Sym("==") => CompareOp::Eq,
            Tok::Sym("!=") => CompareOp::Neq,
            Tok::Sym("<") => CompareOp::Lt,
            Tok::Sym("<=") => CompareOp::Lte,
            Tok::Sym(">") => CompareOp::Gt,
            Tok::Sym(">=") => CompareOp::Gte,
            Tok::Sym("=") => {
                let t = self.peek().clone();
                return Err(self.error_at(
                    &t,
                    "mismatched input '=' expecting {<EOF>, 'and', 'or', '==', '!=', '<', '<=', '>', '>=', '|', ']'}; use [==] for equality".into(),
                ));
            }
            _ => return Ok(left),
        };
        self.next();
        let right = self.additive()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn additive(&mut self) -> Parsed<Expr> {
        self.arithmetic(
            &[("+", ArithOp::Add), ("-", ArithOp::Sub)],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> Parsed<Expr> {
        self.arithmetic(
            &[
                ("*", ArithOp::Mul),
                ("/", ArithOp::Div),
                ("%", ArithOp::Mod),
            ],
            Self::unary,
        )
    }

    /// A left-associative chain of `operand`s joined by the operators of one level.
    fn arithmetic(
        &mut self,
        ops: &[(&str, ArithOp)],
        operand: fn(&mut Self) -> Parsed<Expr>,
    ) -> Parsed<Expr> {
        let mut left = operand(self)?;
        let mut terms = 1;
        loop {
            let Some((_, op)) = ops.iter().find(|(sym, _)| self.is(sym)) else {
                return Ok(left);
            };
            terms = self.one_more(terms)?;
            self.next();
            let right = operand(self)?;
            left = Expr::Arith(*op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Parsed<Expr> {
        if self.eat("-") {
            let operand = self.nested(Self::unary)?;
            return Ok(match operand {
                Expr::Int(i) => Expr::Int(-i),
                Expr::Float(f) => Expr::Float(-f),
                other => Expr::Neg(Box::new(other)),
            });
        }
        if self.eat("+") {
            return self.nested(Self::unary);
        }
        let primary = self.primary()?;
        self.predicate(primary)
    }

    /// The optional predicate after a primary expression.
    fn predicate(&mut self, value: Expr) -> Parsed<Expr> {
        let negated = self.is("not") && matches!(self.peek_at(1), Tok::Sym("in" | "in~"));
        if negated {
            self.next();
        }
        let kind = match &self.peek().tok {
            Tok::Sym(s @ ("in" | "in~" | ":" | "like" | "like~" | "regex" | "regex~")) => *s,
            _ => return Ok(value),
        };
        self.next();
        if kind == "in" || kind == "in~" {
            self.expect("(")?;
            let mut list = vec![self.expression()?];
            while self.eat(",") {
                list.push(self.expression()?);
            }
            self.expect(")")?;
            return Ok(Expr::In {
                value: Box::new(value),
                list,
                insensitive: kind == "in~",
                negated,
            });
        }
        let patterns = if self.eat("(") {
            let mut list = vec![self.constant()?];
            while self.eat(",") {
                list.push(self.constant()?);
            }
            self.expect(")")?;
            list
        } else {
            vec![self.constant()?]
        };
        let (match_kind, insensitive) = match kind {
            ":" => (MatchKind::Wildcard, true),
            "like" => (MatchKind::Wildcard, false),
            "like~" => (MatchKind::Wildcard, true),
            "regex" => (MatchKind::Regex, false),
            _ => (MatchKind::Regex, true),
        };
        Ok(Expr::Match {
            value: Box::new(value),
            kind: match_kind,
            insensitive,
            patterns,
        })
    }

    fn constant(&mut self) -> Parsed<Expr> {
        let t = self.next();
        Ok(match &t.tok {
            Tok::Sym("null") => Expr::Null,
            Tok::Sym("true") => Expr::Bool(true),
            Tok::Sym("false") => Expr::Bool(false),
            Tok::Str(s) => Expr::Str(s.clone()),
            Tok::Int(_) | Tok::Decimal(_) => self.number(&t)?,
            Tok::Sym("-") if matches!(self.peek().tok, Tok::Int(_) | Tok::Decimal(_)) => {
                let n = self.next();
                match self.number(&n)? {
                    Expr::Int(i) => Expr::Int(-i),
                    Expr::Float(f) => Expr::Float(-f),
                    other => other,
                }
            }
            Tok::BadStr(message) => return Err(self.builder_error_at(&t, message.clone())),
            _ => {
                return Err(self.unexpected_at(
                    &t,
                    "{'null', 'false', 'true', DECIMAL_VALUE, INTEGER_VALUE, STRING}",
                ));
            }
        })
    }

    fn number(&self, t: &Token) -> Parsed<Expr> {
        match &t.tok {
            Tok::Int(digits) => match digits.parse::<i64>() {
                Ok(i) => Ok(Expr::Int(i)),
                Err(_) => digits
                    .parse::<f64>()
                    .map(Expr::Float)
                    .map_err(|_| self.error_at(t, format!("Number [{digits}] is too large"))),
            },
            Tok::Decimal(text) => text
                .parse::<f64>()
                .map(Expr::Float)
                .map_err(|_| self.error_at(t, format!("Cannot parse number [{text}]"))),
            _ => Err(self.error_at(t, "expecting a number".into())),
        }
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Sym("null" | "true" | "false") | Tok::Str(_) | Tok::Int(_) | Tok::Decimal(_) => {
                self.constant()
            }
            Tok::BadStr(message) => Err(self.builder_error_at(&t, message.clone())),
            Tok::Sym("(") => {
                self.next();
                let e = self.expression()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident(name) if matches!(self.peek_at(1), Tok::Sym("(")) => {
                self.next();
                self.call(name.clone(), false)
            }
            Tok::TildeIdent(name) => {
                self.next();
                if !self.is("(") {
                    return Err(self.unexpected("'('"));
                }
                self.call(name.clone(), true)
            }
            Tok::Sym("?") | Tok::Ident(_) | Tok::Quoted(_) => self.field().map(Expr::Field),
            _ => Err(self.unexpected(
                "{'false', 'null', 'true', '?', '(', '-', '+', DECIMAL_VALUE, INTEGER_VALUE, STRING, IDENTIFIER, ESCAPED_IDENTIFIER}",
            )),
        }
    }

    fn call(&mut self, name: String, insensitive: bool) -> Parsed<Expr> {
        let name_token = &self.tokens[self.pos.saturating_sub(1)];
        let at = Pos {
            line: name_token.line,
            column: name_token.column,
        };
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.is(")") {
            args.push(self.expression()?);
            while self.eat(",") {
                args.push(self.expression()?);
            }
        }
        self.expect(")")?;
        Ok(Expr::Call {
            name,
            insensitive,
            args,
            at,
        })
    }

    /// `?a.b`, `` `a b`.c ``.
    fn field(&mut self) -> Parsed<Field> {
        let at = Pos {
            line: self.peek().line,
            column: self.peek().column,
        };
        let optional = self.eat("?");
        let mut path = self.identifier()?;
        loop {
            if self.eat(".") {
                path.push('.');
                path.push_str(&self.identifier()?);
            } else if self.is("[") && matches!(self.peek_at(1), Tok::Int(_)) {
                let t = self.peek().clone();
                return Err(self.error_at(&t, "Array indexes are not supported".into()));
            } else {
                return Ok(Field { path, optional, at });
            }
        }
    }

    fn identifier(&mut self) -> Parsed<String> {
        let t = self.next();
        match &t.tok {
            Tok::Ident(s) | Tok::Quoted(s) => Ok(s.clone()),
            // Keywords are reserved; a field named like one must be backquoted.
            _ => Err(self.unexpected_at(&t, "{IDENTIFIER, ESCAPED_IDENTIFIER}")),
        }
    }
}
