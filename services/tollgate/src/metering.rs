//! The gateway's meter stage backed by the billing service's usage journal, and the
//! background work that moves usage from the journal to the ledger.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tollgate_billing::BudgetAlerts;
use tollgate_billing::usage::ledger::Retention;
use tollgate_billing::usage::{
    Ledger, LedgerSink, Shipper, UsageJournal, UsageRecord, UsageSink, UsageStream,
    bounded_actions, most_severe, stream,
};
use tollgate_common::outbound::OutboundPolicy;
use tollgate_common::{Config, Picodollars};
use tollgate_gateway::pipeline::Meter;
use tollgate_gateway::pipeline::usage::{UsageEvent, Written};

/// Journals every usage event of an organization's request; acknowledges once they are
/// written.
pub struct JournalMeter {
    journal: UsageJournal,
}

impl Meter for JournalMeter {
    fn record(&self, events: Vec<UsageEvent>, written: Option<Written>) {
        // A request no organization made (refused before its key was known) bills no one.
        let records: Vec<UsageRecord> = events.into_iter().filter_map(usage_record).collect();
        if records.is_empty() {
            if let Some(written) = written {
                let _ = written.send(true);
            }
            return;
        }
        self.journal.append_all(records, written);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The ledger's view of a gateway usage event; `None` without an organization.
fn usage_record(event: UsageEvent) -> Option<UsageRecord> {
    let key = &event.key;
    let org = key.org_id?;
    let time_ms = event
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some(UsageRecord {
        time_ms,
        org_id: org.to_string(),
        team_id: key.team_id.map(|id| id.to_string()),
        key_id: key.key_id.map(|id| id.to_string()),
        user_id: key.user_id.map(|id| id.to_string()),
        endpoint: event.endpoint.operation().to_owned(),
        input_tokens: event.usage.input_tokens,
        output_tokens: event.usage.output_tokens,
        cached_tokens: event.usage.cached_input_tokens,
        usage_estimated: event.usage_estimated,
        cost_pico: event.cost.and_then(Picodollars::from_usd).map(|p| p.0),
        reserved_pico: Picodollars::from_usd(event.budget_reserved).map_or(0, |p| p.0),
        saved_pico: event.saved.and_then(Picodollars::from_usd).map(|p| p.0),
        latency_ms: millis(event.latency),
        ttft_ms: event.time_to_first_token.map(millis),
        status: event.status,
        error: event.error.map(str::to_owned),
        cache: event.cache.to_owned(),
        attempts: event.attempts,
        stream: event.stream,
        event_id: event.event_id,
        request_id: event.request_id,
        end_user: event.end_user,
        tags: event.tags,
        requested_model: event.requested_model,
        provider: event.provider,
        provider_model: event.provider_model,
        // The outcome is decided over every action, before the list is bounded.
        guardrail: most_severe(&event.guardrails).map(str::to_owned),
        guardrail_actions: bounded_actions(event.guardrails),
    })
}

/// Where this process's usage goes, and what it runs in the background to get it there.
pub struct UsagePipeline {
    pub meter: Arc<JournalMeter>,
}

/// What the billing side of a process has to work with.
pub struct BillingParts {
    /// The database, when this process has it.
    pub pool: Option<sqlx::AnyPool>,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub redis_client: Option<redis::Client>,
}

/// Opens the journal, replays what a previous run left unshipped, and starts shipping: to the
/// ledger when this process has the database, else to the Redis usage stream.
pub async fn start_usage(config: &Config, parts: &BillingParts) -> anyhow::Result<UsagePipeline> {
    let dir = config.usage.effective_journal_dir(&config.storage);
    let (journal, reader) = UsageJournal::open(&dir, config.usage.sync)
        .with_context(|| "usage.journal_dir".to_owned())?;
    let sink: Arc<dyn UsageSink> = match (&parts.pool, &parts.redis) {
        (Some(pool), _) => Arc::new(ledger_sink(pool.clone(), config)?),
        (None, Some(redis)) => {
            Arc::new(UsageStream::new(redis.clone(), config.usage.stream.clone()))
        }
        (None, None) => anyhow::bail!(
            "redis.url: a gateway without the database (--only gateway) ships usage through Redis"
        ),
    };
    let mut shipper = Shipper::new(reader, sink);
    match shipper.catch_up().await {
        Ok(0) => {}
        Ok(replayed) => tracing::info!(replayed, "shipped usage events left by the previous run"),
        Err(err) => tracing::warn!(%err, "cannot ship earlier usage yet; it stays in the journal"),
    }
    shipper.spawn();
    Ok(UsagePipeline {
        meter: Arc::new(JournalMeter { journal }),
    })
}

fn ledger_sink(pool: sqlx::AnyPool, config: &Config) -> anyhow::Result<LedgerSink> {
    let outbound = OutboundPolicy::new(&config.outbound);
    let alerts = BudgetAlerts::new(pool.clone(), &outbound).map_err(|e| anyhow::anyhow!(e))?;
    Ok(LedgerSink::new(Ledger::new(pool), Some(Arc::new(alerts))))
}

/// The billing service's background work, in the process that has the database: alert
/// delivery, ledger retention, and (with Redis) consuming the usage stream of split gateways.
pub fn start_billing(config: &Config, parts: &BillingParts) -> anyhow::Result<()> {
    let Some(pool) = parts.pool.clone() else {
        return Ok(());
    };
    let outbound = OutboundPolicy::new(&config.outbound);
    let alerts =
        Arc::new(BudgetAlerts::new(pool.clone(), &outbound).map_err(|e| anyhow::anyhow!(e))?);
    let delivering = alerts.clone();
    tokio::spawn(async move { delivering.deliver().await });
    let retention = Retention {
        events_days: config.usage.retention.events_days,
        hourly_days: config.usage.retention.hourly_days,
    };
    let ledger = Ledger::new(pool.clone());
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match ledger.prune(retention, tollgate_common::now_ms()).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "pruned usage rows past their retention"),
                Err(err) => tracing::warn!(%err, "cannot prune the usage ledger"),
            }
        }
    });
    if let Some(client) = parts.redis_client.clone() {
        let sink = Arc::new(LedgerSink::new(Ledger::new(pool), Some(alerts)));
        let (stream, consumer) = (config.usage.stream.clone(), consumer_name());
        tokio::spawn(async move { stream::consume(client, stream, consumer, sink).await });
    }
    Ok(())
}

/// This process's name in the usage stream's consumer group: host and process id.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "tollgate".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use rust_decimal::Decimal;
    use tollgate_common::{EntityKind, GuardrailAction, KeyContext, OrgId, Taken, TokenUsage};
    use tollgate_gateway::openai::Endpoint;

    use super::*;

    /// A request of an organization refused by `guardrails`' last action.
    fn event(guardrails: Vec<GuardrailAction>) -> UsageEvent {
        UsageEvent {
            request_id: "r1".into(),
            event_id: "e1".into(),
            time: SystemTime::now(),
            key: Arc::new(KeyContext {
                org_id: Some(OrgId::generate()),
                ..KeyContext::default()
            }),
            end_user: None,
            tags: BTreeMap::new(),
            endpoint: Endpoint::ChatCompletions,
            requested_model: "gpt-4o".into(),
            provider: None,
            provider_model: None,
            usage: TokenUsage::default(),
            usage_estimated: false,
            cost: None,
            latency: Duration::from_millis(3),
            time_to_first_token: None,
            status: 400,
            error: Some("guardrail_violation"),
            attempts: 0,
            stream: false,
            cache: "off",
            budget_reserved: Decimal::ZERO,
            saved: None,
            guardrails,
        }
    }

    fn action(rule: String, taken: Taken) -> GuardrailAction {
        GuardrailAction {
            policy: "organization".into(),
            rule,
            taken,
            entities: Vec::new(),
        }
    }

    #[test]
    fn the_record_carries_the_outcome_and_the_bounded_actions() {
        let none = usage_record(event(Vec::new())).unwrap();
        assert_eq!((none.guardrail, none.guardrail_actions), (None, Vec::new()));

        let mut actions = vec![GuardrailAction {
            entities: vec![EntityKind::Email],
            ..action("input.pii".into(), Taken::Redacted)
        }];
        actions.extend((0..40).map(|n| action(format!("input.deny_regex[{n}]"), Taken::Flagged)));
        actions.push(action("input.deny_keywords".into(), Taken::Blocked));
        let record = usage_record(event(actions)).unwrap();
        assert_eq!(record.guardrail.as_deref(), Some("blocked"));
        let kept = &record.guardrail_actions;
        assert_eq!(kept.len(), tollgate_billing::usage::MAX_GUARDRAIL_ACTIONS);
        assert_eq!(kept[0].entities, [EntityKind::Email]);
        assert_eq!(kept.last().unwrap().taken, Taken::Blocked);
    }
}
