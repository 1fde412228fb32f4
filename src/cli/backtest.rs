//! `quarry backtest`: arguments and the per-rule tables of a backtest.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::hunt::{failed, SelectArgs};
use super::Bar;
use quarry::backtest::{self, BacktestOptions, BacktestReport, RuleReport, TruthSource};

#[derive(clap::Args, Debug)]
pub struct BacktestArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Ground truth: the keyword column whose value `malicious` marks the events a rule
    /// should alert on; or a CSV or Parquet file of incident windows (columns host, start,
    /// end) or of labelled events (columns file and row, optionally dataset, as in a hit
    /// table; or any of @timestamp and the hit table's event fields), where a `label`
    /// column, if there is one, must say `malicious`.
    #[arg(long, default_value = "labels.truth")]
    truth: String,
    /// No ground truth: hits, alerts and diffs only.
    #[arg(long)]
    no_truth: bool,
    /// A proposed exception (KQL): what each version would lose with `and not (...)` added.
    #[arg(long)]
    exception: Option<String>,
    /// Example events shown per version diff.
    #[arg(long, default_value_t = 3)]
    examples: usize,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the report as a self-contained HTML page, DIR/index.html (charts of
    /// alerts per day, hits, precision and recall per version, clusters and diffs).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

pub fn run(args: BacktestArgs, cancel: &AtomicBool) -> i32 {
    let usage = |m: String| {
        eprintln!("quarry: {m}");
        2
    };
    let hunt = match args.select.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let opts = BacktestOptions {
        hunt,
        truth: (!args.no_truth).then(|| {
            let path = PathBuf::from(&args.truth);
            let table = path.extension().is_some_and(|e| {
                e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("parquet")
            });
            match table || path.is_file() {
                true => TruthSource::File(path),
                false => TruthSource::Column(args.truth.clone()),
            }
        }),
        examples: args.examples,
        exception: args.exception.clone(),
    };
    let bar = Bar::new(!args.json && std::io::stderr().is_terminal());
    let result = backtest::run(&opts, &bar, cancel);
    bar.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    super::print_warnings(&report.warnings);
    for f in &report.failures {
        eprintln!("error: {f}");
    }
    if let Some(dir) = &args.report {
        match backtest::report::write(&report, dir) {
            Ok(path) => eprintln!("report: {}", path.display()),
            Err(e) => {
                eprintln!("quarry: cannot write the report: {e}");
                return 3;
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("quarry: {e}");
                return 3;
            }
        }
    } else {
        print_tables(&report);
    }
    if report.failures.is_empty() {
        0
    } else {
        1
    }
}

fn print_tables(report: &BacktestReport) {
    println!(
        "{} to {} ({:.1} days), {} rows in {} row groups read once. {}",
        report.start.as_deref().unwrap_or("?"),
        report.end.as_deref().unwrap_or("?"),
        report.days,
        report.rows,
        report.units,
        report.ground_truth(),
    );
    for rule in &report.rules {
        println!("\n{}  {}", rule.rule_id, rule.name);
        print_versions(rule);
        print_clusters(rule);
        print_alerts_per_day(rule);
        print_what_ifs(rule);
        print_changes(rule);
    }
}

/// One line per version: counts, changes against the previous one, and truth figures.
fn print_versions(rule: &RuleReport) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "{:>7} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7}",
        "version", "type", "changed", "hits", "alerts", "capped", "dropped", "quiet", "hosts",
        "users", "gained", "lost", "TP", "FP", "FN", "prec", "recall", "FP/day"
    );
    for v in &rule.versions {
        let t = v.truth.as_ref();
        let n = |x: Option<usize>| x.map_or("-".to_string(), |x| x.to_string());
        println!(
            "{:>7} {:>9} {:>7} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7}",
            v.version,
            v.rule_type,
            if v.query_changed { "yes" } else { "" },
            v.hits,
            v.alerts,
            v.capped_executions,
            v.dropped_by_cap,
            n(v.quiet),
            v.hosts,
            v.users,
            format!("+{}", v.gained),
            format!("-{}", v.lost),
            n(t.map(|t| t.true_positives)),
            n(t.map(|t| t.false_positives)),
            n(t.map(|t| t.false_negatives)),
            pct(t.and_then(|t| t.precision)),
            pct(t.and_then(|t| t.recall)),
            t.map_or("-".to_string(), |t| format!("{:.2}", t.false_positives_per_day)),
        );
    }
}

/// The last version's noisiest hits or false positives, each with its exception.
fn print_clusters(rule: &RuleReport) {
    if let Some(last) = rule.versions.last().filter(|v| !v.clusters.is_empty()) {
        let what = match last.truth {
            Some(_) => "false positives",
            None => "hits",
        };
        println!(
            "\n  noisiest {what} of v{} (an exception for each):",
            last.version
        );
        for c in &last.clusters {
            let what = match &c.example {
                Some(head) => format!("script shape {}: {}", c.value, one_line(head, 60)),
                None => format!("{}: {}", c.field, c.value),
            };
            println!("    {:>6}  {what}", c.hits);
            match &c.exception {
                Some(e) => println!("            exception: {e}"),
                None => println!("            (no phrase without digits shared by its heads)"),
            }
        }
    }
}

fn print_alerts_per_day(rule: &RuleReport) {
    if let Some(last) = rule
        .versions
        .last()
        .filter(|v| !v.alerts_per_day.is_empty())
    {
        let days: Vec<String> = last
            .alerts_per_day
            .iter()
            .map(|d| format!("{} {}", d.day, d.alerts))
            .collect();
        println!(
            "\n  alerts per day of v{}: {}",
            last.version,
            days.join(", ")
        );
    }
}

/// What each version would find with the exception added.
fn print_what_ifs(rule: &RuleReport) {
    if rule.versions.iter().any(|v| v.what_if.is_some()) {
        println!(
            "\n  with the exception: {:>7} {:>7} {:>7} {:>9} {:>8}",
            "version", "hits", "removed", "FP gone", "TP lost"
        );
        for v in &rule.versions {
            if let Some(w) = &v.what_if {
                let n = |x: Option<usize>| x.map_or("-".to_string(), |x| x.to_string());
                println!(
                    "                      {:>7} {:>7} {:>7} {:>9} {:>8}",
                    v.version,
                    w.hits,
                    w.removed,
                    n(w.false_positives_removed),
                    n(w.true_positives_lost)
                );
            }
        }
    }
}

/// Examples of the hits each version gained and lost against the previous one.
fn print_changes(rule: &RuleReport) {
    for v in rule.versions.iter().filter(|v| v.gained + v.lost > 0) {
        println!(
            "\n  v{}: +{} -{} against the previous version",
            v.version, v.gained, v.lost
        );
        for (sign, examples) in [("+", &v.gained_examples), ("-", &v.lost_examples)] {
            for e in examples {
                println!(
                    "    {sign} {}  {}  {}  {}",
                    e.time,
                    e.host.as_deref().unwrap_or("-"),
                    e.user.as_deref().unwrap_or("-"),
                    e.matched.join("; ")
                );
                if let Some(script) = &e.script {
                    println!("        {}", one_line(&script.head, 100));
                }
            }
        }
    }
}

/// The first `chars` characters of `text` on one line, white space runs as one space.
fn one_line(text: &str, chars: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let flat = words.join(" ");
    match flat.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}
