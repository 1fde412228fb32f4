//! Rules: Elastic detection rules in all their versions, KQL, and the reference semantics.
//!
//! [`kql`] parses queries exactly as Kibana does; [`dsl`] reads the Query-DSL `filters` rules
//! carry; [`analyzer`] tokenizes text as Elasticsearch's pattern and standard analyzers do;
//! [`fields`] knows which ECS and Windows fields are keyword, text, numeric, date or ip;
//! [`eval`] is the reference evaluator (slow, a direct reading of DESIGN §5) that the fast
//! engine is tested against; [`pack`] loads rule versions from Elastic's formats and quarry's
//! own pack files. Nothing here knows Arrow or Parquet.

pub mod analyzer;
pub mod dsl;
pub mod eval;
pub mod fields;
pub mod kql;
pub mod pack;
