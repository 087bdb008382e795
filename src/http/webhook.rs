//! The webhook server: Desk's service URL `{public_url}/webhooks/zoho/{source}/{secret}`.
//!
//! `GET` answers Desk's validation call. `POST` hands the delivery to the orchestrator's handler and
//! answers only with what the handler says after Kafka confirmed (or failed), within a deadline inside
//! Desk's 5 s budget. Never 410: that would make Desk delete the subscription.

use crate::metrics::{WEBHOOK_INFLIGHT_BYTES, WEBHOOK_REQUESTS_TOTAL, webhook_rejected};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Largest delivery accepted (Desk batches events; 5 MiB is far above any real batch).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Answer before Desk's 5 s timeout, leaving room for the network.
pub const DEADLINE: Duration = Duration::from_millis(4500);

#[derive(Debug, thiserror::Error)]
pub enum WebhookServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("webhook server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot load the TLS certificate {cert} / key {key} (http.tls_cert / http.tls_key): {source}")]
    Tls { cert: String, key: String, source: std::io::Error },
}

/// PEM files for serving the service URL over HTTPS (port 443 without a proxy).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Loads the certificate and key once, so a bad pair fails start-up rather than the first handshake.
pub async fn load_tls(files: &TlsFiles) -> Result<axum_server::tls_rustls::RustlsConfig, WebhookServerError> {
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key).await.map_err(|source| {
        WebhookServerError::Tls {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            source,
        }
    })
}

/// As [`serve`], over HTTPS.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: axum_server::tls_rustls::RustlsConfig,
    shutdown: CancellationToken,
) -> Result<(), WebhookServerError> {
    let std_listener = listener.into_std().map_err(WebhookServerError::Serve)?;
    let handle = axum_server::Handle::new();
    let on_shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        on_shutdown.graceful_shutdown(Some(DEADLINE));
    });
    axum_server::from_tcp_rustls(std_listener, tls)
        .map_err(WebhookServerError::Serve)?
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .map_err(WebhookServerError::Serve)
}

/// One delivery as received.
#[derive(Debug)]
pub struct Delivery {
    pub body: Bytes,
    /// The `X-ZDesk-JWT` header, if any.
    pub jwt: Option<String>,
    /// The delivery's share of the in-flight budget. The answer can go (503 at the deadline) while work for
    /// the delivery is still queued: the handler keeps this with that work, so the budget bounds it too.
    pub hold: InFlight,
}

/// The handler's verdict, mapped to HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Committed to Kafka (or nothing to commit).
    Accepted,
    /// Malformed body: 400.
    Malformed(String),
    /// Bad or missing JWT, or a delivery for another org: 401.
    Unauthorized(String),
    /// Kafka unavailable or the commit would miss the deadline: 503.
    Unavailable(String),
}

/// What the orchestrator provides; the server knows nothing of the pipeline.
pub trait DeliveryHandler: Send + Sync + 'static {
    /// Constant-time check of the secret path segment; `false` for unknown sources.
    fn authorised(&self, source: &str, secret: &str) -> bool;
    /// Whether `source` is one of ours (bounds the metric label).
    fn knows(&self, source: &str) -> bool;
    /// Verifies, commits and answers one delivery.
    fn handle(&self, source: String, delivery: Delivery) -> BoxFuture<'static, Verdict>;
    /// False while shutting down: new deliveries get 503.
    fn accepting(&self) -> bool;
}

#[derive(Clone)]
struct AppState {
    handler: Arc<dyn DeliveryHandler>,
    intake: Intake,
}

/// Bounds the webhook bodies handled at once, in KiB of declared length: a flood past it gets 503 before its
/// body is read, so memory stays bounded and Desk retries later.
#[derive(Clone)]
struct Intake {
    kib: Arc<Semaphore>,
}

impl Intake {
    fn new(max_inflight_bytes: usize) -> Self {
        let kib = (max_inflight_bytes / 1024).clamp(MAX_BODY_BYTES / 1024, Semaphore::MAX_PERMITS);
        Self { kib: Arc::new(Semaphore::new(kib)) }
    }

    /// Room for a body of `bytes`, or `None` when too much is in flight.
    pub(crate) fn admit(&self, bytes: usize) -> Option<InFlight> {
        let kib = kib_of(bytes);
        let permit = self.kib.clone().try_acquire_many_owned(u32::try_from(kib).ok()?).ok()?;
        metrics::gauge!(WEBHOOK_INFLIGHT_BYTES).increment((kib * 1024) as f64);
        Some(InFlight { permit, bytes: kib * 1024 })
    }
}

/// The KiB of the in-flight budget a body of `bytes` takes.
fn kib_of(bytes: usize) -> usize {
    bytes.div_ceil(1024).clamp(1, MAX_BODY_BYTES / 1024)
}

/// Room taken in the in-flight budget, given back when dropped.
pub struct InFlight {
    permit: OwnedSemaphorePermit,
    bytes: usize,
}

impl InFlight {
    /// Gives back the room taken beyond a body of `bytes`: a body sent without Content-Length is counted
    /// at the largest size until it has been read, and the rest is held until its commit is done.
    fn shrink_to(&mut self, bytes: usize) {
        let excess = (self.bytes / 1024).saturating_sub(kib_of(bytes));
        if excess > 0 && self.permit.split(excess).is_some() {
            self.bytes -= excess * 1024;
            metrics::gauge!(WEBHOOK_INFLIGHT_BYTES).decrement((excess * 1024) as f64);
        }
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("bytes", &self.bytes).finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(WEBHOOK_INFLIGHT_BYTES).decrement(self.bytes as f64);
    }
}

/// The service URL's routes. `max_inflight_bytes` bounds the delivery bodies handled at once.
pub fn router(handler: Arc<dyn DeliveryHandler>, max_inflight_bytes: usize) -> Router {
    Router::new()
        .route("/webhooks/zoho/{source}/{secret}", get(validate).post(deliver).fallback(wrong_method))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { handler, intake: Intake::new(max_inflight_bytes) })
        .fallback(|| async {
            // Any other path: counted under `unknown`, since the path names no source we can trust.
            count_label("unknown", StatusCode::NOT_FOUND);
            webhook_rejected("unknown", "not_found");
            (StatusCode::NOT_FOUND, "not found\n")
        })
}

/// The metric label of a path's source: itself when configured, else `unknown` (bounded).
fn source_label(state: &AppState, source: &str) -> String {
    if state.handler.knows(source) { source.to_owned() } else { "unknown".to_owned() }
}

fn count(state: &AppState, source: &str, status: StatusCode) {
    count_label(&source_label(state, source), status);
}

fn count_label(source: &str, status: StatusCode) {
    metrics::counter!(WEBHOOK_REQUESTS_TOTAL, "source" => source.to_owned(), "status" => status.as_u16().to_string())
        .increment(1);
}

async fn validate(State(state): State<AppState>, Path((source, secret)): Path<(String, String)>) -> Response {
    let status =
        if state.handler.authorised(&source, &secret) { StatusCode::OK } else { StatusCode::NOT_FOUND };
    count(&state, &source, status);
    if status != StatusCode::OK {
        webhook_rejected(&source_label(&state, &source), "not_found");
    }
    (status, if status == StatusCode::OK { "ok\n" } else { "not found\n" }).into_response()
}

/// Methods other than GET and POST: 405 at the right secret, else the same 404 as any wrong URL.
async fn wrong_method(
    State(state): State<AppState>,
    Path((source, secret)): Path<(String, String)>,
) -> Response {
    let (status, reason, text) = if state.handler.authorised(&source, &secret) {
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "only GET and POST\n")
    } else {
        (StatusCode::NOT_FOUND, "not_found", "not found\n")
    };
    count(&state, &source, status);
    webhook_rejected(&source_label(&state, &source), reason);
    (status, text).into_response()
}

async fn deliver(
    State(state): State<AppState>,
    Path((source, secret)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (status, message) = answer(&state, &source, &secret, request).await;
    count(&state, &source, status);
    if status != StatusCode::OK {
        tracing::debug!(source = %source, status = status.as_u16(), reason = %message, "Webhook delivery refused.");
    }
    (status, message).into_response()
}

/// Reads and drops a refused body, chunk by chunk (nothing kept) and bounded in time, so the client reads the 503
/// instead of a broken pipe; nothing of it is kept.
async fn discard(body: axum::body::Body) {
    use futures::StreamExt;
    let mut chunks = body.into_data_stream();
    let drain = async { while let Some(Ok(_chunk)) = chunks.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

async fn answer(state: &AppState, source: &str, secret: &str, request: Request) -> (StatusCode, String) {
    let label = source_label(state, source);
    if !state.handler.authorised(source, secret) {
        webhook_rejected(&label, "not_found");
        return (StatusCode::NOT_FOUND, "not found\n".into());
    }
    if !state.handler.accepting() {
        webhook_rejected(&label, "shutting_down");
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        webhook_rejected(&label, "too_large");
        discard(request.into_body()).await;
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {MAX_BODY_BYTES} bytes\n"));
    }
    let Some(mut hold) = state.intake.admit(declared.unwrap_or(MAX_BODY_BYTES)) else {
        webhook_rejected(&label, "overloaded");
        discard(request.into_body()).await;
        return (StatusCode::SERVICE_UNAVAILABLE, "too many deliveries in flight; retry later\n".into());
    };
    let jwt = request.headers().get("x-zdesk-jwt").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match Bytes::from_request(request, &()).await {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let reason =
                if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "body_unreadable" };
            webhook_rejected(&label, reason);
            return (status, format!("{}\n", rejection.body_text()));
        }
    };
    hold.shrink_to(body.len());
    let work = state.handler.handle(source.to_owned(), Delivery { body, jwt, hold });
    match tokio::time::timeout(DEADLINE, work).await {
        Err(_) => {
            webhook_rejected(&label, "timeout");
            (StatusCode::SERVICE_UNAVAILABLE, "commit did not finish in time\n".into())
        }
        Ok(Verdict::Accepted) => (StatusCode::OK, "ok\n".into()),
        Ok(Verdict::Malformed(m)) => (StatusCode::BAD_REQUEST, format!("{m}\n")),
        Ok(Verdict::Unauthorized(m)) => (StatusCode::UNAUTHORIZED, format!("{m}\n")),
        Ok(Verdict::Unavailable(m)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{m}\n")),
    }
}

pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, WebhookServerError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| WebhookServerError::Bind { addr, source })
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), WebhookServerError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(WebhookServerError::Serve)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_body_without_length_keeps_only_its_own_room_once_read() {
        let intake = Intake::new(MAX_BODY_BYTES);
        let mut hold = intake.admit(MAX_BODY_BYTES).unwrap();
        assert!(intake.admit(1).is_none(), "the whole budget is taken until the body is read");
        hold.shrink_to(3_000);
        assert_eq!(hold.bytes, 3 * 1024);
        assert_eq!(intake.kib.available_permits(), MAX_BODY_BYTES / 1024 - 3);
        drop(hold);
        assert_eq!(intake.kib.available_permits(), MAX_BODY_BYTES / 1024);
    }

    /// A handler whose work for a delivery outlives its answer (as a commit queued behind a stuck one
    /// does) until `release`.
    struct Lingering {
        release: Arc<tokio::sync::Notify>,
    }

    impl DeliveryHandler for Lingering {
        fn authorised(&self, _: &str, _: &str) -> bool {
            true
        }

        fn knows(&self, _: &str) -> bool {
            true
        }

        fn handle(&self, _: String, delivery: Delivery) -> BoxFuture<'static, Verdict> {
            let release = self.release.clone();
            Box::pin(async move {
                tokio::spawn(async move {
                    let _hold = delivery.hold;
                    release.notified().await;
                });
                Verdict::Unavailable("queued".into())
            })
        }

        fn accepting(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn work_queued_past_the_answer_keeps_its_room_in_the_budget() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = router(Arc::new(Lingering { release: release.clone() }), MAX_BODY_BYTES);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/zoho/main/s", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, app, stop.clone()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let post = |body: Vec<u8>| http.post(&url).body(body).send();

        // The whole budget: answered, its work still queued.
        let first = post(vec![b' '; MAX_BODY_BYTES]).await.unwrap();
        assert_eq!((first.status().as_u16(), first.text().await.unwrap()), (503, "queued\n".into()));
        let second = post(b"[]".to_vec()).await.unwrap();
        assert_eq!(second.status().as_u16(), 503);
        assert!(second.text().await.unwrap().contains("too many deliveries in flight"));

        // Once the work is done its room is free again.
        release.notify_one();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = post(b"[]".to_vec()).await.unwrap();
            if r.text().await.unwrap() == "queued\n" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the budget was never given back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        release.notify_waiters();
        let _ = server.await;
    }
}
