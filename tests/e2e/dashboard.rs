//! The web dashboard in a real browser: headless Chromium driven by Playwright
//! (`tests/browser/dashboard.mjs`) through a team lead's first day, against the real binary,
//! the mock provider and the local Stripe stand-in (a card added through its Checkout page).
//! Needs Node.js, `npm ci --prefix tests/browser` and Chromium
//! (`/usr/bin/chromium`, or `CHROMIUM`); `.ci/run` installs them.

use std::process::Command;

use tollgate_mock_provider::{MockConfig, MockServer};
use tollgate_mock_stripe::{MockStripe, MockStripeConfig};

use crate::{Gateway, free_port, repo_root, scratch_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_lead_signs_up_spends_hits_the_budget_adds_a_card_and_revokes_in_the_browser() {
    let browser_dir = repo_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "Playwright is missing: npm ci --prefix tests/browser"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: apt-get install chromium"
    );

    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let stripe = MockStripe::start(MockStripeConfig::default())
        .await
        .unwrap();
    // Stripe Checkout sends the browser back to `billing.public_url`: the gateway's own
    // address, so its port is chosen before it starts.
    let port = free_port();
    let dir = scratch_dir("dashboard");
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
providers:
  openai: {{ kind: openai, api_base: "{url}/v1", api_key: sk-dashboard }}
models:
  - name: smart
    targets: [ {{ provider: openai, model: gpt-4o }} ]
billing:
  public_url: "http://127.0.0.1:{port}"
  free_tier: {{ monthly_usd: "5" }}
  bring_your_own_key:
    enabled: true
    per_request_usd: "0.0005"
    encryption_key: "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="
  stripe: {{ api_base: "{stripe}", secret_key: "{key}", webhook_secret: "{secret}" }}
"#,
            url = mock.url(),
            stripe = stripe.url(),
            key = stripe.api_key(),
            secret = stripe.webhook_secret(),
        ),
    )
    .unwrap();
    let gateway = Gateway::start_on(&config, port, &[]);
    stripe.set_webhook_url(&format!("{}/billing/stripe/webhook", gateway.url));
    let screenshots = std::env::var("SCREENSHOT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| browser_dir.join("screenshots"));
    let url = gateway.url.clone();
    let stripe_url = stripe.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir.join("dashboard.mjs"))
            .env("TOLLGATE_URL", url)
            .env("STRIPE_URL", stripe_url)
            .env("SCREENSHOT_DIR", screenshots)
            .env("CHROMIUM", chromium)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser journey failed:\n{stdout}\n{stderr}"
    );
    drop(gateway);
    drop(stripe);
}
