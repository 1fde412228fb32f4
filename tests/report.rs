//! The backtest's HTML report: self-contained, and drawn by a real browser (headless
//! Chromium) with its charts visible in the screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{quarry, repo, temp_dir};

/// Writes the sample's backtest report into `dir` through the CLI.
fn write_report(dir: &Path) -> PathBuf {
    let out = quarry()
        .args(["backtest", "--rules"])
        .arg(repo("datasets/rules"))
        .arg("--data")
        .arg(repo("datasets/sample"))
        .args(["--exception", "user.id: S-1-5-18", "--report"])
        .arg(dir)
        .output()
        .expect("run quarry");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("index.html")
}

#[test]
fn the_report_is_one_self_contained_page_with_its_charts() {
    let tmp = temp_dir();
    let page = std::fs::read_to_string(write_report(tmp.path())).expect("the report");
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    // Nothing to fetch: no script, no stylesheet or image from elsewhere.
    assert!(!page.contains("<script"));
    assert!(!page.contains("<link") && !page.contains("<img"));
    let without_svg_namespace = page.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !without_svg_namespace.contains("http://") && !without_svg_namespace.contains("https://")
    );
    for chart in ["heatmap", "hits", "accuracy"] {
        assert_eq!(
            page.matches(&format!("<svg class=\"chart {chart}\""))
                .count(),
            1,
            "{chart}"
        );
    }
    // A heat-map cell per version and day (the sample spans 7 days), TP and FP bars per
    // version of the seed rule.
    assert_eq!(page.matches(" alerts</title></rect>").count(), 29 * 7);
    assert_eq!(
        page.matches(" hits</title>").count(),
        29 * 2,
        "TP and FP of each version"
    );
    assert!(page.contains("exception: <code>"));
    assert!(page.contains("With the proposed exception"));
    // Leftovers of the atomic write.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("report dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["index.html"]);
}

/// Chromium, if this machine has it (Debian's package `chromium`).
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
    }
    found
}

#[test]
fn chromium_draws_the_charts_of_the_report() {
    let Some(browser) = chromium() else {
        return;
    };
    let tmp = temp_dir();
    let page = write_report(&tmp.path().join("report"));
    let shot = tmp.path().join("shot.png");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,2600",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && shot.is_file(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    assert_eq!((frame.width, frame.height), (1200, 2600));
    let channels = frame.color_type.samples();
    let count = |rgb: [u8; 3]| {
        pixels[..frame.buffer_size()]
            .chunks(channels)
            .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 4))
            .count()
    };
    // Each chart's solid colours cover real areas of the page: the heat map's darkest
    // cells, the false-positive and lost bars (and cluster bars), the precision and recall
    // dots and lines.
    let blank = count([255, 255, 255]);
    assert!(blank < 1200 * 2600, "a blank page");
    for (what, rgb, at_least) in [
        ("false positives", [0xc6, 0x28, 0x28], 2000),
        ("precision", [0x15, 0x65, 0xc0], 200),
        ("recall", [0xef, 0x6c, 0x00], 200),
        ("no-alert cells", [0xf4, 0xf4, 0xf4], 500),
    ] {
        let n = count(rgb);
        assert!(n >= at_least, "{what}: {n} pixels of {rgb:?}");
    }
}
