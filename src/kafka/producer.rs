//! The producer every source role writes through. In exactly-once mode each batch (a snapshot page with its
//! cursor, a webhook delivery) is one Kafka transaction: a `read_committed` consumer sees all of it or none.
//! In at-least-once mode the batch is produced idempotently and awaited.

use super::client_config;
use crate::config::KafkaSettings;
use crate::metrics::{
    KAFKA_BROKER_RTT_MS, KAFKA_PRODUCE_ERRORS_TOTAL, KAFKA_QUEUE_BYTES, KAFKA_QUEUE_MESSAGES,
    KAFKA_TRANSACTIONS_TOTAL,
};
use bytes::Bytes;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error)]
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
    pub topic: Arc<str>,
    /// Shared bytes: the keys and values of a commit's events are slices of one buffer.
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// How often librdkafka reports its statistics (queue depth, broker round trips) to `/metrics`.
const STATISTICS_INTERVAL_MS: &str = "15000";

/// Turns librdkafka's statistics into gauges labelled by source and role (brokers by node id), and hands
/// each delivery report to the write waiting for it.
pub struct StatsContext {
    source: String,
    role: String,
    /// Only one producer of a role reports, so the gauges are not overwritten by another's.
    report: bool,
}

impl ClientContext for StatsContext {
    fn stats(&self, s: Statistics) {
        if !self.report {
            return;
        }
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

impl ProducerContext for StatsContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        acks.report(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// The delivery reports of one write's records, counted down: one shared counter instead of a channel per
/// record, and one wake-up for the whole write.
pub struct Acks {
    pending: AtomicUsize,
    first_error: std::sync::Mutex<Option<KafkaError>>,
    done: Notify,
}

impl Acks {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(0),
            first_error: std::sync::Mutex::default(),
            done: Notify::new(),
        })
    }

    fn report(&self, result: Result<(), KafkaError>) {
        if let Err(e) = result {
            if let Ok(mut first) = self.first_error.lock() {
                first.get_or_insert(e);
            }
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Until every record sent is reported (librdkafka reports each exactly once, within
    /// `message.timeout.ms`), or `limit` passed; the first failure, if any.
    async fn all(&self, limit: Duration) -> Result<(), KafkaError> {
        let wait = async {
            // `notify_one` leaves a permit when nobody waits yet, so the last report is never missed.
            while self.pending.load(Ordering::Acquire) > 0 {
                self.done.notified().await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            return Err(KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::MessageTimedOut));
        }
        match self.first_error.lock().map(|mut e| e.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// How long past `message.timeout.ms` a write waits for its delivery reports: a report that never comes
/// must fail the write, not hang it.
const REPORTS_SLACK: Duration = Duration::from_secs(30);

/// A librdkafka producer served by its own poll thread, which ends once this is dropped.
///
/// Why not rdkafka's `ThreadedProducer`/`FutureProducer`: their thread polls in 100 ms calls whose last
/// sub-millisecond remainder is truncated to a zero timeout and spun through (rdkafka 0.39
/// `Timeout::as_millis`), about 0.8 ms of busy CPU per 100 ms per producer even when idle, and a role has
/// several producers.
struct Polled {
    producer: Arc<BaseProducer<StatsContext>>,
    stop: Arc<AtomicBool>,
}

/// One poll call of the thread. The extra 20 µs puts librdkafka's whole-millisecond wait just past the
/// deadline, so an idle call ends without spinning; a call woken by a delivery report spins at most for the
/// sub-millisecond rest of its last wait, once per call, hence calls of a second. Shutdown does not wait for
/// the thread: it only holds the producer until its current call returns.
const POLL_CALL: Duration = Duration::from_micros(1_000_020);

impl Polled {
    fn start(producer: BaseProducer<StatsContext>) -> Result<Self, ProduceError> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, halt) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka-poll".into())
            .spawn(move || {
                while !halt.load(Ordering::Relaxed) {
                    p.poll(POLL_CALL);
                }
            })
            .map_err(|e| ProduceError::Create(KafkaError::ClientCreation(e.to_string())))?;
        Ok(Self { producer, stop })
    }

    /// The producer, for a blocking call on another thread.
    fn shared(&self) -> Arc<BaseProducer<StatsContext>> {
        self.producer.clone()
    }
}

impl std::ops::Deref for Polled {
    type Target = BaseProducer<StatsContext>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Transactional ids each exactly-once role takes turns on. Kafka answers CONCURRENT_TRANSACTIONS to a
/// transaction that begins before the coordinator has written the previous one's markers, and librdkafka
/// then backs off (tens of milliseconds): with one id, back-to-back transactions spent most of their time
/// waiting. Taking turns gives each id a whole transaction's time to settle, while writes stay strictly
/// sequential, so ordering is unchanged. Fixed rather than configurable: every instance must claim (and so
/// fence) the same ids.
const TRANSACTION_LANES: usize = 3;

pub struct TxProducer {
    /// At least one; several only in exactly-once mode.
    lanes: Vec<Lane>,
    source: String,
    /// Transactions are strictly sequential; held for the whole of each.
    gate: Mutex<Turn>,
    /// Set once a lane is fenced or failed for good: the other lanes must not write on either.
    broken: OnceLock<ProduceError>,
}

/// What the gate guards: the lane the next write uses, and when a write last succeeded.
#[derive(Default)]
struct Turn {
    next: usize,
    last_ok: Option<Instant>,
}

/// One librdkafka producer and its transactional id (`None` in at-least-once mode).
struct Lane {
    producer: Polled,
    transactional_id: Option<String>,
    /// The lane's next transaction, begun while the other lanes wrote (see [`Lane::begin_ahead`]).
    begun: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<(), KafkaError>>>>,
    /// The longest a write waits for its delivery reports.
    reports_max: Duration,
}

impl std::fmt::Debug for TxProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.lanes.iter().map(|l| &l.transactional_id).collect();
        f.debug_struct("TxProducer").field("transactional_ids", &ids).finish()
    }
}

/// Producer settings the bridge picks unless `kafka.properties` names them. A short linger: every write
/// waits for its acknowledgement before answering a webhook or moving a cursor, so lingering only adds
/// latency once a commit's records are all queued. A short first retry back-off: it is also how long a
/// transaction waits after CONCURRENT_TRANSACTIONS (the previous one's markers not yet written); librdkafka's
/// 100 ms default dominated the p99 of back-to-back transactions (later retries still back off
/// exponentially, up to `retry.backoff.max.ms`).
/// Keys are placed as the Java client places them (murmur2, not librdkafka's CRC32 default): Kafka Streams
/// and ksqlDB joins need their inputs partitioned alike, and Debezium's topics, which these mirror, are
/// written by the Java client. (It is also cheaper: zlib's CRC32 cost 0.8 % of the snapshot's CPU.)
/// Each is named with its librdkafka aliases: a `kafka.properties` entry under an alias is the user's
/// choice too, and setting both names would leave which one wins to librdkafka's order of application.
const PRODUCER_DEFAULTS: [(&[&str], &str); 5] = [
    (&["linger.ms", "queue.buffering.max.ms"], LINGER_MS),
    (&["compression.type", "compression.codec"], "lz4"),
    (MESSAGE_TIMEOUT_MS, MESSAGE_TIMEOUT_MS_DEFAULT),
    (&["retry.backoff.ms"], "10"),
    (&["partitioner"], "murmur2_random"),
];
const LINGER_MS: &str = "1";
const MESSAGE_TIMEOUT_MS: &[&str] = &["message.timeout.ms", "delivery.timeout.ms"];
const MESSAGE_TIMEOUT_MS_DEFAULT: &str = "30000";

/// The producer settings of a lane (`kafka.properties` over the bridge's defaults, with idempotence and
/// `acks=all` imposed), and how long its writes wait for their delivery reports.
fn lane_config(
    settings: &KafkaSettings,
    transactional_id: Option<&str>,
    report: bool,
) -> (ClientConfig, Duration) {
    let mut cfg = client_config(settings);
    if report && !settings.properties.contains_key("statistics.interval.ms") {
        cfg.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    }
    let chosen = |names: &[&str]| names.iter().find_map(|n| settings.properties.get(*n));
    // Defaults a `kafka.properties` entry may override (idempotence and acks may not: exactly-once and
    // "acknowledged means in Kafka" depend on them).
    for (names, value) in PRODUCER_DEFAULTS {
        if chosen(names).is_none() {
            cfg.set(names[0], value);
        }
    }
    cfg.set("enable.idempotence", "true").set("acks", "all");
    if let Some(id) = transactional_id {
        cfg.set("transactional.id", id).set("transaction.timeout.ms", "60000");
    }
    // librdkafka refuses a value that is not a number when the producer is created. 0 (no limit for librdkafka)
    // still gets the slack: a write never waits forever.
    let message_timeout = chosen(MESSAGE_TIMEOUT_MS)
        .map_or(MESSAGE_TIMEOUT_MS_DEFAULT, String::as_str)
        .parse()
        .map_or(Duration::ZERO, Duration::from_millis);
    (cfg, message_timeout + REPORTS_SLACK)
}

/// The transactional id of a source role: a second instance with the same config fences the first.
pub fn transactional_id(topic_prefix: &str, org_id: &str, role: &str) -> String {
    format!("zoho-desk-cdc.{topic_prefix}.{org_id}.{role}")
}

/// The id of each lane of a role: the first is the role's own id (so an older instance is fenced too).
fn lane_ids(transactional_id: Option<&str>) -> Vec<Option<String>> {
    match transactional_id {
        None => vec![None],
        Some(id) => (0..TRANSACTION_LANES)
            .map(|lane| Some(if lane == 0 { id.to_owned() } else { format!("{id}.{lane}") }))
            .collect(),
    }
}

impl TxProducer {
    /// Creates the producers and, in exactly-once mode, initialises their transactions (fencing older
    /// ones).
    pub async fn connect(
        settings: &KafkaSettings,
        transactional_id: Option<String>,
        source: &str,
        role: &str,
    ) -> Result<Self, ProduceError> {
        // All at once: initialising a transactional id can wait seconds for its coordinator (a broker that
        // just started), and the role is held only once every lane is.
        let lanes = lane_ids(transactional_id.as_deref()).into_iter().enumerate().map(|(lane, id)| {
            // Every lane reports queue gauges under the same labels; only the first does, so they stay true.
            Lane::connect(settings, id, source, role, lane == 0)
        });
        let lanes = futures::future::try_join_all(lanes).await?;
        Ok(Self { lanes, source: source.to_owned(), gate: Mutex::default(), broken: OnceLock::new() })
    }

    /// Writes `records` atomically (exactly-once) or reliably (at-least-once). Returns only after Kafka
    /// has acknowledged every record, so callers may then acknowledge upstream.
    pub async fn write(&self, records: Vec<OutRecord>) -> Result<(), ProduceError> {
        let mut turn = self.gate.lock().await;
        self.write_turn(&mut turn, records).await
    }

    /// Writes `records` only when no write succeeded in the last `idle` (returns whether it wrote): a
    /// producer learns of a takeover when it next writes, which a busy one does soon anyway. A producer
    /// already fenced or failed reports so.
    pub async fn write_if_idle(&self, records: Vec<OutRecord>, idle: Duration) -> Result<bool, ProduceError> {
        let mut turn = self.gate.lock().await;
        if self.broken.get().is_none() && turn.last_ok.is_some_and(|t| t.elapsed() < idle) {
            return Ok(false);
        }
        self.write_turn(&mut turn, records).await.map(|()| true)
    }

    async fn write_turn(&self, turn: &mut Turn, records: Vec<OutRecord>) -> Result<(), ProduceError> {
        if let Some(broken) = self.broken.get() {
            return Err(broken.clone());
        }
        // `next` stays below the number of lanes, and there is always one.
        let Some(lane) = self.lanes.get(turn.next) else { return Err(ProduceError::Join) };
        turn.next = (turn.next + 1) % self.lanes.len();
        let result = lane.write(records).await;
        match &result {
            Ok(()) => turn.last_ok = Some(Instant::now()),
            // One fenced lane means another instance took the role: no lane may write on.
            Err(error @ (ProduceError::Fenced(_) | ProduceError::Fatal(_))) => {
                let _ = self.broken.set(error.clone());
            }
            Err(_) => {}
        }
        if self.broken.get().is_none() {
            lane.begin_ahead();
        }
        let outcome = if result.is_ok() { "committed" } else { "aborted" };
        if lane.transactional_id.is_some() {
            metrics::counter!(KAFKA_TRANSACTIONS_TOTAL, "source" => self.source.clone(), "outcome" => outcome)
                .increment(1);
        }
        if result.is_err() {
            metrics::counter!(KAFKA_PRODUCE_ERRORS_TOTAL, "source" => self.source.clone()).increment(1);
        }
        result
    }

    /// Flushes outstanding records on shutdown, every lane at once (each may wait up to 10 s).
    pub async fn flush(&self) {
        let flushes = self.lanes.iter().map(|lane| {
            let p = lane.producer.shared();
            tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10)))
        });
        for flushed in futures::future::join_all(flushes).await {
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "Flushing the Kafka producer failed.");
            }
        }
    }
}

impl Lane {
    async fn connect(
        settings: &KafkaSettings,
        transactional_id: Option<String>,
        source: &str,
        role: &str,
        report: bool,
    ) -> Result<Self, ProduceError> {
        let (cfg, reports_max) = lane_config(settings, transactional_id.as_deref(), report);
        let context = StatsContext { source: source.to_owned(), role: role.to_owned(), report };
        let producer = cfg.create_with_context(context).map_err(ProduceError::Create)?;
        let this = Self {
            producer: Polled::start(producer)?,
            transactional_id,
            begun: Default::default(),
            reports_max,
        };
        if this.transactional_id.is_some() {
            let p = this.producer.shared();
            tokio::task::spawn_blocking(move || p.init_transactions(TXN_TIMEOUT))
                .await
                .map_err(|_| ProduceError::Join)?
                .map_err(|e| this.classify(e))?;
            this.begin_ahead();
        }
        Ok(this)
    }

    /// Begins the lane's next transaction in the background. librdkafka's `begin_transaction` blocks on a
    /// round trip to its own main thread (0.6-0.8 ms under load, measured): begun ahead, it is off the
    /// commit path. An open transaction with no records costs the broker nothing (partitions are added with
    /// the first record) and is dropped with the producer.
    fn begin_ahead(&self) {
        if self.transactional_id.is_none() {
            return;
        }
        let p = self.producer.shared();
        let begun = tokio::task::spawn_blocking(move || p.begin_transaction());
        if let Ok(mut slot) = self.begun.lock() {
            *slot = Some(begun);
        }
    }

    /// Opens the transaction of a write: the one begun ahead, or a new one.
    async fn begin(&self) -> Result<(), KafkaError> {
        let ahead = self.begun.lock().ok().and_then(|mut slot| slot.take());
        let begun = match ahead {
            Some(begun) => begun,
            None => {
                let p = self.producer.shared();
                tokio::task::spawn_blocking(move || p.begin_transaction())
            }
        };
        begun.await.map_err(|_| KafkaError::Canceled)?
    }

    fn is_transactional(&self) -> bool {
        self.transactional_id.is_some()
    }

    async fn write(&self, records: Vec<OutRecord>) -> Result<(), ProduceError> {
        if self.is_transactional() {
            self.begin().await.map_err(|e| self.classify(e))?;
        }
        let acks = Acks::new();
        if let Err(e) = self.send_all(&records, &acks).await {
            return self.fail(e).await;
        }
        if let Err(e) = acks.all(self.reports_max).await {
            return self.fail(e).await;
        }
        if self.is_transactional() {
            return self.finish(Call::Commit, None).await;
        }
        Ok(())
    }

    /// Fails a write with `e`: aborts its transaction, if any, so the lane can begin the next one.
    async fn fail(&self, e: KafkaError) -> Result<(), ProduceError> {
        if !self.is_transactional() {
            return Err(self.classify(e));
        }
        self.finish(Call::Abort, Some(e)).await
    }

    /// Ends the write's transaction with `call` (an abort carries `cause`, why the write failed), and if
    /// that fails leaves the lane ready for the next one (see [`Self::recover`]).
    async fn finish(&self, call: Call, cause: Option<KafkaError>) -> Result<(), ProduceError> {
        match (self.call(call).await?, cause) {
            (Ok(()), None) => Ok(()),
            (Ok(()), Some(cause)) => Err(self.classify(cause)),
            (Err(e), cause) => self.recover(call, e, cause).await,
        }
    }

    async fn call(&self, call: Call) -> Result<Result<(), KafkaError>, ProduceError> {
        let p = self.producer.shared();
        tokio::task::spawn_blocking(move || match call {
            Call::Commit => {
                settle(&p);
                p.commit_transaction(TXN_TIMEOUT)
            }
            Call::Abort => p.abort_transaction(TXN_TIMEOUT),
        })
        .await
        // The call may still be pending in librdkafka, which then refuses every other transactional call.
        .map_err(|_| ProduceError::Fatal("a Kafka transaction call panicked; its outcome is unknown".into()))
    }

    /// Brings the lane back to a clean state after `call` failed with `error` (`cause`: why the write was
    /// being aborted). librdkafka keeps a commit or abort that failed with a retriable error (a timeout) as
    /// the pending call and refuses every other transactional call (`__CONFLICT`) until that one is called
    /// again and finishes. A lane left so would fail each of its writes for good, so what cannot be
    /// finished within the retries is fatal: the process stops and a restart starts afresh. A commit that
    /// finishes on a retry is a committed write.
    async fn recover(
        &self,
        mut call: Call,
        mut error: KafkaError,
        mut cause: Option<KafkaError>,
    ) -> Result<(), ProduceError> {
        let mut retries = TXN_RETRIES;
        loop {
            let step = next_step(call, Outcome::of(&error), retries);
            tracing::warn!(%error, ?call, ?step, "A Kafka transaction call failed.");
            let next = match step {
                Step::Fatal => {
                    return Err(match self.classify(error.clone()) {
                        ProduceError::Unavailable(_) => ProduceError::Fatal(format!(
                            "the transaction could neither be committed nor aborted: {error}"
                        )),
                        other => other,
                    });
                }
                Step::Commit => Call::Commit,
                Step::Abort => Call::Abort,
            };
            if next == call {
                retries = retries.saturating_sub(1);
            } else {
                // An abort after a failed commit: the commit's error is why, and the abort gets its own retries.
                cause = cause.or(Some(error));
                retries = TXN_RETRIES;
            }
            call = next;
            match (self.call(call).await?, call) {
                (Ok(()), Call::Commit) => return Ok(()),
                (Ok(()), Call::Abort) => {
                    return Err(self.classify(cause.unwrap_or(KafkaError::Canceled)));
                }
                (Err(e), _) => error = e,
            }
        }
    }

    /// Hands every record to librdkafka, waiting for room when its local queue is full. Each one sent is
    /// counted in `acks` before librdkafka can report it.
    async fn send_all(&self, records: &[OutRecord], acks: &Arc<Acks>) -> Result<(), KafkaError> {
        for r in records {
            acks.pending.fetch_add(1, Ordering::AcqRel);
            let mut rec: BaseRecord<'_, [u8], [u8], Arc<Acks>> =
                BaseRecord::with_opaque_to(&r.topic, acks.clone()).key(&r.key[..]);
            if let Some(v) = &r.value {
                rec = rec.payload(&v[..]);
            }
            // A full local queue is backpressure: wait for room instead of dropping.
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        // Never handed over: nothing will report it.
                        acks.pending.fetch_sub(1, Ordering::AcqRel);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
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
}

/// Waits (briefly) until librdkafka counts nothing in flight. rdkafka's `commit_transaction` flushes first,
/// and that flush, finding any message still in flight, polls for a whole 100 ms before it looks again. By
/// now every delivery is confirmed; only the poll thread's release of the last delivery report may still be
/// under way (microseconds), yet racing it cost a 100 ms stall in a few percent of transactions.
fn settle(producer: &BaseProducer<StatsContext>) {
    let until = Instant::now() + SETTLE_MAX;
    while producer.in_flight_count() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Past this, the commit's own flush takes over (something other than a delivery report is queued).
const SETTLE_MAX: Duration = Duration::from_millis(20);

/// How many more times a commit or an abort that failed with a retriable error is called (each waiting up
/// to [`TXN_TIMEOUT`]) before the lane is given up.
const TXN_RETRIES: u32 = 3;

/// A transactional call that must finish before the lane can begin another transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Commit,
    Abort,
}

/// What a failed transactional call means for the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Still under way in librdkafka (a timeout): only the same call may follow.
    Retriable,
    /// The transaction must be aborted.
    Abortable,
    /// The producer is unusable.
    Fatal,
    /// Failed for good; librdkafka no longer counts the call as pending.
    Other,
}

impl Outcome {
    fn of(e: &KafkaError) -> Self {
        match e {
            KafkaError::Transaction(t) if t.is_fatal() => Self::Fatal,
            KafkaError::Transaction(t) if t.txn_requires_abort() => Self::Abortable,
            KafkaError::Transaction(t) if t.is_retriable() => Self::Retriable,
            // rdkafka's own flush before librdkafka's commit timed out: committing again is a fresh try.
            KafkaError::Flush(_) => Self::Retriable,
            _ => Self::Other,
        }
    }
}

/// The next call after `call` failed with `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Commit,
    Abort,
    /// The lane cannot be brought back to a clean state.
    Fatal,
}

/// What follows a failed commit or abort, with `retries` calls of the same kind left: a retriable failure
/// is resumed by the same call (librdkafka allows nothing else), an abortable or otherwise failed commit is
/// aborted, and an abort that cannot finish gives the lane up.
fn next_step(call: Call, outcome: Outcome, retries: u32) -> Step {
    match (call, outcome) {
        (_, Outcome::Fatal) => Step::Fatal,
        (Call::Commit, Outcome::Retriable) if retries > 0 => Step::Commit,
        (Call::Commit, Outcome::Retriable) => Step::Fatal,
        (Call::Commit, Outcome::Abortable | Outcome::Other) => Step::Abort,
        (Call::Abort, Outcome::Retriable | Outcome::Abortable) if retries > 0 => Step::Abort,
        (Call::Abort, _) => Step::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_named_by_an_alias_in_kafka_properties_is_left_to_it() {
        let mut settings = KafkaSettings::default();
        settings.properties.insert("delivery.timeout.ms".into(), "90000".into());
        settings.properties.insert("queue.buffering.max.ms".into(), "20".into());
        let (cfg, reports_max) = lane_config(&settings, None, false);
        assert_eq!(cfg.get("message.timeout.ms"), None);
        assert_eq!(cfg.get("linger.ms"), None);
        assert_eq!(cfg.get("compression.type"), Some("lz4"));
        assert_eq!(cfg.get("partitioner"), Some("murmur2_random"));
        assert_eq!(reports_max, Duration::from_secs(90) + REPORTS_SLACK);
        let (cfg, reports_max) = lane_config(&KafkaSettings::default(), Some("t"), false);
        assert_eq!(cfg.get("message.timeout.ms"), Some(MESSAGE_TIMEOUT_MS_DEFAULT));
        assert_eq!(reports_max, Duration::from_secs(30) + REPORTS_SLACK);
        assert_eq!((cfg.get("acks"), cfg.get("transactional.id")), (Some("all"), Some("t")));
    }

    #[test]
    fn a_commit_that_timed_out_is_resumed_never_aborted_while_pending() {
        // librdkafka refuses an abort (`__CONFLICT`) while a timed-out commit is pending.
        assert_eq!(next_step(Call::Commit, Outcome::Retriable, 2), Step::Commit);
        assert_eq!(next_step(Call::Commit, Outcome::Retriable, 0), Step::Fatal);
        assert_eq!(next_step(Call::Commit, Outcome::Abortable, 2), Step::Abort);
        assert_eq!(next_step(Call::Commit, Outcome::Other, 0), Step::Abort);
        assert_eq!(next_step(Call::Commit, Outcome::Fatal, 2), Step::Fatal);
    }

    #[test]
    fn an_abort_is_retried_until_done_or_the_lane_is_given_up() {
        assert_eq!(next_step(Call::Abort, Outcome::Retriable, 1), Step::Abort);
        assert_eq!(next_step(Call::Abort, Outcome::Retriable, 0), Step::Fatal);
        assert_eq!(next_step(Call::Abort, Outcome::Other, 3), Step::Fatal);
        assert_eq!(next_step(Call::Abort, Outcome::Fatal, 3), Step::Fatal);
    }

    #[test]
    fn kafka_errors_map_to_outcomes() {
        use rdkafka::types::RDKafkaErrorCode as C;
        assert_eq!(Outcome::of(&KafkaError::Flush(C::OperationTimedOut)), Outcome::Retriable);
        assert_eq!(Outcome::of(&KafkaError::MessageProduction(C::MessageTimedOut)), Outcome::Other);
    }

    #[test]
    fn lanes_keep_the_role_id_first_so_older_instances_are_fenced_too() {
        assert_eq!(lane_ids(None), vec![None]);
        let ids = lane_ids(Some("zoho-desk-cdc.p.1.stream"));
        assert_eq!(ids.len(), TRANSACTION_LANES);
        assert_eq!(ids[0].as_deref(), Some("zoho-desk-cdc.p.1.stream"));
        assert_eq!(ids[1].as_deref(), Some("zoho-desk-cdc.p.1.stream.1"));
        assert_eq!(ids[2].as_deref(), Some("zoho-desk-cdc.p.1.stream.2"));
    }
}
