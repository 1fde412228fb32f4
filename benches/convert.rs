//! Conversion throughput: ECS/Winlogbeat NDJSON and EVTX into a Parquet dataset.
//!
//! Data: an NDJSON file of `QUARRY_BENCH_MB` MiB (default 256) generated here with a fixed
//! seed — PowerShell 4104 events in Winlogbeat 8 shape, script bodies of 40 bytes to 24 KiB
//! drawn from a few dozen parameterised templates, spread over 30 days and 50 hosts, so every
//! day partition is written several times as the memory budget fills. The EVTX part uses every
//! `.evtx` file under `../shared/data/evtx` (skipped when absent) and compares quarry's
//! conversion with the `evtx` crate alone parsing the same files to JSON values.
//!
//! Each figure is checked: the converted event count must equal the generated line count and
//! the EVTX record count. Peak memory is the converter's VmHWM, read from /proc while the
//! release binary converts the NDJSON file as a child process.
//!
//! With `QUARRY_BENCH_CODECS=1` the NDJSON file is also converted with zstd(1), zstd(3),
//! LZ4_RAW and no compression, and each dataset's script-text column is read back on one
//! thread: dataset size against decode time, the trade-off behind the default codec.
//!
//! With `QUARRY_BENCH_ROWGROUPS=1`, one day of events is converted with several row-group
//! limits and the two columns every hunt reads are scanned one row group per task.
//!
//! Run: `cargo bench --bench convert` (add `QUARRY_BENCH_MB=5120` for the 5 GB check).

use std::ffi::OsStr;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use quarry::ingest::{convert, ConvertOptions, NoProgress};

mod common;

// The allocator of the `quarry` binary, so the in-process figures are the binary's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const VERBS: &[&str] = &[
    "Get", "Set", "New", "Remove", "Invoke", "Test", "Import", "Export",
];
const NOUNS: &[&str] = &[
    "Service",
    "Process",
    "ChildItem",
    "CimInstance",
    "ItemProperty",
    "ScheduledTask",
    "NetAdapter",
    "Module",
    "Content",
    "WinEvent",
    "LocalGroupMember",
    "DnsClientCache",
];

fn script(rng: &mut Rng) -> String {
    let lines = match rng.below(10) {
        0..=5 => 1 + rng.below(4),
        6..=8 => 5 + rng.below(60),
        _ => 100 + rng.below(500),
    };
    let mut s = String::new();
    for i in 0..lines {
        let verb = VERBS[rng.below(VERBS.len() as u64) as usize];
        let noun = NOUNS[rng.below(NOUNS.len() as u64) as usize];
        s.push_str(&format!(
            "$r{i} = {verb}-{noun} -Name 'item{}' -ErrorAction SilentlyContinue | Where-Object {{ $_.Status -ne 'Stopped' }}\r\n",
            rng.below(1000)
        ));
    }
    s
}

fn generate_ndjson(path: &Path, mib: u64) -> u64 {
    generate_ndjson_days(path, mib, 30)
}

fn generate_ndjson_days(path: &Path, mib: u64, days: u64) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create ndjson"));
    let target = mib << 20;
    let (mut written, mut events) = (0u64, 0u64);
    let start = 1_704_067_200_000i64; // 2024-01-01
    while written < target {
        let ts = start + rng.below(days * 86_400_000) as i64;
        let host = rng.below(50);
        let doc = serde_json::json!({
            "@timestamp": chrono::DateTime::from_timestamp_millis(ts).expect("ts").to_rfc3339(),
            "host": {"name": format!("ws-{host:04}")},
            "event": {"code": "4104", "kind": "event", "provider": "Microsoft-Windows-PowerShell"},
            "winlog": {"channel": "Microsoft-Windows-PowerShell/Operational", "event_id": "4104",
                "record_id": events + 1, "computer_name": format!("ws-{host:04}.corp.example"),
                "provider_name": "Microsoft-Windows-PowerShell", "level": "verbose",
                "process": {"pid": 1000 + rng.below(8000), "thread": {"id": 1000 + rng.below(8000)}},
                "user": {"identifier": format!("S-1-5-21-1004336348-1177238915-682003330-{}", 1000 + rng.below(200))},
                "event_data": {"MessageNumber": "1", "MessageTotal": "1", "ScriptBlockText": script(&mut rng),
                    "ScriptBlockId": format!("{:016x}-{:04x}", rng.next(), rng.below(65536)), "Path": ""}}
        });
        let line = doc.to_string();
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
        written += line.len() as u64 + 1;
        events += 1;
    }
    out.flush().expect("flush");
    events
}

fn evtx_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            evtx_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "evtx") {
            out.push(p);
        }
    }
}

fn convert_timed(inputs: &[PathBuf], out: &Path) -> (f64, u64) {
    let t = Instant::now();
    let report = convert(
        inputs,
        out,
        &ConvertOptions::default(),
        &mut NoProgress,
        &AtomicBool::new(false),
    )
    .expect("convert");
    (t.elapsed().as_secs_f64(), report.events)
}

/// Times the `evtx` crate alone parsing `files` to JSON values against quarry converting
/// them, five rounds each, and prints both rates and their ratio.
fn compare_evtx(label: &str, files: &[PathBuf], tmp: &Path) {
    let evtx_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let rounds = 5;
    // The crate alone, once with its default settings (one thread) and once on every core,
    // as quarry runs it.
    let mut alone = [0.0f64; 2];
    let mut records = 0u64;
    for (slot, threads) in [(0, 1), (1, 0)] {
        let t = Instant::now();
        for _ in 0..rounds {
            records = 0;
            for f in files {
                let settings = evtx::ParserSettings::default().num_threads(threads);
                let mut parser = evtx::EvtxParser::from_path(f)
                    .expect("evtx")
                    .with_configuration(settings);
                records += parser.records_json_value().filter(|r| r.is_ok()).count() as u64;
            }
        }
        alone[slot] = t.elapsed().as_secs_f64() / rounds as f64;
    }
    let mut ours = 0.0;
    for round in 0..rounds {
        let out = tmp.join(format!("ds-evtx-{round}"));
        let (secs, events) = convert_timed(files, &out);
        assert_eq!(events, records, "every EVTX record must convert");
        ours += secs;
        let _ = std::fs::remove_dir_all(out);
    }
    ours /= rounds as f64;
    let mb = evtx_bytes as f64 / 1e6;
    println!(
        "{label}: {} files, {:.1} MiB, {records} records\n  evtx crate alone, 1 thread:  {:.1} MB/s ({:.0} records/s)\n  evtx crate alone, all cores: {:.1} MB/s ({:.0} records/s)\n  quarry convert:              {:.1} MB/s ({:.0} events/s)\n  ratio to the crate alone: {:.2} (1 thread), {:.2} (all cores)",
        files.len(),
        evtx_bytes as f64 / 1048576.0,
        mb / alone[0],
        records as f64 / alone[0],
        mb / alone[1],
        records as f64 / alone[1],
        mb / ours,
        records as f64 / ours,
        alone[0] / ours,
        alone[1] / ours
    );
}

/// Writes one large EVTX file made of `count` chunks cycled from the distinct, non-empty
/// 64 KiB chunks of `files` behind a fresh file header, the shape of a busy host's log (the
/// shared samples are small, mostly preallocated files). Returns the chunk count written.
fn assemble_evtx(files: &[PathBuf], out: &Path, count: usize) -> Option<usize> {
    const CHUNK: usize = 65536;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        if !bytes.starts_with(b"ElfFile\0") || bytes.len() < 4096 {
            continue;
        }
        let header = usize::from(u16::from_le_bytes([bytes[40], bytes[41]]));
        let mut off = header;
        while off + CHUNK <= bytes.len() {
            let chunk = &bytes[off..off + CHUNK];
            let first = u64::from_le_bytes(chunk[8..16].try_into().expect("8 bytes"));
            let last = u64::from_le_bytes(chunk[16..24].try_into().expect("8 bytes"));
            if chunk.starts_with(b"ElfChnk\0") && last >= first && seen.insert(chunk.to_vec()) {
                chunks.push(chunk.to_vec());
            }
            off += CHUNK;
        }
    }
    if chunks.is_empty() {
        return None;
    }
    let count = count.min(usize::from(u16::MAX));
    let mut header = vec![0u8; 4096];
    header[..8].copy_from_slice(b"ElfFile\0");
    header[16..24].copy_from_slice(&(count as u64 - 1).to_le_bytes());
    header[24..32].copy_from_slice(&1u64.to_le_bytes());
    header[32..36].copy_from_slice(&128u32.to_le_bytes());
    header[36..38].copy_from_slice(&1u16.to_le_bytes());
    header[38..40].copy_from_slice(&3u16.to_le_bytes());
    header[40..42].copy_from_slice(&4096u16.to_le_bytes());
    header[42..44].copy_from_slice(&(count as u16).to_le_bytes());
    let crc = crc32fast::hash(&header[..120]);
    header[124..128].copy_from_slice(&crc.to_le_bytes());
    let mut w = BufWriter::new(std::fs::File::create(out).expect("create evtx"));
    w.write_all(&header).expect("write");
    for i in 0..count {
        w.write_all(&chunks[i % chunks.len()]).expect("write");
    }
    w.flush().expect("flush");
    Some(count)
}

/// Seconds to decompress and decode one column from every part of a dataset (one thread).
fn read_column_secs(dataset: &Path, column: &str) -> (f64, u64) {
    let mut parts = Vec::new();
    collect_parts(dataset, &mut parts);
    let t = Instant::now();
    let mut values = 0u64;
    for part in parts {
        let file = std::fs::File::open(&part).expect("part");
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader");
        let leaves: Vec<usize> = builder
            .parquet_schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.path().parts()[0] == column)
            .map(|(i, _)| i)
            .collect();
        let mask = parquet::arrow::ProjectionMask::leaves(builder.parquet_schema(), leaves);
        for batch in builder.with_projection(mask).build().expect("build") {
            values += batch.expect("batch").num_rows() as u64;
        }
    }
    (t.elapsed().as_secs_f64(), values)
}

fn collect_parts(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_parts(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut parts = Vec::new();
    collect_parts(dir, &mut parts);
    parts
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Size and read cost of the script text column under each codec, same input, same run.
fn compare_codecs(input: &Path, tmp: &Path, events: u64) {
    use quarry::ingest::writer::Codec;
    let column = "powershell.file.script_block_text";
    for codec in [
        Codec::Zstd(1),
        Codec::Zstd(3),
        Codec::Lz4Raw,
        Codec::Uncompressed,
    ] {
        let out = tmp.join(format!("ds-{}", codec.name()));
        let mut opts = ConvertOptions::default();
        opts.layout.codec = codec;
        let t = Instant::now();
        let report = convert(
            &[input.to_path_buf()],
            &out,
            &opts,
            &mut NoProgress,
            &AtomicBool::new(false),
        )
        .expect("convert");
        let write = t.elapsed().as_secs_f64();
        assert_eq!(report.events, events);
        let (read, rows) = read_column_secs(&out, column);
        assert_eq!(rows, events);
        println!(
            "codec {:>12}: dataset {:>7.1} MiB, convert {write:.2}s, read {column} {read:.3}s",
            codec.name(),
            dir_bytes(&out) as f64 / 1048576.0
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Row-group size against scan time: one day of events (one partition, so files hold many
/// row groups) converted with several row-group limits, then the two columns a hunt always
/// reads (`event.category`, `powershell.file.script_block_text`) decoded one row group per
/// task on every core, and on one thread.
fn compare_row_groups(tmp: &Path, mib: u64) {
    use rayon::prelude::*;
    let input = tmp.join("one-day.ndjson");
    let events = generate_ndjson_days(&input, mib, 1);
    let columns = ["event.category", "powershell.file.script_block_text"];
    for (rows, mb) in [
        (8_192, 64),
        (131_072, 8),
        (131_072, 16),
        (131_072, 32),
        (131_072, 64),
        (1_048_576, 256),
    ] {
        let out = tmp.join(format!("ds-rg-{rows}-{mb}"));
        let mut opts = ConvertOptions::default();
        opts.layout.row_group_rows = rows;
        opts.layout.row_group_bytes = mb << 20;
        let report = convert(
            std::slice::from_ref(&input),
            &out,
            &opts,
            &mut NoProgress,
            &AtomicBool::new(false),
        )
        .expect("convert");
        assert_eq!(report.events, events);
        let mut parts = Vec::new();
        collect_parts(&out, &mut parts);
        let units: Vec<(PathBuf, usize)> = parts
            .iter()
            .flat_map(|p| {
                let file = std::fs::File::open(p).expect("part");
                let b =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                        .expect("reader");
                (0..b.metadata().num_row_groups())
                    .map(move |rg| (p.clone(), rg))
                    .collect::<Vec<_>>()
            })
            .collect();
        let read = |(path, rg): &(PathBuf, usize)| -> u64 {
            let file = std::fs::File::open(path).expect("part");
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("reader");
            let leaves: Vec<usize> = b
                .parquet_schema()
                .columns()
                .iter()
                .enumerate()
                .filter(|(_, c)| columns.contains(&c.path().parts()[0].as_str()))
                .map(|(i, _)| i)
                .collect();
            let mask = parquet::arrow::ProjectionMask::leaves(b.parquet_schema(), leaves);
            b.with_row_groups(vec![*rg])
                .with_projection(mask)
                .build()
                .expect("build")
                .map(|batch| batch.expect("batch").num_rows() as u64)
                .sum()
        };
        let t = Instant::now();
        let serial: u64 = units.iter().map(read).sum();
        let one = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let parallel: u64 = units.par_iter().map(read).sum();
        let all = t.elapsed().as_secs_f64();
        assert_eq!((serial, parallel), (events, events));
        println!(
            "row groups of <= {rows:>7} rows / {mb:>3} MiB: {:>4} groups in {:>2} files, {:>6.1} MiB; scan 2 columns: 1 thread {one:.3}s, all cores {all:.3}s",
            units.len(),
            parts.len(),
            dir_bytes(&out) as f64 / 1048576.0
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("convert: bench");
        return;
    }
    let mib: u64 = std::env::var("QUARRY_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ndjson = tmp.path().join("events.ndjson");
    let generated = generate_ndjson(&ndjson, mib);
    let bytes = std::fs::metadata(&ndjson).expect("size").len();
    let (secs, events) =
        convert_timed(std::slice::from_ref(&ndjson), &tmp.path().join("ds-ndjson"));
    assert_eq!(events, generated, "every generated line must convert");
    println!(
        "ndjson: {:.1} MiB, {events} events in {secs:.2}s: {:.1} MB/s, {:.0} events/s (all cores)",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1e6 / secs,
        events as f64 / secs
    );
    if std::env::var("QUARRY_BENCH_CODECS").is_ok() {
        compare_codecs(&ndjson, tmp.path(), generated);
    }
    if std::env::var("QUARRY_BENCH_ROWGROUPS").is_ok() {
        compare_row_groups(tmp.path(), mib);
    }
    let peak_out = tmp.path().join("ds-peak");
    let args = [
        OsStr::new("convert"),
        OsStr::new("--quiet"),
        OsStr::new("--out"),
    ];
    match common::peak_memory_kib(
        args.iter()
            .copied()
            .chain([peak_out.as_os_str(), ndjson.as_os_str()]),
    ) {
        Some(kib) => println!(
            "ndjson: peak memory of `quarry convert` on {:.0} MiB input: {:.0} MiB",
            bytes as f64 / 1048576.0,
            kib as f64 / 1024.0
        ),
        None => println!("ndjson: peak memory not measured (build target/release/quarry first)"),
    }

    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/evtx");
    let mut files = Vec::new();
    evtx_files(&shared, &mut files);
    files.sort();
    // Identical files (the same sample shipped twice) are converted once: compare like with like.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(quarry::ingest::dataset::fingerprint(f).expect("fingerprint")));
    if files.is_empty() {
        println!("evtx: skipped ({} is absent)", shared.display());
        return;
    }
    compare_evtx("evtx (shared files)", &files, tmp.path());
    let assembled = tmp.path().join("assembled.evtx");
    match assemble_evtx(&files, &assembled, 1024) {
        Some(chunks) => compare_evtx(
            &format!("evtx (one file of {chunks} chunks)"),
            std::slice::from_ref(&assembled),
            tmp.path(),
        ),
        None => println!("evtx: no complete chunk found to assemble a large file"),
    }
}
