//! Wiring for `zoho-desk-cdc run`: builds every long-lived task under one cancellation token and waits.

use crate::avro::registry::{RegistryClient, RegistryError};
use crate::config::{Settings, SnapshotMode};
use crate::http::admin::{self, Probe};
use crate::http::webhook;
use crate::pipeline::progress::SourceProgress;
use crate::pipeline::source::{SourceError, SourceRuntime};
use crate::pipeline::stream::{StreamHandler, StreamSource};
use crate::secret::Secret;
use crate::zoho::client::{ClientOptions, DeskClient};
use crate::zoho::error::ZohoError;
use crate::zoho::jwks::JwksVerifier;
use crate::zoho::registry::{DeskRegistry, shared_client_warnings};
use crate::zoho::subscription;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("source {source_name}: {error}")]
    Desk { source_name: String, error: ZohoError },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookServerError),
    #[error("source {0} has no webhook secret: set webhook_secret or run `zoho-desk-cdc auth` for it")]
    NoSecret(String),
    #[error("{0}")]
    Config(String),
    #[error(
        "source {0}: another instance with the same configuration took over (its Kafka transactional id fenced this one)"
    )]
    Fenced(String),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::ClientError),
    #[error("source {source_name}: its task ended abnormally ({message})")]
    TaskFailed { source_name: String, message: String },
    #[error(
        "stopped before every selected module's snapshot was committed (initial_only); run it again to resume from the committed cursors"
    )]
    Incomplete,
    #[error("source {source_name}: {error}")]
    Producer { source_name: String, error: crate::kafka::producer::ProduceError },
}

impl AppError {
    /// The process exit code (CONTRACT §2): 2 when the configuration or a missing set-up step (`auth`) is at
    /// fault, 1 for runtime failures. The wrapped errors are display fields, not `source()`s, so a caller
    /// walking the error chain cannot see them; hence this.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Desk { error, .. } => error.exit_code(),
            AppError::Config(_) | AppError::NoSecret(_) => 2,
            AppError::Kafka(error) => error.exit_code(),
            AppError::Source(SourceError::Config(..)) => 2,
            // The certificate or key named in the configuration is missing or unreadable.
            AppError::Webhook(webhook::WebhookServerError::Tls { .. }) => 2,
            _ => 1,
        }
    }
}

struct SourceHandle {
    name: String,
    progress: Arc<SourceProgress>,
    desk: DeskClient,
    error: Mutex<Option<String>>,
}

struct AppProbe {
    sources: Vec<Arc<SourceHandle>>,
    /// Set by a background check of the Kafka cluster.
    kafka_error: Arc<Mutex<Option<String>>>,
}

impl Probe for AppProbe {
    fn ready(&self) -> Result<(), Vec<String>> {
        let kafka = self.kafka_error.lock().ok().and_then(|e| e.clone()).map(|e| format!("Kafka: {e}"));
        let reasons: Vec<String> = kafka
            .into_iter()
            .chain(self.sources.iter().filter_map(|s| {
                let failed = s.error.lock().ok().and_then(|e| e.clone());
                failed
                    .or_else(|| s.desk.tokens().blocking_error())
                    .map(|reason| format!("source {}: {reason}", s.name))
            }))
            .collect();
        if reasons.is_empty() { Ok(()) } else { Err(reasons) }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "sources": self.sources.iter().map(|s| serde_json::json!({
                "name": s.name,
                "desk": s.desk.status(),
                "modules": s.progress.snapshot(),
                "last_error": s.error.lock().ok().and_then(|e| e.clone()),
            })).collect::<Vec<_>>(),
        })
    }
}

/// An idle producer learns that a newer instance fenced it only when it next writes: a small state record
/// every few seconds per idle role makes a takeover known promptly, and stops this instance. It bypasses
/// the ordering guard (it carries no events), so it never holds up a snapshot page or a webhook commit.
async fn heartbeat(
    rt: Arc<SourceRuntime>,
    stopped: Arc<Mutex<Option<AppError>>>,
    shutdown: CancellationToken,
) {
    use crate::kafka::producer::ProduceError;
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        for (role, producer) in [("snapshot", &rt.snapshot_producer), ("stream", &*rt.stream_producer)] {
            let beat = rt.writer.state_record(
                format!("heartbeat/{role}"),
                serde_json::json!({"ts_ms": chrono::Utc::now().timestamp_millis()}).to_string(),
            );
            match producer.write_if_idle(vec![beat], INTERVAL).await {
                Ok(_) => {}
                Err(ProduceError::Fenced(id)) => {
                    tracing::error!(source = rt.name(), transactional_id = %id,
                        "Another instance with the same configuration took over this source; stopping.");
                    if let Ok(mut f) = stopped.lock() {
                        f.get_or_insert_with(|| AppError::Fenced(rt.name().to_owned()));
                    }
                    shutdown.cancel();
                    return;
                }
                Err(error @ ProduceError::Fatal(_)) => {
                    tracing::error!(source = rt.name(), role, %error, "Kafka producer failed for good; stopping.");
                    if let Ok(mut f) = stopped.lock() {
                        f.get_or_insert(AppError::Producer { source_name: rt.name().to_owned(), error });
                    }
                    shutdown.cancel();
                    return;
                }
                Err(error) => tracing::debug!(source = rt.name(), role, %error, "Heartbeat not committed."),
            }
        }
    }
}

/// The state-topic key of the credits a source's quota guard counted spent today.
const CREDITS_KEY: &str = "quota/credits";

/// How often the day's spent credits are written to the state topic (a crash loses at most this much of
/// the count; Desk's own X-Rate-Limit-Remaining-v3 corrects it on the next call anyway).
const CREDITS_PERSIST_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Takes up the credits an earlier process of this source counted spent today.
fn restore_credits(rt: &SourceRuntime, quota: &crate::zoho::quota::QuotaGuard) {
    let Some(stored) = rt.stored_value(CREDITS_KEY) else { return };
    let day = stored["day"].as_str().and_then(|d| d.parse::<chrono::NaiveDate>().ok());
    match (day, stored["spent"].as_u64()) {
        (Some(day), Some(spent)) => quota.restore(day, spent),
        _ => {
            tracing::warn!(source = rt.name(), value = %stored, "Stored credit count unreadable; the day's count starts at 0.")
        }
    }
}

/// Writes the day's spent credits to the state topic whenever they changed, so a restart does not start
/// the daily budget afresh. One small transaction on the stream producer every few seconds at most, and a
/// last one when the bridge stops (which waits [`CREDITS_FINAL_WRITE`] at most for it), so a stop loses none
/// of the count.
async fn persist_credits(
    rt: Arc<SourceRuntime>,
    quota: crate::zoho::quota::QuotaGuard,
    shutdown: CancellationToken,
) {
    let mut written = None;
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(CREDITS_PERSIST_INTERVAL) => false,
        };
        let (day, spent) = quota.spent();
        if written != Some((day, spent)) {
            let record = rt.writer.state_record(
                CREDITS_KEY.to_owned(),
                serde_json::json!({"day": day.to_string(), "spent": spent}).to_string(),
            );
            match rt.stream_producer.write(vec![record]).await {
                Ok(()) => written = Some((day, spent)),
                // The producer is gone for good; the heartbeat reports it and stops the bridge.
                Err(
                    error @ (crate::kafka::producer::ProduceError::Fenced(_)
                    | crate::kafka::producer::ProduceError::Fatal(_)),
                ) => {
                    tracing::warn!(source = rt.name(), %error, "Stopped persisting the day's spent API credits.");
                    return;
                }
                Err(error) => {
                    tracing::warn!(source = rt.name(), %error, spent, retrying = !stopping,
                        "Could not persist the day's spent API credits.")
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// How long a stopping bridge waits for the last writes of the day's spent credits (a Kafka outage must not
/// hold the stop).
const CREDITS_FINAL_WRITE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for `tasks` to end, `within` in all; false if time ran out first. `what` names them in the log.
async fn join_within(
    tasks: Vec<tokio::task::JoinHandle<()>>,
    within: std::time::Duration,
    what: &str,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "{what} task ended abnormally."),
            Err(_) => return false,
        }
    }
    true
}

/// How long the load waits for the webhook subscription to be in place (see `run`).
const REGISTRATION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a stop waits for a reconcile pass's pending commit (Kubernetes allows the pod 90 s in all).
const RECONCILE_FINAL_COMMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Readiness needs to know whether the cluster answers; ask it every few seconds.
async fn watch_kafka(
    kafka: crate::config::KafkaSettings,
    slot: Arc<Mutex<Option<String>>>,
    shutdown: CancellationToken,
) {
    loop {
        let outcome = match crate::kafka::ping(&kafka).await {
            Ok(_) => None,
            // `ping` has taken credentials out of the text: it is shown on /readyz.
            Err(e) => Some(e.to_string()),
        };
        if let Ok(mut s) = slot.lock() {
            *s = outcome;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    }
}

/// The stream side of one source: its producer, webhook secret and JWT verifier.
async fn stream_source(
    runtime: Arc<SourceRuntime>,
    desk: DeskClient,
    public_url: &str,
) -> Result<StreamSource, AppError> {
    let settings = &runtime.settings;
    let name = settings.name.clone();
    let desk_err = |error: ZohoError| AppError::Desk { source_name: name.clone(), error };
    let secret = crate::zoho::auth::webhook_secret(settings)
        .map_err(desk_err)?
        .ok_or_else(|| AppError::NoSecret(name.clone()))?;
    let verifier = if settings.verify_jwt {
        Some(JwksVerifier::new(
            &settings.desk_base().map_err(|e| AppError::Config(e.to_string()))?,
            desk.http(),
        ))
    } else {
        None
    };
    let producer = runtime.stream_producer.clone();
    let service_url =
        Secret::new(crate::zoho::auth::service_url(public_url, &runtime.settings.name, &secret));
    Ok(StreamSource::new(runtime, desk, producer, secret, service_url, verifier))
}

/// Creates or updates the source's Desk webhook subscription (Desk validates the URL with a GET, so the
/// webhook server must already be serving) and remembers its id for the JWT audience check.
async fn register_subscription(stream: Arc<StreamSource>, url: Secret) {
    let name = subscription::default_name(&stream.runtime.settings.name);
    match subscription::register(&stream.desk, &url, &name).await {
        Ok(reg) => {
            tracing::info!(source = %stream.runtime.settings.name, webhook_id = %reg.subscription.id,
                action = ?reg.action, url = %reg.subscription.redacted_url(), "Desk webhook subscription is in place.");
            if let Ok(mut slot) = stream.webhook_id.write() {
                *slot = Some(reg.subscription.id.clone());
            }
        }
        Err(error) => tracing::error!(source = %stream.runtime.settings.name, %error,
            "Cannot register the Desk webhook subscription; changes will arrive only through reconciliation."),
    }
}

type SourceTaskOutput = (SnapshotMode, Result<bool, SourceError>);

/// Waits for every source's snapshot task. Returns the first failure (a source error, or a task that
/// panicked or was cancelled) and whether every task reported its modules' snapshots all committed; any
/// failure cancels `shutdown` so the rest of the bridge stops too.
async fn join_sources(
    mut tasks: JoinSet<SourceTaskOutput>,
    names: &HashMap<tokio::task::Id, String>,
    shutdown: &CancellationToken,
) -> (Option<AppError>, bool) {
    let mut failure = None;
    let mut all_committed = true;
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, (mode, Ok(all_done)))) => {
                all_committed &= all_done;
                if mode != SnapshotMode::InitialOnly && all_done {
                    tracing::info!("Snapshot committed; streaming webhook changes and reconciling.");
                }
            }
            Ok((_, (_, Err(error)))) => {
                all_committed = false;
                tracing::error!(%error, "Source failed; stopping.");
                failure.get_or_insert(AppError::Source(error));
                shutdown.cancel();
            }
            Err(error) => {
                all_committed = false;
                let source_name = names.get(&error.id()).cloned().unwrap_or_else(|| "?".into());
                tracing::error!(source = %source_name, %error, "Source task ended abnormally; stopping.");
                failure.get_or_insert(AppError::TaskFailed { source_name, message: error.to_string() });
                shutdown.cancel();
            }
        }
    }
    (failure, all_committed)
}

/// Runs the bridge until `shutdown` fires (or, with `initial_only`, until every snapshot is committed).
pub async fn run(
    settings: Settings,
    snapshot_mode: Option<SnapshotMode>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    crate::kafka::validate_properties(&settings.kafka)?;
    let metrics = crate::metrics::install();
    for warning in shared_client_warnings(&settings.sources) {
        tracing::warn!("{warning}");
    }
    let desks = DeskRegistry::new(ClientOptions::default());
    let mut handles = Vec::new();
    for s in &settings.sources {
        let modules = s.selected_modules().unwrap_or_default();
        crate::metrics::init_source(&s.name, &modules);
        let desk = desks.client(s).map_err(|error| AppError::Desk { source_name: s.name.clone(), error })?;
        let progress = Arc::new(SourceProgress::default());
        progress.add_pending(modules.iter().map(|m| m.name()));
        handles.push(Arc::new(SourceHandle {
            name: s.name.clone(),
            progress,
            desk,
            error: Mutex::new(None),
        }));
    }
    let kafka_error = Arc::new(Mutex::new(None));
    tokio::spawn(watch_kafka(settings.kafka.clone(), kafka_error.clone(), shutdown.clone()));
    let probe = Arc::new(AppProbe { sources: handles.clone(), kafka_error });
    let listener = admin::bind(settings.http.admin_listen).await?;
    let admin_addr = listener.local_addr().unwrap_or(settings.http.admin_listen);
    tracing::info!(addr = %admin_addr, "Admin server listening (/metrics /healthz /readyz /status).");
    let admin_task = tokio::spawn(admin::serve(listener, admin::router(metrics, probe), shutdown.clone()));

    // The service URL's port and certificate are taken before any producer starts: starting one fences a
    // running instance with the same transactional ids, so a port in use or a bad certificate must stop this
    // instance before it gets that far.
    let webhook_listener = webhook::bind(settings.http.webhook_listen).await?;
    let tls = if settings.http.tls_cert.is_empty() {
        None
    } else {
        let files = webhook::TlsFiles {
            cert: settings.http.tls_cert.clone().into(),
            key: settings.http.tls_key.clone().into(),
        };
        Some(webhook::load_tls(&files).await?)
    };

    let registry = RegistryClient::discover(&settings.schema_registry.url).await?;
    let mut runtimes = Vec::new();
    for (source, handle) in settings.sources.iter().zip(&handles) {
        let rt = SourceRuntime::prepare(&settings.kafka, &registry, source, handle.progress.clone()).await?;
        restore_credits(&rt, handle.desk.quota());
        runtimes.push(Arc::new(rt));
    }

    // The service URL is up before the snapshot starts, so nothing that changes meanwhile is missed.
    let mut streams = Vec::new();
    for (rt, handle) in runtimes.iter().zip(&handles) {
        streams
            .push(Arc::new(stream_source(rt.clone(), handle.desk.clone(), &settings.http.public_url).await?));
    }
    let stream_handler = Arc::new(StreamHandler::new(streams));
    let webhook_addr = webhook_listener.local_addr().unwrap_or(settings.http.webhook_listen);
    for s in &settings.sources {
        tracing::info!(source = %s.name, addr = %webhook_addr,
            service_url = %format!("{}/webhooks/zoho/{}/<webhook_secret>", settings.http.public_url.trim_end_matches('/'), s.name),
            "Webhook service URL listening.");
    }
    let max_inflight = settings.http.webhook_max_inflight_mib as usize * 1024 * 1024;
    let app = webhook::router(stream_handler.clone(), max_inflight);
    let webhook_task = match tls {
        None => tokio::spawn(webhook::serve(webhook_listener, app, shutdown.clone())),
        Some(tls) => {
            tracing::info!("Serving the service URL over HTTPS.");
            tokio::spawn(webhook::serve_tls(webhook_listener, app, tls, shutdown.clone()))
        }
    };

    let mut registrations = Vec::new();
    for source in &settings.sources {
        if let Some(stream) = stream_handler.source(&source.name) {
            if source.register_webhook {
                registrations
                    .push(tokio::spawn(register_subscription(stream.clone(), stream.service_url.clone())));
            }
        }
    }
    // The subscription is in place before any walk starts: a module walked before Desk delivers its changes
    // would miss those made between its walk and the subscription (a walk sees the records as they are when
    // it passes them) until the reconciler's next pass. Bounded, so a slow Desk only delays the load.
    tokio::select! {
        done = join_within(registrations, REGISTRATION_WAIT, "Webhook registration") => if !done {
            tracing::warn!("The webhook subscription is not confirmed yet; starting the load anyway. Changes made meanwhile to modules already loaded arrive through reconciliation.");
        },
        _ = shutdown.cancelled() => {}
    }

    let mut reconcilers = Vec::new();
    for (rt, handle) in runtimes.iter().zip(&handles) {
        let (rt, handle, shutdown) = (rt.clone(), handle.clone(), shutdown.clone());
        let interval = std::time::Duration::from_secs(rt.settings.reconcile_interval_s);
        let span = tracing::info_span!("reconcile", source = %rt.name());
        reconcilers.push(tokio::spawn(
            async move { crate::pipeline::reconcile::run(&rt, &handle.desk, interval, &shutdown).await }
                .instrument(span),
        ));
    }

    let stopped: Arc<Mutex<Option<AppError>>> = Arc::new(Mutex::new(None));
    for rt in &runtimes {
        let span = tracing::info_span!("heartbeat", source = %rt.name());
        tokio::spawn(heartbeat(rt.clone(), stopped.clone(), shutdown.clone()).instrument(span));
    }
    let mut credit_tasks = Vec::new();
    for (rt, handle) in runtimes.iter().zip(&handles) {
        let span = tracing::info_span!("credits", source = %rt.name());
        let quota = handle.desk.quota().clone();
        credit_tasks
            .push(tokio::spawn(persist_credits(rt.clone(), quota, shutdown.clone()).instrument(span)));
    }

    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    for (rt, handle) in runtimes.iter().zip(&handles) {
        let mode = snapshot_mode.unwrap_or(rt.settings.snapshot_mode);
        let (rt, handle, shutdown) = (rt.clone(), handle.clone(), shutdown.clone());
        let span = tracing::info_span!("snapshot", source = %rt.name());
        let name = rt.name().to_owned();
        let task = tasks.spawn(
            async move {
                let result = rt.run_snapshot(&handle.desk, mode, &shutdown).await;
                if let Err(e) = &result {
                    if let Ok(mut slot) = handle.error.lock() {
                        *slot = Some(e.to_string());
                    }
                }
                (mode, result)
            }
            .instrument(span),
        );
        names.insert(task.id(), name);
    }

    let (mut failure, all_committed) = join_sources(tasks, &names, &shutdown).await;
    // The command-line mode overrides every source's, as for the tasks above.
    let initial_only = snapshot_mode.map_or_else(
        || settings.sources.iter().all(|s| s.snapshot_mode == SnapshotMode::InitialOnly),
        |m| m == SnapshotMode::InitialOnly,
    );
    if initial_only && failure.is_none() {
        if all_committed {
            tracing::info!("Every selected module's snapshot is committed (initial_only); exiting.");
        }
        shutdown.cancel();
    }
    shutdown.cancelled().await;
    stream_handler.stop_accepting();
    match webhook_task.await {
        Ok(Err(error)) => tracing::warn!(%error, "Webhook server ended with an error."),
        Err(error) => tracing::warn!(%error, "Webhook server task ended abnormally."),
        Ok(Ok(())) => {}
    }
    // A pass stops at its next Desk call, but a commit it started is let finish: left to the runtime's
    // teardown it would be dropped mid-transaction (aborted, so nothing lost, but the pass's work redone).
    if !join_within(reconcilers, RECONCILE_FINAL_COMMIT, "Reconcile").await {
        tracing::warn!(
            "A reconcile commit was still pending at shutdown; its watermark did not move, so the next start finds those changes again."
        );
    }
    if !join_within(credit_tasks, CREDITS_FINAL_WRITE, "Credit persisting").await {
        tracing::warn!("The day's spent API credits were not persisted on shutdown in time.");
    }
    for name in settings.sources.iter().map(|s| s.name.as_str()) {
        if let Some(s) = stream_handler.source(name) {
            s.producer.flush().await;
        }
    }
    match admin_task.await {
        Ok(result) => result?,
        Err(error) => tracing::warn!(%error, "Admin server task ended abnormally."),
    }
    if let Some(reason) = stopped.lock().ok().and_then(|mut f| f.take()) {
        failure.get_or_insert(reason);
    }
    // Stopped (SIGTERM, Ctrl-C) before the load finished: exit 0 would tell a job runner it did.
    if initial_only && !all_committed {
        failure.get_or_insert(AppError::Incomplete);
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("Stopped cleanly.");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn set_up_and_config_errors_exit_2_runtime_errors_1() {
        let desk = |error| AppError::Desk { source_name: "main".into(), error };
        let not_authorized = ZohoError::NotAuthorized { source_name: "main".into(), path: "c.json".into() };
        assert_eq!(desk(not_authorized).exit_code(), 2);
        assert_eq!(desk(ZohoError::RefreshTokenRejected { source_name: "main".into() }).exit_code(), 1);
        assert_eq!(AppError::NoSecret("main".into()).exit_code(), 2);
        let kafka = crate::kafka::ClientError::Config { key: "sasl.pasword".into(), message: "x".into() };
        assert_eq!(AppError::Kafka(kafka).exit_code(), 2);
        assert_eq!(AppError::Fenced("main".into()).exit_code(), 1);
        assert_eq!(AppError::Incomplete.exit_code(), 1);
    }

    fn spawn(
        tasks: &mut JoinSet<SourceTaskOutput>,
        names: &mut HashMap<tokio::task::Id, String>,
        name: &str,
        f: impl std::future::Future<Output = SourceTaskOutput> + Send + 'static,
    ) {
        names.insert(tasks.spawn(f).id(), name.to_owned());
    }

    #[tokio::test]
    async fn a_panicked_source_task_is_a_failure_and_stops_the_bridge() {
        let (mut tasks, mut names, shutdown) = (JoinSet::new(), HashMap::new(), CancellationToken::new());
        spawn(&mut tasks, &mut names, "good", async { (SnapshotMode::Initial, Ok(true)) });
        spawn(&mut tasks, &mut names, "bad", async { panic!("boom") });
        let (failure, all_committed) = join_sources(tasks, &names, &shutdown).await;
        let failure = failure.unwrap();
        assert!(
            matches!(&failure, AppError::TaskFailed { source_name, .. } if source_name == "bad"),
            "{failure}"
        );
        assert_eq!(failure.exit_code(), 1);
        assert!(!all_committed);
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn all_committed_only_when_every_source_reports_it() {
        let (mut tasks, mut names, shutdown) = (JoinSet::new(), HashMap::new(), CancellationToken::new());
        spawn(&mut tasks, &mut names, "a", async { (SnapshotMode::InitialOnly, Ok(true)) });
        spawn(&mut tasks, &mut names, "b", async { (SnapshotMode::InitialOnly, Ok(false)) });
        let (failure, all_committed) = join_sources(tasks, &names, &shutdown).await;
        assert!(failure.is_none() && !all_committed && !shutdown.is_cancelled());
        let (mut tasks, mut names) = (JoinSet::new(), HashMap::new());
        spawn(&mut tasks, &mut names, "a", async { (SnapshotMode::InitialOnly, Ok(true)) });
        let (failure, all_committed) = join_sources(tasks, &names, &shutdown).await;
        assert!(failure.is_none() && all_committed);
    }
}
