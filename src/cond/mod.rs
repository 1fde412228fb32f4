//! Conditions: the one language every rule language lowers to, and its semantics.
//!
//! A rule version, whatever it is written in (KQL, Query-DSL filters; EQL next), compiles to
//! a [`Cond`]: `and`/`or`/`not`/at-least-n over [`Pred`]s, each a [`Test`] of the values of one
//! field (or of every field a pattern names). The tests are the leaf queries Elasticsearch
//! runs for those languages (`match`, `match_phrase`, `wildcard`, `term`, `terms`, `prefix`,
//! `range`, `exists`), so a test means what Elasticsearch makes of that query on the field's
//! mapped type: [`fields`] is the catalog of those types, [`analyzer`] tokenizes text as the
//! index does, [`glob`] matches wildcard patterns, and [`eval`] is the reference evaluator
//! (slow, a direct reading of DESIGN §5) that the fast engine is tested against.
//!
//! Every predicate holds for a document when it holds for one value of the field (an array
//! matches when an element does), which is what lets the planner test values one at a time.
//! Nothing here knows a rule language's syntax, Arrow or Parquet.

pub mod analyzer;
pub mod eval;
pub mod fields;
pub mod glob;
pub mod regexp;
pub mod script;

use std::sync::Arc;

use glob::WildToken;

/// A condition over one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    True,
    False,
    Pred(Pred),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// At least `n` of the items (a DSL `bool` with `minimum_should_match`).
    AtLeast(usize, Vec<Cond>),
}

impl Cond {
    /// `a and not b`: a what-if's query with its proposed exception.
    pub fn and_not(self, exception: Cond) -> Cond {
        Cond::And(vec![self, Cond::Not(Box::new(exception))])
    }

    /// Every predicate, in the order the rule writes them.
    pub fn preds(&self) -> Vec<&Pred> {
        let mut out = Vec::new();
        self.visit(&mut |p| out.push(p));
        out
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Pred)) {
        match self {
            Cond::Pred(p) => f(p),
            Cond::Not(inner) => inner.visit(f),
            Cond::And(items) | Cond::Or(items) | Cond::AtLeast(_, items) => {
                items.iter().for_each(|i| i.visit(f))
            }
            Cond::True | Cond::False => {}
        }
    }
}

/// A condition that depends on what the searched indices map (EQL, whose fields must be
/// mapped and whose optional `?fields` read as null where they are not): resolved against
/// each dataset's fields before it is planned.
pub trait MappedCond: std::fmt::Debug + Send + Sync {
    /// The condition where `is_mapped` says which fields exist, or why it cannot run.
    fn resolve(
        &self,
        is_mapped: &dyn Fn(&str) -> bool,
        types: fields::FieldTypes,
    ) -> Result<Cond, String>;
}

/// A mapped condition `and not` a fixed one (a what-if's exception).
#[derive(Debug)]
pub struct AndNot {
    pub base: Arc<dyn MappedCond>,
    pub exception: Cond,
}

impl MappedCond for AndNot {
    fn resolve(
        &self,
        is_mapped: &dyn Fn(&str) -> bool,
        types: fields::FieldTypes,
    ) -> Result<Cond, String> {
        let base = self.base.resolve(is_mapped, types)?;
        Ok(base.and_not(self.exception.clone()))
    }
}

/// A test of the values of the fields `field` selects.
#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    pub field: FieldSel,
    pub test: Test,
    /// How reports name the predicate after the name of the field it is tested on
    /// (`: NetShareEnum`, ` >= 4.5`, ` (wildcard C:\*)`), as its rule language writes it.
    pub shown: String,
}

/// The fields a predicate is tested on; it holds when it holds on one of them.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSel {
    /// One field, by its full name.
    Name(String),
    /// Every field whose name the pattern matches; `written` is how the rule names it.
    Pattern {
        pattern: Vec<WildToken>,
        written: String,
    },
    /// Every field (KQL free text).
    All,
}

/// How a [`Test::Glob`] treats case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobCase {
    /// As written, on every field type.
    Sensitive,
    /// The pattern is lowercased (already, by the lowering) and so is each value, ASCII
    /// letters only, as Elasticsearch's `case_insensitive` automata fold them.
    Insensitive,
    /// `query_string` with analyzed wildcards (KQL): the pattern is lowercased on analyzed
    /// text and kept as written on keywords.
    LowerOnText,
}

/// What a predicate tests of one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The field has an indexed value.
    Exists,
    /// `match` (any token of `text`) or `match_phrase` (all of them, in a row) on analyzed
    /// text; equality with the whole value on keywords; a parsed number, date, address or
    /// CIDR block, or boolean on fields of those types.
    Match { text: String, phrase: bool },
    /// A glob: the whole value of a keyword, each token of analyzed text; nothing on
    /// numbers, dates, addresses and booleans (Elasticsearch refuses wildcards on them).
    Glob {
        pattern: Vec<WildToken>,
        case: GlobCase,
    },
    /// `term`: the value exactly (each token of analyzed text); on numbers, dates, addresses
    /// and booleans a parsed equality, as [`Test::Match`].
    Term {
        value: String,
        case_insensitive: bool,
    },
    /// `terms`: any of the values, as [`Test::Term`].
    Terms { values: Vec<String> },
    /// `prefix`: the value (each token of analyzed text) starts with it.
    Prefix {
        value: String,
        case_insensitive: bool,
    },
    /// `range` with one bound, compared as the field's type orders values.
    Range { op: RangeOp, bound: String },
    /// `regexp`: a Lucene regular expression matched against the whole value (each token of
    /// analyzed text); nothing on numbers, dates, addresses and booleans.
    Regexp(regexp::LuceneRegex),
    /// A filter script over the field's value (numbers as numbers, booleans as booleans),
    /// run for each indexed value; the lowering adds the run with no value (the field
    /// missing) where that one holds.
    Script(Arc<script::Script>),
}

/// The bound of a one-sided range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RangeOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl RangeOp {
    pub fn symbol(self) -> &'static str {
        match self {
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
        }
    }
}

/// A test of analyzed text, as the fast text matcher and the reference both take it.
#[derive(Debug, Clone, PartialEq)]
pub enum TextQuery {
    /// Any token of the text, or all in a row (`phrase`).
    Match { text: String, phrase: bool },
    /// A glob over each token; the pattern is in the analyzer's case already.
    Glob(Vec<WildToken>),
}
