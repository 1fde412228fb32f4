//! Rule packs: every version of every rule, read from Elastic's formats and quarry's own.
//!
//! [`load`] walks files and directories and reads, by content:
//! * quarry pack files (`.toml` with `[[versions]]`): one rule, many versions, human-editable;
//! * Elastic detection-rules TOML (`[metadata]`, `[rule]`, `[[rule.filters]]`), versioned from
//!   a `version.lock.json` ([`LoadOptions::version_lock`]) or the file's own `version`;
//! * Kibana/Fleet prebuilt rule JSON (`<rule_id>_<version>.json`, with `attributes`), plain rule
//!   JSON objects or arrays, Kibana rule-export NDJSON, and JSON Lines of rule versions such as
//!   `posh-kuery-history.jsonl`.
//!
//! Every version is compiled ([`Status`]): its KQL parsed, its filters read. A version that does
//! not compile, or whose language quarry does not run yet, stays in the pack with the reason, so
//! reports can say why it has no hits; the rest of the pack loads. File-level problems
//! (malformed TOML or JSON, a duplicated version with different content) are collected in
//! [`Pack::problems`] with file and line.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use std::sync::Arc;

use super::dsl::{self, Filter};
use super::eql::{self, lower};
use super::grouping::{self, Grouping};
use super::kql::{self, Query, SyntaxError};
use crate::cond::fields::FieldTypes;
use crate::cond::{Cond, FieldSel, MappedCond, Pred, Test};
use crate::sequence::{Join, JoinStep, KeyField};

/// Kibana's defaults for rules that do not set them.
pub const DEFAULT_INTERVAL: &str = "5m";
pub const DEFAULT_FROM: &str = "now-6m";
pub const DEFAULT_MAX_SIGNALS: u32 = 100;

/// One version of one rule, as written in its source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleVersion {
    pub rule_id: String,
    pub version: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub rule_type: String,
    pub language: String,
    pub query: String,
    /// The Query-DSL filters as JSON (an array, possibly empty).
    pub filters: Value,
    pub index: Vec<String>,
    pub interval: String,
    pub from: String,
    pub max_signals: u32,
    pub timestamp_override: Option<String>,
    pub severity: String,
    pub risk_score: f64,
    /// A threshold or new-terms rule's grouping, which its alerts follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grouping: Option<Grouping>,
    /// Where it was read: `file` or `file:line`.
    #[serde(skip)]
    pub source: String,
}

impl RuleVersion {
    /// `rule_id@version`, the way reports name a version.
    pub fn key(&self) -> String {
        format!("{}@{}", self.rule_id, self.version)
    }

    /// What an alert of the version is: its rule type (`query`, `threshold`, `new_terms`,
    /// ...), `eql` for an EQL query rule.
    pub fn alert_type(&self) -> &str {
        match (self.rule_type.as_str(), self.language.as_str()) {
            ("query" | "eql", "eql") => "eql",
            (t, _) => t,
        }
    }

    /// Whether two versions say the same thing (the source location aside).
    fn same_content(&self, other: &RuleVersion) -> bool {
        RuleVersion {
            source: String::new(),
            ..self.clone()
        } == RuleVersion {
            source: String::new(),
            ..other.clone()
        }
    }
}

/// A version ready to run: its query as its language parsed it (what `rules show` and `diff`
/// print), its filters, and the condition both lower to, which is what runs.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub query: ParsedQuery,
    pub filters: Vec<Filter>,
    /// The condition; for EQL, as it reads where every field it names is mapped.
    pub cond: Cond,
    /// For EQL: the condition resolved against what a dataset maps, which is what runs.
    pub mapped: Option<Arc<dyn MappedCond>>,
    /// For an EQL sequence: its steps, which run instead of `cond` (then `False`), and how
    /// their events join.
    pub sequence: Option<Arc<Join>>,
}

/// A query in the syntax tree of its language.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedQuery {
    Kql(Query),
    Eql(Box<eql::Query>),
}

impl Compiled {
    /// The KQL tree, for a version written in KQL.
    pub fn kql(&self) -> Option<&Query> {
        match &self.query {
            ParsedQuery::Kql(q) => Some(q),
            ParsedQuery::Eql(_) => None,
        }
    }
}

/// Whether a version can run, and if not, why.
#[derive(Debug, Clone)]
pub enum Status {
    /// Shared by the versions of a pack with the same language, type, query and filters.
    Ready(Arc<Compiled>),
    /// EQL, ES|QL, machine learning, ...: listed, not run.
    Unsupported { language: String },
    /// An indicator-match rule: its alerts are the query's documents that match an entry of
    /// its threat indices, which a dataset of events does not hold, so running the query alone
    /// would report documents Elasticsearch never alerts on. Listed, not run.
    NotReplayed { rule_type: String },
    /// The EQL query does not parse, or Elasticsearch refuses it before searching (an unknown
    /// function, a comparison of two fields): it could not have run.
    EqlError(crate::rules::eql::SyntaxError),
    /// The EQL query parses, but cannot run whatever the data: Elasticsearch refuses it when
    /// it plans the search (a text field without a keyword sub-field, a regular expression
    /// Lucene rejects), or it needs what quarry does not run yet (sequences, samples, scripts
    /// over two fields), as the reason says.
    EqlCannotRun(String),
    /// The query does not parse under Kibana's grammar: Kibana could not have run it.
    SyntaxError(SyntaxError),
    /// A filter quarry cannot read.
    BadFilter(dsl::DslError),
}

impl Status {
    pub fn is_ready(&self) -> bool {
        matches!(self, Status::Ready(_))
    }

    /// The compiled version, when it can run.
    pub fn compiled(&self) -> Option<&Compiled> {
        match self {
            Status::Ready(c) => Some(c),
            _ => None,
        }
    }

    /// One line saying why a version cannot run (empty when it can).
    pub fn problem(&self) -> String {
        match self {
            Status::Ready(_) => String::new(),
            Status::Unsupported { language } => {
                format!("language `{language}` is not supported yet (quarry runs kuery and eql)")
            }
            Status::NotReplayed { rule_type } => format!(
                "rule type `{rule_type}` is not run: its alerts join the threat indices it \
                 names, which the dataset does not hold"
            ),
            Status::EqlError(e) => format!("EQL: {e}"),
            Status::EqlCannotRun(why) => format!("EQL: cannot run: {why}"),
            Status::SyntaxError(e) => format!("KQL syntax error at {e}"),
            Status::BadFilter(e) => format!("filter: {e}"),
        }
    }
}

/// A rule version and its compiled form.
#[derive(Debug, Clone)]
pub struct LoadedVersion {
    pub rule: RuleVersion,
    pub status: Status,
}

/// A problem with a file or with a version that was not added.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `file` or `file:line`.
    pub location: String,
    /// `rule_id@version` when known.
    pub rule: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            Some(r) => write!(f, "{}: rule {r}: {}", self.location, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// Every loaded version, ordered by rule id then version, and the problems met.
#[derive(Debug, Clone, Default)]
pub struct Pack {
    pub versions: Vec<LoadedVersion>,
    pub problems: Vec<Problem>,
    /// Identical copies of a version met more than once (kept once).
    pub duplicates: usize,
}

impl Pack {
    /// The versions of one rule, oldest first.
    pub fn rule(&self, rule_id: &str) -> Vec<&LoadedVersion> {
        self.versions
            .iter()
            .filter(|v| v.rule.rule_id == rule_id)
            .collect()
    }

    /// A version by `rule_id@version` (a unique rule-id prefix is enough; no version means the
    /// latest).
    pub fn find(&self, spec: &str) -> Result<&LoadedVersion, SelectionError> {
        let (id, version) = match spec.rsplit_once('@') {
            Some((id, v)) => (
                id,
                Some(
                    v.parse::<u32>()
                        .map_err(|_| SelectionError::BadVersionIn(spec.to_string()))?,
                ),
            ),
            None => (spec, None),
        };
        let mut ids: Vec<&str> = self
            .versions
            .iter()
            .map(|v| v.rule.rule_id.as_str())
            .filter(|r| r.starts_with(id))
            .collect();
        ids.dedup();
        let rule_id = match ids.as_slice() {
            [one] => *one,
            [] => return Err(SelectionError::NoRule(id.to_string())),
            _ => {
                return Err(SelectionError::Ambiguous {
                    prefix: id.to_string(),
                    rules: ids.len(),
                })
            }
        };
        let versions = self.rule(rule_id);
        match version {
            None => versions
                .last()
                .copied()
                .ok_or(SelectionError::NoRule(id.to_string())),
            Some(v) => versions.into_iter().find(|l| l.rule.version == v).ok_or(
                SelectionError::NoVersion {
                    rule_id: rule_id.to_string(),
                    version: v,
                },
            ),
        }
    }
}

/// Options of [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// detection-rules' `version.lock.json`, giving TOML rules their version.
    pub version_lock: Option<PathBuf>,
}

/// An error that stops loading (an input path that does not exist or cannot be read).
#[derive(Debug)]
pub struct PackError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for PackError {}

/// A rule or version asked for that the pack does not have, or a selection that does not
/// read.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectionError {
    /// `id@v` whose `v` is not a number.
    BadVersionIn(String),
    /// A version list item that is not a number.
    NotAVersion(String),
    NoRule(String),
    /// A rule-id prefix that more than one rule has.
    Ambiguous {
        prefix: String,
        rules: usize,
    },
    NoVersion {
        rule_id: String,
        version: u32,
    },
}

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SelectionError::BadVersionIn(spec) => write!(f, "bad version in {spec}"),
            SelectionError::NotAVersion(v) => write!(f, "`{v}` is not a version number"),
            SelectionError::NoRule(id) => write!(f, "no rule {id} in the pack"),
            SelectionError::Ambiguous { prefix, rules } => {
                write!(f, "{prefix} names {rules} rules; give more of the id")
            }
            SelectionError::NoVersion { rule_id, version } => {
                write!(f, "rule {rule_id} has no version {version}")
            }
        }
    }
}

impl std::error::Error for SelectionError {}

/// Why [`to_pack_toml`] could not write a rule's versions.
#[derive(Debug)]
pub enum ExportError {
    NoVersions,
    /// A version's filter that TOML cannot hold.
    Filter {
        version: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::NoVersions => write!(f, "no versions"),
            ExportError::Filter { version, source } => write!(f, "{version}: filter: {source}"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::NoVersions => None,
            ExportError::Filter { source, .. } => Some(source.as_ref()),
        }
    }
}

/// The rule pack quarry ships (`datasets/rules/`: the seed rule with its 29 locked versions),
/// built into the library so that it is the default from any directory: (name, text).
pub const BUILTIN: &[(&str, &str)] = &[(
    "datasets/rules/61ac3638-40a3-44b2-855a-985636ca985e.toml (built in)",
    include_str!("../../datasets/rules/61ac3638-40a3-44b2-855a-985636ca985e.toml"),
)];

/// Loads every rule version under `paths` (files or directories); no path at all loads
/// the [`BUILTIN`] pack.
pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Result<Pack, PackError> {
    let lock = match &opts.version_lock {
        Some(p) => read_version_lock(p)?,
        None => BTreeMap::new(),
    };
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| PackError {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            walk(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    let mut reader = Reader {
        lock,
        versions: BTreeMap::new(),
        pack: Pack::default(),
    };
    for f in &files {
        reader.read_file(f);
    }
    if paths.is_empty() {
        for (name, text) in BUILTIN {
            reader.read_toml(name, text);
        }
    }
    let mut pack = reader.pack;
    let mut compiled = CompileCache::default();
    pack.versions = reader
        .versions
        .into_values()
        .map(|rule| LoadedVersion {
            status: compiled.status_of(&rule),
            rule,
        })
        .collect();
    Ok(pack)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PackError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PackError {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "toml" | "json" | "ndjson" | "jsonl"))
            && p.file_name().is_none_or(|n| n != "version.lock.json")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Versions compiled once per distinct language, query and filters (most versions of a rule
/// leave its query as it was; the Windows history's 9,862 versions hold about 3,000
/// distinct queries), their compiled forms shared.
#[derive(Default)]
struct CompileCache {
    seen: HashMap<(String, bool, String, String), Status>,
}

impl CompileCache {
    fn status_of(&mut self, rule: &RuleVersion) -> Status {
        let key = (
            rule.language.clone(),
            NOT_REPLAYED_TYPES.contains(&rule.rule_type.as_str()),
            rule.query.clone(),
            rule.filters.to_string(),
        );
        self.seen
            .entry(key)
            .or_insert_with(|| compile(rule))
            .clone()
    }
}

/// Rule types whose alerts need data besides the events (threshold and new-terms rules run:
/// their hits are the documents the query matches, which the detection engine then counts
/// or compares with history).
const NOT_REPLAYED_TYPES: &[&str] = &["threat_match"];

/// Parses and reads a version: KQL for kuery rules, filters for all.
pub fn compile(rule: &RuleVersion) -> Status {
    if !matches!(rule.language.as_str(), "kuery" | "eql") {
        return Status::Unsupported {
            language: rule.language.clone(),
        };
    }
    if rule.language == "eql" {
        let query = match eql::parse(&rule.query).and_then(|q| {
            eql::check(&q, &rule.query)?;
            Ok(q)
        }) {
            Ok(q) => q,
            Err(e) => return Status::EqlError(e),
        };
        if NOT_REPLAYED_TYPES.contains(&rule.rule_type.as_str()) {
            return Status::NotReplayed {
                rule_type: rule.rule_type.clone(),
            };
        }
        return compile_eql(rule, query);
    }
    if NOT_REPLAYED_TYPES.contains(&rule.rule_type.as_str()) {
        return Status::NotReplayed {
            rule_type: rule.rule_type.clone(),
        };
    }
    let query = match kql::parse(&rule.query) {
        Ok(q) => q,
        Err(e) => return Status::SyntaxError(e),
    };
    match dsl::parse_filters(&rule.filters) {
        Ok(filters) => Status::Ready(Arc::new(Compiled {
            cond: Cond::And(vec![kql::lower(&query), dsl::lower(&filters)]),
            query: ParsedQuery::Kql(query),
            filters,
            mapped: None,
            sequence: None,
        })),
        Err(e) => Status::BadFilter(e),
    }
}

/// An EQL event query: its condition where every field is mapped (what a dataset-free
/// reading such as `rules show` uses, and the check that it can run at all), and the
/// condition resolved per dataset.
fn compile_eql(rule: &RuleVersion, query: eql::Query) -> Status {
    let filters = match dsl::parse_filters(&rule.filters) {
        Ok(f) => f,
        Err(e) => return Status::BadFilter(e),
    };
    let event = match &query.body {
        eql::Body::Event(event) => event.clone(),
        eql::Body::Sequence(sequence) => {
            return match compile_sequence(sequence, &dsl::lower(&filters)) {
                Ok(join) => Status::Ready(Arc::new(Compiled {
                    query: ParsedQuery::Eql(Box::new(query)),
                    filters,
                    cond: Cond::False,
                    mapped: None,
                    sequence: Some(Arc::new(join)),
                })),
                Err(why) => Status::EqlCannotRun(why),
            }
        }
        eql::Body::Sample(_) => {
            return Status::EqlCannotRun("sample queries do not run yet".into());
        }
    };
    let condition = EqlCondition {
        filter: event,
        filters: dsl::lower(&filters),
        mandatory_keys: Vec::new(),
    };
    match condition.resolve(&|_| true, FieldTypes::default()) {
        Ok(cond) => Status::Ready(Arc::new(Compiled {
            query: ParsedQuery::Eql(Box::new(query)),
            filters,
            cond,
            mapped: Some(Arc::new(condition)),
            sequence: None,
        })),
        Err(why) => Status::EqlCannotRun(why),
    }
}

/// A sequence's steps, each its filter and the rule's filters, with its join keys (the
/// sequence's `by` then the step's); a non-optional key must have a value for an event to
/// take part (the optimizer's `AddMandatoryJoinKeyFilter`).
fn compile_sequence(sequence: &eql::Sequence, filters: &Cond) -> Result<Join, String> {
    let step = |s: &eql::Step| -> Result<JoinStep, String> {
        let keys = sequence
            .by
            .iter()
            .chain(&s.by)
            .map(|k| match k {
                eql::Expr::Field(f) => Ok(KeyField {
                    path: f.path.clone(),
                    optional: f.optional,
                }),
                other => Err(format!(
                    "the join key [{}] is not a field, which quarry does not run yet",
                    eql::print_expr(other)
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let condition = EqlCondition {
            filter: s.filter.clone(),
            filters: filters.clone(),
            mandatory_keys: keys
                .iter()
                .filter(|k| !k.optional)
                .map(|k| k.path.clone())
                .collect(),
        };
        Ok(JoinStep {
            cond: condition.resolve(&|_| true, FieldTypes::default())?,
            mapped: Arc::new(condition),
            keys,
            missing: s.missing,
        })
    };
    Ok(Join {
        steps: sequence.steps.iter().map(step).collect::<Result<_, _>>()?,
        until: sequence.until.as_ref().map(step).transpose()?,
        maxspan_ms: sequence
            .maxspan
            .map(|m| i64::try_from(m.millis()).unwrap_or(i64::MAX)),
    })
}

/// An EQL filter and the rule's Query-DSL filters, resolved against a dataset's fields; in
/// a sequence, with the step's non-optional join keys, which must be mapped and present.
#[derive(Debug)]
struct EqlCondition {
    filter: eql::EventFilter,
    filters: Cond,
    mandatory_keys: Vec<String>,
}

impl MappedCond for EqlCondition {
    fn resolve(&self, is_mapped: &dyn Fn(&str) -> bool, types: FieldTypes) -> Result<Cond, String> {
        let mapping = lower::Mapping { is_mapped, types };
        let cond = lower::lower_filter(&self.filter, &mapping).map_err(|e| e.0)?;
        let mut all = vec![cond, self.filters.clone()];
        for key in &self.mandatory_keys {
            if !is_mapped(key) {
                return Err(lower::unknown(key).0);
            }
            all.push(Cond::Pred(Pred {
                field: FieldSel::Name(key.clone()),
                test: Test::Exists,
                shown: " != null".into(),
            }));
        }
        Ok(Cond::And(all))
    }
}

fn read_version_lock(path: &Path) -> Result<BTreeMap<String, u32>, PackError> {
    let err = |m: String| PackError {
        path: path.to_path_buf(),
        message: m,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err("not a JSON object".into()))?;
    Ok(obj
        .iter()
        .filter_map(|(id, entry)| {
            let version = entry.get("version")?.as_u64()?;
            Some((id.clone(), u32::try_from(version).ok()?))
        })
        .collect())
}

struct Reader {
    lock: BTreeMap<String, u32>,
    versions: BTreeMap<(String, u32), RuleVersion>,
    pack: Pack,
}

impl Reader {
    fn problem(&mut self, location: String, rule: Option<String>, message: String) {
        self.pack.problems.push(Problem {
            location,
            rule,
            message,
        });
    }

    fn read_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return self.problem(name, None, format!("unreadable: {e}")),
        };
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        if is_toml {
            return self.read_toml(&name, &text);
        }
        let trimmed = text.trim_start();
        // One JSON document (an object or an array), or JSON Lines.
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    self.add_json(format!("{name}: item {}", i + 1), &item);
                }
            }
            Ok(v) => self.add_json(name, &v),
            Err(_) if trimmed.starts_with('{') => {
                for (i, line) in text.lines().enumerate() {
                    let at = format!("{name}:{}", i + 1);
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(line) {
                        Ok(v) => self.add_json(at, &v),
                        Err(e) => self.problem(at, None, format!("invalid JSON: {e}")),
                    }
                }
            }
            Err(e) => self.problem(name, None, format!("invalid JSON: {e}")),
        }
    }

    fn add_json(&mut self, at: String, v: &Value) {
        // Fleet assets wrap the rule in `attributes`; export files end with a summary line.
        let rule = v.get("attributes").unwrap_or(v);
        if rule.get("exported_count").is_some() || rule.get("exported_rules_count").is_some() {
            return;
        }
        match rule_from_json(rule, &self.lock) {
            Ok(r) => self.add(at, r),
            Err((id, m)) => self.problem(at, id, m),
        }
    }

    fn read_toml(&mut self, name: &str, text: &str) {
        let value: toml::Table = match text.parse() {
            Ok(v) => v,
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                let at = line.map_or(name.to_string(), |l| format!("{name}:{l}"));
                return self.problem(at, None, format!("invalid TOML: {}", e.message()));
            }
        };
        let json = match serde_json::to_value(&value) {
            Ok(j) => j,
            Err(e) => return self.problem(name.into(), None, e.to_string()),
        };
        if let Some(versions) = json.get("versions").and_then(Value::as_array) {
            // quarry's pack: top-level keys are defaults every version inherits.
            let defaults: serde_json::Map<String, Value> = json
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "versions")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (i, v) in versions.iter().enumerate() {
                let mut merged = defaults.clone();
                if let Some(o) = v.as_object() {
                    merged.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                self.add_json(format!("{name}: versions[{i}]"), &Value::Object(merged));
            }
            return;
        }
        match json.get("rule") {
            Some(rule) => self.add_json(name.into(), rule),
            None => self.problem(
                name.into(),
                None,
                "neither a quarry pack ([[versions]]) nor a detection rule ([rule])".into(),
            ),
        }
    }

    fn add(&mut self, at: String, mut rule: RuleVersion) {
        rule.source = at.clone();
        let key = (rule.rule_id.clone(), rule.version);
        match self.versions.get(&key) {
            Some(existing) if existing.same_content(&rule) => self.pack.duplicates += 1,
            Some(existing) => {
                let first = existing.source.clone();
                self.problem(
                    at,
                    Some(rule.key()),
                    format!("duplicated version with different content (first seen at {first}); the first is kept"),
                );
            }
            None => {
                self.versions.insert(key, rule);
            }
        }
    }
}

type JsonError = (Option<String>, String);

/// A rule version from a JSON object with Elastic's rule keys.
fn rule_from_json(v: &Value, lock: &BTreeMap<String, u32>) -> Result<RuleVersion, JsonError> {
    let obj = v
        .as_object()
        .ok_or((None, "a rule must be a JSON object".to_string()))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let rule_id = text("rule_id").ok_or((None, "no rule_id".to_string()))?;
    let version = match obj.get("version") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .or_else(|| lock.get(&rule_id).copied())
    .ok_or((
        Some(rule_id.clone()),
        "no version (give detection-rules' version.lock.json with --version-lock)".to_string(),
    ))?;
    let key = Some(format!("{rule_id}@{version}"));
    let language = text("language").unwrap_or_else(|| match text("type").as_deref() {
        Some("eql") => "eql".into(),
        Some("esql") => "esql".into(),
        Some("machine_learning") => "machine_learning".into(),
        _ => "kuery".into(),
    });
    let index = match obj.get("index") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or((key.clone(), "index must be an array of strings".to_string()))?,
        Some(_) => return Err((key, "index must be an array of strings".into())),
    };
    let number = |k: &str| obj.get(k).and_then(Value::as_f64);
    let max_signals = match number("max_signals") {
        None => DEFAULT_MAX_SIGNALS,
        Some(n) if n >= 1.0 && n.fract() == 0.0 => n as u32,
        Some(n) => {
            return Err((
                key,
                format!("max_signals must be a positive integer, found {n}"),
            ))
        }
    };
    let query = match obj.get("query") {
        Some(Value::String(q)) => q.clone(),
        None | Some(Value::Null) if language != "kuery" => String::new(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err((key, "query must be a string".into())),
    };
    let rule_type = text("type").unwrap_or_else(|| "query".into());
    let grouping = grouping::read(&rule_type, obj).map_err(|m| (key.clone(), m))?;
    Ok(RuleVersion {
        name: text("name").unwrap_or_default(),
        rule_type,
        grouping,
        language,
        query,
        filters: obj
            .get("filters")
            .cloned()
            .unwrap_or(Value::Array(Vec::new())),
        index,
        interval: text("interval").unwrap_or_else(|| DEFAULT_INTERVAL.into()),
        from: text("from").unwrap_or_else(|| DEFAULT_FROM.into()),
        max_signals,
        timestamp_override: text("timestamp_override"),
        severity: text("severity").unwrap_or_default(),
        risk_score: number("risk_score").unwrap_or(0.0),
        source: String::new(),
        rule_id,
        version,
    })
}

/// One rule's versions as a quarry pack file (TOML): what `quarry rules import` writes.
pub fn to_pack_toml(versions: &[&RuleVersion]) -> Result<String, ExportError> {
    let Some(first) = versions.first() else {
        return Err(ExportError::NoVersions);
    };
    let mut out = String::new();
    out.push_str("# quarry rule pack: one rule, every version. Keys at the top are defaults\n");
    out.push_str("# that each [[versions]] entry may override.\n");
    out.push_str(&format!("rule_id = {}\n", toml_string(&first.rule_id)));
    out.push_str(&format!("name = {}\n", toml_string(&first.name)));
    for v in versions {
        out.push_str("\n[[versions]]\n");
        out.push_str(&format!("version = {}\n", v.version));
        if v.name != first.name {
            out.push_str(&format!("name = {}\n", toml_string(&v.name)));
        }
        out.push_str(&format!("type = {}\n", toml_string(&v.rule_type)));
        out.push_str(&format!("language = {}\n", toml_string(&v.language)));
        out.push_str(&format!("severity = {}\n", toml_string(&v.severity)));
        out.push_str(&format!("risk_score = {}\n", v.risk_score));
        let index: Vec<String> = v.index.iter().map(|i| toml_string(i)).collect();
        out.push_str(&format!("index = [{}]\n", index.join(", ")));
        out.push_str(&format!("interval = {}\n", toml_string(&v.interval)));
        out.push_str(&format!("from = {}\n", toml_string(&v.from)));
        out.push_str(&format!("max_signals = {}\n", v.max_signals));
        if let Some(t) = &v.timestamp_override {
            out.push_str(&format!("timestamp_override = {}\n", toml_string(t)));
        }
        out.push_str(&format!("query = {}\n", toml_multiline(&v.query)));
        if let Some(g) = &v.grouping {
            let (key, params) = g.as_rule_params();
            let table: toml::Value =
                serde_json::from_value(params).map_err(|e| ExportError::Filter {
                    version: v.key(),
                    source: e.into(),
                })?;
            let body = toml::to_string(&table).map_err(|e| ExportError::Filter {
                version: v.key(),
                source: e.into(),
            })?;
            out.push_str(&format!("\n[versions.{key}]\n"));
            out.push_str(&prefix_tables(&body, &format!("versions.{key}")));
        }
        if let Some(filters) = v.filters.as_array().filter(|f| !f.is_empty()) {
            let filter = |e: Box<dyn std::error::Error + Send + Sync>| ExportError::Filter {
                version: v.key(),
                source: e,
            };
            for f in filters {
                let table: toml::Value =
                    serde_json::from_value(f.clone()).map_err(|e| filter(e.into()))?;
                let body = toml::to_string(&table).map_err(|e| filter(e.into()))?;
                out.push_str("\n[[versions.filters]]\n");
                out.push_str(&prefix_tables(&body, "versions.filters"));
            }
        }
    }
    Ok(out)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A query as a multi-line literal string when it can be one (what you see is what KQL gets).
fn toml_multiline(s: &str) -> String {
    let literal_ok = !s.contains("'''")
        && !s.ends_with('\'')
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control());
    if literal_ok {
        format!("'''\n{s}'''")
    } else {
        toml_string(s)
    }
}

/// Nests the sub-tables of a serialized filter under `[[versions.filters]]`.
fn prefix_tables(body: &str, prefix: &str) -> String {
    body.lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("[[") {
                format!("[[{prefix}.{rest}\n")
            } else if let Some(rest) = l.strip_prefix('[') {
                format!("[{prefix}.{rest}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}
