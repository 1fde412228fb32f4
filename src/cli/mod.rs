//! The command line: argument parsing, progress bars and summaries. Nothing else in the
//! crate prints. Exit status: 0 success, 1 finished but some records were bad, 2 bad usage or
//! an input that cannot be read, 3 any other failure, 130 interrupted.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

mod backtest;
mod gen;
mod hunt;
mod rules;

use quarry::ingest::writer::{Codec, LayoutConfig};
use quarry::ingest::{
    self, ConvertOptions, ConvertProgress, ConvertReport, IngestError, MappingProfile,
};

#[derive(Parser, Debug)]
#[command(
    name = "quarry",
    version,
    about = "Retro-hunt Windows telemetry in Parquet with every version of Elastic detection rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert Windows logs (EVTX, Elastic/Winlogbeat NDJSON, OTRF JSON lines; .gz too) into a
    /// day-partitioned Parquet dataset, adding to it if it exists.
    Convert(ConvertArgs),
    /// Generate realistic Windows telemetry (PowerShell, Sysmon, Security) with ground truth into a dataset.
    Gen(gen::GenArgs),
    /// Run every selected version of every rule over datasets and write the hit table.
    Hunt(hunt::HuntArgs),
    /// Per rule and version, from one hunt pass: hits, alerts after the schedule replay,
    /// the change against the previous version, and accuracy against ground truth.
    Backtest(backtest::BacktestArgs),
    /// Load, inspect and compare rule packs (every version of every rule).
    #[command(subcommand)]
    Rules(rules::RulesCommand),
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// Input files or directories (walked recursively; formats detected from content).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The dataset directory to create or add to.
    #[arg(long)]
    out: PathBuf,
    /// Elastic mapping the data stands for: windows-integration, winlogbeat-8, winlogbeat-7.
    #[arg(long, default_value = "windows-integration")]
    mapping: String,
    /// Index name the data stands for (default: the data stream or index each event would
    /// have gone to under the mapping).
    #[arg(long)]
    index: Option<String>,
    /// Leave out host.os.type/family, as Winlogbeat before 7.12 did.
    #[arg(long)]
    no_host_os: bool,
    /// Parquet codec: zstd, zstd:LEVEL, lz4_raw, snappy, none.
    #[arg(long, default_value = "zstd:3")]
    codec: String,
    /// Maximum size of a row group's values once decoded, in MiB (8: the fastest two-column
    /// scan of 8 to 256 measured by `QUARRY_BENCH_ROWGROUPS=1 cargo bench --bench convert`).
    #[arg(long, default_value_t = 8)]
    row_group_mb: usize,
    /// Maximum rows of a row group.
    #[arg(long, default_value_t = 131072)]
    row_group_rows: usize,
    /// Approximate peak memory of the run, in MiB: half of it buffers rows, the rest is
    /// sorting and encoding a partition when it is written.
    #[arg(long, default_value_t = 256)]
    memory_mb: usize,
    /// Print no progress bar and no summary (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // Without a handler Ctrl-C still kills the run; staging is cleaned by the next run.
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    match cli.command {
        Command::Convert(args) => run_convert(args, &cancel),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Gen(args) => gen::run(args, &cancel),
        Command::Hunt(args) => hunt::run(args, &cancel),
        Command::Backtest(args) => backtest::run(args, &cancel),
    }
}

fn run_convert(args: ConvertArgs, cancel: &AtomicBool) -> i32 {
    let Some(mapping) = MappingProfile::parse(&args.mapping) else {
        eprintln!(
            "quarry: unknown --mapping {:?} (expected windows-integration, winlogbeat-8 or winlogbeat-7)",
            args.mapping
        );
        return 2;
    };
    let Some(codec) = Codec::parse(&args.codec) else {
        eprintln!("quarry: unknown --codec {:?}", args.codec);
        return 2;
    };
    let opts = ConvertOptions {
        mapping,
        index: args.index.clone(),
        pipeline: ingest::pipeline::PipelineOptions {
            host_os: !args.no_host_os,
        },
        layout: LayoutConfig {
            codec,
            row_group_bytes: args.row_group_mb.max(1) << 20,
            row_group_rows: args.row_group_rows.max(1),
            memory_budget: (args.memory_mb.max(2) << 20) / 2,
        },
        ..ConvertOptions::default()
    };
    let started = Instant::now();
    let mut bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let result = ingest::convert(&args.inputs, &args.out, &opts, &mut bar, cancel);
    bar.clear();
    match result {
        Ok(report) => {
            if !args.quiet {
                print_summary(&report, &args.out, started.elapsed().as_secs_f64());
            } else {
                print_bad_examples(&report);
            }
            if report.bad_total() > 0 {
                1
            } else {
                0
            }
        }
        Err(e) => {
            eprintln!("quarry: {e}");
            match e {
                IngestError::Input { .. } => 2,
                IngestError::Cancelled => 130,
                _ => 3,
            }
        }
    }
}

/// The progress bar on a terminal; nothing otherwise.
pub(super) struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new(visible: bool) -> Bar {
        Bar {
            bar: visible.then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            }),
        }
    }

    fn clear(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl ConvertProgress for Bar {
    fn start(&mut self, total_bytes: u64, _inputs: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total_bytes);
        }
    }
    fn input(&mut self, input: &ingest::reader::InputFile) {
        if let Some(b) = &self.bar {
            let name = input
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            b.set_message(name);
        }
    }
    fn advance(&mut self, bytes: u64, events: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
            let secs = b.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{events} events, {:.0} events/s",
                events as f64 / secs
            ));
        }
    }
    fn finishing(&mut self) {
        if let Some(b) = &self.bar {
            b.set_message("writing parts");
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_bad_examples(report: &ConvertReport) {
    for b in &report.bad_examples {
        eprintln!(
            "bad record: {}: {}: {}",
            b.location,
            b.reason.describe(),
            b.detail
        );
    }
}

fn print_summary(report: &ConvertReport, out: &std::path::Path, secs: f64) {
    for r in &report.repairs {
        println!("repaired: {r}");
    }
    println!("inputs:");
    for i in &report.inputs {
        match &i.skipped {
            Some(why) => println!("  skipped  {}  ({why})", i.path.display()),
            None => println!(
                "  {:<6} {:>10}  {:>8} events  {:>5} bad  {}",
                i.format,
                mib(i.bytes),
                i.events,
                i.bad_records,
                i.path.display()
            ),
        }
    }
    println!("events by channel and event code:");
    for ((channel, code), n) in &report.by_channel_code {
        let channel = if channel.is_empty() {
            "(no channel)"
        } else {
            channel
        };
        println!("  {n:>9}  {channel}  {code}");
    }
    if !report.flags.is_empty() {
        println!("kept but flagged (quarry.flags):");
        for (flag, n) in &report.flags {
            let note = if flag == ingest::FLAG_ZERO_FILETIME {
                "  time is the zero FILETIME (1601); stored under date=__HIVE_DEFAULT_PARTITION__"
            } else {
                ""
            };
            println!("  {n:>9}  {flag}{note}");
        }
    }
    if report.bad_total() > 0 {
        println!("bad records (skipped):");
        for (reason, n) in &report.bad {
            println!("  {n:>9}  {}", reason.describe());
        }
        print_bad_examples(report);
    }
    if !report.coercions.is_empty() {
        println!("values stored as null (wrong type for the field):");
        for (field, n) in &report.coercions {
            println!("  {n:>9}  {field}");
        }
    }
    let range = match (report.min_timestamp_us, report.max_timestamp_us) {
        (Some(a), Some(b)) => format!(
            "{} .. {}",
            ingest::format_micros(a),
            ingest::format_micros(b)
        ),
        _ => "-".into(),
    };
    println!(
        "run {}: {} events, {} bad, {} in, {} out in {} parts, time range {range}, {:.1}s ({:.1} MB/s) -> {}",
        report.run,
        report.events,
        report.bad_total(),
        mib(report.bytes_in),
        mib(report.bytes_out),
        report.parts,
        secs,
        report.bytes_in as f64 / 1e6 / secs.max(1e-9),
        out.display()
    );
}

/// Prints a run's warnings. Versions that will not run, or cannot fire, for the same reason
/// are summarised once a reason covers more than a few of them (hunting Elastic's whole
/// history lists thousands): the count, the reason and the first versions.
pub(crate) fn print_warnings(warnings: &[String]) {
    for line in warning_lines(warnings) {
        eprintln!("warning: {line}");
    }
}

fn warning_lines(warnings: &[String]) -> Vec<String> {
    const LISTED: usize = 3;
    let mut lines = Vec::new();
    let mut groups: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for w in warnings {
        let Some((version, reason)) = version_and_reason(w) else {
            lines.push(w.clone());
            continue;
        };
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, members)) => members.push((version, w)),
            None => groups.push((reason, vec![(version, w)])),
        }
    }
    for (reason, members) in groups {
        if members.len() <= LISTED {
            lines.extend(members.iter().map(|(_, w)| w.to_string()));
            continue;
        }
        let first: Vec<&str> = members.iter().take(LISTED).map(|(v, _)| *v).collect();
        lines.push(format!(
            "{} versions {reason}: {} and {} more",
            members.len(),
            first.join(", "),
            members.len() - LISTED
        ));
    }
    lines
}

/// `ID@V (name) will not run: why` and `ID@V (name) cannot fire on D: why` as the version
/// and the reason (`will not run: why`, `cannot fire on D: why`).
fn version_and_reason(warning: &str) -> Option<(&str, &str)> {
    let (version, _) = warning.split_once(' ')?;
    let at = [" will not run: ", " cannot fire on "]
        .iter()
        .filter_map(|p| warning.find(p))
        .min()?;
    Some((version, &warning[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::warning_lines;

    #[test]
    fn warnings_of_one_reason_are_summarised_past_three_versions() {
        let mut warnings: Vec<String> = (1..=5)
            .map(|v| {
                format!("r@{v} (EQL rule (old)) will not run: language `eql` is not supported yet")
            })
            .collect();
        warnings.push("a@1 (A) cannot fire on ds: field `x` is absent".into());
        warnings.push("rule pack: bad.toml: invalid".into());
        assert_eq!(
            warning_lines(&warnings),
            vec![
                "rule pack: bad.toml: invalid".to_string(),
                "5 versions will not run: language `eql` is not supported yet: r@1, r@2, r@3 and 2 more"
                    .to_string(),
                "a@1 (A) cannot fire on ds: field `x` is absent".to_string(),
            ]
        );
    }
}
