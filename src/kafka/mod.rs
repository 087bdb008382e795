//! Kafka: the (transactional) producer, topic administration and the state (cursor) store.

pub mod producer;
pub mod state;
pub mod table;
pub mod topics;

use crate::config::{KafkaSettings, is_sensitive_property};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;

/// Base client config: the bootstrap servers plus the operator's pass-through librdkafka properties.
pub fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &settings.bootstrap_servers);
    for (k, v) in &settings.properties {
        cfg.set(k, v);
    }
    cfg
}

/// The librdkafka context of the readers made with [`read_committed_config`]. The end of a partition is how
/// such a read learns it has read everything (`enable.partition.eof`); librdkafka also reports it as a client
/// error, which the default context logged at ERROR on every start that had state to read back.
pub struct ReaderContext;

impl rdkafka::ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::error::RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(reason, "Kafka reader reached the end of a partition.");
        } else {
            tracing::error!(%error, reason, "Kafka reader error.");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// A reader's consumer: see [`read_committed_config`] and [`ReaderContext`].
pub type Reader = rdkafka::consumer::BaseConsumer<ReaderContext>;

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

/// A Kafka client error whose text is safe to print: librdkafka echoes a rejected property's value
/// ("Client config error: ... sasl.pasword hunter2"), which may be a password.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A `kafka.properties` entry librdkafka rejects: a configuration error.
    #[error("configuration key `kafka.properties.{key}`: {message}")]
    Config { key: String, message: String },
    #[error("{0}")]
    Client(String),
}

impl ClientError {
    /// 2 for a rejected property (a configuration error), else 1.
    pub fn exit_code(&self) -> i32 {
        if matches!(self, ClientError::Config { .. }) { 2 } else { 1 }
    }

    /// `error` with every configured credential (and a rejected property's value) taken out of its text.
    pub fn from_kafka(settings: &KafkaSettings, error: &KafkaError) -> Self {
        match error {
            KafkaError::ClientConfig(_, desc, key, value) => {
                let mut message = redact(settings, desc);
                if !value.is_empty() {
                    message = message.replace(value.as_str(), "[redacted]");
                }
                ClientError::Config {
                    key: key.clone(),
                    message: format!("rejected by librdkafka: {message}"),
                }
            }
            other => ClientError::Client(redact(settings, &other.to_string())),
        }
    }
}

/// `text` with the value of every credential-like `kafka.properties` entry replaced by `[redacted]`.
pub fn redact(settings: &KafkaSettings, text: &str) -> String {
    settings
        .properties
        .iter()
        .filter(|(k, v)| is_sensitive_property(k) && !v.is_empty())
        .fold(text.to_owned(), |text, (_, v)| text.replace(v.as_str(), "[redacted]"))
}

/// Every `kafka.properties` entry is one librdkafka accepts. Run before any client is made, so a misspelled
/// property is reported once, by key, instead of by whichever client happens to be created first.
pub fn validate_properties(settings: &KafkaSettings) -> Result<(), ClientError> {
    client_config(settings)
        .create_native_config()
        .map(drop)
        .map_err(|e| ClientError::from_kafka(settings, &e))
}

/// `check` / readiness probe: the cluster answers a metadata request. Returns the broker count.
pub async fn ping(settings: &KafkaSettings) -> Result<usize, ClientError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let cfg = client_config(settings);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = cfg.create()?;
        let md = consumer.fetch_metadata(None, std::time::Duration::from_secs(10))?;
        Ok(md.brokers().len())
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
    .map_err(|e| ClientError::from_kafka(settings, &e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings(props: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings {
            properties: props.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..KafkaSettings::default()
        }
    }

    #[test]
    fn a_rejected_property_is_named_without_its_value() {
        let s = settings(&[("sasl.pasword", "hunter2-SECRET"), ("sasl.password", "other-SECRET")]);
        let err = validate_properties(&s).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Config { ref key, .. } if key == "sasl.pasword"), "{text}");
        assert!(text.contains("kafka.properties.sasl.pasword"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        let bad_value = settings(&[("security.protocol", "sasl_sslx-SECRET")]);
        let text = validate_properties(&bad_value).unwrap_err().to_string();
        assert!(text.contains("security.protocol") && !text.contains("SECRET"), "{text}");
        assert!(validate_properties(&settings(&[("compression.type", "lz4")])).is_ok());
    }

    #[test]
    fn credentials_are_redacted_from_any_error_text() {
        let s = settings(&[("sasl.password", "pw-1"), ("ssl.key.pem", "PEM"), ("client.id", "pw-1x")]);
        let e = KafkaError::ClientCreation("bad pw-1 and PEM".into());
        assert_eq!(
            ClientError::from_kafka(&s, &e).to_string(),
            "Client creation error: bad [redacted] and [redacted]"
        );
    }
}
