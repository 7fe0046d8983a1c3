//! IP addresses: IPv4 dotted quads with octets up to 255 (not a piece of a longer dotted
//! number such as a version), and IPv6 in any form the standard library parses.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::Regex;

use super::{Sink, Window, before, constant_regex, is_word, matches_within};

/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, the longest textual IPv6 address.
pub(super) const MAX_LEN: usize = 45;

/// A whole dotted number, so that `1.2.3.4.5` is seen as five parts, not as `1.2.3.4`.
static DOTTED: LazyLock<Regex> = LazyLock::new(|| constant_regex(r"[0-9]+(?:\.[0-9]+)+"));

/// A run of hex digits, colons and dots containing a colon, starting at a word boundary or
/// with `::`.
static COLONED: LazyLock<Regex> =
    LazyLock::new(|| constant_regex(r"(?-u:\b)[0-9A-Fa-f]{1,4}:[0-9A-Fa-f:.]*|::[0-9A-Fa-f:.]*"));

pub(super) fn find(text: &str, windows: &[Window], sink: &mut Sink<'_>) {
    // Four digits and three dots at least; most parts of a text around digits have fewer.
    let dotted_quads = windows.iter().filter(|window| {
        let part = text
            .as_bytes()
            .get(window.range.clone())
            .unwrap_or_default();
        window.digits >= 4 && part.iter().filter(|&&b| b == b'.').nth(2).is_some()
    });
    let matches = dotted_quads
        .flat_map(|window| matches_within(&DOTTED, text, std::slice::from_ref(window), 4));
    for m in matches {
        let continues_word = before(text, m.start()).is_some_and(|b| is_word(b) || b == b'.')
            || text.as_bytes().get(m.end()).is_some_and(|&b| is_word(b));
        if !continues_word && is_ipv4(m.as_str()) && !after_version_word(text, m.start()) {
            sink.push(m.start(), m.end(), false);
        }
    }
    // Colons are rare in prose: most texts need no search for IPv6 addresses at all.
    if memchr::memchr(b':', text.as_bytes()).is_none() {
        return;
    }
    for m in COLONED.find_iter(text) {
        // A sentence's full stop is not part of the address.
        let candidate = m.as_str().trim_end_matches('.');
        let end = m.start() + candidate.len();
        let continues_word = before(text, m.start())
            .is_some_and(|b| is_word(b) || b == b':' || b == b'.')
            || text.as_bytes().get(end).is_some_and(|&b| is_word(b));
        if !continues_word && is_ipv6(candidate) {
            sink.push(m.start(), end, false);
        }
    }
}

/// Whether the word before `start` says a version follows (`version 10.4.2.7`): four small
/// numbers are as often a version as an address.
fn after_version_word(text: &str, start: usize) -> bool {
    let head = text.get(..start).unwrap_or_default().trim_end();
    let word_start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &head[word_start..];
    ["version", "build", "release", "firmware"]
        .iter()
        .any(|label| word.eq_ignore_ascii_case(label))
}

/// Four decimal parts of one to three digits, each at most 255.
fn is_ipv4(candidate: &str) -> bool {
    let mut parts = 0;
    for part in candidate.split('.') {
        parts += 1;
        let octet_ok = part.len() <= 3 && part.parse::<u16>().is_ok_and(|n| n <= 255);
        if parts > 4 || !octet_ok {
            return false;
        }
    }
    parts == 4
}

/// An IPv6 address with at least one digit: `::` and `a::b` are paths in several
/// languages, while addresses in use nearly all have digits (`::1`, `fe80::`, `2001:db8::`).
fn is_ipv6(candidate: &str) -> bool {
    candidate.len() <= MAX_LEN
        && candidate.bytes().any(|b| b.is_ascii_digit())
        && candidate.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detectors, EntityKind};

    fn ips(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::IpAddress])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    #[test]
    fn ipv4_parts() {
        assert!(is_ipv4("192.0.2.1"));
        assert!(is_ipv4("0.0.0.0"));
        assert!(is_ipv4("255.255.255.255"));
        assert!(!is_ipv4("256.1.1.1"));
        assert!(!is_ipv4("1.2.3"));
        assert!(!is_ipv4("1.2.3.4.5"));
        assert!(!is_ipv4("1.2.3.0004"));
    }

    #[test]
    fn formats_and_edges() {
        assert_eq!(ips("192.0.2.1"), ["192.0.2.1"]);
        assert_eq!(ips("to 10.0.0.1."), ["10.0.0.1"]);
        assert_eq!(ips("10.0.0.1:8080,10.0.0.2"), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips("ü::1ü"), ["::1"]);
        assert_eq!(ips("[2001:db8::1]:443"), ["2001:db8::1"]);
        assert_eq!(ips("at 2001:db8::1."), ["2001:db8::1"]);
        assert_eq!(ips("fe80::1%eth0"), ["fe80::1"]);
        // The embedded IPv4 address is part of the longer IPv6 one.
        assert_eq!(ips("::ffff:192.0.2.128"), ["::ffff:192.0.2.128"]);
    }

    #[test]
    fn not_addresses() {
        for text in [
            "1.2.3.4.5",
            "v1.2.3.4",
            "10.0.19041.1",
            "999.1.2.3",
            "12:30:45",
            "00:1A:2B:3C:4D:5E",
            "std::fmt::Debug",
            "a::b::c",
            "Foo::bar()",
            "::",
            "a::b",
            "dead::beef",
            "deadbeef:cafe:babe",
            "Version 10.4.2.7",
            "build  1.0.0.12",
            "Versión→release 1.0.0.12",
        ] {
            assert!(ips(text).is_empty(), "{text}");
        }
    }
}
