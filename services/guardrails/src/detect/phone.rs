//! Phone numbers in the shapes people write them:
//! - international, after `+` or `00`: `+44 20 7946 0958`, `+1 (415) 555-2671`,
//!   `+4915112345678`, `0044 20 7946 0958`;
//! - North American: `(415) 555-2671`, `415-555-2671`, `415.555.2671`, `1-800-555-0199`;
//! - national with a trunk `0` and spaces or dashes: `020 7946 0958`, `07700 900123`.
//!
//! A run of digits without that shape (order numbers, timestamps) is not a phone number, nor
//! is anything with the shape of a date, a time, a version or a price.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    Sink, Window, before, constant_regex, glued_after, glued_before, is_word, matches_within,
};

/// `+` and at most 15 digits (E.164), a `(0)`, and separators and brackets between groups.
pub(super) const MAX_LEN: usize = 32;
/// The fewest digits of an international number this accepts; national ones have more.
const MIN_DIGITS: usize = 8;

static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    let group = r"(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5}))";
    let international = format!(r"\+[1-9][0-9]{{0,2}}{group}{{1,8}}");
    let international_00 = format!(r"(?-u:\b)00[1-9][0-9]{{0,2}}{group}{{1,8}}");
    let north_american = r"(?:(?-u:\b)1[ .\-]?)?(?:\([2-9][0-9]{2}\) ?|(?-u:\b)[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}(?-u:\b)";
    let national =
        r"(?:(?-u:\b)0[1-9][0-9]{0,3}|\(0[1-9][0-9]{0,3}\))(?:[ \-]?[0-9]{2,6}){1,4}(?-u:\b)";
    constant_regex(&format!(
        "{international}|{international_00}|{north_american}|{national}"
    ))
});

pub(super) fn find(text: &str, windows: &[Window], sink: &mut Sink<'_>) {
    for m in matches_within(&CANDIDATE, text, windows, MIN_DIGITS) {
        let candidate = m.as_str().as_bytes();
        // Digits just before or after, even across a space, make this a piece of a longer
        // number (`1Z 999 AA1 01 2345 6784`, an IBAN's `3704 0044 0532`); only a `+`
        // clearly starts a new one.
        let glue: &[u8] = if candidate.starts_with(b"+") {
            b"-./"
        } else {
            b" -./"
        };
        if candidate.len() > MAX_LEN
            || before(text, m.start()).is_some_and(|b| is_word(b) || b == b'+')
            || text.as_bytes().get(m.end()).is_some_and(|&b| is_word(b))
            || glued_before(text, m.start(), glue)
            || glued_after(text, m.end(), glue)
        {
            continue;
        }
        let accepted = if candidate.starts_with(b"+") {
            international(&candidate[1..], false)
        } else if candidate.starts_with(b"00") {
            international(&candidate[2..], true)
        } else if candidate.starts_with(b"0") || candidate.starts_with(b"(0") {
            national(candidate)
        } else {
            north_american(candidate)
        };
        if accepted {
            sink.push(m.start(), m.end(), false);
        }
    }
}

/// After `+` or `00`: 8 to 15 digits, not counting a `(0)` trunk prefix. After `00`, which
/// also starts plain digit runs, the number must be split into groups.
fn international(number: &[u8], after_00: bool) -> bool {
    let trunk = number.windows(3).filter(|w| *w == b"(0)").count();
    let digits = number.iter().filter(|b| b.is_ascii_digit()).count() - trunk;
    let grouped = number.iter().any(|b| !b.is_ascii_digit());
    (8..=15).contains(&digits) && (grouped || !after_00)
}

/// One kind of separator throughout (`415-555-2671`, not `415-555.2671`), except after a
/// bracketed area code, where `(415) 555-2671` is the usual way.
fn north_american(number: &[u8]) -> bool {
    if number.contains(&b'(') {
        return true;
    }
    let mut separators = number.iter().filter(|b| !b.is_ascii_digit());
    match separators.next() {
        Some(first) => separators.all(|b| b == first),
        None => true,
    }
}

/// A trunk `0` and 10 or 11 digits in groups, the common length in Europe and Australia;
/// shorter ones are as often dates or codes.
fn national(number: &[u8]) -> bool {
    let digits = number.iter().filter(|b| b.is_ascii_digit()).count();
    let grouped = number.iter().any(|b| !b.is_ascii_digit());
    (10..=11).contains(&digits) && grouped
}

#[cfg(test)]
mod tests {
    use crate::detect::{Detectors, EntityKind};

    fn phones(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::Phone])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    #[test]
    fn formats_and_edges() {
        for number in [
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
            "+49 30 901820",
            "+4915112345678",
            "0044 20 7946 0958",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "1-800-555-0199",
            "020 7946 0958",
            "07700 900123",
            "+44 (0)20 7946 0958",
            "(02) 9374 4000",
        ] {
            assert_eq!(phones(number), [number]);
            assert_eq!(phones(&format!("Tél. «{number}».")), [number]);
        }
        assert_eq!(
            phones("415-555-2671,020 7946 0958"),
            ["415-555-2671", "020 7946 0958"]
        );
    }

    #[test]
    fn not_phones() {
        for text in [
            "2024-555-1234",
            "2024-05-12",
            "14:30",
            "10.4.2.7",
            "$1,299.99",
            "94103-1234",
            "978-3-16-148410-0",
            "4155552671",
            "00441234567890",
            "415-555.2671",
            "+1.5%",
            "C++17",
            "12-415-555-2671",
            "415-555-2671-9",
            "01 02 2024",
            "AA1 01 2345 6784",
            "3704 0044 0532 0130 01",
            "020 7946 0958 12",
        ] {
            assert!(phones(text).is_empty(), "{text}");
        }
    }
}
