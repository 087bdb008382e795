//! Kafka: the (transactional) producer, topic administration and the state (cursor) store.

pub mod producer;
pub mod state;
pub mod table;
pub mod topics;

use crate::config::KafkaSettings;
use rdkafka::ClientConfig;

/// Base client config: the bootstrap servers plus the operator's pass-through librdkafka properties.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.bootstrap_servers);
    for (k, v) in &settings.properties {
        cfg.set(k, v);
    }
    cfg
}

/// A consumer that reads a topic from the start up to its end, committed records only, without a group
/// offset (`group.id` is required by librdkafka but never committed to).
pub fn read_committed_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut cfg = client_config(settings);
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    cfg
}

/// `check` / readiness probe: the cluster answers a metadata request. Returns the broker count.
pub async fn ping(settings: &KafkaSettings) -> Result<usize, rdkafka::error::KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let cfg = client_config(settings);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = cfg.create()?;
        let md = consumer.fetch_metadata(None, std::time::Duration::from_secs(10))?;
        Ok(md.brokers().len())
    })
    .await
    .unwrap_or(Err(rdkafka::error::KafkaError::Canceled))
}
