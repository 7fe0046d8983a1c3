//! The usage journal: an append-only log of usage events on local disk, one JSON object per
//! line, in numbered segments.
//!
//! Request paths hand it events (a server worker's gathered batch) and wait for the
//! acknowledgement before an answer's last byte leaves. A `write` that returned is in the
//! operating system's page cache and survives the process being killed, so by default the
//! worker writes its batch itself: one `write` of a few kilobytes into memory, with no disk wait,
//! costs less than handing the batch to another thread and being woken again, which on a busy
//! machine was the larger part of what metering added to each answer's latency. With `sync`
//! every batch is also flushed to the device before it is acknowledged, surviving a power cut;
//! that does wait for the disk, so then one thread writes and flushes whatever has queued up
//! (group commit) and the workers only hand over.
//!
//! A fresh segment is started at every start-up, every [`SEGMENT_BYTES`] and after a failed
//! write, so a line torn by a crash can only be the last of an old segment, where the reader
//! skips it (its request was never acknowledged, so its client never saw a complete answer).
//! The reader's progress is a position file written atomically after each shipped batch;
//! segments wholly behind it are deleted.
//!
//! The batches just written are also kept in memory, up to [`UNREAD_EVENTS`], and the reader
//! takes them from there when they are next in line: reading back and parsing what this
//! process itself wrote cost the shipper more than shipping it. The files stay the record:
//! whatever is not in memory (a previous run's events, a backlog past the limit, a batch whose
//! shipping failed and is retried) is read from them.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, oneshot};

use super::UsageRecord;

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// With `sync`, a flush stops taking more queued batches once it holds this many events.
const BATCH: usize = 1024;

/// The largest read the shipper makes at a time.
const READ_BYTES: u64 = 4 * 1024 * 1024;

/// About the size of one journal line: a read for `n` events asks for `n` times this.
const LINE_BYTES: u64 = 512;

/// The most events kept in memory for the reader (each some hundreds of bytes); past this,
/// the reader reads them back from the files.
const UNREAD_EVENTS: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the usage journal directory {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "the usage journal {path} is in use by another Tollgate process; give each process its \
         own data directory (storage.data_dir or TOLLGATE_DATA_DIR)"
    )]
    Locked { path: String },
}

/// Whether an event reached the journal, sent to whoever waits on it.
pub type Written = oneshot::Sender<bool>;

/// Events appended together, acknowledged together (with `sync`, through the flushing thread).
struct Entry {
    records: Vec<UsageRecord>,
    written: Option<Written>,
}

/// A point in the journal: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A batch as it was written, kept for the reader.
struct WrittenBatch {
    /// Where its first line starts.
    start: Position,
    /// Where its last line ends.
    end: Position,
    records: Vec<UsageRecord>,
}

/// The batches written and not yet taken by the reader, oldest first.
#[derive(Default)]
struct Unread {
    batches: VecDeque<WrittenBatch>,
    events: usize,
}

impl Unread {
    fn pop(&mut self) -> Option<WrittenBatch> {
        let batch = self.batches.pop_front()?;
        self.events -= batch.records.len();
        Some(batch)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each guarded value is replaced in one step, so one left by a panicking thread is whole.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the writers and the reader share.
struct Shared {
    dir: PathBuf,
    /// The segment file being written; one batch at a time.
    segment: Mutex<Segment>,
    /// The segment being written and how many bytes of it are written: where the reader stops.
    head: Mutex<Position>,
    /// Batches written and not yet taken by the reader, in the order of the files.
    unread: Mutex<Unread>,
    /// Woken after every batch written.
    appended: Notify,
    /// Held for the life of the journal: one process per directory.
    _lock: File,
}

impl Shared {
    fn head(&self) -> Position {
        *lock(&self.head)
    }

    /// Appends `records` serialized as `bytes` (whole lines); true once they are in the
    /// journal (and on the device with `sync`).
    fn write(&self, bytes: &[u8], records: Vec<UsageRecord>, sync: bool) -> bool {
        let mut segment = lock(&self.segment);
        let start = match segment.write(&self.dir, bytes, sync) {
            Ok(start) => start,
            Err(err) => {
                tracing::error!(%err, events = records.len(), "cannot write the usage journal");
                return false;
            }
        };
        // Kept before the head moves past it, and under the segment lock: in file order.
        let mut unread = lock(&self.unread);
        if unread.events + records.len() <= UNREAD_EVENTS {
            unread.events += records.len();
            unread.batches.push_back(WrittenBatch {
                start,
                end: segment.head,
                records,
            });
        }
        drop(unread);
        *lock(&self.head) = segment.head;
        drop(segment);
        self.appended.notify_one();
        true
    }
}

/// The writing end, cheap to clone.
#[derive(Clone)]
pub struct UsageJournal {
    shared: Arc<Shared>,
    /// With `sync`: the thread that writes and flushes. Without, callers write themselves.
    flusher: Option<mpsc::Sender<Entry>>,
}

impl UsageJournal {
    /// Opens the journal in `dir` (created if needed), starting a new segment, and returns the
    /// writer with the reader that ships from where the last run stopped.
    pub fn open(dir: &Path, sync: bool) -> Result<(UsageJournal, JournalReader), JournalError> {
        let io_error = |source| JournalError::Io {
            path: dir.display().to_string(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_error)?;
        let lock = File::create(dir.join("LOCK")).map_err(io_error)?;
        if lock.try_lock().is_err() {
            return Err(JournalError::Locked {
                path: dir.display().to_string(),
            });
        }
        let segments = segments(dir).map_err(io_error)?;
        let head = Position {
            segment: segments.last().map_or(1, |last| last + 1),
            offset: 0,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, head.segment))
            .map_err(io_error)?;
        let start = read_position(dir).map_err(io_error)?.unwrap_or(Position {
            segment: segments.first().copied().unwrap_or(head.segment),
            offset: 0,
        });
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            segment: Mutex::new(Segment { file, head }),
            head: Mutex::new(head),
            unread: Mutex::new(Unread::default()),
            appended: Notify::new(),
            _lock: lock,
        });
        let flusher = if sync {
            let (entries, receiver) = mpsc::channel();
            let flushing = shared.clone();
            std::thread::Builder::new()
                .name("usage-journal".into())
                .spawn(move || flush(&flushing, receiver))
                .map_err(io_error)?;
            Some(entries)
        } else {
            None
        };
        let reader = JournalReader {
            shared: shared.clone(),
            next: start,
        };
        Ok((UsageJournal { shared, flusher }, reader))
    }

    /// Appends `records`; `written` hears once whether all of them reached the journal.
    /// Without `sync` this writes before it returns (into the page cache: no disk wait).
    pub fn append_all(&self, records: Vec<UsageRecord>, written: Option<Written>) {
        let Some(flusher) = &self.flusher else {
            let mut buffer = Vec::with_capacity(records.len() * 512);
            serialize(&records, &mut buffer);
            let ok = self.shared.write(&buffer, records, false);
            if let Some(written) = written {
                let _ = written.send(ok);
            }
            return;
        };
        if let Err(mpsc::SendError(entry)) = flusher.send(Entry { records, written }) {
            tracing::error!(
                events = entry.records.len(),
                "the usage journal has stopped; events were not recorded"
            );
            if let Some(written) = entry.written {
                let _ = written.send(false);
            }
        }
    }
}

/// One JSON line per record.
fn serialize<'a>(records: impl IntoIterator<Item = &'a UsageRecord>, buffer: &mut Vec<u8>) {
    for record in records {
        // A record always serializes: plain strings and numbers.
        if serde_json::to_writer(&mut *buffer, record).is_ok() {
            buffer.push(b'\n');
        }
    }
}

/// The flushing thread of a `sync` journal: writes and flushes whatever has queued up as one
/// batch, then acknowledges each entry.
fn flush(shared: &Shared, entries: mpsc::Receiver<Entry>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut buffer = Vec::with_capacity(256 * 1024);
    while let Ok(first) = entries.recv() {
        let mut events = first.records.len();
        batch.push(first);
        while events < BATCH
            && let Ok(next) = entries.try_recv()
        {
            events += next.records.len();
            batch.push(next);
        }
        buffer.clear();
        serialize(batch.iter().flat_map(|entry| &entry.records), &mut buffer);
        let mut records = Vec::with_capacity(events);
        for entry in &mut batch {
            records.append(&mut entry.records);
        }
        let ok = shared.write(&buffer, records, true);
        for entry in batch.drain(..) {
            if let Some(written) = entry.written {
                let _ = written.send(ok);
            }
        }
    }
}

/// The segment file being appended to.
struct Segment {
    file: File,
    head: Position,
}

impl Segment {
    /// Appends `bytes`; returns where they start. `head` stays the exact end of the segment's
    /// good lines: after a failure the next write starts a new segment.
    fn write(&mut self, dir: &Path, bytes: &[u8], sync: bool) -> io::Result<Position> {
        if self.head.offset >= SEGMENT_BYTES {
            self.head = Position {
                segment: self.head.segment + 1,
                offset: 0,
            };
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(dir, self.head.segment))?;
        }
        if let Err(err) = self.file.write_all(bytes) {
            // Part of the batch may be on disk: start a fresh segment so that the torn line is
            // the last of its segment, where the reader expects it.
            self.head.offset = SEGMENT_BYTES;
            return Err(err);
        }
        if sync && let Err(err) = self.file.sync_data() {
            self.head.offset = SEGMENT_BYTES;
            return Err(err);
        }
        let start = self.head;
        self.head.offset += bytes.len() as u64;
        Ok(start)
    }
}

/// The reading end: what has not been shipped yet.
pub struct JournalReader {
    shared: Arc<Shared>,
    next: Position,
}

impl JournalReader {
    /// Where the next read starts.
    pub fn position(&self) -> Position {
        self.next
    }

    /// Where the writer is: everything before it is readable.
    pub fn head(&self) -> Position {
        self.shared.head()
    }

    /// Waits until something is appended (or returns at once if something already was).
    pub async fn appended(&self) {
        self.shared.appended.notified().await;
    }

    /// The events after the current position as this process wrote them, straight from
    /// memory, and the position after them: whole batches, up to `max` events unless the first
    /// batch alone is larger. `None` when the next events are not in memory; [`Self::read`]
    /// reads them from the files. Never blocks.
    pub fn take_written(&self, max: usize) -> Option<(Vec<UsageRecord>, Position)> {
        let mut unread = lock(&self.shared.unread);
        // Batches a read of the files has gone past.
        while unread.batches.front()?.end <= self.next {
            unread.pop();
        }
        if unread.batches.front()?.start != self.next {
            return None;
        }
        let mut records = Vec::new();
        let mut at = self.next;
        while let Some(batch) = unread.batches.front()
            && batch.start == at
            && (records.is_empty() || records.len() + batch.records.len() <= max)
        {
            let batch = unread.pop()?;
            at = batch.end;
            if records.is_empty() {
                records = batch.records;
            } else {
                records.extend(batch.records);
            }
        }
        Some((records, at))
    }

    /// Up to `max` events after the current position, and the position after them: from
    /// memory when they are there ([`Self::take_written`]), else from the files. Lines that do
    /// not parse are skipped with a warning; the torn tail of an old segment is skipped.
    /// Blocking file reads: call from a blocking thread.
    pub fn read(&self, max: usize) -> io::Result<(Vec<UsageRecord>, Position)> {
        if let Some(written) = self.take_written(max) {
            return Ok(written);
        }
        let mut at = self.next;
        let mut records = Vec::new();
        // Enough for `max` lines of the usual size: reading far more only to drop it cost
        // more than parsing what was kept.
        let want = (max as u64)
            .saturating_mul(LINE_BYTES)
            .clamp(64 * 1024, READ_BYTES);
        loop {
            let head = self.shared.head();
            if at.segment > head.segment || (at == head) {
                return Ok((records, at));
            }
            let end = if at.segment == head.segment {
                head.offset
            } else {
                u64::MAX
            };
            let path = segment_path(&self.shared.dir, at.segment);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound && at.segment < head.segment => {
                    at = Position {
                        segment: at.segment + 1,
                        offset: 0,
                    };
                    continue;
                }
                Err(err) => return Err(err),
            };
            file.seek(SeekFrom::Start(at.offset))?;
            let mut bytes = Vec::new();
            file.take(want.min(end - at.offset))
                .read_to_end(&mut bytes)?;
            let mut consumed = 0;
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                if records.len() >= max || !line.ends_with(b"\n") {
                    break;
                }
                consumed += line.len();
                match serde_json::from_slice::<UsageRecord>(line) {
                    Ok(record) => records.push(record),
                    Err(err) => tracing::warn!(
                        %err,
                        segment = at.segment,
                        offset = at.offset + consumed as u64,
                        "skipping an unreadable usage journal line"
                    ),
                }
            }
            at.offset += consumed as u64;
            let reached_end = (bytes.len() as u64) < want;
            if at.segment < head.segment && records.len() < max && reached_end {
                // The end of an old segment; what was left unread is its torn last line.
                at = Position {
                    segment: at.segment + 1,
                    offset: 0,
                };
                continue;
            }
            return Ok((records, at));
        }
    }

    /// Records that everything before `position` is shipped, and deletes the segments wholly
    /// behind it. Blocking file writes: call from a blocking thread.
    pub fn commit(&mut self, position: Position) -> io::Result<()> {
        let dir = &self.shared.dir;
        let temporary = dir.join("shipped.tmp");
        fs::write(
            &temporary,
            format!("{} {}\n", position.segment, position.offset),
        )?;
        fs::rename(&temporary, dir.join("shipped"))?;
        for segment in segments(dir)? {
            if segment < position.segment {
                fs::remove_file(segment_path(dir, segment))?;
            }
        }
        self.next = position;
        Ok(())
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("segment-{segment:012}.jsonl"))
}

/// The numbers of the segments in `dir`, in order.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("segment-"))
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse().ok())
        {
            found.push(number);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn read_position(dir: &Path) -> io::Result<Option<Position>> {
    let text = match fs::read_to_string(dir.join("shipped")) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position { segment, offset })),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable journal position {text:?}"),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn record(n: u32) -> UsageRecord {
        UsageRecord {
            event_id: format!("e{n}"),
            request_id: format!("r{n}"),
            time_ms: 1_700_000_000_000,
            org_id: "org".into(),
            team_id: None,
            key_id: None,
            user_id: None,
            end_user: None,
            tags: Default::default(),
            endpoint: "chat.completions".into(),
            requested_model: "m".into(),
            provider: None,
            provider_model: None,
            input_tokens: u64::from(n),
            output_tokens: 1,
            cached_tokens: 0,
            usage_estimated: false,
            cost_pico: Some(1),
            reserved_pico: 0,
            saved_pico: None,
            latency_ms: 1,
            ttft_ms: None,
            status: 200,
            error: None,
            cache: "off".into(),
            attempts: 1,
            stream: false,
            guardrail: None,
            guardrail_actions: Vec::new(),
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("tollgate-journal-{}", uuid::Uuid::now_v7()))
    }

    async fn append(journal: &UsageJournal, n: u32) {
        let (tx, rx) = oneshot::channel();
        journal.append_all(vec![record(n)], Some(tx));
        assert_eq!(rx.await, Ok(true));
    }

    #[tokio::test]
    async fn events_are_read_back_in_order_and_shipping_resumes_after_a_restart() {
        let dir = temp_dir();
        {
            let (journal, mut reader) =
                UsageJournal::open(&dir, false).unwrap_or_else(|e| panic!("{e}"));
            for n in 0..5 {
                append(&journal, n).await;
            }
            let (records, at) = reader.read(3).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                records.iter().map(|r| r.input_tokens).collect::<Vec<_>>(),
                [0, 1, 2]
            );
            reader.commit(at).unwrap_or_else(|e| panic!("{e}"));
        }
        // The writer thread of the first run ends with its sender; wait for the lock to go.
        let (journal, reader) = loop {
            match UsageJournal::open(&dir, false) {
                Ok(opened) => break opened,
                Err(JournalError::Locked { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                Err(err) => panic!("{err}"),
            }
        };
        append(&journal, 5).await;
        let (records, _) = reader.read(100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            records.iter().map(|r| r.input_tokens).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let _ = fs::remove_dir_all(dir);
    }

    /// Lines written before records carried guardrails still read (without any), and a
    /// record's guardrail outcome and actions come back as they were appended.
    #[tokio::test]
    async fn guardrail_actions_are_journaled_and_older_lines_still_read() {
        use tollgate_common::{EntityKind, GuardrailAction, Taken};

        let dir = temp_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut old = serde_json::to_value(record(1)).unwrap_or_default();
        if let Some(fields) = old.as_object_mut() {
            fields.remove("guardrail");
            fields.remove("guardrail_actions");
        }
        fs::write(segment_path(&dir, 7), format!("{old}\n")).unwrap_or_else(|e| panic!("{e}"));
        let (journal, reader) = UsageJournal::open(&dir, false).unwrap_or_else(|e| panic!("{e}"));
        let guarded = UsageRecord {
            guardrail: Some("blocked".into()),
            guardrail_actions: vec![
                GuardrailAction {
                    policy: "organization".into(),
                    rule: "input.pii".into(),
                    taken: Taken::Blocked,
                    entities: vec![EntityKind::CreditCard],
                },
                GuardrailAction {
                    policy: "key".into(),
                    rule: "input.deny_keywords".into(),
                    taken: Taken::Flagged,
                    entities: Vec::new(),
                },
            ],
            ..record(2)
        };
        let (tx, rx) = oneshot::channel();
        journal.append_all(vec![guarded.clone()], Some(tx));
        assert_eq!(rx.await, Ok(true));
        let (records, _) = reader.read(100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records, [record(1), guarded]);
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_torn_last_line_of_an_old_segment_is_skipped() {
        let dir = temp_dir();
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut old = serde_json::to_string(&record(1)).unwrap_or_default();
        old.push('\n');
        old.push_str(&serde_json::to_string(&record(2)).unwrap_or_default()[..20]);
        fs::write(segment_path(&dir, 7), old).unwrap_or_else(|e| panic!("{e}"));
        let (journal, mut reader) =
            UsageJournal::open(&dir, true).unwrap_or_else(|e| panic!("{e}"));
        append(&journal, 3).await;
        let (records, at) = reader.read(100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            records.iter().map(|r| r.input_tokens).collect::<Vec<_>>(),
            [1, 3]
        );
        reader.commit(at).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !segment_path(&dir, 7).exists(),
            "a shipped segment is deleted"
        );
        let _ = fs::remove_dir_all(dir);
    }

    /// Reads and commits until nothing is left; returns the events' numbers in read order.
    fn read_all(reader: &mut JournalReader, max: usize) -> Vec<u64> {
        let mut numbers = Vec::new();
        loop {
            let (records, at) = reader.read(max).unwrap_or_else(|e| panic!("{e}"));
            if at == reader.position() {
                return numbers;
            }
            numbers.extend(records.iter().map(|r| r.input_tokens));
            reader.commit(at).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[tokio::test]
    async fn events_come_from_memory_or_the_files_in_order_once_each() {
        let dir = temp_dir();
        let (journal, mut reader) =
            UsageJournal::open(&dir, false).unwrap_or_else(|e| panic!("{e}"));
        journal.append_all((0..3).map(record).collect(), None);
        journal.append_all((3..5).map(record).collect(), None);
        // From memory: whole batches up to the limit.
        let (records, at) = reader
            .take_written(4)
            .unwrap_or_else(|| panic!("in memory"));
        assert_eq!(records.len(), 3);
        // A batch whose shipping failed (no commit) is read again, now from the file.
        assert!(reader.take_written(100).is_none());
        let (again, again_at) = reader.read(100).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.len(), 5);
        assert!(again_at > at);
        reader.commit(at).unwrap_or_else(|e| panic!("{e}"));
        // Past the memory limit, the rest waits in the files.
        let total = UNREAD_EVENTS as u32 + 2_000;
        for start in (5..total).step_by(1_000) {
            journal.append_all(
                (start..total.min(start + 1_000)).map(record).collect(),
                None,
            );
        }
        assert_eq!(
            read_all(&mut reader, 500),
            (3..u64::from(total)).collect::<Vec<_>>()
        );
        // Once caught up, new batches come from memory again.
        journal.append_all(vec![record(total)], None);
        let (records, _) = reader
            .take_written(500)
            .unwrap_or_else(|| panic!("in memory"));
        assert_eq!(records.len(), 1);
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_journal() {
        let dir = temp_dir();
        let _first = UsageJournal::open(&dir, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            UsageJournal::open(&dir, false),
            Err(JournalError::Locked { .. })
        ));
        let _ = fs::remove_dir_all(dir);
    }
}
