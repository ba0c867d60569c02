//! The report's charts as inline SVG: a column chart (filed against quarantined
//! by day), horizontal bars (quarantine reasons) and the filing lag, each with a
//! text alternative and an empty state that says why there is no data.

use std::fmt::Write as _;

use super::{COLOR_FILED, COLOR_LAG, COLOR_QUARANTINED, escape, fmt_count, fmt_secs};
use crate::report::Report;

/// `<figure id=…>` around a chart, with its caption (already HTML).
pub(super) fn figure(id: &str, svg: &str, caption_html: &str) -> String {
    format!("<figure id=\"{id}\">\n{svg}\n<figcaption>{caption_html}</figcaption>\n</figure>\n")
}

/// Opening tag of an accessible SVG of the given size (in px, not scaled).
pub(super) fn svg_open(aria: &str, w: f64, h: f64) -> String {
    format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\">\n<title>{}</title>\n",
        escape(aria),
        escape(aria)
    )
}

/// A small SVG saying "no data" (and why, if `why` is given).
pub(super) fn no_data_svg(aria: &str, why: &str) -> String {
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
pub(super) struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<u64>,
}

/// Layout knobs of a column chart.
pub(super) struct Columns<'a> {
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
pub(super) fn column_chart(cats: &[String], series: &[Series], o: &Columns) -> String {
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
pub(super) fn hbar_chart(aria: &str, rows: &[(&str, u64)], color: &str, empty_why: &str) -> String {
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

pub(super) fn chart_filed_vs_quarantined(r: &Report) -> String {
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

pub(super) fn chart_lag(r: &Report) -> String {
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

pub(super) fn chart_quarantine_reasons(r: &Report) -> String {
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

/// A "nice" axis for values up to `max`: (top, step), with step 1, 2 or 5 × 10^k
/// and at most about four gridlines above zero.
pub(super) fn nice_scale(max: u64) -> (u64, u64) {
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

/// A rough width in px of `s` in the 12px chart font (no layout engine here).
pub(super) fn text_px(s: &str) -> f64 {
    s.chars().count() as f64 * 6.8
}

/// `s` cut to at most `max` characters, with an ellipsis if cut.
pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}
