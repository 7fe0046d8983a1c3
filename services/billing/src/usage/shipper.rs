//! Moves journaled usage events to their sink in batches, remembering how far it got.

use std::sync::Arc;
use std::time::Duration;

use super::UsageSink;
use super::journal::{JournalReader, Position};

/// Events per shipped batch: the ledger's cost per batch (a transaction, the rollups, the
/// alert check, the journal position) is spread over this many.
const BATCH: usize = 2048;

/// How long events gather before a partial batch is shipped.
const LINGER: Duration = Duration::from_millis(50);

/// The longest pause between attempts while the sink is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Shipper {
    /// `None` only while a blocking read has it.
    reader: Option<JournalReader>,
    sink: Arc<dyn UsageSink>,
}

impl Shipper {
    pub fn new(reader: JournalReader, sink: Arc<dyn UsageSink>) -> Self {
        Shipper {
            reader: Some(reader),
            sink,
        }
    }

    /// Ships everything journaled before this call: at start-up, what a previous run left.
    /// Returns how many events were shipped.
    pub async fn catch_up(&mut self) -> Result<usize, String> {
        let target = self.reader()?.head();
        let mut shipped = 0;
        while self.reader()?.position() < target {
            let (count, moved) = self.ship_batch().await?;
            shipped += count;
            if !moved {
                break;
            }
        }
        Ok(shipped)
    }

    /// Ships for ever, in the background, retrying a failing sink with backoff.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.ship_batch().await {
                    // A full batch: there is a backlog, go on at once.
                    Ok((shipped, true)) if shipped >= BATCH => backoff = Duration::from_millis(100),
                    Ok((_, moved)) => {
                        backoff = Duration::from_millis(100);
                        if !moved {
                            let Some(reader) = &self.reader else { return };
                            tokio::select! {
                                () = reader.appended() => {}
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                        // Let events gather: one batch of many costs the ledger far less than
                        // many of one, and the journal already keeps them safe meanwhile.
                        tokio::time::sleep(LINGER).await;
                    }
                    Err(err) => {
                        tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "usage shipping failed; events stay in the journal");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        })
    }

    fn reader(&self) -> Result<&JournalReader, String> {
        self.reader
            .as_ref()
            .ok_or_else(|| "the journal reader was lost".to_owned())
    }

    /// Reads, ships and commits one batch. Returns the number of events and whether the
    /// position moved.
    async fn ship_batch(&mut self) -> Result<(usize, bool), String> {
        let before = self.reader()?.position();
        let (records, after): (_, Position) = match self.reader()?.take_written(BATCH) {
            Some(written) => written,
            None => self
                .on_reader(|reader| reader.read(BATCH))
                .await?
                .map_err(|e| format!("journal read: {e}"))?,
        };
        if after == before {
            return Ok((0, false));
        }
        if !records.is_empty() {
            self.sink.ship(&records).await?;
        }
        self.on_reader(move |reader| reader.commit(after))
            .await?
            .map_err(|e| format!("journal position: {e}"))?;
        Ok((records.len(), true))
    }

    /// Runs `work` on the reader in a blocking thread: it reads and writes files.
    async fn on_reader<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut JournalReader) -> T + Send + 'static,
    ) -> Result<T, String> {
        let mut reader = self
            .reader
            .take()
            .ok_or_else(|| "the journal reader was lost".to_owned())?;
        let (reader, done) = tokio::task::spawn_blocking(move || {
            let done = work(&mut reader);
            (reader, done)
        })
        .await
        .map_err(|e| format!("journal task: {e}"))?;
        self.reader = Some(reader);
        Ok(done)
    }
}
