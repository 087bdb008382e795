//! The per-source orchestrator: topics, schemas, the snapshot producer, resume from the state topic, and
//! the snapshot of every selected module in catalog order.

use super::DeskPages;
use super::cursor::SnapshotCursor;
use super::progress::SourceProgress;
use super::snapshot::{self, Sink, SnapshotError};
use crate::avro::encoder::{EncodeError, Encoder, SourceInfo};
use crate::avro::registry::RegistryClient;
use crate::config::{KafkaSettings, SnapshotMode, SourceSettings};
use crate::kafka::producer::{ProduceError, TxProducer, transactional_id};
use crate::kafka::state::{self, StateError};
use crate::kafka::topics::{self, TopicError, TopicKind};
use crate::zoho::catalog::{self, Walk};
use crate::zoho::module::Module;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

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
    Snapshot { source_name: String, error: SnapshotError },
    #[error("source {0}: invalid configuration: {1}")]
    Config(String, String),
}

/// Whether a module's snapshot runs in this start.
fn should_snapshot(mode: SnapshotMode, cursor: Option<&SnapshotCursor>) -> bool {
    match mode {
        SnapshotMode::Never => false,
        SnapshotMode::Always => true,
        SnapshotMode::Initial | SnapshotMode::InitialOnly => !cursor.is_some_and(|c| c.done),
    }
}

/// Loads every selected module of `source` (resuming committed cursors) and returns when all are committed
/// or `shutdown` fires. Returns `true` when every selected module's snapshot is committed.
pub async fn run_snapshot<D: DeskPages>(
    desk: &D,
    kafka: &KafkaSettings,
    registry: &RegistryClient,
    source: &SourceSettings,
    mode: SnapshotMode,
    progress: &SourceProgress,
    shutdown: &CancellationToken,
) -> Result<bool, SourceError> {
    let name = source.name.clone();
    let modules: Vec<Module> = source
        .selected_modules()
        .map_err(|e| SourceError::Config(name.clone(), e.to_string()))?
        .into_iter()
        .filter(|m| {
            let supported = catalog::spec(*m).walk != Walk::PerTicket;
            if !supported {
                tracing::warn!(source = %name, module = %m, "Loading this module is not implemented yet; skipping it.");
            }
            supported
        })
        .collect();

    let mut encoder =
        Encoder::new(SourceInfo { topic_prefix: kafka.topic_prefix.clone(), org_id: source.org_id.clone() });
    let state_topic = state::state_topic(&kafka.topic_prefix, &source.org_id);
    let mut wanted: Vec<(String, TopicKind)> =
        modules.iter().map(|m| (encoder.topic(*m), TopicKind::Data)).collect();
    wanted.push((state_topic.clone(), TopicKind::State));
    topics::ensure_topics(kafka, &wanted)
        .await
        .map_err(|error| SourceError::Topics { source_name: name.clone(), error })?;
    for m in &modules {
        encoder
            .prepare(registry, *m)
            .await
            .map_err(|error| SourceError::Schemas { source_name: name.clone(), error })?;
    }

    let stored: HashMap<String, serde_json::Value> = state::load(kafka, &state_topic)
        .await
        .map_err(|error| SourceError::State { source_name: name.clone(), error })?;
    let tid = kafka.exactly_once.then(|| transactional_id(&kafka.topic_prefix, &source.org_id, "snapshot"));
    let producer = TxProducer::connect(kafka, tid, &name)
        .await
        .map_err(|error| SourceError::Producer { source_name: name.clone(), error })?;
    let sink =
        Sink { source: &name, encoder: &encoder, producer: &producer, state_topic: &state_topic, progress };

    let now = chrono::Utc::now().timestamp_millis();
    let plan: Vec<(Module, SnapshotCursor)> = modules
        .iter()
        .filter_map(|m| {
            let committed: Option<SnapshotCursor> = stored
                .get(&SnapshotCursor::state_key(*m))
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            if !should_snapshot(mode, committed.as_ref()) {
                progress.update(m.name(), |p| {
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

    let total = plan.len();
    for (i, (module, cursor)) in plan.into_iter().enumerate() {
        let done = snapshot::run_module(
            desk,
            &sink,
            module,
            cursor,
            source.list_from_base,
            i + 1 == total,
            shutdown,
        )
        .await
        .map_err(|error| {
            progress.update(module.name(), |p| p.last_error = Some(error.to_string()));
            SourceError::Snapshot { source_name: name.clone(), error }
        })?;
        if !done.done {
            producer.flush().await;
            return Ok(false);
        }
    }
    producer.flush().await;
    Ok(true)
}
