//! The producer every source role writes through. In exactly-once mode each batch (a snapshot page with its
//! cursor, a webhook delivery) is one Kafka transaction: a `read_committed` consumer sees all of it or none.
//! In at-least-once mode the batch is produced idempotently and awaited.

use super::client_config;
use crate::config::KafkaSettings;
use crate::metrics::{
    KAFKA_BROKER_RTT_MS, KAFKA_PRODUCE_ERRORS_TOTAL, KAFKA_QUEUE_BYTES, KAFKA_QUEUE_MESSAGES,
    KAFKA_TRANSACTIONS_TOTAL,
};
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use std::time::Duration;
use tokio::sync::Mutex;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(KafkaError),
    #[error(
        "another instance took over transactional id {0}; this one stops (two bridges with the same config)"
    )]
    Fenced(String),
    #[error("the Kafka producer failed for good ({0}); this instance stops so a restart can start afresh")]
    Fatal(String),
    #[error("Kafka is unavailable: {0}")]
    Unavailable(KafkaError),
    #[error("the producer task ended unexpectedly")]
    Join,
}

/// One record to write; `value: None` is a tombstone.
#[derive(Debug, Clone)]
pub struct OutRecord {
    pub topic: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// How often librdkafka reports its statistics (queue depth, broker round trips) to `/metrics`.
const STATISTICS_INTERVAL_MS: &str = "15000";

/// Turns librdkafka's statistics into gauges labelled by source and role (brokers by node id).
pub struct StatsContext {
    source: String,
    role: String,
}

impl ClientContext for StatsContext {
    fn stats(&self, s: Statistics) {
        let labels = [("source", self.source.clone()), ("role", self.role.clone())];
        metrics::gauge!(KAFKA_QUEUE_MESSAGES, &labels).set(s.msg_cnt as f64);
        metrics::gauge!(KAFKA_QUEUE_BYTES, &labels).set(s.msg_size as f64);
        for broker in s.brokers.values().filter(|b| b.nodeid >= 0) {
            if let Some(rtt) = &broker.rtt {
                metrics::gauge!(KAFKA_BROKER_RTT_MS, "source" => self.source.clone(), "role" => self.role.clone(),
                    "broker" => broker.nodeid.to_string())
                .set(rtt.avg as f64 / 1000.0);
            }
        }
    }
}

pub struct TxProducer {
    producer: FutureProducer<StatsContext>,
    transactional_id: Option<String>,
    source: String,
    /// Transactions on one producer are strictly sequential.
    gate: Mutex<()>,
}

impl std::fmt::Debug for TxProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxProducer").field("transactional_id", &self.transactional_id).finish()
    }
}

/// Producer settings the bridge picks unless `kafka.properties` names them. A short linger: every write
/// waits for its acknowledgement before answering a webhook or moving a cursor, so lingering only adds
/// latency once a commit's records are all queued.
const PRODUCER_DEFAULTS: [(&str, &str); 3] =
    [("linger.ms", LINGER_MS), ("compression.type", "lz4"), ("message.timeout.ms", "30000")];
const LINGER_MS: &str = "1";

/// The transactional id of a source role: a second instance with the same config fences the first.
pub fn transactional_id(topic_prefix: &str, org_id: &str, role: &str) -> String {
    format!("zoho-desk-cdc.{topic_prefix}.{org_id}.{role}")
}

impl TxProducer {
    /// Creates the producer and, in exactly-once mode, initialises its transactions (fencing older ones).
    pub async fn connect(
        settings: &KafkaSettings,
        transactional_id: Option<String>,
        source: &str,
        role: &str,
    ) -> Result<Self, ProduceError> {
        let mut cfg = client_config(settings);
        if !settings.properties.contains_key("statistics.interval.ms") {
            cfg.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        }
        // Defaults a `kafka.properties` entry may override (idempotence and acks may not: exactly-once and
        // "acknowledged means in Kafka" depend on them).
        for (key, value) in PRODUCER_DEFAULTS {
            if !settings.properties.contains_key(key) {
                cfg.set(key, value);
            }
        }
        cfg.set("enable.idempotence", "true").set("acks", "all");
        if let Some(id) = &transactional_id {
            cfg.set("transactional.id", id).set("transaction.timeout.ms", "60000");
        }
        let context = StatsContext { source: source.to_owned(), role: role.to_owned() };
        let producer: FutureProducer<StatsContext> =
            cfg.create_with_context(context).map_err(ProduceError::Create)?;
        let this = Self { producer, transactional_id, source: source.to_owned(), gate: Mutex::new(()) };
        if this.transactional_id.is_some() {
            let p = this.producer.clone();
            tokio::task::spawn_blocking(move || p.init_transactions(TXN_TIMEOUT))
                .await
                .map_err(|_| ProduceError::Join)?
                .map_err(|e| this.classify(e))?;
        }
        Ok(this)
    }

    pub fn is_transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    /// Writes `records` atomically (exactly-once) or reliably (at-least-once). Returns only after Kafka
    /// has acknowledged every record, so callers may then acknowledge upstream.
    pub async fn write(&self, records: Vec<OutRecord>) -> Result<(), ProduceError> {
        let _guard = self.gate.lock().await;
        let result = self.write_locked(records).await;
        let outcome = if result.is_ok() { "committed" } else { "aborted" };
        if self.is_transactional() {
            metrics::counter!(KAFKA_TRANSACTIONS_TOTAL, "source" => self.source.clone(), "outcome" => outcome)
                .increment(1);
        }
        if result.is_err() {
            metrics::counter!(KAFKA_PRODUCE_ERRORS_TOTAL, "source" => self.source.clone()).increment(1);
        }
        result
    }

    async fn write_locked(&self, records: Vec<OutRecord>) -> Result<(), ProduceError> {
        if self.is_transactional() {
            self.producer.begin_transaction().map_err(|e| self.classify(e))?;
        }
        let pending = match self.send_all(&records).await {
            Ok(pending) => pending,
            Err(e) => {
                if self.is_transactional() {
                    self.abort().await;
                }
                return Err(self.classify(e));
            }
        };
        let delivered = Self::delivered(pending).await;
        if let Err(e) = delivered {
            if self.is_transactional() {
                self.abort().await;
            }
            return Err(self.classify(e));
        }
        if self.is_transactional() {
            let p = self.producer.clone();
            let committed = tokio::task::spawn_blocking(move || p.commit_transaction(TXN_TIMEOUT))
                .await
                .map_err(|_| ProduceError::Join)?;
            if let Err(e) = committed {
                if !is_fatal(&e) {
                    self.abort().await;
                }
                return Err(self.classify(e));
            }
        }
        Ok(())
    }

    async fn delivered(pending: Vec<DeliveryFuture>) -> Result<(), KafkaError> {
        for fut in pending {
            match fut.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }

    /// Hands every record to librdkafka, waiting for room when its local queue is full.
    async fn send_all(&self, records: &[OutRecord]) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic).key(r.key.as_slice());
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            // A full local queue is backpressure: wait for room instead of dropping.
            let fut = loop {
                match self.producer.send_result(rec) {
                    Ok(f) => break f,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(e),
                }
            };
            pending.push(fut);
        }
        Ok(pending)
    }

    /// A fenced producer reports it as a fatal client error, whatever error the failed call returned
    /// (often a purged queue), so consult that first. Any other fatal error leaves the producer unusable
    /// too: retrying it would fail forever.
    fn classify(&self, e: KafkaError) -> ProduceError {
        use rdkafka::types::RDKafkaErrorCode as C;
        let fatal = self.producer.client().fatal_error();
        let code = fatal.as_ref().map(|(code, _)| *code).or_else(|| e.rdkafka_error_code());
        match code {
            Some(C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch) => {
                ProduceError::Fenced(self.transactional_id.clone().unwrap_or_default())
            }
            _ => match fatal {
                Some((code, reason)) => ProduceError::Fatal(format!("{code}: {reason}")),
                None => ProduceError::Unavailable(e),
            },
        }
    }

    async fn abort(&self) {
        let p = self.producer.clone();
        match tokio::task::spawn_blocking(move || p.abort_transaction(TXN_TIMEOUT)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "Aborting the Kafka transaction failed."),
            Err(error) => tracing::warn!(%error, "Aborting the Kafka transaction panicked."),
        }
    }

    /// Flushes outstanding records on shutdown.
    pub async fn flush(&self) {
        let p = self.producer.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10))).await {
            tracing::warn!(%error, "Flushing the Kafka producer failed.");
        }
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.is_fatal())
}
