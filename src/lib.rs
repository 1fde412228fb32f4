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
//!   table's order) with [`hunt::HuntOptions`]; [`sink::write`] writes a hit table.
//! - Backtest: [`backtest::run`] with [`backtest::BacktestOptions`].
//! - Incremental hunts: [`state::hunt_incremental`].
//! - Generated telemetry with ground truth: [`gen::generate`].
//!
//! # Stages, each a module whose borders are drawn as if it were a crate
//!
//! - [`cond`]: the language-neutral conditions every rule language lowers to, the field
//!   catalog, the analyzers, globs and the reference evaluator. Knows no rule syntax, no
//!   Arrow, no files.
//! - [`rules`]: rule files and packs in Elastic's formats, KQL and Query-DSL parsed and
//!   lowered to conditions. Knows no Arrow or Parquet.
//! - [`ingest`]: Windows logs (EVTX, Elastic/Winlogbeat NDJSON, OTRF JSON lines) mapped to
//!   ECS as Elastic's pipelines map them, written as a day-partitioned Parquet dataset with
//!   a manifest. Knows nothing of rules.
//! - [`plan`]: every selected version compiled against a dataset's columns into shared
//!   leaves, text matchers and boolean programs. No I/O.
//! - [`scan`]: a plan evaluated over Parquet row groups (pages decoded straight from the
//!   file, late materialisation, pruning) on many threads. Knows no rule language.
//! - [`sink`]: the hit table's rows, schema and writers, and the spool that sorts hits on
//!   disk past a memory budget.
//! - [`hunt`]: a hunt's driver: packs loaded, versions selected, datasets opened, units
//!   scanned in parallel, hits handed to a sink.
//! - [`backtest`]: what a version's hits would have meant as alerts (schedule replay,
//!   version diffs, ground truth, false-positive clusters, HTML report).
//! - [`state`]: incremental, resumable hunts over growing datasets.
//! - [`gen`]: realistic PowerShell telemetry with ground truth, through the same pipeline
//!   and writer as `convert`.
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
pub mod sink;
pub mod state;
pub mod store;
