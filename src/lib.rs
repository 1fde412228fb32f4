//! quarry retro-hunts historical Windows telemetry stored as Parquet with every historical
//! version of Elastic Security detection rules, with Elasticsearch's matching semantics.
//!
//! This crate is the engine; the `quarry` command (`src/main.rs`, `src/cli/`, behind the
//! default `cli` feature) only turns arguments into the calls below and prints what they
//! return. `cargo build --lib --no-default-features` builds the engine alone: no argument
//! parser, progress bar, signal handler or allocator comes with it.
//!
//! # Entry points
//!
//! - Convert logs: [`ingest::convert`] with [`ingest::ConvertOptions`].
//! - Hunt: [`hunt::hunt`] (hits in memory) or [`hunt::hunt_into`] (hits streamed in the hit
//!   table's order) with [`hunt::HuntOptions`]; [`sink::write`] writes a hit table. For
//!   several passes over the same packs and datasets, open a [`hunt::Session`] once and run
//!   a [`hunt::Pass`] per question.
//! - Evaluate a batch already in memory (an embedding's): [`scan::Scanner::scan_batch`] on
//!   an Arrow `RecordBatch` with ECS column names.
//! - Backtest: [`backtest::run`] with [`backtest::BacktestOptions`].
//! - Incremental hunts: [`state::hunt_incremental`].
//! - Generated telemetry with ground truth: [`gen::generate`].
//!
//! Every entry point returns a typed error that names its file, row group, line or rule
//! version and keeps the cause as its `source()`.
//!
//! # Stages, each a module whose borders are drawn as if it were a crate
//!
//! - [`cond`]: the language-neutral conditions every rule language lowers to, the field
//!   catalog, the analyzers, globs and the reference evaluator. Knows no rule syntax, no
//!   Arrow, no files.
//! - [`rules`]: rule files and packs in Elastic's formats (`pack`), KQL (`kql`) and
//!   Query-DSL filters (`dsl`) parsed and lowered to conditions. Knows no Arrow or Parquet.
//! - [`ingest`]: Windows logs (EVTX, Elastic/Winlogbeat NDJSON, OTRF JSON lines) mapped to
//!   ECS as Elastic's pipelines map them, written as a day-partitioned Parquet dataset with
//!   a manifest. A driver over `reader`, `shapes`, `pipeline`, `file`, `writer` and
//!   `dataset`. Knows nothing of rules.
//! - [`plan`]: every selected version compiled against a dataset's columns into shared
//!   leaves, text matchers (`text`) and boolean programs. No I/O, no rule language.
//! - [`scan`]: a plan evaluated over one (file, row group) unit or one Arrow batch: `part`
//!   (footers and byte ranges through the store), `pages` (pages decoded straight from the
//!   file), `values` (Arrow values as text), `memo` (text results per distinct value),
//!   `logic` (two- and three-valued programs), `script` (script summaries), `error`. Knows no
//!   rule language and opens no path.
//! - [`sequence`]: EQL sequences joined from the events each step matched, as
//!   Elasticsearch's sequence matcher joins them (keys, order, maxspan, until, missing
//!   events). Reads no data.
//! - [`sink`]: the hit table's rows, triage fields, schema and writers, `spool` (hits sorted
//!   on disk past a memory budget) and `error`. Knows no rules or Parquet reading.
//! - [`hunt`]: the driver: a `Session` (packs loaded, versions selected, manifests read,
//!   once) and its `Pass`es (plans compiled, units pruned and scanned on a rayon pool, hits
//!   spooled and handed out in order).
//! - [`backtest`]: what a version's hits would have meant as alerts (schedule replay,
//!   version diffs, ground truth, false-positive clusters, HTML report), on one pass.
//! - [`state`]: incremental, resumable hunts over growing datasets: a pass per chunk of
//!   changed files, state record and segments read through the store.
//! - [`gen`]: realistic Windows telemetry (PowerShell, Sysmon, Security, System) with ground
//!   truth, through the same pipelines and writer as `convert`: a driver over `world` (which
//!   events each unit is), `events` and `windows` (their shapes) and `output`.
//! - [`store`]: where the bytes a hunt reads come from (parts, manifests, state): a
//!   directory of memory-mapped files today. Knows no file format.
//! - [`lock`]: the advisory lock shared by datasets, hit tables and hunt states.
//!
//! Nothing in the library prints or reads the terminal.

pub mod backtest;
pub mod cond;
pub mod gen;
pub mod hunt;
pub mod ingest;
pub mod lock;
pub mod plan;
pub mod rules;
pub mod scan;
pub mod sequence;
pub mod sink;
pub mod state;
pub mod store;
