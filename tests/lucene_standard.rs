//! The standard analyzer against Lucene 8's own StandardTokenizer + LowerCaseFilter (Debian's
//! `liblucene8-java`): real script blocks from ../shared/data and generated tricky text.
//! Skips with a reason when Java or the Lucene jar is absent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use quarry::cond::analyzer::Analyzer;

use crate::util;

const LUCENE_CORE: &str = "/usr/share/java/lucene-core-8.7.0.jar";

fn lucene_tokens(records: &[String]) -> Option<Vec<Vec<String>>> {
    let jar = Path::new(LUCENE_CORE);
    if !jar.exists() || Command::new("javac").arg("-version").output().is_err() {
        eprintln!("skipped: {LUCENE_CORE} or javac is absent (apt-get install liblucene8-java)");
        return None;
    }
    let tmp = util::temp_dir();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lucene/LuceneTokens.java");
    let ok = Command::new("javac")
        .args(["-cp", LUCENE_CORE, "-d"])
        .arg(tmp.path())
        .arg(&src)
        .status()
        .expect("javac")
        .success();
    assert!(ok, "javac failed");
    let classpath = format!("{LUCENE_CORE}:{}", tmp.path().display());
    let mut child = Command::new("java")
        .args(["-cp", &classpath, "LuceneTokens"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("java");
    let input = records.join("\0");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("java output");
    writer.join().expect("writer").expect("write");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<Vec<String>> = text
        .split('\n')
        .take(records.len())
        .map(|l| {
            if l.is_empty() {
                Vec::new()
            } else {
                l.split('\u{1}').map(str::to_string).collect()
            }
        })
        .collect();
    assert_eq!(lines.len(), records.len());
    Some(lines)
}

fn real_script_blocks() -> Vec<String> {
    let Some(data) = util::shared_data() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["otrf/ps4104", "otrf/full"] {
        if let Ok(entries) = std::fs::read_dir(data.join(dir)) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(s) = v.get("ScriptBlockText").and_then(|s| s.as_str()) {
                out.push(s.replace('\0', ""));
            }
        }
    }
    out
}

/// Seeded random text over the characters where word-break rules are subtle.
fn generated(count: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "q",
        "7",
        "0",
        ".",
        ":",
        "::",
        "'",
        "_",
        "-",
        "$",
        "(",
        ")",
        " ",
        "\t",
        "\r\n",
        "\"",
        ",",
        ";",
        "/",
        "\\",
        "@",
        "#",
        "+",
        "=",
        "[",
        "]",
        "Net",
        "Enum",
        "1.5",
        "v2",
        "x86_64",
        "don't",
        "e.g.",
        "\u{e9}",
        "\u{dc}",
        "\u{df}",
        "\u{130}",
        "\u{3b1}",
        "\u{416}",
        "\u{5d0}",
        "\u{627}",
        "\u{4e2d}",
        "\u{6587}",
        "\u{3042}",
        "\u{30ab}",
        "\u{ac00}",
        "\u{e01}",
        "\u{301}",
        "\u{200d}",
        "\u{1f600}",
        "\u{2764}",
        "\u{fe0f}",
        "\u{1f1fa}\u{1f1f8}",
        "\u{ff21}",
        "\u{a0}",
        "\u{2019}",
        "\u{b7}",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            if i % 50 == 0 {
                // Runs around Lucene's 255-unit token limit.
                return "ab".repeat(120 + (i % 200));
            }
            let len = 1 + next() % 24;
            (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect()
        })
        .collect()
}

#[test]
fn standard_analyzer_matches_lucene() {
    let real = real_script_blocks();
    let synthetic = generated(4000);
    let records: Vec<String> = real.iter().chain(&synthetic).cloned().collect();
    let Some(lucene) = lucene_tokens(&records) else {
        return;
    };
    let mut ascii_diffs = Vec::new();
    let mut other_diffs = Vec::new();
    let mut real_diffs = 0;
    for (i, (record, want)) in records.iter().zip(&lucene).enumerate() {
        let got = Analyzer::Standard.tokens(record);
        if &got != want {
            real_diffs += usize::from(i < real.len());
            let diff = format!("{record:?}\n  quarry {got:?}\n  lucene {want:?}");
            if record.is_ascii() {
                ascii_diffs.push(diff);
            } else {
                other_diffs.push(diff);
            }
        }
    }
    println!(
        "{} real script blocks ({real_diffs} differ), {} generated: {} ASCII differences, {} non-ASCII differences",
        real.len(),
        synthetic.len(),
        ascii_diffs.len(),
        other_diffs.len()
    );
    for d in other_diffs.iter().take(15) {
        println!("{d}");
    }
    assert!(
        ascii_diffs.is_empty(),
        "{:#?}",
        &ascii_diffs[..ascii_diffs.len().min(10)]
    );
    assert_eq!(
        real_diffs, 0,
        "real script blocks must tokenize as Lucene does"
    );
    // Known: zero-width joiners and emoji sequences next to other symbols, where UAX#29 of
    // newer Unicode and Lucene 8's Unicode 9 grammar disagree.
    assert!(
        other_diffs.len() * 50 < synthetic.len(),
        "{}",
        other_diffs.len()
    );
}
