//! Incremental hunts (`quarry hunt --state`): as the dataset grows and the rule pack
//! changes, and when killed at random points, the table equals a full hunt's, and only what
//! changed is hunted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{quarry, repo, temp_dir};

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run quarry");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn hunt(pack: &Path, dataset: &Path, out: &Path, state: Option<&Path>) -> Command {
    let mut c = quarry();
    c.args(["hunt", "--rules"])
        .arg(pack)
        .arg("--data")
        .arg(dataset)
        .arg("--out")
        .arg(out);
    if let Some(s) = state {
        c.arg("--state").arg(s);
    }
    c
}

/// Generated NDJSON of `days` days from `start`, converted into `dataset`.
fn grow(work: &Path, dataset: &Path, start: &str, days: u32, seed: u64) {
    let ndjson = work.join(format!("{start}.ndjson"));
    ok(quarry()
        .args([
            "gen",
            "--events",
            "1500",
            "--days",
            &days.to_string(),
            "--start",
            start,
        ])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(work.join(format!("{start}.gen")))
        .arg("--ndjson")
        .arg(&ndjson));
    ok(quarry()
        .args(["convert", "--quiet"])
        .arg(&ndjson)
        .arg("--out")
        .arg(dataset));
}

/// The (files up to date, files hunted, pairs hunted) an incremental run printed.
fn counts(stdout: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("incremental:"))
        .expect("the incremental line");
    let n: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2])
}

/// Checks that the incremental table equals a full hunt's, byte for byte.
fn assert_equal_to_full(pack: &Path, dataset: &Path, table: &Path, work: &Path) {
    let full = work.join("full.jsonl");
    ok(&mut hunt(pack, dataset, &full, None));
    let a = std::fs::read(table).expect("incremental table");
    let b = std::fs::read(&full).expect("full table");
    assert!(!b.is_empty());
    if a != b {
        let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
        panic!(
            "the incremental table differs from a full hunt's: {} and {} lines, first \
             difference at line {first:?}:\n{:?}\n{:?}",
            a.lines().count(),
            b.lines().count(),
            first.and_then(|i| a.lines().nth(i)),
            first.and_then(|i| b.lines().nth(i)),
        );
    }
}

/// A copy of the shipped pack with v320's query changed and a version 321 added.
fn changed_pack(dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(repo(
        "datasets/rules/61ac3638-40a3-44b2-855a-985636ca985e.toml",
    ))
    .expect("pack");
    let at = original.rfind("[[versions]]").expect("versions");
    let last = &original[at..];
    let changed = last.replacen("query = '''", "query = '''\nnot host.name: ws-0001 and ", 1);
    assert_ne!(changed, last, "the last version has a query");
    let added = changed.replacen("version = 320", "version = 321", 1);
    let text = format!("{}{changed}\n{added}", &original[..at]);
    let path = dir.join("changed.toml");
    std::fs::write(&path, text).expect("pack");
    path
}

#[test]
fn incremental_hunts_equal_full_ones_as_data_grows_and_rules_change() {
    let work = temp_dir();
    let w = work.path();
    let dataset = w.join("ds");
    let state = w.join("state");
    let table = w.join("hits.jsonl");
    let pack = repo("datasets/rules");
    grow(w, &dataset, "2024-03-01", 3, 1);
    let files = crate::util::parts(&dataset).len();
    let first = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    assert_eq!(counts(&first), (0, files, files * 29));
    assert_equal_to_full(&pack, &dataset, &table, w);
    // Nothing changed: nothing is hunted.
    let again = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    assert_eq!(counts(&again), (files, 0, 0));
    assert_equal_to_full(&pack, &dataset, &table, w);
    // The dataset grows: only the new files are hunted.
    grow(w, &dataset, "2024-03-04", 2, 2);
    let now = crate::util::parts(&dataset).len();
    let grown = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    assert_eq!(counts(&grown), (files, now - files, (now - files) * 29));
    assert_equal_to_full(&pack, &dataset, &table, w);
    // The pack changes: v320's query and a new v321, on every file, and nothing else.
    let changed = changed_pack(w);
    let rehunted = ok(&mut hunt(&changed, &dataset, &table, Some(&state)));
    assert_eq!(counts(&rehunted), (0, now, now * 2));
    assert_equal_to_full(&changed, &dataset, &table, w);
    // Back to the shipped pack: v320 again, v321 gone from the table.
    let back = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    assert_eq!(counts(&back), (0, now, now));
    assert_equal_to_full(&pack, &dataset, &table, w);
    // A state of an older format (segments without rule types) is hunted again in full.
    let record = state.join("state.json");
    let text = std::fs::read_to_string(&record).expect("state record");
    let older = text.replacen("\"format\":3", "\"format\":2", 1);
    assert_ne!(older, text, "the record names its format");
    std::fs::write(&record, older).expect("older record");
    let upgraded = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    assert_eq!(counts(&upgraded), (0, now, now * 29));
    assert_equal_to_full(&pack, &dataset, &table, w);
    // A time range is applied to the table, not to what the state keeps.
    let ranged = |out: &Path, state: Option<&Path>| {
        let mut c = hunt(&pack, &dataset, out, state);
        c.args(["--from", "2024-03-02", "--to", "2024-03-04T12:00:00Z"]);
        c
    };
    ok(&mut ranged(&table, Some(&state)));
    ok(&mut ranged(&w.join("full-range.jsonl"), None));
    assert_eq!(
        std::fs::read(&table).expect("table"),
        std::fs::read(w.join("full-range.jsonl")).expect("full")
    );
}

#[test]
fn an_incremental_hunt_killed_anywhere_resumes_and_ends_equal_to_a_full_one() {
    let work = temp_dir();
    let w = work.path();
    let dataset = w.join("ds");
    let pack = repo("datasets/rules");
    // Many small files: several chunks of files per run.
    grow(w, &dataset, "2024-01-01", 45, 3);
    let files = crate::util::parts(&dataset).len();
    assert!(files >= 40, "{files} files");
    let state = w.join("state");
    let table = w.join("hits.jsonl");
    let started = Instant::now();
    ok(&mut hunt(
        &pack,
        &dataset,
        &w.join("timing.jsonl"),
        Some(&w.join("timing-state")),
    ));
    let span = started.elapsed();
    // Kill runs ever later until one ends by itself. A kill that left the state record as it
    // was (the run died in its start-up or first chunk) makes the next one wait longer; one
    // that committed keeps the delay, so the following runs die at other points of the work
    // left. Each run resumes from what the ones before it committed.
    let record = state.join("state.json");
    let mut delay = span / 16;
    let (mut killed, mut committed, mut ended) = (0, 0, false);
    for _ in 0..60 {
        let before = std::fs::read(&record).ok();
        let mut child = hunt(&pack, &dataset, &table, Some(&state))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let t = Instant::now();
        while t.elapsed() < delay && !ended {
            ended = child.try_wait().expect("wait").is_some();
            std::thread::sleep(Duration::from_millis(2));
        }
        ended = ended || child.try_wait().expect("wait").is_some();
        if ended {
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
        killed += 1;
        if std::fs::read(&record).ok() == before {
            delay = delay.mul_f64(1.3);
        } else {
            committed += 1;
        }
    }
    eprintln!("{killed} runs killed, {committed} of them after committing a chunk");
    assert!(ended, "no run ended within 60 attempts");
    assert!(
        killed >= 4,
        "only {killed} runs were killed before they ended"
    );
    assert!(
        committed > 0,
        "no killed run committed a chunk to resume from"
    );
    let last = ok(&mut hunt(&pack, &dataset, &table, Some(&state)));
    let (up_to_date, hunted, _) = counts(&last);
    assert_eq!(up_to_date + hunted, files);
    assert!(
        up_to_date > 0,
        "the killed runs left nothing to resume from"
    );
    assert_equal_to_full(&pack, &dataset, &table, w);
    // Nothing a killed run wrote is left beside the state's own files.
    let names: Vec<String> = std::fs::read_dir(&state)
        .expect("state")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("segment-"))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["state.json"],
        "nothing beside the state, no lock either"
    );
}
