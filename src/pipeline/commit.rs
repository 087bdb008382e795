//! The one way events reach Kafka: through the ordering guard, encoded, with a tombstone after every
//! delete, in one producer call (one transaction in exactly-once mode) together with any state records.
//! The guard lock is held until Kafka confirms, so a snapshot page and a webhook delivery of the same source
//! can never interleave their check and their commit.

use super::ordering::OrderingGuard;
use crate::avro::encoder::{EncodeError, Encoder};
use crate::change::{ChangeEvent, Op};
use crate::kafka::producer::{OutRecord, ProduceError, TxProducer};
use crate::metrics::EVENTS_TOTAL;
use crate::zoho::module::Module;
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

impl Writer {
    /// Deletes of `module` committed after sequence `seen`: (latest sequence, count, earliest event time).
    pub async fn deletes_since(
        &self,
        module: crate::zoho::module::Module,
        seen: u64,
    ) -> (u64, u64, Option<i64>) {
        self.guard.lock().await.deletes_since(module, seen)
    }

    /// Commits `events` (filtered by the ordering guard) plus `state` records (`(key, JSON)` in the state
    /// topic) through `producer`. Returns only after Kafka acknowledged everything.
    pub async fn commit(
        &self,
        producer: &TxProducer,
        events: Vec<ChangeEvent>,
        state: Vec<(String, serde_json::Value)>,
    ) -> Result<Committed, CommitError> {
        let mut guard = self.guard.lock().await;
        let mut batch = Batch::new(events.len() + state.len());
        let group = batch.add(&self.encoder, &guard, events)?;
        batch.out.extend(state.into_iter().map(|(key, value)| self.state_record(key, &value)));
        batch.write(self, producer, &mut guard).await?;
        Ok(group)
    }

    /// A record of the state topic (cursors, heartbeats): `key` → JSON.
    pub fn state_record(&self, key: String, value: &serde_json::Value) -> OutRecord {
        OutRecord {
            topic: self.state_topic.clone(),
            key: key.into_bytes(),
            value: Some(value.to_string().into_bytes()),
        }
    }

    /// Commits several independent `groups` (concurrent webhook deliveries) in one producer call, so one
    /// transaction serves them all. A group that cannot be encoded fails alone; a failed write fails all.
    pub async fn commit_groups(
        &self,
        producer: &TxProducer,
        groups: Vec<Vec<ChangeEvent>>,
    ) -> Result<Vec<Result<Committed, EncodeError>>, ProduceError> {
        let mut guard = self.guard.lock().await;
        let mut batch = Batch::new(groups.iter().map(Vec::len).sum());
        let results: Vec<_> = groups.into_iter().map(|g| batch.add(&self.encoder, &guard, g)).collect();
        batch.write(self, producer, &mut guard).await?;
        Ok(results)
    }
}

/// The records of one producer call, built group by group under the ordering guard's lock.
struct Batch {
    now: i64,
    out: Vec<OutRecord>,
    /// With the version each carries.
    admitted: Vec<(ChangeEvent, i64)>,
    /// (version, op) of every admitted event by key: within a batch the guard must also see earlier events
    /// of the same key, and a map keeps a whole page (or many grouped deliveries) linear.
    seen: Seen,
}

type Seen = HashMap<(Module, String), Vec<(i64, Op)>, foldhash::fast::RandomState>;

impl Batch {
    fn new(capacity: usize) -> Self {
        Self {
            now: chrono::Utc::now().timestamp_millis(),
            out: Vec::with_capacity(capacity + 1),
            admitted: Vec::with_capacity(capacity),
            seen: Seen::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    /// Admits and encodes one group. On an encoding error nothing of the group enters the batch.
    fn add(
        &mut self,
        encoder: &Encoder,
        guard: &OrderingGuard,
        events: Vec<ChangeEvent>,
    ) -> Result<Committed, EncodeError> {
        let mut admitted: Vec<(ChangeEvent, i64)> = Vec::with_capacity(events.len());
        let mut mine = Seen::with_capacity_and_hasher(events.len(), Default::default());
        let mut stale = 0;
        for mut e in events {
            let v = super::ordering::version_of(&e);
            let key = (e.module, e.id.clone());
            let newer = |(pv, op): &(i64, Op)| *pv > v || (*pv == v && *op == e.op);
            let superseded = self.seen.get(&key).is_some_and(|s| s.iter().any(newer))
                || mine.get(&key).is_some_and(|s| s.iter().any(newer));
            if superseded || !guard.admits_version(&e, v) {
                stale += 1;
                continue;
            }
            if e.op == Op::Read && guard.knows(e.module, &e.id) {
                // A snapshot re-read (after a rewind) that finds a newer version reports an update, so every
                // key keeps exactly one `r`.
                e.op = Op::Update;
                e.snapshot = None;
            }
            mine.entry(key).or_default().push((v, e.op));
            admitted.push((e, v));
        }
        let mut out = Vec::with_capacity(admitted.len() + 1);
        for (e, _) in &admitted {
            let (topic, key) = (encoder.topic(e.module), encoder.encode_key(e.module, &e.id)?);
            let value = Some(encoder.encode_value(e, self.now)?);
            if e.op == Op::Delete {
                out.push(OutRecord { topic: topic.clone(), key: key.clone(), value });
                // The tombstone lets log compaction forget the record.
                out.push(OutRecord { topic, key, value: None });
            } else {
                out.push(OutRecord { topic, key, value });
            }
        }
        let events = admitted.len();
        self.out.append(&mut out);
        self.admitted.append(&mut admitted);
        for (key, mut versions) in mine {
            self.seen.entry(key).or_default().append(&mut versions);
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
        // Counted per (module, op) once per call: a labelled counter lookup per record costs more than the
        // rest of the bookkeeping.
        let mut counts: Vec<((Module, Op), u64)> = Vec::new();
        for (e, v) in &self.admitted {
            guard.committed_version(e, *v);
            match counts.iter_mut().find(|(k, _)| *k == (e.module, e.op)) {
                Some((_, n)) => *n += 1,
                None => counts.push(((e.module, e.op), 1)),
            }
        }
        for ((module, op), n) in counts {
            metrics::counter!(EVENTS_TOTAL, "source" => writer.source.clone(), "module" => module.name(), "op" => op.code())
                .increment(n);
        }
        Ok(())
    }
}
