//! Where a written number begins and ends: a match is set apart only when it cuts
//! no longer number, is glued when a joiner and a digit touch it, and a count or
//! label is read beside the number it belongs to.

use crate::identify::nhs_number;

/// Is `r` joined to more digits by `/`, `.`, `-` or `:` right at either end?
pub(super) fn glued_to_digits(work: &str, r: std::ops::Range<usize>) -> bool {
    let b = work.as_bytes();
    let joiner = |c: u8| matches!(c, b'/' | b'.' | b'-' | b':');
    let before = r.start >= 2 && joiner(b[r.start - 1]) && b[r.start - 2].is_ascii_digit();
    let after = r.end + 1 < b.len() && joiner(b[r.end]) && b[r.end + 1].is_ascii_digit();
    before || after
}

/// The end of the tight digit chain (groups joined by up to three spaces,
/// dots or dashes) that goes on from byte `end`, or `end`.
pub(super) fn run_on(norm: &str, end: usize) -> usize {
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

/// May the digits in `r` be set aside as not a patient? Only when they do not
/// cut a longer number: either no digit group follows them within three
/// separators, or what follows is a whole NHS number by itself ("bed 12
/// 9434765919", "1. 943 476 5919", "bed 4 999 246 8130 29+2/40": a count
/// after it may be set aside too). "bed 943 476 5919" is left to the grammar.
pub(super) fn sets_apart(norm: &str, r: std::ops::Range<usize>) -> bool {
    let bytes = norm.as_bytes();
    let Some(last) = (r.start..r.end).rev().find(|&i| bytes[i].is_ascii_digit()) else {
        return false;
    };
    // Where the digit run that ends the match really ends.
    let end = (last..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit())
        .unwrap_or(bytes.len());
    if end > r.end {
        return false; // the match stops inside a number
    }
    let mut j = end;
    let mut seps = 0;
    while seps < 3 && j < bytes.len() && is_sep(bytes[j]) {
        j += 1;
        seps += 1;
    }
    // After the digits, only separators lead to a digit: either nothing
    // numeric follows within three of them, or it must be a whole number.
    !bytes.get(j).is_some_and(u8::is_ascii_digit) || number_starts_at(norm, j)
}

/// Is `norm[from..to]` one whole NHS number in a written form of its own
/// (its check digit is not looked at: a mistyped number is still a number)?
pub(super) fn whole_number(norm: &str, from: usize, to: usize) -> bool {
    nhs_number::find_candidates(&norm[from..to])
        .first()
        .is_some_and(|c| c.start == 0 && c.end == to - from)
}

pub(super) fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'\n')
}

/// Does a whole NHS number start at byte `j`: the digit groups from `j`,
/// joined by separators, up to the end of one of them ("999 246 8130" in
/// "999 246 8130 29+2/40")? How many separators may join two groups is the
/// grammar's to say ([`whole_number`]).
pub(super) fn number_starts_at(norm: &str, j: usize) -> bool {
    let b = norm.as_bytes();
    let mut k = j;
    loop {
        if !b.get(k).is_some_and(u8::is_ascii_digit) {
            return false;
        }
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if whole_number(norm, j, k) {
            return true;
        }
        while k < b.len() && is_sep(b[k]) {
            k += 1;
        }
    }
}

/// Does a whole NHS number end at byte `i` (the mirror of
/// [`number_starts_at`]: "999 246 8130" in "bed 4 999 246 8130")?
pub(super) fn number_ends_at(norm: &str, i: usize) -> bool {
    let b = norm.as_bytes();
    let mut g = i;
    loop {
        if g == 0 || !b[g - 1].is_ascii_digit() {
            return false;
        }
        while g > 0 && b[g - 1].is_ascii_digit() {
            g -= 1;
        }
        if whole_number(norm, g, i) {
            return true;
        }
        while g > 0 && is_sep(b[g - 1]) {
            g -= 1;
        }
    }
}

/// Does a whole NHS number in a written form of its own stand right beside
/// `r`, within three separators: ending before it ("999 049 4916 3 days") or
/// starting after it ("39+2 3291716515")?
pub(super) fn beside_a_number(norm: &str, r: std::ops::Range<usize>) -> bool {
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
pub(super) fn labelled_as_not_patient(norm: &str, start: usize) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_match_is_set_apart_at_the_end_of_the_text_or_before_trailing_separators() {
        assert!(sets_apart("bed 12 ", 4..6));
        assert!(sets_apart("bed 12 - ", 4..6));
        assert!(sets_apart("bed 12\n", 4..6));
        // Three separators and then a piece of a number: not apart; four: apart.
        assert!(!sets_apart("bed 12 - 34", 4..6));
        assert!(sets_apart("bed 12    943", 4..6));
        // A match that ends on letters after its digits ("12a") is judged by its digits.
        assert!(sets_apart("cot 3a", 4..6));
        // The match's own digits run on past it into a longer number.
        assert!(!sets_apart("bed 12345 9994321536", 4..6));
    }

    #[test]
    fn a_whole_number_is_exactly_one_nhs_number_from_end_to_end() {
        let t = "999 432 1536 x";
        assert!(whole_number(t, 0, 12));
        assert!(whole_number("9994321536", 0, 10));
        // Something more on either side, or a piece of it: not whole.
        assert!(!whole_number(t, 0, 14));
        assert!(!whole_number("12 9994321536", 0, 13));
        assert!(!whole_number(t, 0, 7));
        // A mistyped number is still one number; ten identical digits are not one.
        assert!(whole_number("9994321537", 0, 10));
        assert!(!whole_number("4444444444", 0, 10));
    }

    #[test]
    fn a_whole_number_starts_at_a_digit_group_and_ends_at_the_end_of_one() {
        for t in [
            "9994321536",
            "999 432 1536",
            "999-432-1536 29+2/40",
            "999.432.1536",
            "999 432 1536 7 days",
        ] {
            assert!(number_starts_at(t, 0), "{t:?}");
        }
        // Starting later in the text.
        assert!(number_starts_at("bed 4 999 432 1536", 6));
        // Not at a digit, not at the start of the number, or no number at all.
        assert!(!number_starts_at(" 999 432 1536", 0));
        assert!(!number_starts_at("bed 4 999 432 1536", 7));
        assert!(!number_starts_at("12 999 432 1536", 0));
        // Groups that never make a whole number, up to the end of the text,
        // through trailing separators, or up to a letter.
        assert!(!number_starts_at("999 432", 0));
        assert!(!number_starts_at("999 432 ", 0));
        assert!(!number_starts_at("999 432x1536", 0));
        assert!(!number_starts_at("99943215370", 0));
        assert!(!number_starts_at("", 0));
    }

    #[test]
    fn a_whole_number_ends_at_the_end_of_a_digit_group() {
        for t in [
            "9994321536",
            "bed 4 999 432 1536",
            "x 999-432-1536",
            "12  999.432.1536",
        ] {
            assert!(number_ends_at(t, t.len()), "{t:?}");
        }
        let t = "999 432 1536 7 days";
        assert!(number_ends_at(t, 12));
        // Not right after a digit, inside the number, or before a longer one.
        assert!(!number_ends_at(t, 13));
        assert!(!number_ends_at(t, 7));
        assert!(!number_ends_at("9994321536 7", 12));
        assert!(!number_ends_at(" 432 1536", 9));
        assert!(!number_ends_at("  432 1536", 10));
        assert!(!number_ends_at("", 0));
        assert!(!number_ends_at("99943215367", 11));
    }

    #[test]
    fn a_count_is_beside_a_number_that_ends_before_it_or_starts_after_it() {
        let t = "999 432 1536 3 days";
        assert!(beside_a_number(t, 13..14));
        let t = "39+2 9994321536";
        assert!(beside_a_number(t, 0..4));
        // Joined without a separator, or more than three separators away: not beside.
        assert!(!beside_a_number("9994321536x3", 11..12));
        assert!(!beside_a_number("9994321536    3", 14..15));
        assert!(!beside_a_number("3    9994321536", 0..1));
        // Beside a piece of a number only.
        assert!(!beside_a_number("432 1536 3 days", 9..10));
        assert!(!beside_a_number("3 999 432", 0..1));
        assert!(!beside_a_number("3", 0..1));
        // Glued to the number's own digits, a count is part of that number,
        // not beside it, on either side.
        assert!(!beside_a_number("99943215363", 10..11));
        assert!(!beside_a_number("39994321536", 0..1));
    }
}
