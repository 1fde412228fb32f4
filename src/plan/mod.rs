//! One plan for every selected rule version: leaves and boolean programs.
//!
//! Every KQL query and Query-DSL filter is a boolean combination of predicates on single
//! fields, and every such predicate holds for a document when it holds for one of the field's
//! values (DESIGN §5: an array matches when an element does; `exists` when a value is
//! indexed). [`Plan::compile`] resolves each version's field names against the dataset's
//! columns (wildcards expanded, free text over every column, nested paths prefixed) and turns
//! each predicate into a [`Leaf`]: one column and one test of a single value. Equal leaves of
//! different versions are one leaf, evaluated once per row group. A version is then an
//! [`Expr`] over leaf ids. Text leaves on analyzed columns are grouped per column into a
//! [`text::TextMatcher`]; every other leaf tests a value with the reference semantics
//! ([`crate::rules::eval`]), once per distinct value where the data is dictionary-encoded.

pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::rules::analyzer::Analyzer;
use crate::rules::dsl::{self, DslQuery, Filter, WildToken};
use crate::rules::eval::{self, Document};
use crate::rules::fields::{FieldType, FieldTypes, KEYWORD_IGNORE_ABOVE};
use crate::rules::kql::{Chunk, Literal, Query, RangeOp};
use crate::rules::pack::RuleVersion;

/// A boolean program over leaf ids.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    True,
    False,
    Leaf(usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// At least `n` of the items (a DSL `bool` with `minimum_should_match`).
    AtLeast(usize, Vec<Expr>),
}

/// What a leaf tests in one value of its column.
#[derive(Debug, Clone)]
pub enum Test {
    /// A keyword equal to the text (and no longer than `ignore_above`).
    KeywordEq(String),
    /// `field: value` on analyzed text: evaluated by the column's [`text::TextMatcher`].
    Text { analyzer: Analyzer, value: Literal },
    /// Any other KQL leaf (`Is`, `Exists` or `Range` on the column), tested as the reference
    /// evaluator tests it.
    Kql(Query),
    /// A KQL value with `*` or a Query-DSL `wildcard` on a keyword column, its pattern parsed
    /// once (lowercased when `case_insensitive`, as [`dsl::wildcard_matches`] does).
    Wildcard {
        pattern: Vec<WildToken>,
        case_insensitive: bool,
    },
    /// Any other single-field Query-DSL query, tested as the reference evaluator tests it.
    Dsl(DslQuery),
}

/// One value in the forms tests compare it in, each made on first use and shared by all
/// the leaves of a column.
pub struct ValueForms<'v> {
    value: &'v str,
    chars: Option<Vec<char>>,
    lower_chars: Option<Vec<char>>,
}

impl<'v> ValueForms<'v> {
    pub fn new(value: &'v str) -> ValueForms<'v> {
        ValueForms {
            value,
            chars: None,
            lower_chars: None,
        }
    }

    fn chars(&mut self) -> &[char] {
        self.chars
            .get_or_insert_with(|| self.value.chars().collect())
    }

    fn lower_chars(&mut self) -> &[char] {
        let value = self.value;
        self.lower_chars
            .get_or_insert_with(|| value.to_lowercase().chars().collect())
    }
}

/// One column and one test of a value of it.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub column: String,
    pub test: Test,
    /// How reports name it: `field: value` as KQL would write it.
    pub label: String,
}

impl Leaf {
    /// Whether one value of the column passes the test (for [`Test::Text`] too, through the
    /// reference analyzer: the matcher's fallback and its oracle).
    pub fn matches_value(&self, value: &str, types: &FieldTypes) -> bool {
        self.matches_forms(&mut ValueForms::new(value), types)
    }

    /// [`Leaf::matches_value`] on a value whose forms other leaves may already have made.
    pub fn matches_forms(&self, forms: &mut ValueForms, types: &FieldTypes) -> bool {
        let value = forms.value;
        match &self.test {
            Test::Wildcard {
                pattern,
                case_insensitive,
            } => {
                forms.chars().len() <= KEYWORD_IGNORE_ABOVE
                    && match case_insensitive {
                        true => dsl::glob(pattern, forms.lower_chars()),
                        false => dsl::glob(pattern, forms.chars()),
                    }
            }
            Test::KeywordEq(want) => value == want && value.chars().count() <= KEYWORD_IGNORE_ABOVE,
            Test::Text { analyzer, value: v } => {
                eval::text_matches(*analyzer, &[value.to_string()], v)
            }
            Test::Kql(query) => {
                let doc = Document::new().with(&self.column, value);
                eval::matches_query(query, &doc, types)
            }
            Test::Dsl(query) => {
                let doc = Document::new().with(&self.column, value);
                let filter = Filter {
                    query: query.clone(),
                    negate: false,
                    disabled: false,
                };
                eval::matches_filter(&filter, &doc, types)
            }
        }
    }
}

/// One version in the plan.
#[derive(Debug, Clone)]
pub struct VersionPlan {
    pub rule: RuleVersion,
    /// The query and the filters, ANDed.
    pub expr: Expr,
    /// Leaves outside any negation: the ones a hit can be said to have matched.
    pub positive: Vec<usize>,
    /// Why it can never match this dataset, when that is known before scanning.
    pub cannot_fire: Option<String>,
}

/// Every selected version of every rule compiled against one dataset's columns.
#[derive(Debug, Clone)]
pub struct Plan {
    pub leaves: Vec<Leaf>,
    pub versions: Vec<VersionPlan>,
    pub types: FieldTypes,
}

/// The columns of a dataset as the planner needs them.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// Every column name of any part.
    pub names: BTreeSet<String>,
    /// Columns present in the schema whose every value is null.
    pub all_null: BTreeSet<String>,
}

impl Columns {
    fn usable(&self, name: &str) -> bool {
        self.names.contains(name) && !self.all_null.contains(name)
    }
}

/// The version to compile, already parsed: query and filters.
pub struct Compiled<'a> {
    pub rule: &'a RuleVersion,
    pub query: &'a Query,
    pub filters: &'a [Filter],
}

impl Plan {
    /// Compiles `versions` against `columns`; `indices` are the index names the dataset
    /// stands for (a version whose `index` patterns cover none of them cannot fire).
    pub fn compile(
        versions: &[Compiled],
        columns: &Columns,
        types: FieldTypes,
        indices: &[String],
    ) -> Plan {
        let mut builder = Builder {
            columns,
            types,
            leaves: Vec::new(),
            ids: HashMap::new(),
            missing: BTreeSet::new(),
        };
        let mut plans = Vec::new();
        for v in versions {
            builder.missing.clear();
            let mut parts = vec![builder.query(v.query, "")];
            for f in v.filters.iter().filter(|f| !f.disabled) {
                let e = builder.dsl(&f.query);
                parts.push(if f.negate { not(e) } else { e });
            }
            let expr = simplify(Expr::And(parts));
            let mut positive = Vec::new();
            positive_leaves(&expr, false, &mut positive);
            let covered = indices
                .iter()
                .any(|i| eval::index_matches(&v.rule.index, i));
            let cannot_fire = if !covered {
                Some(format!(
                    "its index patterns ({}) cover none of this dataset's indices ({})",
                    v.rule.index.join(", "),
                    indices.join(", ")
                ))
            } else if expr == Expr::False {
                Some(match builder.missing.is_empty() {
                    true => "its query can never match".to_string(),
                    false => format!(
                        "field{} {} {} absent or always null in this dataset",
                        if builder.missing.len() == 1 { "" } else { "s" },
                        builder
                            .missing
                            .iter()
                            .map(|f| format!("`{f}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if builder.missing.len() == 1 {
                            "is"
                        } else {
                            "are"
                        }
                    ),
                })
            } else {
                None
            };
            plans.push(VersionPlan {
                rule: v.rule.clone(),
                expr: if cannot_fire.is_some() {
                    Expr::False
                } else {
                    expr
                },
                positive,
                cannot_fire,
            });
        }
        Plan {
            leaves: builder.leaves,
            versions: plans,
            types,
        }
    }

    /// The leaves some runnable version uses, by column.
    pub fn leaves_by_column(&self) -> BTreeMap<&str, Vec<usize>> {
        let mut used = BTreeSet::new();
        for v in &self.versions {
            expr_leaves(&v.expr, &mut used);
        }
        let mut by_column: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for id in used {
            by_column
                .entry(self.leaves[id].column.as_str())
                .or_default()
                .push(id);
        }
        by_column
    }
}

struct Builder<'a> {
    columns: &'a Columns,
    types: FieldTypes,
    leaves: Vec<Leaf>,
    ids: HashMap<String, usize>,
    /// Named fields of the version being compiled that the dataset lacks.
    missing: BTreeSet<String>,
}

impl Builder<'_> {
    fn leaf(&mut self, column: &str, test: Test, label: String) -> Expr {
        let key = format!("{column}\u{0}{test:?}");
        if let Some(&id) = self.ids.get(&key) {
            return Expr::Leaf(id);
        }
        let id = self.leaves.len();
        self.leaves.push(Leaf {
            column: column.to_string(),
            test,
            label,
        });
        self.ids.insert(key, id);
        Expr::Leaf(id)
    }

    /// The usable columns a KQL field name refers to (wildcards against every column).
    fn columns_named(&mut self, field: &Literal, prefix: &str) -> Vec<String> {
        if field.has_wildcard() {
            let mut pattern: Vec<WildToken> = prefix.chars().map(WildToken::Char).collect();
            for c in &field.chunks {
                match c {
                    Chunk::Star => pattern.push(WildToken::AnyRun),
                    Chunk::Text(t) => pattern.extend(t.chars().map(WildToken::Char)),
                }
            }
            let found: Vec<String> = self
                .columns
                .names
                .iter()
                .filter(|c| self.columns.usable(c))
                .filter(|c| dsl::glob(&pattern, &c.chars().collect::<Vec<_>>()))
                .cloned()
                .collect();
            if found.is_empty() {
                self.missing.insert(format!("{prefix}{}", field.display()));
            }
            found
        } else {
            let name = format!("{prefix}{}", field.display());
            if self.columns.usable(&name) {
                vec![name]
            } else {
                self.missing.insert(name);
                Vec::new()
            }
        }
    }

    fn query(&mut self, q: &Query, prefix: &str) -> Expr {
        match q {
            Query::MatchAll => Expr::True,
            Query::Or(items) => Expr::Or(items.iter().map(|i| self.query(i, prefix)).collect()),
            Query::And(items) => Expr::And(items.iter().map(|i| self.query(i, prefix)).collect()),
            Query::Not(inner) => not(self.query(inner, prefix)),
            Query::Is { field: None, value } => {
                let all: Vec<String> = self
                    .columns
                    .names
                    .iter()
                    .filter(|c| self.columns.usable(c))
                    .cloned()
                    .collect();
                Expr::Or(all.iter().map(|c| self.is(c, value)).collect())
            }
            Query::Is {
                field: Some(field),
                value,
            } => {
                let cols = self.columns_named(field, prefix);
                Expr::Or(cols.iter().map(|c| self.is(c, value)).collect())
            }
            Query::Exists { field } => {
                let cols = self.columns_named(field, prefix);
                Expr::Or(
                    cols.iter()
                        .map(|c| {
                            let query = Query::Exists {
                                field: Literal::text(c, false),
                            };
                            self.leaf(c, Test::Kql(query), format!("{c}: *"))
                        })
                        .collect(),
                )
            }
            Query::Range { field, op, value } => {
                let cols = self.columns_named(field, prefix);
                Expr::Or(cols.iter().map(|c| self.range(c, *op, value)).collect())
            }
            Query::Nested { path, query } => {
                let inner = format!("{prefix}{}.", path.display());
                self.query(query, &inner)
            }
        }
    }

    fn is(&mut self, column: &str, value: &Literal) -> Expr {
        let label = format!("{column}: {}", value.to_kql());
        match self.types.type_of(column) {
            FieldType::Text(analyzer) => self.leaf(
                column,
                Test::Text {
                    analyzer,
                    value: value.clone(),
                },
                label,
            ),
            FieldType::Keyword if !value.has_wildcard() => {
                self.leaf(column, Test::KeywordEq(value.display()), label)
            }
            // As the reference tests it: the literal as a case-sensitive pattern.
            FieldType::Keyword => self.leaf(
                column,
                Test::Wildcard {
                    pattern: eval::literal_tokens(value, false),
                    case_insensitive: false,
                },
                label,
            ),
            _ => {
                let query = Query::Is {
                    field: Some(Literal::text(column, false)),
                    value: value.clone(),
                };
                self.leaf(column, Test::Kql(query), label)
            }
        }
    }

    fn range(&mut self, column: &str, op: RangeOp, value: &Literal) -> Expr {
        let label = format!("{column} {} {}", op.symbol(), value.to_kql());
        let query = Query::Range {
            field: Literal::text(column, false),
            op,
            value: value.clone(),
        };
        self.leaf(column, Test::Kql(query), label)
    }

    fn dsl(&mut self, q: &DslQuery) -> Expr {
        match q {
            DslQuery::MatchAll => Expr::True,
            DslQuery::Bool {
                must,
                should,
                must_not,
                minimum_should_match,
            } => {
                let needed = dsl::should_needed(must.len(), should.len(), *minimum_should_match);
                let mut all: Vec<Expr> = must.iter().map(|m| self.dsl(m)).collect();
                all.extend(must_not.iter().map(|m| not(self.dsl(m))));
                let should: Vec<Expr> = should.iter().map(|s| self.dsl(s)).collect();
                all.push(Expr::AtLeast(needed, should));
                Expr::And(all)
            }
            single => {
                let field = single.fields().first().map(|f| f.to_string());
                let Some(field) = field else {
                    return Expr::False;
                };
                if !self.columns.usable(&field) {
                    self.missing.insert(field);
                    return Expr::False;
                }
                let label = format!("{field} ({})", dsl_kind(single));
                let test = match single {
                    DslQuery::Wildcard {
                        pattern,
                        case_insensitive,
                        ..
                    } if !matches!(self.types.type_of(&field), FieldType::Text(_)) => {
                        let pattern = match case_insensitive {
                            true => pattern.to_lowercase(),
                            false => pattern.clone(),
                        };
                        Test::Wildcard {
                            pattern: dsl::parse_wildcard(&pattern),
                            case_insensitive: *case_insensitive,
                        }
                    }
                    other => Test::Dsl(other.clone()),
                };
                self.leaf(&field, test, label)
            }
        }
    }
}

fn dsl_kind(q: &DslQuery) -> String {
    match q {
        DslQuery::Wildcard { pattern, .. } => format!("wildcard {pattern}"),
        DslQuery::Prefix { prefix, .. } => format!("prefix {prefix}"),
        DslQuery::Exists { .. } => "exists".to_string(),
        DslQuery::Term { value, .. } => format!("term {value}"),
        DslQuery::Terms { values, .. } => format!("terms {}", values.join(",")),
        DslQuery::Match { query, phrase, .. } => match phrase {
            true => format!("match_phrase {query}"),
            false => format!("match {query}"),
        },
        DslQuery::Bool { .. } => "bool".to_string(),
        DslQuery::MatchAll => "match_all".to_string(),
    }
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

/// Folds constants: leaves on absent columns are `False`, so whole branches drop out.
pub fn simplify(e: Expr) -> Expr {
    match e {
        Expr::Not(inner) => match simplify(*inner) {
            Expr::True => Expr::False,
            Expr::False => Expr::True,
            Expr::Not(x) => *x,
            other => not(other),
        },
        Expr::And(items) => {
            let mut out = Vec::new();
            for i in items.into_iter().map(simplify) {
                match i {
                    Expr::False => return Expr::False,
                    Expr::True => {}
                    Expr::And(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Expr::True,
                1 => out.pop().unwrap_or(Expr::True),
                _ => Expr::And(out),
            }
        }
        Expr::Or(items) => {
            let mut out = Vec::new();
            for i in items.into_iter().map(simplify) {
                match i {
                    Expr::True => return Expr::True,
                    Expr::False => {}
                    Expr::Or(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Expr::False,
                1 => out.pop().unwrap_or(Expr::False),
                _ => Expr::Or(out),
            }
        }
        Expr::AtLeast(n, items) => {
            let mut needed = n;
            let mut out = Vec::new();
            for i in items.into_iter().map(simplify) {
                match i {
                    Expr::True => needed = needed.saturating_sub(1),
                    Expr::False => {}
                    other => out.push(other),
                }
            }
            if needed == 0 {
                Expr::True
            } else if needed > out.len() {
                Expr::False
            } else if needed == 1 {
                simplify(Expr::Or(out))
            } else if needed == out.len() {
                simplify(Expr::And(out))
            } else {
                Expr::AtLeast(needed, out)
            }
        }
        other => other,
    }
}

/// The leaves of `e` outside any negation, in the order the version names them (not by
/// id: ids depend on the other versions compiled with it, and a hit's `matched` must not).
fn positive_leaves(e: &Expr, negated: bool, out: &mut Vec<usize>) {
    match e {
        Expr::Leaf(id) if !negated && !out.contains(id) => out.push(*id),
        Expr::Not(inner) => positive_leaves(inner, !negated, out),
        Expr::And(items) | Expr::Or(items) | Expr::AtLeast(_, items) => {
            for i in items {
                positive_leaves(i, negated, out);
            }
        }
        _ => {}
    }
}

/// Every leaf id in `e`.
pub fn expr_leaves(e: &Expr, out: &mut BTreeSet<usize>) {
    match e {
        Expr::Leaf(id) => {
            out.insert(*id);
        }
        Expr::Not(inner) => expr_leaves(inner, out),
        Expr::And(items) | Expr::Or(items) | Expr::AtLeast(_, items) => {
            for i in items {
                expr_leaves(i, out);
            }
        }
        Expr::True | Expr::False => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kql;

    fn columns(names: &[&str]) -> Columns {
        Columns {
            names: names.iter().map(|s| s.to_string()).collect(),
            all_null: BTreeSet::new(),
        }
    }

    fn rule(query: &str) -> RuleVersion {
        RuleVersion {
            rule_id: "r".into(),
            version: 1,
            name: "n".into(),
            rule_type: "query".into(),
            language: "kuery".into(),
            query: query.into(),
            filters: serde_json::json!([]),
            index: vec!["logs-*".into()],
            interval: "5m".into(),
            from: "now-6m".into(),
            max_signals: 100,
            timestamp_override: None,
            severity: "low".into(),
            risk_score: 21.0,
            source: String::new(),
        }
    }

    fn plan(queries: &[&str], cols: &Columns) -> Plan {
        let rules: Vec<RuleVersion> = queries.iter().map(|q| rule(q)).collect();
        let parsed: Vec<Query> = queries
            .iter()
            .map(|q| kql::parse(q).expect("kql"))
            .collect();
        let compiled: Vec<Compiled> = rules
            .iter()
            .zip(&parsed)
            .map(|(rule, query)| Compiled {
                rule,
                query,
                filters: &[],
            })
            .collect();
        Plan::compile(
            &compiled,
            cols,
            FieldTypes::default(),
            &["logs-windows.x-default".to_string()],
        )
    }

    #[test]
    fn equal_leaves_of_different_versions_are_one_leaf() {
        let cols = columns(&["event.code", "powershell.file.script_block_text"]);
        let p = plan(
            &[
                "event.code: 4104 and powershell.file.script_block_text: (a or b)",
                "event.code: 4104 and powershell.file.script_block_text: (b or c)",
            ],
            &cols,
        );
        assert_eq!(p.leaves.len(), 4, "{:?}", p.leaves);
    }

    #[test]
    fn absent_fields_fold_away_and_make_a_version_unable_to_fire() {
        let cols = columns(&["event.code"]);
        let p = plan(
            &[
                "event.code: 4104 and not nope: x",
                "event.code: 4104 and nope: x",
                "x: 1",
            ],
            &cols,
        );
        assert!(p.versions[0].cannot_fire.is_none());
        assert!(matches!(p.versions[0].expr, Expr::Leaf(_)));
        let why = p.versions[1].cannot_fire.as_deref().expect("cannot fire");
        assert!(why.contains("`nope`"), "{why}");
        assert!(p.versions[2].cannot_fire.is_some());
    }

    #[test]
    fn wildcard_field_names_and_free_text_expand_over_columns() {
        let cols = columns(&["a.x", "a.y", "b"]);
        let p = plan(&["a.*: v", "v"], &cols);
        assert!(matches!(&p.versions[0].expr, Expr::Or(items) if items.len() == 2));
        assert!(matches!(&p.versions[1].expr, Expr::Or(items) if items.len() == 3));
    }

    #[test]
    fn index_patterns_that_exclude_the_dataset_are_reported() {
        let cols = columns(&["event.code"]);
        let r = RuleVersion {
            index: vec!["winlogbeat-*".into()],
            ..rule("event.code: 1")
        };
        let q = kql::parse("event.code: 1").expect("kql");
        let p = Plan::compile(
            &[Compiled {
                rule: &r,
                query: &q,
                filters: &[],
            }],
            &cols,
            FieldTypes::default(),
            &["logs-windows.powershell_operational-default".to_string()],
        );
        assert!(p.versions[0]
            .cannot_fire
            .as_deref()
            .is_some_and(|w| w.contains("index patterns")));
    }
}
