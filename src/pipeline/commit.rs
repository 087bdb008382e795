//! The one way events reach Kafka: encoded (before the lock, see [`Writer::encode`]), through the ordering
//! guard, with a tombstone after every delete, in one producer call (one transaction in exactly-once mode)
//! together with any state records. The guard lock is held until Kafka confirms, so a snapshot page and a
//! webhook delivery of the same source can never interleave their check and their commit.

use super::ordering::OrderingGuard;
use crate::avro::encoder::{EncodeError, Encoder};
use crate::change::{ChangeEvent, Op};
use crate::kafka::producer::{OutRecord, ProduceError, TxProducer};
use crate::metrics::{EVENTS_TOTAL, tally};
use crate::zoho::module::Module;
use bytes::Bytes;
use std::collections::HashMap;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// What one commit wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub events: usize,
    /// Dropped by the ordering guard (stale or duplicate).
    pub stale: usize,
}

/// Everything a source writes through.
pub struct Writer {
    pub source: String,
    pub encoder: Encoder,
    pub state_topic: std::sync::Arc<str>,
    pub guard: Mutex<OrderingGuard>,
}

/// See [`Writer::shifts_since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shifts {
    /// The latest deletes sequence.
    pub seq: u64,
    /// Deletes committed since the sequence asked about.
    pub new_deletes: u64,
    /// The earliest event time among them.
    pub earliest_ms: Option<i64>,
}

impl Writer {
    /// What may have shifted `module`'s rows in an offset-paged list since deletes sequence `seen` (one
    /// look under the guard's lock per snapshot page).
    pub async fn shifts_since(&self, module: crate::zoho::module::Module, seen: u64) -> Shifts {
        let guard = self.guard.lock().await;
        let (seq, new_deletes, earliest_ms) = guard.deletes_since(module, seen);
        Shifts { seq, new_deletes, earliest_ms }
    }

    /// Encodes `events` for a later commit (no lock: this is the bulk of a commit's work, and it runs where
    /// the events arise, side by side, while another commit holds the guard).
    pub fn encode(&self, events: Vec<ChangeEvent>) -> Result<Vec<Ready>, EncodeError> {
        let now = chrono::Utc::now().timestamp_millis();
        // Every key and value into one buffer, then shared out as slices of it: an allocation (and later a
        // free) per event cost as much as a tenth of writing its Avro.
        let room = events.iter().map(|e| e.id.len() + 8 + Encoder::value_size_hint(e)).sum();
        let mut buffer = Vec::with_capacity(room);
        // Per event: where its key starts, where its value starts, where the value ends.
        let mut bounds = Vec::with_capacity(events.len());
        for event in &events {
            let key_start = buffer.len();
            self.encoder.write_key(event.module, &event.id, &mut buffer)?;
            let value_start = buffer.len();
            self.encoder.write_value(event, now, &mut buffer)?;
            bounds.push((key_start, value_start, buffer.len()));
        }
        let buffer = Bytes::from(buffer);
        let ready = events
            .into_iter()
            .zip(bounds)
            .map(|(event, (key_start, value_start, end))| {
                let record = OutRecord {
                    topic: self.encoder.topic(event.module),
                    key: buffer.slice(key_start..value_start),
                    value: Some(buffer.slice(value_start..end)),
                };
                Ready { version: super::ordering::version_of(&event), event, record }
            })
            .collect();
        Ok(ready)
    }

    /// Commits `events` (filtered by the ordering guard) plus `state` records (`(key, JSON text)` in the
    /// state topic) through `producer`. Returns only after Kafka acknowledged everything.
    pub async fn commit(
        &self,
        producer: &TxProducer,
        events: Vec<ChangeEvent>,
        state: Vec<(String, String)>,
    ) -> Result<Committed, CommitError> {
        let ready = self.encode(events)?;
        let mut committed = self.commit_ready(producer, vec![ready], state).await?;
        Ok(committed.pop().unwrap_or_default())
    }

    /// A record of the state topic (cursors, heartbeats): `key` → `json`, JSON text.
    pub fn state_record(&self, key: String, json: String) -> OutRecord {
        OutRecord { topic: self.state_topic.clone(), key: key.into(), value: Some(json.into()) }
    }

    /// Commits several independent `groups` of encoded events (concurrent webhook deliveries) and `state`
    /// records in one producer call, so one transaction serves them all; what each group wrote, in order.
    pub async fn commit_ready(
        &self,
        producer: &TxProducer,
        groups: Vec<Vec<Ready>>,
        state: Vec<(String, String)>,
    ) -> Result<Vec<Committed>, CommitError> {
        let mut guard = self.guard.lock().await;
        let mut batch = Batch::new(groups.iter().map(Vec::len).sum::<usize>() + state.len());
        let results =
            groups.into_iter().map(|g| batch.add(&self.encoder, &guard, g)).collect::<Result<Vec<_>, _>>()?;
        batch.out.extend(state.into_iter().map(|(key, json)| self.state_record(key, json)));
        batch.write(self, producer, &mut guard).await?;
        Ok(results)
    }
}

/// An event encoded ahead of its commit, with the version the ordering guard judges it by.
pub struct Ready {
    event: ChangeEvent,
    version: i64,
    record: OutRecord,
}

/// The records of one producer call, built group by group under the ordering guard's lock.
struct Batch {
    now: i64,
    out: Vec<OutRecord>,
    /// With the version each carries.
    admitted: Vec<(ChangeEvent, i64)>,
    /// The newest version admitted per key: within a batch the guard must also see earlier events of the
    /// same key, and a map keeps a whole page (or many grouped deliveries) linear.
    seen: Seen,
}

/// Keyed by the event's encoded Kafka key (one per id within a module), a share of the commit's buffer:
/// no copy of the id per event.
type Seen = HashMap<(Module, Bytes), Newest, foldhash::fast::RandomState>;

/// The newest version admitted for a key, and the operations admitted at it.
#[derive(Debug, Clone, Copy)]
struct Newest {
    version: i64,
    ops: u8,
}

impl Newest {
    fn bit(op: Op) -> u8 {
        match op {
            Op::Read => 1,
            Op::Create => 2,
            Op::Update => 4,
            Op::Delete => 8,
        }
    }

    fn of(version: i64, op: Op) -> Self {
        Self { version, ops: Self::bit(op) }
    }

    /// An event of version `v` doing `op` repeats or is older than one already admitted.
    fn supersedes(&self, v: i64, op: Op) -> bool {
        self.version > v || (self.version == v && self.ops & Self::bit(op) != 0)
    }

    /// What this and `other` admitted together.
    fn with(self, other: Self) -> Self {
        match self.version.cmp(&other.version) {
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Equal => Self { version: self.version, ops: self.ops | other.ops },
        }
    }
}

impl Batch {
    fn new(capacity: usize) -> Self {
        Self {
            now: chrono::Utc::now().timestamp_millis(),
            out: Vec::with_capacity(capacity + 1),
            admitted: Vec::with_capacity(capacity),
            // Taken from the first group.
            seen: Seen::default(),
        }
    }

    /// Admits one group. On an encoding error nothing of the group enters the batch.
    fn add(
        &mut self,
        encoder: &Encoder,
        guard: &OrderingGuard,
        group: Vec<Ready>,
    ) -> Result<Committed, EncodeError> {
        let mut admitted: Vec<Ready> = Vec::with_capacity(group.len());
        let mut mine = Seen::with_capacity_and_hasher(group.len(), Default::default());
        let mut stale = 0;
        for mut r in group {
            let (v, op) = (r.version, r.event.op);
            let key = (r.event.module, r.record.key.clone());
            let superseded = self.seen.get(&key).is_some_and(|n| n.supersedes(v, op))
                || mine.get(&key).is_some_and(|n| n.supersedes(v, op));
            let verdict = if superseded { None } else { Some(guard.judge(&r.event, v)) };
            let Some(verdict) = verdict.filter(|v| v.admitted) else {
                stale += 1;
                continue;
            };
            if op == Op::Read && verdict.known {
                // A snapshot re-read (after a rewind) that finds a newer version reports an update, so every
                // key keeps exactly one `r`.
                r.event.op = Op::Update;
                r.event.snapshot = None;
                r.record.value = Some(encoder.encode_value(&r.event, self.now)?.into());
            }
            let admitted_now = Newest::of(v, r.event.op);
            mine.entry(key).and_modify(|n| *n = n.with(admitted_now)).or_insert(admitted_now);
            admitted.push(r);
        }
        let events = admitted.len();
        for r in admitted {
            if r.event.op == Op::Delete {
                // The tombstone lets log compaction forget the record.
                let tombstone =
                    OutRecord { topic: r.record.topic.clone(), key: r.record.key.clone(), value: None };
                self.out.push(r.record);
                self.out.push(tombstone);
            } else {
                self.out.push(r.record);
            }
            self.admitted.push((r.event, r.version));
        }
        if self.seen.is_empty() {
            // The first group (a snapshot commit's only one): nothing to merge with.
            self.seen = mine;
        } else {
            for (key, n) in mine {
                self.seen.entry(key).and_modify(|s| *s = s.with(n)).or_insert(n);
            }
        }
        Ok(Committed { events, stale })
    }

    async fn write(
        self,
        writer: &Writer,
        producer: &TxProducer,
        guard: &mut OrderingGuard,
    ) -> Result<(), ProduceError> {
        if !self.out.is_empty() {
            producer.write(self.out).await?;
        }
        for (e, v) in &self.admitted {
            guard.committed_version(e, *v);
        }
        for ((module, op), n) in tally(self.admitted.iter().map(|(e, _)| (e.module, e.op))) {
            metrics::counter!(EVENTS_TOTAL, "source" => writer.source.clone(), "module" => module.name(), "op" => op.code())
                .increment(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delete is judged alike within a batch and against what was committed: older loses, equal wins
    /// over a non-delete once.
    #[test]
    fn batch_and_guard_agree_on_deletes() {
        let (older, same, newer) = (1, 2, 3);
        let update = Newest::of(same, Op::Update);
        assert!(update.supersedes(older, Op::Delete));
        assert!(!update.supersedes(same, Op::Delete));
        assert!(!update.supersedes(newer, Op::Delete));
        let deleted = update.with(Newest::of(same, Op::Delete));
        assert!(deleted.supersedes(same, Op::Delete));
        assert!(!deleted.supersedes(newer, Op::Delete));
    }
}
