//! Keeps the clinical safety hazard log (`deploy/clinical-safety/hazard-log.md`)
//! honest against the code:
//!
//! * every test it names as verification (`` `tests/FILE.rs::name` `` or
//!   `` `src/PATH.rs::name` ``) exists in that file and is a test function
//!   (`#[test]`, `#[tokio::test…]`, inside a `proptest!` block, or generated
//!   by a test-defining `macro_rules!` of that file from the named function);
//! * every hazard has its fields, with numbered controls and a verification
//!   list in which each item names a test or says "none yet (gap)";
//! * the risk ratings follow the DCB0129/DCB0160 matrix, and the summary
//!   table agrees with the entries.
//!
//! Standard library and `regex` only; no part of the crate is used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

const LOG: &str = "deploy/clinical-safety/hazard-log.md";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn log_text() -> String {
    let path = root().join(LOG);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the hazard log {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// References and Rust source scanning
// ---------------------------------------------------------------------------

/// Every `` `tests/…rs::name` `` / `` `src/…rs::name` `` reference in `text`.
fn references(text: &str) -> BTreeSet<(String, String)> {
    let re =
        Regex::new(r"`((?:tests|src)/[A-Za-z0-9_./-]+\.rs)::([A-Za-z_][A-Za-z0-9_]*)`").unwrap();
    re.captures_iter(text)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect()
}

/// Byte index just past the delimiter that closes the one at `open`
/// (`(`, `[` or `{`), skipping comments, string, raw string and char
/// literals. `None` when unbalanced.
fn matching_close(src: &str, open: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut stack: Vec<u8> = Vec::new();
    let mut i = open;
    while i < b.len() {
        let c = b[i];
        match c {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"…", r#"…"#, …
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) == Some(&b'"') {
                    j += 1;
                    'raw: while j < b.len() {
                        if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                            j += 1 + hashes;
                            break 'raw;
                        }
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                i += 1;
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}', '{'), not a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    let mut j = i + 2;
                    while j < b.len() && b[j] != b'\'' && j < i + 12 {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(i + 1 + ch_len) == Some(&b'\'') {
                    i += 2 + ch_len;
                    continue;
                }
                i += 1;
                continue;
            }
            b'(' | b'[' | b'{' => stack.push(c),
            b')' | b']' | b'}' => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if stack.pop() != Some(want) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Byte ranges of the bodies of `proptest! { … }` blocks.
fn proptest_blocks(src: &str) -> Vec<std::ops::Range<usize>> {
    let re = Regex::new(r"\bproptest!\s*[\{\(\[]").unwrap();
    re.find_iter(src)
        .filter_map(|m| {
            let open = m.end() - 1;
            matching_close(src, open).map(|close| open..close)
        })
        .collect()
}

/// Identifiers passed to invocations of `macro_rules!` macros of this file
/// whose body defines test functions (`#[test]`/`#[tokio::test` and `fn $…`).
fn macro_generated_tests(src: &str) -> BTreeSet<String> {
    let def = Regex::new(r"macro_rules!\s*([A-Za-z_][A-Za-z0-9_]*)\s*\{").unwrap();
    let mut names = BTreeSet::new();
    for c in def.captures_iter(src) {
        let open = c.get(0).unwrap().end() - 1;
        let Some(close) = matching_close(src, open) else {
            continue;
        };
        let body = &src[open..close];
        if (body.contains("#[test]") || body.contains("#[tokio::test")) && body.contains("fn $") {
            names.insert(c[1].to_owned());
        }
    }
    let mut out = BTreeSet::new();
    let ident = Regex::new(r"\b[A-Za-z_][A-Za-z0-9_]*\b").unwrap();
    for m in &names {
        let call = Regex::new(&format!(r"\b{}!\s*[\(\[\{{]", regex::escape(m))).unwrap();
        for hit in call.find_iter(src) {
            if src[..hit.start()].trim_end().ends_with("macro_rules!") {
                continue;
            }
            let open = hit.end() - 1;
            if let Some(close) = matching_close(src, open) {
                for id in ident.find_iter(&src[open..close]) {
                    out.insert(id.as_str().to_owned());
                }
            }
        }
    }
    out
}

/// Is a line (trimmed) a test attribute?
fn is_test_attr(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("#[test]") || l.starts_with("#[tokio::test")
}

/// Why `name` is not a test function of `src`, or `None` when it is.
fn not_a_test(src: &str, name: &str) -> Option<String> {
    let def = Regex::new(&format!(r"\bfn\s+{}\s*[\(<]", regex::escape(name))).unwrap();
    let defs: Vec<usize> = def.find_iter(src).map(|m| m.start()).collect();
    if defs.is_empty() {
        return Some(format!("no `fn {name}(`"));
    }
    let blocks = proptest_blocks(src);
    let generated = macro_generated_tests(src);
    let lines: Vec<&str> = src.lines().collect();
    let any_fn = Regex::new(r"\bfn\s").unwrap();
    for &at in &defs {
        if blocks.iter().any(|b| b.contains(&at)) {
            return None;
        }
        if generated.contains(name) {
            return None;
        }
        // Walk back over attributes, doc comments and blank lines (at most
        // 8 lines), stopping at the end of the previous item.
        let line_no = src[..at].matches('\n').count();
        for back in 1..=8 {
            let Some(idx) = line_no.checked_sub(back) else {
                break;
            };
            let l = lines[idx].trim();
            if is_test_attr(l) {
                return None;
            }
            if l.ends_with('}') && !l.starts_with("#[")
                || l.ends_with(';')
                || l.ends_with('{')
                || any_fn.is_match(l)
            {
                break;
            }
        }
    }
    Some(format!(
        "`fn {name}` is not preceded by #[test]/#[tokio::test], not in a proptest! block and not generated by a test macro"
    ))
}

#[test]
fn every_verification_named_in_the_hazard_log_exists() {
    let text = log_text();
    let refs = references(&text);
    assert!(
        refs.len() >= 20,
        "the hazard log names only {} tests; the parser or the log is broken",
        refs.len()
    );
    let mut sources: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut missing = Vec::new();
    for (file, name) in &refs {
        let src = sources
            .entry(file.clone())
            .or_insert_with(|| std::fs::read_to_string(root().join(Path::new(file))).ok());
        match src {
            None => missing.push(format!("{file}::{name}: file does not exist")),
            Some(src) => {
                if let Some(why) = not_a_test(src, name) {
                    missing.push(format!("{file}::{name}: {why}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} verifications named in {LOG} do not exist as tests:\n  {}",
        missing.len(),
        refs.len(),
        missing.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Hazard entries
// ---------------------------------------------------------------------------

struct Hazard {
    id: String,
    title: String,
    fields: BTreeMap<String, String>,
}

/// The `### H-NN: title` entries with their `**Field:**` values.
fn hazards(text: &str) -> Vec<Hazard> {
    let head = Regex::new(r"^### (H-\d{2,}):\s*(.*)$").unwrap();
    let field = Regex::new(r"^\*\*([^*]+?):\*\*\s*(.*)$").unwrap();
    let mut out: Vec<Hazard> = Vec::new();
    let mut current: Option<(Hazard, Option<String>)> = None;
    for line in text.lines() {
        if let Some(c) = head.captures(line) {
            if let Some((h, _)) = current.take() {
                out.push(h);
            }
            current = Some((
                Hazard {
                    id: c[1].to_owned(),
                    title: c[2].trim().to_owned(),
                    fields: BTreeMap::new(),
                },
                None,
            ));
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            if let Some((h, _)) = current.take() {
                out.push(h);
            }
            continue;
        }
        let Some((h, open)) = current.as_mut() else {
            continue;
        };
        if let Some(c) = field.captures(line) {
            let name = c[1].trim().to_owned();
            h.fields.insert(name.clone(), c[2].to_owned());
            *open = Some(name);
        } else if let Some(name) = open {
            let v = h.fields.get_mut(name).unwrap();
            v.push('\n');
            v.push_str(line);
        }
    }
    if let Some((h, _)) = current.take() {
        out.push(h);
    }
    out
}

const REQUIRED: [&str; 5] = [
    "Cause(s)",
    "Effect",
    "Possible harm",
    "Controls",
    "Verification",
];
const ALSO: [&str; 5] = [
    "Severity",
    "Likelihood (before controls)",
    "Risk (before)",
    "Residual risk",
    "Status",
];

#[test]
fn every_hazard_has_controls_and_verification() {
    let text = log_text();
    let hs = hazards(&text);
    assert!(
        hs.len() >= 10,
        "at least 10 hazards expected in {LOG}, found {}",
        hs.len()
    );
    let numbered = Regex::new(r"(?m)^\s*\d+\.\s+\S").unwrap();
    let bullet = Regex::new(r"(?m)^\s*-\s+(.*)$").unwrap();
    let mut problems = Vec::new();
    let mut ids = BTreeSet::new();
    for h in &hs {
        if !ids.insert(h.id.clone()) {
            problems.push(format!("{}: duplicate id", h.id));
        }
        if h.title.is_empty() {
            problems.push(format!("{}: no title", h.id));
        }
        for f in REQUIRED.iter().chain(ALSO.iter()) {
            match h.fields.get(*f) {
                None => problems.push(format!("{}: no **{f}:** field", h.id)),
                Some(v) if v.trim().is_empty() => {
                    problems.push(format!("{}: **{f}:** is empty", h.id))
                }
                Some(_) => {}
            }
        }
        if let Some(c) = h.fields.get("Controls")
            && !numbered.is_match(c)
        {
            problems.push(format!("{}: Controls has no numbered item", h.id));
        }
        if let Some(v) = h.fields.get("Verification") {
            let items: Vec<&str> = bullet
                .captures_iter(v)
                .map(|c| c.get(1).unwrap().as_str())
                .collect();
            if items.is_empty() {
                problems.push(format!("{}: Verification has no bullet item", h.id));
            }
            for it in items {
                if references(it).is_empty() && !it.contains("none yet (gap)") {
                    problems.push(format!(
                        "{}: verification item names no test and does not say \"none yet (gap)\": {it}",
                        h.id
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{LOG}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------
// Risk ratings
// ---------------------------------------------------------------------------

const SEVERITY: [&str; 5] = [
    "Minor",
    "Significant",
    "Considerable",
    "Major",
    "Catastrophic",
];
const LIKELIHOOD: [&str; 5] = ["Very low", "Low", "Medium", "High", "Very high"];
/// DCB0129/DCB0160 risk matrix: `MATRIX[likelihood][severity]`, both from lowest.
const MATRIX: [[u8; 5]; 5] = [
    [1, 1, 2, 2, 3], // Very low
    [1, 2, 2, 3, 4], // Low
    [2, 2, 3, 3, 4], // Medium
    [2, 3, 3, 4, 5], // High
    [3, 4, 4, 5, 5], // Very high
];

fn rating(severity: &str, likelihood: &str) -> Option<u8> {
    let s = SEVERITY
        .iter()
        .position(|x| x.eq_ignore_ascii_case(severity))?;
    let l = LIKELIHOOD
        .iter()
        .position(|x| x.eq_ignore_ascii_case(likelihood))?;
    Some(MATRIX[l][s])
}

#[test]
fn risk_ratings_follow_the_matrix_and_the_summary_agrees() {
    let text = log_text();
    let mut problems = Vec::new();

    // The matrix printed in the log is the one used here.
    let row = Regex::new(r"(?m)^\|\s*\*\*(Very high|High|Medium|Low|Very low)\*\*\s*\|(.*)\|\s*$")
        .unwrap();
    let mut rows = 0;
    for c in row.captures_iter(&text) {
        rows += 1;
        let l = LIKELIHOOD.iter().position(|x| *x == &c[1]).unwrap();
        let got: Vec<String> = c[2].split('|').map(|s| s.trim().to_owned()).collect();
        let want: Vec<String> = MATRIX[l].iter().map(u8::to_string).collect();
        if got != want {
            problems.push(format!("matrix row {}: {got:?}, expected {want:?}", &c[1]));
        }
    }
    if rows != 5 {
        problems.push(format!(
            "expected the 5 rows of the risk matrix, found {rows}"
        ));
    }

    let lead = Regex::new(r"^\s*(\d)").unwrap();
    let residual =
        Regex::new(r"(Minor|Significant|Considerable|Major|Catastrophic)\s*×\s*(Very low|Low|Medium|High|Very high)\s*=\s*(\d)")
            .unwrap();
    let hs = hazards(&text);
    let mut entries: BTreeMap<String, (u8, u8, bool)> = BTreeMap::new();
    for h in &hs {
        let get = |f: &str| {
            h.fields
                .get(f)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let (sev, lik) = (get("Severity"), get("Likelihood (before controls)"));
        let Some(want) = rating(&sev, &lik) else {
            problems.push(format!(
                "{}: severity {sev:?} or likelihood {lik:?} not on the scale",
                h.id
            ));
            continue;
        };
        let before = get("Risk (before)");
        match lead.captures(&before).map(|c| c[1].parse::<u8>().unwrap()) {
            Some(r) if r == want => {}
            got => problems.push(format!(
                "{}: Risk (before) {got:?}, but {sev} × {lik} = {want}",
                h.id
            )),
        }
        let res = get("Residual risk");
        let Some(c) = residual.captures(&res) else {
            problems.push(format!(
                "{}: Residual risk is not written `Severity × Likelihood = N`",
                h.id
            ));
            continue;
        };
        let r: u8 = c[3].parse().unwrap();
        let w = rating(&c[1], &c[2]).unwrap();
        if r != w {
            problems.push(format!(
                "{}: residual {} × {} = {r}, matrix says {w}",
                h.id, &c[1], &c[2]
            ));
        }
        // A verification gap must show in the status.
        let status = get("Status");
        let gap = get("Verification").contains("(gap)") || get("Verification").contains(": gap");
        if gap && !status.contains("gap") {
            problems.push(format!(
                "{}: Verification lists a gap but Status does not say so",
                h.id
            ));
        }
        entries.insert(h.id.clone(), (want, r, status.contains("gap")));
    }

    // Summary table: | H-NN | title | before | residual | status |
    let sum = Regex::new(r"(?m)^\|\s*(H-\d{2,})\s*\|[^|]*\|\s*(\d)\s*\|\s*(\d)\s*\|([^|]*)\|\s*$")
        .unwrap();
    let mut listed = BTreeSet::new();
    for c in sum.captures_iter(&text) {
        let id = c[1].to_owned();
        listed.insert(id.clone());
        let (b, r): (u8, u8) = (c[2].parse().unwrap(), c[3].parse().unwrap());
        let gap = c[4].contains("gap");
        match entries.get(&id) {
            None => problems.push(format!("summary lists {id}, which has no entry")),
            Some(&(eb, er, egap)) => {
                if (b, r) != (eb, er) {
                    problems.push(format!(
                        "summary {id}: before {b} / residual {r}, entry says {eb} / {er}"
                    ));
                }
                if gap != egap {
                    problems.push(format!(
                        "summary {id}: status gap = {gap}, entry status gap = {egap}"
                    ));
                }
            }
        }
    }
    for id in entries.keys() {
        if !listed.contains(id) {
            problems.push(format!("{id} is missing from the summary table"));
        }
    }
    assert!(problems.is_empty(), "{LOG}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------
// The checker's own rules, on small sources
// ---------------------------------------------------------------------------

#[test]
fn the_checker_tells_tests_from_other_functions() {
    let src = r##"
#[test]
fn plain() {}

/// Doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokio() {}

fn helper() {}
#[test]
fn after_helper() {}

fn not_a_test_either() { let s = "#[test]"; }

proptest::proptest! {
    #[test]
    fn in_proptest(s in "\\PC{0,20}") { let _ = '{'; }
}

async fn generated(l: &u8) {}
macro_rules! both {
    ($($name:ident),*) => { mod m { $( #[tokio::test] async fn $name() { super::$name(&0).await } )* } };
}
both!(generated);
"##;
    for ok in [
        "plain",
        "with_tokio",
        "after_helper",
        "in_proptest",
        "generated",
    ] {
        assert_eq!(not_a_test(src, ok), None, "{ok} is a test");
    }
    for bad in ["helper", "not_a_test_either", "absent"] {
        assert!(not_a_test(src, bad).is_some(), "{bad} is not a test");
    }
    let refs = references("x `tests/a.rs::b` y `src/c/d.rs::e_f` z `src/x.rs` `other/y.rs::z`");
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        [
            ("src/c/d.rs".to_owned(), "e_f".to_owned()),
            ("tests/a.rs".to_owned(), "b".to_owned())
        ]
    );
}
