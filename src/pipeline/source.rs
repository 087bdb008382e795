//! The per-source runtime: topics, schemas, the shared writer (encoder + ordering guard), the state read
//! back at start, and the snapshot of every selected module in catalog order.

use super::DeskPages;
use super::commit::Writer;
use super::cursor::SnapshotCursor;
use super::deletions;
use super::ordering::OrderingGuard;
use super::progress::SourceProgress;
use super::snapshot::{self, Sink, SnapshotError};
use crate::avro::encoder::{EncodeError, Encoder, SourceInfo};
use crate::avro::registry::RegistryClient;
use crate::config::{KafkaSettings, SnapshotMode, SourceSettings};
use crate::kafka::producer::{ProduceError, TxProducer, transactional_id};
use crate::kafka::state::{self, StateError};
use crate::kafka::table::{self, TableError};
use crate::kafka::topics::{self, TopicError, TopicKind};
use crate::zoho::module::Module;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Keys remembered by the ordering guard per source.
const GUARD_CAPACITY: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: {error}")]
    Topics { source_name: String, error: TopicError },
    #[error("source {source_name}: {error}")]
    Schemas { source_name: String, error: EncodeError },
    #[error("source {source_name}: {error}")]
    Producer { source_name: String, error: ProduceError },
    #[error("source {source_name}: {error}")]
    State { source_name: String, error: StateError },
    #[error("source {source_name}: {error}")]
    Table { source_name: String, error: TableError },
    #[error("source {source_name}: {error}")]
    Snapshot { source_name: String, error: SnapshotError },
    #[error("source {0}: invalid configuration: {1}")]
    Config(String, String),
}

pub struct SourceRuntime {
    pub settings: SourceSettings,
    pub kafka: KafkaSettings,
    pub modules: Vec<Module>,
    pub writer: Writer,
    pub progress: Arc<SourceProgress>,
    /// One producer per role; created before the state is read so an older instance is fenced first and
    /// cannot commit past the cursor this one resumes from.
    pub snapshot_producer: TxProducer,
    pub stream_producer: Arc<TxProducer>,
    stored: HashMap<String, serde_json::Value>,
}

impl SourceRuntime {
    /// Creates missing topics, registers every module's schemas and reads the committed state back.
    pub async fn prepare(
        kafka: &KafkaSettings,
        registry: &RegistryClient,
        source: &SourceSettings,
        progress: Arc<SourceProgress>,
    ) -> Result<Self, SourceError> {
        let name = source.name.clone();
        let modules: Vec<Module> = source
            .selected_modules()
            .map_err(|e| SourceError::Config(name.clone(), e.to_string()))?
            .into_iter()
            .collect();
        let mut encoder = Encoder::new(SourceInfo {
            topic_prefix: kafka.topic_prefix.clone(),
            org_id: source.org_id.clone(),
        });
        let state_topic = state::state_topic(&kafka.topic_prefix, &source.org_id);
        // Every module a webhook can name gets its topic and schemas, selected or not for the snapshot.
        let mut wanted: Vec<(String, TopicKind)> =
            modules.iter().map(|m| (encoder.topic(*m).to_string(), TopicKind::Data)).collect();
        wanted.push((state_topic.clone(), TopicKind::State));
        // Each step waits on round trips (the broker, the registry, transaction coordinators), so what does
        // not depend on another runs beside it. The state is read last: only once the producers have fenced
        // an older instance (aborting its open transactions) is what `read_committed` reads final.
        let topics = async {
            topics::ensure_topics(kafka, &wanted)
                .await
                .map_err(|error| SourceError::Topics { source_name: name.clone(), error })
        };
        let schemas = async {
            encoder
                .prepare(registry, &modules)
                .await
                .map_err(|error| SourceError::Schemas { source_name: name.clone(), error })
        };
        tokio::try_join!(topics, schemas)?;
        let (snapshot_producer, stream_producer) = tokio::try_join!(
            role_producer(kafka, source, "snapshot"),
            role_producer(kafka, source, "stream")
        )?;
        let stream_producer = Arc::new(stream_producer);
        let stored = state::load(kafka, &state_topic)
            .await
            .map_err(|error| SourceError::State { source_name: name.clone(), error })?;
        Ok(Self {
            settings: source.clone(),
            kafka: kafka.clone(),
            modules,
            writer: Writer {
                source: name,
                encoder,
                state_topic: state_topic.into(),
                guard: tokio::sync::Mutex::new(OrderingGuard::new(GUARD_CAPACITY)),
            },
            progress,
            snapshot_producer,
            stream_producer,
            stored,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// A state document committed before this start (`None` when there is none).
    pub fn stored_value(&self, key: &str) -> Option<&serde_json::Value> {
        self.stored.get(key)
    }

    /// Where the reconciler starts: its committed watermark, else the snapshot's start (earlier changes are
    /// in the snapshot), else now.
    pub fn reconcile_watermark(&self, key: &str) -> i64 {
        let committed = self.stored.get(key).and_then(|v| v["watermark_ms"].as_i64());
        let module = key.rsplit('/').next().unwrap_or_default();
        let snapshot_start =
            self.stored.get(&format!("snapshot/{module}")).and_then(|v| v["upper_ms"].as_i64());
        committed.or(snapshot_start).unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }

    /// Loads every selected module (resuming committed cursors) until all are committed or `shutdown`
    /// fires. Returns `true` when every selected module's snapshot is committed.
    pub async fn run_snapshot<D: DeskPages>(
        &self,
        desk: &D,
        mode: SnapshotMode,
        shutdown: &CancellationToken,
    ) -> Result<bool, SourceError> {
        let name = self.name().to_owned();
        let now = chrono::Utc::now().timestamp_millis();
        let plan: Vec<(Module, SnapshotCursor)> = self
            .modules
            .iter()
            .filter_map(|m| {
                let committed: Option<SnapshotCursor> = self
                    .stored
                    .get(&SnapshotCursor::state_key(*m))
                    .and_then(|v| serde_json::from_value(v.clone()).ok());
                if !should_snapshot(mode, committed.as_ref()) {
                    // Committed by an earlier run: the gauge reads what is true, not 0 after every restart.
                    if committed.as_ref().is_some_and(|c| c.done) {
                        crate::metrics::snapshot_completed(&name, *m);
                    }
                    self.progress.update(m.name(), |p| {
                        p.phase = "streaming".into();
                        if let Some(c) = &committed {
                            p.records = c.records;
                            p.pages = c.pages;
                        }
                    });
                    return None;
                }
                let resume = committed.filter(|c| !c.done && mode != SnapshotMode::Always);
                Some((*m, resume.unwrap_or(SnapshotCursor { upper_ms: now, ..SnapshotCursor::default() })))
            })
            .collect();
        if plan.is_empty() {
            return Ok(true);
        }
        let producer = &self.snapshot_producer;
        let total = plan.len();
        let mut tables = table::TableReader::new(&self.kafka);
        for (i, (module, mut cursor)) in plan.into_iter().enumerate() {
            let resumed = cursor.pages > 0;
            let live = if resumed || deletions::applies(module) {
                let topic = self.writer.encoder.topic(module);
                tables
                    .live_keys(&topic)
                    .await
                    .map_err(|error| SourceError::Table { source_name: name.clone(), error })?
            } else {
                HashSet::new()
            };
            if resumed {
                // A resumed load must not read a key twice as `r`: a record emitted before the restart may
                // be met again (a ticket that moved to a department not walked yet), and the new process's
                // ordering guard has not seen it. The topic has.
                self.writer.guard.lock().await.remember(module, live.iter());
                // Deletes are counted per process; the count the cursor holds was the old process's.
                cursor.deletes_seen = 0;
            }
            // A load from scratch over a topic that already holds records also finds what Desk deleted
            // while no webhook reached us: whatever the load does not meet.
            let previous = (!resumed && !live.is_empty() && deletions::applies(module)).then_some(live);
            let seen = std::sync::Mutex::new(HashSet::new());
            let sink = Sink {
                source: &name,
                writer: &self.writer,
                producer,
                progress: &self.progress,
                seen: previous.as_ref().map(|_| &seen),
            };
            let result = snapshot::run_module(
                desk,
                &sink,
                module,
                cursor,
                &snapshot::Listing {
                    list_from_base: self.settings.list_from_base,
                    split_fields: &self.settings.snapshot_split_fields,
                },
                i + 1 == total,
                shutdown,
            )
            .instrument(tracing::info_span!("module", module = module.name()))
            .await;
            let checked = match (result, previous) {
                (Ok(done), Some(previous)) if done.done => {
                    let seen = seen.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
                    deletions::commit_missing(desk, &sink, module, previous, &seen, true).await.map(|_| done)
                }
                (result, _) => result,
            };
            let done = match checked {
                Ok(c) => c,
                Err(error) => {
                    self.progress.update(module.name(), |p| p.last_error = Some(error.to_string()));
                    producer.flush().await;
                    return Err(SourceError::Snapshot { source_name: name, error });
                }
            };
            if !done.done {
                producer.flush().await;
                return Ok(false);
            }
        }
        producer.flush().await;
        Ok(true)
    }
}

/// A producer for one role of a source (`snapshot`, `stream`): transactional in exactly-once mode, with an
/// id that fences any other instance running the same role.
async fn role_producer(
    kafka: &KafkaSettings,
    source: &SourceSettings,
    role: &str,
) -> Result<TxProducer, SourceError> {
    let tid = kafka.exactly_once.then(|| transactional_id(&kafka.topic_prefix, &source.org_id, role));
    TxProducer::connect(kafka, tid, &source.name, role)
        .await
        .map_err(|error| SourceError::Producer { source_name: source.name.clone(), error })
}

/// Whether a module's snapshot runs in this start.
fn should_snapshot(mode: SnapshotMode, cursor: Option<&SnapshotCursor>) -> bool {
    match mode {
        SnapshotMode::Never => false,
        SnapshotMode::Always => true,
        SnapshotMode::Initial | SnapshotMode::InitialOnly => !cursor.is_some_and(|c| c.done),
    }
}
