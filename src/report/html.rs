//! Self-contained HTML rendering of a [`Report`] (placeholder; being written).

use super::Report;

/// Render the report as one HTML page with inline SVG charts and no external assets.
pub fn render(r: &Report) -> String {
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    format!("<!doctype html><html><body><pre>{}</pre></body></html>", json.replace('<', "&lt;"))
}
