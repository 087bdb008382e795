//! The admin server: `/metrics`, `/healthz`, `/readyz`, `/status`. Bound to a separate port from the
//! webhook server because metrics and status must not be public.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("admin server failed: {0}")]
    Serve(std::io::Error),
}

/// What the admin server asks the rest of the process.
pub trait Probe: Send + Sync + 'static {
    /// `Ok` when Kafka and the Desk token are usable; otherwise the reasons.
    fn ready(&self) -> Result<(), Vec<String>>;
    /// The `/status` document.
    fn status(&self) -> serde_json::Value;
}

#[derive(Clone)]
struct AdminState {
    metrics: Option<PrometheusHandle>,
    probe: Arc<dyn Probe>,
}

pub fn router(metrics: Option<PrometheusHandle>, probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(render_metrics))
        .with_state(AdminState { metrics, probe })
}

async fn readyz(State(s): State<AdminState>) -> Response {
    match s.probe.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reasons) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", reasons.join("; "))).into_response()
        }
    }
}

async fn status(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(s.probe.status())
}

async fn render_metrics(State(s): State<AdminState>) -> Response {
    let body = s.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Binds first (so a port clash fails start-up) and then serves until `shutdown` fires.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, AdminError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| AdminError::Bind { addr, source })
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<(), AdminError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(AdminError::Serve)
}
