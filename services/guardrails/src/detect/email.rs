//! E-mail addresses: `local@domain.tld`, found from each `@` outwards.

use super::{Sink, is_word};

/// The longest address SMTP carries (RFC 5321's path limit less the angle brackets).
pub(super) const MAX_LEN: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_LABEL: usize = 63;

pub(super) fn find(text: &str, sink: &mut Sink<'_>) {
    let bytes = text.as_bytes();
    let mut resume = 0;
    for at_sign in memchr::memchr_iter(b'@', bytes) {
        if at_sign < resume {
            continue;
        }
        let Some(start) = local_start(text, at_sign) else {
            continue;
        };
        let Some(end) = domain_end(bytes, at_sign + 1) else {
            continue;
        };
        if end - start <= MAX_LEN {
            sink.push(start, end, false);
            resume = end;
        }
    }
}

/// Characters of the local part people use (RFC 5322 allows more, rarely seen).
fn is_local(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Where the local part ending before `at_sign` starts, if it is one.
fn local_start(text: &str, at_sign: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut start = at_sign;
    while start > 0 && is_local(bytes[start - 1]) {
        if at_sign - start == MAX_LOCAL {
            // Longer than any local part: some other token.
            return None;
        }
        start -= 1;
    }
    // `user@host` after `//` is a URL's credentials, not an address.
    if start >= 2 && &bytes[start - 2..start] == b"//" {
        return None;
    }
    if glued_to_a_word(text, start) {
        return None;
    }
    // A dot cannot start a local part; sentence punctuation before the address can.
    while start < at_sign && bytes[start] == b'.' {
        start += 1;
    }
    let local = &bytes[start..at_sign];
    let well_formed =
        !local.is_empty() && !local.ends_with(b".") && !local.windows(2).any(|pair| pair == b"..");
    well_formed.then_some(start)
}

/// Whether a letter of a script that separates words by spaces comes right before `start`
/// (`émile@…` is not `mile@…`). Chinese, Japanese and Korean text runs words together, so
/// an address may follow their characters directly.
fn glued_to_a_word(text: &str, start: usize) -> bool {
    const SCRIPTS_WITHOUT_SPACES: u32 = 0x2E80;
    text.get(..start)
        .and_then(|head| head.chars().next_back())
        .is_some_and(|c| {
            !c.is_ascii() && c.is_alphanumeric() && (c as u32) < SCRIPTS_WITHOUT_SPACES
        })
}

/// Where the domain starting at `from` ends, if it is one: dot-separated labels of letters,
/// digits and inner hyphens, at least two, the last (the TLD) of letters only.
fn domain_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut labels = 0;
    let mut label_start = from;
    let mut end;
    loop {
        end = label_start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-') {
            end += 1;
        }
        let label = &bytes[label_start..end];
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label.starts_with(b"-")
            || label.ends_with(b"-")
        {
            return None;
        }
        labels += 1;
        if end - from > MAX_LEN {
            return None;
        }
        // Another label only if a dot is followed by one; a dot after the last one ends the
        // sentence.
        let next_label =
            end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_alphanumeric();
        if !next_label {
            break;
        }
        label_start = end + 1;
    }
    let tld = &bytes[label_start..end];
    let tld_ok = tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic);
    // `_` or `@` right after would make the address part of a longer token.
    let ends_clean = bytes.get(end).is_none_or(|&b| !is_word(b) && b != b'@');
    (labels >= 2 && tld_ok && ends_clean).then_some(end)
}

#[cfg(test)]
mod tests {
    use crate::detect::{Detectors, EntityKind};

    fn emails(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::Email])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    #[test]
    fn addresses_at_the_edges_and_beside_punctuation() {
        assert_eq!(emails("a@example.com"), ["a@example.com"]);
        assert_eq!(emails("(x.y@example.co.uk)."), ["x.y@example.co.uk"]);
        assert_eq!(
            emails("mailto:sales@example.com?x=1"),
            ["sales@example.com"]
        );
        assert_eq!(
            emails("a@example.com,b@example.org"),
            ["a@example.com", "b@example.org"]
        );
        assert_eq!(emails("…see .dot@example.com"), ["dot@example.com"]);
    }

    #[test]
    fn multibyte_neighbours() {
        let text = "écrivez à émile@example.fr, 東京tanaka@example.jp。";
        assert_eq!(emails(text), ["tanaka@example.jp"]);
    }

    #[test]
    fn not_addresses() {
        for text in [
            "root@localhost",
            "john@example",
            "name@.com",
            "a@b.c",
            "pkg@17.0.0",
            "a..b@example.com",
            "x@-example.com",
            "https://user@example.com/repo",
            "a@example.com_x",
            "@example.com",
        ] {
            assert!(emails(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn too_long_parts_are_refused() {
        let local = "a".repeat(65);
        assert!(emails(&format!("{local}@example.com")).is_empty());
        let label = "b".repeat(64);
        assert!(emails(&format!("a@{label}.com")).is_empty());
        let long_domain = format!("a@{}com", "abcdefghij.".repeat(25));
        assert!(emails(&long_domain).is_empty());
    }
}
