//! Vertex AI's token endpoint and model routes, over real TCP against a started MockServer.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{post_json, send, sse_data};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tollgate_mock_provider::{MockConfig, MockServer};

const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
const LOCATION: &str = "/v1/projects/p/locations/us-central1";
/// The harness's client sends `Host: localhost`.
const AUDIENCE: &str = "http://localhost/token";

/// The test-only service account key the gateway's tests use too.
fn key() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../services/gateway/src/providers/vertex/fixtures/test-only-service-account.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assertion(iss: &str, aud: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": iss, "aud": aud, "iat": now, "exp": now + 3600,
                        "scope": "https://www.googleapis.com/auth/cloud-platform"});
    let pem = key()["private_key"].as_str().unwrap().to_owned();
    let signing = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &signing).unwrap()
}

fn test_account() -> String {
    key()["client_email"].as_str().unwrap().to_owned()
}

async fn exchange(addr: SocketAddr, form: &str) -> common::Response {
    send(addr, "POST", "/token", &[], form.as_bytes()).await
}

/// A token issued for the test account.
async fn token(addr: SocketAddr) -> String {
    let form = format!(
        "grant_type={GRANT}&assertion={}",
        assertion(&test_account(), AUDIENCE)
    );
    let res = exchange(addr, &form).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().unwrap().to_owned()
}

fn hello() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]})
}

#[tokio::test]
async fn the_token_endpoint_checks_the_grant_and_the_signed_jwt() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    let account = test_account();

    let res = exchange(addr, "grant_type=password&assertion=x").await;
    assert_eq!(
        (res.status, res.json()["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let jwt = assertion(&account, AUDIENCE);
    // The signature's last characters changed: no longer the key's signature.
    let forged = format!("{}AAAA", &jwt[..jwt.len() - 4]);
    for (jwt, description) in [
        (forged, "Invalid JWT Signature."),
        (
            assertion(&account, "https://oauth2.googleapis.com/token"),
            "Invalid JWT: the audience must be http://localhost/token",
        ),
        (
            assertion("stranger@elsewhere.iam.gserviceaccount.com", AUDIENCE),
            "Invalid grant: account not found",
        ),
    ] {
        let res = exchange(addr, &format!("grant_type={GRANT}&assertion={jwt}")).await;
        let body = res.json();
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], description);
    }

    let first = token(addr).await;
    let second = token(addr).await;
    assert_ne!(first, second);
    assert_eq!(server.stats().by_route["vertex.token"], 6);
}

#[tokio::test]
async fn model_routes_take_only_issued_tokens() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    let path = format!("{LOCATION}/publishers/google/models/gemini-2.5-flash:generateContent");

    for headers in [
        &[][..],
        &[("authorization", "Bearer ya29.made-up")][..],
        &[("x-goog-api-key", "anything")][..],
    ] {
        let res = post_json(addr, &path, headers, &hello()).await;
        assert_eq!(res.status, 401, "{headers:?}");
        assert_eq!(res.json()["error"]["status"], "UNAUTHENTICATED");
    }

    let bearer = format!("Bearer {}", token(addr).await);
    let auth = [("authorization", bearer.as_str())];
    let res = post_json(addr, &path, &auth, &hello()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let text = res.json()["candidates"][0]["content"]["parts"][0]["text"].clone();
    assert!(text.as_str().unwrap().contains("hello there"), "{text}");

    let stream = format!(
        "{LOCATION}/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let res = post_json(addr, &stream, &auth, &hello()).await;
    assert_eq!(res.status, 200);
    assert!(
        !sse_data(&res.text(), "\r\n\r\n").is_empty(),
        "{}",
        res.text()
    );

    let unknown = format!("{LOCATION}/publishers/google/models/gemini-2.5-flash:rawPredict");
    assert_eq!(post_json(addr, &unknown, &auth, &hello()).await.status, 404);
}

#[tokio::test]
async fn claude_takes_the_model_from_the_url_and_the_version_from_the_body() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    let bearer = format!("Bearer {}", token(addr).await);
    let auth = [("authorization", bearer.as_str())];
    let path =
        format!("{LOCATION}/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict");
    let messages = json!([{"role": "user", "content": "hello there"}]);

    let with_model = json!({"model": "claude", "anthropic_version": "vertex-2023-10-16",
                            "max_tokens": 10, "messages": messages});
    assert_eq!(post_json(addr, &path, &auth, &with_model).await.status, 400);
    let unversioned = json!({"max_tokens": 10, "messages": messages});
    assert_eq!(
        post_json(addr, &path, &auth, &unversioned).await.status,
        400
    );

    let body = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 10,
                      "messages": messages});
    let res = post_json(addr, &path, &auth, &body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let answer = res.json();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "claude-sonnet-4@20250514");

    let mut streaming = body;
    streaming["stream"] = json!(true);
    let path =
        format!("{LOCATION}/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict");
    let res = post_json(addr, &path, &auth, &streaming).await;
    assert_eq!(res.status, 200);
    assert!(res.text().contains("event: message_stop"), "{}", res.text());
}

#[tokio::test]
async fn predict_embeds_each_instance_and_counts_its_tokens() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    let bearer = format!("Bearer {}", token(addr).await);
    let path = format!("{LOCATION}/publishers/google/models/text-embedding-005:predict");
    let body = json!({"instances": [{"content": "red"}, {"content": "a longer text"}],
                      "parameters": {"outputDimensionality": 4}});
    let res = post_json(addr, &path, &[("authorization", bearer.as_str())], &body).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let predictions = res.json()["predictions"].clone();
    assert_eq!(predictions.as_array().unwrap().len(), 2);
    assert_eq!(
        predictions[0]["embeddings"]["values"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(
        predictions[1]["embeddings"]["statistics"]["token_count"]
            .as_u64()
            .unwrap()
            > 0
    );
}
