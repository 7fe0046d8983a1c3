//! Usage events from the gateway to the ledger, never lost and never counted twice.
//!
//! ```text
//! gateway ──append──▶ journal (local, append-only) ──shipper──▶ sink
//!                        │ acknowledged before the answer's       ├─ ledger (this process has the database)
//!                        │ last byte leaves                       └─ Redis stream ──consumer group──▶ ledger
//! ```
//!
//! The [`journal`] is written before a client sees the end of its answer, so an answer a client
//! received complete always has its event on disk. The [`shipper`] moves events on in batches
//! and remembers how far it got; after a crash it ships again from there, and the [`ledger`]
//! ignores events it already holds (by event id), so a re-shipped batch is harmless. A record
//! the ledger refuses (text the database cannot hold) is set aside in the [`dead_letters`], so
//! that it never holds up anyone else's usage.

pub mod dead_letters;
pub mod journal;
pub mod ledger;
mod record;
pub mod shipper;
pub mod stream;

use async_trait::async_trait;

pub use dead_letters::DeadLetters;
pub use journal::{JournalError, UsageJournal};
pub use ledger::{Ledger, LedgerSink};
pub use record::{
    MAX_GUARDRAIL_ACTIONS, MAX_GUARDRAIL_NAME_CHARS, UsageRecord, bounded_actions, most_severe,
};
pub use shipper::Shipper;
pub use stream::UsageStream;

/// Where shipped events go. Shipping a batch again must be harmless: sinks are idempotent by
/// [`UsageRecord::event_id`] (the ledger), or feed something that is (the stream).
#[async_trait]
pub trait UsageSink: Send + Sync {
    async fn ship(&self, records: &[UsageRecord]) -> Result<(), String>;
}
