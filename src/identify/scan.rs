//! The identification scan of one text, in the order documented in
//! `mappings/identifiers.toml`: normalise → locations → NHS numbers → local
//! identifiers → negation → not-patient patterns → identifier-like spans.
//!
//! The scan keeps two working copies of the normalised text. The grammar's
//! copy has recognised identifiers blanked (`x`, a letter, so that nothing
//! joins across them) and numbers set aside before the grammar (locations,
//! labelled references, list numbers) blanked (`~`, punctuation). The fail-safe
//! copy has only the identifiers blanked, so a number set aside still joins the
//! digits around it; a map records the digits that a not-patient pattern
//! cleared. A run of digits is identifier-like unless every one of its digits
//! was cleared, and no long enough piece of it is only explained by several
//! patterns together (see [`explained`]).

use super::{Found, Identifier, Identify, nhs_number, normalize, push};

/// Blank `range` of `work` with the ASCII `fill` (same byte length, so
/// offsets hold; a multi-byte character becomes several fills).
fn blank(work: &mut String, range: std::ops::Range<usize>, fill: char) {
    let s: String = std::iter::repeat_n(fill, range.len()).collect();
    work.replace_range(range, &s);
}

/// Is `r` joined to more digits by `/`, `.`, `-` or `:` right at either end?
fn glued_to_digits(work: &str, r: std::ops::Range<usize>) -> bool {
    let b = work.as_bytes();
    let joiner = |c: u8| matches!(c, b'/' | b'.' | b'-' | b':');
    let before = r.start >= 2 && joiner(b[r.start - 1]) && b[r.start - 2].is_ascii_digit();
    let after = r.end + 1 < b.len() && joiner(b[r.end]) && b[r.end + 1].is_ascii_digit();
    before || after
}

/// The end of the tight digit chain (groups joined by up to three spaces,
/// dots or dashes) that goes on from byte `end`, or `end`.
fn run_on(norm: &str, end: usize) -> usize {
    let bytes = norm.as_bytes();
    let mut out = end;
    let mut i = end;
    loop {
        let mut j = i;
        let mut seps = 0;
        while seps < 3 && j < bytes.len() && matches!(bytes[j], b' ' | b'.' | b'-') {
            j += 1;
            seps += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() && seps > 0 {
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            out = j;
            i = j;
        } else {
            return out;
        }
    }
}

/// Does `text` hold 10 digits that pass the NHS check, as the whole of its
/// digits or as consecutive whole digit groups ("12 9994321536")?
fn any_valid_window(text: &str) -> bool {
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

/// May the digits in `r` be set aside as not a patient? Only when they do not
/// cut a longer number: either no digit group follows them within three
/// separators, or what follows is a whole NHS number by itself ("bed 12
/// 9434765919", "1. 943 476 5919", "bed 4 999 246 8130 29+2/40": a count
/// after it may be set aside too). "bed 943 476 5919" is left to the grammar.
fn sets_apart(norm: &str, r: std::ops::Range<usize>) -> bool {
    let bytes = norm.as_bytes();
    let Some(last) = (r.start..r.end).rev().find(|&i| bytes[i].is_ascii_digit()) else {
        return false;
    };
    // Where the digit run that ends the match really ends.
    let mut end = last + 1;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end > r.end {
        return false; // the match stops inside a number
    }
    let mut j = end;
    let mut seps = 0;
    while seps < 3 && j < bytes.len() && matches!(bytes[j], b' ' | b'.' | b'-' | b'\n') {
        j += 1;
        seps += 1;
    }
    if !(seps > 0 && j < bytes.len() && bytes[j].is_ascii_digit()) {
        return true;
    }
    number_starts_at(norm, j)
}

/// Is `norm[from..to]` one whole NHS number in a written form of its own?
fn whole_number(norm: &str, from: usize, to: usize) -> bool {
    nhs_number::find_candidates(&norm[from..to])
        .first()
        .is_some_and(|c| c.start == 0 && c.end == to - from)
}

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'\n')
}

/// Does a whole NHS number start at byte `j`: the digit groups from `j`,
/// joined by up to three separators, up to the end of one of them ("999 246
/// 8130" in "999 246 8130 29+2/40")?
fn number_starts_at(norm: &str, j: usize) -> bool {
    let b = norm.as_bytes();
    let mut e = j;
    loop {
        let mut k = e;
        let mut seps = 0;
        while e > j && seps < 3 && k < b.len() && is_sep(b[k]) {
            k += 1;
            seps += 1;
        }
        if k >= b.len() || !b[k].is_ascii_digit() || (e > j && seps == 0) {
            return false;
        }
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        e = k;
        if whole_number(norm, j, e) {
            return true;
        }
    }
}

/// Does a whole NHS number end at byte `i` (the mirror of
/// [`number_starts_at`]: "999 246 8130" in "bed 4 999 246 8130")?
fn number_ends_at(norm: &str, i: usize) -> bool {
    let b = norm.as_bytes();
    let mut g = i;
    loop {
        let mut k = g;
        let mut seps = 0;
        while g < i && seps < 3 && k > 0 && is_sep(b[k - 1]) {
            k -= 1;
            seps += 1;
        }
        if k == 0 || !b[k - 1].is_ascii_digit() || (g < i && seps == 0) {
            return false;
        }
        while k > 0 && b[k - 1].is_ascii_digit() {
            k -= 1;
        }
        g = k;
        if whole_number(norm, g, i) {
            return true;
        }
    }
}

/// Does a whole NHS number in a written form of its own stand right beside
/// `r`, within three separators: ending before it ("999 049 4916 3 days") or
/// starting after it ("39+2 3291716515")?
fn beside_a_number(norm: &str, r: std::ops::Range<usize>) -> bool {
    let bytes = norm.as_bytes();
    let mut i = r.start;
    let mut seps = 0;
    while seps < 3 && i > 0 && is_sep(bytes[i - 1]) {
        i -= 1;
        seps += 1;
    }
    let mut j = r.end;
    let mut after = 0;
    while after < 3 && j < bytes.len() && is_sep(bytes[j]) {
        j += 1;
        after += 1;
    }
    (seps > 0 && number_ends_at(norm, i)) || (after > 0 && number_starts_at(norm, j))
}

/// Does a bleep, extension, phone or reference label end right before `start`?
fn labelled_as_not_patient(norm: &str, start: usize) -> bool {
    static LABEL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = LABEL.get_or_init(|| {
        regex::Regex::new(
            r"(?i)\b(?:bleep|bleeper|blp|pager|page|ext|extn|extension|tel|phone|mob|mobile|x|ref)\b[\s.#:]*$",
        )
        .expect("constant regex")
    });
    let mut from = start.saturating_sub(24);
    while !norm.is_char_boundary(from) {
        from += 1;
    }
    re.is_match(&norm[from..start])
}

/// Is the identifier that starts at byte `start` of `norm` negated ("not 999…")?
fn negated(idf: &Identify, norm: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(48);
    while !norm.is_char_boundary(from) {
        from += 1;
    }
    idf.negation.is_match(&norm[from..start])
}

/// A run of digits joined across at most `max_gap` non-alphanumeric characters,
/// starting at byte `at` (a digit): (end, digit positions).
fn loose_chain(work: &str, at: usize, max_gap: usize) -> (usize, Vec<usize>) {
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
fn max_group(digits: &[usize]) -> usize {
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

pub(super) fn scan(idf: &Identify, text: &str, found: &mut Found) {
    let norm = normalize(text);
    if !norm.bytes().any(|b| b.is_ascii_digit()) {
        return;
    }
    // `grammar`: the text the identifier grammar reads, with numbers set aside
    // (locations, references) blanked. `work`: the text the fail-safe scan
    // reads, with only identifiers blanked, so that a number set aside still
    // joins the digits around it ("Datix ref 526…. 999|725|8525").
    let mut grammar = norm.clone();
    let mut work = norm.clone();
    let mut cleared = vec![false; norm.len()];
    let mut clearing: Vec<(std::ops::Range<usize>, bool)> = Vec::new();

    // 2. Location numbers ("bed 12") and numbers known not to be patients
    //    that must be set aside before the grammar (labelled references, list
    //    numbers).
    // (range, whether a valid NHS number in it keeps it identifier-like)
    let mut pre: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    for c in idf.locations.captures_iter(&norm) {
        let (Some(w), Some(n)) = (c.name("w"), c.name("n")) else {
            continue;
        };
        if let Some(key) = super::location_key(w.as_str(), n.as_str())
            && !found.locations.contains(&key)
        {
            found.locations.push(key);
        }
        pre.push((n.range(), false));
    }
    for p in idf.not_patient.iter().filter(|p| p.before) {
        for m in p.regex.find_iter(&norm) {
            // Never a piece of another number ("05:08 366 645 742" holds no
            // phone number "08 366 645 742").
            if glued_to_digits(&norm, m.range()) {
                continue;
            }
            if p.beside_number && !beside_a_number(&norm, m.range()) {
                continue;
            }
            // A labelled reference may run on into the digit groups after
            // it ("ref 12 9994321536"): then nothing is set aside, and the
            // whole run is left to the grammar and the fail-safe scan.
            let end = run_on(&norm, m.end());
            if p.extends && end > m.end() {
                if any_valid_window(&norm[m.start()..end]) {
                    // Labelled as a reference, yet it holds a valid NHS
                    // number: neither a patient nor cleared.
                    found.unrecognised.push(
                        norm[m.start()..end]
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect(),
                    );
                    blank(&mut work, m.start()..end, 'x');
                    blank(&mut grammar, m.start()..end, 'x');
                }
                continue;
            }
            pre.push((m.range(), p.extends));
        }
    }
    for (r, labelled) in pre {
        let digits: String = norm[r.clone()]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if labelled && any_valid_window(&norm[r.clone()]) {
            // Labelled as not a patient, yet it holds a valid NHS number:
            // neither a patient nor cleared.
            found.unrecognised.push(digits);
            blank(&mut work, r.clone(), 'x');
            blank(&mut grammar, r, 'x');
            continue;
        }
        if sets_apart(&norm, r.clone()) {
            clearing.push((r.clone(), false));
            for (k, b) in norm.as_bytes()[r.clone()].iter().enumerate() {
                if b.is_ascii_digit() {
                    cleared[r.start + k] = true;
                    blank(&mut grammar, r.start + k..r.start + k + 1, '~');
                }
            }
        }
    }

    // Valid NHS numbers the message names (for pairing, step 4).
    let mut named: Vec<std::ops::Range<usize>> = Vec::new();

    // 3. NHS numbers. A 4-3-3 grouping right after a bleep, extension or
    // phone label is that number and more ("bleep # 8247 999 420"): left to
    // the fail-safe scan.
    for c in nhs_number::find_candidates(&grammar) {
        let four = grammar[c.start..c.end]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count()
            == 4;
        if four && labelled_as_not_patient(&norm, c.start) {
            continue;
        }
        if !c.valid {
            found.invalid += 1;
            found.unrecognised.push(c.digits);
        } else if negated(idf, &norm, c.start) {
            found.negated.push(Identifier::nhs(c.digits.clone()));
            found.unrecognised.push(c.digits);
        } else {
            named.push(c.start..c.end);
            push(&mut found.valid, Identifier::nhs(c.digits));
        }
        blank(&mut work, c.start..c.end, 'x');
        blank(&mut grammar, c.start..c.end, 'x');
    }

    // 4. Local identifiers (hospital numbers...), 5. negation.
    for p in &idf.local {
        let mut hits = Vec::new();
        for caps in p.regex.captures_iter(&grammar) {
            let whole = caps.get(0).map(|m| m.range());
            let value = caps.get(1).or_else(|| caps.get(0));
            if let (Some(whole), Some(value)) = (whole, value) {
                // Local identifiers are codes: case and spaces do not count.
                let v: String = value
                    .as_str()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
                    .to_uppercase();
                hits.push((whole, v, value.start()));
            }
        }
        for (whole, value, start) in hits {
            if negated(idf, &norm, start) {
                found
                    .unrecognised
                    .push(value.chars().filter(char::is_ascii_digit).collect());
            } else if let Some(pairing) = &idf.pairing
                && named
                    .iter()
                    .any(|n| paired(pairing, &norm, n.clone(), whole.clone()))
            {
                // The NHS number's own second identifier: not another patient.
                push(
                    &mut found.paired,
                    Identifier {
                        system: p.system.clone(),
                        value,
                    },
                );
            } else {
                push(
                    &mut found.valid,
                    Identifier {
                        system: p.system.clone(),
                        value,
                    },
                );
            }
            blank(&mut work, whole.clone(), 'x');
            blank(&mut grammar, whole, 'x');
        }
    }

    // 6. Numbers known not to be patients clear their digits.
    for p in idf.not_patient.iter().filter(|p| !p.before) {
        for m in p.regex.find_iter(&work) {
            // A match that is one piece of a longer number ("9/9/979/74/18/2"
            // read as a date, a blood pressure and a date) clears nothing.
            // Nor does a match that holds a group longer than the pattern
            // allows ("487561-3245 hr" is no dose range).
            let long_group = work[m.range()]
                .split(|c: char| !c.is_ascii_digit())
                .any(|g| g.len() > p.max_group);
            let digits = work[m.range()].bytes().filter(u8::is_ascii_digit).count();
            let too_many = digits > p.max_digits && !work[m.range()].contains('.');
            if !glued_to_digits(&work, m.range()) && !long_group && !too_many {
                cleared[m.range()].iter_mut().for_each(|c| *c = true);
                clearing.push((m.range(), true));
            }
        }
    }

    // 7. Identifier-like spans: after a keyword, then any long digit run.
    let bytes = work.as_bytes();
    let mut taken = vec![false; work.len()];
    let min_digits = idf.min_digits;
    // `labelled`: after an identifier keyword, where no not-patient pattern
    // clears anything ("MRN 20230115").
    let span = |digits: &[usize], labelled: bool, found: &mut Found, taken: &mut Vec<bool>| {
        digits.iter().for_each(|&d| taken[d] = true);
        // Cleared as not a patient, or a placeholder such as 0000000000.
        if (!labelled
            && digits.iter().all(|&d| cleared[d])
            && explained(&work, digits, &clearing, min_digits))
            || digits.iter().all(|&d| bytes[d] == bytes[digits[0]])
        {
            return;
        }
        found
            .unrecognised
            .push(digits.iter().map(|&d| char::from(bytes[d])).collect());
    };
    for k in &idf.keywords {
        for m in k.regex.find_iter(&work) {
            let Some(at) = digits_after_keyword(&work, m.end()) else {
                continue;
            };
            if taken[at] {
                continue;
            }
            let (_, digits) = loose_chain(&work, at, idf.max_gap);
            if digits.len() >= k.min_digits {
                span(&digits, true, found, &mut taken);
            }
        }
    }
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let (end, digits) = loose_chain(&work, i, idf.max_gap);
        i = end.max(i + 1);
        if digits.iter().any(|&d| taken[d]) {
            continue;
        }
        let code = digits[0] > 0
            && work[..digits[0]]
                .chars()
                .next_back()
                .is_some_and(char::is_alphabetic);
        if digits.len() >= idf.min_digits
            || max_group(&digits) >= idf.min_group
            || (code && digits.len() >= idf.min_code_digits)
        {
            span(&digits, false, found, &mut taken);
        }
    }
}

/// Is the local identifier at `local` the second identifier of the person
/// whose NHS number is at `nhs` (see [`super::Pairing`])? Only when nothing
/// but a bracket, a label and spaces or tabs stands between them: a word, a
/// comma, a slash or a line break leaves two identifiers.
fn paired(
    p: &super::Pairing,
    norm: &str,
    nhs: std::ops::Range<usize>,
    local: std::ops::Range<usize>,
) -> bool {
    if nhs.end <= local.start {
        let between = &norm[nhs.end..local.start];
        let bracketed = p.bracket.is_match(between) && p.close.is_match(&norm[local.end..]);
        // The NHS number's own label, on its own line.
        let line = norm[..nhs.start].rsplit('\n').next().unwrap_or_default();
        let fields = p.field.is_match(between) && p.nhs_label.is_match(line);
        bracketed || fields
    } else if local.end <= nhs.start {
        p.bracket_nhs.is_match(&norm[local.end..nhs.start]) && p.close.is_match(&norm[nhs.end..])
    } else {
        false
    }
}

/// Digit positions of `digits` split into tight runs: consecutive digit groups
/// joined only by the separators of a written NHS number (spaces, dots,
/// dashes, a line break), as an identifier may be written ("155901\n9743",
/// "9974 10-4-59"). Slashes and colons (dates, times, ratios), commas and
/// underscores (lists, file names) end a run: "30/11/2026 14:05" is the runs
/// 30, 11, "2026 14", 05.
fn tight_runs(work: &str, digits: &[usize]) -> Vec<Vec<usize>> {
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
fn explained(
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
fn digits_after_keyword(work: &str, from: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::{
        any_valid_window, explained, glued_to_digits, labelled_as_not_patient, loose_chain,
        max_group, run_on, sets_apart, tight_runs,
    };

    #[test]
    fn a_loose_chain_joins_digits_across_short_gaps_of_punctuation() {
        // "12|34" with a gap of one: one chain of four digits.
        assert_eq!(loose_chain("12|34 x", 0, 2), (5, vec![0, 1, 3, 4]));
        // A gap as long as `max_gap` joins; one longer does not.
        assert_eq!(loose_chain("1--2", 0, 2), (4, vec![0, 3]));
        assert_eq!(loose_chain("1---2", 0, 2), (1, vec![0]));
        // A letter ends the chain, and so does the end of the text.
        assert_eq!(loose_chain("12a34", 0, 3), (2, vec![0, 1]));
        assert_eq!(loose_chain("12 ", 0, 3), (2, vec![0, 1]));
        // Multi-byte punctuation counts as one character of the gap.
        assert_eq!(loose_chain("1–2", 0, 1), (5, vec![0, 4]));
        // It starts where it is told.
        assert_eq!(loose_chain("9 12", 2, 1), (4, vec![2, 3]));
    }

    #[test]
    fn the_largest_group_is_the_longest_run_of_adjacent_digits() {
        assert_eq!(max_group(&[]), 0);
        assert_eq!(max_group(&[0, 1, 3, 4, 5]), 3);
        assert_eq!(max_group(&[0, 2, 4]), 1);
        assert_eq!(max_group(&[5, 6, 7, 8, 20, 21]), 4);
    }

    #[test]
    fn a_valid_nhs_number_is_found_whole_or_in_consecutive_whole_groups() {
        assert!(any_valid_window("9994321536"));
        assert!(any_valid_window("999 432 1536"));
        assert!(any_valid_window("12 9994321536"));
        assert!(any_valid_window("12 999 432 1536 7"));
        assert!(!any_valid_window("9994321537"), "check digit fails");
        assert!(!any_valid_window("12 34"));
        // Groups are whole: a window never starts inside one.
        assert!(!any_valid_window("19994321536"));
    }

    #[test]
    fn a_match_is_set_apart_only_when_it_cuts_no_longer_number() {
        // Nothing follows, or a letter does.
        assert!(sets_apart("bed 12", 4..6));
        assert!(sets_apart("bed 12 please", 4..6));
        // A whole NHS number follows by itself.
        assert!(sets_apart("bed 12 9994321536", 4..6));
        assert!(sets_apart("bed 12 999 432 1536", 4..6));
        // What follows is a piece of one longer number: not set apart.
        assert!(!sets_apart("bed 999 432 1536", 4..7));
        assert!(!sets_apart("bed 12 34", 4..6));
        // The match stops inside a number, or holds no digit.
        assert!(!sets_apart("bed 123", 4..6));
        assert!(!sets_apart("bed 12", 0..3));
        // More than three separators: what follows is apart.
        assert!(sets_apart("bed 12    34", 4..6));
    }

    #[test]
    fn a_number_right_after_a_bleep_phone_or_reference_label_is_labelled() {
        for l in ["bleep ", "ext: ", "Phone # ", "ref. ", "x"] {
            let t = format!("{l}999 246 8130");
            assert!(labelled_as_not_patient(&t, l.len()), "{l:?}");
        }
        for l in ["pt ", "NHS ", "reference ", "bleep 1234 then "] {
            let t = format!("{l}999 246 8130");
            assert!(!labelled_as_not_patient(&t, l.len()), "{l:?}");
        }
        // A label further back than 24 bytes is not looked at (nor a cut inside a character).
        let far = format!("bleep{}999", " ".repeat(30));
        assert!(!labelled_as_not_patient(&far, far.len() - 3));
        let multi = format!("é{}", "b".repeat(30));
        assert!(!labelled_as_not_patient(&multi, multi.len()));
    }

    #[test]
    fn a_match_is_glued_when_a_joiner_and_a_digit_touch_either_end() {
        // Before: "12/3" with the match "3".
        assert!(glued_to_digits("12/3 x", 3..4));
        // After: "3/12" with the match "3".
        assert!(glued_to_digits("3/12 x", 0..1));
        for j in [".", "-", ":"] {
            assert!(glued_to_digits(&format!("x 5{j}9"), 2..3), "{j}");
        }
        // A joiner without a digit beyond it, or a digit without a joiner: not glued.
        assert!(!glued_to_digits("a/3 x", 2..3));
        assert!(!glued_to_digits("x 3/a", 2..3));
        assert!(!glued_to_digits("1 3 1", 2..3));
        // At the very ends of the text (no byte beyond the joiner).
        assert!(!glued_to_digits("3/", 0..1));
        assert!(!glued_to_digits("/3", 1..2));
        assert!(glued_to_digits("3/4", 0..1));
    }

    /// Digit positions of `text`.
    fn digits_of(text: &str) -> Vec<usize> {
        text.bytes()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_digit())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn tight_runs_join_only_by_the_separators_of_a_written_number() {
        let sizes =
            |t: &str| -> Vec<usize> { tight_runs(t, &digits_of(t)).iter().map(Vec::len).collect() };
        assert_eq!(sizes("30/11/2026 14:05"), vec![2, 2, 6, 2]);
        assert_eq!(sizes("155901\n9743 - 7"), vec![11]);
        assert_eq!(sizes("9974 10-4-59"), vec![9]);
        assert_eq!(sizes("1:2/3,4_5+6"), vec![1, 1, 1, 1, 1, 1]);
        assert_eq!(sizes("1 .2-\n3"), vec![3]);
        assert_eq!(sizes("12"), vec![2]);
        assert!(sizes("").is_empty());
    }

    #[test]
    fn a_cleared_chain_is_explained_by_one_match_or_short_tight_runs() {
        let t = "155901\n9743 - 7 units";
        let d = digits_of(t);
        // Two matches each clear a piece of an 11-digit tight run.
        let two = [(0..6, true), (7..22, true)];
        assert!(!explained(t, &d, &two, 9));
        // ... explained when the run is shorter than `min_digits`.
        assert!(explained(t, &d, &two, 12));
        // ... and when one match covers it all (a before-stage one: this
        // run passes the NHS check, so one after-stage match would not do).
        assert!(explained(t, &d, &[(0..22, false)], 9));
        assert!(!explained(t, &d, &[(0..22, true)], 9));
        // A date and a time: tight runs of 2, 2, 6, 2 digits.
        let t = "30/11/2026 14:05";
        assert!(explained(
            t,
            &digits_of(t),
            &[(0..10, true), (11..16, true)],
            9
        ));
        // One after-stage match holding a valid NHS number: not explained;
        // a before-stage match is (it checks its own numbers).
        let t = "9994-3654.52 hr";
        let d = digits_of(t);
        assert!(!explained(t, &d, &[(0..15, true)], 9));
        assert!(explained(t, &d, &[(0..15, false)], 9));
        // The match must cover the run from its first to its last digit.
        assert!(!explained(t, &d, &[(1..15, false)], 9));
        assert!(!explained(t, &d, &[(0..11, false)], 9));
        assert!(explained(t, &d, &[(0..12, false)], 9));
    }

    #[test]
    fn a_chain_runs_on_over_separated_digit_groups_only() {
        assert_eq!(run_on("12 345 6789 x", 2), 11);
        assert_eq!(run_on("12 - 345", 2), 8);
        // Separators with no digits after them are not part of the chain.
        assert_eq!(run_on("12 x", 2), 2);
        assert_eq!(run_on("12 -", 2), 2);
        // Four separators are too many.
        assert_eq!(run_on("12    345", 2), 2);
        // Letters end it.
        assert_eq!(run_on("12a345", 2), 2);
        // It goes on only across a separator, never from inside a digit run.
        assert_eq!(run_on("12345", 2), 2);
    }
}
