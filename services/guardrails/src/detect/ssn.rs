//! US Social Security numbers: `AAA-GG-SSSS` or `AAA GG SSSS` in the ranges the SSA issues;
//! nine digits together only when the words before them say it is one.

use std::sync::LazyLock;

use regex::Regex;

use super::{Sink, Window, constant_regex, glued_after, glued_before, matches_within};

pub(super) const MAX_LEN: usize = 11;
const MIN_DIGITS: usize = 9;

static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    constant_regex(
        r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9})(?-u:\b)",
    )
});

/// How far before a bare nine-digit number its label may be (`SSN on file: 123456789`).
const LABEL_WINDOW: usize = 40;

pub(super) fn find(text: &str, windows: &[Window], sink: &mut Sink<'_>) {
    for m in matches_within(&CANDIDATE, text, windows, MIN_DIGITS) {
        let candidate = m.as_str().as_bytes();
        let bare = candidate.len() == 9;
        let separator = if bare { None } else { Some(candidate[3]) };
        // Part of a longer number: `555-123-45-6789`, `123-45-6789-01`, `1.123-45-6789`.
        let glue: &[u8] = match separator {
            Some(b' ') => b" -./",
            _ => b"-./",
        };
        if glued_before(text, m.start(), glue) || glued_after(text, m.end(), glue) {
            continue;
        }
        let digits = |range: std::ops::Range<usize>| {
            candidate[range]
                .iter()
                .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
        };
        let (area, group, serial) = if bare {
            (digits(0..3), digits(3..5), digits(5..9))
        } else {
            (digits(0..3), digits(4..6), digits(7..11))
        };
        if !issuable(area, group, serial) {
            continue;
        }
        if bare && !labelled(text, m.start()) {
            continue;
        }
        sink.push(m.start(), m.end(), false);
    }
}

/// Whether the SSA issues numbers in this area, group and serial: never area 000, 666 or
/// 900-999 (those are ITINs and advertising), group 00 or serial 0000.
fn issuable(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// Whether "SSN" or "social security" comes shortly before `start`.
fn labelled(text: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(LABEL_WINDOW);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text.as_bytes().get(from..start).unwrap_or_default();
    contains_ignoring_case(window, b"ssn") || contains_ignoring_case(window, b"social security")
}

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detectors, EntityKind};

    fn ssns(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::Ssn])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    #[test]
    fn ranges() {
        assert!(issuable(123, 45, 6789));
        assert!(issuable(899, 99, 9999));
        assert!(!issuable(0, 45, 6789));
        assert!(!issuable(666, 45, 6789));
        assert!(!issuable(900, 45, 6789));
        assert!(!issuable(123, 0, 6789));
        assert!(!issuable(123, 45, 0));
    }

    #[test]
    fn formats_and_edges() {
        assert_eq!(ssns("123-45-6789"), ["123-45-6789"]);
        assert_eq!(ssns("«123 45 6789»"), ["123 45 6789"]);
        assert_eq!(
            ssns("123-45-6789,219-09-9999."),
            ["123-45-6789", "219-09-9999"]
        );
        assert_eq!(ssns("Numéro SSN : 123456789"), ["123456789"]);
        assert_eq!(ssns("Social Security number 234567890"), ["234567890"]);
    }

    #[test]
    fn not_ssns() {
        for text in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
            "order 123456789",
            "123-45-67890",
            "1-123-45-6789",
            "123-45-6789-0",
            "123 45-6789",
            "12 123 45 6789",
        ] {
            assert!(ssns(text).is_empty(), "{text}");
        }
    }
}
