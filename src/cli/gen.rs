//! `quarry gen`: arguments, progress bar and summary of the generator.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use quarry::gen::{self, GenOptions, GenReport};
use quarry::ingest::{ConvertOptions, MappingProfile};
use quarry::rules::pack::{self, LoadOptions, Pack};

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// The dataset directory to create or add to.
    #[arg(long)]
    out: PathBuf,
    /// Number of events (default 10000 unless --size is given).
    #[arg(long, conflicts_with = "size")]
    events: Option<u64>,
    /// Volume of Winlogbeat NDJSON the events amount to: 500MB, 10GB, 2GiB, ...
    #[arg(long)]
    size: Option<String>,
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2024-03-01")]
    start: String,
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    #[arg(long, default_value_t = 50)]
    users: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// windows-integration, winlogbeat-8 or winlogbeat-7.
    #[arg(long, default_value = "windows-integration")]
    mapping: String,
    /// Leave out the labels.* ground-truth columns and the incident windows.
    #[arg(long)]
    no_truth: bool,
    /// Share of script executions with new text, 0 (fleet-like) to 1 (all distinct).
    #[arg(long, default_value_t = 0.02)]
    distinct: f64,
    /// Attack campaigns to inject (default: one per 25,000 events, at least 2).
    #[arg(long)]
    campaigns: Option<u64>,
    /// Rule packs whose versions get synthesised true positives (default: the built-in seed pack).
    #[arg(long = "rules")]
    rules: Vec<PathBuf>,
    /// A converted dataset whose script blocks replace the built-in benign families.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Also write the raw events as Winlogbeat NDJSON to this file.
    #[arg(long)]
    ndjson: Option<PathBuf>,
    /// Approximate peak memory, in MiB (as for convert).
    #[arg(long, default_value_t = 256)]
    memory_mb: usize,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: GenArgs, cancel: &AtomicBool) -> i32 {
    let (opts, pack) = match gen_options(&args) {
        Ok(o) => o,
        Err(usage) => {
            eprintln!("quarry: {usage}");
            return 2;
        }
    };
    let mut bar = super::Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let started = Instant::now();
    let result = gen::generate(&args.out, &opts, &pack, &mut bar, cancel);
    bar.clear();
    match result {
        Ok(report) => {
            if !args.quiet {
                print_summary(&args, &report, started.elapsed().as_secs_f64());
            }
            0
        }
        Err(quarry::ingest::IngestError::Cancelled) => {
            eprintln!("quarry: interrupted; the dataset is unchanged");
            130
        }
        Err(e) => {
            eprintln!("quarry: {e}");
            3
        }
    }
}

/// The generator's options and the pack to synthesise positives for, or what is wrong with
/// the command line.
fn gen_options(args: &GenArgs) -> Result<(GenOptions, Pack), String> {
    let mapping = MappingProfile::parse(&args.mapping)
        .ok_or_else(|| format!("unknown --mapping {:?}", args.mapping))?;
    let size = match args.size.as_deref().map(gen::parse_size) {
        Some(None) => {
            return Err(format!(
                "--size {:?} is not a size (e.g. 500MB, 10GB)",
                args.size
            ))
        }
        Some(Some(s)) => Some(s),
        None => None,
    };
    let start = chrono::NaiveDate::parse_from_str(&args.start, "%Y-%m-%d")
        .map_err(|_| format!("--start {:?} is not a date (YYYY-MM-DD)", args.start))?;
    if !(0.0..=1.0).contains(&args.distinct) {
        return Err("--distinct must be between 0 and 1".into());
    }
    // No pack named: the built-in seed pack.
    let pack =
        pack::load(&args.rules, &LoadOptions::default()).map_err(|e| format!("rule pack {e}"))?;
    let corpus = match &args.corpus {
        Some(dir) => match quarry::ingest::dataset::script_blocks(dir) {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                return Err(format!(
                    "--corpus {}: no script blocks found",
                    dir.display()
                ))
            }
            Err(e) => return Err(format!("--corpus: {e}")),
        },
        None => Vec::new(),
    };
    let opts = GenOptions {
        events: if size.is_some() {
            None
        } else {
            Some(args.events.unwrap_or(10_000))
        },
        size,
        days: args.days.max(1),
        start_us: start
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_micros()),
        hosts: args.hosts.max(1),
        users: args.users.max(1),
        seed: args.seed,
        truth: !args.no_truth,
        distinct: args.distinct,
        campaigns: args.campaigns,
        corpus,
        ndjson: args.ndjson.clone(),
        convert: ConvertOptions {
            mapping,
            layout: quarry::ingest::writer::LayoutConfig {
                memory_budget: (args.memory_mb.max(2) << 20) / 2,
                ..Default::default()
            },
            ..ConvertOptions::default()
        },
    };
    Ok((opts, pack))
}

fn print_summary(args: &GenArgs, report: &GenReport, secs: f64) {
    if let Some(skipped) = report.convert.inputs.iter().find_map(|i| i.skipped.clone()) {
        println!("nothing generated: {skipped}");
        return;
    }
    println!(
        "generated {} events ({} malicious in {} campaigns), {:.1} MB of NDJSON-equivalent text, {} parts, {:.1} MiB on disk, in {secs:.1}s ({:.1} MB/s) -> {}",
        report.events,
        report.malicious,
        report.incidents.len(),
        report.ndjson_bytes as f64 / 1e6,
        report.convert.parts,
        report.convert.bytes_out as f64 / 1048576.0,
        report.ndjson_bytes as f64 / 1e6 / secs.max(1e-9),
        args.out.display()
    );
    if !report.covered_versions.is_empty() {
        println!(
            "synthesised true positives for {} rule versions ({} attempts fell back to a built-in family)",
            report.covered_versions.len(),
            report.unsatisfied
        );
    }
    for i in &report.incidents {
        println!(
            "  {} on {} as {}: {} .. {}",
            i.campaign,
            i.host,
            i.user,
            quarry::ingest::format_micros(i.start_us),
            quarry::ingest::format_micros(i.end_us)
        );
    }
}
