//! The state store: one compacted topic per org (`<prefix>.<org>._state`) holding JSON documents keyed by
//! name (snapshot cursors, watermarks). Writes ride in the same transaction as the data they describe; reads
//! use `read_committed`, so a cursor is never ahead of the data it covers.

use super::{Reader, ReaderContext, read_committed_config};
use crate::config::KafkaSettings;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state topic {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("reading the state topic {0} timed out")]
    Timeout(String),
    #[error("the state reader task ended unexpectedly")]
    Join,
}

pub fn state_topic(prefix: &str, org_id: &str) -> String {
    format!("{prefix}.{org_id}._state")
}

/// Reads the latest committed document per key.
pub async fn load(
    settings: &KafkaSettings,
    topic: &str,
) -> Result<HashMap<String, serde_json::Value>, StateError> {
    let cfg = read_committed_config(settings, "zoho-desk-cdc-state-reader");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_all(cfg, &topic)).await.map_err(|_| StateError::Join)?
}

/// A topic created moments ago may not have a partition leader in the metadata yet; the broker says so
/// with a retriable "unknown partition" until it does, so that answer is retried for a bounded time.
fn high_watermark(consumer: &Reader, topic: &str) -> Result<i64, KafkaError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(15)) {
            Ok((_, high)) => return Ok(high),
            Err(e) if Instant::now() < deadline && metadata_not_ready(&e) => {
                tracing::debug!(error = %e, topic, "State topic metadata not ready yet; retrying.");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

fn metadata_not_ready(e: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::UnknownPartition
                | C::UnknownTopic
                | C::UnknownTopicOrPartition
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
        )
    )
}

fn read_all(
    cfg: rdkafka::ClientConfig,
    topic: &str,
) -> Result<HashMap<String, serde_json::Value>, StateError> {
    let err = |source| StateError::Read { topic: topic.to_owned(), source };
    let consumer: Reader = cfg.create_with_context(ReaderContext).map_err(err)?;
    let high = high_watermark(&consumer, topic).map_err(err)?;
    let mut out = HashMap::new();
    if high == 0 {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).map_err(err)?;
    consumer.assign(&tpl).map_err(err)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(out),
            Some(Err(e)) => return Err(err(e)),
            Some(Ok(m)) => {
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else { continue };
                match m.payload().map(serde_json::from_slice::<serde_json::Value>) {
                    Some(Ok(v)) => {
                        out.insert(key.to_owned(), v);
                    }
                    None => {
                        out.remove(key);
                    }
                    Some(Err(error)) => tracing::warn!(%error, key, "Skipping an unreadable state record."),
                }
            }
        }
    }
    Err(StateError::Timeout(topic.to_owned()))
}
