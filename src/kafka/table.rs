//! The table a compacted data topic stands for: which keys are live (their latest record is not a tombstone).
//! A full re-load compares it with what Desk still lists, to find records deleted while nobody listened.
//! Only keys are decoded; values are never parsed.

use super::{Reader, ReaderContext, read_committed_config};
use crate::config::KafkaSettings;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Reading a big topic takes a while; this bounds it so a stuck broker cannot hang a load forever.
const READ_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read topic {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("reading topic {0} did not finish in time")]
    Timeout(String),
    #[error("the topic reader task ended unexpectedly")]
    Join,
}

/// The ids whose latest committed record in `topic` is a value, not a tombstone.
pub async fn live_keys(settings: &KafkaSettings, topic: &str) -> Result<HashSet<String>, TableError> {
    TableReader::new(settings).live_keys(topic).await
}

/// Reads topics one after another through one consumer: a load reads every module's topic, and creating a
/// librdkafka client (threads, connections, metadata) per topic cost more than reading a small topic.
pub struct TableReader {
    cfg: rdkafka::ClientConfig,
    consumer: Option<Reader>,
}

impl TableReader {
    pub fn new(settings: &KafkaSettings) -> Self {
        Self { cfg: read_committed_config(settings, "zoho-desk-cdc-table-reader"), consumer: None }
    }

    /// The ids whose latest committed record in `topic` is a value, not a tombstone.
    pub async fn live_keys(&mut self, topic: &str) -> Result<HashSet<String>, TableError> {
        let (cfg, consumer, topic) = (self.cfg.clone(), self.consumer.take(), topic.to_owned());
        let (consumer, live) = tokio::task::spawn_blocking(move || {
            let consumer = match consumer {
                Some(c) => c,
                None => match cfg.create_with_context(ReaderContext) {
                    Ok(c) => c,
                    Err(source) => return (None, Err(TableError::Read { topic, source })),
                },
            };
            let live = read_keys(&consumer, &topic);
            // Nothing stays assigned between topics (an assigned partition keeps being fetched).
            let _ = consumer.unassign();
            (Some(consumer), live)
        })
        .await
        .map_err(|_| TableError::Join)?;
        self.consumer = consumer;
        live
    }
}

fn read_keys(consumer: &Reader, topic: &str) -> Result<HashSet<String>, TableError> {
    let err = |source| TableError::Read { topic: topic.to_owned(), source };
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(15)).map_err(err)?;
    let partitions: Vec<i32> =
        metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut live = HashSet::new();
    let mut tpl = TopicPartitionList::new();
    let mut pending = HashMap::new();
    for p in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(15)).map_err(err)?;
        if high > 0 {
            tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(err)?;
            pending.insert(p, ());
        }
    }
    if pending.is_empty() {
        return Ok(live);
    }
    consumer.assign(&tpl).map_err(err)?;
    let deadline = Instant::now() + READ_DEADLINE;
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(TableError::Timeout(topic.to_owned()));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(err(e)),
            Some(Ok(m)) => {
                let Some(id) = m.key().and_then(decode_key) else {
                    tracing::warn!(topic, offset = m.offset(), "Skipping a record whose key is not ours.");
                    continue;
                };
                if m.payload().is_some() {
                    live.insert(id);
                } else {
                    live.remove(&id);
                }
            }
        }
    }
    Ok(live)
}

/// The `id` of a Confluent-framed Avro key `{id: string}` (magic byte, 4-byte schema id, datum).
fn decode_key(bytes: &[u8]) -> Option<String> {
    let datum = bytes.strip_prefix(&[0u8])?.get(4..)?;
    let schema = key_schema()?;
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema).build().ok()?;
    match reader.read_value(&mut &datum[..]).ok()? {
        apache_avro::types::Value::Record(fields) => fields.into_iter().find_map(|(name, v)| match v {
            apache_avro::types::Value::String(s) if name == "id" => Some(s),
            _ => None,
        }),
        _ => None,
    }
}

fn key_schema() -> Option<&'static apache_avro::Schema> {
    static SCHEMA: std::sync::OnceLock<Option<apache_avro::Schema>> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| apache_avro::Schema::parse_str(crate::avro::schemas::KEY).ok()).as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_framed_key_and_rejects_foreign_bytes() {
        assert_eq!(decode_key(&[0, 0, 0, 0, 7, 2, b'7']).as_deref(), Some("7"));
        assert_eq!(decode_key(&[1, 0, 0, 0, 7, 2, b'7']), None);
        assert_eq!(decode_key(&[0, 0]), None);
        assert_eq!(decode_key(&[0, 0, 0, 0, 7, 200]), None);
    }
}
