//! An in-process harness: mock providers on real sockets and a real gateway server in front of
//! them, configured from YAML text.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

pub mod ingress;

use std::collections::BTreeMap;

use bytes::Bytes;
use tollgate_common::Secret;
use tollgate_common::config::{
    AwsCredentials, Config, DEFAULT_TOKEN_URL, ProviderConfig, ProviderKind, VertexConfig,
};
use tollgate_gateway::openai::{Endpoint, InboundBody};
use tollgate_gateway::providers::{ProviderAdapter, adapter_for};
use tollgate_gateway::{RunningServer, Stages};
use tollgate_mock_provider::{MockConfig, MockServer};

/// One provider of every kind, all on the mock `m`, and the model group `smart` at Anthropic.
pub const ALL_KINDS: &str = r#"
server: { max_body_bytes: 65536 }
providers:
  openai:    { kind: openai,    api_base: "{mock:m}/v1", api_key: k }
  azure:     { kind: azure,     api_base: "{mock:m}", api_key: k, api_version: "2024-10-21" }
  anthropic: { kind: anthropic, api_base: "{mock:m}", api_key: k }
  gemini:    { kind: gemini,    api_base: "{mock:m}", api_key: k }
models:
  - name: smart
    targets: [ { provider: anthropic, model: claude-sonnet-4-20250514 } ]
"#;

pub struct TestGateway {
    pub url: String,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl TestGateway {
    /// Starts a gateway from `yaml`, in which `{mock:NAME}` is replaced by that mock's base URL.
    pub async fn start(yaml: &str, mocks: &[(&str, &MockServer)]) -> TestGateway {
        TestGateway::start_with(yaml, mocks, Stages::default()).await
    }

    /// A gateway on [`ALL_KINDS`], every provider at `m`.
    pub async fn with_every_kind(m: &MockServer) -> TestGateway {
        TestGateway::start(ALL_KINDS, &[("m", m)]).await
    }

    /// Like [`TestGateway::start`], with the pipeline's stages given.
    pub async fn start_with(
        yaml: &str,
        mocks: &[(&str, &MockServer)],
        stages: Stages,
    ) -> TestGateway {
        let mut text = yaml.to_owned();
        for (name, mock) in mocks {
            text = text.replace(&format!("{{mock:{name}}}"), &mock.url());
        }
        let env: BTreeMap<String, String> = BTreeMap::new();
        let mut config = Config::parse(&text, &env).expect("test config is valid");
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.workers = Some(1);
        config.server.max_body_bytes = 64 * 1024;
        let gateway = tollgate_gateway::build_gateway(&config, stages).unwrap();
        let RunningServer {
            addr,
            handle,
            server,
        } = tollgate_gateway::start(&config, gateway).unwrap();
        actix_web::rt::spawn(server);
        TestGateway {
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            handle,
        }
    }

    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .json(&body)
    }

    /// A chat completion's whole answer as text, whatever its status.
    pub async fn chat_text(&self, body: serde_json::Value) -> String {
        self.chat(body).send().await.unwrap().text().await.unwrap()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `/metrics`, polled until it contains `needle` (metering runs off the request path).
    pub async fn metrics_once_containing(&self, needle: &str) -> String {
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = self.get("/metrics").await.text().await.unwrap();
            if metrics.contains(needle) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        metrics
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub async fn mock(config: MockConfig) -> MockServer {
    MockServer::start(config).await.unwrap()
}

/// The `data:` payloads of an SSE body.
pub fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The JSON chunks of an SSE body, after checking that it ends in `[DONE]`.
pub fn chunks(body: &str) -> Vec<serde_json::Value> {
    let payloads = events(body);
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{body}"
    );
    payloads[..payloads.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

pub fn hello(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

/// The adapter for `kind`, configured as a deployment would be but pointing nowhere: for
/// driving translators directly, without a network.
pub fn adapter(kind: ProviderKind) -> Box<dyn ProviderAdapter> {
    let (api_base, api_version) = match kind {
        ProviderKind::Openai => ("http://127.0.0.1:1/v1", None),
        ProviderKind::Azure => ("https://x.openai.azure.com", Some("2024-10-21")),
        ProviderKind::Anthropic | ProviderKind::Gemini | ProviderKind::Bedrock => {
            ("http://127.0.0.1:1", None)
        }
        ProviderKind::Vertex => ("http://127.0.0.1:1", None),
        ProviderKind::Mistral => ("http://127.0.0.1:1", None),
        ProviderKind::Cohere => ("http://127.0.0.1:1", None),
    };
    let signs = kind == ProviderKind::Bedrock;
    adapter_for(&ProviderConfig {
        kind,
        api_base: api_base.into(),
        api_key: (!signs).then(|| Secret::new("test-key")),
        api_version: api_version.map(str::to_owned),
        responses_api: false,
        headers: BTreeMap::new(),
        stream_usage: true,
        aws: signs.then(test_aws_credentials),
        vertex: vertex_settings(kind),
    })
    .unwrap()
}

/// The AWS documentation's example key pair, which the mock's Bedrock accepts by default.
pub const AWS_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const AWS_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Credentials for a Bedrock adapter in `us-east-1`, with the documentation's example keys.
pub fn test_aws_credentials() -> AwsCredentials {
    AwsCredentials {
        region: "us-east-1".into(),
        access_key_id: AWS_ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(AWS_SECRET_ACCESS_KEY),
        session_token: None,
    }
}

/// A Vertex AI project for [`adapter`], with the static token `test-key`.
fn vertex_settings(kind: ProviderKind) -> Option<VertexConfig> {
    (kind == ProviderKind::Vertex).then(|| VertexConfig {
        project: "test-project".into(),
        location: "us-central1".into(),
        service_account: None,
        token_url: DEFAULT_TOKEN_URL.into(),
    })
}

/// A chat completion request as the gateway reads it from a client.
pub fn chat_body(body: &serde_json::Value) -> InboundBody {
    InboundBody::parse(
        Endpoint::ChatCompletions,
        Bytes::from(serde_json::to_vec(body).unwrap()),
    )
    .unwrap()
}
