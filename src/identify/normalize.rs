//! Text normalisation before identification: every written variant of a
//! digit, space or dash becomes its ASCII form, and invisible characters go.
//!
//! Identification runs on the normalised text only, so that a number typed on
//! a phone keyboard (full-width `９９９`), pasted from an Arabic-script system
//! (`٩٩٩`), split by a zero-width space or a narrow no-break space (U+202F), or
//! joined with an en dash reads exactly like its ASCII form.
//!
//! | input | becomes |
//! |---|---|
//! | any Unicode decimal digit (general category Nd) | its ASCII digit |
//! | full-width ASCII forms U+FF01–U+FF5E (`Ｎ`, `＃`, `－`) | the ASCII character |
//! | tab between the cells of a pasted table row, one cell of which is a whole NHS number in a written form of its own (`1⇥A. Kowalski⇥999.123.9995⇥72.5`) | [`CELL`] (U+001F, the unit separator) |
//! | any other tab, no-break and other Unicode spaces (Zs) | `' '` |
//! | CR, line and paragraph separators, NEL | `'\n'` |
//! | hyphen and dash punctuation (U+2010–U+2015, U+2043, U+2212, U+FE58, U+FE63) | `'-'` |
//! | zero-width and format characters (U+200B–U+200F, U+202A–U+202E, U+2060–U+2069, U+FEFF, U+00AD, U+180E) | removed |
//!
//! Everything else is kept as it is. Superscripts and fractions (`²`, `½`) are
//! not decimal digits and are kept.

use std::sync::OnceLock;

/// Is `c` a decimal digit of any script (Unicode general category Nd)?
fn is_decimal_digit(c: char) -> bool {
    static ND: OnceLock<regex::Regex> = OnceLock::new();
    // Hand-written table avoided: the regex crate carries the Unicode tables.
    let re = ND.get_or_init(|| regex::Regex::new(r"^\p{Nd}$").expect("constant regex"));
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

/// The value of a decimal digit of any script. Unicode keeps every script's
/// decimal digits as a contiguous run 0..9 (a stability policy), so the value
/// is the distance to the start of the run, modulo 10 (some blocks, such as the
/// mathematical digits, are several runs back to back).
fn digit_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    if c.is_ascii() || !c.is_numeric() || !is_decimal_digit(c) {
        return None;
    }
    let mut k = 0u32;
    let mut cp = u32::from(c);
    while k < 100 {
        let Some(prev) = cp.checked_sub(1).and_then(char::from_u32) else {
            break;
        };
        if !is_decimal_digit(prev) {
            break;
        }
        k += 1;
        cp -= 1;
    }
    Some(k % 10)
}

pub use super::nhs_number::CELL;

/// Tabs of each line become [`CELL`] when the line is a row of tab-separated
/// cells one of which is a whole NHS number in a written form of its own
/// (pasted from a spreadsheet or a Teams table: the digits in the cells
/// beside it are other columns), else spaces ("pt 999⇥246⇥8130" is one
/// number typed with tabs).
fn tab_cells(text: String) -> String {
    if !text.contains('\t') {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let row = line.contains('\t')
            && line.split('\t').any(|cell| {
                let cell = cell.trim_matches(' ');
                let c = super::nhs_number::find_candidates(cell);
                c.len() == 1 && c[0].start == 0 && c[0].end == cell.len()
            });
        out.extend(line.chars().map(|c| match c {
            '\t' if row => CELL,
            '\t' => ' ',
            c => c,
        }));
    }
    out
}

/// Normalise `text` for identification (see the module documentation).
pub fn normalize(text: &str) -> String {
    if text.is_ascii() && !text.contains(['\t', '\r']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push('\t'),
            '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{AD}'
            | '\u{180E}' => {}
            '\u{2010}'..='\u{2015}' | '\u{2043}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => {
                out.push('-')
            }
            '\u{FF01}'..='\u{FF5E}' => {
                // Full-width ASCII forms sit at a fixed offset from ASCII.
                out.push(char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c));
            }
            c if c.is_ascii() => out.push(c),
            c if c.is_whitespace() => out.push(' '),
            c => match digit_value(c) {
                Some(d) => out.push(char::from_digit(d, 10).unwrap_or(c)),
                None => out.push(c),
            },
        }
    }
    tab_cells(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_part_cells_only_in_a_row_with_a_whole_nhs_number() {
        assert_eq!(
            normalize("1\tA. K\t999.246.8130\t72.5"),
            "1\u{1f}A. K\u{1f}999.246.8130\u{1f}72.5"
        );
        // Each line on its own; a row without a whole number keeps spaces.
        assert_eq!(
            normalize("a\tb\n9992468130\t22\r2\t3"),
            "a b\n9992468130\u{1f}22\n2 3"
        );
        assert_eq!(normalize("pt 999\t246\t8130"), "pt 999 246 8130");
        // The cell is read normalised: full-width digits, a zero-width space.
        assert_eq!(
            normalize("x\t９９９２４６８１３０\t1"),
            "x\u{1f}9992468130\u{1f}1"
        );
        assert_eq!(normalize("x\t999\u{200b}2468130 5\t1"), "x 9992468130 5 1");
    }

    #[test]
    fn ascii_text_is_unchanged() {
        assert_eq!(normalize("NHS 943 476 5919."), "NHS 943 476 5919.");
    }

    #[test]
    fn full_width_digits_letters_and_punctuation_become_ascii() {
        assert_eq!(
            normalize("ＮＨＳ＃９４３　４７６－５９１９"),
            "NHS#943 476-5919"
        );
    }

    #[test]
    fn digits_of_other_scripts_become_ascii() {
        assert_eq!(normalize("٩٤٣٤٧٦٥٩١٩"), "9434765919"); // Arabic-Indic
        assert_eq!(normalize("۹۴۳"), "943"); // Extended Arabic-Indic
        assert_eq!(normalize("९४३"), "943"); // Devanagari
        assert_eq!(normalize("𝟗𝟒𝟑"), "943"); // mathematical bold
        assert_eq!(normalize("𝟫𝟢"), "90"); // mathematical sans-serif (a later run of the block)
    }

    #[test]
    fn superscripts_and_fractions_are_not_digits() {
        assert_eq!(normalize("m² ½"), "m² ½");
    }

    #[test]
    fn spaces_of_every_kind_become_a_space() {
        assert_eq!(
            normalize("943\t476\u{a0}59\u{202f}19\u{2009}x\u{3000}y"),
            "943 476 59 19 x y"
        );
    }

    #[test]
    fn line_breaks_of_every_kind_become_newline() {
        assert_eq!(normalize("a\r\nb\u{2028}c"), "a\n\nb\nc");
    }

    #[test]
    fn dashes_become_hyphen_minus() {
        assert_eq!(normalize("943–476—5919 −2 ‐"), "943-476-5919 -2 -");
    }

    #[test]
    fn invisible_characters_are_removed() {
        assert_eq!(
            normalize("943\u{200b}476\u{feff}59\u{ad}19\u{2066}\u{202e}"),
            "9434765919"
        );
    }
}
