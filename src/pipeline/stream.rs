//! The webhook stream of each source: verifies a delivery, maps its events to changes, and commits them
//! before the service URL answers 200. Deliveries that arrive while a commit is under way wait for the next
//! one and then share it (group commit): one Kafka transaction serves them all, so throughput grows with
//! concurrency instead of being capped at one transaction per delivery.

use super::DeskPages;
use super::audience::{Audience, AudienceCheck};
use super::commit::{CommitError, Ready};
use super::source::SourceRuntime;
use crate::avro::encoder::EncodeError;
use crate::change::ChangeEvent;
use crate::http::webhook::{Delivery, DeliveryHandler, InFlight, Verdict};
use crate::kafka::producer::{ProduceError, TxProducer};
use crate::metrics::{
    MILLISECONDS_BEHIND_SOURCE, WEBHOOK_EVENTS_TOTAL, WEBHOOK_GROUP_DELIVERIES, tally,
    webhook_events_skipped, webhook_rejected,
};
use crate::secret::Secret;
use crate::zoho::catalog;
use crate::zoho::client::DeskClient;
use crate::zoho::jwks::{JwksVerifier, JwtError};
use crate::zoho::webhook::{self, Delivery as Parsed, Hint};
use futures::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// Events one group transaction takes at most; later deliveries wait for the next one.
const MAX_GROUP_EVENTS: usize = 5_000;

/// Shortest time between two lists of Desk's subscriptions made to check a token's audience.
const AUDIENCE_RELIST: std::time::Duration = std::time::Duration::from_secs(30);

/// A delivery's changes, encoded, waiting for the next group commit, with where to send its verdict.
struct Pending<T> {
    changes: Vec<T>,
    reply: oneshot::Sender<Verdict>,
}

/// Deliveries waiting for a commit, and the turn to commit them: whichever waiting delivery takes the
/// turn commits every queued one (up to a cap of events per transaction) and answers them all.
struct Groups<T> {
    /// In arrival order.
    pending: Mutex<VecDeque<Pending<T>>>,
    /// Held by the delivery whose task commits the next group.
    leader: tokio::sync::Mutex<()>,
    max_events: usize,
}

impl<T> Groups<T> {
    fn new(max_events: usize) -> Self {
        Self { pending: Mutex::new(VecDeque::new()), leader: tokio::sync::Mutex::new(()), max_events }
    }

    /// Queues a delivery's `changes`, then waits for their verdict, committing groups while its turn.
    async fn submit<F, Fut>(&self, changes: Vec<T>, commit: F) -> Verdict
    where
        F: Fn(Vec<Vec<T>>) -> Fut,
        Fut: std::future::Future<Output = Verdict>,
    {
        match self.enqueue(changes) {
            Some(verdict) => self.await_or_lead(verdict, commit).await,
            None => Verdict::Unavailable("commit queue failed".into()),
        }
    }

    fn enqueue(&self, changes: Vec<T>) -> Option<oneshot::Receiver<Verdict>> {
        let (reply, verdict) = oneshot::channel();
        self.pending.lock().ok()?.push_back(Pending { changes, reply });
        Some(verdict)
    }

    /// Waits for whichever comes first: another task's commit carrying this delivery, or the turn to lead.
    /// Queuing for the turn alone would make every task lead in order, each committing only what arrived
    /// since the last turn: one delivery per transaction, however many wait.
    async fn await_or_lead<F, Fut>(&self, mut verdict: oneshot::Receiver<Verdict>, commit: F) -> Verdict
    where
        F: Fn(Vec<Vec<T>>) -> Fut,
        Fut: std::future::Future<Output = Verdict>,
    {
        let failed = || Verdict::Unavailable("commit task failed".into());
        let leader = tokio::select! {
            biased;
            done = &mut verdict => return done.unwrap_or_else(|_| failed()),
            leader = self.leader.lock() => leader,
        };
        // The leader commits until its own delivery is answered: a group cut by the cap may leave it queued
        // behind deliveries that came first, and their tasks, answered, will not lead again; nobody else
        // would commit it before another delivery arrives.
        loop {
            match verdict.try_recv() {
                Ok(v) => return v,
                Err(oneshot::error::TryRecvError::Closed) => return failed(),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = self.take_group();
            if group.is_empty() {
                break;
            }
            let (changes, replies): (Vec<_>, Vec<_>) =
                group.into_iter().map(|p| (p.changes, p.reply)).unzip();
            let outcome = commit(changes).await;
            for reply in replies {
                // The delivery's task may be gone (its client hung up); its events are committed either way.
                let _ = reply.send(outcome.clone());
            }
        }
        drop(leader);
        verdict.await.unwrap_or_else(|_| failed())
    }

    fn take_group(&self) -> Vec<Pending<T>> {
        let Ok(mut queue) = self.pending.lock() else { return Vec::new() };
        let mut group = Vec::new();
        let mut events = 0;
        while let Some(next) = queue.front() {
            if !group.is_empty() && events + next.changes.len() > self.max_events {
                break;
            }
            events += next.changes.len();
            group.extend(queue.pop_front());
        }
        group
    }
}

/// One source's stream.
pub struct StreamSource {
    pub runtime: Arc<SourceRuntime>,
    pub desk: DeskClient,
    pub producer: Arc<TxProducer>,
    pub secret: Secret,
    /// The service URL Desk delivers to (it holds the secret): a subscription is ours when its URL is this.
    pub service_url: Secret,
    /// `None` when `verify_jwt = false`.
    pub verifier: Option<JwksVerifier>,
    /// The registered subscription's id, once known, so the JWT audience can be checked exactly.
    pub webhook_id: RwLock<Option<String>>,
    /// Whether the subscription id was already looked up (once, on the first signed delivery).
    aud_lookup: AtomicBool,
    /// Re-reads Desk's subscriptions when a token names another webhook id (a re-created subscription).
    audience: AudienceCheck,
    /// Deliveries waiting for a commit.
    groups: Groups<Ready>,
}

impl StreamSource {
    pub fn new(
        runtime: Arc<SourceRuntime>,
        desk: DeskClient,
        producer: Arc<TxProducer>,
        secret: Secret,
        service_url: Secret,
        verifier: Option<JwksVerifier>,
    ) -> Self {
        Self {
            runtime,
            desk,
            producer,
            secret,
            service_url,
            verifier,
            webhook_id: RwLock::new(None),
            aud_lookup: AtomicBool::new(false),
            audience: AudienceCheck::new(AUDIENCE_RELIST),
            groups: Groups::new(MAX_GROUP_EVENTS),
        }
    }

    /// With a hand-made subscription the id is learnt from Desk (one API call, only once deliveries arrive),
    /// after which the JWT audience is checked exactly.
    fn learn_subscription_id(self: &Arc<Self>) {
        let known = self.webhook_id.read().map(|w| w.is_some()).unwrap_or(true);
        if known || self.aud_lookup.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match crate::zoho::subscription::find_ours(&this.desk, &this.service_url).await {
                Ok(Some(sub)) => {
                    if let Ok(mut slot) = this.webhook_id.write() {
                        slot.get_or_insert(sub.id);
                    }
                }
                Ok(None) => tracing::info!(
                    source = this.name(),
                    "No Desk webhook subscription points at this source."
                ),
                Err(error) => {
                    tracing::warn!(source = this.name(), %error, "Cannot list Desk webhook subscriptions.")
                }
            }
        });
    }

    fn name(&self) -> &str {
        self.runtime.name()
    }

    async fn handle(self: Arc<Self>, delivery: Delivery) -> Verdict {
        let org = self.runtime.settings.org_id.clone();
        let parsed = match webhook::parse_delivery(&delivery.body, &org) {
            Ok(p) => p,
            Err(e) => {
                webhook_rejected(self.name(), e.reason());
                return if e.status() == 401 {
                    Verdict::Unauthorized(e.to_string())
                } else {
                    Verdict::Malformed(e.to_string())
                };
            }
        };
        // Deliveries carry records, so they must be signed by Desk. Workflow notifications carry only
        // hints, and the record is then fetched from Desk itself, so the secret URL is enough for them.
        if let (Parsed::Events(_), Some(verifier)) = (&parsed, &self.verifier) {
            let Some(token) = delivery.jwt.as_deref() else {
                webhook_rejected(self.name(), "jwt_missing");
                return Verdict::Unauthorized("missing X-ZDesk-JWT".into());
            };
            if let Err(verdict) = self.check_token(verifier, token, &org).await {
                return verdict;
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let changes = match parsed {
            Parsed::Events(events) => {
                for (label, n) in tally(events.iter().map(|ev| webhook::event_type_label(&ev.event_type))) {
                    metrics::counter!(WEBHOOK_EVENTS_TOTAL, "source" => self.name().to_owned(), "event_type" => label)
                        .increment(n);
                }
                let mapped = webhook::map_events(events, now);
                if !mapped.skipped.is_empty() {
                    webhook_events_skipped(self.name(), "unknown_type", mapped.skipped.len() as u64);
                    tracing::debug!(
                        source = self.name(),
                        skipped = mapped.skipped.len(),
                        "Skipped webhook events of types the bridge does not load."
                    );
                }
                mapped.changes
            }
            Parsed::Notification(hints) => match self.fetch_hints(&hints).await {
                Ok(c) => c,
                Err(message) => return Verdict::Unavailable(message),
            },
        };
        let (changes, unselected): (Vec<ChangeEvent>, Vec<ChangeEvent>) =
            changes.into_iter().partition(|c| self.runtime.modules.contains(&c.module));
        if !unselected.is_empty() {
            webhook_events_skipped(self.name(), "module_not_selected", unselected.len() as u64);
            tracing::debug!(
                source = self.name(),
                count = unselected.len(),
                "Skipped webhook events of modules not selected."
            );
        }
        // The gauge keeps the last value set: per module, that of the delivery's last change.
        let mut lags: Vec<(crate::zoho::module::Module, i64)> = Vec::new();
        for c in &changes {
            match lags.iter_mut().find(|(m, _)| *m == c.module) {
                Some((_, lag)) => *lag = now - c.source_ts_ms,
                None => lags.push((c.module, now - c.source_ts_ms)),
            }
        }
        // Encoded here, side by side with other deliveries and while another group commits.
        let changes = match self.runtime.writer.encode(changes) {
            Ok(ready) => ready,
            Err(error) => return self.encode_verdict(error),
        };
        // Commit in its own task: if the HTTP deadline passes, the transaction still finishes (or aborts)
        // cleanly instead of being cut off half-way, and the deliveries grouped with this one get answered.
        // The delivery's room in the in-flight budget goes with its queued changes, not with the answer.
        let hold = delivery.hold;
        let verdict = match tokio::spawn(self.clone().group_commit(changes, hold)).await {
            Ok(v) => v,
            Err(_) => Verdict::Unavailable("commit task failed".into()),
        };
        if verdict == Verdict::Accepted {
            for (module, lag) in lags {
                metrics::gauge!(MILLISECONDS_BEHIND_SOURCE, "source" => self.name().to_owned(), "module" => module.name())
                    .set(lag.max(0) as f64);
                self.runtime.progress.update(module.name(), |p| p.lag_ms = Some(lag.max(0)));
            }
        }
        verdict
    }

    /// Verifies a delivery token. A token for another webhook id than the one known may come from this
    /// source's subscription re-created meanwhile (a new id): Desk's subscriptions decide, and until they
    /// say it is foreign the delivery is answered 503 (retry later), never refused for good.
    async fn check_token(
        self: &Arc<Self>,
        verifier: &JwksVerifier,
        token: &str,
        org: &str,
    ) -> Result<(), Verdict> {
        let arrived = std::time::Instant::now();
        let aud = self.webhook_id.read().ok().and_then(|w| w.clone());
        let error = match verifier.verify(token, org, aud.as_deref()).await {
            Ok(_) => {
                self.learn_subscription_id();
                return Ok(());
            }
            Err(error @ JwtError::Audience { .. }) if aud.is_some() => {
                // Everything but the audience is checked again, so only a token valid otherwise lists.
                match verifier.verify(token, org, None).await {
                    Ok(claims) => match self.confirm_audience(&claims.webhook_id, arrived).await {
                        Audience::Ours => return Ok(()),
                        Audience::Foreign => error,
                        Audience::Unknown => {
                            webhook_rejected(self.name(), error.reason());
                            return Err(Verdict::Unavailable(format!("{error}; retry later")));
                        }
                    },
                    Err(other) => other,
                }
            }
            Err(error) => error,
        };
        webhook_rejected(self.name(), error.reason());
        // Desk's key set being unreachable is our outage, not a forged request.
        Err(if error.status() == 503 {
            Verdict::Unavailable(error.to_string())
        } else {
            Verdict::Unauthorized(error.to_string())
        })
    }

    /// Whether webhook `id` is a subscription delivering to this service URL; if so, its id is the one
    /// expected from now on.
    async fn confirm_audience(&self, id: &str, arrived: std::time::Instant) -> Audience {
        let list = || async {
            crate::zoho::subscription::delivering_to(&self.desk, &self.service_url)
                .await
                .map(|subs| subs.into_iter().map(|s| s.id).collect::<Vec<_>>())
        };
        let audience = self.audience.check(id, arrived, list).await;
        if audience == Audience::Ours {
            if let Ok(mut slot) = self.webhook_id.write() {
                if slot.as_deref() != Some(id) {
                    tracing::info!(source = self.name(), webhook_id = %id, "Desk delivers from another subscription of this source now (re-created?); its id is the JWT audience expected.");
                    *slot = Some(id.to_owned());
                }
            }
        }
        audience
    }

    /// Queues `changes`, then commits every queued delivery (up to [`MAX_GROUP_EVENTS`]) once no other
    /// commit runs. A delivery another task already committed finds its verdict waiting.
    async fn group_commit(self: Arc<Self>, changes: Vec<Ready>, hold: InFlight) -> Verdict {
        let verdict = self.groups.submit(changes, |group| self.commit_group(group)).await;
        drop(hold);
        verdict
    }

    async fn commit_group(&self, group: Vec<Vec<Ready>>) -> Verdict {
        metrics::histogram!(WEBHOOK_GROUP_DELIVERIES, "source" => self.name().to_owned())
            .record(group.len() as f64);
        let deliveries = group.len();
        match self.runtime.writer.commit_ready(&self.producer, group, Vec::new()).await {
            Ok(_) => Verdict::Accepted,
            Err(CommitError::Produce(ProduceError::Fenced(id))) => {
                tracing::error!(source = self.name(), transactional_id = %id, "Another bridge instance took over this source's stream; refusing deliveries.");
                Verdict::Unavailable("another instance owns this source".into())
            }
            // Only a snapshot read is re-encoded under the lock, so webhook groups never get here; classified
            // like an encoding error before the lock all the same.
            Err(CommitError::Encode(error)) => self.encode_verdict(error),
            Err(error) => {
                tracing::warn!(source = self.name(), %error, deliveries, "Webhook deliveries not committed; answering 503.");
                Verdict::Unavailable("Kafka unavailable".into())
            }
        }
    }

    /// A delivery that could not be encoded: the registry's outage is ours (503, Desk retries); a record
    /// that fits no schema is the delivery's (400).
    fn encode_verdict(&self, error: EncodeError) -> Verdict {
        match error {
            error @ (EncodeError::Convert { .. } | EncodeError::Avro { .. }) => {
                webhook_rejected(self.name(), "unconvertible");
                tracing::warn!(source = self.name(), %error, "Webhook delivery cannot be encoded; answering 400.");
                Verdict::Malformed(error.to_string())
            }
            error => {
                tracing::warn!(source = self.name(), %error, "Webhook delivery not encoded; answering 503.");
                Verdict::Unavailable("schema registry unavailable".into())
            }
        }
    }

    /// Workflow notifications name a record; its current state comes from Desk (through the quota guard).
    async fn fetch_hints(&self, hints: &[Hint]) -> Result<Vec<ChangeEvent>, String> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut out = Vec::with_capacity(hints.len());
        for hint in hints {
            let spec = catalog::spec(hint.module);
            let found = self.desk.record(spec.path, &hint.id).await.map_err(|e| e.to_string())?;
            // A record gone from Desk (or marked deleted): the notification reported its deletion.
            out.push(ChangeEvent::refetched(
                hint.module,
                &hint.id,
                found,
                now,
                Some("Workflow_Notification"),
                "workflow",
            ));
        }
        Ok(out)
    }
}

/// The service URL's handler for every source.
pub struct StreamHandler {
    sources: HashMap<String, Arc<StreamSource>>,
    accepting: AtomicBool,
}

impl StreamHandler {
    pub fn new(sources: Vec<Arc<StreamSource>>) -> Self {
        Self {
            sources: sources.into_iter().map(|s| (s.name().to_owned(), s)).collect(),
            accepting: AtomicBool::new(true),
        }
    }

    /// Stops intake (new deliveries get 503) before shutdown drains.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }

    pub fn source(&self, name: &str) -> Option<&Arc<StreamSource>> {
        self.sources.get(name)
    }
}

impl DeliveryHandler for StreamHandler {
    fn authorised(&self, source: &str, secret: &str) -> bool {
        self.sources.get(source).is_some_and(|s| s.secret.ct_eq(secret))
    }

    fn knows(&self, source: &str) -> bool {
        self.sources.contains_key(source)
    }

    fn handle(&self, source: String, delivery: Delivery) -> BoxFuture<'static, Verdict> {
        use tracing::Instrument;
        let s = self.sources.get(&source).cloned();
        let span = tracing::info_span!("webhook", source = %source);
        Box::pin(
            async move {
                match s {
                    Some(s) => s.handle(delivery).await,
                    None => Verdict::Unauthorized("unknown source".into()),
                }
            }
            .instrument(span),
        )
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    /// A fake writer: records each group it commits.
    fn recorder(log: &Mutex<Vec<Vec<u32>>>) -> impl Fn(Vec<Vec<u32>>) -> std::future::Ready<Verdict> + '_ {
        move |group| {
            if let Ok(mut l) = log.lock() {
                l.push(group.into_iter().flatten().collect());
            }
            std::future::ready(Verdict::Accepted)
        }
    }

    #[tokio::test]
    async fn a_leader_whose_delivery_the_cap_left_queued_commits_it_too() {
        let groups: Groups<u32> = Groups::new(3);
        let log = Mutex::new(Vec::new());
        // A queues first but is not polled yet; L queues and takes the turn. The cap fits only A.
        let a = groups.enqueue(vec![1, 1, 1]).unwrap();
        let l = groups.enqueue(vec![2, 2]).unwrap();
        let verdict = tokio::time::timeout(Duration::from_secs(5), groups.await_or_lead(l, recorder(&log)))
            .await
            .expect("the leader waited for a verdict nobody would give");
        assert_eq!(verdict, Verdict::Accepted);
        assert_eq!(a.await.unwrap(), Verdict::Accepted);
        assert_eq!(*log.lock().unwrap(), vec![vec![1, 1, 1], vec![2, 2]]);
    }

    #[tokio::test]
    async fn deliveries_waiting_together_share_one_commit() {
        let groups: Groups<u32> = Groups::new(10);
        let log = Mutex::new(Vec::new());
        let a = groups.enqueue(vec![1]).unwrap();
        let b = groups.enqueue(vec![2]).unwrap();
        assert_eq!(groups.await_or_lead(b, recorder(&log)).await, Verdict::Accepted);
        assert_eq!(groups.await_or_lead(a, recorder(&log)).await, Verdict::Accepted);
        assert_eq!(*log.lock().unwrap(), vec![vec![1, 2]]);
    }
}
