//! Detection of NHS numbers (UK patient identifiers) in free chat text.
//!
//! Filing a message into the wrong patient's record is the worst failure this
//! crate can make, so the scanner is deliberately conservative: when a digit
//! sequence could be part of something else (a phone number, an order
//! reference, a URL, a longer number) it is **not** reported.
//!
//! # Check digit (Modulus 11)
//!
//! The first nine digits are weighted 10, 9, ..., 2 and summed;
//! `check = 11 - (sum % 11)`. A check of 11 becomes 0; a check of 10 means the
//! number can never be valid. The number is valid iff the check equals the
//! tenth digit. Numbers made of ten identical digits (`0000000000`,
//! `4444444444`, ...) are never NHS numbers: [`is_valid`] rejects them and
//! [`find_candidates`] never returns them.
//!
//! # Recognised written forms
//!
//! * A **group** is a maximal run of ASCII digits (`0`-`9`).
//! * A **separator** is one of: space, `.`, `-`, U+00A0 (no-break space),
//!   newline. Other characters (tab, comma, `|`, `/`) are not separators;
//!   normalisation has already turned other Unicode spaces and dashes into
//!   ASCII.
//! * A **chain** is a maximal sequence of groups in which each pair of
//!   consecutive groups is joined by 1 to 3 separator characters (in any
//!   mix, e.g. `" "`, `". "`, `" - "`, `"\n"`), at most one of them a line
//!   break. Four or more separators, or a blank line, break the chain.
//! * A group that belongs to another token does not join a chain: one right
//!   after a letter that is not an identifier keyword (`SR3`, `T4`) or after
//!   a digit and `:` or `/` (`01:30`, `26/11`), and one right before a letter
//!   (`80M`, `12mg`) or before `:`/`/` and a digit. So `bed 12 80M`,
//!   `SR3 957.975.4322` and `999 280 5188 80M` keep the number whole.
//! * A chain is a candidate only if its group sizes are one of the ways
//!   people write the number: `[10]` (`9434765919`), `[3, 3, 4]`
//!   (`943 476 5919`, `943-476-5919`, `943. 476. 5919`), `[3, 7]`
//!   (`943 4765919`) or `[4, 3, 3]` (`9434 765 919`). Other splits (`[7, 3]`,
//!   `[5, 5]`) are left to the fail-safe scan. Because chains are maximal, a number is
//!   never found inside a longer digit sequence: `94347659190`,
//!   `12 9434765919`, `9434765919 12`, `9434765919-2`, `020 7946 0958 9`,
//!   `07700 900123` and `+44 7700900123` give nothing here (identification
//!   then treats what is left as identifier-like unless a not-patient
//!   pattern explains it).
//!
//! # Boundary rules
//!
//! The scanner expects text normalised by [`super::normalize`] (Unicode
//! digits, spaces and dashes already in ASCII form).
//!
//! A **glue** character is any Unicode alphanumeric character (letters, and
//! digits of any script) or one of `_ + \ @ £ $ € %`. Punctuation that
//! clinicians put between a label and the number (`#`, `:`, `=`, `(`, `[`,
//! `/`, `&`) is not glue: `NHS#726 018 1591`, `nhs=9434765919`,
//! `9997654323/9992468130` (two numbers) and a number as a URL path segment
//! are candidates.
//!
//! **Keywords** may touch the number: when the letters right before a chain
//! (or before its attached `.`/`-` run) are one of the identifier keywords
//! `nhs`, `no`, `num`, `number`, `nhsno`, `pt`, `id`, `nr` (any case), they do
//! not glue: `NHS9434765919`, `no.9434765919`, `nhs-943-476-5919`.
//!
//! A chain that has the right shape is still rejected when:
//!
//! 1. the character immediately before it is a glue character
//!    (`ORD9434765919`, `+9434765919`, `٣9434765919`);
//! 2. the character immediately after it is a glue character
//!    (`9434765919ABC`, `9434765919@nhs.net`, `9434765919%`);
//! 3. it is immediately preceded by a run of `.`/`-` characters which is
//!    itself immediately preceded by a glue character (`REF-9434765919`,
//!    `A.9434765919`, `no.9434765919`, `12---9434765919`);
//! 4. it is immediately followed by a run of `.`/`-` characters which is
//!    itself immediately followed by a glue character (`9434765919-A`,
//!    `9434765919.com`, `9434765919---2`).
//!
//! Rules 3 and 4 apply only to the "attached" separators `.` and `-`, never
//! to a space or a no-break space: `NHS 9434765919 please`,
//! `nhs no 943-476-5919.`, `NHS: 9434765919`, `NHS no. 9434765919` and
//! `bed 3 - 943 476 5919` (the ` - ` is three separator characters, so `3`
//! does not join the chain) are all candidates. A trailing full stop or comma
//! (`9434765919.`, `9434765919,`) and brackets (`(943 476 5919)`) are fine.
//!
//! Candidates whose check digit is wrong are still returned, with
//! `valid == false`, so that the caller can flag them for review.
//!
//! The scanner works on bytes (ASCII digits and the single-byte separators
//! never occur inside a multi-byte UTF-8 sequence) and only decodes the
//! characters next to a chain, so it never panics and does not allocate for
//! text without ASCII digits.

/// A cell boundary of a tab-separated row (U+001F, the ASCII unit
/// separator; `normalize` turns such a row's tabs into it): a number between
/// two is a cell of its own.
pub const CELL: char = '\u{1F}';

/// A 10-digit candidate found in text, in a recognised written form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsCandidate {
    /// 10 ASCII digits, separators removed.
    pub digits: String,
    /// Passes the Modulus 11 check.
    pub valid: bool,
    /// Byte offset of the first digit in the text.
    pub start: usize,
    /// Byte offset just past the last digit in the text.
    pub end: usize,
}

/// UTF-8 encoding of U+00A0 NO-BREAK SPACE.
const NBSP: [u8; 2] = [0xC2, 0xA0];

/// Byte length of the separator character starting at `i`, if there is one.
#[inline]
fn separator_len(bytes: &[u8], i: usize) -> Option<usize> {
    match *bytes.get(i)? {
        b' ' | b'.' | b'-' | b'\n' => Some(1),
        b if b == NBSP[0] && bytes.get(i + 1) == Some(&NBSP[1]) => Some(2),
        _ => None,
    }
}

/// Characters that attach a digit sequence to a surrounding token.
#[inline]
fn is_glue(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '+' | '\\' | '@' | '£' | '$' | '€' | '%')
}

/// Is the digit group starting at byte `start` the tail of another token:
/// right after a letter that is not an identifier keyword ("SR3", "T4"), or
/// after `:` or `/` that follow a digit ("01:30", "26/11")?
fn tail_of_token(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        Some(c) if c.is_alphabetic() => !keyword_before(text[..start].chars().rev()),
        Some(':' | '/') => {
            before.next().is_some_and(|c| c.is_ascii_digit()) && short_group(text, start)
        }
        _ => false,
    }
}

/// Is the digit group starting at `start` one or two digits long, as in a
/// time or a date ("13:50", "26/11"), not a number of its own ("…/999 817 5607")?
fn short_group(text: &str, start: usize) -> bool {
    text[start..].bytes().take_while(u8::is_ascii_digit).count() <= 2
}

/// Is the digit group ending at byte `end` the head of another token: right
/// before a letter ("80M", "12mg", "2nd") or before `:` or `/` and a digit
/// ("13:50", "26/11")?
fn head_of_token(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    let group = text[..end]
        .bytes()
        .rev()
        .take_while(u8::is_ascii_digit)
        .count();
    match after.next() {
        Some(c) if c.is_alphabetic() => true,
        Some(':' | '/') => after.next().is_some_and(|c| c.is_ascii_digit()) && group <= 2,
        _ => false,
    }
}

/// Identifier keywords that may be written against the number (`NHS9434765919`).
const KEYWORDS: [&str; 8] = ["nhs", "no", "num", "number", "nhsno", "pt", "id", "nr"];

/// Is the letter run that ends at the start of `chars` (walking backwards) a keyword?
fn keyword_before(chars: impl Iterator<Item = char>) -> bool {
    let mut word: Vec<char> = chars.take_while(|c| c.is_alphabetic()).take(8).collect();
    word.reverse();
    let word: String = word.into_iter().collect::<String>().to_lowercase();
    KEYWORDS.contains(&word.as_str())
}

/// "Attached" separators: checked through by boundary rules 3 and 4.
#[inline]
fn is_attached_separator(c: char) -> bool {
    c == '.' || c == '-'
}

/// A table cell of digits next to the chain ("9998 | 156-149", "… | 42"):
/// up to two spaces, `|`, up to two spaces, a digit. The number is one cell
/// of a row of numbers, not a number on its own.
fn beside_a_table_cell(chars: impl Iterator<Item = char>) -> bool {
    let mut bar = false;
    let mut spaces = 0;
    for c in chars {
        match c {
            ' ' | '\t' if spaces < 2 => spaces += 1,
            '|' | CELL if !bar => {
                bar = true;
                spaces = 0;
            }
            c => return bar && c.is_ascii_digit(),
        }
    }
    false
}

/// Is the chain a whole table cell of one line: `|`, spaces or tabs, the
/// chain without a line break, spaces or tabs, `|` ("| 1 | 999 968 0453 |
/// DHS |")? Such a number is a cell's value of its own, whatever the cells
/// beside it hold; a chain across a line break may join two rows' cells. In a
/// tab-separated row (cells parted by [`CELL`], see `normalize`) the start
/// or end of the line bounds its first or last cell.
fn whole_cell(text: &str, start: usize, end: usize) -> bool {
    /// What bounds the cell on one side: `|`, [`CELL`], or the line's edge.
    enum Edge {
        Bar,
        Cell,
        Line,
        None,
    }
    fn edge(mut it: impl Iterator<Item = char>) -> Edge {
        match it.find(|c| !matches!(c, ' ' | '\t')) {
            Some('|') => Edge::Bar,
            Some(CELL) => Edge::Cell,
            None | Some('\n') => Edge::Line,
            Some(_) => Edge::None,
        }
    }
    if text[start..end].contains('\n') {
        return false;
    }
    matches!(
        (edge(text[..start].chars().rev()), edge(text[end..].chars())),
        (Edge::Bar | Edge::Cell, Edge::Bar | Edge::Cell)
            | (Edge::Cell, Edge::Line)
            | (Edge::Line, Edge::Cell)
    )
}

/// Applies boundary rules 1-4 to the characters on one side of a chain,
/// given as an iterator walking away from the chain. On the left side
/// (`left`), a keyword right before the chain does not glue.
fn side_is_glued(chars: impl Iterator<Item = char> + Clone, left: bool, cell: bool) -> bool {
    if !cell && beside_a_table_cell(chars.clone()) {
        return true;
    }
    let mut it = chars.clone();
    let glued_at =
        |c: char, rest: &dyn Fn() -> bool| is_glue(c) && !(left && c.is_alphabetic() && rest());
    match it.next() {
        None => false,
        Some(c) if is_glue(c) => glued_at(c, &|| keyword_before(chars.clone())),
        // Other punctuation right against more digits ("916'0385", "12:943…")
        // means the number goes on in a way this grammar does not read; `/`
        // separates two numbers ("A/B").
        Some(c)
            if !c.is_whitespace()
                && !is_attached_separator(c)
                && c != '/'
                && c != CELL
                && it.clone().next().is_some_and(|d| d.is_ascii_digit()) =>
        {
            true
        }
        Some(c) if is_attached_separator(c) => {
            for (skip, c) in (1..).zip(it) {
                if !is_attached_separator(c) {
                    return glued_at(c, &|| keyword_before(chars.clone().skip(skip)));
                }
            }
            false
        }
        Some(_) => false,
    }
}

/// Find all NHS number candidates in `text`, in order of appearance.
///
/// See the module documentation for the accepted forms and boundary rules.
/// All-identical-digit numbers (e.g. `0000000000`, `4444444444`) are never
/// returned. Candidates failing Modulus 11 are returned with `valid == false`.
pub fn find_candidates(text: &str) -> Vec<NhsCandidate> {
    let bytes = text.as_bytes();
    // Fast path: no ASCII digit at all -> nothing to do, and no allocation.
    let Some(first_digit) = bytes.iter().position(u8::is_ascii_digit) else {
        return Vec::new();
    };

    let mut out = Vec::new();
    let n = bytes.len();
    let mut i = first_digit;
    while i < n {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }

        // Build one maximal chain starting at `i`.
        let chain_start = i;
        let mut sizes = [0usize; 3];
        let mut groups = 0usize;
        // A group that is the tail of another token ("SR3", "01:30", "26/11")
        // stands alone: nothing joins it.
        let mut alone = tail_of_token(text, i);
        let chain_end = loop {
            let group_start = i;
            while i < n && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if groups < sizes.len() {
                sizes[groups] = i - group_start;
            }
            groups += 1;
            let group_end = i;
            if alone {
                break group_end;
            }

            // Up to three separator characters after the group, at most one
            // of them a line break.
            let mut j = i;
            let mut seps = 0;
            let mut breaks = 0;
            while seps < 3 {
                match separator_len(bytes, j) {
                    Some(len) => {
                        breaks += usize::from(bytes[j] == b'\n');
                        j += len;
                        seps += 1;
                    }
                    None => break,
                }
            }
            // The next group joins unless it is the head of another token
            // ("80M", "26/11", "13:50").
            let next_end = bytes[j.min(n)..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(n, |e| j + e);
            if seps >= 1
                && breaks <= 1
                && j < n
                && bytes[j].is_ascii_digit()
                && !head_of_token(text, next_end)
            {
                i = j; // joined: continue the chain with the next group
                alone = false;
            } else {
                break group_end;
            }
        };
        i = chain_end;

        // The ways people group the ten digits: 10, 3-3-4, 3-7 and 4-3-3.
        let shape_ok = matches!(
            (groups, sizes),
            (1, [10, _, _]) | (2, [3, 7, _]) | (3, [3, 3, 4]) | (3, [4, 3, 3])
        );
        if !shape_ok {
            continue;
        }
        // chain_start and chain_end are next to ASCII digits, so they are
        // char boundaries and these slices cannot panic.
        let cell = whole_cell(text, chain_start, chain_end);
        if side_is_glued(text[..chain_start].chars().rev(), true, cell)
            || side_is_glued(text[chain_end..].chars(), false, cell)
        {
            continue;
        }

        let digits: String = text[chain_start..chain_end]
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(char::from)
            .collect();
        if all_identical(digits.as_bytes()) {
            continue;
        }
        let valid = is_valid(&digits);
        out.push(NhsCandidate {
            digits,
            valid,
            start: chain_start,
            end: chain_end,
        });
    }
    out
}

#[inline]
fn all_identical(digits: &[u8]) -> bool {
    digits.windows(2).all(|w| w[0] == w[1])
}

/// Modulus 11 check on exactly 10 ASCII digits.
///
/// Returns `false` for anything that is not exactly 10 ASCII digits, for
/// numbers whose computed check digit is 10, and for all-identical digits.
pub fn is_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) || all_identical(b) {
        return false;
    }
    let sum: u32 = b[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(b[9] - b'0')
}

/// Mask an NHS number for logs: first 3 and last 4 digits kept
/// (`"9434765919"` -> `"943***5919"`). Anything other than exactly 10 ASCII
/// digits gives `"***"`.
pub fn mask(digits: &str) -> String {
    let b = digits.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return "***".to_string();
    }
    // All ASCII, so byte slicing is on char boundaries.
    format!("{}***{}", &digits[..3], &digits[6..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "9434765919";

    /// The single candidate in `text`; panics if there is not exactly one.
    fn single(text: &str) -> NhsCandidate {
        let found = find_candidates(text);
        assert_eq!(
            found.len(),
            1,
            "expected one candidate in {text:?}, got {found:?}"
        );
        found.into_iter().next().unwrap()
    }

    /// Asserts `text` yields exactly the valid example number at `written`.
    fn assert_found(text: &str, written: &str) {
        let c = single(text);
        assert_eq!(c.digits, VALID, "in {text:?}");
        assert!(c.valid, "in {text:?}");
        let start = text
            .find(written)
            .expect("test text contains the written form");
        assert_eq!(
            (c.start, c.end),
            (start, start + written.len()),
            "in {text:?}"
        );
        assert_eq!(&text[c.start..c.end], written);
    }

    fn assert_none(text: &str) {
        let found = find_candidates(text);
        assert!(
            found.is_empty(),
            "expected no candidate in {text:?}, got {found:?}"
        );
    }

    // ---------------------------------------------------------------- is_valid

    #[test]
    fn is_valid_accepts_known_valid_number() {
        assert!(is_valid("9434765919"));
    }

    #[test]
    fn is_valid_rejects_wrong_check_digit() {
        assert!(!is_valid("9434765918"));
        assert!(!is_valid("9434765910"));
    }

    #[test]
    fn is_valid_maps_check_11_to_0() {
        // 987654321: weighted sum is a multiple of 11, so check 11 -> 0.
        assert!(is_valid("9876543210"));
        assert!(!is_valid("9876543211"));
    }

    #[test]
    fn is_valid_rejects_check_10_for_every_last_digit() {
        // 123456789: check would be 10, so no tenth digit makes it valid.
        for d in '0'..='9' {
            assert!(!is_valid(&format!("123456789{d}")), "123456789{d}");
        }
    }

    #[test]
    fn is_valid_rejects_all_identical_digits() {
        // Every ddddddddd has check digit d, so these pass the raw arithmetic.
        for d in '0'..='9' {
            let s: String = std::iter::repeat_n(d, 10).collect();
            assert!(!is_valid(&s), "{s}");
        }
    }

    #[test]
    fn is_valid_rejects_wrong_length_and_non_digits() {
        for s in [
            "",
            "943476591",
            "94347659190",
            "943 476 5919",
            "943476591a",
            "a434765919",
            "９４３４７６５９１９", // full-width digits
            "٩٤٣٤٧٦٥٩١٩",           // Arabic-Indic digits
        ] {
            assert!(!is_valid(s), "{s:?}");
        }
    }

    // -------------------------------------------------------------------- mask

    #[test]
    fn mask_keeps_first_three_and_last_four() {
        assert_eq!(mask("9434765919"), "943***5919");
        assert_eq!(mask("1234567890"), "123***7890");
    }

    #[test]
    fn mask_hides_anything_that_is_not_ten_ascii_digits() {
        for s in [
            "",
            "943476591",
            "94347659190",
            "943 476 5919",
            "abcdefghij",
            "٩٤٣٤٧٦٥٩١٩",
        ] {
            assert_eq!(mask(s), "***", "{s:?}");
        }
    }

    // ------------------------------------------------------ accepted written forms

    #[test]
    fn finds_plain_ten_digits() {
        assert_found("9434765919", "9434765919");
    }

    #[test]
    fn finds_3_3_4_with_spaces() {
        assert_found("943 476 5919", "943 476 5919");
    }

    #[test]
    fn finds_3_3_4_with_hyphens() {
        assert_found("943-476-5919", "943-476-5919");
    }

    #[test]
    fn finds_3_7_form() {
        assert_found("943 4765919", "943 4765919");
    }

    #[test]
    fn finds_with_double_space_separator() {
        assert_found("943  476 5919", "943  476 5919");
    }

    #[test]
    fn finds_with_dot_separators() {
        assert_found("943.476.5919", "943.476.5919");
    }

    #[test]
    fn finds_with_dot_space_separators() {
        assert_found("943. 476. 5919", "943. 476. 5919");
    }

    #[test]
    fn finds_with_no_break_space_separators() {
        assert_found("943\u{a0}476\u{a0}5919", "943\u{a0}476\u{a0}5919");
        assert_found("943 \u{a0}4765919", "943 \u{a0}4765919");
        // Only the no-break space: other characters that share its first or
        // second UTF-8 byte (© is C2 A9, à is C3 A0) separate nothing.
        assert_none("943\u{a9}476 5919");
        assert_none("943 476\u{e0}5919");
    }

    #[test]
    fn finds_after_colon_without_space() {
        assert_found("NHS:9434765919", "9434765919");
    }

    #[test]
    fn finds_after_colon_and_space() {
        assert_found("NHS: 9434765919", "9434765919");
    }

    #[test]
    fn finds_inside_brackets() {
        assert_found("(943 476 5919)", "943 476 5919");
    }

    #[test]
    fn finds_before_trailing_full_stop() {
        assert_found("nhs no 943-476-5919.", "943-476-5919");
    }

    #[test]
    fn finds_before_trailing_comma() {
        assert_found("9434765919,", "9434765919");
    }

    #[test]
    fn finds_after_word_and_space_and_before_space_and_word() {
        // Rules 3/4 do not apply to spaces: a normal sentence is fine.
        assert_found("NHS 9434765919 please file", "9434765919");
        assert_found("NHS no. 9434765919 seen", "9434765919");
    }

    #[test]
    fn a_digit_before_a_spaced_dash_joins_the_chain() {
        // "3 - 943 476 5919" could be one longer number: not a candidate here
        // (identification leaves it identifier-like; "bed 3" is a location).
        assert_none("3 - 943 476 5919");
    }

    #[test]
    fn attached_separator_after_non_glue_is_fine() {
        assert_found("NHS: -9434765919", "9434765919");
        assert_found("(-943-476-5919-)", "943-476-5919");
    }

    #[test]
    fn returns_invalid_checksum_as_invalid() {
        let c = single("NHS 943 476 5918");
        assert_eq!(c.digits, "9434765918");
        assert!(!c.valid);
    }

    #[test]
    fn returns_all_candidates_in_order() {
        let text = "old 9434765918, new 943 476 5919; also 9876543210";
        let found = find_candidates(text);
        let digits: Vec<_> = found.iter().map(|c| (c.digits.as_str(), c.valid)).collect();
        assert_eq!(
            digits,
            [
                ("9434765918", false),
                ("9434765919", true),
                ("9876543210", true)
            ]
        );
        assert!(found.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn byte_offsets_are_correct_next_to_multibyte_characters() {
        // Emoji are neither alphanumeric nor in the glue list.
        let text = "😀9434765919😀";
        let c = single(text);
        assert_eq!((c.start, c.end), (4, 14));
        assert_found("é 943 476 5919 中", "943 476 5919");
    }

    #[test]
    fn finds_after_hash_equals_colon_and_brackets() {
        assert_found("NHS#943 476 5919", "943 476 5919");
        assert_found("(NHS#9434765919)", "9434765919");
        assert_found("nhs=9434765919&x=1", "9434765919");
        assert_found("[9434765919]", "9434765919");
        assert_found("no:943-476-5919", "943-476-5919");
    }

    #[test]
    fn a_slash_pair_of_grouped_numbers_is_two_numbers() {
        let found = find_candidates("943 476 5919/987 654 3210");
        let d: Vec<_> = found.iter().map(|c| c.digits.as_str()).collect();
        assert_eq!(d, ["9434765919", "9876543210"]);
    }

    #[test]
    fn a_number_in_a_row_of_table_cells_is_not_a_candidate() {
        assert_none("9998 | 943-476\n5919");
        assert_none("943 476 5919 | 12 | 4");
        assert_found("| 943 476 5919 |", "943 476 5919");
        assert_found("NHS | 943 476 5919 | bed 4", "943 476 5919");
        // A whole cell of a Markdown table row is a value of its own.
        assert_found("| 1 | 943 476 5919 | DHS R NOF |", "943 476 5919");
        assert_found("| 14:00 |  9434765919\t| ?DVT |", "9434765919");
        assert_found("| 30 | 943-476-5919 | 14:00 |", "943-476-5919");
        // Not a whole cell: a bar on one side only, or a line break inside.
        assert_none("| x 943 476 5919 | 2 |");
        assert_none("12 | 943 476 5919 x | 4");
        assert_none("| 12 | 943 476\n5919 | 4 |");
        // Up to two spaces (or tabs) either side of one bar.
        assert_none("9434765919  |\t\t42");
        assert_found("9434765919   | 42", "9434765919");
        assert_found("9434765919 |   42", "9434765919");
        assert_found("9434765919 || 42", "9434765919");
    }

    #[test]
    fn a_whole_cell_of_a_tab_separated_row_is_a_candidate() {
        // Cells parted by CELL (tabs of a pasted row, see `normalize`).
        assert_found(
            "1\u{1f}A. Kowalski\u{1f}943.476.5919\u{1f}72.5",
            "943.476.5919",
        );
        assert_found(
            "Ernest\u{1f}12/03/1938\u{1f}9434765919\u{1f}22",
            "9434765919",
        );
        // The line's edge bounds the first and the last cell.
        assert_found("9434765919\u{1f}22", "9434765919");
        assert_found("x\n22\u{1f}943 476 5919\ny", "943 476 5919");
        // Not a whole cell: letters or more digits in the same cell, a line
        // break inside, or only line edges (no cell boundary at all).
        assert_none("1\u{1f}9434765919 12\u{1f}x");
        assert_none("1\u{1f}x 9434765919 12");
        assert_none("1\u{1f}943 476\n5919\u{1f}2");
        assert_none("1 9434765919");
    }

    #[test]
    fn punctuation_against_more_digits_glues() {
        assert_none("9434765919'0385");
        assert_none("12:9434765919");
        assert_none("9434765919,9876543210");
        assert_found("NHS:9434765919", "9434765919");
    }

    #[test]
    fn finds_both_numbers_of_a_slash_pair_and_in_url_path() {
        let found = find_candidates("9434765919/9876543210");
        let d: Vec<_> = found.iter().map(|c| c.digits.as_str()).collect();
        assert_eq!(d, ["9434765919", "9876543210"]);
        assert_found("https://epr.example/patient/9434765919/view", "9434765919");
    }

    #[test]
    fn identifier_keyword_may_touch_the_number() {
        assert_found("NHS9434765919", "9434765919");
        assert_found("no.9434765919", "9434765919");
        assert_found("nhs-943-476-5919", "943-476-5919");
        assert_found("pt9434765919", "9434765919");
        assert_found("NHSNO 9434765919", "9434765919");
    }

    #[test]
    fn other_words_touching_the_number_still_glue() {
        assert_none("ORD9434765919");
        assert_none("snhs9434765919");
        assert_none("ref.9434765919");
        assert_none("9434765919nhs");
    }

    // --------------------------------------------------------- rejected cases

    #[test]
    fn rejects_phone_number_with_extra_group() {
        assert_none("020 7946 0958 9");
    }

    #[test]
    fn rejects_mobile_number_5_6() {
        assert_none("07700 900123");
    }

    #[test]
    fn rejects_international_prefix() {
        assert_none("+44 7700900123");
    }

    #[test]
    fn rejects_eleven_digit_run() {
        assert_none("94347659190");
        assert_none("19434765919");
    }

    #[test]
    fn rejects_digit_group_joined_before() {
        assert_none("12 9434765919");
        assert_none("12. 9434765919");
    }

    #[test]
    fn rejects_digit_group_joined_after() {
        assert_none("9434765919 12");
    }

    #[test]
    fn rejects_hyphenated_suffix_digit() {
        assert_none("9434765919-2");
    }

    #[test]
    fn rejects_wrong_group_sizes() {
        for s in ["94 34765919", "943 476 59 19", "9 434765919", "94347659 19"] {
            assert_none(s);
        }
    }

    #[test]
    fn up_to_three_separators_join_groups() {
        assert_found("943   476 5919", "943   476 5919");
        assert_found("943 - 476 - 5919", "943 - 476 - 5919");
        assert_found("(943 - 476 - 5919) x", "943 - 476 - 5919");
    }

    #[test]
    fn four_separators_break_the_chain() {
        // Neither [3] nor [3, 4] is a recognised shape.
        assert_none("943    476 5919");
        assert_none("943 476 -- 5919");
    }

    #[test]
    fn the_four_three_three_grouping_is_found_other_splits_are_not() {
        assert_found("NHS No: 9434 765 919", "9434 765 919");
        // A 7-digit code next to three digits is not an NHS number here
        // (identification leaves it identifier-like).
        assert_none("9434765 919");
        assert_none("94347 65919");
        assert_none("943 4765 919");
    }

    #[test]
    fn groups_shorter_than_three_digits_are_not_a_grouping() {
        assert_none("94 34765919");
        assert_none("943 476 59 19");
        assert_none("9 434 765 919");
    }

    #[test]
    fn one_line_break_joins_groups_a_blank_line_does_not() {
        assert_found("NHS 943 476\n5919", "943 476\n5919");
        assert_none("943\n\n476 5919");
    }

    #[test]
    fn a_token_before_or_after_does_not_join_the_number() {
        // Age and sex, units, ordinals, times, dates, codes like SR3.
        assert_found("943 476 5919 80M", "943 476 5919");
        assert_found("pt 943 476 5919 12mg", "943 476 5919");
        assert_found("SR3 943.476.5919", "943.476.5919");
        assert_found("at 01:30. 943 4765919, 79M", "943 4765919");
        assert_found("9434765919 26/11", "9434765919");
        assert_found("NHS:943 476 5919", "943 476 5919");
        assert_found("pt943 476 5919", "943 476 5919");
    }

    #[test]
    fn tabs_are_not_separators_before_normalisation() {
        assert_none("943\t476\t5919");
    }

    #[test]
    fn rejects_letter_prefix() {
        assert_none("ORD9434765919");
    }

    #[test]
    fn rejects_letter_suffix() {
        assert_none("9434765919ABC");
    }

    #[test]
    fn rejects_reference_with_hyphen_prefix() {
        assert_none("REF-9434765919");
        assert_none("REF--943 476 5919");
    }

    #[test]
    fn rejects_letter_dot_prefix() {
        assert_none("A.9434765919");
    }

    #[test]
    fn rejects_separator_then_letter_suffix() {
        assert_none("9434765919-A");
        assert_none("9434765919.com");
    }

    #[test]
    fn rejects_digit_beyond_long_attached_separator_run() {
        assert_none("12---9434765919");
        assert_none("9434765919---2");
    }

    #[test]
    fn rejects_each_glue_symbol_before_and_after() {
        for sym in ['_', '+', '\\', '@', '£', '$', '€', '%'] {
            assert_none(&format!("x {sym}9434765919 x"));
            assert_none(&format!("x 9434765919{sym} x"));
            assert_none(&format!("x {sym}-9434765919 x"));
            assert_none(&format!("x 9434765919.{sym} x"));
        }
    }

    #[test]
    fn rejects_unicode_letters_and_digits_adjacent() {
        for c in ['é', '中', 'Ж', '٣', '９', '²'] {
            assert_none(&format!("{c}9434765919"));
            assert_none(&format!("9434765919{c}"));
            assert_none(&format!("{c}.943-476-5919"));
        }
    }

    #[test]
    fn never_returns_all_identical_digits() {
        for s in [
            "0000000000",
            "4444444444",
            "444 444 4444",
            "NHS: 999-999-9999",
        ] {
            assert_none(s);
        }
    }

    #[test]
    fn text_without_digits_returns_empty_without_allocating() {
        let found = find_candidates("no numbers here, just words and émojis 😀");
        assert!(found.is_empty());
        assert_eq!(found.capacity(), 0);
    }

    // ------------------------------------------------------------- properties

    /// Reference check-digit computation, written independently of `is_valid`.
    fn reference_is_valid(s: &str) -> bool {
        let ds: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
        if s.len() != 10 || ds.len() != 10 || !s.is_ascii() {
            return false;
        }
        if ds.iter().all(|&d| d == ds[0]) {
            return false;
        }
        let mut sum = 0;
        for (k, d) in ds.iter().take(9).enumerate() {
            sum += d * (10 - k as u32);
        }
        let mut check = 11 - (sum % 11);
        if check == 11 {
            check = 0;
        }
        check != 10 && check == ds[9]
    }

    /// A valid, not all-identical, NHS number.
    fn valid_number() -> impl Strategy<Value = String> {
        proptest::collection::vec(0u32..10, 9).prop_filter_map(
            "check digit 10 or all-identical",
            |ds| {
                let sum: u32 = ds.iter().zip((2..=10u32).rev()).map(|(d, w)| d * w).sum();
                let check = match 11 - sum % 11 {
                    11 => 0,
                    10 => return None,
                    c => c,
                };
                let s: String = ds
                    .iter()
                    .chain(std::iter::once(&check))
                    .map(|&d| char::from_digit(d, 10).unwrap())
                    .collect();
                let first = s.as_bytes()[0];
                if s.bytes().all(|b| b == first) {
                    None
                } else {
                    Some(s)
                }
            },
        )
    }

    /// A 1-2 character separator.
    fn separator() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just(' '), Just('.'), Just('-'), Just('\u{a0}')],
            1..=2,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    /// Group sizes of the accepted forms.
    fn form() -> impl Strategy<Value = Vec<usize>> {
        prop_oneof![Just(vec![10]), Just(vec![3, 3, 4]), Just(vec![3, 7])]
    }

    /// Split `digits` into groups of `sizes`, joined by `seps`.
    fn render(digits: &str, sizes: &[usize], seps: &[String]) -> String {
        let mut out = String::new();
        let mut pos = 0;
        for (k, &len) in sizes.iter().enumerate() {
            if k > 0 {
                out.push_str(&seps[k - 1]);
            }
            out.push_str(&digits[pos..pos + len]);
            pos += len;
        }
        out
    }

    /// Surrounding text: letters (including non-ASCII), spaces, punctuation,
    /// including the attached separators `.` and `-`; never digits.
    fn filler() -> impl Strategy<Value = String> {
        "[a-zA-Zéü中Ж😀 \u{a0}.,:;!?()'\"\\-]{0,20}"
    }

    /// A character that may sit directly next to a number whatever is beyond
    /// it (not glue, not a separator).
    fn boundary() -> impl Strategy<Value = char> {
        prop_oneof![
            Just(' '),
            Just('\u{a0}'),
            Just('('),
            Just(')'),
            Just(':'),
            Just(','),
            Just(';'),
            Just('\n'),
            Just('\t'),
            Just('"'),
            Just('!'),
            Just('?')
        ]
    }

    proptest! {
        #[test]
        fn prop_valid_number_in_any_form_is_found(
            number in valid_number(),
            sizes in form(),
            seps in proptest::collection::vec(separator(), 2),
            prefix in filler(),
            suffix in filler(),
            before in boundary(),
            after in boundary(),
        ) {
            let written = render(&number, &sizes, &seps);
            let text = format!("{prefix}{before}{written}{after}{suffix}");
            let found = find_candidates(&text);
            let start = prefix.len() + before.len_utf8();
            prop_assert_eq!(
                found,
                vec![NhsCandidate {
                    digits: number.clone(),
                    valid: true,
                    start,
                    end: start + written.len(),
                }],
                "text {:?}", text
            );
        }

        #[test]
        fn prop_single_digit_substitution_is_found_as_invalid(
            number in valid_number(),
            pos in 0usize..10,
            delta in 1u8..10,
            sizes in form(),
            seps in proptest::collection::vec(separator(), 2),
            prefix in filler(),
            before in boundary(),
        ) {
            let mut bytes = number.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            let written = render(&changed, &sizes, &seps);
            let text = format!("{prefix}{before}{written}.");
            let found = find_candidates(&text);
            prop_assert_eq!(found.len(), 1, "text {:?}", text);
            prop_assert_eq!(&found[0].digits, &changed);
            prop_assert!(!found[0].valid, "text {:?}", text);
        }

        #[test]
        fn prop_extra_digit_yields_no_candidate(
            number in valid_number(),
            extra in 0u32..10,
            prepend in any::<bool>(),
            as_own_group in any::<bool>(),
            sizes in form(),
            seps in proptest::collection::vec(separator(), 3),
            prefix in filler(),
            suffix in filler(),
            before in boundary(),
            after in boundary(),
        ) {
            let written = render(&number, &sizes, &seps[..2]);
            let extra = char::from_digit(extra, 10).unwrap();
            let join = if as_own_group { seps[2].as_str() } else { "" };
            let longer = if prepend {
                format!("{extra}{join}{written}")
            } else {
                format!("{written}{join}{extra}")
            };
            let text = format!("{prefix}{before}{longer}{after}{suffix}");
            let found = find_candidates(&text);
            prop_assert!(found.is_empty(), "text {:?} gave {:?}", text, found);
        }

        #[test]
        fn prop_never_panics_on_any_string(text in any::<String>()) {
            check_invariants(&text)?;
        }

        #[test]
        fn prop_never_panics_on_digit_heavy_strings(text in "[0-9 .\\-a-z]{0,40}") {
            check_invariants(&text)?;
        }

        #[test]
        fn prop_never_panics_with_multibyte_next_to_digits(
            text in "[0-9 .\\-\u{a0}é中😀£€٣]{0,40}"
        ) {
            check_invariants(&text)?;
        }

        #[test]
        fn prop_is_valid_matches_reference_on_ten_digits(s in "[0-9]{10}") {
            prop_assert_eq!(is_valid(&s), reference_is_valid(&s), "{}", s);
        }

        #[test]
        fn prop_is_valid_matches_reference_on_anything(s in "[0-9٣９a ]{0,12}") {
            prop_assert_eq!(is_valid(&s), reference_is_valid(&s), "{:?}", s);
        }

        #[test]
        fn prop_is_valid_true_for_generated_valid_numbers(number in valid_number()) {
            prop_assert!(is_valid(&number));
            prop_assert!(reference_is_valid(&number));
        }
    }

    /// Structural invariants that must hold for every candidate of any text.
    fn check_invariants(text: &str) -> Result<(), TestCaseError> {
        let found = find_candidates(text);
        let mut last_end = 0;
        for c in &found {
            prop_assert!(c.start < c.end && c.end <= text.len());
            prop_assert!(c.start >= last_end, "out of order: {:?}", found);
            last_end = c.end;
            let span = text.get(c.start..c.end);
            prop_assert!(span.is_some(), "not on char boundaries: {:?}", c);
            let span_digits: String = span.unwrap().chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(&span_digits, &c.digits);
            prop_assert_eq!(c.digits.len(), 10);
            prop_assert_eq!(c.valid, is_valid(&c.digits));
            let first = c.digits.as_bytes()[0];
            prop_assert!(!c.digits.bytes().all(|b| b == first));
        }
        Ok(())
    }
}
