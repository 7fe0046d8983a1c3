//! Cost-attribution tags: the key's own, overridden by the request's `x-tollgate-tags:
//! feature=search,env=prod` header, so that spend can be split by feature.

use std::collections::BTreeMap;

use actix_web::http::header::HeaderMap;

use crate::error::GatewayError;

pub const TAGS_HEADER: &str = "x-tollgate-tags";

/// At most this many tags per request, each name and value of bounded length.
const MAX_TAGS: usize = 16;
const MAX_NAME: usize = 64;
const MAX_VALUE: usize = 128;

/// The key's tags with the request's header applied on top.
pub fn request_tags(
    key_tags: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<BTreeMap<String, String>, GatewayError> {
    let Some(header) = headers.get(TAGS_HEADER) else {
        return Ok(key_tags.clone());
    };
    let invalid = |message: String| GatewayError::invalid_field(TAGS_HEADER, message);
    let text = header
        .to_str()
        .map_err(|_| invalid(format!("`{TAGS_HEADER}` must be ASCII.")))?;
    let mut tags = key_tags.clone();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(invalid(format!(
                "`{TAGS_HEADER}` must be name=value pairs separated by commas; `{pair}` has no `=`."
            )));
        };
        let (name, value) = (name.trim(), value.trim());
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
        if !name_ok {
            return Err(invalid(format!(
                "Tag names must be 1 to {MAX_NAME} letters, digits or `_-.:/`; `{name}` is not."
            )));
        }
        if value.is_empty()
            || value.len() > MAX_VALUE
            || value.bytes().any(|b| b.is_ascii_control())
        {
            return Err(invalid(format!(
                "Tag values must be 1 to {MAX_VALUE} printable characters; the value of `{name}` is not."
            )));
        }
        tags.insert(name.to_owned(), value.to_owned());
    }
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!(
            "A request carries at most {MAX_TAGS} tags."
        )));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(TAGS_HEADER),
            HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
        );
        headers
    }

    #[test]
    fn the_header_overrides_and_extends_the_keys_tags() {
        let key = BTreeMap::from([
            ("team".to_owned(), "ml".to_owned()),
            ("env".to_owned(), "dev".to_owned()),
        ]);
        let tags = request_tags(&key, &headers("feature=search, env=prod")).unwrap_or_default();
        assert_eq!(tags.get("feature").map(String::as_str), Some("search"));
        assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
        assert_eq!(tags.get("team").map(String::as_str), Some("ml"));
        assert_eq!(
            request_tags(&key, &HeaderMap::new()).unwrap_or_default(),
            key
        );
    }

    #[test]
    fn malformed_tags_are_a_client_error_naming_the_header() {
        for bad in [
            "feature",
            "=x",
            "fe ature=x",
            "a=",
            &format!("a={}", "v".repeat(200)),
        ] {
            let err = request_tags(&BTreeMap::new(), &headers(bad)).err();
            assert!(
                matches!(&err, Some(GatewayError::InvalidField { param, .. }) if param == TAGS_HEADER),
                "{bad}: {err:?}"
            );
        }
        let many: Vec<String> = (0..17).map(|i| format!("t{i}=v")).collect();
        assert!(request_tags(&BTreeMap::new(), &headers(&many.join(","))).is_err());
    }
}
