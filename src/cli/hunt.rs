//! `quarry hunt`: arguments, the progress bar and the closing summary of a hunt.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::Bar;
use quarry::hunt::{self, HuntError, HuntOptions, HuntProgress, HuntReport, VersionSelect};
use quarry::ingest::format_micros;
use quarry::scan::TimeRange;
use quarry::sink::{Format, HitWriter};
use quarry::state::IncrementalReport;

/// The dataset `hunt` reads when none is given.
pub const DEFAULT_DATASET: &str = "datasets/sample";

/// What a hunt pass reads: rules, versions, datasets, time range, threads (shared by
/// `hunt` and `backtest`).
#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    /// Rule packs: quarry pack TOML, detection-rules TOML, Kibana/Fleet JSON or NDJSON
    /// exports, files or directories (default: the seed rule's 29 versions, built in).
    #[arg(long = "rules", num_args = 1..)]
    packs: Vec<PathBuf>,
    /// detection-rules' version.lock.json, giving TOML rules their version.
    #[arg(long)]
    version_lock: Option<PathBuf>,
    /// Datasets written by `quarry convert` or `quarry gen` (default: the shipped sample,
    /// datasets/sample, when run from the checkout).
    #[arg(long = "data", num_args = 1..)]
    datasets: Vec<PathBuf>,
    /// Only events at or after this time (RFC 3339, or a date meaning its midnight UTC).
    #[arg(long)]
    from: Option<String>,
    /// Only events before this time (RFC 3339, or a date meaning its midnight UTC).
    #[arg(long)]
    to: Option<String>,
    /// Only these rules: an id or a unique prefix of one, optionally `@VERSION`.
    #[arg(long = "rule", num_args = 1..)]
    rules: Vec<String>,
    /// Versions of each rule: latest, all, or a list such as 3,8,320.
    #[arg(long, default_value = "all")]
    versions: String,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl SelectArgs {
    /// The datasets named, else the shipped sample where it is.
    fn datasets(&self) -> Result<Vec<PathBuf>, String> {
        if !self.datasets.is_empty() {
            return Ok(self.datasets.clone());
        }
        let sample = PathBuf::from(DEFAULT_DATASET);
        match sample.join("_quarry/dataset.json").is_file() {
            true => Ok(vec![sample]),
            false => Err(format!(
                "no --data given, and the shipped sample ({DEFAULT_DATASET}) is not in this \
                 directory: pass --data DATASET, a directory written by `quarry convert` or \
                 `quarry gen` (or run from the quarry checkout)"
            )),
        }
    }

    /// The hunt's options, or what is wrong with the arguments.
    pub fn options(&self) -> Result<HuntOptions, String> {
        let versions =
            VersionSelect::parse(&self.versions).map_err(|e| format!("--versions: {e}"))?;
        let mut range = TimeRange::default();
        for (flag, text, slot) in [
            ("from", &self.from, &mut range.from_us),
            ("to", &self.to, &mut range.to_us),
        ] {
            if let Some(t) = text {
                *slot = Some(parse_time(flag, t)?);
            }
        }
        Ok(HuntOptions {
            packs: self.packs.clone(),
            version_lock: self.version_lock.clone(),
            datasets: self.datasets()?,
            rules: self.rules.clone(),
            versions,
            range,
            threads: self.threads,
            ..Default::default()
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct HuntArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// The hit table to write.
    #[arg(long, default_value = "hits.parquet")]
    out: PathBuf,
    /// parquet, jsonl or csv (default: from the --out extension, else parquet).
    #[arg(long)]
    format: Option<String>,
    /// Stop at the first file or row group that cannot be read.
    #[arg(long)]
    fail_fast: bool,
    /// Memory for sorting the hits, in MiB; beyond it they are sorted on disk, in temporary
    /// files beside --out. With EQL sequences, half of it holds the events of their steps
    /// until the join (beyond it they wait on disk).
    #[arg(long, default_value_t = 128)]
    sort_memory_mb: usize,
    /// Print no progress bar and no summary (warnings and errors are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Hunt incrementally: remember in DIR what was hunted (per file, per version) and its
    /// hits, and hunt only new or changed files and versions; an interrupted run resumes.
    /// The table always equals a full hunt's.
    #[arg(long, value_name = "DIR")]
    state: Option<std::path::PathBuf>,
}

impl HuntProgress for Bar {
    fn start(&self, bytes: u64, _units: usize) {
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
}

/// Prints a hunt's error and gives the exit status: 2 bad input, 3 a failed unit with
/// `--fail-fast` or output that cannot be written, 130 interrupted.
pub(super) fn failed(e: HuntError) -> i32 {
    eprintln!("quarry: {e}");
    match e {
        HuntError::Cancelled => 130,
        e if e.is_usage() => 2,
        _ => 3,
    }
}

/// `2024-03-01` or RFC 3339 as microseconds since the epoch.
fn parse_time(flag: &str, text: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| format!("--{flag} {text:?}: expected a date (2024-03-01) or RFC 3339 time"))
}

pub fn run(args: HuntArgs, cancel: &AtomicBool) -> i32 {
    let usage = |m: String| {
        eprintln!("quarry: {m}");
        2
    };
    let format = match &args.format {
        Some(f) => match Format::parse(f) {
            Some(f) => f,
            None => return usage(format!("unknown --format {f:?} (parquet, jsonl or csv)")),
        },
        None => args
            .out
            .extension()
            .and_then(|e| Format::parse(&e.to_string_lossy()))
            .unwrap_or(Format::Parquet),
    };
    let opts = match args.select.options() {
        Ok(o) => HuntOptions {
            fail_fast: args.fail_fast,
            sort_memory: args.sort_memory_mb.max(1) << 20,
            ..o
        },
        Err(e) => return usage(e),
    };
    let started = Instant::now();
    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    // The table is written as the sorted hits come out; it takes its name only when the
    // hunt has completed, so an interrupted or failed hunt leaves no partial table.
    let mut writer = match HitWriter::create(&args.out, format) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("quarry: cannot write the hit table: {e}");
            return 3;
        }
    };
    let spill = writer.spill_prefix();
    let mut write = |hits: &[quarry::sink::Hit]| writer.write(hits);
    let result = match &args.state {
        Some(dir) => quarry::state::hunt_incremental(&opts, dir, &bar, cancel, &spill, &mut write)
            .map(|(report, inc)| (report, Some(inc))),
        None => hunt::hunt_into(&opts, &bar, cancel, &spill, &mut write).map(|r| (r, None)),
    };
    bar.clear();
    let (report, incremental) = match result {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    if let Err(e) = writer.finish() {
        eprintln!("quarry: cannot write the hit table: {e}");
        return 3;
    }
    super::print_warnings(&report.warnings);
    for f in &report.failures {
        eprintln!("error: {f}");
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        print_summary(&args.out, &report, incremental.as_ref(), secs);
    }
    if report.failures.is_empty() {
        0
    } else {
        1
    }
}

/// The one-line account of the hunt and the per-version table.
fn print_summary(
    out: &std::path::Path,
    report: &HuntReport,
    incremental: Option<&IncrementalReport>,
    secs: f64,
) {
    println!(
        "{} versions over {} row groups ({} pruned), {} rows, {:.1} MiB in {secs:.2}s: {} hits -> {}",
        report.versions,
        report.units,
        report.units_pruned,
        report.rows,
        report.bytes as f64 / 1048576.0,
        report.hit_count,
        out.display()
    );
    if let Some(inc) = incremental {
        println!(
            "incremental: {} files up to date, {} hunted ({} file-version pairs) in {} chunks",
            inc.files_up_to_date, inc.files_hunted, inc.pairs_hunted, inc.chunks
        );
    }
    if report.step_runs > 0 {
        println!(
            "(the events of sequence steps outgrew memory and waited for the join on disk, in {} runs)",
            report.step_runs
        );
    }
    if report.spilled_runs > 0 {
        println!(
            "(the hits outgrew memory and were sorted on disk in {} runs)",
            report.spilled_runs
        );
    }
    if !report.summary.is_empty() {
        println!(
            "{:<38} {:>7} {:>8} {:>6} {:>6}  {:<27} {:<27}  name",
            "rule", "version", "hits", "hosts", "users", "first seen", "last seen"
        );
        for s in &report.summary {
            let time = |t: Option<i64>| t.map(format_micros).unwrap_or_default();
            println!(
                "{:<38} {:>7} {:>8} {:>6} {:>6}  {:<27} {:<27}  {}",
                s.rule_id,
                s.rule_version,
                s.hits,
                s.hosts,
                s.users,
                time(s.first_us),
                time(s.last_us),
                s.rule_name
            );
        }
    }
}
