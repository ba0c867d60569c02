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

mod failsafe;
mod number;

use failsafe::{any_valid_window, digits_after_keyword, explained, loose_chain, max_group};
use number::{beside_a_number, glued_to_digits, labelled_as_not_patient, run_on, sets_apart};

/// Blank `range` of `work` with the ASCII `fill` (same byte length, so
/// offsets hold; a multi-byte character becomes several fills).
fn blank(work: &mut String, range: std::ops::Range<usize>, fill: char) {
    let s: String = std::iter::repeat_n(fill, range.len()).collect();
    work.replace_range(range, &s);
}

/// Is the identifier that starts at byte `start` of `norm` negated ("not 999…")?
fn negated(idf: &Identify, norm: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(48);
    while !norm.is_char_boundary(from) {
        from += 1;
    }
    idf.negation.is_match(&norm[from..start])
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

#[cfg(test)]
mod tests {
    use super::failsafe::{any_valid_window, explained, loose_chain, max_group, tight_runs};

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
}
