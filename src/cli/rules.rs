//! `quarry rules ...`: check, show, diff and import rule packs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use quarry::cond::analyzer::Analyzer;
use quarry::cond::fields::{FieldType, FieldTypes};
use quarry::cond::{Cond, FieldSel, GlobCase, Test};
use quarry::rules::dsl::Filter;
use quarry::rules::eql;
use quarry::rules::kql::{Literal, Query};
use quarry::rules::pack::{self, Compiled, LoadOptions, LoadedVersion, Pack, ParsedQuery, Status};

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load and compile every version; list problems with their location. Exit status 1 when
    /// anything failed to load or compile.
    Check {
        /// Rule packs: files or directories (default: the built-in seed pack).
        packs: Vec<PathBuf>,
        /// detection-rules' version.lock.json, for TOML rules without a version.
        #[arg(long)]
        version_lock: Option<PathBuf>,
    },
    /// Show one version: its normalised query, filters, fields, literals and their tokens.
    Show {
        /// RULE_ID[@VERSION] (a unique prefix of the id is enough; default: latest version).
        spec: String,
        #[arg(long = "rules")]
        packs: Vec<PathBuf>,
        #[arg(long)]
        version_lock: Option<PathBuf>,
    },
    /// What changed between two versions, as query leaves and filters added and removed.
    Diff {
        /// RULE_ID@A
        from: String,
        /// RULE_ID@B (or just @B for the same rule).
        to: String,
        #[arg(long = "rules")]
        packs: Vec<PathBuf>,
        #[arg(long)]
        version_lock: Option<PathBuf>,
    },
    /// Convert rules from any supported source into quarry pack files, one per rule.
    Import {
        /// Sources: Elastic TOML, Kibana/Fleet JSON, export NDJSON, JSON Lines of versions.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// Directory to write `<rule_id>.toml` files into.
        #[arg(long)]
        out: PathBuf,
        /// Import only these rules (ids or unique prefixes).
        #[arg(long = "rule")]
        rules: Vec<String>,
        #[arg(long)]
        version_lock: Option<PathBuf>,
    },
}

pub fn run(cmd: RulesCommand) -> i32 {
    match cmd {
        RulesCommand::Check {
            packs,
            version_lock,
        } => match load(&packs, version_lock) {
            Ok(pack) => check(&pack),
            Err(code) => code,
        },
        RulesCommand::Show {
            spec,
            packs,
            version_lock,
        } => match load(&packs, version_lock) {
            Ok(pack) => match pack.find(&spec) {
                Ok(v) => {
                    show(v);
                    0
                }
                Err(e) => {
                    eprintln!("quarry: {e}");
                    2
                }
            },
            Err(code) => code,
        },
        RulesCommand::Diff {
            from,
            to,
            packs,
            version_lock,
        } => match load(&packs, version_lock) {
            Ok(pack) => diff(&pack, &from, &to),
            Err(code) => code,
        },
        RulesCommand::Import {
            sources,
            out,
            rules,
            version_lock,
        } => match load(&sources, version_lock) {
            Ok(pack) => import(&pack, &out, &rules),
            Err(code) => code,
        },
    }
}

fn load(packs: &[PathBuf], version_lock: Option<PathBuf>) -> Result<Pack, i32> {
    // No pack named: the built-in seed pack.
    pack::load(packs, &LoadOptions { version_lock }).map_err(|e| {
        eprintln!("quarry: rule pack {e}");
        2
    })
}

fn check(pack: &Pack) -> i32 {
    let mut by_rule: std::collections::BTreeMap<&str, Vec<&LoadedVersion>> = Default::default();
    for v in &pack.versions {
        by_rule.entry(v.rule.rule_id.as_str()).or_default().push(v);
    }
    println!("{:<38} {:>8} {:>6}  name", "rule", "versions", "ready");
    for (id, versions) in &by_rule {
        let ready = versions.iter().filter(|v| v.status.is_ready()).count();
        let name = versions.last().map_or("", |v| v.rule.name.as_str());
        println!("{id:<38} {:>8} {ready:>6}  {name}", versions.len());
    }
    let mut failed = 0;
    let mut unsupported = 0;
    for v in &pack.versions {
        match &v.status {
            Status::Ready { .. } => {}
            Status::Unsupported { .. } | Status::NotReplayed { .. } | Status::EqlCannotRun(_) => {
                unsupported += 1;
                eprintln!(
                    "not run: {}: {}: {}",
                    v.rule.source,
                    v.rule.key(),
                    v.status.problem()
                );
            }
            Status::SyntaxError(e) => {
                failed += 1;
                eprintln!("error: {}: rule {}: KQL {e}", v.rule.source, v.rule.key());
                for line in e.caret().lines() {
                    eprintln!("    {line}");
                }
            }
            Status::EqlError(e) => {
                failed += 1;
                eprintln!("error: {}: rule {}: EQL {e}", v.rule.source, v.rule.key());
                for line in e.caret().lines() {
                    eprintln!("    {line}");
                }
            }
            Status::BadFilter(_) => {
                failed += 1;
                eprintln!(
                    "error: {}: rule {}: {}",
                    v.rule.source,
                    v.rule.key(),
                    v.status.problem()
                );
            }
        }
    }
    for p in &pack.problems {
        eprintln!("error: {p}");
    }
    let ready = pack.versions.iter().filter(|v| v.status.is_ready()).count();
    println!(
        "{} rules, {} versions: {ready} ready, {failed} failed, {unsupported} in languages not supported yet; {} file problems{}",
        by_rule.len(),
        pack.versions.len(),
        pack.problems.len(),
        if pack.duplicates > 0 {
            format!(", {} identical duplicates ignored", pack.duplicates)
        } else {
            String::new()
        }
    );
    i32::from(failed > 0 || !pack.problems.is_empty())
}

fn show(v: &LoadedVersion) {
    let r = &v.rule;
    println!("rule       {} @ {}", r.rule_id, r.version);
    println!("name       {}", r.name);
    println!("source     {}", r.source);
    println!("language   {} ({})", r.language, r.rule_type);
    println!("index      {}", r.index.join(", "));
    println!(
        "schedule   every {} from {}, max_signals {}, timestamp {}",
        r.interval,
        r.from,
        r.max_signals,
        r.timestamp_override.as_deref().unwrap_or("@timestamp")
    );
    println!("severity   {} (risk {})", r.severity, r.risk_score);
    let (query, filters) = match (v.status.compiled(), &v.status) {
        (
            Some(Compiled {
                query: ParsedQuery::Kql(query),
                filters,
                ..
            }),
            _,
        ) => (query, filters),
        (
            Some(
                compiled @ Compiled {
                    query: ParsedQuery::Eql(query),
                    ..
                },
            ),
            _,
        ) => return show_eql(query, compiled),
        (None, other) => {
            println!("status     cannot run: {}", other.problem());
            if let Some(q) = (r.language == "eql")
                .then(|| eql::parse(&r.query).ok())
                .flatten()
            {
                println!("query      {}", q.to_eql());
                let fields: Vec<String> = q
                    .fields()
                    .iter()
                    .map(|f| format!("{}{}", if f.optional { "?" } else { "" }, f.path))
                    .collect();
                println!("fields     {}", fields.join(", "));
            }
            println!("query (as written)\n{}", r.query);
            return;
        }
    };
    println!("query      {}", query.to_kql());
    for f in filters {
        println!("filter     {}", describe_filter(f));
    }
    let fields: BTreeSet<String> = query
        .leaves()
        .iter()
        .filter_map(|l| leaf_field(l))
        .chain(
            filters
                .iter()
                .flat_map(|f| f.query.fields().into_iter().map(str::to_string)),
        )
        .collect();
    println!(
        "fields     {}",
        fields.into_iter().collect::<Vec<_>>().join(", ")
    );
    println!("literals");
    let types = FieldTypes::default();
    let mut seen = BTreeSet::new();
    for leaf in query.leaves() {
        let Query::Is { field, value } = leaf else {
            continue;
        };
        let field_name = field.as_ref().map_or("*".to_string(), Literal::display);
        if !seen.insert((field_name.clone(), value.to_kql())) {
            continue;
        }
        let how = match types.type_of(&field_name) {
            FieldType::Text(_) => {
                let kind = if value.has_wildcard() {
                    "wildcard on tokens"
                } else if value.quoted {
                    "phrase"
                } else {
                    "any token"
                };
                let toks = |a: Analyzer| format!("{} {:?}", a.name(), a.tokens(&value.display()));
                format!(
                    "text, {kind}: {} | {}",
                    toks(Analyzer::Pattern),
                    toks(Analyzer::Standard)
                )
            }
            FieldType::Keyword if value.has_wildcard() => "keyword, case-sensitive wildcard".into(),
            FieldType::Keyword => "keyword, exact".into(),
            other => format!("{other:?}"),
        };
        println!("  {field_name}: {}  -> {how}", value.to_kql());
    }
}

/// An EQL version: its normalised query, the fields it reads, and how each test matches
/// (where every field it names is mapped; a dataset that lacks one decides at hunt time).
fn show_eql(query: &eql::Query, compiled: &Compiled) {
    println!("query      {}", query.to_eql());
    for f in &compiled.filters {
        println!("filter     {}", describe_filter(f));
    }
    let fields: Vec<String> = query
        .fields()
        .iter()
        .map(|f| format!("{}{}", if f.optional { "?" } else { "" }, f.path))
        .collect();
    println!("fields     {}", fields.join(", "));
    let print_tests = |cond: &Cond| {
        let mut seen = BTreeSet::new();
        for line in cond_leaves(cond) {
            if seen.insert(line.clone()) {
                println!("  {line}");
            }
        }
    };
    let Some(join) = &compiled.sequence else {
        println!("tests");
        print_tests(&compiled.cond);
        return;
    };
    if let Some(ms) = join.maxspan_ms {
        println!("maxspan    {ms} ms");
    }
    let steps = join
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("step {i}"), s));
    for (name, step) in steps.chain(join.until.iter().map(|u| ("until".to_string(), u))) {
        let keys: Vec<String> = step
            .keys
            .iter()
            .map(|k| format!("{}{}", if k.optional { "?" } else { "" }, k.path))
            .collect();
        println!(
            "{name}{} by [{}]",
            if step.missing { " (missing event)" } else { "" },
            keys.join(", ")
        );
        print_tests(&step.cond);
    }
}

/// Each predicate of a condition with its polarity and how it matches, in order.
fn cond_leaves(cond: &Cond) -> Vec<String> {
    fn walk(c: &Cond, negated: bool, out: &mut Vec<String>) {
        match c {
            Cond::Pred(p) => {
                let field = match &p.field {
                    FieldSel::Name(n) => n.clone(),
                    FieldSel::Pattern { written, .. } => written.clone(),
                    FieldSel::All => "*".into(),
                };
                out.push(format!(
                    "{}{field}{}  -> {}",
                    if negated { "not " } else { "" },
                    p.shown,
                    test_kind(&p.test)
                ));
            }
            Cond::Not(inner) => walk(inner, !negated, out),
            Cond::And(items) | Cond::Or(items) | Cond::AtLeast(_, items) => {
                items.iter().for_each(|i| walk(i, negated, out))
            }
            Cond::True | Cond::False => {}
        }
    }
    let mut out = Vec::new();
    walk(cond, false, &mut out);
    out
}

fn test_kind(test: &Test) -> &'static str {
    match test {
        Test::Exists => "exists",
        Test::Match { .. } => "match",
        Test::Glob {
            case: GlobCase::Sensitive,
            ..
        } => "wildcard, case-sensitive",
        Test::Glob { .. } => "wildcard, case-insensitive (ASCII)",
        Test::Term {
            case_insensitive: false,
            ..
        } => "term, case-sensitive",
        Test::Term { .. } => "term, case-insensitive (ASCII)",
        Test::Terms { .. } => "terms, case-sensitive",
        Test::Prefix {
            case_insensitive: false,
            ..
        } => "prefix, case-sensitive",
        Test::Prefix { .. } => "prefix, case-insensitive (ASCII)",
        Test::Range { .. } => "range",
        Test::Regexp(r) if r.case_insensitive => "Lucene regexp, case-insensitive (ASCII)",
        Test::Regexp(_) => "Lucene regexp",
        Test::Script(_) => "script, value by value",
    }
}

fn leaf_field(leaf: &Query) -> Option<String> {
    match leaf {
        Query::Is { field, .. } => field.as_ref().map(Literal::display),
        Query::Exists { field } | Query::Range { field, .. } => Some(field.display()),
        _ => None,
    }
}

fn describe_filter(f: &Filter) -> String {
    format!(
        "{}{}{:?}",
        if f.disabled { "(disabled) " } else { "" },
        if f.negate { "NOT " } else { "" },
        f.query
    )
}

/// Leaves with their polarity (`not` when under an odd number of negations).
fn signed_leaves(q: &Query, negated: bool, out: &mut BTreeSet<String>) {
    match q {
        Query::Or(items) | Query::And(items) => {
            items.iter().for_each(|i| signed_leaves(i, negated, out));
        }
        Query::Not(inner) => signed_leaves(inner, !negated, out),
        Query::Nested { path, query } => {
            let mut inner = BTreeSet::new();
            signed_leaves(query, negated, &mut inner);
            out.extend(
                inner
                    .into_iter()
                    .map(|l| format!("{}:{{ {l} }}", path.display())),
            );
        }
        leaf => {
            out.insert(format!(
                "{}{}",
                if negated { "not " } else { "" },
                leaf.to_kql()
            ));
        }
    }
}

fn diff(pack: &Pack, from: &str, to: &str) -> i32 {
    let a = match pack.find(from) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("quarry: {e}");
            return 2;
        }
    };
    let to = if to.starts_with('@') {
        format!("{}{to}", a.rule.rule_id)
    } else {
        to.to_string()
    };
    let b = match pack.find(&to) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("quarry: {e}");
            return 2;
        }
    };
    println!("{} -> {}", a.rule.key(), b.rule.key());
    let parts = |v: &LoadedVersion| -> Option<(BTreeSet<String>, BTreeSet<String>, String)> {
        match (v.status.compiled(), &v.status) {
            (
                Some(Compiled {
                    query: ParsedQuery::Kql(query),
                    filters,
                    ..
                }),
                _,
            ) => {
                let mut leaves = BTreeSet::new();
                signed_leaves(query, false, &mut leaves);
                let filters = filters.iter().map(describe_filter).collect();
                Some((leaves, filters, query.to_kql()))
            }
            (
                Some(
                    compiled @ Compiled {
                        query: ParsedQuery::Eql(query),
                        ..
                    },
                ),
                _,
            ) => {
                let leaves = cond_leaves(&compiled.cond).into_iter().collect();
                let filters = compiled.filters.iter().map(describe_filter).collect();
                Some((leaves, filters, query.to_eql()))
            }
            (None, other) => {
                println!("{} cannot run: {}", v.rule.key(), other.problem());
                None
            }
        }
    };
    let (Some((la, fa, qa)), Some((lb, fb, qb))) = (parts(a), parts(b)) else {
        return 1;
    };
    if qa == qb && fa == fb {
        println!("query and filters unchanged");
    }
    for l in lb.difference(&la) {
        println!("+ {l}");
    }
    for l in la.difference(&lb) {
        println!("- {l}");
    }
    for f in fb.difference(&fa) {
        println!("+ filter {f}");
    }
    for f in fa.difference(&fb) {
        println!("- filter {f}");
    }
    if qa != qb && la == lb {
        println!("~ same leaves, different structure:\n  {qa}\n  {qb}");
    }
    0
}

fn import(pack: &Pack, out: &Path, only: &[String]) -> i32 {
    for p in &pack.problems {
        eprintln!("error: {p}");
    }
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("quarry: {}: {e}", out.display());
        return 2;
    }
    let mut ids: Vec<&str> = pack
        .versions
        .iter()
        .map(|v| v.rule.rule_id.as_str())
        .collect();
    ids.dedup();
    let mut written = 0;
    for id in ids {
        if !only.is_empty() && !only.iter().any(|o| id.starts_with(o.as_str())) {
            continue;
        }
        let versions: Vec<&pack::RuleVersion> = pack.rule(id).iter().map(|v| &v.rule).collect();
        let text = match pack::to_pack_toml(&versions) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let path = out.join(format!("{id}.toml"));
        let tmp = out.join(format!(".{id}.toml.tmp"));
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            eprintln!("quarry: {}: {e}", path.display());
            return 2;
        }
        println!("{}: {} versions", path.display(), versions.len());
        written += 1;
    }
    println!("{written} rule files written to {}", out.display());
    i32::from(!pack.problems.is_empty())
}
