//! The fail-safe side of the scan: digit chains joined across short gaps, and
//! whether a cleared chain is fully explained by the not-patient patterns.

use crate::identify::nhs_number;

/// Does `text` hold 10 digits that pass the NHS check, as the whole of its
/// digits or as consecutive whole digit groups ("12 9994321536")?
pub(super) fn any_valid_window(text: &str) -> bool {
    let groups: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let all: String = groups.concat();
    if nhs_number::is_valid(&all) {
        return true;
    }
    (0..groups.len()).any(|i| {
        let mut w = String::new();
        groups[i..].iter().any(|g| {
            w.push_str(g);
            w.len() == 10 && nhs_number::is_valid(&w)
        })
    })
}

/// A run of digits joined across at most `max_gap` non-alphanumeric characters,
/// starting at byte `at` (a digit): (end, digit positions).
pub(super) fn loose_chain(work: &str, at: usize, max_gap: usize) -> (usize, Vec<usize>) {
    let bytes = work.as_bytes();
    let mut digits = Vec::new();
    let mut i = at;
    let mut end = at;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            digits.push(i);
            i += 1;
        }
        end = end.max(i);
        // The gap: up to `max_gap` characters that are neither letters nor digits.
        let mut j = i;
        let mut joined = false;
        for (gap, c) in work[i..].chars().enumerate() {
            if c.is_ascii_digit() {
                joined = gap > 0 && gap <= max_gap;
                break;
            }
            if c.is_alphanumeric() || gap == max_gap {
                break;
            }
            j += c.len_utf8();
        }
        if !joined {
            return (end, digits);
        }
        i = j;
    }
}

/// Sizes of the digit groups (maximal runs of adjacent digit positions).
pub(super) fn max_group(digits: &[usize]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev: Option<usize> = None;
    for &d in digits {
        run = if prev == Some(d.wrapping_sub(1)) {
            run + 1
        } else {
            1
        };
        best = best.max(run);
        prev = Some(d);
    }
    best
}

/// Digit positions of `digits` split into tight runs: consecutive digit groups
/// joined only by the separators of a written NHS number (spaces, dots,
/// dashes, a line break), as an identifier may be written ("155901\n9743",
/// "9974 10-4-59"). Slashes and colons (dates, times, ratios), commas and
/// underscores (lists, file names) end a run: "30/11/2026 14:05" is the runs
/// 30, 11, "2026 14", 05.
pub(super) fn tight_runs(work: &str, digits: &[usize]) -> Vec<Vec<usize>> {
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut prev: Option<usize> = None;
    for &d in digits {
        let joined = prev.is_some_and(|p| {
            work.as_bytes()[p + 1..d]
                .iter()
                .all(|b| matches!(b, b' ' | b'.' | b'-' | b'\n'))
        });
        match runs.last_mut() {
            Some(run) if joined => run.push(d),
            _ => runs.push(vec![d]),
        }
        prev = Some(d);
    }
    runs
}

/// Is a chain whose digits were all cleared really explained as not a patient?
/// Not when a tight run of it of `min_digits` or more is cleared only by
/// several matches together (each a plausible piece: "155901" a time stamp,
/// "9743 - 7 units" a dose), nor when one after-stage match holds a tight run
/// that passes the NHS check ("9994-3654.52 HR" read as a range of hours).
/// `clearing`: the ranges that cleared digits, and whether each is an
/// after-stage match (a before-stage match checks its own valid numbers).
pub(super) fn explained(
    work: &str,
    digits: &[usize],
    clearing: &[(std::ops::Range<usize>, bool)],
    min_digits: usize,
) -> bool {
    tight_runs(work, digits).iter().all(|run| {
        let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
            return true;
        };
        let text = &work[first..=last];
        match clearing
            .iter()
            .find(|(r, _)| r.start <= first && last < r.end)
        {
            Some((_, after)) => !(*after && any_valid_window(text)),
            None => run.len() < min_digits,
        }
    })
}

/// After an identifier keyword ending at `from`: the first digit of the
/// number it introduces, skipping punctuation and the words "no", "number",
/// "num", "nr", "is", "of" ("NHS no. is 123…").
pub(super) fn digits_after_keyword(work: &str, from: usize) -> Option<usize> {
    let bytes = work.as_bytes();
    let mut i = from;
    // The keyword must end a word: "nhs" in "nhsx" is not a keyword.
    if bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    for _ in 0..4 {
        let mut punct = 0;
        while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() && punct < 4 {
            if bytes[i] >= 0x80 {
                return None;
            }
            i += 1;
            punct += 1;
        }
        match bytes.get(i) {
            Some(b) if b.is_ascii_digit() => return Some(i),
            Some(b) if b.is_ascii_alphabetic() => {
                let end = work[i..]
                    .find(|c: char| !c.is_ascii_alphabetic())
                    .map_or(work.len(), |e| i + e);
                let word = work[i..end].to_ascii_lowercase();
                if matches!(word.as_str(), "no" | "number" | "num" | "nr" | "is" | "of") {
                    i = end;
                } else {
                    return None;
                }
            }
            _ => return None,
        }
    }
    None
}
