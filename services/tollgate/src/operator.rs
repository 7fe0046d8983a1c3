//! Operator commands that work on storage directly: migrations, organizations, keys and
//! billing.

use std::io::Write;

use anyhow::Context;
use tollgate_auth::service::KeySpec;
use tollgate_auth::{Actor, startup};
use tollgate_billing::payments::accounts::Accounts;
use tollgate_billing::payments::outbox::Outbox;
use tollgate_billing::payments::pricing::Plan;
use tollgate_billing::payments::reports::{UsageReporter, month_of};
use tollgate_billing::payments::stripe::StripeApi;
use tollgate_billing::usage::{DeadLetters, Ledger};
use tollgate_common::{Config, OrgId};

/// `tollgate migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "migrations applied to {}",
        describe_database(config)
    )?;
    Ok(())
}

/// The database URL without its password, for messages.
fn describe_database(config: &Config) -> String {
    let url = config.storage.effective_database_url();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url,
            }
        }
        _ => url,
    }
}

/// `tollgate usage dead-letters [--all] [--limit N]`: one JSON object a line.
pub async fn list_dead_letters(config: &Config, all: bool, limit: i64) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    let letters = DeadLetters::new(store.pool().clone())
        .list(all, limit.max(1))
        .await;
    store.close().await;
    let mut out = std::io::stdout().lock();
    for letter in letters? {
        writeln!(out, "{}", serde_json::to_string(&letter)?)?;
    }
    Ok(())
}

/// `tollgate usage replay [--repair] [ID...]`.
pub async fn replay_dead_letters(
    config: &Config,
    ids: &[String],
    repair: bool,
) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    let ledger = Ledger::new(store.pool().clone());
    let report = DeadLetters::new(store.pool().clone())
        .replay(&ledger, ids, repair)
        .await;
    store.close().await;
    let report = report?;
    writeln!(
        std::io::stdout(),
        "stored {}, refused again {}, unreadable {}",
        report.stored,
        report.refused,
        report.unreadable
    )?;
    Ok(())
}

/// `tollgate orgs create --name NAME`.
pub async fn create_org(config: &Config, name: &str) -> anyhow::Result<()> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "--name must be 1 to 100 characters"
    );
    let store = startup::open_store(config).await?;
    let (org, team) = store.create_organization(name, "cli").await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "organization {}\nname         {}\ndefault team {}",
        org.id,
        org.name,
        team.id
    )?;
    Ok(())
}

/// `tollgate orgs list`.
pub async fn list_orgs(config: &Config) -> anyhow::Result<()> {
    let store = startup::open_store(config).await?;
    let orgs = store.all_organizations().await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    for org in orgs {
        writeln!(out, "{}  {}", org.id, org.name)?;
    }
    Ok(())
}

/// What `tollgate keys create` takes.
#[derive(clap::Args)]
pub struct KeyOptions {
    #[arg(long)]
    pub org: String,
    /// The organization's first team when absent.
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Models the key may use: names or globs, comma-separated; all when absent.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    #[arg(long)]
    pub rpm: Option<i64>,
    #[arg(long)]
    pub tpm: Option<i64>,
    /// Budget in USD, e.g. 25.00.
    #[arg(long)]
    pub budget: Option<String>,
    #[arg(long)]
    pub expires_in_days: Option<u32>,
}

fn org_id(text: &str) -> anyhow::Result<OrgId> {
    text.parse()
        .with_context(|| format!("--org: `{text}` is not an organization id"))
}

/// `tollgate keys create`: prints the key, which is shown only this once.
pub async fn create_key(config: &Config, options: KeyOptions) -> anyhow::Result<()> {
    let org = org_id(&options.org)?;
    let runtime = startup::start(config, true).await?;
    let service = &runtime
        .http
        .context("the auth service is not available in this process")?
        .service;
    anyhow::ensure!(
        service.store().organization(org).await?.is_some(),
        "--org: no organization {org}"
    );
    let spec = KeySpec {
        name: options.name,
        team_id: options.team,
        allowed_models: (!options.models.is_empty()).then_some(options.models),
        expires_at: options
            .expires_in_days
            .map(|days| tollgate_auth::store::now_ms() + i64::from(days) * 86_400_000),
        rpm_limit: options.rpm,
        tpm_limit: options.tpm,
        budget_usd: options.budget.map(serde_json::Value::String),
        ..KeySpec::default()
    };
    let issued = service
        .create_key(&Actor::Operator, org, spec)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", issued.key)?;
    let _ = writeln!(
        std::io::stderr(),
        "key id {} in team {}; store the key now, it cannot be shown again",
        issued.view.key.id,
        issued.view.key.team_id
    );
    Ok(())
}

/// `tollgate keys list --org ORG`.
pub async fn list_keys(config: &Config, org: &str) -> anyhow::Result<()> {
    let org = org_id(org)?;
    let store = startup::open_store(config).await?;
    let keys = store.keys(org, None).await?;
    store.close().await;
    let now = tollgate_auth::store::now_ms();
    let mut out = std::io::stdout().lock();
    for key in keys {
        writeln!(
            out,
            "{}  {}…  {:?}  {}",
            key.id,
            key.display_prefix,
            key.status(now),
            key.name
        )?;
    }
    Ok(())
}

/// `tollgate keys revoke --org ORG KEY_ID`: takes effect on running gateways at once when
/// they share Redis, otherwise within their key cache TTL.
pub async fn revoke_key(config: &Config, org: &str, key: &str) -> anyhow::Result<()> {
    let org = org_id(org)?;
    let runtime = startup::start(config, true).await?;
    let service = &runtime
        .http
        .context("the auth service is not available in this process")?
        .service;
    let revoked = service
        .revoke_key(&Actor::Operator, org, key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    writeln!(std::io::stdout(), "revoked {}", revoked.key.id)?;
    Ok(())
}

/// `tollgate billing report [--at TIME]`.
pub async fn report_usage(config: &Config, at: Option<&str>) -> anyhow::Result<()> {
    let stripe = config
        .billing
        .stripe
        .as_ref()
        .context("billing.stripe: not configured, so nothing is reported")?;
    let now = match at {
        Some(text) => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--at {text}: expected RFC 3339"))?
                .unix_timestamp()
                * 1000
        }
        None => tollgate_common::now_ms(),
    };
    let store = startup::open_store(config).await?;
    let reporter = UsageReporter::new(store.pool().clone(), &config.billing);
    let run = reporter.report(now).await?;
    let api = StripeApi::new(stripe)?;
    let accounts = Accounts::new(store.pool().clone());
    let delivery = Outbox::new(store.pool().clone())
        .deliver_due(&api, &accounts, tollgate_common::now_ms())
        .await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "reports written {}\nmicro-USD metered {}\nStripe calls sent {}, retrying {}, given up {}",
        run.reports,
        run.metered_micros,
        delivery.sent,
        delivery.retrying,
        delivery.given_up
    )?;
    Ok(())
}

/// A month as `YYYY-MM`: its first instant and the next month's, Unix ms.
fn month(period: &str) -> anyhow::Result<(i64, i64)> {
    let (year, month) = period
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u8>().ok()?)))
        .context("--period: expected YYYY-MM")?;
    let month = time::Month::try_from(month).context("--period: the month is 01 to 12")?;
    let first = time::Date::from_calendar_date(year, month, 1).context("--period")?;
    Ok(month_of(
        first.midnight().assume_utc().unix_timestamp() * 1000,
    ))
}

fn usd(pico: i64) -> String {
    tollgate_common::Picodollars(pico).to_string()
}

/// `tollgate billing reconcile --period YYYY-MM`.
pub async fn reconcile(config: &Config, period: &str) -> anyhow::Result<()> {
    let stripe = config
        .billing
        .stripe
        .as_ref()
        .context("billing.stripe: not configured, so there is nothing to reconcile")?;
    let (from, to) = month(period)?;
    let store = startup::open_store(config).await?;
    let api = StripeApi::new(stripe)?;
    let report =
        tollgate_billing::payments::reconcile::reconcile(store.pool(), &api, from, to).await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "organizations {}\nhours compared {}\nmeter reports still queued {}, given up {}\ndifferences {}",
        report.organizations,
        report.hours,
        report.queued,
        report.given_up,
        report.differences.len()
    )?;
    for d in &report.differences {
        writeln!(
            out,
            "  {}  hour {}  ours {} micro-USD  stripe {} micro-USD",
            d.org_id, d.hour_start, d.ours, d.stripe
        )?;
    }
    Ok(())
}

/// `tollgate billing revenue --period YYYY-MM`.
pub async fn revenue(config: &Config, period: &str) -> anyhow::Result<()> {
    let (from, to) = month(period)?;
    let store = startup::open_store(config).await?;
    let rows = tollgate_billing::payments::reconcile::revenue(store.pool(), from, to).await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36}  {:>14}  {:>14}  {:>14}  {:>12}  {:>12}  name",
        "organization", "revenue", "provider cost", "margin", "free", "credit"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<36}  {:>14}  {:>14}  {:>14}  {:>12}  {:>12}  {}",
            row.org_id,
            usd(row.billable),
            usd(row.provider_cost),
            usd(row.margin()),
            usd(row.free),
            usd(row.credit),
            row.org_name
        )?;
    }
    Ok(())
}

/// `tollgate billing plan --org ID payg|byok`.
pub async fn set_plan(config: &Config, org: &str, plan: &str) -> anyhow::Result<()> {
    let plan = Plan::parse(plan).context("the plan is payg or byok")?;
    anyhow::ensure!(
        plan != Plan::BringYourOwnKey || config.billing.bring_your_own_key.enabled,
        "billing.bring_your_own_key.enabled: must be true to put organizations on byok"
    );
    let org = org_id(org)?;
    let store = startup::open_store(config).await?;
    anyhow::ensure!(
        store.organization(org).await?.is_some(),
        "no organization {org}"
    );
    Accounts::new(store.pool().clone())
        .set_plan(&org.to_string(), plan)
        .await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "organization {org} is on {}",
        plan.as_str()
    )?;
    Ok(())
}
