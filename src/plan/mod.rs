//! One plan for every selected rule version: leaves and boolean programs.
//!
//! Every rule version arrives as a [`Cond`] (the language-neutral condition its rule language
//! lowered to), a boolean combination of predicates that hold for a document when they hold
//! for one of a field's values (DESIGN §5: an array matches when an element does; `exists`
//! when a value is indexed). [`Plan::compile`] resolves each predicate's fields against the
//! dataset's columns (patterns expanded, free text over every column) and turns it, for each
//! column, into a [`Leaf`]: one column and one test of a single value, specialised by the
//! column's mapped type. Equal leaves of different versions are one leaf, evaluated once per
//! row group. A version is then an [`Expr`] over leaf ids. Text leaves on analyzed columns are
//! grouped per column into a [`text::TextMatcher`]; every other leaf tests a value as the
//! reference evaluator does ([`crate::cond::eval::value_matches`]), once per distinct value
//! where the data is dictionary-encoded. Nothing here reads files or knows a rule language.

pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::cond::analyzer::Analyzer;
use crate::cond::eval;
use crate::cond::fields::{FieldType, FieldTypes, INDEX, KEYWORD_IGNORE_ABOVE};
use crate::cond::glob::{self, WildToken};
use crate::cond::{self, Cond, FieldSel, GlobCase, MappedCond, Pred, TextQuery};
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
    /// A full-text test on analyzed text: evaluated by the column's [`text::TextMatcher`].
    Text {
        analyzer: Analyzer,
        query: TextQuery,
    },
    /// A glob on a keyword column, ASCII-lowercased when `case_insensitive`, as
    /// [`glob::wildcard_matches`] does.
    Wildcard {
        pattern: Vec<WildToken>,
        case_insensitive: bool,
    },
    /// Any other test, of a value of a column of type `ty`, as the reference evaluator makes it.
    Value { test: cond::Test, ty: FieldType },
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
            .get_or_insert_with(|| value.to_ascii_lowercase().chars().collect())
    }
}

/// One column and one test of a value of it.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub column: String,
    pub test: Test,
}

impl Leaf {
    /// Whether one value of the column passes the test (for [`Test::Text`] too, through the
    /// reference analyzer: the matcher's fallback and its oracle).
    pub fn matches_value(&self, value: &str) -> bool {
        self.matches_forms(&mut ValueForms::new(value))
    }

    /// [`Leaf::matches_value`] on a value whose forms other leaves may already have made.
    pub fn matches_forms(&self, forms: &mut ValueForms) -> bool {
        let value = forms.value;
        match &self.test {
            Test::Wildcard {
                pattern,
                case_insensitive,
            } => {
                forms.chars().len() <= KEYWORD_IGNORE_ABOVE
                    && match case_insensitive {
                        true => glob::glob(pattern, forms.lower_chars()),
                        false => glob::glob(pattern, forms.chars()),
                    }
            }
            Test::KeywordEq(want) => value == want && value.chars().count() <= KEYWORD_IGNORE_ABOVE,
            Test::Text { analyzer, query } => {
                eval::text_matches(*analyzer, &[value.to_string()], query)
            }
            Test::Value { test, ty } => eval::value_matches(test, *ty, value),
        }
    }
}

/// Why a version runs: as itself, or for a sibling of the hunt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A selected rule version: its hits go into the hit table.
    #[default]
    Version,
    /// The version with a proposed exception (`query and not exception`): a backtest's
    /// what-if.
    WhatIf,
    /// The query that finds the labelled events: a backtest's ground truth.
    GroundTruth,
}

/// What the plan runs for one version: its rule, its lowered condition and its role.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub rule: &'a RuleVersion,
    pub cond: &'a Cond,
    pub role: Role,
    /// Where the condition depends on the dataset's fields: what is planned instead of
    /// `cond`, resolved against the dataset's columns.
    pub mapped: Option<&'a dyn MappedCond>,
    /// For a step of a sequence: which one; its hits are that sequence's events to join,
    /// not hits of their own.
    pub step: Option<StepOf>,
}

/// The step of a sequence a target runs: an index into the caller's sequences, and which
/// part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOf {
    pub sequence: usize,
    pub role: crate::sequence::Role,
}

/// One version in the plan.
#[derive(Debug, Clone)]
pub struct VersionPlan {
    pub rule: RuleVersion,
    pub role: Role,
    /// The query and the filters, ANDed.
    pub expr: Expr,
    /// Leaves outside any negation, in the order the version names them, each with its
    /// label as the version writes it (`field: value`): what a hit says it matched.
    pub positive: Vec<(usize, Arc<str>)>,
    /// Why it can never match this dataset, when that is known before scanning.
    pub cannot_fire: Option<String>,
    /// For a step of a sequence: which one.
    pub step: Option<StepOf>,
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

impl Plan {
    /// Compiles `targets` against `columns`; `indices` are the index names the dataset
    /// stands for (a version whose `index` patterns cover none of them cannot fire).
    pub fn compile(
        targets: &[Target],
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
            labels: HashMap::new(),
        };
        let versions = targets
            .iter()
            .map(|t| builder.version(t, indices))
            .collect();
        Plan {
            leaves: builder.leaves,
            versions,
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
    /// Labels of the leaves of the version being compiled, as it writes them.
    labels: HashMap<usize, String>,
}

impl Builder<'_> {
    fn version(&mut self, target: &Target, indices: &[String]) -> VersionPlan {
        self.missing.clear();
        self.labels.clear();
        let resolved = target.mapped.map(|m| {
            let columns = self.columns;
            m.resolve(&|f: &str| columns.usable(f), self.types)
        });
        let cond = match &resolved {
            None => target.cond,
            Some(Ok(cond)) => cond,
            Some(Err(why)) => {
                return VersionPlan {
                    rule: target.rule.clone(),
                    role: target.role,
                    expr: Expr::False,
                    positive: Vec::new(),
                    cannot_fire: Some(why.clone()),
                    step: target.step,
                }
            }
        };
        let expr = simplify(self.cond(cond));
        let mut ids = Vec::new();
        positive_leaves(&expr, false, &mut ids);
        let positive = ids
            .into_iter()
            .map(|id| {
                (
                    id,
                    self.labels
                        .get(&id)
                        .map_or("".into(), |l| l.as_str().into()),
                )
            })
            .collect();
        let expr = match self.index_restriction(target.rule, indices) {
            Some(only) => simplify(Expr::And(vec![expr, only])),
            None => expr,
        };
        let cannot_fire = self.cannot_fire(target.rule, &expr, indices);
        VersionPlan {
            rule: target.rule.clone(),
            role: target.role,
            expr: if cannot_fire.is_some() {
                Expr::False
            } else {
                expr
            },
            positive,
            cannot_fire,
            step: target.step,
        }
    }

    /// Where a version's index patterns cover some of the dataset's indices but not all,
    /// the test that keeps it to the events of those (on the `_index` column; a dataset
    /// written before events carried it is searched whole, as one index).
    fn index_restriction(&mut self, rule: &RuleVersion, indices: &[String]) -> Option<Expr> {
        let covered: Vec<String> = indices
            .iter()
            .filter(|i| glob::index_matches(&rule.index, i))
            .cloned()
            .collect();
        if covered.is_empty() || covered.len() == indices.len() || !self.columns.usable(INDEX) {
            return None;
        }
        let shown = format!(": ({})", covered.join(" or "));
        Some(self.pred(&Pred {
            field: FieldSel::Name(INDEX.to_string()),
            test: cond::Test::Terms { values: covered },
            shown,
        }))
    }

    fn cannot_fire(&self, rule: &RuleVersion, expr: &Expr, indices: &[String]) -> Option<String> {
        if !indices.iter().any(|i| glob::index_matches(&rule.index, i)) {
            return Some(format!(
                "its index patterns ({}) cover none of this dataset's indices ({})",
                rule.index.join(", "),
                indices.join(", ")
            ));
        }
        if *expr != Expr::False {
            return None;
        }
        if self.missing.is_empty() {
            return Some("its query can never match".to_string());
        }
        let one = self.missing.len() == 1;
        let names: Vec<String> = self.missing.iter().map(|f| format!("`{f}`")).collect();
        Some(format!(
            "field{} {} {} absent or always null in this dataset",
            if one { "" } else { "s" },
            names.join(", "),
            if one { "is" } else { "are" }
        ))
    }

    fn cond(&mut self, c: &Cond) -> Expr {
        match c {
            Cond::True => Expr::True,
            Cond::False => Expr::False,
            Cond::Pred(p) => self.pred(p),
            Cond::Not(inner) => not(self.cond(inner)),
            Cond::And(items) => Expr::And(items.iter().map(|i| self.cond(i)).collect()),
            Cond::Or(items) => Expr::Or(items.iter().map(|i| self.cond(i)).collect()),
            Cond::AtLeast(n, items) => {
                Expr::AtLeast(*n, items.iter().map(|i| self.cond(i)).collect())
            }
        }
    }

    /// A predicate on every usable column it names.
    fn pred(&mut self, p: &Pred) -> Expr {
        let columns = self.columns_named(&p.field);
        Expr::Or(
            columns
                .iter()
                .map(|c| {
                    let id = self.leaf(c, leaf_test(&p.test, self.types.type_of(c)));
                    self.labels
                        .entry(id)
                        .or_insert_with(|| format!("{c}{}", p.shown));
                    Expr::Leaf(id)
                })
                .collect(),
        )
    }

    fn leaf(&mut self, column: &str, test: Test) -> usize {
        let key = format!("{column}\u{0}{test:?}");
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.leaves.len();
        self.leaves.push(Leaf {
            column: column.to_string(),
            test,
        });
        self.ids.insert(key, id);
        id
    }

    /// The usable columns a field selection refers to; named fields the dataset lacks are
    /// noted as missing.
    fn columns_named(&mut self, field: &FieldSel) -> Vec<String> {
        let usable = |c: &&String| self.columns.usable(c);
        match field {
            FieldSel::All => self.columns.names.iter().filter(usable).cloned().collect(),
            FieldSel::Pattern { pattern, written } => {
                let found: Vec<String> = self
                    .columns
                    .names
                    .iter()
                    .filter(usable)
                    .filter(|c| glob::glob_str(pattern, c))
                    .cloned()
                    .collect();
                if found.is_empty() {
                    self.missing.insert(written.clone());
                }
                found
            }
            FieldSel::Name(name) => {
                if self.columns.usable(name) {
                    vec![name.clone()]
                } else {
                    self.missing.insert(name.clone());
                    Vec::new()
                }
            }
        }
    }
}

/// The fastest leaf test that means `test` on a column of type `ty`.
fn leaf_test(test: &cond::Test, ty: FieldType) -> Test {
    match (ty, test) {
        (FieldType::Text(analyzer), test) => match eval::text_query(test) {
            Some(query) => Test::Text { analyzer, query },
            None => Test::Value {
                test: test.clone(),
                ty,
            },
        },
        (FieldType::Keyword, cond::Test::Match { text, .. }) => Test::KeywordEq(text.clone()),
        (FieldType::Keyword, cond::Test::Glob { pattern, case }) => Test::Wildcard {
            pattern: pattern.clone(),
            case_insensitive: *case == GlobCase::Insensitive,
        },
        _ => Test::Value {
            test: test.clone(),
            ty,
        },
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
            grouping: None,
            source: String::new(),
        }
    }

    /// The queries are KQL only because it is the shortest way to write a condition.
    fn plan_of(rules: &[RuleVersion], cols: &Columns, index: &str) -> Plan {
        plan_over(rules, cols, &[index.to_string()])
    }

    fn plan_over(rules: &[RuleVersion], cols: &Columns, indices: &[String]) -> Plan {
        let conds: Vec<Cond> = rules
            .iter()
            .map(|r| kql::lower(&kql::parse(&r.query).expect("kql")))
            .collect();
        let targets: Vec<Target> = rules
            .iter()
            .zip(&conds)
            .map(|(rule, cond)| Target {
                rule,
                cond,
                role: Role::Version,
                mapped: None,
                step: None,
            })
            .collect();
        Plan::compile(&targets, cols, FieldTypes::default(), indices)
    }

    fn plan(queries: &[&str], cols: &Columns) -> Plan {
        let rules: Vec<RuleVersion> = queries.iter().map(|q| rule(q)).collect();
        plan_of(&rules, cols, "logs-windows.x-default")
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
    fn a_shared_leaf_is_labelled_as_each_version_writes_it() {
        let cols = columns(&["event.category"]);
        let p = plan(
            &["event.category: process", "event.category: \"process\""],
            &cols,
        );
        assert_eq!(p.leaves.len(), 1, "{:?}", p.leaves);
        assert_eq!(&*p.versions[0].positive[0].1, "event.category: process");
        assert_eq!(&*p.versions[1].positive[0].1, "event.category: \"process\"");
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
        let p = plan_of(&[r], &cols, "logs-windows.powershell_operational-default");
        assert!(p.versions[0]
            .cannot_fire
            .as_deref()
            .is_some_and(|w| w.contains("index patterns")));
    }

    #[test]
    fn a_version_covering_some_indices_searches_only_their_events() {
        let indices = [
            "logs-windows.sysmon_operational-default".to_string(),
            "logs-system.security-default".to_string(),
        ];
        let some = RuleVersion {
            index: vec!["logs-windows.*".into()],
            ..rule("event.code: 1")
        };
        let all = RuleVersion {
            index: vec!["logs-*".into()],
            ..rule("event.code: 1")
        };
        let p = plan_over(
            &[some.clone(), all.clone()],
            &columns(&["event.code", INDEX]),
            &indices,
        );
        let restricted = &p.versions[0].expr;
        assert!(
            matches!(restricted, Expr::And(items) if items.len() == 2),
            "{restricted:?}"
        );
        let index_leaves: Vec<&Leaf> = p.leaves.iter().filter(|l| l.column == INDEX).collect();
        assert!(index_leaves
            .iter()
            .any(|l| l.matches_value("logs-windows.sysmon_operational-default")));
        assert!(!index_leaves
            .iter()
            .any(|l| l.matches_value("logs-system.security-default")));
        assert!(
            matches!(p.versions[1].expr, Expr::Leaf(_)),
            "all indices: no test"
        );
        assert_eq!(
            p.versions[0].positive.len(),
            1,
            "the index test is not a matched term"
        );
        // A dataset written before events carried their index is searched whole.
        let old = plan_over(&[some], &columns(&["event.code"]), &indices);
        assert!(matches!(old.versions[0].expr, Expr::Leaf(_)));
    }
}
