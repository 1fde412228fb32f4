//! A hunt over a dataset whose one part is damaged: bytes flipped, the file truncated, the
//! footer overwritten. The input is a list of damages applied to a real part of the shipped
//! sample. The hunt never panics: it reports the file (and row group) it could not read,
//! or finds hits in what still decodes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quarry::hunt::{self, HuntOptions, NoProgress, VersionSelect};
use quarry::scan::TimeRange;

/// A copy of the shipped sample with only its smallest part, made once per fuzzing process:
/// the damaged bytes are written over that part for each input (inputs run one at a time).
struct Original {
    part: PathBuf,
    bytes: Vec<u8>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/sample");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("sample");
        copy_dir(&sample, &root);
        let manifest = quarry::ingest::dataset::read_manifest(&root).expect("sample manifest");
        let part = manifest
            .parts()
            .map(|p| root.join(&p.path))
            .min_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(u64::MAX))
            .expect("a part");
        // The dataset keeps only that part, so that each input costs one part's hunt.
        let rel = part.strip_prefix(&root).expect("inside").to_string_lossy().into_owned();
        let manifest_path = quarry::ingest::dataset::manifest_path(&root);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).expect("manifest"))
                .expect("manifest JSON");
        for run in json["runs"].as_array_mut().expect("runs") {
            if let Some(parts) = run["parts"].as_array_mut() {
                parts.retain(|p| p["path"] == rel.as_str());
            }
        }
        std::fs::write(&manifest_path, json.to_string()).expect("manifest");
        Original {
            bytes: std::fs::read(&part).expect("part bytes"),
            part,
            root,
            _dir: dir,
        }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // libFuzzer's hook aborts on every panic, even one quarry catches: the Arrow and Parquet
    // readers panic on some damage, and quarry turns that into the file's failure. A panic
    // that escapes quarry still reaches libFuzzer and aborts the run.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("caught? {info}"))));
    let o = original();
    let mut bytes = o.bytes.clone();
    // Each damage is 5 bytes: a kind, a 24-bit position (scaled to the file) and a value.
    for d in data.chunks_exact(5) {
        let len = bytes.len().max(1);
        let at = (u32::from_le_bytes([d[1], d[2], d[3], 0]) as usize) % len;
        match d[0] % 4 {
            0 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= d[4].max(1);
                }
            }
            1 => bytes.truncate(at),
            // Near the footer, where the metadata and page index live.
            2 => {
                let tail = len.saturating_sub(1 + (at % 4096));
                if let Some(b) = bytes.get_mut(tail) {
                    *b = d[4];
                }
            }
            _ => bytes.insert(at.min(bytes.len()), d[4]),
        }
    }
    std::fs::write(&o.part, &bytes).expect("write damaged part");
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/rules");
    // Three versions whose queries differ in shape: terms only, with a list column, with
    // negations.
    let versions = VersionSelect::parse("1,105,320").expect("versions");
    let opts = HuntOptions {
        packs: vec![pack],
        datasets: vec![o.root.clone()],
        versions,
        threads: 1,
        ..Default::default()
    };
    let pass = hunt::Pass {
        summarise_scripts: true,
        ..Default::default()
    };
    let found = hunt::Session::open(&opts)
        .and_then(|session| session.run(&pass, &NoProgress, &AtomicBool::new(false)));
    if let Ok(report) = found {
        for f in &report.failures {
            assert!(!f.file.is_empty(), "a failure without its file");
        }
    }
});
