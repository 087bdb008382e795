//! The one way events reach Kafka: through the ordering guard, encoded, with a tombstone after every
//! delete, in one producer call (one transaction in exactly-once mode) together with any state records.
//! The guard lock is held until Kafka confirms, so a snapshot page and a webhook delivery of the same source
//! can never interleave their check and their commit.

use super::ordering::OrderingGuard;
use crate::avro::encoder::{EncodeError, Encoder};
use crate::change::{ChangeEvent, Op};
use crate::kafka::producer::{OutRecord, ProduceError, TxProducer};
use crate::metrics::EVENTS_TOTAL;
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
    pub state_topic: String,
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
        let now = chrono::Utc::now().timestamp_millis();
        let mut admitted: Vec<ChangeEvent> = Vec::with_capacity(events.len());
        let mut stale = 0;
        for mut e in events {
            // Within one batch the guard must also see earlier events of the same key.
            let superseded = admitted.iter().any(|p| {
                let (pv, ev) = (super::ordering::version_of(p), super::ordering::version_of(&e));
                p.module == e.module && p.id == e.id && (pv > ev || (pv == ev && p.op == e.op))
            });
            if superseded || !guard.admits(&e) {
                stale += 1;
                continue;
            }
            if e.op == Op::Read && guard.knows(e.module, &e.id) {
                // A snapshot re-read (after a rewind) that finds a newer version reports an update, so every
                // key keeps exactly one `r`.
                e.op = Op::Update;
                e.snapshot = None;
            }
            admitted.push(e);
        }
        let mut out = Vec::with_capacity(admitted.len() + state.len() + 1);
        for e in &admitted {
            let topic = self.encoder.topic(e.module);
            let key = self.encoder.encode_key(e.module, &e.id)?;
            out.push(OutRecord {
                topic: topic.clone(),
                key: key.clone(),
                value: Some(self.encoder.encode_value(e, now)?),
            });
            if e.op == Op::Delete {
                // The tombstone lets log compaction forget the record.
                out.push(OutRecord { topic, key, value: None });
            }
        }
        for (key, value) in state {
            out.push(OutRecord {
                topic: self.state_topic.clone(),
                key: key.into_bytes(),
                value: Some(value.to_string().into_bytes()),
            });
        }
        if !out.is_empty() {
            producer.write(out).await?;
        }
        for e in &admitted {
            guard.committed(e);
            metrics::counter!(EVENTS_TOTAL, "source" => self.source.clone(), "module" => e.module.name(), "op" => e.op.code())
                .increment(1);
        }
        Ok(Committed { events: admitted.len(), stale })
    }
}
