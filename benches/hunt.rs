//! The hunt against its floor and its peers, on data generated here (fixed seeds).
//!
//! Datasets: `QUARRY_BENCH_EVENTS` events (default 100,000) of generated PowerShell telemetry,
//! once with every script block distinct (`--distinct 1`) and once as a realistic fleet
//! (`--distinct 0.02`: popular scripts re-run across hosts and days), each written with zstd
//! and with LZ4_RAW; kept under `target/bench-hunt/` between runs.
//!
//! On each, with every core, in one run:
//! - L: decompressing the column chunks the seed rule reads (the floor);
//! - A: decoding them to Arrow arrays;
//! - Q1: the seed rule's current version, with the files in the page cache and read from the
//!   disk (evicted first with `POSIX_FADV_DONTNEED`); Q29: its 29 versions; Q589: the 589
//!   versions of `../shared/rules/posh-kuery-history.jsonl` (when present);
//! - DuckDB, Polars and DataFusion running seed versions 2 and 320 as word-boundary regular
//!   expressions (`benches/peers.py`, in a virtual environment created with pip under
//!   `target/bench-venv`; `QUARRY_BENCH_PEERS=0` leaves them out), their hit counts beside
//!   quarry's exact ones; and what the peers would take for the 589 versions, one query per
//!   distinct query, each priced at the fastest seed query (an estimate, not a run);
//! - peak memory of `quarry hunt` (Q589, or Q29) and of each peer;
//! - Q1 over one day of a 90-day fleet dataset (ten times the events) against the full scan.
//!
//! Every time is the best of `QUARRY_BENCH_ROUNDS` (default 3) after one warm-up: the files
//! are in the page cache, as the figures in the hunt issue assume. The bench checks itself:
//! the hits of Q1, Q29 and Q589 must be exactly the reference evaluator's on the same files
//! (`tests/reference.rs`), or it panics naming the first differences: Q1 and Q29 on every part,
//! Q589 on every `QUARRY_BENCH_CHECK_EVERY`-th part (default 8; 1 checks them all, at about
//! four minutes per dataset on two cores).
//! Run: `cargo build --release && cargo bench --bench hunt`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use parquet::file::reader::{FileReader, SerializedFileReader};
use quarry::cond::analyzer::Analyzer;
use quarry::cond::fields::FieldTypes;
use quarry::gen::{generate, GenOptions};
use quarry::hunt::{hunt, HuntOptions, NoProgress};
use quarry::ingest::writer::Codec;
use quarry::ingest::NoProgress as NoConvertProgress;
use quarry::scan::TimeRange;
use rayon::prelude::*;

mod common;
#[path = "../tests/reference.rs"]
mod reference;
use reference::assert_same;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SEED_RULE: &str = "61ac3638-40a3-44b2-855a-985636ca985e";
/// The columns the seed rule's versions read.
const SEED_COLUMNS: &[&str] = &[
    "event.category",
    "host.os.type",
    "powershell.file.script_block_text",
    "file.path",
    "file.directory",
];

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The dataset `name`, generated unless a previous run left it complete.
fn dataset(name: &str, events: u64, distinct: f64, codec: Codec, days: u32) -> PathBuf {
    let dir = repo(&format!("target/bench-hunt/{name}-{events}"));
    if dir.join("_quarry/dataset.json").is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let pack = quarry::rules::pack::load(&[repo("datasets/rules")], &Default::default())
        .expect("shipped pack");
    let mut opts = GenOptions {
        events: Some(events),
        seed: 20_240_301,
        distinct,
        days,
        hosts: 500,
        users: 200,
        ..Default::default()
    };
    opts.convert.layout.codec = codec;
    let t = Instant::now();
    generate(
        &dir,
        &opts,
        &pack,
        &mut NoConvertProgress,
        &AtomicBool::new(false),
    )
    .expect("generate");
    eprintln!(
        "generated {name}: {events} events in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    dir
}

fn parts(dataset: &Path) -> Vec<PathBuf> {
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest");
    manifest.parts().map(|p| dataset.join(&p.path)).collect()
}

/// Every (file, row group) of a dataset.
fn units(dataset: &Path) -> Vec<(PathBuf, usize)> {
    parts(dataset)
        .into_iter()
        .flat_map(|p| {
            let reader =
                SerializedFileReader::new(std::fs::File::open(&p).expect("part")).expect("parquet");
            (0..reader.num_row_groups()).map(move |rg| (p.clone(), rg))
        })
        .collect()
}

fn leaf_indices(schema: &parquet::schema::types::SchemaDescriptor) -> Vec<usize> {
    (0..schema.num_columns())
        .filter(|&i| SEED_COLUMNS.contains(&schema.column(i).path().parts()[0].as_str()))
        .collect()
}

/// L: every page of the seed rule's column chunks read and decompressed, nothing decoded.
/// Returns the decompressed bytes.
fn decompress_only(units: &[(PathBuf, usize)]) -> u64 {
    units
        .par_iter()
        .map(|(path, rg)| {
            let reader =
                SerializedFileReader::new(std::fs::File::open(path).expect("part")).expect("pq");
            let row_group = reader.get_row_group(*rg).expect("row group");
            let mut bytes = 0u64;
            for i in leaf_indices(reader.metadata().file_metadata().schema_descr()) {
                let pages = row_group.get_column_page_reader(i).expect("pages");
                for page in pages {
                    bytes += page.expect("page").buffer().len() as u64;
                }
            }
            bytes
        })
        .sum()
}

/// A: the same column chunks decoded into Arrow arrays. Returns the rows.
fn decode_to_arrow(units: &[(PathBuf, usize)]) -> u64 {
    units
        .par_iter()
        .map(|(path, rg)| {
            let file = std::fs::File::open(path).expect("part");
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("reader");
            let mask = parquet::arrow::ProjectionMask::leaves(
                b.parquet_schema(),
                leaf_indices(b.parquet_schema()),
            );
            b.with_row_groups(vec![*rg])
                .with_projection(mask)
                .build()
                .expect("build")
                .map(|batch| batch.expect("batch").num_rows() as u64)
                .sum::<u64>()
        })
        .sum()
}

fn hunt_opts(packs: Vec<PathBuf>, data: &Path, rules: Vec<String>) -> HuntOptions {
    HuntOptions {
        packs,
        datasets: vec![data.to_path_buf()],
        rules,
        ..Default::default()
    }
}

/// Drops `dataset`'s files from the page cache (`POSIX_FADV_DONTNEED`), so the next read
/// comes from the disk.
fn evict(dataset: &Path) {
    use std::os::fd::AsRawFd;
    for p in parts(dataset) {
        if let Ok(f) = std::fs::File::open(&p) {
            // SAFETY: a valid descriptor; the call only advises the kernel.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn disk_bytes(dataset: &Path) -> u64 {
    parts(dataset)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Distinct queries among the runnable versions of `pack` (a version that left its query,
/// filters and indices unchanged is the same query for a peer).
fn distinct_queries(pack: &Path) -> usize {
    let pack = quarry::rules::pack::load(&[pack.to_path_buf()], &Default::default()).expect("pack");
    pack.versions
        .iter()
        .filter_map(|v| match &v.status {
            quarry::rules::pack::Status::Ready(c) => {
                Some(format!("{:?} {:?} {:?}", c.query, c.filters, v.rule.index))
            }
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Best time of `rounds` after a warm-up, and the last result.
fn best<T>(rounds: u64, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = f();
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, out)
}

/// A Python with duckdb, polars and datafusion, made once under `target/bench-venv`.
fn peer_python() -> Option<PathBuf> {
    if std::env::var("QUARRY_BENCH_PEERS").is_ok_and(|v| v == "0") {
        return None;
    }
    let venv = repo("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if !ready.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "duckdb",
                    "polars",
                    "datafusion",
                    "pyarrow",
                ])
                .status()
                .is_ok_and(|s| s.success());
        if !made {
            eprintln!(
                "peers skipped: could not create {} with pip",
                venv.display()
            );
            return None;
        }
        let _ = std::fs::write(&ready, b"");
    }
    Some(python)
}

/// One peer query: (seconds, hits, peak KiB), best of `rounds` runs of a fresh process.
fn peer(
    python: &Path,
    data: &Path,
    version: u32,
    engine: &str,
    rounds: u64,
) -> Option<(f64, u64, u64)> {
    let mut best: Option<(f64, u64, u64)> = None;
    for _ in 0..=rounds {
        let out = Command::new(python)
            .arg(repo("benches/peers.py"))
            .arg(data)
            .arg(version.to_string())
            .arg(engine)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "{engine} failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return None;
        }
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let secs = line["seconds"].as_f64()?;
        let hits = line["hits"].as_u64()?;
        if best.is_none_or(|(b, _, _)| secs < b) {
            best = Some((secs, hits, 0));
        }
    }
    let peak = common::peak_memory_of(
        python,
        [
            repo("benches/peers.py").into_os_string(),
            data.as_os_str().to_owned(),
            OsString::from(version.to_string()),
            OsString::from(engine),
        ],
    );
    best.map(|(s, h, _)| (s, h, peak.unwrap_or(0)))
}

/// The reference evaluator's hits of `pack` on every `step`-th part of `data` (1: all of
/// them), and the hunt's hits on those parts.
fn reference_and_hunt(
    pack: &Path,
    data: &Path,
    step: usize,
    report: &quarry::hunt::HuntReport,
) -> (BTreeSet<reference::HitKey>, BTreeSet<reference::HitKey>) {
    let pack = quarry::rules::pack::load(&[pack.to_path_buf()], &Default::default()).expect("pack");
    let manifest = quarry::ingest::dataset::read_manifest(data).expect("manifest");
    let parts: Vec<String> = manifest
        .parts()
        .map(|p| p.path.clone())
        .step_by(step)
        .collect();
    let types = FieldTypes::new(Analyzer::Pattern);
    let expected = reference::reference_hits_in(&pack, data, &parts, &types, TimeRange::default());
    let mut got = reference::hit_keys(report);
    got.retain(|(_, _, file, _)| parts.contains(file));
    (expected, got)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("hunt: bench");
        return;
    }
    let events = env_number("QUARRY_BENCH_EVENTS", 100_000);
    let rounds = env_number("QUARRY_BENCH_ROUNDS", 3);
    // The reference takes ~4 minutes for 589 versions on 100,000 events on two cores.
    let check_step = env_number("QUARRY_BENCH_CHECK_EVERY", 8).max(1) as usize;
    let history = repo("../shared/rules/posh-kuery-history.jsonl");
    let python = peer_python();
    println!(
        "quarry hunt benchmark: {events} events per dataset, {} threads, best of {rounds}",
        rayon::current_num_threads()
    );
    for (name, distinct) in [("distinct", 1.0), ("fleet", 0.02)] {
        for (codec_name, codec) in [("zstd", Codec::Zstd(3)), ("lz4_raw", Codec::Lz4Raw)] {
            let data = dataset(&format!("{name}-{codec_name}"), events, distinct, codec, 30);
            let units = units(&data);
            let (l, text_bytes) = best(rounds, || decompress_only(&units));
            let (a, rows) = best(rounds, || decode_to_arrow(&units));
            let run = |opts: &HuntOptions| {
                hunt(opts, &NoProgress, &AtomicBool::new(false)).expect("hunt")
            };
            let seed = vec![repo("datasets/rules")];
            let (q1, r1) = best(rounds, || {
                run(&hunt_opts(
                    seed.clone(),
                    &data,
                    vec![format!("{SEED_RULE}@320")],
                ))
            });
            let q1_opts = hunt_opts(seed.clone(), &data, vec![format!("{SEED_RULE}@320")]);
            let mut cold = f64::INFINITY;
            for _ in 0..rounds {
                evict(&data);
                let t = Instant::now();
                run(&q1_opts);
                cold = cold.min(t.elapsed().as_secs_f64());
            }
            let (q29, r29) = best(rounds, || run(&hunt_opts(seed.clone(), &data, Vec::new())));
            let q589 = history.is_file().then(|| {
                best(rounds, || {
                    run(&hunt_opts(vec![history.clone()], &data, Vec::new()))
                })
            });
            let checked = Instant::now();
            // Q1's version is one of Q29's: one reference run of the seed pack checks both.
            let (seed_expected, q29_hits) = reference_and_hunt(&seed[0], &data, 1, &r29);
            assert_same(&q29_hits, &seed_expected, "Q29");
            let mut q1_expected = seed_expected;
            q1_expected.retain(|(id, v, _, _)| id == SEED_RULE && *v == 320);
            assert_same(&reference::hit_keys(&r1), &q1_expected, "Q1");
            if let Some((_, r589)) = &q589 {
                let (expected, got) = reference_and_hunt(&history, &data, check_step, r589);
                assert_same(&got, &expected, "Q589");
            }
            eprintln!(
                "{name} / {codec_name}: the hits of Q1 and Q29 equal the reference's on every part{} (checked in {:.1}s)",
                if q589.is_none() {
                    String::new()
                } else if check_step == 1 {
                    ", Q589's too".to_string()
                } else {
                    format!(", Q589's on every {check_step}th part")
                },
                checked.elapsed().as_secs_f64()
            );
            let mut peak_args: Vec<OsString> =
                ["hunt", "--quiet", "--out"].map(OsString::from).to_vec();
            peak_args.push(repo("target/bench-hunt/hits.parquet").into_os_string());
            peak_args.push("--data".into());
            peak_args.push(data.clone().into_os_string());
            if history.is_file() {
                peak_args.push("--rules".into());
                peak_args.push(history.clone().into_os_string());
            }
            let peak = common::peak_memory_kib(&peak_args);
            let mb = text_bytes as f64 / 1e6;
            println!(
                "\n{name} / {codec_name}: {rows} rows, {} row groups, {mb:.1} MB decompressed in the seed rule's columns",
                units.len()
            );
            println!(
                "  L  decompress only   {l:>8.3}s  {:>7.2} GB/s",
                mb / 1e3 / l
            );
            println!("  A  decode to Arrow   {a:>8.3}s  {:>7.2} × L", a / l);
            let v = |r: &quarry::hunt::HuntReport, version: u32| -> u64 {
                r.summary
                    .iter()
                    .filter(|s| s.rule_version == version && s.rule_id == SEED_RULE)
                    .map(|s| s.hits)
                    .sum()
            };
            println!(
                "  Q1 seed v320         {q1:>8.3}s  {:>7.2} × L   {} hits",
                q1 / l,
                r1.hits.len()
            );
            println!(
                "  Q1 from the disk     {cold:>8.3}s  {:>7.2} × Q1   files evicted from the page cache first: {:.1} MB read",
                cold / q1,
                disk_bytes(&data) as f64 / 1e6
            );
            println!(
                "  Q29 seed, 29 versions{q29:>8.3}s  {:>7.2} × Q1  {} hits (v2: {}, v320: {})",
                q29 / q1,
                r29.hits.len(),
                v(&r29, 2),
                v(&r29, 320)
            );
            if let Some((q589, r589)) = &q589 {
                println!(
                    "  Q589 589 versions    {q589:>8.3}s  {:>7.2} × Q1  {} hits",
                    q589 / q1,
                    r589.hits.len()
                );
            }
            if let Some(kib) = peak {
                println!(
                    "  quarry hunt peak memory ({}): {:.0} MiB",
                    if history.is_file() { "Q589" } else { "Q29" },
                    kib as f64 / 1024.0
                );
            }
            if let Some(python) = &python {
                let mut fastest = f64::INFINITY;
                for version in [2, 320] {
                    for engine in ["duckdb", "polars", "datafusion"] {
                        match peer(python, &data, version, engine, rounds) {
                            Some((secs, hits, kib)) => {
                                fastest = fastest.min(secs);
                                println!(
                                "  {engine:<10} v{version:<3} {secs:>8.3}s  {:>7.2} × Q1  {hits} hits (quarry {}), peak {:.0} MiB",
                                secs / q1,
                                v(&r29, version),
                                kib as f64 / 1024.0
                            )
                            }
                            None => println!("  {engine:<10} v{version:<3} failed"),
                        }
                    }
                }
                if let Some((q589, _)) = &q589 {
                    let queries = distinct_queries(&history);
                    println!(
                        "  peers on the 589 versions, one query per distinct query: {queries} × {fastest:.3}s (the fastest peer's fastest seed query) ≥ {:.1}s, ≥ {:.0} × Q589 (an estimate: no version is priced above the seed's)",
                        queries as f64 * fastest,
                        queries as f64 * fastest / q589
                    );
                }
            }
        }
    }
    // A one-day range of a 90-day dataset against the full scan (the fleet, zstd), with ten
    // times the events: at 100,000 events a day is ~1,100 events and the hunt's fixed cost
    // (rule pack, plan, threads: a few milliseconds) is what the one-day run measures.
    let data = dataset("fleet-90-days-zstd", events * 10, 0.02, Codec::Zstd(3), 90);
    let seed = vec![repo("datasets/rules")];
    let run = |range: TimeRange| {
        let opts = HuntOptions {
            range,
            ..hunt_opts(seed.clone(), &data, vec![format!("{SEED_RULE}@320")])
        };
        hunt(&opts, &NoProgress, &AtomicBool::new(false)).expect("hunt")
    };
    let (full, all) = best(rounds, || run(TimeRange::default()));
    let day = 1_709_251_200_000_000 + 45 * 86_400_000_000; // 2024-04-15, day 46 of 90
    let one_day = TimeRange {
        from_us: Some(day),
        to_us: Some(day + 86_400_000_000),
    };
    let (part, some) = best(rounds, || run(one_day));
    let in_day: BTreeSet<_> = all
        .hits
        .iter()
        .filter(|h| one_day.contains(h.timestamp_us))
        .map(|h| (h.file.clone(), h.row))
        .collect();
    let day_hits: BTreeSet<_> = some.hits.iter().map(|h| (h.file.clone(), h.row)).collect();
    assert_eq!(
        day_hits, in_day,
        "the one-day hunt must find exactly the full scan's hits of that day"
    );
    println!(
        "\nfleet, 90 days / zstd, {} events: Q1 over all days {full:.3}s ({} hits), over one day {part:.3}s ({} hits, {} row groups pruned): {:.3} of the full scan",
        events * 10,
        all.hits.len(),
        some.hits.len(),
        some.units_pruned,
        part / full
    );
}
