//! The backtest as a self-contained HTML page: `quarry backtest --report DIR` writes
//! `DIR/index.html`.
//!
//! One file, no script and nothing fetched: styles are inline and the charts are SVG drawn
//! here, with native tooltips (`<title>`), so the page opens anywhere, offline, and can be
//! attached to a ticket. Per rule: the version table; alerts per day of each version as a
//! heat map; hits per version split into true and false positives, with what each change
//! gained and lost; precision and recall per version; the last version's noisiest clusters
//! with their exceptions; the what-if; and the example events of every change.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate};

use super::{BacktestReport, Cluster, Example, RuleReport, VersionRow};

/// The file the report is written to, inside the report directory.
pub const REPORT_FILE: &str = "index.html";

const GREEN: &str = "#2e7d32";
const RED: &str = "#c62828";
const BLUE: &str = "#1565c0";
const ORANGE: &str = "#ef6c00";
const GREY: &str = "#9e9e9e";

/// Chart width in SVG units (the page scales it to its column).
const WIDTH: f64 = 960.0;
/// Room left of a plot for its labels.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;

/// Days a heat map shows one column each for; longer spans are shown by week.
const MAX_DAY_COLUMNS: usize = 120;

/// Writes the report into `dir` (created if needed) and returns the file's path. The file
/// appears whole or not at all: it is written beside its final name, then renamed.
pub fn write(report: &BacktestReport, dir: &Path) -> Result<PathBuf, ReportError> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let path = dir.join(REPORT_FILE);
    let mut tmp = tempfile::Builder::new()
        .prefix(".index.html.")
        .tempfile_in(dir)
        .map_err(at(dir))?;
    tmp.write_all(render(report).as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(at(&path))?;
    // A report is for reading and sharing, not private like the temporary file it was.
    let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    tmp.persist(&path).map_err(|e| at(&path)(e.error))?;
    Ok(path)
}

/// A report that could not be written.
#[derive(Debug)]
pub struct ReportError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The whole page.
pub fn render(report: &BacktestReport) -> String {
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>quarry backtest</title><style>",
        include_str!("report.css"),
        "</style></head><body>\n"
    ));
    let _ = write!(
        html,
        "<h1>quarry backtest</h1><p class=\"lead\">{} to {} ({:.1} days): {} rows in {} row \
         groups, read once. {}</p>",
        esc(report.start.as_deref().unwrap_or("?")),
        esc(report.end.as_deref().unwrap_or("?")),
        report.days,
        report.rows,
        report.units,
        esc(&report.ground_truth()),
    );
    if !report.failures.is_empty() {
        list(&mut html, "failures", "Failures", &report.failures);
    }
    if !report.warnings.is_empty() {
        list(&mut html, "warnings", "Warnings", &report.warnings);
    }
    let days = day_columns(report);
    for rule in &report.rules {
        rule_section(&mut html, rule, &days);
    }
    html.push_str("</body></html>\n");
    html
}

fn list(html: &mut String, class: &str, title: &str, items: &[String]) {
    let _ = write!(
        html,
        "<details class=\"{class}\"><summary>{title} ({})</summary><ul>",
        items.len()
    );
    for i in items {
        let _ = write!(html, "<li>{}</li>", esc(i));
    }
    html.push_str("</ul></details>");
}

fn rule_section(html: &mut String, rule: &RuleReport, days: &DayColumns) {
    let _ = write!(
        html,
        "<section><h2>{}</h2><p class=\"id\">{}</p>",
        esc(&rule.name),
        esc(&rule.rule_id)
    );
    version_table(html, rule);
    let _ = write!(html, "<h3>Alerts per day, by version</h3>");
    html.push_str(&heat_map(rule, days));
    let _ = write!(html, "<h3>Hits by version, and what each change did</h3>");
    html.push_str(&hits_chart(rule));
    if rule.versions.iter().any(|v| v.truth.is_some()) {
        let _ = write!(html, "<h3>Precision and recall by version</h3>");
        html.push_str(&accuracy_chart(rule));
    }
    if let Some(last) = rule.versions.last() {
        if !last.clusters.is_empty() {
            let what = match last.truth {
                Some(_) => "false positives",
                None => "alerts",
            };
            let _ = write!(
                html,
                "<h3>Noisiest {what} of version {}, with an exception for each</h3>",
                last.version
            );
            html.push_str(&clusters_chart(&last.clusters));
        }
    }
    if rule.versions.iter().any(|v| v.what_if.is_some()) {
        what_if_table(html, rule);
    }
    diff_examples(html, rule);
    html.push_str("</section>\n");
}

fn version_table(html: &mut String, rule: &RuleReport) {
    let truth = rule.versions.iter().any(|v| v.truth.is_some());
    html.push_str(
        "<table><thead><tr><th>version</th><th>type</th><th>query</th><th>hits</th>\
         <th>alerts</th><th>capped runs</th><th>dropped</th><th>not searched</th><th>quiet</th>\
         <th>hosts</th><th>users</th><th>gained</th><th>lost</th>",
    );
    if truth {
        html.push_str(
            "<th>TP</th><th>FP</th><th>FN</th><th>precision</th><th>recall</th>\
             <th>FP/day</th><th>FP hosts</th>",
        );
    }
    html.push_str("</tr></thead><tbody>");
    for v in &rule.versions {
        let _ = write!(
            html,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"up\">+{}</td>\
             <td class=\"down\">&minus;{}</td>",
            if v.query_changed {
                " class=\"changed\""
            } else {
                ""
            },
            v.version,
            v.rule_type,
            if v.query_changed { "changed" } else { "" },
            v.hits,
            v.alerts,
            v.capped_executions,
            v.dropped_by_cap,
            v.not_searched,
            v.quiet.map_or(String::new(), |q| q.to_string()),
            v.hosts,
            v.users,
            v.gained,
            v.lost
        );
        if let Some(t) = &v.truth {
            let _ = write!(
                html,
                "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td>",
                t.true_positives,
                t.false_positives,
                t.false_negatives,
                percent(t.precision),
                percent(t.recall),
                t.false_positives_per_day,
                t.false_positive_hosts
            );
        } else if truth {
            html.push_str("<td></td><td></td><td></td><td></td><td></td><td></td><td></td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
}

fn percent(v: Option<f64>) -> String {
    v.map_or("&ndash;".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// The columns of the heat maps: days, or weeks for a long span.
struct DayColumns {
    /// The first day of each column, `YYYY-MM-DD`.
    starts: Vec<NaiveDate>,
    days_per_column: i64,
}

impl DayColumns {
    fn column_of(&self, day: &str) -> Option<usize> {
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        let first = *self.starts.first()?;
        let i = (day - first).num_days().div_euclid(self.days_per_column);
        usize::try_from(i).ok().filter(|&i| i < self.starts.len())
    }
}

fn day_columns(report: &BacktestReport) -> DayColumns {
    let day = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.date_naive())
    };
    let (Some(first), Some(last)) = (day(&report.start), day(&report.end)) else {
        return DayColumns {
            starts: Vec::new(),
            days_per_column: 1,
        };
    };
    let span = (last - first).num_days().max(0) + 1;
    let per = if span as usize > MAX_DAY_COLUMNS {
        7
    } else {
        1
    };
    let columns = (span + per - 1) / per;
    DayColumns {
        starts: (0..columns)
            .filter_map(|i| first.checked_add_days(chrono::Days::new((i * per) as u64)))
            .collect(),
        days_per_column: per,
    }
}

/// Versions down, days across, each cell shaded by the version's alerts that day.
fn heat_map(rule: &RuleReport, days: &DayColumns) -> String {
    let n = days.starts.len().max(1);
    let row_h = 16.0;
    let top = 28.0;
    let cell_w = (WIDTH - LEFT - RIGHT) / n as f64;
    let height = top + row_h * rule.versions.len() as f64 + 8.0;
    let counts: Vec<Vec<usize>> = rule
        .versions
        .iter()
        .map(|v| {
            let mut c = vec![0; n];
            for d in &v.alerts_per_day {
                if let Some(i) = days.column_of(&d.day) {
                    c[i] += d.alerts;
                }
            }
            c
        })
        .collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1);
    let mut svg = svg_open(height, "heatmap", "alerts per day of each version");
    let unit = if days.days_per_column == 1 {
        "day"
    } else {
        "week from"
    };
    let label_every = (n / 12).max(1);
    for (i, start) in days.starts.iter().enumerate().step_by(label_every) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"18\" class=\"tick\">{}</text>",
            LEFT + cell_w * i as f64,
            start.format("%m-%d")
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"18\" class=\"tick\" text-anchor=\"end\">total</text>",
        WIDTH - 4.0
    );
    for (r, (v, row)) in rule.versions.iter().zip(&counts).enumerate() {
        let y = top + row_h * r as f64;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">v{}</text>",
            LEFT - 6.0,
            y + row_h - 4.0,
            v.version
        );
        for (i, &count) in row.iter().enumerate() {
            let shade = if count == 0 {
                "#f4f4f4".to_string()
            } else {
                // Square root: a quiet day stays visible beside a burst.
                let t = (count as f64 / max as f64).sqrt();
                mix("#ffe0b2", "#bf360c", t)
            };
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{shade}\">\
                 <title>v{}, {unit} {}: {count} alerts</title></rect>",
                LEFT + cell_w * i as f64,
                y,
                (cell_w - 1.0).max(0.5),
                row_h - 2.0,
                v.version,
                days.starts.get(i).map_or(String::new(), |d| d.to_string()),
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"label\" text-anchor=\"end\">{}</text>",
            WIDTH - 4.0,
            y + row_h - 4.0,
            v.alerts
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Hits per version as bars (true positives green, false positives red, grey without
/// truth), and below the axis what each change gained (green) and lost (red).
fn hits_chart(rule: &RuleReport) -> String {
    let n = rule.versions.len().max(1);
    let up = 150.0;
    let down = 70.0;
    let top = 20.0;
    let axis = top + up;
    let height = axis + down + 34.0;
    let slot = (WIDTH - LEFT - RIGHT) / n as f64;
    let bar = (slot * 0.7).max(1.0);
    let max_hits = rule
        .versions
        .iter()
        .map(|v| v.hits)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_change = rule
        .versions
        .iter()
        .map(|v| v.gained.max(v.lost))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = svg_open(height, "hits", "hits, gained and lost per version");
    axis_label(&mut svg, top + 8.0, &format!("{} hits", max_hits as usize));
    axis_label(
        &mut svg,
        axis + down,
        &format!("{} changed", max_change as usize),
    );
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{axis}\" y2=\"{axis}\" class=\"axis\"/>",
        WIDTH - RIGHT
    );
    for (i, v) in rule.versions.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let h = |count: usize, scale: f64, room: f64| count as f64 / scale * room;
        let stack: Vec<(usize, &str, &str)> = match &v.truth {
            Some(t) => vec![
                (t.true_positives, GREEN, "true positives"),
                (t.false_positives, RED, "false positives"),
            ],
            None => vec![(v.hits, GREY, "hits")],
        };
        let mut y = axis;
        for (count, color, what) in stack {
            let bh = h(count, max_hits, up);
            y -= bh;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" \
                 fill=\"{color}\" opacity=\"0.85\"><title>v{}: {count} {what} of {} hits</title>\
                 </rect>",
                v.version, v.hits
            );
        }
        // Gained and lost side by side under the axis.
        let half = bar / 2.0;
        for (count, color, sign, gx) in [
            (v.gained, GREEN, "+", x),
            (v.lost, RED, "\u{2212}", x + half),
        ] {
            if count > 0 {
                let bh = h(count, max_change, down);
                let _ = write!(
                    svg,
                    "<rect x=\"{gx:.1}\" y=\"{axis:.1}\" width=\"{half:.1}\" height=\"{bh:.1}\" \
                     fill=\"{color}\"><title>v{}: {sign}{count} against the previous version\
                     </title></rect>",
                    v.version
                );
            }
        }
        version_tick(&mut svg, x + bar / 2.0, height - 6.0, v, n);
    }
    svg.push_str("</svg>");
    legend(
        svg,
        &match rule.versions.iter().any(|v| v.truth.is_some()) {
            true => vec![
                (GREEN, "true positives / hits gained"),
                (RED, "false positives / hits lost"),
            ],
            false => vec![(GREY, "hits"), (GREEN, "gained"), (RED, "lost")],
        },
    )
}

/// Precision and recall per version, as two lines on 0–100 %.
fn accuracy_chart(rule: &RuleReport) -> String {
    let n = rule.versions.len().max(1);
    let top = 14.0;
    let plot = 160.0;
    let height = top + plot + 34.0;
    let slot = (WIDTH - LEFT - RIGHT) / n as f64;
    let mut svg = svg_open(height, "accuracy", "precision and recall per version");
    for pct in [0.0, 0.5, 1.0] {
        let y = top + plot * (1.0 - pct);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{:.0}%</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            pct * 100.0
        );
    }
    for (color, what, value) in [
        (
            BLUE,
            "precision",
            (|v: &VersionRow| v.truth.as_ref().and_then(|t| t.precision)) as fn(&VersionRow) -> _,
        ),
        (ORANGE, "recall", |v: &VersionRow| {
            v.truth.as_ref().and_then(|t| t.recall)
        }),
    ] {
        let points: Vec<(f64, f64, &VersionRow, f64)> = rule
            .versions
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                value(v).map(|p| (LEFT + slot * (i as f64 + 0.5), top + plot * (1.0 - p), v, p))
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            path.join(" ")
        );
        for (x, y, v, p) in points {
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\">\
                 <title>v{}: {what} {:.1}%</title></circle>",
                v.version,
                p * 100.0
            );
        }
    }
    for (i, v) in rule.versions.iter().enumerate() {
        version_tick(&mut svg, LEFT + slot * (i as f64 + 0.5), height - 6.0, v, n);
    }
    svg.push_str("</svg>");
    legend(svg, &[(BLUE, "precision"), (ORANGE, "recall")])
}

/// The clusters as horizontal bars, each with its exception.
fn clusters_chart(clusters: &[Cluster]) -> String {
    let max = clusters.iter().map(|c| c.hits).max().unwrap_or(0).max(1) as f64;
    let mut out = String::from("<table class=\"clusters\"><tbody>");
    for c in clusters {
        let what = match &c.example {
            Some(head) => format!(
                "script shape <code>{}</code><pre>{}</pre>",
                esc(&c.value),
                esc(head)
            ),
            None => format!("<code>{}: {}</code>", esc(&c.field), esc(&c.value)),
        };
        let exception = match &c.exception {
            Some(e) => format!(
                "<div class=\"exc\">exception: <code>{}</code></div>",
                esc(e)
            ),
            None => "<div class=\"exc\">no phrase without digits is shared by its scripts' \
                     heads</div>"
                .to_string(),
        };
        let _ = write!(
            out,
            "<tr><td class=\"bar\"><svg viewBox=\"0 0 200 14\" width=\"200\" height=\"14\" \
             role=\"img\" aria-label=\"{} hits\"><rect x=\"0\" y=\"1\" width=\"{:.1}\" \
             height=\"12\" fill=\"{RED}\"/></svg> {}</td><td>{what}{exception}</td></tr>",
            c.hits,
            (c.hits as f64 / max * 200.0).max(1.0),
            c.hits
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn what_if_table(html: &mut String, rule: &RuleReport) {
    html.push_str(
        "<h3>With the proposed exception</h3><table><thead><tr><th>version</th><th>hits</th>\
         <th>removed</th><th>false positives gone</th><th>true positives lost</th></tr></thead>\
         <tbody>",
    );
    let n = |x: Option<usize>| x.map_or("&ndash;".to_string(), |x| x.to_string());
    for v in &rule.versions {
        if let Some(w) = &v.what_if {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"up\">{}</td>\
                 <td class=\"down\">{}</td></tr>",
                v.version,
                w.hits,
                w.removed,
                n(w.false_positives_removed),
                n(w.true_positives_lost)
            );
        }
    }
    html.push_str("</tbody></table>");
}

fn diff_examples(html: &mut String, rule: &RuleReport) {
    let changed: Vec<&VersionRow> = rule
        .versions
        .iter()
        .filter(|v| v.gained + v.lost > 0)
        .collect();
    if changed.is_empty() {
        return;
    }
    html.push_str("<h3 id=\"examples\">What each change did: example events</h3>");
    for (i, v) in changed.into_iter().enumerate() {
        let against = match rule.versions.first() {
            Some(first) if first.version == v.version => "as the first version selected",
            _ => "against the previous version",
        };
        let _ = write!(
            html,
            "<details{}><summary>v{}: <span class=\"up\">+{}</span> \
             <span class=\"down\">&minus;{}</span> {against}</summary>",
            if i == 0 { " open" } else { "" },
            v.version,
            v.gained,
            v.lost
        );
        for (sign, class, examples) in [
            ("+", "up", &v.gained_examples),
            ("\u{2212}", "down", &v.lost_examples),
        ] {
            for e in examples {
                example(html, sign, class, e);
            }
        }
        html.push_str("</details>");
    }
}

fn example(html: &mut String, sign: &str, class: &str, e: &Example) {
    let _ = write!(
        html,
        "<div class=\"example\"><span class=\"{class}\">{sign}</span> {} &middot; {} &middot; \
         {} &middot; <span class=\"matched\">{}</span> &middot; <span class=\"where\">{} row \
         {}</span>",
        esc(&e.time),
        esc(e.host.as_deref().unwrap_or("-")),
        esc(e.user.as_deref().unwrap_or("-")),
        esc(&e.matched.join("; ")),
        esc(&e.file),
        e.row
    );
    if let Some(s) = &e.script {
        let _ = write!(
            html,
            "<pre>{}{}</pre>",
            esc(&s.head),
            if s.truncated { "\u{2026}" } else { "" }
        );
    }
    html.push_str("</div>");
}

fn svg_open(height: f64, class: &str, label: &str) -> String {
    format!(
        "<svg class=\"chart {class}\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
         aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\">"
    )
}

fn axis_label(svg: &mut String, y: f64, text: &str) {
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{y:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
        LEFT - 6.0,
        esc(text)
    );
}

/// A version's label under a chart: every version when they fit, else some, and always
/// the changed ones marked.
fn version_tick(svg: &mut String, x: f64, y: f64, v: &VersionRow, n: usize) {
    let every = n.div_ceil(30).max(1);
    if v.query_changed {
        let _ = write!(
            svg,
            "<path d=\"M{:.1},{:.1} l4,-6 l4,6 z\" fill=\"#555\"><title>v{}: query changed\
             </title></path>",
            x - 4.0,
            y - 12.0,
            v.version
        );
    }
    if n <= 30 || v.query_changed || (v.version as usize).is_multiple_of(every) {
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            v.version
        );
    }
}

fn legend(mut svg: String, items: &[(&str, &str)]) -> String {
    svg.push_str("<div class=\"legend\">");
    for (color, what) in items {
        let _ = write!(
            svg,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(what)
        );
    }
    svg.push_str("<span><i class=\"tri\"></i>query changed</span></div>");
    svg
}

/// The colour a fraction `t` of the way from `a` to `b` (`#rrggbb`).
fn mix(a: &str, b: &str, t: f64) -> String {
    let channel = |c: &str, i: usize| u8::from_str_radix(&c[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0);
    let t = t.clamp(0.0, 1.0);
    let mut out = String::from("#");
    for i in 0..3 {
        let (x, y) = (channel(a, i) as f64, channel(b, i) as f64);
        let _ = write!(out, "{:02x}", (x + (y - x) * t).round() as u8);
    }
    out
}

/// Text as HTML (element content or a quoted attribute).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_events_cannot_break_out_of_the_page() {
        assert_eq!(
            esc("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn shades_run_from_one_colour_to_the_other() {
        assert_eq!(mix("#000000", "#ffffff", 0.0), "#000000");
        assert_eq!(mix("#000000", "#ffffff", 1.0), "#ffffff");
        assert_eq!(mix("#000000", "#ffffff", 0.5), "#808080");
    }

    #[test]
    fn long_spans_are_shown_by_week() {
        let report = BacktestReport {
            start: Some("2024-01-01T00:00:00Z".into()),
            end: Some("2024-12-31T00:00:00Z".into()),
            ..Default::default()
        };
        let days = day_columns(&report);
        assert_eq!(days.days_per_column, 7);
        assert_eq!(days.starts.len(), 53);
        assert_eq!(days.column_of("2024-01-08"), Some(1));
        assert_eq!(days.column_of("2023-12-31"), None);
        let short = BacktestReport {
            start: Some("2024-03-01T05:00:00Z".into()),
            end: Some("2024-03-07T23:00:00Z".into()),
            ..Default::default()
        };
        let days = day_columns(&short);
        assert_eq!((days.days_per_column, days.starts.len()), (1, 7));
        assert_eq!(days.column_of("2024-03-07"), Some(6));
    }
}
