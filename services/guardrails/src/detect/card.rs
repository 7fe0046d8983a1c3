//! Payment card numbers: 13 to 19 digits, together or in groups split by spaces or dashes,
//! in a major network's range and length, passing the Luhn check.

use std::sync::LazyLock;

use regex::Regex;

use super::{Sink, Window, constant_regex, glued_before, matches_within};

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;
/// A number in at most seven groups (the expression's limit), so six separators.
pub(super) const MAX_LEN: usize = MAX_DIGITS + 6;

/// Digits together, or a group of four followed by groups of two to six, as printed on
/// cards and typed by people (4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3).
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    constant_regex(r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}(?:[ \-][0-9]{2,6}){2,6})(?-u:\b)")
});

pub(super) fn find(text: &str, windows: &[Window], sink: &mut Sink<'_>) {
    for m in matches_within(&CANDIDATE, text, windows, MIN_DIGITS) {
        let candidate = m.as_str().as_bytes();
        let separator = candidate.iter().copied().find(|b| !b.is_ascii_digit());
        if let Some(separator) = separator {
            if glued_before(text, m.start(), &[separator]) {
                continue;
            }
            // Mixed separators (`4111 1111-1111`) are not how a number is written.
            if candidate
                .iter()
                .any(|&b| !b.is_ascii_digit() && b != separator)
            {
                continue;
            }
        }
        if let Some(len) = card_prefix(candidate) {
            sink.push(m.start(), m.start() + len, true);
        }
    }
}

/// The length of the longest run of whole groups at the start of `candidate` that is a card
/// number: grouped numbers are often followed by an expiry or code (`4111 1111 1111 1111
/// 12 27`).
fn card_prefix(candidate: &[u8]) -> Option<usize> {
    let group_ends = candidate
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_digit())
        .map(|(i, _)| i)
        .chain([candidate.len()]);
    let mut longest = None;
    let mut digits = [0u8; MAX_DIGITS];
    let mut count = 0;
    let mut from = 0;
    for end in group_ends {
        for &b in &candidate[from..end] {
            if count == MAX_DIGITS {
                return longest;
            }
            digits[count] = b - b'0';
            count += 1;
        }
        from = end + 1;
        let number = &digits[..count];
        if count >= 13 && in_network_range(number) && luhn_valid(number) {
            longest = Some(end);
        }
    }
    longest
}

/// Whether `digits` (values 0-9) pass the Luhn check: doubling every second digit from
/// the right, the sum is a multiple of ten.
pub(super) fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether a number of this length starting with these digits is issued by a major network.
/// Most Luhn-valid digit runs (order numbers, timestamps) start elsewhere.
fn in_network_range(digits: &[u8]) -> bool {
    let prefix = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let len = digits.len();
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let mir = (2200..=2204).contains(&p4) && (16..=19).contains(&len);
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover =
        (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && (16..=19).contains(&len);
    let diners =
        ((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && (14..=19).contains(&len);
    let jcb = (3528..=3589).contains(&p4) && (16..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    let maestro =
        (p2 == 50 || (56..=58).contains(&p2) || matches!(p2, 63 | 67)) && (13..=19).contains(&len);
    visa || mastercard || mir || amex || discover || diners || jcb || unionpay || maestro
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detectors, EntityKind};

    fn cards(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::CreditCard])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    fn digits(number: &str) -> Vec<u8> {
        number.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(&digits("4111111111111111")));
        assert!(luhn_valid(&digits("378282246310005")));
        assert!(luhn_valid(&digits("79927398713")));
        assert!(!luhn_valid(&digits("4111111111111112")));
        assert!(!luhn_valid(&digits("79927398710")));
    }

    #[test]
    fn network_ranges() {
        assert!(in_network_range(&digits("4111111111111111")));
        assert!(in_network_range(&digits("2223003122003222")));
        assert!(!in_network_range(&digits("411111111111111")));
        assert!(!in_network_range(&digits("1000000000000008")));
        assert!(!in_network_range(&digits("37828224631000")));
    }

    #[test]
    fn formats_and_edges() {
        assert_eq!(cards("4111111111111111"), ["4111111111111111"]);
        assert_eq!(cards("4111-1111-1111-1111."), ["4111-1111-1111-1111"]);
        assert_eq!(cards("Amex 3782 822463 10005"), ["3782 822463 10005"]);
        assert_eq!(
            cards("4111 1111 1111 1111 12 27 and 5555555555554444"),
            ["4111 1111 1111 1111", "5555555555554444"]
        );
        assert_eq!(cards("€4242424242424242€"), ["4242424242424242"]);
    }

    #[test]
    fn not_cards() {
        for text in [
            "4111111111111112",
            "x4111111111111111",
            "41111111111111111111111",
            "4111 1111-1111 1111",
            "12 4111 1111 1111 1111",
            "1000000000000008",
        ] {
            assert!(cards(text).is_empty(), "{text}");
        }
    }
}
