//! The usage stream in Redis, for split deployments: gateways without a database ship their
//! journals into it, and billing processes read it through one consumer group, acknowledging
//! entries only after their rows are committed. An entry shipped twice (a gateway that crashed
//! between publishing and recording its position) reaches the ledger twice and is stored once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};

use super::{LedgerSink, UsageRecord, UsageSink};

/// The stream's key unless configured otherwise (`usage.stream`).
pub const DEFAULT_STREAM: &str = "tollgate:usage";
/// The billing services' consumer group.
pub const GROUP: &str = "billing";
/// Entries pending this long with a consumer that stopped are taken over.
const CLAIM_IDLE_MS: u64 = 60_000;

/// Publishes batches of events to the stream.
pub struct UsageStream {
    redis: ConnectionManager,
    stream: String,
}

impl UsageStream {
    pub fn new(redis: ConnectionManager, stream: String) -> Self {
        UsageStream { redis, stream }
    }
}

#[async_trait]
impl UsageSink for UsageStream {
    async fn ship(&self, records: &[UsageRecord]) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for record in records {
            let json = serde_json::to_string(record).map_err(|e| e.to_string())?;
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("r")
                .arg(json)
                .ignore();
        }
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("usage stream: {e}"))
    }
}

/// How long one read waits for new entries.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// Reads the stream as `consumer` of the billing group and ships each batch to `sink`, for
/// ever. Uses its own connection: a blocking read would hold up a shared one.
pub async fn consume(
    client: redis::Client,
    stream: String,
    consumer: String,
    sink: Arc<LedgerSink>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match consume_until_error(&client, &stream, &consumer, &sink).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(%err, "usage stream consumer failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn consume_until_error(
    client: &redis::Client,
    stream: &str,
    consumer: &str,
    sink: &LedgerSink,
) -> Result<(), String> {
    // A blocking read waits up to READ_BLOCK for entries, longer than the client's default
    // response timeout (500 ms): without a longer one, an idle stream reads as a failure.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(READ_BLOCK + Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    create_group(&mut conn, stream).await?;
    // First what this consumer read but did not acknowledge before it stopped, then new entries.
    let mut reading_pending = true;
    let mut last_claim = tokio::time::Instant::now();
    loop {
        if last_claim.elapsed() > Duration::from_secs(30) {
            last_claim = tokio::time::Instant::now();
            let claimed = claim_abandoned(&mut conn, stream, consumer).await?;
            if !claimed.is_empty() {
                handle(&mut conn, stream, sink, claimed).await?;
            }
        }
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(500)
            .block(READ_BLOCK.as_millis() as usize);
        let id = if reading_pending { "0" } else { ">" };
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[stream], &[id], &options)
            .await
            .map_err(|e| e.to_string())?;
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if entries.is_empty() {
            reading_pending = false;
            continue;
        }
        handle(&mut conn, stream, sink, entries).await?;
    }
}

async fn create_group(conn: &mut MultiplexedConnection, stream: &str) -> Result<(), String> {
    let created: Result<(), redis::RedisError> =
        conn.xgroup_create_mkstream(stream, GROUP, "0").await;
    match created {
        Ok(()) => Ok(()),
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}

/// Takes over entries that another consumer read and has not acknowledged for a minute.
async fn claim_abandoned(
    conn: &mut MultiplexedConnection,
    stream: &str,
    consumer: &str,
) -> Result<Vec<StreamId>, String> {
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(CLAIM_IDLE_MS)
        .arg("0-0")
        .arg("COUNT")
        .arg(500)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply.claimed)
}

/// Ships the entries' records, then acknowledges and deletes them: with one consumer group,
/// an acknowledged entry is needed by no one, and the stream stays as short as the backlog.
/// An entry that is not a usage record is set aside as a dead letter first, so that it is
/// neither retried for ever nor lost.
async fn handle(
    conn: &mut MultiplexedConnection,
    stream: &str,
    sink: &LedgerSink,
    entries: Vec<StreamId>,
) -> Result<(), String> {
    let mut records = Vec::with_capacity(entries.len());
    for entry in &entries {
        let bytes = match entry.map.get("r") {
            Some(Value::BulkString(bytes)) => bytes.as_slice(),
            _ => &[],
        };
        match serde_json::from_slice::<UsageRecord>(bytes) {
            Ok(record) => records.push(record),
            Err(_) => sink
                .dead_letters()
                .set_aside_unreadable(&entry.id, bytes)
                .await
                .map_err(|e| format!("dead letters: {e}"))?,
        }
    }
    sink.ship(&records).await?;
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let _: i64 = conn
        .xack(stream, GROUP, &ids)
        .await
        .map_err(|e| e.to_string())?;
    let _: i64 = conn.xdel(stream, &ids).await.map_err(|e| e.to_string())?;
    Ok(())
}
