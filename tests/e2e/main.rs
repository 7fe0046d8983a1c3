//! End-to-end: the real `tollgate` binary, started as a process against mock providers, driven
//! by real clients (the official OpenAI Python SDK, plain HTTP) and its own CLI.

// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;
use tollgate_mock_provider::{MockConfig, MockServer};
use tollgate_mock_stripe::MockStripe;

mod admin;
mod budget_bound;
mod cache;
mod dashboard;
mod deployment;
mod guardrail_policies;
mod guardrails;
mod hostile_bodies;
mod hostile_strings;
mod ingress;
mod media;
mod metering;
mod outbound;
mod payments;

const TOLLGATE: &str = env!("CARGO_BIN_EXE_tollgate");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tollgate-e2e-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `tollgate serve` process, killed when dropped.
struct Gateway {
    child: Child,
    url: String,
}

impl Gateway {
    /// `tollgate serve --config FILE`.
    fn start(config: &Path, extra_env: &[(&str, &str)]) -> Gateway {
        Gateway::start_on(config, free_port(), extra_env)
    }

    /// `tollgate serve --config FILE` on a port chosen beforehand, for configs that name the
    /// gateway's own address (such as `billing.public_url`).
    fn start_on(config: &Path, port: u16, extra_env: &[(&str, &str)]) -> Gateway {
        let mut command = Command::new(TOLLGATE);
        command.args(["serve", "--config"]).arg(config);
        Gateway::spawn_on(command, port, extra_env)
    }

    fn spawn(command: Command, extra_env: &[(&str, &str)]) -> Gateway {
        Gateway::spawn_on(command, free_port(), extra_env)
    }

    fn spawn_on(mut command: Command, port: u16, extra_env: &[(&str, &str)]) -> Gateway {
        // Each process gets its own embedded database unless the test shares one.
        command
            .env("TOLLGATE_DATA_DIR", scratch_dir("data"))
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_LOG", "warn")
            // Every test signs up from 127.0.0.1, and with Redis the count outlives the process.
            .env("TOLLGATE_SIGNUPS_PER_IP", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("tollgate starts");
        let gateway = Gateway {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        gateway.wait_ready();
        gateway
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut stream) =
                std::net::TcpStream::connect(self.url.trim_start_matches("http://"))
            {
                let _ = stream.write_all(
                    b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                let mut answer = String::new();
                let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tollgate did not become ready at {}", self.url);
    }
}

/// What sign-up hands a new customer.
struct Tenant {
    key: String,
    key_id: String,
    access_token: String,
}

/// Signs up over HTTP, as a customer would.
async fn signup(base: &str, email: &str) -> Tenant {
    let res = reqwest::Client::new()
        .post(format!("{base}/auth/signup"))
        .json(&serde_json::json!({"email": email, "password": "a long enough passphrase", "organization": "E2E Inc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    Tenant {
        key: body["api_key"]["key"].as_str().unwrap().to_owned(),
        key_id: body["api_key"]["id"].as_str().unwrap().to_owned(),
        access_token: body["access_token"].as_str().unwrap().to_owned(),
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_for(mock: &MockServer) -> String {
    format!(
        r#"
providers:
  openai:    {{ kind: openai,    api_base: "{url}/v1", api_key: "${{E2E_OPENAI_KEY}}" }}
  anthropic: {{ kind: anthropic, api_base: "{url}", api_key: sk-ant-e2e }}
  gemini:    {{ kind: gemini,    api_base: "{url}", api_key: gemini-e2e }}
models:
  - name: smart
    targets:
      - {{ provider: anthropic, model: claude-sonnet-4-20250514 }}
      - {{ provider: openai, model: gpt-4o }}
  - name: flash
    targets: [ {{ provider: gemini, model: gemini-2.5-flash }} ]
  - name: embed
    targets: [ {{ provider: openai, model: text-embedding-3-small }} ]
"#,
        url = mock.url()
    )
}

/// The provider key [`config_for`] reads from the environment.
const PROVIDER_KEY: (&str, &str) = ("E2E_OPENAI_KEY", "sk-openai-e2e");

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Writes `tollgate.yaml` in `dir`: the providers and models of [`config_for`], then `extra`
/// (whole YAML lines); its path.
fn write_config(dir: &Path, mock: &MockServer, extra: &str) -> PathBuf {
    let config = dir.join("tollgate.yaml");
    std::fs::write(&config, format!("{}{extra}", config_for(mock))).unwrap();
    config
}

/// A gateway config with model `smart` on the mock provider, billing through `stripe`, and
/// `billing` settings added (YAML lines indented under `billing:`).
fn billed_config(mock: &MockServer, stripe: &MockStripe, billing: &str) -> String {
    format!(
        r#"
providers:
  openai: {{ kind: openai, api_base: "{url}/v1", api_key: sk-billed }}
models:
  - name: smart
    targets: [ {{ provider: openai, model: gpt-4o }} ]
billing:
  public_url: "http://127.0.0.1:9"{billing}
  stripe:
    api_base: "{stripe_url}"
    secret_key: "{key}"
    webhook_secret: "{secret}"
"#,
        url = mock.url(),
        stripe_url = stripe.url(),
        key = stripe.api_key(),
        secret = stripe.webhook_secret(),
    )
}

/// Writes `tollgate.yaml` in `dir` from [`billed_config`]; its path.
fn write_billed_config(
    dir: &Path,
    mock: &MockServer,
    stripe: &MockStripe,
    billing: &str,
) -> PathBuf {
    let config = dir.join("tollgate.yaml");
    std::fs::write(&config, billed_config(mock, stripe, billing)).unwrap();
    config
}

/// The environment of gateway processes that share one PostgreSQL database and Redis.
fn replica_env(database: &str) -> [(&'static str, &str); 3] {
    [
        PROVIDER_KEY,
        ("TOLLGATE_DATABASE_URL", database),
        ("TOLLGATE_REDIS_URL", REDIS_URL),
    ]
}

/// Deletes `key` from the local Redis: a usage stream a test named for itself outlives it.
async fn delete_redis_key(key: &str) {
    let mut redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// The ledger rows of the requests whose ids start with `prefix`: (request id, cost, reserved)
/// in picodollars, one entry per row.
async fn usage_rows(database: &str, prefix: &str) -> Vec<(String, i64, i64)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database).await.unwrap();
    let rows = sqlx::query(
        "SELECT request_id, COALESCE(cost_pico, 0) AS cost, reserved_pico FROM usage_events \
         WHERE request_id LIKE $1",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                r.try_get("request_id").unwrap(),
                r.try_get("cost").unwrap(),
                r.try_get("reserved_pico").unwrap(),
            )
        })
        .collect()
}

/// Polls the ledger until it holds at least `count` rows for `prefix`, for up to 20 s: usage is
/// shipped off the request path, so it lands some time after the answers.
async fn wait_for_usage_rows(
    database: &str,
    prefix: &str,
    count: usize,
) -> Vec<(String, i64, i64)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = usage_rows(database, prefix).await;
        if rows.len() >= count || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GraphQL request to the admin API, with an access token or as a stranger; the JSON answer
/// (GraphQL answers 200 with `errors` for a refusal).
async fn graphql(gateway: &str, token: Option<&str>, query: &str) -> serde_json::Value {
    let request = reqwest::Client::new().post(format!("{gateway}/graphql"));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let res = request
        .json(&serde_json::json!({"query": query}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Gives the organization of `access_token` a monthly budget of `limit_usd`.
async fn set_monthly_budget(gateway: &str, access_token: &str, limit_usd: &str) {
    let res = reqwest::Client::new()
        .post(format!("{gateway}/auth/budgets"))
        .bearer_auth(access_token)
        .json(&serde_json::json!({"scope": "organization", "period": "monthly", "limit_usd": limit_usd}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_through_every_provider() {
    let mock = MockServer::start(MockConfig {
        chunks: 8,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let config = write_config(&scratch_dir("sdk"), &mock, "");
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "sdk@example.com").await;

    let mut args = vec![format!("{}/v1", gateway.url)];
    for arg in [
        "openai/gpt-4o",
        "smart",
        "flash",
        "gemini/gemini-2.5-pro",
        "--embed",
        "embed",
        "--embed",
        "gemini/gemini-embedding-001",
        "--api-key",
        &tenant.key,
    ] {
        args.push(arg.to_owned());
    }
    let output = run_python("openai_sdk.py", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ok chat smart") && stdout.contains("ok errors"),
        "{stdout}"
    );

    // The keys reached the providers the way each expects them, from config and environment.
    let stats = mock.stats();
    assert!(
        stats
            .by_route
            .get("anthropic.messages")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(stats.by_route.get("gemini.stream").copied().unwrap_or(0) > 0);
    assert!(stats.by_route.get("gemini.embed").copied().unwrap_or(0) > 0);
    drop(gateway);
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_config_reads_providers_from_the_environment() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut command = Command::new(TOLLGATE);
    command
        .arg("serve")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("TOLLGATE_CONFIG");
    let base = format!("{}/v1", mock.url());
    let gateway = Gateway::spawn(
        command,
        &[("OPENAI_API_KEY", "sk-env"), ("OPENAI_BASE_URL", &base)],
    );
    let tenant = signup(&gateway.url, "env@example.com").await;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(&tenant.key)
        .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(mock.stats().last_headers["authorization"], "Bearer sk-env");
    drop(gateway);
    mock.stop().await;
}

#[test]
fn check_config_accepts_the_example_and_names_every_problem() {
    let example = repo_root().join("config.example.yaml");
    let ok = Command::new(TOLLGATE)
        .args(["check-config"])
        .arg(&example)
        .env("OPENAI_API_KEY", "a")
        .env("ANTHROPIC_API_KEY", "b")
        .env("GEMINI_API_KEY", "c")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let dir = scratch_dir("check");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "providers:\n  a: { kind: openai, api_key: \"${NOT_SET_ANYWHERE}\" }\nmodels:\n  - name: m\n    strategy: random\n    targets: [ { provider: b, model: x } ]\n",
    )
    .unwrap();
    let out = Command::new(TOLLGATE)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("providers.a.api_key: environment variable NOT_SET_ANYWHERE is not set"),
        "{text}"
    );
    assert!(text.contains("models[0].strategy"), "{text}");
}

/// Reads HTTP requests on a local port and keeps their bodies: a stand-in OTLP collector.
fn otlp_collector() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let mut length = 0usize;
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut request_line).unwrap();
            loop {
                line.clear();
                std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send((request_line, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_endpoint_with_genai_attributes() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (collector, received) = otlp_collector();
    let config = write_config(&scratch_dir("otlp"), &mock, "");
    let gateway = Gateway::start(
        &config,
        &[
            PROVIDER_KEY,
            ("TOLLGATE_OTLP_ENDPOINT", &collector),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let tenant = signup(&gateway.url, "otlp@example.com").await;
    assert_eq!(chat_status(&gateway.url, &tenant.key).await, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok((line, body)) = received.recv_timeout(Duration::from_millis(200)) {
            assert!(line.starts_with("POST /v1/traces"), "{line}");
            seen.extend(body);
            let text = String::from_utf8_lossy(&seen);
            if text.contains("gen_ai.upstream") && text.contains("gen_ai.usage.input_tokens") {
                break;
            }
        }
    }
    // OTLP/protobuf carries attribute keys and span names as plain strings.
    let text = String::from_utf8_lossy(&seen);
    for expected in [
        "chat smart",
        "gen_ai.request.model",
        "gen_ai.system",
        "anthropic",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.upstream",
    ] {
        assert!(text.contains(expected), "{expected} not exported: {text:?}");
    }
    assert!(!text.contains("sk-ant-e2e"), "a provider key was exported");
    assert!(!text.contains(&tenant.key), "a virtual key was exported");
    drop(gateway);
    mock.stop().await;
}

/// A fresh PostgreSQL database on the local server, for processes that share one.
fn fresh_postgres_database() -> String {
    let admin = std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!(
        "tollgate_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let status = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "cannot create database {name}");
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// Runs `tests/e2e/python/{script}` with `args`; fails the test if an SDK is missing.
async fn run_python(script: &str, args: Vec<String>) -> std::process::Output {
    let script = repo_root().join("tests/e2e/python").join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(script).args(args).output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'openai'")
            && !stderr.contains("No module named 'anthropic'"),
        "the OpenAI or Anthropic Python SDK is missing: pip install openai anthropic"
    );
    output
}

/// `tollgate serve --only SERVICE --config FILE`, for [`Gateway::spawn`].
fn serve_only(service: &str, config: &Path) -> Command {
    let mut command = Command::new(TOLLGATE);
    command
        .args(["serve", "--only", service, "--config"])
        .arg(config);
    command
}

/// One chat completion with the OpenAI Python SDK: `Ok(())`, or `Err("status 401 code")`.
async fn sdk_call(gateway: &str, key: &str, model: &str) -> Result<(), String> {
    let args = vec![format!("{gateway}/v1"), key.to_owned(), model.to_owned()];
    let output = run_python("key_call.py", args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok(()),
        Some(3) => Err(stdout),
        _ => panic!(
            "SDK call failed unexpectedly: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

async fn chat_status(gateway: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{gateway}/v1/chat/completions"))
        .bearer_auth(key)
        .json(
            &serde_json::json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls a chat call with `key` until it is refused or `within` has passed: the last status and
/// how long it took.
async fn wait_until_refused(gateway: &str, key: &str, within: Duration) -> (u16, Duration) {
    let started = Instant::now();
    loop {
        let status = chat_status(gateway, key).await;
        if status == 401 || started.elapsed() >= within {
            return (status, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The issue's scenario: sign up, use the key with the SDK, rotate it (the old key works for
/// the grace period, then stops), revoke the new one and see a second gateway process,
/// sharing PostgreSQL and Redis, refuse it within a second although it had it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_revoke_across_gateway_processes() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    // A long cache TTL: only the Redis change feed can make the second process notice.
    let config = write_config(
        &scratch_dir("replicas"),
        &mock,
        "auth:\n  key_cache_ttl_secs: 300\n",
    );
    let database = fresh_postgres_database();
    let shared = replica_env(&database);
    let first = Gateway::start(&config, &shared);
    let second = Gateway::start(&config, &shared);

    let tenant = signup(&first.url, "rotate@example.com").await;
    let neighbour = signup(&second.url, "neighbour@example.com").await;
    sdk_call(&first.url, &tenant.key, "smart").await.unwrap();
    sdk_call(&second.url, &tenant.key, "smart").await.unwrap();

    // rotate with a 6 s grace period (each SDK call costs about a second of Python start-up)
    let client = reqwest::Client::new();
    let rotated: serde_json::Value = client
        .post(format!("{}/auth/keys/{}/rotate", first.url, tenant.key_id))
        .bearer_auth(&tenant.access_token)
        .json(&serde_json::json!({"grace_seconds": 6}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    let rotated_at = Instant::now();
    assert_ne!(new_key, tenant.key);

    // during the grace period both keys work, on both processes
    sdk_call(&second.url, &tenant.key, "smart").await.unwrap();
    assert_eq!(chat_status(&first.url, &tenant.key).await, 200);
    assert_eq!(chat_status(&first.url, &new_key).await, 200);
    assert_eq!(chat_status(&second.url, &new_key).await, 200);
    let grace = Duration::from_secs(6);
    assert!(
        rotated_at.elapsed() < grace,
        "the checks outlasted the grace period"
    );

    // after it, the old key is refused everywhere; the new one still works
    tokio::time::sleep(grace.saturating_sub(rotated_at.elapsed()) + Duration::from_millis(200))
        .await;
    let refused = sdk_call(&second.url, &tenant.key, "smart")
        .await
        .unwrap_err();
    assert_eq!(refused, "status 401 expired_api_key");
    assert_eq!(chat_status(&first.url, &tenant.key).await, 401);
    sdk_call(&second.url, &new_key, "smart").await.unwrap();

    // revoke the new key through the first process; the second has it cached
    let revoked = client
        .post(format!("{}/auth/keys/{new_id}/revoke", first.url))
        .bearer_auth(&tenant.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, took) = wait_until_refused(&second.url, &new_key, Duration::from_secs(1)).await;
    assert_eq!(status, 401, "still accepted {took:?} after revocation");
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    eprintln!("revocation reached the second gateway process in {took:?}");
    let refused = sdk_call(&second.url, &new_key, "smart").await.unwrap_err();
    assert_eq!(refused, "status 401 revoked_api_key");

    // another organization can neither see nor touch these keys, and is not touched by them
    let foreign = client
        .post(format!(
            "{}/auth/keys/{}/revoke",
            second.url, neighbour.key_id
        ))
        .bearer_auth(&tenant.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let foreign = client
        .get(format!("{}/auth/keys/{new_id}", first.url))
        .bearer_auth(&neighbour.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    assert_eq!(chat_status(&first.url, &neighbour.key).await, 200);

    drop((first, second));
    mock.stop().await;
}

/// Operators create organizations and keys from the command line; a revocation from the CLI
/// reaches a running gateway that shares the embedded database within its cache TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_cli_creates_and_revokes_keys() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let config = write_config(
        &scratch_dir("cli"),
        &mock,
        "auth:\n  key_cache_ttl_secs: 1\n",
    );
    let data = scratch_dir("cli-data");
    let cli = |args: &[&str]| {
        let output = Command::new(TOLLGATE)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("TOLLGATE_DATA_DIR", &data)
            .env(PROVIDER_KEY.0, PROVIDER_KEY.1)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tollgate {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(cli(&["migrate"]).contains("migrations applied"));
    let created = cli(&["orgs", "create", "--name", "Operators' Org"]);
    let org = created
        .lines()
        .find_map(|l| l.strip_prefix("organization "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(cli(&["orgs", "list"]).contains("Operators' Org"));
    let key = cli(&[
        "keys",
        "create",
        "--org",
        &org,
        "--name",
        "batch",
        "--models",
        "smart,embed",
    ])
    .trim()
    .to_owned();
    assert!(key.starts_with("tg-"), "{key}");

    let data_dir = data.to_str().unwrap().to_owned();
    let gateway = Gateway::start(&config, &[PROVIDER_KEY, ("TOLLGATE_DATA_DIR", &data_dir)]);
    sdk_call(&gateway.url, &key, "smart").await.unwrap();
    // the key may use only the models it lists
    assert_eq!(
        sdk_call(&gateway.url, &key, "flash").await.unwrap_err(),
        "status 403 model_not_allowed"
    );
    let models: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/models", gateway.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["embed", "smart"]);

    let listed = cli(&["keys", "list", "--org", &org]);
    let key_id = listed.split_whitespace().next().unwrap().to_owned();
    assert!(!listed.contains(&key), "a key secret was listed");
    assert!(cli(&["keys", "revoke", "--org", &org, &key_id]).contains("revoked"));
    // no Redis here: the change arrives when the gateway's 1 s cache entry expires
    let (status, took) = wait_until_refused(&gateway.url, &key, Duration::from_secs(3)).await;
    assert_eq!(status, 401, "still accepted {took:?} after revocation");

    drop(gateway);
    mock.stop().await;
}

/// A split deployment: the auth service in one process, a gateway in another verifying keys
/// over HTTP with a service token; a revocation reaches the gateway through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_gateway_verifies_keys_through_the_auth_service() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let data = scratch_dir("split-data");
    let data = data.to_str().unwrap();
    let auth_config = scratch_dir("split").join("auth.yaml");
    std::fs::write(&auth_config, "auth:\n  service_token: split-secret-token\n").unwrap();
    let auth = Gateway::spawn(
        serve_only("auth", &auth_config),
        &[
            ("TOLLGATE_DATA_DIR", data),
            ("TOLLGATE_REDIS_URL", REDIS_URL),
        ],
    );

    let gateway_config = scratch_dir("split").join("gateway.yaml");
    std::fs::write(
        &gateway_config,
        format!(
            "{}auth:\n  service_url: \"{}\"\n  service_token: split-secret-token\n  key_cache_ttl_secs: 300\n",
            config_for(&mock),
            auth.url
        ),
    )
    .unwrap();
    let gateway = Gateway::spawn(
        serve_only("gateway", &gateway_config),
        &[PROVIDER_KEY, ("TOLLGATE_REDIS_URL", REDIS_URL)],
    );
    // the gateway process serves no /auth, the auth process no /v1
    let client = reqwest::Client::new();
    let status = client
        .get(format!("{}/auth/me", gateway.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);

    let tenant = signup(&auth.url, "split@example.com").await;
    sdk_call(&gateway.url, &tenant.key, "smart").await.unwrap();
    assert_eq!(
        chat_status(
            &gateway.url,
            "tg-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        )
        .await,
        401
    );

    // the internal endpoint refuses callers without the service token
    let refused = client
        .post(format!("{}/auth/internal/keys/lookup", auth.url))
        .json(&serde_json::json!({"key_hash": "00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let malformed = client
        .post(format!("{}/auth/internal/keys/lookup", auth.url))
        .header("x-tollgate-service-token", "split-secret-token")
        .json(&serde_json::json!({"key_hash": "abc\u{0}' OR 1=1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let revoked = client
        .post(format!("{}/auth/keys/{}/revoke", auth.url, tenant.key_id))
        .bearer_auth(&tenant.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, took) =
        wait_until_refused(&gateway.url, &tenant.key, Duration::from_secs(1)).await;
    assert_eq!(status, 401, "still accepted {took:?} after revocation");

    drop((gateway, auth));
    mock.stop().await;
}

/// Rate limits are exact across gateway processes sharing Redis: over a minute of traffic
/// spread across three processes, a key limited to 60 requests per minute gets exactly 60
/// answers, and every answer carries OpenAI's rate-limit headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_traffic_over_three_processes_gets_exactly_the_limit() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let config = write_config(
        &scratch_dir("limits"),
        &mock,
        "limits:\n  default: { rpm: 60, tpm: 1000000 }\n",
    );
    let database = fresh_postgres_database();
    let shared = replica_env(&database);
    let gateways = [
        Gateway::start(&config, &shared),
        Gateway::start(&config, &shared),
        Gateway::start(&config, &shared),
    ];
    let tenant = signup(&gateways[0].url, "limits@example.com").await;
    let client = reqwest::Client::new();
    let (mut answered, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    let mut i = 0;
    // four requests a second for 58 s: all inside one window
    while started.elapsed() < Duration::from_secs(58) {
        let res = client
            .post(format!("{}/v1/chat/completions", gateways[i % 3].url))
            .bearer_auth(&tenant.key)
            .json(&serde_json::json!({"model": "smart", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        i += 1;
        let header = |name: &str| {
            res.headers()
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(header("x-ratelimit-limit-requests"), "60");
        assert_eq!(header("x-ratelimit-limit-tokens"), "1000000");
        header("x-ratelimit-reset-requests");
        header("x-ratelimit-reset-tokens");
        header("x-ratelimit-remaining-tokens");
        match res.status().as_u16() {
            200 => {
                answered += 1;
                assert_eq!(
                    header("x-ratelimit-remaining-requests"),
                    (60 - answered).to_string()
                );
            }
            429 => {
                refused += 1;
                let retry: u64 = header("retry-after").parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["error"]["type"], "rate_limit_exceeded");
                if refused == 1 {
                    // The SDK sees OpenAI's rate-limit error. Asked now, while the window is
                    // surely full: after the loop, a slow start of Python could reach the next.
                    let sdk = sdk_call(&gateways[1].url, &tenant.key, "smart")
                        .await
                        .unwrap_err();
                    assert_eq!(sdk, "status 429 rate_limit_exceeded");
                }
            }
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(answered, 60, "{refused} refused");
    assert!(refused > 100, "only {refused} refused");
    drop(gateways);
    mock.stop().await;
}

/// Team limits are shared by the team's keys, overall and per model, and a change made through
/// the API applies to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_limits_are_shared_by_the_teams_keys() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let config = write_config(&scratch_dir("team-limits"), &mock, "");
    let gateway = Gateway::start(&config, &[PROVIDER_KEY]);
    let tenant = signup(&gateway.url, "team-limits@example.com").await;
    let client = reqwest::Client::new();
    let me: serde_json::Value = client
        .get(format!("{}/auth/teams", gateway.url))
        .bearer_auth(&tenant.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let team = me["data"][0]["id"].as_str().unwrap().to_owned();
    let set = client
        .put(format!("{}/auth/teams/{team}/limits", gateway.url))
        .bearer_auth(&tenant.access_token)
        .json(&serde_json::json!({"rpm": 3, "models": {"flash": {"rpm": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let second: serde_json::Value = client
        .post(format!("{}/auth/keys", gateway.url))
        .bearer_auth(&tenant.access_token)
        .json(&serde_json::json!({"name": "second", "team_id": team}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = second["key"].as_str().unwrap().to_owned();

    let call = |key: String, model: &'static str| {
        let client = client.clone();
        let url = format!("{}/v1/chat/completions", gateway.url);
        async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let remaining = res
                .headers()
                .get("x-ratelimit-remaining-requests")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = res.json().await.unwrap();
            (status, remaining, body)
        }
    };
    let (status, remaining, _) = call(tenant.key.clone(), "flash").await;
    assert_eq!(
        (status, remaining.as_deref()),
        (200, Some("0")),
        "the tightest limit is reported"
    );
    let (status, _, body) = call(second.clone(), "flash").await;
    assert_eq!(status, 429);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("team on `flash`"), "{message}");
    assert_eq!(call(tenant.key.clone(), "smart").await.0, 200);
    assert_eq!(call(second.clone(), "smart").await.0, 200);
    let (status, _, body) = call(tenant.key.clone(), "smart").await;
    assert_eq!(status, 429, "the team's 3 requests per minute are used up");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("this key's team: 3 per minute"),
        "{message}"
    );
    drop(gateway);
    mock.stop().await;
}
