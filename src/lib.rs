//! quarry retro-hunts historical Windows telemetry stored as Parquet with every historical
//! version of Elastic Security detection rules.
//!
//! The crate is a library with a thin command-line front end ([`cli`]). Each stage is a module
//! whose borders are drawn as if it were a crate of its own:
//!
//! - [`ingest`] turns Windows logs (EVTX, Elastic/Winlogbeat NDJSON, OTRF/Mordor JSON lines)
//!   into a day-partitioned Parquet dataset, mapping raw events to ECS the way Elastic's
//!   Windows integration does.
//! - [`cli`] parses arguments, draws progress and prints summaries; nothing else prints.

pub mod backtest;
pub mod cli;
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
