//! Secrets: API keys and tokens of the common providers (recognised by their prefixes),
//! AWS secret access keys where a label names them, JWTs whose header is JSON naming an
//! `alg`, and private-key blocks.

use std::sync::LazyLock;

use regex::Regex;

use super::{Sink, constant_regex};

/// A private-key block in PEM: an RSA key of 8192 bits takes about 6.4 KB.
const PRIVATE_KEY_MAX_LEN: usize = 8 * 1024;
/// A JWT carrying many claims, as identity providers issue.
const JWT_MAX_LEN: usize = 4 * 1024;
/// The longest provider key (OpenAI's project keys are about 170 characters).
const TOKEN_MAX_LEN: usize = 512;
/// A JWT's header (`{"alg":"RS256","typ":"JWT","kid":"…"}`), encoded.
const JWT_HEADER_MAX_LEN: usize = 1024;

pub(super) const MAX_LEN: usize = PRIVATE_KEY_MAX_LEN;

/// Provider keys by prefix, and JWTs (`eyJ` is `{"` encoded). Every alternative starts with a
/// literal, so a search skips straight to those.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    let providers = [
        // Anthropic
        r"sk-ant-[a-z]+[0-9]{2}-[A-Za-z0-9_\-]{32,}",
        // OpenAI: project, service-account and admin keys, then the older plain ones
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{32,}",
        r"sk-[A-Za-z0-9]{32,}",
        // AWS access key ids (long-term and temporary)
        r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        // GitHub
        r"gh[pousr]_[A-Za-z0-9]{36,}",
        r"github_pat_[A-Za-z0-9_]{50,}",
        // Slack
        r"xox[abposr]-[A-Za-z0-9\-]{10,}",
        // Stripe
        r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        r"pk_live_[A-Za-z0-9]{16,}",
        // Google
        r"AIza[A-Za-z0-9_\-]{35}",
        // Twilio API key sid
        r"SK[0-9a-fA-F]{32}",
        // SendGrid
        r"SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}",
        // npm
        r"npm_[A-Za-z0-9]{36}",
        // GitLab
        r"glpat-[A-Za-z0-9_\-]{20,}",
        // Hugging Face
        r"hf_[A-Za-z0-9]{30,}",
        // JWT: header, payload, signature (empty when unsigned)
        r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*",
    ];
    constant_regex(&format!(r"(?-u:\b)(?:{})", providers.join("|")))
});

/// An AWS secret access key is 40 characters of base64 with nothing to recognise it by but
/// its label (`aws_secret_access_key = …`, `"SecretAccessKey": "…"`).
static AWS_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    constant_regex(
        r#"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9/+]{40})"#,
    )
});

static PRIVATE_KEY_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| constant_regex(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"));

pub(super) fn find(text: &str, sink: &mut Sink<'_>) {
    for m in TOKEN.find_iter(text) {
        let token = m.as_str();
        let longer_token = text
            .as_bytes()
            .get(m.end())
            .is_some_and(|&b| b.is_ascii_alphanumeric());
        if longer_token {
            continue;
        }
        if token.starts_with("eyJ") {
            if token.len() <= JWT_MAX_LEN && is_jwt(token) {
                sink.push(m.start(), m.end(), true);
            }
        } else if token.len() <= TOKEN_MAX_LEN {
            sink.push(m.start(), m.end(), false);
        }
    }

    for captures in AWS_SECRET.captures_iter(text) {
        if let Some(key) = captures.get(1) {
            let longer = text
                .as_bytes()
                .get(key.end())
                .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'='));
            if !longer {
                sink.push(key.start(), key.end(), false);
            }
        }
    }

    let mut resume = 0;
    // Where the next END line starts (the text's end when there is none); looked for again
    // only once passed, so that many BEGIN lines cost one pass over the text.
    let mut next_end_line = 0;
    for begin in PRIVATE_KEY_BEGIN.find_iter(text) {
        if begin.start() < resume {
            continue;
        }
        if next_end_line < begin.end() {
            next_end_line = text
                .get(begin.end()..)
                .and_then(|rest| rest.find(END_LINE))
                .map_or(text.len(), |at| begin.end() + at);
        }
        let end = private_key_end(text, begin.start(), begin.end(), next_end_line);
        sink.push(begin.start(), end, false);
        resume = end;
    }
}

const END_LINE: &str = "-----END ";

/// Where the private-key block whose BEGIN line spans `start..header_end` ends: after its
/// END line (the first at or after `end_line`), or, when none comes within the longest
/// block, after the base64 lines that follow the BEGIN line (a pasted key is often cut
/// short).
fn private_key_end(text: &str, start: usize, header_end: usize, end_line: usize) -> usize {
    let mut limit = (start + PRIVATE_KEY_MAX_LEN).min(text.len());
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    if end_line < limit {
        let label = end_line + END_LINE.len();
        if let Some(close) = text.get(label..limit).and_then(|after| after.find("-----")) {
            return label + close + "-----".len();
        }
    }
    let rest = text.get(header_end..limit).unwrap_or_default();
    let bytes = rest.as_bytes();
    let mut end = 0;
    let mut at = 0;
    loop {
        let line_break = if bytes[at..].starts_with(b"\r\n") {
            2
        } else if bytes[at..].starts_with(b"\n") {
            1
        } else {
            break;
        };
        let line_start = at + line_break;
        let line_len = bytes[line_start..]
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            .count();
        if line_len == 0 {
            break;
        }
        at = line_start + line_len;
        end = at;
    }
    header_end + end
}

/// Whether `token` is a JWT: its first segment decodes to a JSON object with an `alg`.
fn is_jwt(token: &str) -> bool {
    let Some((header, _)) = token.split_once('.') else {
        return false;
    };
    if header.len() > JWT_HEADER_MAX_LEN {
        return false;
    }
    base64url_decode(header.as_bytes()).is_some_and(|json| {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
            .is_ok_and(|header| header.contains_key("alg"))
    })
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWT segments are written.
fn base64url_decode(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(encoded.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in encoded {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Detectors, EntityKind};

    fn secrets(text: &str) -> Vec<&str> {
        Detectors::new(&[EntityKind::Secret])
            .find(text)
            .into_iter()
            .map(|found| &text[found.start..found.end])
            .collect()
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig_nature";

    #[test]
    fn base64url() {
        assert_eq!(
            base64url_decode(b"eyJhIjoxfQ").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(base64url_decode(b"-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url_decode(b"a+b/"), None);
    }

    #[test]
    fn jwts_need_an_alg_in_a_json_header() {
        assert!(is_jwt(JWT));
        // {"foo":"bar"}
        assert!(!is_jwt("eyJmb28iOiJiYXIifQ.eyJhIjoxfQ.c2ln"));
        assert!(!is_jwt(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ.eyJhIjoxfQ.c2ln"
        ));
    }

    #[test]
    fn tokens_at_the_edges() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        assert_eq!(secrets(key), [key]);
        assert_eq!(secrets(&format!("«{key}»")), [key]);
        assert_eq!(secrets(&format!("{JWT}.")), [JWT]);
        let stripe = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";
        assert_eq!(secrets(&format!("{key},{stripe}")), [key, stripe]);
    }

    #[test]
    fn labelled_aws_secret_keys() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(secrets(&format!("aws_secret_access_key = {key}")), [key]);
        assert_eq!(
            secrets(&format!(r#"{{"SecretAccessKey": "{key}"}}"#)),
            [key]
        );
        assert!(secrets(&format!("hash {key}")).is_empty());
    }

    #[test]
    fn private_key_blocks() {
        let block =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbCd==\n-----END RSA PRIVATE KEY-----";
        assert_eq!(secrets(&format!("key:\n{block}\nthanks")), [block]);
        let cut = "-----BEGIN PRIVATE KEY-----\r\nMIIEvQ+/\r\nAbCd";
        assert_eq!(secrets(&format!("{cut}\r\n\r\nmore text")), [cut]);
        assert_eq!(
            secrets("-----BEGIN OPENSSH PRIVATE KEY-----"),
            ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        );
        assert!(secrets("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn private_key_blocks_are_bounded() {
        let lines = "QUJD\n".repeat(4000);
        let text = format!("-----BEGIN PRIVATE KEY-----\n{lines}-----END PRIVATE KEY-----");
        let found = Detectors::new(&[EntityKind::Secret]).find(&text);
        assert_eq!(found.len(), 1);
        assert!(found[0].end - found[0].start <= MAX_LEN);
    }

    #[test]
    fn not_secrets() {
        for text in [
            "risk-free task-list",
            "AKIA_PREFIX",
            "AKIAIOSFODNN7EXAMPLEX",
            "ghp_config",
            "hf_hub_download",
            "npm_config_cache",
            "xoxb- or xoxp-",
            "sk_test_ keys",
            "SKU SK-1234",
            "9e107d9d372bb6826bd81d3542a419d6",
        ] {
            assert!(secrets(text).is_empty(), "{text}");
        }
    }
}
