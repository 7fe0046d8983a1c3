//! The settings only a `vertex` provider takes: its Google Cloud project and location, and how it
//! gets access tokens.
//!
//! Vertex AI takes no API key: each request carries a short-lived OAuth access token. The usual
//! way to get one is a service account's key (the JSON file the Cloud console downloads): the
//! gateway signs a JWT with the key and trades it for a token
//! (<https://developers.google.com/identity/protocols/oauth2/service-account#httprest>). The key
//! is read and checked here, at start-up, so that a wrong path or a truncated key stops the
//! gateway with the field named rather than failing every request. A token minted elsewhere can
//! be given as `api_key` instead; it is then sent as is and never refreshed.

use std::fmt;

use serde::Deserialize;

use super::{ConfigProblem, Env, ProviderKind, ProviderSpec, Secret, is_http_url, problem};

/// Where service-account keys send their token requests when they name no `token_uri`.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// A validated `vertex` provider's own settings.
#[derive(Debug, Clone)]
pub struct VertexConfig {
    pub project: String,
    /// A region such as `us-central1`, or `global`.
    pub location: String,
    /// The key that signs token requests; `None` when `api_key` holds an access token.
    pub service_account: Option<ServiceAccountKey>,
    /// Where tokens are requested: `token_url`, else the key's `token_uri`, else Google's.
    pub token_url: String,
}

impl VertexConfig {
    /// The endpoint serving `location`: regional hosts are prefixed with the region, the
    /// global endpoint is not (<https://cloud.google.com/vertex-ai/docs/reference/rest>).
    pub fn default_api_base(&self) -> String {
        if self.location == "global" {
            "https://aiplatform.googleapis.com".to_owned()
        } else {
            format!("https://{}-aiplatform.googleapis.com", self.location)
        }
    }
}

/// The fields of a service-account key file that the token exchange uses.
#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PEM (PKCS#8), as Google writes it.
    pub private_key: Secret,
    /// Which of the account's keys this is; sent as the JWT's `kid`.
    pub private_key_id: Option<String>,
    pub token_uri: Option<String>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// A key file as Google writes it; every field optional here so that a missing one is named.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<Secret>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// Reads a service-account key's JSON text; the error says what is wrong, never the key.
pub fn parse_service_account_key(json: &str) -> Result<ServiceAccountKey, String> {
    let file: KeyFile = serde_json::from_str(json).map_err(|e| {
        // serde_json's messages give a position, not the text: nothing secret leaks.
        format!("not a service-account key (JSON): {e}")
    })?;
    if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
        return Err(format!(
            "a `{kind}` credential, not a service-account key (`\"type\": \"service_account\"`)"
        ));
    }
    let client_email = file
        .client_email
        .filter(|e| !e.is_empty())
        .ok_or("the key has no `client_email`")?;
    let private_key = file
        .private_key
        .filter(|k| !k.expose().is_empty())
        .ok_or("the key has no `private_key`")?;
    if !private_key.expose().contains("-----BEGIN") {
        return Err("the key's `private_key` is not PEM".to_owned());
    }
    Ok(ServiceAccountKey {
        client_email,
        private_key,
        private_key_id: file.private_key_id,
        token_uri: file.token_uri,
    })
}

/// Checks a provider's Vertex settings: for kind `vertex` they are required and read (the key
/// file included); for other kinds they must be absent.
pub(super) fn validate(
    path: &str,
    spec: &ProviderSpec,
    problems: &mut Vec<ConfigProblem>,
) -> Option<VertexConfig> {
    if spec.kind != ProviderKind::Vertex {
        let set = [
            ("project", spec.project.is_some()),
            ("location", spec.location.is_some()),
            ("credentials_file", spec.credentials_file.is_some()),
            ("credentials_json", spec.credentials_json.is_some()),
            ("token_url", spec.token_url.is_some()),
        ];
        for (field, _) in set.iter().filter(|(_, set)| *set) {
            problems.push(problem(
                format!("{path}.{field}"),
                format!(
                    "only `vertex` providers take a {field}, not `{}`",
                    spec.kind.as_str()
                ),
            ));
        }
        return None;
    }
    let before = problems.len();
    let project = spec.project.clone().filter(|p| !p.is_empty());
    if project.is_none() {
        problems.push(problem(
            format!("{path}.project"),
            "required for kind `vertex` (the Google Cloud project id)",
        ));
    }
    let location = spec.location.clone().filter(|l| !l.is_empty());
    match &location {
        None => problems.push(problem(
            format!("{path}.location"),
            "required for kind `vertex` (a region such as us-central1, or global)",
        )),
        // It becomes part of a host name.
        Some(l)
            if !l
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            problems.push(problem(
                format!("{path}.location"),
                format!(
                    "`{l}` is not a Google Cloud location (e.g. us-central1, europe-west4, global)"
                ),
            ))
        }
        Some(_) => {}
    }
    let service_account = credentials(path, spec, problems);
    if let Some(url) = spec.token_url.as_deref().filter(|u| !is_http_url(u)) {
        problems.push(problem(
            format!("{path}.token_url"),
            format!("`{url}` is not an http:// or https:// URL"),
        ));
    }
    if problems.len() > before {
        return None;
    }
    let token_url = spec
        .token_url
        .clone()
        .or_else(|| service_account.as_ref().and_then(|k| k.token_uri.clone()))
        .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
    Some(VertexConfig {
        project: project.unwrap_or_default(),
        location: location.unwrap_or_default(),
        service_account,
        token_url,
    })
}

/// The service-account key, read from `credentials_file` or `credentials_json`; `None` with no
/// problem when `api_key` holds an access token instead. Exactly one of the three is taken.
fn credentials(
    path: &str,
    spec: &ProviderSpec,
    problems: &mut Vec<ConfigProblem>,
) -> Option<ServiceAccountKey> {
    let token = spec.api_key.as_ref().filter(|k| !k.expose().is_empty());
    let given = [
        token.is_some(),
        spec.credentials_file.is_some(),
        spec.credentials_json.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            problems.push(problem(
                format!("{path}.credentials_file"),
                "kind `vertex` needs credentials: a service-account key in credentials_file or credentials_json, or an access token in api_key",
            ));
            return None;
        }
        1 => {}
        _ => {
            problems.push(problem(
                path.to_owned(),
                "give only one of api_key, credentials_file and credentials_json",
            ));
            return None;
        }
    }
    let (field, json) = if let Some(file) = &spec.credentials_file {
        let field = format!("{path}.credentials_file");
        match std::fs::read_to_string(file) {
            Ok(text) => (field, text),
            Err(e) => {
                problems.push(problem(field, format!("cannot read `{file}`: {e}")));
                return None;
            }
        }
    } else if let Some(json) = &spec.credentials_json {
        (format!("{path}.credentials_json"), json.expose().to_owned())
    } else {
        return None;
    };
    match parse_service_account_key(&json) {
        Ok(key) => Some(key),
        Err(message) => {
            problems.push(problem(field, message));
            None
        }
    }
}

/// A `vertex` provider configured by Google's own variables, as Google's SDKs read them:
/// `GOOGLE_APPLICATION_CREDENTIALS` (a key file), `GOOGLE_CLOUD_PROJECT` and
/// `GOOGLE_CLOUD_LOCATION`. All three must be set: the first two are often set for other
/// Google Cloud services, and a provider is not guessed into existence without its location.
pub(super) fn from_env(env: &dyn Env) -> Option<ProviderSpec> {
    let credentials_file = env.var("GOOGLE_APPLICATION_CREDENTIALS")?;
    let project = env.var("GOOGLE_CLOUD_PROJECT")?;
    let location = env.var("GOOGLE_CLOUD_LOCATION")?;
    Some(ProviderSpec {
        project: Some(project),
        location: Some(location),
        credentials_file: Some(credentials_file),
        ..ProviderSpec::of_kind(ProviderKind::Vertex)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::env;

    /// A key with a made-up (not a real) PEM body: parsing here checks fields, not the key.
    fn key_json(without: Option<&str>) -> String {
        let mut key = serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "abc",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
            "client_email": "gateway@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        if let Some(field) = without {
            key.as_object_mut().unwrap().remove(field);
        }
        key.to_string()
    }

    fn parse(yaml: &str) -> Result<Config, Vec<(String, String)>> {
        Config::parse(yaml, &env(&[])).map_err(|e| {
            e.problems()
                .iter()
                .map(|p| (p.path.clone(), p.message.clone()))
                .collect()
        })
    }

    #[test]
    fn a_key_in_json_gives_the_regional_base_and_the_key_token_uri() {
        let yaml = format!(
            "providers:\n  vx: {{ kind: vertex, project: my-proj, location: europe-west4, credentials_json: '{}' }}",
            key_json(None)
        );
        let config = parse(&yaml).unwrap();
        let provider = &config.providers["vx"];
        assert_eq!(
            provider.api_base,
            "https://europe-west4-aiplatform.googleapis.com"
        );
        let vertex = provider.vertex.as_ref().unwrap();
        assert_eq!(vertex.project, "my-proj");
        assert_eq!(vertex.token_url, "https://oauth2.googleapis.com/token");
        let key = vertex.service_account.as_ref().unwrap();
        assert_eq!(key.client_email, "gateway@p.iam.gserviceaccount.com");
        assert_eq!(key.private_key_id.as_deref(), Some("abc"));
        assert!(!format!("{config:?}").contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn global_location_token_url_override_and_a_static_token() {
        let config = parse(
            "providers:\n  vx: { kind: vertex, project: p, location: global, api_key: ya29.x, token_url: 'http://127.0.0.1:9/token' }",
        )
        .unwrap();
        let provider = &config.providers["vx"];
        assert_eq!(provider.api_base, "https://aiplatform.googleapis.com");
        let vertex = provider.vertex.as_ref().unwrap();
        assert!(vertex.service_account.is_none());
        assert_eq!(vertex.token_url, "http://127.0.0.1:9/token");
    }

    #[test]
    fn problems_name_the_field() {
        let problems = parse(
            "providers:\n  a: { kind: vertex, location: 'US Central' }\n  b: { kind: vertex, project: p, location: us-central1, credentials_file: /nonexistent/key.json }\n  c: { kind: gemini, api_key: k, project: p }\n  d: { kind: vertex, project: p, location: us-central1, api_key: t, credentials_file: f }",
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "providers.a.project",
                "providers.a.location",
                "providers.a.credentials_file",
                "providers.b.credentials_file",
                "providers.c.project",
                "providers.d",
            ]
        );
        assert!(
            problems[3]
                .1
                .contains("cannot read `/nonexistent/key.json`")
        );
    }

    #[test]
    fn a_key_missing_a_field_is_named() {
        for (field, message) in [
            ("private_key", "the key has no `private_key`"),
            ("client_email", "the key has no `client_email`"),
        ] {
            let err = parse_service_account_key(&key_json(Some(field))).unwrap_err();
            assert_eq!(err, message);
        }
        let user = r#"{"type": "authorized_user", "client_id": "x"}"#;
        assert!(
            parse_service_account_key(user)
                .unwrap_err()
                .contains("`authorized_user`")
        );
        assert!(parse_service_account_key("not json").is_err());
    }

    #[test]
    fn the_environment_configures_vertex_only_with_all_three_variables() {
        let dir = std::env::temp_dir().join(format!("tollgate-vertex-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key.json");
        std::fs::write(&file, key_json(None)).unwrap();
        let file = file.to_str().unwrap();
        let partial = Config::from_env(&env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", file),
            ("GOOGLE_CLOUD_PROJECT", "p"),
        ]))
        .unwrap();
        assert!(partial.providers.is_empty());
        let config = Config::from_env(&env(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", file),
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("GOOGLE_CLOUD_LOCATION", "us-east5"),
            ("GEMINI_API_KEY", "g"),
        ]))
        .unwrap();
        let vertex = &config.providers["vertex"];
        assert_eq!(vertex.kind, ProviderKind::Vertex);
        assert_eq!(
            vertex.api_base,
            "https://us-east5-aiplatform.googleapis.com"
        );
        assert!(config.providers.contains_key("gemini"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
