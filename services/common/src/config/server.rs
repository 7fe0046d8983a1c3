//! The `server` section: where Tollgate listens, and how large and how slow a request body
//! may be.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigProblem, problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest body of a model call (`/v1/*`), in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest body of the admin API (`/graphql`) and of the auth endpoints (which take at
    /// most 64 KiB whatever this says), in bytes; larger ones get 413. Smaller than
    /// `max_body_bytes` because anyone may send them, before any credential is checked.
    pub max_admin_body_bytes: usize,
    /// How long a request body may take to arrive, whole; a slower one gets 408.
    pub body_read_timeout_ms: u64,
    /// HTTP worker threads; the number of cores when absent.
    pub workers: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 16 * 1024 * 1024,
            max_admin_body_bytes: 1024 * 1024,
            body_read_timeout_ms: 30_000,
            workers: None,
        }
    }
}

impl ServerConfig {
    pub fn body_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_read_timeout_ms)
    }
}

pub(super) fn validate_server(server: &ServerConfig, problems: &mut Vec<ConfigProblem>) {
    for (field, value) in [
        ("server.max_body_bytes", server.max_body_bytes as u64),
        (
            "server.max_admin_body_bytes",
            server.max_admin_body_bytes as u64,
        ),
        ("server.body_read_timeout_ms", server.body_read_timeout_ms),
    ] {
        if value == 0 {
            problems.push(problem(field, "must be greater than 0"));
        }
    }
    if server.workers == Some(0) {
        problems.push(problem("server.workers", "must be at least 1"));
    }
}
