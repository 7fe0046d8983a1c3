//! Request parameters in Stripe's bracket notation.
//!
//! Stripe's v1 API takes `application/x-www-form-urlencoded` bodies (and query strings) whose
//! keys nest with brackets: `metadata[org_id]=o1`, `line_items[0][price_data][currency]=usd`,
//! `expand[]=customer`. [`Params::parse`] turns them into a JSON tree: bracketed names become
//! objects, `[]` appends to an array, and an object whose keys are all indices becomes an array
//! in index order. The flat pairs are kept as they came, for the request log and for comparing
//! the parameters of idempotent retries.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Parsed request parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    root: Map<String, Value>,
}

impl Params {
    /// Parses a form body or query string.
    pub fn parse(raw: &[u8]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
            .map_err(|err| ApiError::invalid(format!("Invalid form-encoded parameters: {err}")))?;
        let mut root = Map::new();
        for (key, value) in &pairs {
            let path = split_key(key).ok_or_else(|| {
                ApiError::invalid(format!("Invalid parameter name: {key}")).param(key)
            })?;
            insert(&mut root, &path, value.clone())
                .map_err(|why| ApiError::invalid(format!("Invalid parameter {key}: {why}")))?;
        }
        for value in root.values_mut() {
            index_objects_to_arrays(value);
        }
        Ok(Params { pairs, root })
    }

    /// The pairs as they came, decoded.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The pairs in a canonical order, for comparing two requests' parameters.
    pub fn canonical(&self) -> Vec<(String, String)> {
        let mut sorted = self.pairs.clone();
        sorted.sort();
        sorted
    }

    /// The value at `path` (`["invoice_settings", "default_payment_method"]`).
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut node = self.root.get(*first)?;
        for key in rest {
            node = match node {
                Value::Object(map) => map.get(*key)?,
                Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// A text parameter; a nested one is refused with Stripe's error for the wrong shape.
    pub fn str(&self, path: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid string: {} must be a string, not a hash or an array",
                param_name(path)
            ))
            .param(&param_name(path))),
        }
    }

    /// A required, non-empty text parameter.
    pub fn required_str(&self, path: &[&str]) -> Result<&str, ApiError> {
        match self.str(path)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(ApiError::missing_param(&param_name(path))),
        }
    }

    /// An optional integer parameter.
    pub fn int(&self, path: &[&str]) -> Result<Option<i64>, ApiError> {
        match self.str(path)? {
            None | Some("") => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::invalid(format!("Invalid integer: {text}"))
                    .code("parameter_invalid_integer")
                    .param(&param_name(path))
            }),
        }
    }

    /// An optional boolean parameter (`true` / `false`).
    pub fn bool(&self, path: &[&str]) -> Result<Option<bool>, ApiError> {
        match self.str(path)? {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(text) => {
                Err(ApiError::invalid(format!("Invalid boolean: {text}")).param(&param_name(path)))
            }
        }
    }

    /// An enumerated text parameter, checked against `allowed`.
    pub fn one_of(&self, path: &[&str], allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.str(path)? {
            None | Some("") => Ok(None),
            Some(text) if allowed.contains(&text) => Ok(Some(text.to_owned())),
            Some(text) => Err(ApiError::invalid(format!(
                "Invalid {}: must be one of {} (got {text:?})",
                param_name(path),
                allowed.join(", ")
            ))
            .param(&param_name(path))),
        }
    }

    /// A map of strings such as `metadata` or `payload`. `Some(None)` means the parameter was sent
    /// empty (`metadata=`), which Stripe reads as "clear it".
    pub fn string_map(
        &self,
        path: &[&str],
    ) -> Result<Option<Option<Map<String, Value>>>, ApiError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(Some(None)),
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    if !value.is_string() {
                        return Err(ApiError::invalid(format!(
                            "Invalid {}[{key}]: values must be strings",
                            param_name(path)
                        ))
                        .param(&format!("{}[{key}]", param_name(path))));
                    }
                }
                Ok(Some(Some(map.clone())))
            }
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid object: {} must be a hash of strings",
                param_name(path)
            ))
            .param(&param_name(path))),
        }
    }

    /// A list of strings (`payment_method_types[]=card` or `payment_method_types[0]=card`).
    pub fn strings(&self, path: &[&str]) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or_else(|| {
                        ApiError::invalid(format!("Invalid array: {}", param_name(path)))
                            .param(&param_name(path))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(text)) if text.is_empty() => Ok(Some(Vec::new())),
            Some(_) => Err(ApiError::invalid(format!(
                "Invalid array: {} must be an array",
                param_name(path)
            ))
            .param(&param_name(path))),
        }
    }

    /// The `expand[]` paths.
    pub fn expand(&self) -> Result<Vec<String>, ApiError> {
        Ok(self.strings(&["expand"])?.unwrap_or_default())
    }

    /// Refuses top-level parameters outside `allowed` (and `expand`, which every endpoint takes),
    /// as Stripe does.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        only_keys(&self.root, allowed, &[])
    }

    /// Refuses parameters under `path` outside `allowed`.
    pub fn only_under(&self, path: &[&str], allowed: &[&str]) -> Result<(), ApiError> {
        match self.get(path) {
            Some(Value::Object(map)) => only_keys(map, allowed, path),
            _ => Ok(()),
        }
    }
}

/// Stripe's name for a nested parameter: `invoice_settings[default_payment_method]`.
pub(crate) fn param_name(path: &[&str]) -> String {
    let mut name = String::new();
    for (i, key) in path.iter().enumerate() {
        if i == 0 {
            name.push_str(key);
        } else {
            name.push('[');
            name.push_str(key);
            name.push(']');
        }
    }
    name
}

fn only_keys(map: &Map<String, Value>, allowed: &[&str], under: &[&str]) -> Result<(), ApiError> {
    for key in map.keys() {
        let expand = under.is_empty() && key == "expand";
        if !expand && !allowed.contains(&key.as_str()) {
            let mut path = under.to_vec();
            path.push(key);
            let name = param_name(&path);
            return Err(ApiError::invalid(format!(
                "Received unknown parameter: {name} (or one tollgate-mock-stripe does not support)"
            ))
            .param(&name));
        }
    }
    Ok(())
}

/// `a[b][]` -> `["a", "b", ""]`; `None` for unbalanced brackets.
fn split_key(key: &str) -> Option<Vec<String>> {
    let (head, mut rest) = match key.find('[') {
        Some(at) => (&key[..at], &key[at..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return None;
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let segment = &inner[..close];
        if segment.contains('[') {
            return None;
        }
        path.push(segment.to_owned());
        rest = &inner[close + 1..];
    }
    Some(path)
}

fn insert(node: &mut Map<String, Value>, path: &[String], value: String) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        if matches!(node.get(first), Some(Value::Object(_) | Value::Array(_))) {
            return Err("sent both as a value and as a hash or array".into());
        }
        node.insert(first.clone(), Value::String(value));
        return Ok(());
    }
    if rest[0].is_empty() {
        if rest.len() > 1 {
            return Err("`[]` may only end a parameter name".into());
        }
        let entry = node
            .entry(first.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        return match entry {
            Value::Array(items) => {
                items.push(Value::String(value));
                Ok(())
            }
            _ => Err("sent both as an array and otherwise".into()),
        };
    }
    let entry = node
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    match entry {
        Value::Object(child) => insert(child, rest, value),
        _ => Err("sent both as a value and as a hash".into()),
    }
}

/// `{"0": a, "1": b}` -> `[a, b]`, recursively.
fn index_objects_to_arrays(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                index_objects_to_arrays(child);
            }
            if !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut indexed: Vec<(usize, Value)> = std::mem::take(map)
                    .into_iter()
                    .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v)))
                    .collect();
                indexed.sort_by_key(|(i, _)| *i);
                *value = Value::Array(indexed.into_iter().map(|(_, v)| v).collect());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(index_objects_to_arrays),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn brackets_nest_and_index() {
        let p = Params::parse(
            b"email=a%40b.c&metadata[org_id]=o1&metadata[team]=t&line_items[1][quantity]=2\
              &line_items[0][price_data][currency]=usd&line_items[0][quantity]=1&expand[]=customer\
              &expand[]=setup_intent",
        )
        .unwrap();
        assert_eq!(p.str(&["email"]).unwrap(), Some("a@b.c"));
        assert_eq!(
            p.get(&["metadata"]).unwrap(),
            &json!({"org_id": "o1", "team": "t"})
        );
        assert_eq!(
            p.get(&["line_items"]).unwrap(),
            &json!([{"price_data": {"currency": "usd"}, "quantity": "1"}, {"quantity": "2"}])
        );
        assert_eq!(
            p.str(&["line_items", "0", "price_data", "currency"])
                .unwrap(),
            Some("usd")
        );
        assert_eq!(p.expand().unwrap(), vec!["customer", "setup_intent"]);
    }

    #[test]
    fn percent_encoded_brackets_are_the_same() {
        let p =
            Params::parse(b"payload%5Bvalue%5D=12&payload%5Bstripe_customer_id%5D=cus_1").unwrap();
        assert_eq!(p.str(&["payload", "value"]).unwrap(), Some("12"));
    }

    #[test]
    fn shapes_are_checked() {
        assert!(Params::parse(b"a[b=1").is_err());
        assert!(Params::parse(b"a=1&a[b]=2").is_err());
        let p = Params::parse(b"metadata=").unwrap();
        assert_eq!(p.string_map(&["metadata"]).unwrap(), Some(None));
        let p = Params::parse(b"n=x").unwrap();
        assert_eq!(
            p.int(&["n"]).unwrap_err().code,
            Some("parameter_invalid_integer")
        );
        let p = Params::parse(b"email=x&bogus=1").unwrap();
        assert!(p.only(&["email"]).is_err());
        assert!(p.only(&["email", "bogus"]).is_ok());
    }
}
