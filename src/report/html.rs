//! Self-contained HTML rendering of a [`Report`]: one UTF-8 HTML5 page with an
//! inline stylesheet and inline SVG charts, readable offline. No scripts, no
//! external assets (a Content-Security-Policy meta forbids loading any), and no
//! message text (the report has none). Every string taken from the report is
//! HTML-escaped.

use std::fmt::Write as _;

use super::{Counts, Report};

const TITLE: &str = "recordbridge — record completeness";

/// Colour-blind-safe pair (blue / orange) for filed vs quarantined.
const COLOR_FILED: &str = "#2166ac";
const COLOR_QUARANTINED: &str = "#e08214";
const COLOR_LAG: &str = "#4d7ea8";

const STYLE: &str = "\
:root{color-scheme:light}\
body{font:15px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;color:#1f2328;\
background:#fff;margin:0 auto;padding:24px 32px 48px;max-width:1100px}\
h1{font-size:1.6em;margin:0 0 4px}\
h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}\
p.meta{color:#57606a;margin:0 0 4px}\
table{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}\
thead th{background:#f6f8fa}\
tfoot th,tfoot td{background:#f6f8fa;font-weight:600}\
td.num,th.num{text-align:right;white-space:nowrap}\
td.empty{color:#57606a;font-style:italic}\
td.desc{color:#57606a}\
figure{margin:16px 0 24px;overflow-x:auto}\
figcaption{color:#57606a;font-size:.9em;margin-top:4px}\
svg{display:block;background:#fff}\
svg text{font:12px system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;fill:#1f2328}\
svg text.muted{fill:#57606a}\
svg text.nodata{font-size:16px;fill:#57606a}\
svg .grid{stroke:#e5e8eb;stroke-width:1}\
svg .axis{stroke:#8c959f;stroke-width:1}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}\
@media print{body{padding:0;max-width:none}figure{overflow:visible;break-inside:avoid}}";

/// Render the report as one HTML page with inline SVG charts and no external assets.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\n",
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(TITLE));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");

    header(&mut out, r);
    summary(&mut out, &r.totals);

    out.push_str("<h2>Charts</h2>\n");
    out.push_str(&chart_filed_vs_quarantined(r));
    out.push_str(&chart_lag(r));
    out.push_str(&chart_quarantine_reasons(r));

    out.push_str("<h2>By room</h2>\n");
    counts_table(
        &mut out,
        "Room",
        r.by_room.iter().map(|x| (x.room.as_str(), &x.counts)),
        &r.totals,
    );
    out.push_str("<h2>By day (UTC, by time sent)</h2>\n");
    counts_table(
        &mut out,
        "Day",
        r.by_day.iter().map(|x| (x.day.as_str(), &x.counts)),
        &r.totals,
    );
    unresolved_table(&mut out, r);

    out.push_str(
        "<p class=\"meta\">Counts and identifiers only: this report contains no message text.</p>\n",
    );
    out.push_str("</body>\n</html>\n");
    out
}

// ------------------------------------------------------------------ helpers --

/// HTML-escape `& < > " '` (safe in text, attribute values and inline SVG).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
pub(crate) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `part` as a percentage of `whole`, one decimal; `—` when `whole` is 0.
pub(crate) fn fmt_pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "—".to_string();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

/// A duration in seconds, in the largest unit that keeps it readable.
pub(crate) fn fmt_secs(secs: Option<f64>) -> String {
    let Some(s) = secs.filter(|s| s.is_finite()) else {
        return "—".to_string();
    };
    let sign = if s < 0.0 { "−" } else { "" };
    let a = s.abs();
    let body = if a < 10.0 {
        format!("{a:.1} s")
    } else if a < 60.0 {
        format!("{a:.0} s")
    } else if a < 3600.0 {
        format!("{:.1} min", a / 60.0)
    } else if a < 48.0 * 3600.0 {
        format!("{:.1} h", a / 3600.0)
    } else {
        format!("{:.1} d", a / 86400.0)
    };
    format!("{sign}{body}")
}

/// Hours with one decimal; `—` if not a number.
fn fmt_hours(h: f64) -> String {
    if h.is_finite() {
        format!("{h:.1}")
    } else {
        "—".to_string()
    }
}

/// A rough width in px of `s` in the 12px chart font (no layout engine here).
fn text_px(s: &str) -> f64 {
    s.chars().count() as f64 * 6.8
}

/// `s` cut to at most `max` characters, with an ellipsis if cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A "nice" axis for values up to `max`: (top, step), with step 1, 2 or 5 × 10^k
/// and at most about four gridlines above zero.
fn nice_scale(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let mut mag: u64 = 1;
    loop {
        for m in [1u64, 2, 5] {
            let step = m.saturating_mul(mag);
            if step.saturating_mul(4) >= max {
                return (max.div_ceil(step).saturating_mul(step), step);
            }
        }
        mag = mag.saturating_mul(10);
    }
}

// ----------------------------------------------------------------- sections --

fn header(out: &mut String, r: &Report) {
    let period = match (r.since.as_deref(), r.until.as_deref()) {
        (None, None) => "all time".to_string(),
        (Some(s), None) => format!("from {} (open end)", escape(s)),
        (None, Some(u)) => format!("up to {} (open start)", escape(u)),
        (Some(s), Some(u)) => format!("{} to {}", escape(s), escape(u)),
    };
    let _ = writeln!(out, "<h1>{}</h1>", escape(TITLE));
    let _ = writeln!(out, "<p class=\"meta\">Period: {period}</p>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated: {}</p>",
        escape(&r.generated_at)
    );
}

fn summary(out: &mut String, t: &Counts) {
    out.push_str("<h2>Summary</h2>\n<table class=\"summary\">\n");
    out.push_str("<thead><tr><th>Events</th><th class=\"num\">Count</th><th>Meaning</th></tr></thead>\n<tbody>\n");
    let rows: [(&str, u64, &str); 7] = [
        ("Seen", t.seen, "events decided, every outcome"),
        (
            "Patient-related",
            t.patient_related,
            "filed + held + quarantined: about a patient, or possibly so",
        ),
        ("Filed", t.filed, "written to a patient record"),
        ("Held", t.held, "waiting for the thread to name its patient"),
        (
            "Quarantined",
            t.quarantined,
            "not filed automatically; needs review (see reasons)",
        ),
        (
            "Rejected",
            t.rejected,
            "malformed input, or refused by the FHIR server",
        ),
        (
            "Ignored",
            t.ignored,
            "nothing to file: not patient-related, reactions, redactions",
        ),
    ];
    for (name, n, desc) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{name}</th><td class=\"num\">{}</td><td class=\"desc\">{desc}</td></tr>",
            fmt_count(n)
        );
    }
    let _ = writeln!(
        out,
        "<tr><th>Filed, % of patient-related</th><td class=\"num\">{}</td>\
         <td class=\"desc\">completeness of the record</td></tr>",
        fmt_pct(t.filed, t.patient_related)
    );
    out.push_str("</tbody>\n</table>\n");
}

/// A table of counts, one row per `(label, counts)`, with the totals in the footer.
fn counts_table<'a>(
    out: &mut String,
    first: &str,
    rows: impl ExactSizeIterator<Item = (&'a str, &'a Counts)>,
    totals: &Counts,
) {
    const COLS: [&str; 8] = [
        "Seen",
        "Patient-related",
        "Filed",
        "Held",
        "Quarantined",
        "Rejected",
        "Ignored",
        "Filed %",
    ];
    out.push_str("<table>\n<thead><tr>");
    let _ = write!(out, "<th>{}</th>", escape(first));
    for c in COLS {
        let _ = write!(out, "<th class=\"num\">{c}</th>");
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if rows.len() == 0 {
        let _ = writeln!(
            out,
            "<tr><td class=\"empty\" colspan=\"{}\">no data</td></tr>",
            COLS.len() + 1
        );
    }
    for (label, c) in rows {
        let _ = writeln!(out, "<tr><td>{}</td>{}</tr>", escape(label), count_cells(c));
    }
    let _ = writeln!(
        out,
        "</tbody>\n<tfoot><tr><th>Total</th>{}</tr></tfoot>\n</table>",
        count_cells(totals)
    );
}

fn count_cells(c: &Counts) -> String {
    let mut s = String::new();
    for n in c.values() {
        let _ = write!(s, "<td class=\"num\">{}</td>", fmt_count(n));
    }
    let _ = write!(
        s,
        "<td class=\"num\">{}</td>",
        fmt_pct(c.filed, c.patient_related)
    );
    s
}

fn unresolved_table(out: &mut String, r: &Report) {
    out.push_str(
        "<h2>Oldest unresolved (held or quarantined)</h2>\n<table>\n<thead><tr>\
        <th>Event id</th><th>Room</th><th>Status</th><th>Reason</th><th>Since</th>\
        <th class=\"num\">Age (h)</th></tr></thead>\n<tbody>\n",
    );
    if r.oldest_unresolved.is_empty() {
        out.push_str("<tr><td class=\"empty\" colspan=\"6\">none</td></tr>\n");
    }
    for u in &r.oldest_unresolved {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td></tr>",
            escape(&u.event_id),
            escape(&u.room),
            escape(&u.status),
            u.reason.as_deref().map_or_else(|| "—".to_string(), escape),
            escape(&u.since),
            fmt_hours(u.age_hours),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

// ------------------------------------------------------------------- charts --

/// `<figure id=…>` around a chart, with its caption (already HTML).
fn figure(id: &str, svg: &str, caption_html: &str) -> String {
    format!("<figure id=\"{id}\">\n{svg}\n<figcaption>{caption_html}</figcaption>\n</figure>\n")
}

/// Opening tag of an accessible SVG of the given size (in px, not scaled).
fn svg_open(aria: &str, w: f64, h: f64) -> String {
    format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\">\n<title>{}</title>\n",
        escape(aria),
        escape(aria)
    )
}

/// A small SVG saying "no data" (and why, if `why` is given).
fn no_data_svg(aria: &str, why: &str) -> String {
    let (w, h) = (640.0, 120.0);
    let mut s = svg_open(aria, w, h);
    let _ = writeln!(
        s,
        "<rect x=\"0.5\" y=\"0.5\" width=\"{:.0}\" height=\"{:.0}\" fill=\"#fafbfc\" stroke=\"#d0d7de\"/>",
        w - 1.0,
        h - 1.0
    );
    let _ = writeln!(
        s,
        "<text class=\"nodata\" x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">no data</text>",
        w / 2.0,
        h / 2.0
    );
    if !why.is_empty() {
        let _ = writeln!(
            s,
            "<text class=\"muted\" x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
            w / 2.0,
            h / 2.0 + 22.0,
            escape(why)
        );
    }
    s.push_str("</svg>");
    s
}

/// One data series of a column chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<u64>,
}

/// Layout knobs of a column chart.
struct Columns<'a> {
    aria: &'a str,
    /// Lines of text above the plot (e.g. percentiles).
    notes: Vec<String>,
    /// Widest bar; bars get narrower to keep the plot within `max_plot_w`.
    bar_w: f64,
    max_plot_w: f64,
    /// Also draw a legend (for two or more series).
    legend: bool,
    /// Why there is nothing to draw, shown under "no data".
    empty_why: &'a str,
}

/// Vertical bars: one group per category, one bar per series in each group,
/// a y axis with gridlines, category labels (rotated when crowded), value
/// labels on bars wide enough for them and a `<title>` tooltip on every bar.
fn column_chart(cats: &[String], series: &[Series], o: &Columns) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    if cats.is_empty() || series.is_empty() || max == 0 {
        return no_data_svg(o.aria, o.empty_why);
    }
    let n = cats.len();
    let k = series.len() as f64;
    // One slot per category: its group of bars and a gap. Bars narrow (down
    // to 1 px) so that the plot stays within max_plot_w.
    let bar_w = o.bar_w.min(o.max_plot_w / n as f64 * 0.75 / k).max(1.0);
    let group_w = bar_w * k;
    let gap = (bar_w * 0.6).clamp(2.0, 16.0);
    let label_px = cats.iter().map(|c| text_px(c)).fold(0.0, f64::max);
    // Labels sit under their group: widen the slots for them while the plot
    // stays within max_plot_w, else rotate them (and skip some if crowded).
    let wide_slot = (group_w + gap).max(label_px + 12.0);
    let rotate = wide_slot * n as f64 > o.max_plot_w;
    let slot = if rotate { group_w + gap } else { wide_slot };
    let label_step = if rotate {
        (16.0 / slot).ceil().max(1.0) as usize
    } else {
        1
    };

    let (left, right, plot_h) = (56.0, 24.0, 200.0);
    let mut top = 12.0;
    let notes_y = top + 12.0;
    top += 20.0 * o.notes.len() as f64;
    let legend_y = top + 12.0;
    if o.legend && series.len() > 1 {
        top += 22.0;
    }
    top += 10.0;
    let bottom = if rotate { 18.0 + label_px * 0.87 } else { 28.0 };
    let plot_w = (slot * n as f64).max(200.0);
    let w = (left + plot_w + right)
        .max(left + o.notes.iter().map(|t| text_px(t)).fold(0.0, f64::max) + right);
    let h = top + plot_h + bottom;
    let (axis_top, step) = nice_scale(max);
    let y_of = |v: u64| top + plot_h - (v as f64 / axis_top as f64) * plot_h;

    let mut s = svg_open(o.aria, w, h);
    for (i, note) in o.notes.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{left:.0}\" y=\"{:.1}\">{}</text>",
            notes_y + 20.0 * i as f64,
            escape(note)
        );
    }
    if o.legend && series.len() > 1 {
        let mut x = left;
        for se in series {
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{legend_y:.1}\">{}</text>",
                legend_y - 10.0,
                se.color,
                x + 17.0,
                escape(se.name)
            );
            x += 17.0 + text_px(se.name) + 20.0;
        }
    }
    // Gridlines and y labels.
    let mut v = 0;
    while v <= axis_top {
        let y = y_of(v);
        let class = if v == 0 { "axis" } else { "grid" };
        let _ = writeln!(
            s,
            "<line class=\"{class}\" x1=\"{left:.0}\" y1=\"{y:.1}\" x2=\"{:.0}\" y2=\"{y:.1}\"/>\
             <text class=\"muted\" x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            fmt_count(v)
        );
        match v.checked_add(step) {
            Some(next) => v = next,
            None => break,
        }
    }
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{left:.0}\" y1=\"{top:.1}\" x2=\"{left:.0}\" y2=\"{:.1}\"/>",
        top + plot_h
    );
    // Bars and labels.
    for (i, cat) in cats.iter().enumerate() {
        let gx = left + slot * i as f64 + (slot - group_w) / 2.0;
        for (j, se) in series.iter().enumerate() {
            let v = se.values.get(i).copied().unwrap_or(0);
            let x = gx + bar_w * j as f64;
            let y = y_of(v);
            let bh = top + plot_h - y;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\">\
                 <title>{}: {} {}</title></rect>",
                (bar_w - 1.0).max(1.0),
                se.color,
                escape(cat),
                fmt_count(v),
                escape(se.name)
            );
            if bar_w >= 16.0 {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    x + bar_w / 2.0,
                    y - 4.0,
                    fmt_count(v)
                );
            }
        }
        if i.is_multiple_of(label_step) {
            let cx = gx + group_w / 2.0;
            let ly = top + plot_h + 16.0;
            if rotate {
                let _ = writeln!(
                    s,
                    "<text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" \
                     transform=\"rotate(-60 {cx:.1} {ly:.1})\">{}</text>",
                    escape(cat)
                );
            } else {
                let _ = writeln!(
                    s,
                    "<text x=\"{cx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{}</text>",
                    escape(cat)
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one row per `(label, value)`, with the count after each bar.
fn hbar_chart(aria: &str, rows: &[(&str, u64)], color: &str, empty_why: &str) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    if rows.is_empty() || max == 0 {
        return no_data_svg(aria, empty_why);
    }
    const MAX_LABEL: usize = 40;
    let label_w = rows
        .iter()
        .map(|(l, _)| text_px(&truncate(l, MAX_LABEL)))
        .fold(60.0, f64::max);
    let count_w = rows
        .iter()
        .map(|(_, v)| text_px(&fmt_count(*v)))
        .fold(0.0, f64::max);
    let (pad, bar_area, row_h, bar_h) = (12.0, 380.0, 26.0, 18.0);
    let x0 = pad + label_w + 10.0;
    let w = x0 + bar_area + 8.0 + count_w + pad;
    let h = pad * 2.0 + row_h * rows.len() as f64;

    let mut s = svg_open(aria, w, h);
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{x0:.1}\" y1=\"{pad:.0}\" x2=\"{x0:.1}\" y2=\"{:.1}\"/>",
        h - pad
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = pad + row_h * i as f64 + (row_h - bar_h) / 2.0;
        let bw = (*v as f64 / max as f64) * bar_area;
        let ty = y + bar_h / 2.0 + 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bar_h:.0}\" fill=\"{color}\">\
             <title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{ty:.1}\">{}</text>",
            x0 - 8.0,
            escape(&truncate(label, MAX_LABEL)),
            escape(label),
            fmt_count(*v),
            x0 + bw + 6.0,
            fmt_count(*v)
        );
    }
    s.push_str("</svg>");
    s
}

fn chart_filed_vs_quarantined(r: &Report) -> String {
    let n = r.by_day.len();
    let cats: Vec<String> = r.by_day.iter().map(|d| d.day.clone()).collect();
    let series = [
        Series {
            name: "filed",
            color: COLOR_FILED,
            values: r.by_day.iter().map(|d| d.counts.filed).collect(),
        },
        Series {
            name: "quarantined",
            color: COLOR_QUARANTINED,
            values: r.by_day.iter().map(|d| d.counts.quarantined).collect(),
        },
    ];
    let opts = Columns {
        aria: "Filed vs quarantined events per day",
        notes: Vec::new(),
        bar_w: 24.0,
        max_plot_w: 900.0,
        legend: true,
        empty_why: if n == 0 {
            "no days in the period"
        } else {
            "nothing filed or quarantined in the period"
        },
    };
    let svg = column_chart(&cats, &series, &opts);
    let caption = format!(
        "<strong>Filed vs quarantined per day.</strong> Filed (blue) and quarantined \
         (orange) events per day, UTC, by time sent. Totals: {} filed, {} quarantined over {} day{}.",
        fmt_count(r.totals.filed),
        fmt_count(r.totals.quarantined),
        fmt_count(n as u64),
        if n == 1 { "" } else { "s" }
    );
    figure("chart-filed-vs-quarantined", &svg, &caption)
}

fn chart_lag(r: &Report) -> String {
    let l = &r.lag;
    let stats = format!(
        "p50 {} · p95 {} · max {} · {} filed",
        fmt_secs(l.p50_secs),
        fmt_secs(l.p95_secs),
        fmt_secs(l.max_secs),
        fmt_count(l.count)
    );
    let cats: Vec<String> = l.histogram.iter().map(|b| b.label.clone()).collect();
    let series = [Series {
        name: "filed events",
        color: COLOR_LAG,
        values: l.histogram.iter().map(|b| b.count).collect(),
    }];
    let opts = Columns {
        aria: "Lag from sent to filed: histogram",
        notes: vec![stats.clone()],
        bar_w: 64.0,
        max_plot_w: 900.0,
        legend: false,
        empty_why: "no filed events in the period",
    };
    let svg = column_chart(&cats, &series, &opts);
    let caption = format!(
        "<strong>Lag from sent to filed.</strong> Filed events only: {}.",
        escape(&stats)
    );
    figure("chart-lag", &svg, &caption)
}

fn chart_quarantine_reasons(r: &Report) -> String {
    let mut rows: Vec<(&str, u64)> = r
        .quarantine_reasons
        .iter()
        .map(|x| (x.reason.as_str(), x.count))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let svg = hbar_chart(
        "Quarantine reasons with counts",
        &rows,
        COLOR_QUARANTINED,
        "nothing quarantined in the period",
    );
    let total: u64 = rows.iter().map(|x| x.1).fold(0, u64::saturating_add);
    let caption = format!(
        "<strong>Quarantine reasons.</strong> Why events were quarantined, most \
         frequent first; {} in all.",
        fmt_count(total)
    );
    figure("chart-quarantine-reasons", &svg, &caption)
}

#[cfg(test)]
mod tests;
