//! Rules: Elastic detection rules in all their versions, and their languages.
//!
//! [`kql`] parses queries exactly as Kibana does; [`eql`] parses EQL as Elasticsearch's EQL
//! parser does; [`dsl`] reads the Query-DSL `filters` rules
//! carry; [`pack`] loads rule versions from Elastic's formats and quarry's own pack files and
//! compiles each: parsed by its language, then lowered to the language-neutral
//! [`crate::cond::Cond`] that the planner and the reference evaluator run. A new rule
//! language is a parser and a lowering here. Nothing here knows Arrow or Parquet.

pub mod dsl;
pub mod eql;
pub mod grouping;
pub mod kql;
pub mod pack;
