//! Helpers the benchmarks share.

use std::ffi::OsStr;
use std::path::Path;

/// Peak resident memory (KiB) of the release binary run with `args`, or `None` when the
/// binary is not built (`cargo build --release` first).
#[allow(dead_code)] // each bench uses one of the two
pub fn peak_memory_kib<I, S>(args: I) -> Option<u64>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/quarry");
    if !exe.exists() {
        return None;
    }
    peak_memory_of(&exe, args)
}

/// Peak resident memory (KiB) of `program` run with `args` (its output discarded).
#[allow(dead_code)]
pub fn peak_memory_of<I, S>(program: &Path, args: I) -> Option<u64>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if child.try_wait().ok()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Some(peak)
}
