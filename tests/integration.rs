//! quarry's integration tests, one module per capability.

// Elastic rule corpora and the shipped pack: parsing, loading, version history.
mod rules_corpus;
// EQL: every query of Elastic's EQL corpus and Windows history parsed as Elasticsearch does.
mod eql_parse;
// EQL event queries: the fast path against the EQL reference on random queries and data.
mod eql_hunt;
// The matching contract as a table of (query, analyzer, document, expected).
mod semantics;
// The standard analyzer against Lucene 8 itself (skips without Java and liblucene8-java).
mod lucene_standard;
// The generator: determinism, conversion equivalence, ground truth, fragments, sizes, sample.
mod gen;
// The reference evaluator over a whole dataset (shared with the hunt benchmark).
mod reference;
mod util;

// Converting the real EVTX, OTRF and Elastic data in ../shared/data: counts and golden fields.
mod convert_real_data;
// The ECS mapping against Elastic's own pipeline test input and expected output.
mod ecs_pipeline;
// Sysmon and Security events of the EVTX attack samples: data streams, ECS fields, goldens.
mod windows_events;
// Bad input: broken lines and records, missing paths, interrupted runs, re-conversion.
mod bad_input;
// The hunt against the reference evaluator, time ranges, output, bad parts.
mod hunt;
// Backtest pieces on a real hunt: version diffs, the schedule replay.
mod backtest;
// The backtest's HTML report, drawn in headless Chromium (skips without it).
mod report;
// A full disk, processes killed at random points, two writers at once.
mod faults;
// Incremental hunts with --state: growing data, changed rules, killed runs.
mod incremental;
