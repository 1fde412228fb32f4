//! Faults from outside: a full disk under `convert`, `hunt` and `backtest --report`, processes
//! killed at random points, and two processes writing the same dataset or hit table. After
//! each, what was there before is intact, nothing partial is visible, and a rerun gives
//! exactly the hits of an uninterrupted run.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{quarry, repo, temp_dir};

/// A small tmpfs mounted on a temporary directory, unmounted on drop. Mounting needs root;
/// without it the disk-full tests skip with the reason.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = temp_dir();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a small tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk, then frees `leave` bytes: the next writer runs out part of the way.
    fn fill_leaving(&self, leave: usize) {
        let reserve = self.path().join("reserve");
        std::fs::write(&reserve, vec![0u8; leave]).expect("reserve");
        let mut filler = std::fs::File::create(self.path().join("filler")).expect("filler");
        let block = vec![0u8; 4096];
        while filler
            .write_all(&block)
            .and_then(|()| filler.flush())
            .is_ok()
        {}
        drop(filler);
        std::fs::remove_file(reserve).expect("free the reserve");
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run quarry")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Winlogbeat NDJSON of `events` generated events.
fn ndjson(dir: &Path, name: &str, events: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let o = run(quarry()
        .args(["gen", "--events", &events.to_string(), "--days", "3"])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(dir.join(format!("{name}.dataset")))
        .arg("--ndjson")
        .arg(&path));
    assert!(o.status.success(), "gen: {}", stderr(&o));
    path
}

fn convert(input: &Path, dataset: &Path) -> Command {
    let mut c = quarry();
    c.args(["convert", "--quiet"])
        .arg(input)
        .arg("--out")
        .arg(dataset);
    c
}

fn hunt(dataset: &Path, out: &Path) -> Command {
    let mut c = quarry();
    c.args(["hunt", "--quiet", "--rules"])
        .arg(repo("datasets/rules"))
        .arg("--data")
        .arg(dataset)
        .arg("--out")
        .arg(out);
    c
}

/// A hit as content, without where the event is stored (parts are named by run): rule,
/// version, time and the triage fields.
type HitContent = String;

/// The hits of every seed version over `dataset`, as content.
fn hits_of(dataset: &Path) -> Vec<HitContent> {
    let tmp = temp_dir();
    let out = tmp.path().join("hits.jsonl");
    let o = run(&mut hunt(dataset, &out));
    assert!(o.status.success(), "hunt: {}", stderr(&o));
    content(&out)
}

/// The hits of a JSON-lines hit table, as content, sorted.
fn content(table: &Path) -> Vec<HitContent> {
    let text = std::fs::read_to_string(table).expect("hits");
    let mut hits: Vec<HitContent> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("a whole hit");
            if let Some(m) = v.as_object_mut() {
                for k in ["dataset", "file", "row"] {
                    m.remove(k);
                }
            }
            v.to_string()
        })
        .collect();
    hits.sort();
    hits
}

/// The dataset reads: its manifest parses, every part it lists opens as Parquet, and no
/// Parquet file outside `_quarry` is unlisted (nothing partial is visible).
fn assert_consistent(dataset: &Path) {
    if !dataset.exists() {
        return; // killed before it made the directory
    }
    if !dataset.join("_quarry/dataset.json").exists() {
        let visible = crate::util::parts(dataset);
        assert!(visible.is_empty(), "parts without a manifest: {visible:?}");
        return;
    }
    let manifest = quarry::ingest::dataset::read_manifest(dataset).expect("manifest reads");
    let listed: BTreeSet<PathBuf> = manifest.parts().map(|p| dataset.join(&p.path)).collect();
    for p in &listed {
        let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        parquet::file::reader::SerializedFileReader::new(f)
            .unwrap_or_else(|e| panic!("{} is not whole: {e}", p.display()));
    }
    for p in crate::util::parts(dataset) {
        if !p.starts_with(dataset.join("_quarry")) {
            assert!(
                listed.contains(&p),
                "{} is visible but not listed",
                p.display()
            );
        }
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_full_disk_during_convert_leaves_the_dataset_as_it_was() {
    let Some(disk) = SmallDisk::mount(6 << 20) else {
        return;
    };
    let inputs = temp_dir();
    let first = ndjson(inputs.path(), "first.ndjson", 600, 1);
    let second = ndjson(inputs.path(), "second.ndjson", 4000, 2);
    let dataset = disk.path().join("ds");
    let o = run(&mut convert(&first, &dataset));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = hits_of(&dataset);
    assert!(!before.is_empty());
    disk.fill_leaving(64 << 10);
    let o = run(&mut convert(&second, &dataset));
    assert!(!o.status.success(), "a convert that cannot fit succeeded");
    let message = stderr(&o);
    assert!(
        message.contains("No space left on device")
            && message.contains(disk.path().to_str().unwrap_or("")),
        "no clear error naming the place: {message}"
    );
    assert_consistent(&dataset);
    assert_eq!(hits_of(&dataset), before, "the dataset changed");
    // With room again, the same command completes, and the dataset holds both inputs.
    disk.free();
    let o = run(&mut convert(&second, &dataset));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_consistent(&dataset);
    let both = hits_of(&dataset);
    let fresh = temp_dir();
    for input in [&first, &second] {
        let o = run(&mut convert(input, &fresh.path().join("ds")));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(both, hits_of(&fresh.path().join("ds")));
}

#[test]
fn a_full_disk_during_hunt_keeps_the_earlier_hit_table() {
    let Some(disk) = SmallDisk::mount(4 << 20) else {
        return;
    };
    let table = disk.path().join("hits.jsonl");
    let o = run(&mut hunt(&repo("datasets/sample"), &table));
    assert!(o.status.success(), "{}", stderr(&o));
    let earlier = std::fs::read(&table).expect("table");
    disk.fill_leaving(16 << 10);
    // Spilling too: a tiny sort budget sends the hits to disk before the table is written.
    let o = run(hunt(&repo("datasets/sample"), &table).args(["--sort-memory-mb", "1"]));
    assert!(!o.status.success(), "a hunt that cannot fit succeeded");
    let message = stderr(&o);
    assert!(
        message.contains("No space left on device"),
        "no clear error: {message}"
    );
    assert_eq!(std::fs::read(&table).expect("table"), earlier);
    assert_eq!(
        names(disk.path()),
        ["filler", "hits.jsonl"],
        "something partial is left"
    );
}

#[test]
fn a_full_disk_during_backtest_keeps_the_earlier_report() {
    let Some(disk) = SmallDisk::mount(2 << 20) else {
        return;
    };
    let report = disk.path().join("report");
    let backtest = || {
        let mut c = quarry();
        c.args(["backtest", "--rules"])
            .arg(repo("datasets/rules"))
            .arg("--data")
            .arg(repo("datasets/sample"))
            .arg("--report")
            .arg(&report)
            .stdout(Stdio::null());
        c
    };
    let o = run(&mut backtest());
    assert!(o.status.success(), "{}", stderr(&o));
    let earlier = std::fs::read(report.join("index.html")).expect("report");
    disk.fill_leaving(8 << 10);
    let o = run(&mut backtest());
    assert!(!o.status.success(), "a report that cannot fit was written");
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(report.join("index.html")).expect("report"),
        earlier
    );
    assert_eq!(names(&report), ["index.html"], "something partial is left");
}

/// Delays for killing a process, spread over `span` (deterministic, so a failure repeats).
fn kill_points(n: usize, span: Duration, seed: u64) -> Vec<Duration> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            span.mul_f64((x % 10_000) as f64 / 10_000.0)
        })
        .collect()
}

/// Starts `cmd`, kills it (SIGKILL) after `delay` unless it ended before; whether it ended.
fn run_and_kill(cmd: &mut Command, delay: Duration) -> bool {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().expect("wait").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// How long `cmd` takes when left alone.
fn duration_of(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    started.elapsed()
}

#[test]
fn convert_killed_anywhere_leaves_a_readable_dataset_and_a_rerun_completes_it() {
    let inputs = temp_dir();
    let a = ndjson(inputs.path(), "a.ndjson", 3000, 3);
    let b = ndjson(inputs.path(), "b.ndjson", 3000, 4);
    let reference = temp_dir();
    let both = [a.as_path(), b.as_path()];
    let convert_both = |dataset: &Path| {
        let mut c = quarry();
        c.args(["convert", "--quiet"])
            .args(both)
            .arg("--out")
            .arg(dataset);
        c
    };
    let span = duration_of(&mut convert_both(&reference.path().join("ds")));
    let expected = hits_of(&reference.path().join("ds"));
    let mut killed = 0;
    for (i, delay) in kill_points(12, span, 7).into_iter().enumerate() {
        let work = temp_dir();
        let dataset = work.path().join("ds");
        // A second kill point in the rerun, half as far in.
        for d in [delay, delay / 2] {
            if !run_and_kill(&mut convert_both(&dataset), d) {
                killed += 1;
            }
            assert_consistent(&dataset);
        }
        let o = run(&mut convert_both(&dataset));
        assert!(o.status.success(), "rerun {i}: {}", stderr(&o));
        assert_consistent(&dataset);
        assert_eq!(hits_of(&dataset), expected, "kill point {i} at {delay:?}");
    }
    assert!(
        killed >= 6,
        "only {killed} runs were killed before they ended"
    );
}

#[test]
fn hunt_killed_anywhere_leaves_the_earlier_table_and_a_rerun_gives_every_hit() {
    let work = temp_dir();
    let dataset = repo("datasets/sample");
    let table = work.path().join("hits.jsonl");
    let spilling = |table: &Path| {
        let mut c = hunt(&dataset, table);
        c.args(["--sort-memory-mb", "1"]);
        c
    };
    let span = duration_of(&mut spilling(&table));
    let complete = std::fs::read(&table).expect("table");
    let mut killed = 0;
    for delay in kill_points(10, span, 11) {
        if !run_and_kill(&mut spilling(&table), delay) {
            killed += 1;
        }
        // Either the run ended, writing the same table, or the earlier table is untouched.
        assert_eq!(
            std::fs::read(&table).expect("table"),
            complete,
            "at {delay:?}"
        );
    }
    assert!(
        killed >= 5,
        "only {killed} runs were killed before they ended"
    );
    // The next run clears what killed runs left beside the table.
    let o = run(&mut spilling(&table));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&table).expect("table"), complete);
    assert_eq!(names(work.path()), ["hits.jsonl"]);
}

#[test]
fn two_writers_of_one_dataset_or_one_table_do_not_corrupt_it() {
    let inputs = temp_dir();
    let a = ndjson(inputs.path(), "a.ndjson", 4000, 5);
    let work = temp_dir();
    let dataset = work.path().join("ds");
    let spawn = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let first = spawn(&mut convert(&a, &dataset));
    let second = spawn(&mut convert(&a, &dataset));
    let outcomes = [first, second].map(|c| c.wait_with_output().expect("wait"));
    assert!(outcomes.iter().any(|o| o.status.success()));
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(o).contains("another quarry process is writing"),
            "an unclear failure: {}",
            stderr(o)
        );
    }
    assert_consistent(&dataset);
    let reference = temp_dir();
    let o = run(&mut convert(&a, &reference.path().join("ds")));
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = hits_of(&reference.path().join("ds"));
    assert_eq!(hits_of(&dataset), expected);
    // Two hunts into one table.
    let table = work.path().join("hits.jsonl");
    let first = spawn(&mut hunt(&dataset, &table));
    let second = spawn(&mut hunt(&dataset, &table));
    let outcomes = [first, second].map(|c| c.wait_with_output().expect("wait"));
    assert!(outcomes.iter().any(|o| o.status.success()));
    for o in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(o).contains("another quarry process is writing this hit table"),
            "an unclear failure: {}",
            stderr(o)
        );
    }
    assert_eq!(content(&table), expected);
}

/// Rewrites a Parquet part with `change` applied to its record batches.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn rewrite_part(
    path: &Path,
    change: &dyn Fn(arrow::record_batch::RecordBatch) -> arrow::record_batch::RecordBatch,
) {
    let file = std::fs::File::open(path).expect("part");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<_> = reader.map(|b| change(b.expect("batch"))).collect();
    let schema = batches.first().expect("a batch").schema();
    let out = std::fs::File::create(path).expect("rewrite");
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema, None).expect("writer");
    for b in &batches {
        writer.write(b).expect("write");
    }
    writer.close().expect("close");
}

/// `batch` with column `name` replaced by `f(column)` (its field renamed to `f`'s type).
fn map_column(
    batch: arrow::record_batch::RecordBatch,
    name: &str,
    f: &dyn Fn(&arrow::array::ArrayRef) -> arrow::array::ArrayRef,
) -> arrow::record_batch::RecordBatch {
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.name() == name {
            let new = f(column);
            fields.push(Field::new(name, new.data_type().clone(), true));
            columns.push(new);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("batch")
}

#[test]
fn parts_whose_schemas_differ_are_hunted_as_elasticsearch_would_read_them() {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::compute::cast;
    use arrow::datatypes::DataType;
    use std::sync::Arc;
    let work = temp_dir();
    let dataset = work.path().join("ds");
    let o = run(quarry()
        .args([
            "gen", "--events", "3000", "--days", "6", "--seed", "9", "--out",
        ])
        .arg(&dataset));
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = hits_of(&dataset);
    assert!(!expected.is_empty());
    let parts = crate::util::parts(&dataset);
    assert!(parts.len() >= 5, "{parts:?}");
    let text = "powershell.file.script_block_text";
    type Change = Box<dyn Fn(arrow::record_batch::RecordBatch) -> arrow::record_batch::RecordBatch>;
    let variants: Vec<(&str, Change)> = vec![
        (
            "a column added later (a field the older files lack)",
            Box::new(|b| {
                let rows = b.num_rows();
                let mut fields: Vec<_> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields.push(arrow::datatypes::Field::new(
                    "custom.added",
                    DataType::Utf8,
                    true,
                ));
                let mut columns = b.columns().to_vec();
                columns.push(Arc::new(StringArray::from(vec![Some("x"); rows])) as ArrayRef);
                arrow::record_batch::RecordBatch::try_new(
                    Arc::new(arrow::datatypes::Schema::new(fields)),
                    columns,
                )
                .expect("batch")
            }),
        ),
        (
            "text as LargeUtf8",
            Box::new(move |b| {
                map_column(b, text, &|c| cast(c, &DataType::LargeUtf8).expect("cast"))
            }),
        ),
        (
            "text as a string view",
            Box::new(move |b| {
                map_column(b, text, &|c| cast(c, &DataType::Utf8View).expect("cast"))
            }),
        ),
        (
            "a keyword as a dictionary, as Spark and pandas often write it",
            Box::new(|b| {
                map_column(b, "host.name", &|c| {
                    cast(
                        c,
                        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                    )
                    .expect("cast")
                })
            }),
        ),
    ];
    for (i, (what, change)) in variants.iter().enumerate() {
        let copy = work.path().join(format!("variant-{i}"));
        copy_dir(&dataset, &copy);
        let parts = crate::util::parts(&copy);
        for p in &parts[..3] {
            rewrite_part(p, change.as_ref());
        }
        let found = hits_of(&copy);
        assert!(
            found == expected,
            "{what}: {} hits, {} expected",
            found.len(),
            expected.len()
        );
    }
    // Numbers in a text column are text to Elasticsearch ("1"): that file's scripts are
    // gone, so are its hits, and nothing fails.
    let copy = work.path().join("numbers");
    copy_dir(&dataset, &copy);
    let parts = crate::util::parts(&copy);
    rewrite_part(&parts[0], &|b| {
        map_column(b, text, &|c| {
            Arc::new(arrow::array::Int64Array::from(vec![Some(1); c.len()])) as ArrayRef
        })
    });
    let found = hits_of(&copy);
    assert!(found.iter().all(|h| expected.contains(h)));
    assert!(found.len() < expected.len());
    // A struct where text belongs holds nothing a query can match: that file fails, by
    // name, and every other file is still hunted.
    let copy = work.path().join("struct");
    copy_dir(&dataset, &copy);
    let parts = crate::util::parts(&copy);
    rewrite_part(&parts[0], &|b| {
        map_column(b, text, &|c| {
            let inner = Arc::new(arrow::datatypes::Field::new("inner", DataType::Utf8, true));
            Arc::new(arrow::array::StructArray::from(vec![(
                inner,
                Arc::clone(c),
            )])) as ArrayRef
        })
    });
    let out = work.path().join("hits.jsonl");
    let o = run(&mut hunt(&copy, &out));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let name = parts[0]
        .strip_prefix(&copy)
        .expect("inside")
        .display()
        .to_string();
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains(text),
        "the failure names the file and the column: {}",
        stderr(&o)
    );
    let found = content(&out);
    assert!(found.iter().all(|h| expected.contains(h)));
    assert!(found.len() < expected.len() && !found.is_empty());
}

/// Runs `cmd` to its end: its exit code (-1 when a signal ended it), its standard error and
/// its peak resident memory in MiB. The peak is the kernel's high-water mark of the process
/// (`VmHWM`), read every few milliseconds until it exits: `wait4`'s `ru_maxrss` would also
/// count the test process's own memory, which the child has for a moment before `exec`.
fn run_measured(cmd: &mut Command) -> (i32, String, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().expect("stderr reader");
    eprintln!("{cmd:?}: peak {} MiB", peak_kb / 1024);
    (status.code().unwrap_or(-1), stderr, peak_kb / 1024)
}

/// A 4104 event as an ECS NDJSON line, its script `script`.
fn event_line(time: &str, host: &str, script: &str) -> String {
    serde_json::json!({
        "@timestamp": time,
        "event": {"code": "4104", "category": ["process"]},
        "host": {"name": host, "os": {"type": "windows"}},
        "winlog": {"channel": "Microsoft-Windows-PowerShell/Operational", "event_id": "4104"},
        "powershell": {"file": {"script_block_text": script}},
    })
    .to_string()
}

#[test]
fn records_beyond_what_elasticsearch_accepts_are_skipped_and_big_ones_stay_bounded() {
    let work = temp_dir();
    let filler = "Get-Process; ".repeat((101 << 20) / 13);
    let input = work.path().join("huge.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("input"));
    for (i, script) in [
        "DsGetSiteName",
        &format!("{filler} DsGetSiteName"),
        "NetShareEnum",
    ]
    .iter()
    .enumerate()
    {
        let line = event_line(&format!("2024-03-01T00:00:0{i}Z"), "h", script);
        writeln!(f, "{line}").expect("write");
    }
    drop(f);
    let dataset = work.path().join("ds");
    let (code, err, rss) = run_measured(&mut convert(&input, &dataset));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 2") && err.contains("larger than Elasticsearch accepts"),
        "{err}"
    );
    assert!(rss < 300, "{rss} MiB to skip a 101 MiB line");
    let manifest = quarry::ingest::dataset::read_manifest(&dataset).expect("manifest");
    assert_eq!(manifest.events, 2);
    // The biggest record Elasticsearch takes (a 90 MiB script) converts, is hunted and is
    // backtested in memory a small multiple of its size.
    let input = work.path().join("big.ndjson");
    let script = format!("{} DsGetSiteName", "Get-Process; ".repeat((90 << 20) / 13));
    std::fs::write(
        &input,
        event_line("2024-03-01T00:00:00Z", "h", &script) + "\n",
    )
    .expect("input");
    drop(script);
    let dataset = work.path().join("big");
    let (code, err, rss) = run_measured(&mut convert(&input, &dataset));
    assert_eq!(code, 0, "{err}");
    assert!(rss < 700, "convert: {rss} MiB for a 90 MiB record");
    let (code, err, rss) = run_measured(&mut hunt(&dataset, &work.path().join("hits.jsonl")));
    assert_eq!(code, 0, "{err}");
    assert!(rss < 500, "hunt: {rss} MiB for a 90 MiB record");
    assert_eq!(
        content(&work.path().join("hits.jsonl")).len(),
        29,
        "every version hits it"
    );
    let mut backtest = quarry();
    backtest
        .args(["backtest", "--no-truth", "--rules"])
        .arg(repo("datasets/rules"))
        .arg("--data")
        .arg(&dataset);
    let (code, err, rss) = run_measured(&mut backtest);
    assert_eq!(code, 0, "{err}");
    assert!(rss < 600, "backtest: {rss} MiB for a 90 MiB record");
}

#[test]
fn a_million_tiny_events_convert_and_hunt_in_bounded_memory() {
    let work = temp_dir();
    let input = work.path().join("tiny.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).expect("input"));
    for i in 0..1_000_000u32 {
        writeln!(
            f,
            r#"{{"@timestamp":"2024-03-0{}T{:02}:{:02}:{:02}Z","event":{{"code":"4104"}},"message":"m{}"}}"#,
            1 + i % 3,
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            i % 7
        )
        .expect("write");
    }
    drop(f);
    let dataset = work.path().join("ds");
    let (code, err, rss) = run_measured(&mut convert(&input, &dataset));
    assert_eq!(code, 0, "{err}");
    assert!(rss < 512, "convert: {rss} MiB");
    let manifest = quarry::ingest::dataset::read_manifest(&dataset).expect("manifest");
    assert_eq!(manifest.events, 1_000_000);
    let (code, err, rss) = run_measured(&mut hunt(&dataset, &work.path().join("hits.jsonl")));
    assert_eq!(code, 0, "{err}");
    assert!(rss < 512, "hunt: {rss} MiB");
}

#[test]
fn nested_duplicated_and_deep_json_is_refused_as_elasticsearch_refuses_it() {
    let work = temp_dir();
    let input = work.path().join("odd.ndjson");
    let deep = format!(
        r#"{{"@timestamp":"2024-03-01T00:00:00Z","a":{}1{}}}"#,
        r#"{"b":"#.repeat(1000),
        "}".repeat(1000)
    );
    let lines = [
        event_line("2024-03-01T00:00:00Z", "h", "DsGetSiteName"),
        r#"{"@timestamp":"2024-03-01T00:00:01Z","host":{"name":"a","name":"b"}}"#.to_string(),
        deep,
        event_line("2024-03-01T00:00:03Z", "h", "NetShareEnum"),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").expect("input");
    let dataset = work.path().join("ds");
    let o = run(&mut convert(&input, &dataset));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("line 2") && err.contains("duplicate key `name`"),
        "{err}"
    );
    assert!(
        err.contains("line 3") && err.contains("recursion limit"),
        "{err}"
    );
    let manifest = quarry::ingest::dataset::read_manifest(&dataset).expect("manifest");
    assert_eq!(manifest.events, 2);
}

/// A quarry rule pack of one rule with `queries` as its versions 1, 2, ...
fn pack_of(path: &Path, queries: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("pack"));
    writeln!(
        f,
        "rule_id = \"00000000-0000-4000-8000-000000000001\"\nname = \"many\"\ntype = \"query\"\n\
         language = \"kuery\"\nseverity = \"low\"\nrisk_score = 21\nindex = [\"logs-*\"]\n\
         interval = \"5m\"\nfrom = \"now-6m\"\nmax_signals = 100"
    )
    .expect("write");
    for (i, q) in queries.iter().enumerate() {
        let q = q.replace('\\', "\\\\").replace('"', "\\\"");
        writeln!(f, "\n[[versions]]\nversion = {}\nquery = \"{q}\"", i + 1).expect("write");
    }
}

#[test]
fn ten_thousand_versions_and_huge_or_deep_queries_run_in_bounded_time_and_memory() {
    let work = temp_dir();
    let pack = work.path().join("pack.toml");
    let mut queries: Vec<String> = (0..10_000)
        .map(|i| format!("event.code: 4104 and powershell.file.script_block_text: W{i}x"))
        .collect();
    // One query of 50,000 terms and one nested 100,000 levels deep.
    queries.push(
        (0..50_000)
            .map(|i| format!("host.name: h{i}"))
            .collect::<Vec<_>>()
            .join(" or "),
    );
    queries.push(format!(
        "{}a: 1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    ));
    pack_of(&pack, &queries);
    let started = Instant::now();
    let mut cmd = quarry();
    cmd.args(["hunt", "--quiet", "--rules"])
        .arg(&pack)
        .arg("--data")
        .arg(repo("datasets/sample"))
        .arg("--out")
        .arg(work.path().join("hits.jsonl"));
    let (code, err, rss) = run_measured(&mut cmd);
    let took = started.elapsed();
    eprintln!("10,002 versions over the sample: {took:?}");
    assert_eq!(code, 0, "{err}");
    assert!(rss < 512, "{rss} MiB");
    assert!(took < Duration::from_secs(120), "{took:?}");
    assert!(
        err.contains("@10002") && err.contains("will not run") && err.contains("nesting"),
        "the deep query is refused with its version and why: {err}"
    );
}

#[test]
fn a_damaged_footer_is_a_failure_of_its_file_never_a_panic() {
    use quarry::hunt::{HuntOptions, NoProgress, VersionSelect};
    use std::sync::atomic::AtomicBool;
    let work = temp_dir();
    let dataset = work.path().join("ds");
    let o = run(quarry()
        .args([
            "gen", "--events", "300", "--days", "1", "--seed", "3", "--out",
        ])
        .arg(&dataset));
    assert!(o.status.success(), "{}", stderr(&o));
    let parts = crate::util::parts(&dataset);
    assert_eq!(parts.len(), 1);
    let part = &parts[0];
    let original = std::fs::read(part).expect("part");
    let n = original.len();
    let footer_len =
        u32::from_le_bytes(original[n - 8..n - 4].try_into().expect("4 bytes")) as usize;
    let footer = n - 8 - footer_len..n;
    let opts = HuntOptions {
        packs: vec![repo("datasets/rules")],
        datasets: vec![dataset.clone()],
        versions: VersionSelect::List([1, 320].into_iter().collect()),
        threads: 1,
        ..Default::default()
    };
    // One session for every damaged copy: each pass reads the part afresh.
    let session = quarry::hunt::Session::open(&opts).expect("session");
    let pass = quarry::hunt::Pass {
        summarise_scripts: true,
        ..Default::default()
    };
    // Found by fuzzing (fuzz/fuzz_targets/parquet_part.rs): a flipped footer byte gave a
    // column chunk a negative offset, on which the Parquet reader panicked (quarry now
    // checks the offsets first). Bytes all over a part's footer are flipped here in turn,
    // with two masks. The reader still panics on some damage (a dictionary-encoded chunk with no
    // dictionary page): that panic is caught and fails the unit, naming its file.
    let (mut hunted, mut failed) = (0, 0);
    let mut caught = BTreeSet::new();
    // Some 600 bytes spread over the footer, and its last 16 (length and magic).
    let step = (footer.len() / 600).max(1);
    let positions: Vec<usize> = footer.clone().step_by(step).chain(n - 16..n).collect();
    for &at in &positions {
        for mask in [0x07u8, 0x80] {
            let mut bytes = original.clone();
            bytes[at] ^= mask;
            std::fs::write(part, &bytes).expect("damage");
            let report = session
                .run(&pass, &NoProgress, &AtomicBool::new(false))
                .unwrap_or_else(|e| panic!("byte {at} ^ {mask:#x}: the hunt itself failed: {e}"));
            for f in &report.failures {
                assert!(f.to_string().contains(&f.file) && !f.file.is_empty());
                if f.message.contains("the Parquet reader failed") {
                    caught.insert(f.message.clone());
                }
            }
            match report.failures.is_empty() {
                true => hunted += 1,
                false => failed += 1,
            }
        }
    }
    std::fs::write(part, &original).expect("restore");
    eprintln!(
        "{} of {} footer bytes: {hunted} damages hunted through, {failed} reported; panics of \
         the Parquet reader caught: {caught:?}",
        positions.len(),
        footer.len()
    );
    assert!(failed > 0);
}

#[test]
fn unreadable_and_missing_parts_are_reported_and_every_other_part_is_hunted() {
    let work = temp_dir();
    let dataset = work.path().join("ds");
    let o = run(quarry()
        .args([
            "gen", "--events", "2000", "--days", "5", "--seed", "4", "--out",
        ])
        .arg(&dataset));
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = hits_of(&dataset);
    let parts = crate::util::parts(&dataset);
    assert!(parts.len() >= 4);
    // Root reads any file whatever its mode, so a directory stands in for an unreadable
    // file (opening it as a file fails); another part is gone.
    std::fs::remove_file(&parts[0]).expect("remove");
    std::fs::create_dir(&parts[0]).expect("a directory in its place");
    std::fs::remove_file(&parts[1]).expect("remove");
    let out = work.path().join("hits.jsonl");
    let o = run(&mut hunt(&dataset, &out));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for p in &parts[..2] {
        let name = p
            .strip_prefix(&dataset)
            .expect("inside")
            .display()
            .to_string();
        assert!(
            stderr(&o).contains(&name),
            "{name} is not named: {}",
            stderr(&o)
        );
    }
    let found = content(&out);
    assert!(!found.is_empty() && found.len() < expected.len());
    assert!(found.iter().all(|h| expected.contains(h)));
}
