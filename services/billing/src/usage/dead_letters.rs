//! Usage events the ledger refuses, set aside so that one bad record never stops shipping for
//! everyone else.
//!
//! The ledger stores batches whole. When the database refuses a batch for something in the
//! data (text it cannot hold, a value out of range), retrying cannot help, and before this the
//! shipper retried for ever while every organization's usage queued up behind the one record.
//! Now the batch is halved until the refused records stand alone; they are written here with
//! the database's reason, counted in `tollgate_usage_dead_letters_total`, and shipping goes on.
//! A failure that retrying can cure (the database unreachable, busy or shutting down) is not a
//! refusal: the batch stays in the journal or the stream and is tried again.
//!
//! Nothing here is dropped: `tollgate usage dead-letters` lists them, and `... replay` stores
//! them in the ledger once the cause is mended (or with `--repair`, their text made storable).

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::UsageRecord;
use super::ledger::Ledger;

/// Dead letters by kind: `refused` (the ledger refused the record) or `unreadable` (a stream
/// entry that is not a usage record at all). Registered in the process's default registry,
/// which `/metrics` serves beside the gateway's own.
static DEAD_LETTERS_TOTAL: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let counter = IntCounterVec::new(
        Opts::new(
            "tollgate_usage_dead_letters_total",
            "Usage events set aside because the ledger refused them or they could not be read.",
        ),
        &["kind"],
    )
    .ok()?;
    prometheus::register(Box::new(counter.clone())).ok()?;
    Some(counter)
});

fn count(kind: &str) {
    if let Some(counter) = &*DEAD_LETTERS_TOTAL {
        counter.with_label_values(&[kind]).inc();
    }
}

/// The longest reason kept: the database's message, which names the problem, not the data.
const MAX_REASON_CHARS: usize = 500;

/// The most of an unreadable stream entry that is kept.
const MAX_UNREADABLE_BYTES: usize = 64 * 1024;

/// Whether the database refused a statement because of the data it was given, so that the
/// same records would be refused again however often they are sent.
///
/// PostgreSQL says so by SQLSTATE class: 22 (data exception: NUL in text, a number out of
/// range), 23 (integrity: a constraint the record breaks) and 54 (program limit: a value too
/// large for an index row). SQLite by result code: TOOBIG, CONSTRAINT, MISMATCH and RANGE.
/// Anything else (connections, locks, a shutdown, a missing table during a deployment) is
/// treated as passing: setting aside every record of a healthy stream because of an outage or
/// a schema mistake would be far worse than waiting.
pub fn refused(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Encode(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite's extended result code; the primary code is its low byte.
                code.parse::<i32>()
                    .is_ok_and(|code| matches!(code & 0xff, 18 | 19 | 20 | 25))
            } else {
                // A SQLSTATE (often all digits, so never told apart by parsing).
                matches!(code.get(..2), Some("22" | "23" | "54"))
            }
        }
        _ => false,
    }
}

/// One set-aside event, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub org_id: Option<String>,
    pub reason: String,
    /// Unix milliseconds.
    pub set_aside_at: i64,
    /// When a replay stored it; `None` while it waits.
    pub replayed_at: Option<i64>,
    /// The record as JSON (or, for an unreadable stream entry, what the entry held).
    pub record: String,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Stored in the ledger (or found there already).
    pub stored: usize,
    /// Refused again; their reason is updated.
    pub refused: usize,
    /// Not a usage record at all: only an operator can tell what they were.
    pub unreadable: usize,
}

/// The `usage_dead_letters` table.
#[derive(Clone)]
pub struct DeadLetters {
    pool: AnyPool,
}

impl DeadLetters {
    pub fn new(pool: AnyPool) -> Self {
        // Both kinds show in `/metrics` from the start, at zero, so that an alert on their
        // increase needs no special case for a series that does not exist yet.
        if let Some(counter) = &*DEAD_LETTERS_TOTAL {
            for kind in ["refused", "unreadable"] {
                counter.with_label_values(&[kind]);
            }
        }
        DeadLetters { pool }
    }

    /// Sets `record` aside with the database's `reason`. Setting the same event aside twice
    /// (a batch shipped again) keeps the first.
    pub async fn set_aside(&self, record: &UsageRecord, reason: &str) -> Result<(), sqlx::Error> {
        // serde_json escapes every control character, so the JSON is storable text whatever
        // the record holds.
        let json = serde_json::to_string(record).unwrap_or_else(|_| "{}".to_owned());
        self.insert(&record.event_id, Some(&record.org_id), &json, reason)
            .await?;
        count("refused");
        tracing::warn!(
            event = %record.event_id,
            org = %record.org_id,
            reason = %clean_reason(reason),
            "usage event refused by the ledger; set aside as a dead letter"
        );
        Ok(())
    }

    /// Sets aside a usage stream entry that does not read as a usage record.
    pub async fn set_aside_unreadable(
        &self,
        entry_id: &str,
        raw: &[u8],
    ) -> Result<(), sqlx::Error> {
        let kept = &raw[..raw.len().min(MAX_UNREADABLE_BYTES)];
        let text = String::from_utf8_lossy(kept);
        // Kept as a JSON string so that any bytes the entry held are storable text.
        let json = serde_json::to_string(&text).unwrap_or_default();
        let id = format!("stream:{entry_id}");
        self.insert(&id, None, &json, "unreadable usage stream entry")
            .await?;
        count("unreadable");
        tracing::warn!(entry = %entry_id, "unreadable usage stream entry set aside as a dead letter");
        Ok(())
    }

    async fn insert(
        &self,
        id: &str,
        org: Option<&str>,
        record: &str,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO usage_dead_letters (id, org_id, record, reason, set_aside_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.to_owned())
        .bind(org.map(str::to_owned))
        .bind(record.to_owned())
        .bind(clean_reason(reason))
        .bind(tollgate_common::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The dead letters, oldest first: those waiting, or all with `include_replayed`.
    pub async fn list(
        &self,
        include_replayed: bool,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, sqlx::Error> {
        let sql = if include_replayed {
            "SELECT id, org_id, record, reason, set_aside_at, replayed_at FROM usage_dead_letters \
             ORDER BY set_aside_at, id LIMIT $1"
        } else {
            "SELECT id, org_id, record, reason, set_aside_at, replayed_at FROM usage_dead_letters \
             WHERE replayed_at IS NULL ORDER BY set_aside_at, id LIMIT $1"
        };
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    record: row.try_get("record")?,
                    reason: row.try_get("reason")?,
                    set_aside_at: row.try_get("set_aside_at")?,
                    replayed_at: row.try_get("replayed_at")?,
                })
            })
            .collect()
    }

    /// Stores waiting dead letters in the ledger: all of them, or those named in `ids`. With
    /// `repair`, text the ledger cannot hold is made storable first (see [`repair`]). One that
    /// is refused again keeps waiting with the new reason; a failure that is not a refusal
    /// stops the replay with an error, leaving the rest as they were.
    pub async fn replay(
        &self,
        ledger: &Ledger,
        ids: &[String],
        repair_text: bool,
    ) -> Result<ReplayReport, sqlx::Error> {
        let mut report = ReplayReport::default();
        let waiting = self.list(false, i64::MAX).await?;
        for letter in waiting {
            if !ids.is_empty() && !ids.contains(&letter.id) {
                continue;
            }
            let Ok(mut record) = serde_json::from_str::<UsageRecord>(&letter.record) else {
                report.unreadable += 1;
                continue;
            };
            if repair_text {
                repair(&mut record);
            }
            match ledger.record(std::slice::from_ref(&record)).await {
                Ok(_) => {
                    sqlx::query("UPDATE usage_dead_letters SET replayed_at = $1 WHERE id = $2")
                        .bind(tollgate_common::now_ms())
                        .bind(letter.id.clone())
                        .execute(&self.pool)
                        .await?;
                    report.stored += 1;
                }
                Err(err) if refused(&err) => {
                    sqlx::query("UPDATE usage_dead_letters SET reason = $1 WHERE id = $2")
                        .bind(clean_reason(&err.to_string()))
                        .bind(letter.id.clone())
                        .execute(&self.pool)
                        .await?;
                    report.refused += 1;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }
}

/// The longest text kept in a repaired record's free-text fields, in bytes: the gateway's own
/// limit for what clients send.
const REPAIRED_TEXT_BYTES: usize = 256;

/// Makes a record's free text storable: control characters removed, each field cut to
/// [`REPAIRED_TEXT_BYTES`] on a character boundary. Ids, numbers and times are left as they are.
pub fn repair(record: &mut UsageRecord) {
    let fix = |text: &mut String| {
        text.retain(|c| !c.is_control());
        if text.len() > REPAIRED_TEXT_BYTES {
            let mut end = REPAIRED_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    };
    fix(&mut record.request_id);
    fix(&mut record.requested_model);
    fix(&mut record.endpoint);
    fix(&mut record.cache);
    for text in [
        &mut record.end_user,
        &mut record.provider,
        &mut record.provider_model,
        &mut record.error,
    ]
    .into_iter()
    .flatten()
    {
        fix(text);
    }
    record.tags = std::mem::take(&mut record.tags)
        .into_iter()
        .map(|(mut name, mut value)| {
            fix(&mut name);
            fix(&mut value);
            (name, value)
        })
        .collect();
}

fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A record whose free text is full of what the dead-letter table must clean.
    fn record() -> UsageRecord {
        UsageRecord {
            end_user: Some(format!("u\u{0}{}", "é".repeat(300))),
            tags: BTreeMap::from([("a\u{1b}".to_owned(), "v\u{0}".to_owned())]),
            requested_model: "m\u{0}".into(),
            ..crate::usage::journal::tests::record(0)
        }
    }

    #[test]
    fn repair_removes_control_characters_and_cuts_on_a_character_boundary() {
        let mut r = record();
        repair(&mut r);
        assert_eq!(r.requested_model, "m");
        let user = r.end_user.unwrap_or_default();
        assert!(user.len() <= REPAIRED_TEXT_BYTES && user.starts_with("uéé"));
        assert!(!user.contains('\u{0}'));
        assert_eq!(r.tags.get("a").map(String::as_str), Some("v"));
    }

    #[test]
    fn a_dead_letter_is_storable_text_whatever_the_record_holds() {
        let json = serde_json::to_string(&record()).unwrap_or_default();
        assert!(!json.contains('\u{0}') && json.contains("\\u0000"));
        let back: UsageRecord = serde_json::from_str(&json).unwrap_or_else(|_| record());
        assert_eq!(back, record());
    }
}
