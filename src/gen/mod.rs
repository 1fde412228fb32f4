//! `quarry gen`: realistic Windows telemetry (PowerShell, Sysmon, Security and System events)
//! at any scale, with ground truth.
//!
//! [`generate`] writes a dataset exactly as `convert` would (the same ingest pipeline, writer
//! and manifest: events are produced in Winlogbeat's raw shape and mapped by
//! [`crate::ingest::pipeline`]), optionally also as Winlogbeat NDJSON, so converting that file
//! gives back the same rows. The run is cut into units (one script execution, or one other
//! event); unit `u` is drawn from its own seeded random source, so any thread can make any
//! unit and a seed always gives the same bytes. Benign executions come from [`scripts`]
//! (re-runs of a pool of popular script instances, with a knob for how much text is distinct),
//! benign Sysmon/Security activity from `windows` (process trees, connections, registry,
//! files, logons, installs, tasks); attack campaigns, PowerShell steps from [`attacks`] and
//! Windows techniques from `windows`, are injected at known times on known hosts, and their
//! incident windows are written beside the dataset (`_quarry/truth/`).

//!
//! The stage's rooms: `world` decides which events each unit is, `events` and `windows`
//! shape them, `output` writes them; this driver runs the units on every core in order, spreads the
//! campaigns' steps over the run and stops at the requested size.

pub mod attacks;
mod events;
pub mod fleet;
mod output;
pub mod scripts;
pub mod windows;
mod world;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ingest::{
    self, parallel, pipeline, ConvertOptions, ConvertProgress, ConvertReport, EventSink,
    GeneratedSource, IngestError,
};
use crate::rules::pack::Pack;
use events::ndjson_line;
use output::{write_incidents, Emitter, NdjsonOut};
use world::{Generated, World};

pub use events::{fragments, to_document};

/// PowerShell logs a script block longer than this many characters as several 4104 events.
pub const FRAGMENT_CHARS: usize = 20_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Stop after this many events (at the end of a script's fragments).
    pub events: Option<u64>,
    /// Stop after this many bytes of Winlogbeat NDJSON text.
    pub size: Option<u64>,
    pub days: u32,
    /// First day, UTC microseconds since the epoch (midnight).
    pub start_us: i64,
    pub hosts: usize,
    pub users: usize,
    pub seed: u64,
    /// Write `labels.*` ground-truth columns and the incident windows.
    pub truth: bool,
    /// Share of executions whose script text is new (1.0: every script block distinct).
    pub distinct: f64,
    /// Attack campaigns to inject (default: one per 25,000 events, at least 2).
    pub campaigns: Option<u64>,
    /// Benign script bodies drawn from here instead of the built-in families.
    pub corpus: Vec<String>,
    /// Also write the raw events as Winlogbeat NDJSON to this file.
    pub ndjson: Option<PathBuf>,
    pub convert: ConvertOptions,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            events: Some(10_000),
            size: None,
            days: 7,
            start_us: 1_709_251_200_000_000, // 2024-03-01
            hosts: 100,
            users: 50,
            seed: 1,
            truth: true,
            distinct: 0.02,
            campaigns: None,
            corpus: Vec::new(),
            ndjson: None,
            convert: ConvertOptions::default(),
        }
    }
}

/// Ground truth of one injected campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub campaign: String,
    pub host: String,
    pub user: String,
    pub start_us: i64,
    pub end_us: i64,
    pub families: Vec<String>,
}

/// What a generation run did.
#[derive(Debug, Clone, Default)]
pub struct GenReport {
    pub convert: ConvertReport,
    pub events: u64,
    pub ndjson_bytes: u64,
    pub malicious: u64,
    pub incidents: Vec<Incident>,
    /// Rule versions (`id@version`) with at least one synthesised true positive.
    pub covered_versions: Vec<String>,
    /// Synthesis attempts that found no matching script (fell back to a built-in family).
    pub unsatisfied: u64,
    /// The (campaign, step) pairs the run emitted.
    emitted: BTreeSet<(usize, usize)>,
}

const UNITS_PER_CHUNK: u64 = 64;

/// Generates a dataset at `out` (adding a run to it if it exists).
pub fn generate(
    out: &Path,
    opts: &GenOptions,
    pack: &Pack,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
) -> Result<GenReport, IngestError> {
    let world = World::new(opts, pack);
    let source = GeneratedSource {
        label: describe(opts),
        fingerprint: fingerprint(opts, pack),
        format: "generated",
    };
    let mut report = GenReport::default();
    let mut ndjson = match &opts.ndjson {
        Some(p) => Some(NdjsonOut::create(p)?),
        None => None,
    };
    progress.start(opts.size.unwrap_or(0), 1);
    let convert_report =
        ingest::ingest_generated(out, &opts.convert, source, cancel, &mut |sink, cancel| {
            produce(&world, sink, ndjson.as_mut(), &mut report, progress, cancel)
        })?;
    if let Some(n) = ndjson {
        n.commit()?;
    }
    progress.finishing();
    report.convert = convert_report;
    if opts.truth && report.events > 0 {
        report.incidents = world.incidents(&report.emitted);
        write_incidents(out, report.convert.run, &report.incidents)?;
    }
    Ok(report)
}

fn produce(
    world: &World<'_>,
    sink: &mut EventSink<'_>,
    ndjson: Option<&mut NdjsonOut>,
    report: &mut GenReport,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
) -> Result<(), IngestError> {
    let opts = world.opts;
    let prepare = opts.convert.pipeline;
    let work = |chunk: u64| -> Vec<Vec<Generated>> {
        (chunk * UNITS_PER_CHUNK..(chunk + 1) * UNITS_PER_CHUNK)
            .map(|u| {
                let mut events = world.unit(u);
                for g in &mut events {
                    g.line = Some(ndjson_line(&g.doc));
                    pipeline::apply(&mut g.doc, prepare);
                }
                events
            })
            .collect()
    };
    let mut emitter = Emitter {
        sink,
        ndjson,
        report,
        covered: BTreeSet::new(),
        failure: None,
    };
    let mut last_progress = 0u64;
    let mut skipped_in_a_row = 0u32;
    let mut next_slot = 0u64;
    let slots = world.malicious_units;
    let mut sink_chunk = |units: Vec<Vec<Generated>>| -> bool {
        for unit in units {
            let r = &emitter.report;
            let fraction = match (opts.events, opts.size) {
                (Some(n), _) => r.events as f64 / n.max(1) as f64,
                (None, Some(bytes)) => r.ndjson_bytes as f64 / bytes.max(1) as f64,
                (None, None) => 1.0,
            };
            // Stop only between units, so a fragmented script is always whole.
            if fraction >= 1.0 {
                return false;
            }
            // Campaign steps are spread evenly over the run: slot k once it is (k + ½)/n done.
            while next_slot < slots && fraction >= (next_slot as f64 + 0.5) / slots as f64 {
                let events = world.malicious_unit(next_slot);
                next_slot += 1;
                if !emitter.emit(events) {
                    return false;
                }
            }
            if let Some(target) = opts.size {
                let bytes: u64 = unit
                    .iter()
                    .map(|g| g.line.as_ref().map_or(0, |l| l.len() as u64 + 1))
                    .sum();
                // A unit that would overshoot the target by more than 2% is left out, so a
                // run ends near its target however large single scripts are.
                if emitter.report.ndjson_bytes + bytes > target + target / 50
                    && skipped_in_a_row < 10_000
                {
                    skipped_in_a_row += 1;
                    continue;
                }
                skipped_in_a_row = 0;
            }
            if !emitter.emit(unit) {
                return false;
            }
        }
        if emitter.report.events - last_progress >= 10_000 {
            last_progress = emitter.report.events;
            progress.advance(emitter.report.ndjson_bytes, emitter.report.events);
        }
        !cancel.load(Ordering::Relaxed)
    };
    parallel::ordered_map(
        parallel::default_threads(),
        &mut (0u64..),
        &work,
        &mut sink_chunk,
    );
    let Emitter {
        sink,
        report,
        covered,
        failure,
        ..
    } = emitter;
    sink.bytes = report.ndjson_bytes;
    report.covered_versions = covered.into_iter().collect();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The generator's parameters as a command line (recorded in the manifest).
pub fn describe(opts: &GenOptions) -> String {
    let mut s = format!(
        "quarry gen --seed {} --days {} --start {} --hosts {} --users {} --distinct {} --mapping {}",
        opts.seed,
        opts.days,
        ingest::format_micros(opts.start_us).get(..10).unwrap_or_default(),
        opts.hosts,
        opts.users,
        opts.distinct,
        opts.convert.mapping.name()
    );
    if let Some(n) = opts.events {
        s.push_str(&format!(" --events {n}"));
    }
    if let Some(b) = opts.size {
        s.push_str(&format!(" --size {b}"));
    }
    if let Some(c) = opts.campaigns {
        s.push_str(&format!(" --campaigns {c}"));
    }
    if !opts.truth {
        s.push_str(" --no-truth");
    }
    if !opts.corpus.is_empty() {
        s.push_str(&format!(" --corpus ({} scripts)", opts.corpus.len()));
    }
    s
}

fn fingerprint(opts: &GenOptions, pack: &Pack) -> String {
    let mut h = blake3::Hasher::new();
    h.update(describe(opts).as_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for v in &pack.versions {
        h.update(v.rule.key().as_bytes());
        h.update(v.rule.query.as_bytes());
        h.update(v.rule.filters.to_string().as_bytes());
    }
    for s in &opts.corpus {
        h.update(s.as_bytes());
    }
    format!("blake3:{}", h.finalize().to_hex())
}

/// Parses `10GB`, `500MB`, `2k` and plain byte counts (powers of 1000, or 1024 with `GiB`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet::Rng;

    #[test]
    fn fragments_reassemble() {
        let long: String = "ab\u{e9}".repeat(15_000);
        let parts = fragments(&long);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= FRAGMENT_CHARS));
        assert_eq!(parts.concat(), long);
        assert_eq!(fragments("x"), vec!["x"]);
    }

    #[test]
    fn split_discovery_cuts_its_api_name_across_fragments() {
        for seed in 0..20 {
            let a = attacks::attack("split-discovery", &mut Rng::new(seed));
            let parts = fragments(&a.text);
            assert_eq!(parts.len(), 2, "seed {seed}");
            let api = scripts::SEED_APIS
                .iter()
                .find(|api| a.text.contains(*api))
                .expect("an API name in the whole script");
            assert!(
                parts.iter().all(|p| !p.contains(api)),
                "seed {seed}: {api} is whole in a fragment"
            );
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("1.5MB"), Some(1_500_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("ten"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_units() {
        let opts = GenOptions::default();
        let a = World::new(&opts, &Pack::default());
        let b = World::new(&opts, &Pack::default());
        for u in [0, 1, 7, 63, 64, 1000] {
            let x: Vec<String> = a.unit(u).iter().map(|g| ndjson_line(&g.doc)).collect();
            let y: Vec<String> = b.unit(u).iter().map(|g| ndjson_line(&g.doc)).collect();
            assert_eq!(x, y);
        }
    }
}
