//! Words, phrases and clauses of a message, as the Task rules read them.

use super::Phrase;

/// Lower-case words: letters, digits, `'`, `-` and `.` inside a word ("a.s.a.p").
pub fn words(text: &str) -> Vec<String> {
    let t = text.to_lowercase().replace(['’', '‘'], "'");
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in t.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '-' || (c == '.' && !cur.is_empty()) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur).trim_end_matches('.').to_owned());
        }
    }
    if !cur.is_empty() {
        out.push(cur.trim_end_matches('.').to_owned());
    }
    out.retain(|w| !w.is_empty());
    out
}

pub(super) fn phrases(list: &[String]) -> Vec<Phrase> {
    list.iter()
        .map(|p| words(p))
        .filter(|w| !w.is_empty())
        .collect()
}

pub(super) fn contains(hay: &[String], p: &Phrase) -> bool {
    hay.windows(p.len()).any(|w| w == p.as_slice())
}

pub(super) fn any(hay: &[String], ps: &[Phrase]) -> bool {
    ps.iter().any(|p| contains(hay, p))
}

/// Clauses: split at sentence punctuation, commas and a spaced dash; each
/// with whether it ends a question (`?`).
pub(super) fn clauses(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A dot or colon between digits is part of a number or time ("2.5",
        // "10:45"), not the end of a clause.
        let b = rest.as_bytes();
        let inside_number = |i: usize| {
            matches!(b[i], b'.' | b':')
                && i > 0
                && b[i - 1].is_ascii_digit()
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        };
        let end = rest
            .match_indices(['.', '!', '?', ';', ',', '\n', ':'])
            .map(|(i, _)| i)
            .find(|&i| !inside_number(i))
            .unwrap_or(rest.len());
        let question = rest[end..].starts_with('?');
        for c in rest[..end].split(" - ") {
            if !c.trim().is_empty() {
                out.push((c, question));
            }
        }
        rest = rest.get(end + 1..).unwrap_or("");
    }
    out
}

/// A number as a result is written: "5.2", "131", "<0.5".
pub(super) fn is_number(t: &str) -> bool {
    let t = t.trim_start_matches(['<', '>', '~']);
    !t.is_empty() && t.chars().any(|c| c.is_ascii_digit()) && t.parse::<f64>().is_ok()
}
