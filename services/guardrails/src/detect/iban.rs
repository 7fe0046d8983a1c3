//! IBANs (ISO 13616): country code, two check digits and the account (BBAN), written
//! together or in groups of four; the country's length and the mod-97 check must hold.

use std::sync::LazyLock;

use regex::Regex;

use super::{Sink, Window, constant_regex};

/// The longest IBAN (34 characters) in groups of four: eight spaces.
pub(super) const MAX_LEN: usize = 34 + 8;

/// Country code and check digits, then up to 30 more characters, each maybe after a space;
/// the country's length decides where the IBAN ends.
static CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| constant_regex(r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}"));

pub(super) fn find(text: &str, windows: &[Window], sink: &mut Sink<'_>) {
    for window in windows {
        let part = text
            .as_bytes()
            .get(window.range.clone())
            .unwrap_or_default();
        if has_iban_start(part) {
            find_within(text, window, sink);
        }
    }
}

/// Whether two capitals followed by two digits (`GB82`) appear: most parts of a text
/// around digits have none, and need no search.
fn has_iban_start(part: &[u8]) -> bool {
    part.windows(4).any(|w| {
        w[0].is_ascii_uppercase()
            && w[1].is_ascii_uppercase()
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
    })
}

fn find_within(text: &str, window: &Window, sink: &mut Sink<'_>) {
    let haystack = text.get(..window.range.end).unwrap_or_default();
    let mut from = window.range.start;
    while let Some(m) = CANDIDATE.find_at(haystack, from) {
        match iban_end(m.as_str().as_bytes()) {
            Some(len) => {
                sink.push(m.start(), m.start() + len, true);
                from = m.start() + len;
            }
            // What follows may start another IBAN (the candidate can take in the next word);
            // candidates start at a word boundary, so this moves on by at least a word.
            None => from = m.start() + 1,
        }
    }
}

/// The length of the IBAN at the start of `candidate`, if there is one.
fn iban_end(candidate: &[u8]) -> Option<usize> {
    let expected = country_length(&candidate[..2])?;
    let grouped = candidate.get(4) == Some(&b' ');
    let mut characters = 0;
    let mut end = 0;
    for (i, &b) in candidate.iter().enumerate() {
        if b == b' ' {
            // Spaces only between groups of four, and then between all of them.
            if !grouped || characters % 4 != 0 {
                return None;
            }
            continue;
        }
        if grouped && characters > 0 && characters % 4 == 0 && candidate[i - 1] != b' ' {
            return None;
        }
        characters += 1;
        end = i + 1;
        if characters == expected {
            break;
        }
    }
    let continues = candidate.get(end).is_some_and(u8::is_ascii_alphanumeric);
    (characters == expected && !continues && mod97_valid(&candidate[..end])).then_some(end)
}

/// Whether the IBAN (spaces allowed) passes ISO 7064 mod 97-10: the first four characters
/// moved to the end, letters as 10 to 35, the number modulo 97 is 1.
pub(super) fn mod97_valid(iban: &[u8]) -> bool {
    let characters = || iban.iter().copied().filter(|&b| b != b' ');
    let rearranged = characters().skip(4).chain(characters().take(4));
    let mut remainder = 0u32;
    for b in rearranged {
        remainder = match b {
            b'0'..=b'9' => (remainder * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => (remainder * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        };
    }
    remainder == 1
}

/// The IBAN length of a country that issues them (the SWIFT registry).
fn country_length(country: &[u8]) -> Option<usize> {
    let length = match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BI" => 27,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DJ" => 27,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FK" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MN" => 20,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NI" => 28,
        b"NL" => 18,
        b"NO" => 15,
        b"OM" => 23,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"RU" => 33,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"SO" => 23,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        b"YE" => 30,
        _ => return None,
    };
    Some(length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detectors, EntityKind};

    fn ibans(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::Iban])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    #[test]
    fn mod97() {
        assert!(mod97_valid(b"GB82WEST12345698765432"));
        assert!(mod97_valid(b"GB82 WEST 1234 5698 7654 32"));
        assert!(mod97_valid(b"NO9386011117947"));
        assert!(!mod97_valid(b"GB83WEST12345698765432"));
        assert!(!mod97_valid(b"GB82WEST1234569876543!"));
    }

    #[test]
    fn formats_and_edges() {
        assert_eq!(ibans("DE89370400440532013000"), ["DE89370400440532013000"]);
        assert_eq!(
            ibans("(GB82 WEST 1234 5698 7654 32 TO ME)"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert_eq!(
            ibans("DE89370400440532013000 GB82WEST12345698765432"),
            ["DE89370400440532013000", "GB82WEST12345698765432"]
        );
        assert_eq!(ibans("ÜBE68539007547034ß"), ["BE68539007547034"]);
    }

    #[test]
    fn not_ibans() {
        for text in [
            "GB83WEST12345698765432",
            "DE8937040044053201300",
            "DE893704004405320130001",
            "XX82WEST12345698765432",
            "GB82 WEST1234 5698 7654 32",
            "GB82WE ST12345698765432",
            "xGB82WEST12345698765432",
        ] {
            assert!(ibans(text).is_empty(), "{text}");
        }
    }
}
