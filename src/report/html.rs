//! Self-contained HTML rendering of a [`Report`]: one UTF-8 HTML5 page with an
//! inline stylesheet and inline SVG charts, readable offline. No scripts, no
//! external assets (a Content-Security-Policy meta forbids loading any), and no
//! message text (the report has none). Every string taken from the report is
//! HTML-escaped.

use std::fmt::Write as _;

use super::{Counts, Report};

mod charts;
use charts::{chart_filed_vs_quarantined, chart_lag, chart_quarantine_reasons};

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

#[cfg(test)]
mod tests;
