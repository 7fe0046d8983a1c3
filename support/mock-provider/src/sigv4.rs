//! Checks AWS Signature Version 4 on requests, as AWS does, so that the gateway's signing is
//! tested against an implementation it does not share code with.
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>

use actix_web::HttpRequest;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The only algorithm checked (SigV4a is not).
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's time may be from ours, as AWS allows.
const MAX_SKEW_SECS: i64 = 5 * 60;

/// Who may call, with what.
pub(crate) struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// When set, requests must carry it, signed, as `x-amz-security-token`.
    pub session_token: Option<&'a str>,
    /// The service name signatures must be scoped to.
    pub service: &'a str,
}

/// Why a request was refused: the exception AWS names and its message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub exception: &'static str,
    pub message: String,
}

fn refuse(exception: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        exception,
        message: message.into(),
    }
}

/// The parts of one request the signature covers.
pub(crate) struct SignedRequest<'a> {
    pub method: &'a str,
    /// As sent: percent-encoded, no query.
    pub path: &'a str,
    pub query: &'a str,
    /// Every header, names in any case.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    pub fn from_actix(req: &'a HttpRequest, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.query_string(),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }

    /// All values of a header, in order.
    fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `Ok` when the request is signed by `keys` within the allowed skew of `now` (Unix seconds).
pub(crate) fn verify(
    request: &SignedRequest<'_>,
    keys: &Keys<'_>,
    now: i64,
) -> Result<(), Refusal> {
    let authorization = request.values("authorization");
    let Some(authorization) = authorization.first() else {
        return Err(refuse(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let auth = parse_authorization(authorization).ok_or_else(|| {
        refuse(
            "IncompleteSignatureException",
            format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters with {ALGORITHM}."),
        )
    })?;
    let scope: Vec<&str> = auth.credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(refuse(
            "IncompleteSignatureException",
            format!(
                "Credential should be scoped correctly: '{}'",
                auth.credential
            ),
        ));
    };
    if access_key_id != keys.access_key_id {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if service != keys.service {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: '{}'.",
                keys.service
            ),
        ));
    }
    let amz_date = request.values("x-amz-date");
    let Some(amz_date) = amz_date.first().copied() else {
        return Err(refuse(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Some(signed_at) = parse_amz_date(amz_date) else {
        return Err(refuse(
            "IncompleteSignatureException",
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        ));
    };
    if !amz_date.starts_with(date) {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}'",
                &amz_date[..8]
            ),
        ));
    }
    if (now - signed_at).abs() > MAX_SKEW_SECS {
        return Err(refuse(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is now earlier or later than the allowed 5 minutes."
            ),
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(refuse(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if let Some(token) = keys.session_token {
        let sent = request.values("x-amz-security-token");
        if sent.first() != Some(&token) || !auth.signed_headers.contains(&"x-amz-security-token") {
            return Err(refuse(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
    }

    let canonical = canonical_request(request, &auth.signed_headers);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(keys.secret_access_key, date, region, service);
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if !same(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

struct Authorization<'a> {
    credential: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

/// `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=a;b, Signature=hex`.
fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value.split(';').collect()),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    Some(Authorization {
        credential: credential?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// The canonical request: method, URI, query, the signed headers, their names, the body hash.
fn canonical_request(request: &SignedRequest<'_>, signed_headers: &[&str]) -> String {
    let mut out = String::new();
    out.push_str(request.method);
    out.push('\n');
    // Every service but S3 signs the path encoded a second time.
    out.push_str(&uri_encode(&normalize_path(request.path), false));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = request
            .values(name)
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(request.body)));
    out
}

/// The path with `.` and `..` segments resolved, as AWS resolves them before signing.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Percent-encodes all but unreserved characters (and `/` unless `slash`).
fn uri_encode(input: &str, slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !slash)
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Query parameters sorted, names and values encoded once.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(key), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `kSigning`: the secret narrowed to one day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Equality that takes as long wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20150830T123600Z` as Unix seconds.
fn parse_amz_date(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = value.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, the moment of AWS's signing test suite.
    const SUITE_TIME: i64 = 1_440_938_160;

    fn keys(service: &'static str) -> Keys<'static> {
        Keys {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
            session_token: None,
            service,
        }
    }

    fn request<'a>(headers: &[(&str, &str)], body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body,
        }
    }

    /// AWS's published `post-x-www-form-urlencoded` case: headers, body and signature.
    fn suite_request(signature: &str) -> (Vec<(String, String)>, &'static [u8]) {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature={signature}"
        );
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("Content-Length", "13"),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "x-amz-content-sha256",
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            ),
            ("Authorization", authorization.as_str()),
        ];
        (
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            b"Param1=value1",
        )
    }

    #[test]
    fn the_published_test_suite_signatures_verify() {
        let good = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let (headers, body) = suite_request(good);
        let signed = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        };
        assert_eq!(verify(&signed, &keys("service"), SUITE_TIME), Ok(()));

        // `post-vanilla`: no body, two signed headers.
        let vanilla = request(
            &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
                ),
            ],
            b"",
        );
        assert_eq!(verify(&vanilla, &keys("service"), SUITE_TIME), Ok(()));
    }

    #[test]
    fn anything_changed_fails_the_signature() {
        let good = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let (headers, _) = suite_request(good);
        let signed = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: headers.clone(),
            body: b"Param1=value2",
        };
        let refusal = verify(&signed, &keys("service"), SUITE_TIME).unwrap_err();
        assert_eq!(refusal.exception, "InvalidSignatureException");
        assert!(
            refusal
                .message
                .starts_with("The request signature we calculated does not match")
        );

        let wrong_secret = Keys {
            secret_access_key: "not-the-secret",
            ..keys("service")
        };
        let (headers, body) = suite_request(good);
        let signed = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        };
        assert_eq!(
            verify(&signed, &wrong_secret, SUITE_TIME)
                .unwrap_err()
                .exception,
            "InvalidSignatureException"
        );
        let other_key = Keys {
            access_key_id: "AKIDOTHER",
            ..keys("service")
        };
        assert_eq!(
            verify(&signed, &other_key, SUITE_TIME)
                .unwrap_err()
                .exception,
            "UnrecognizedClientException"
        );
        assert_eq!(
            verify(&signed, &keys("bedrock"), SUITE_TIME)
                .unwrap_err()
                .exception,
            "InvalidSignatureException"
        );
        let late = verify(&signed, &keys("service"), SUITE_TIME + 301).unwrap_err();
        assert!(late.message.starts_with("Signature expired"), "{late:?}");
        let with_token = Keys {
            session_token: Some("token"),
            ..keys("service")
        };
        assert_eq!(
            verify(&signed, &with_token, SUITE_TIME)
                .unwrap_err()
                .exception,
            "UnrecognizedClientException"
        );
        let unsigned = request(&[("Host", "example.amazonaws.com")], b"");
        assert_eq!(
            verify(&unsigned, &keys("service"), SUITE_TIME)
                .unwrap_err()
                .exception,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn paths_are_normalized_and_encoded_twice() {
        assert_eq!(
            uri_encode(
                &normalize_path("/test/@connections/JBDvjfGEIAMCERw%3D"),
                false
            ),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(
            uri_encode(&normalize_path("/model/a.b-v1%3A0/./x/../converse"), false),
            "/model/a.b-v1%253A0/converse"
        );
        assert_eq!(canonical_query("b=2&a=%20x&c"), "a=%20x&b=2&c=");
    }

    #[test]
    fn amz_dates_read_as_unix_seconds() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(SUITE_TIME));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        assert_eq!(parse_amz_date("2015-08-30T12:36Z"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
    }
}
