//! The PII and secret detectors.
//!
//! Each kind has its own module with one `find` that pushes candidates it has already
//! validated (checksums, ranges, shapes); [`Detectors::find`] runs the chosen ones and, where
//! candidates of different kinds overlap, keeps one.
//!
//! Ordinary prose must cost next to nothing, so each detector starts from something cheap to
//! find: e-mail addresses from an `@`, secrets from their literal prefixes, IPv6 addresses
//! only in texts with a colon, and everything with digits only in the parts of the text
//! around enough digits. All expressions are the `regex` crate's,
//! which run in time linear in the text.

mod card;
mod email;
mod iban;
mod ip;
mod phone;
mod secret;
mod ssn;

use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;

pub use tollgate_common::EntityKind;

/// One entity found in a text, by byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: EntityKind,
    pub start: usize,
    pub end: usize,
}

/// Finds entities of the chosen kinds. Built once per policy and shared between requests.
pub struct Detectors {
    kinds: Vec<EntityKind>,
}

impl Detectors {
    pub fn new(kinds: &[EntityKind]) -> Detectors {
        let mut chosen = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            if !chosen.contains(&kind) {
                chosen.push(kind);
            }
        }
        Detectors { kinds: chosen }
    }

    pub fn kinds(&self) -> &[EntityKind] {
        &self.kinds
    }

    /// Every entity in `text`, sorted by start, never overlapping. When candidates of
    /// different kinds overlap, the longer one is kept, and at equal length the one a
    /// checksum confirmed.
    pub fn find(&self, text: &str) -> Vec<Found> {
        // Every kind but e-mail addresses and secrets has digits; only the parts of the text
        // around digits are searched for them.
        let with_digits =
            |kind: &EntityKind| !matches!(kind, EntityKind::Email | EntityKind::Secret);
        let windows = if self.kinds.iter().any(with_digits) {
            numeric_windows(text)
        } else {
            Vec::new()
        };
        self.find_within(text, &windows)
    }

    /// [`Detectors::find`], looking for entities with digits only within `windows`.
    fn find_within(&self, text: &str, windows: &[Window]) -> Vec<Found> {
        let mut candidates = Vec::new();
        for &kind in &self.kinds {
            let mut sink = Sink {
                kind,
                out: &mut candidates,
            };
            match kind {
                EntityKind::Email => email::find(text, &mut sink),
                EntityKind::Phone => phone::find(text, windows, &mut sink),
                EntityKind::CreditCard => card::find(text, windows, &mut sink),
                EntityKind::Iban => iban::find(text, windows, &mut sink),
                EntityKind::Ssn => ssn::find(text, windows, &mut sink),
                EntityKind::IpAddress => ip::find(text, windows, &mut sink),
                EntityKind::Secret => secret::find(text, &mut sink),
            }
        }
        without_overlaps(candidates)
    }

    /// The longest text, in bytes, one entity of these kinds can span.
    pub fn max_len(&self) -> usize {
        self.kinds
            .iter()
            .map(|&kind| max_len(kind))
            .max()
            .unwrap_or(0)
    }
}

/// The longest text, in bytes, one entity of `kind` can span. Each detector refuses longer
/// candidates, so a streaming filter holding back this many bytes never cuts one in two.
pub fn max_len(kind: EntityKind) -> usize {
    match kind {
        EntityKind::Email => email::MAX_LEN,
        EntityKind::Phone => phone::MAX_LEN,
        EntityKind::CreditCard => card::MAX_LEN,
        EntityKind::Iban => iban::MAX_LEN,
        EntityKind::Ssn => ssn::MAX_LEN,
        EntityKind::IpAddress => ip::MAX_LEN,
        EntityKind::Secret => secret::MAX_LEN,
    }
}

/// A found entity before overlaps are settled.
struct Candidate {
    found: Found,
    /// Confirmed by a checksum (Luhn, mod 97) or a decoded structure, not only by shape.
    validated: bool,
}

/// Where one detector puts what it finds.
struct Sink<'a> {
    kind: EntityKind,
    out: &'a mut Vec<Candidate>,
}

impl Sink<'_> {
    fn push(&mut self, start: usize, end: usize, validated: bool) {
        self.out.push(Candidate {
            found: Found {
                kind: self.kind,
                start,
                end,
            },
            validated,
        });
    }
}

/// Keeps, of overlapping candidates, the longest (then the validated one, then the first),
/// and returns the kept ones by start.
fn without_overlaps(mut candidates: Vec<Candidate>) -> Vec<Found> {
    candidates.sort_by(|a, b| {
        let length = |c: &Candidate| c.found.end - c.found.start;
        length(b)
            .cmp(&length(a))
            .then(b.validated.cmp(&a.validated))
            .then(a.found.start.cmp(&b.found.start))
    });
    // Kept ranges by start; they never overlap, so only the neighbours on either side of a
    // new candidate can.
    let mut kept: BTreeMap<usize, Found> = BTreeMap::new();
    for candidate in candidates {
        let found = candidate.found;
        let clashes_before = kept
            .range(..=found.start)
            .next_back()
            .is_some_and(|(_, before)| before.end > found.start);
        let clashes_after = kept
            .range(found.start..)
            .next()
            .is_some_and(|(&start, _)| start < found.end);
        if !clashes_before && !clashes_after {
            kept.insert(found.start, found);
        }
    }
    kept.into_values().collect()
}

/// Digits of one entity are never further apart than this (a Maltese IBAN's
/// `2345 MTLC AST0`).
const DIGIT_GAP: usize = 12;
/// How far an entity reaches beyond its first and last digit (`+`, `(`, an IBAN's country
/// code and trailing letters), with room to spare.
const DIGIT_MARGIN: usize = 16;

/// The parts of `text` that can hold an entity with digits: each run of digits no more
/// than [`DIGIT_GAP`] apart, widened by [`DIGIT_MARGIN`] and then to whole words, so that
/// an expression sees the same word boundaries at a part's edges as in the whole text.
fn numeric_windows(text: &str) -> Vec<Window> {
    let bytes = text.as_bytes();
    let mut windows: Vec<Window> = Vec::new();
    let mut next = next_digit(bytes, 0);
    while let Some(first) = next {
        let mut last = first;
        let mut digits = 1;
        next = next_digit(bytes, first + 1);
        while let Some(digit) = next.filter(|&digit| digit - last <= DIGIT_GAP) {
            last = digit;
            digits += 1;
            next = next_digit(bytes, digit + 1);
        }
        let previous_end = windows.last().map_or(0, |window| window.range.end);
        let mut start = first.saturating_sub(DIGIT_MARGIN).max(previous_end);
        while start > previous_end && is_word(bytes[start - 1]) {
            start -= 1;
        }
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let mut end = (last + 1 + DIGIT_MARGIN).min(bytes.len());
        while end < bytes.len() && (is_word(bytes[end]) || !text.is_char_boundary(end)) {
            end += 1;
        }
        match windows.last_mut() {
            Some(window) if window.range.end >= start => {
                window.range.end = end;
                window.digits += digits;
            }
            _ => windows.push(Window {
                range: start..end,
                digits,
            }),
        }
    }
    windows
}

/// The first ASCII digit at or after `from`.
fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const CHUNK: usize = 32;
    let mut at = from.min(bytes.len());
    // Prose has few digits: whole chunks without one are passed over in a step each (the
    // test over a chunk has no early exit, so it compiles to vector instructions).
    while let Some(chunk) = bytes.get(at..at + CHUNK) {
        if chunk.iter().fold(false, |any, b| any | b.is_ascii_digit()) {
            break;
        }
        at += CHUNK;
    }
    bytes[at..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|offset| at + offset)
}

/// A part of a text around digits, and how many digits it holds: an entity with more
/// digits than that cannot be in it.
struct Window {
    range: Range<usize>,
    digits: usize,
}

/// The matches of `regex` within those of `windows` of `text` with at least `min_digits`
/// digits, in order.
fn matches_within<'t>(
    regex: &'t Regex,
    text: &'t str,
    windows: &'t [Window],
    min_digits: usize,
) -> impl Iterator<Item = regex::Match<'t>> + 't {
    let searched = windows
        .iter()
        .filter(move |window| window.digits >= min_digits);
    searched.flat_map(move |window| {
        let haystack = text.get(..window.range.end).unwrap_or_default();
        let mut from = window.range.start;
        std::iter::from_fn(move || {
            let m = regex.find_at(haystack, from)?;
            from = m.end();
            Some(m)
        })
    })
}

/// Compiles one of the detectors' own expressions.
#[allow(
    clippy::expect_used,
    reason = "the patterns are constants, each compiled by the unit tests"
)]
fn constant_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a detector's expression compiles")
}

/// Letters, digits and `_`: what makes two things one token.
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The byte before `at`, if any.
fn before(text: &str, at: usize) -> Option<u8> {
    at.checked_sub(1)
        .and_then(|i| text.as_bytes().get(i).copied())
}

/// The byte at `at`, if any.
fn at(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at).copied()
}

/// Whether the number at `start..end` continues a longer one to its left: a digit, or one of
/// `separators` right after a digit (`12-` before `345-67-8901`).
fn glued_before(text: &str, start: usize, separators: &[u8]) -> bool {
    match before(text, start) {
        Some(b) if b.is_ascii_digit() => true,
        Some(b) if separators.contains(&b) => {
            before(text, start - 1).is_some_and(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// Whether the number at `start..end` goes on to its right: a digit, or one of `separators`
/// followed by a digit.
fn glued_after(text: &str, end: usize, separators: &[u8]) -> bool {
    match at(text, end) {
        Some(b) if b.is_ascii_digit() => true,
        Some(b) if separators.contains(&b) => at(text, end + 1).is_some_and(|b| b.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans<'a>(text: &'a str, kinds: &[EntityKind]) -> Vec<(EntityKind, &'a str)> {
        Detectors::new(kinds)
            .find(text)
            .into_iter()
            .map(|found| (found.kind, &text[found.start..found.end]))
            .collect()
    }

    #[test]
    fn detectors_are_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Detectors>();
    }

    #[test]
    fn results_are_sorted_and_never_overlap() {
        let text = "IBAN DK50 0040 0440 1162 43, call +44 20 7946 0958 or mail a@example.com";
        let found = Detectors::new(&EntityKind::ALL).find(text);
        for pair in found.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{found:?}");
        }
        assert_eq!(
            spans(text, &EntityKind::ALL),
            vec![
                (EntityKind::Iban, "DK50 0040 0440 1162 43"),
                (EntityKind::Phone, "+44 20 7946 0958"),
                (EntityKind::Email, "a@example.com"),
            ]
        );
    }

    #[test]
    fn the_longer_of_overlapping_candidates_wins() {
        // An address pasted inside a private-key block is part of the block.
        let text = "-----BEGIN PRIVATE KEY-----\nMIIB a@example.com\n-----END PRIVATE KEY-----";
        assert_eq!(spans(text, &[EntityKind::Email]).len(), 1);
        assert_eq!(
            spans(text, &[EntityKind::Email, EntityKind::Secret]),
            vec![(EntityKind::Secret, text)]
        );
    }

    #[test]
    fn at_equal_length_the_validated_candidate_wins() {
        let mut candidates = vec![
            Candidate {
                found: Found {
                    kind: EntityKind::Phone,
                    start: 0,
                    end: 10,
                },
                validated: false,
            },
            Candidate {
                found: Found {
                    kind: EntityKind::CreditCard,
                    start: 0,
                    end: 10,
                },
                validated: true,
            },
        ];
        assert_eq!(
            without_overlaps(std::mem::take(&mut candidates))[0].kind,
            EntityKind::CreditCard
        );
    }

    #[test]
    fn only_chosen_kinds_are_looked_for() {
        let text = "a@example.com 192.0.2.1";
        assert_eq!(
            spans(text, &[EntityKind::IpAddress]),
            vec![(EntityKind::IpAddress, "192.0.2.1")]
        );
        assert!(Detectors::new(&[]).find(text).is_empty());
    }

    #[test]
    fn max_len_is_the_chosen_kinds_largest() {
        assert_eq!(Detectors::new(&[]).max_len(), 0);
        assert_eq!(Detectors::new(&[EntityKind::Ssn]).max_len(), 11);
        let all = Detectors::new(&EntityKind::ALL).max_len();
        assert_eq!(all, max_len(EntityKind::Secret));
        assert!(EntityKind::ALL.iter().all(|&kind| max_len(kind) <= all));
    }

    #[test]
    fn multibyte_text_around_entities_gives_char_boundaries() {
        let text = "é📞+44 20 7946 0958—ü4111 1111 1111 1111ö, 東京 a@example.com。192.0.2.1€";
        let found = Detectors::new(&EntityKind::ALL).find(text);
        assert_eq!(found.len(), 4, "{found:?}");
        for f in found {
            assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
    }

    #[test]
    fn numeric_windows_cover_whole_words_around_digits() {
        let text = "Please call me at +44 20 7946 0958 tomorrow, or else write to me; \
                    the account is GB82 WEST 1234 5698 7654 32, thanks";
        let windows = numeric_windows(text);
        let parts: Vec<&str> = windows.iter().map(|w| &text[w.range.clone()]).collect();
        let digits: Vec<usize> = windows.iter().map(|w| w.digits).collect();
        assert_eq!(digits, [12, 16]);
        assert_eq!(
            parts,
            [
                "Please call me at +44 20 7946 0958 tomorrow, or else",
                "the account is GB82 WEST 1234 5698 7654 32, thanks"
            ]
        );
        assert!(numeric_windows("no digits here at all, none").is_empty());
        let text = "ééééééééé1ééééééééé";
        let windows = numeric_windows(text);
        assert!(text.get(windows[0].range.clone()).is_some());
    }

    #[test]
    fn searching_windows_finds_what_searching_everything_does() {
        let detectors = Detectors::new(&EntityKind::ALL);
        let labelled = include_str!("../../tests/fixtures/pii_labelled.jsonl");
        let extra = [
            "MT84 MALT 0110 0000 0012 3456 MTLC AST0 01S",
            "x 1 y 2 z 3 4111 1111 1111 1111 w 5",
            "é1é2é3 +44 20 7946 0958",
        ];
        for text in labelled.lines().chain(extra) {
            let everything = Window {
                range: 0..text.len(),
                digits: usize::MAX,
            };
            assert_eq!(
                detectors.find(text),
                detectors.find_within(text, std::slice::from_ref(&everything)),
                "{text}"
            );
        }
    }

    #[test]
    fn next_digit_across_chunks() {
        let mut text = "a".repeat(100);
        assert_eq!(next_digit(text.as_bytes(), 0), None);
        text.push('7');
        assert_eq!(next_digit(text.as_bytes(), 0), Some(100));
        assert_eq!(next_digit(text.as_bytes(), 101), None);
        assert_eq!(next_digit(text.as_bytes(), 500), None);
    }

    #[test]
    fn long_texts_stay_linear() {
        // Runs that look like the start of an entity, repeated: each must be given up quickly.
        let megabyte = 1 << 20;
        let awkward = [
            "1.2.3 +1 ab:cd sk-ant a@b eyJhb 4111 DE89 ".repeat(megabyte / 42),
            "1".repeat(megabyte),
            "1.".repeat(megabyte / 2),
            "1:".repeat(megabyte / 2),
            "+1 ".repeat(megabyte / 3),
            "a@b.".repeat(megabyte / 4),
            format!("a@{}", "b.".repeat(megabyte / 2)),
            "-----BEGIN PRIVATE KEY-----".repeat(megabyte / 27),
            format!("eyJ{}", "a".repeat(megabyte)),
        ];
        let detectors = Detectors::new(&EntityKind::ALL);
        // Each takes well under a second when built optimised; the bound is for unoptimised
        // builds on a busy machine, far below what a quadratic search would take.
        for text in &awkward {
            let started = std::time::Instant::now();
            let _ = detectors.find(text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{}",
                &text[..20]
            );
        }
    }
}
