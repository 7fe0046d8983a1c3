//! An in-process harness: mock providers on real sockets and a real gateway server in front of
//! them, configured from YAML text.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::collections::BTreeMap;

use tollgate_common::config::Config;
use tollgate_gateway::{RunningServer, Stages};
use tollgate_mock_provider::{MockConfig, MockServer};

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

    /// `/metrics`, polled until it contains `needle` (metering runs off the request path).
    pub async fn metrics_once_containing(&self, needle: &str) -> String {
        let mut metrics = String::new();
        for _ in 0..100 {
            metrics = self
                .client
                .get(format!("{}/metrics", self.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
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

pub fn hello(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}
