//! The ZoHo Desk simulator: Zoho Accounts OAuth, the Desk REST API v1, webhooks, and a control API
//! for tests, all behaving as `reference/zoho-desk-api.md` documents Desk, inconvenient parts included.
//!
//! It shares no Desk-facing code with the bridge, so a misreading of Desk on one side is not mirrored
//! on the other. Run it in-process with [`Simulator::start`] or [`serve`].

pub mod api;
pub mod config;
pub mod control;
pub mod data;
pub mod errors;
pub mod faults;
pub mod fields;
pub mod jwt;
pub mod module;
pub mod mutate;
pub mod oauth;
pub mod query;
pub mod quota;
pub mod render;
pub mod rng;
pub mod stats;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{DeletePayload, DeleteStyle, Edition, FailurePolicy, FieldsMode, SimConfig};
pub use data::Scale;
pub use module::Module;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error(transparent)]
    Jwt(#[from] jwt::JwtError),
}

/// Locks a mutex, carrying on with the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Everything a running simulator holds.
pub struct Sim {
    pub cfg: SimConfig,
    pub store: RwLock<data::Store>,
    pub oauth: Mutex<oauth::OAuth>,
    pub quota: quota::Quota,
    pub faults: Mutex<faults::Faults>,
    pub stats: stats::Stats,
    pub signer: jwt::Signer,
    pub webhooks: Mutex<webhooks::Webhooks>,
    pub http: reqwest::Client,
    pub rng: Mutex<rng::Rng>,
    pub shutdown: CancellationToken,
    /// Cliq notifications queue (when `cliq_url` is set).
    pub cliq_tx: Option<tokio::sync::mpsc::UnboundedSender<serde_json::Value>>,
}

impl Sim {
    /// Generates the org and starts the background workers.
    pub fn new(cfg: SimConfig, shutdown: CancellationToken) -> Result<Arc<Self>, SimError> {
        let started = Instant::now();
        let store = data::Store::generate(cfg.seed, &cfg.scale, cfg.data_end_ms);
        let http = reqwest::Client::builder()
            .timeout(cfg.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(SimError::Client)?;
        let signer = jwt::Signer::generate(cfg.webhook_jwt_ttl_s)?;
        let (cliq_tx, cliq_rx) = if cfg.cliq_url.is_some() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let sim = Arc::new(Sim {
            oauth: Mutex::new(oauth::OAuth::new(cfg.seed)),
            quota: quota::Quota::default(),
            faults: Mutex::new(faults::Faults::new(cfg.seed)),
            stats: stats::Stats::default(),
            signer,
            webhooks: Mutex::new(webhooks::Webhooks::default()),
            http,
            rng: Mutex::new(rng::Rng::new(cfg.seed ^ 0x3u64)),
            shutdown,
            cliq_tx,
            store: RwLock::new(store),
            cfg,
        });
        if let Some(rx) = cliq_rx {
            tokio::spawn(webhooks::cliq_worker(sim.clone(), rx));
        }
        tracing::info!(
            tickets = read(&sim.store).len(Module::Tickets),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "simulated org generated"
        );
        Ok(sim)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .merge(api::routes())
            .merge(control::routes())
            .layer(middleware::from_fn_with_state(self.clone(), count_requests))
            .with_state(self.clone())
    }
}

/// Feeds `requests_total` and `status_counts`; control calls are not Desk traffic and are not counted.
async fn count_requests(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let counted = !req.uri().path().starts_with("/_sim/");
    let resp = next.run(req).await;
    if counted {
        sim.stats.record(resp.status().as_u16());
    }
    resp
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn serve(
    config: SimConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let sim = Sim::new(config, shutdown.clone())?;
    serve_sim(sim, listener, shutdown).await
}

/// Serves an already generated simulator (lets a caller report readiness once data exists).
pub async fn serve_sim(
    sim: Arc<Sim>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let app = sim.router();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(SimError::Serve)
}

/// A simulator running in the background (tests, demos).
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), SimError>>,
}

impl SimHandle {
    /// `http://127.0.0.1:port`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) -> Result<(), SimError> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(SimError::Serve(std::io::Error::other(e))),
        }
    }
}

pub struct Simulator;

impl Simulator {
    /// Binds `addr` (e.g. "127.0.0.1:0") and serves in a background task.
    pub async fn start(config: SimConfig, addr: &str) -> Result<SimHandle, SimError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr: addr.to_owned(), source })?;
        let local =
            listener.local_addr().map_err(|source| SimError::Bind { addr: addr.to_owned(), source })?;
        let shutdown = CancellationToken::new();
        let sim = Sim::new(config, shutdown.clone())?;
        let task = tokio::spawn(serve_sim(sim.clone(), listener, shutdown.clone()));
        Ok(SimHandle { addr: local, sim, shutdown, task })
    }
}
