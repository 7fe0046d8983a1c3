//! The gateway's view of a separate auth service: key records fetched over HTTP from its
//! internal endpoints, behind the same [`crate::KeyCache`] as in one process.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use tollgate_common::{KeyId, Secret};

use crate::http::SERVICE_TOKEN_HEADER;
use crate::store::VerifiedKey;
use crate::verify::KeySource;

/// Key records from a remote auth service.
pub struct HttpKeySource {
    client: reqwest::Client,
    base: String,
    token: Secret,
}

#[derive(Deserialize)]
struct LookupAnswer {
    key: Option<VerifiedKey>,
}

impl HttpKeySource {
    /// `base` is the auth service's root URL (`http://auth:8080`).
    pub fn new(base: &str, token: Secret) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(HttpKeySource {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn lookup(&self, key_hash: &str) -> Result<Option<VerifiedKey>, String> {
        let response = self
            .client
            .post(format!("{}/auth/internal/keys/lookup", self.base))
            .header(SERVICE_TOKEN_HEADER, self.token.expose())
            .json(&json!({"key_hash": key_hash}))
            .send()
            .await
            .map_err(|e| format!("auth service unreachable: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("auth service answered {}", response.status()));
        }
        let answer: LookupAnswer = response
            .json()
            .await
            .map_err(|e| format!("auth service answer unreadable: {e}"))?;
        Ok(answer.key.map(|mut verified| {
            verified.key.key_hash = key_hash.to_owned();
            verified
        }))
    }

    async fn touch(&self, used: Vec<(KeyId, i64)>) -> Result<(), String> {
        let response = self
            .client
            .post(format!("{}/auth/internal/keys/touch", self.base))
            .header(SERVICE_TOKEN_HEADER, self.token.expose())
            .json(&json!({"used": used}))
            .send()
            .await
            .map_err(|e| format!("auth service unreachable: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("auth service answered {}", response.status()))
        }
    }
}
