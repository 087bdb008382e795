//! Topic administration: creates missing topics with the configured partitions and replication.
//!
//! Data topics are `cleanup.policy=compact`: each key is a Desk record, so the compacted topic is the
//! current table, and the tombstone after a delete lets compaction forget the record. The state topic is
//! compacted too, with one partition so cursor updates stay ordered.

use super::client_config;
use crate::config::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot create a Kafka admin client: {0}")]
    Client(rdkafka::error::KafkaError),
    #[error("cannot create topic {topic}: {message}")]
    Create { topic: String, message: String },
}

#[derive(Debug, Clone, Copy)]
pub enum TopicKind {
    Data,
    State,
}

pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[(String, TopicKind)],
) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(settings).create().map_err(TopicError::Client)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, kind)| {
            let partitions = match kind {
                TopicKind::Data => settings.partitions,
                TopicKind::State => 1,
            };
            NewTopic::new(name, partitions, TopicReplication::Fixed(settings.replication_factor))
                .set("cleanup.policy", "compact")
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(|e| TopicError::Create { topic: "(all)".into(), message: e.to_string() })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, message: code.to_string() }),
        }
    }
    Ok(())
}
