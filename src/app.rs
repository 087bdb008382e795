//! Wiring for `zoho-desk-cdc run`: builds every long-lived task under one cancellation token and waits.

use crate::avro::registry::{RegistryClient, RegistryError};
use crate::config::{Settings, SnapshotMode};
use crate::http::admin::{self, Probe};
use crate::pipeline::progress::SourceProgress;
use crate::pipeline::source::{self, SourceError};
use crate::zoho::client::{ClientOptions, DeskClient};
use crate::zoho::error::ZohoError;
use crate::zoho::registry::{DeskRegistry, shared_client_warnings};
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
}

struct SourceHandle {
    name: String,
    progress: Arc<SourceProgress>,
    desk: DeskClient,
    error: Mutex<Option<String>>,
}

struct AppProbe {
    sources: Vec<Arc<SourceHandle>>,
}

impl Probe for AppProbe {
    fn ready(&self) -> Result<(), Vec<String>> {
        let reasons: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| {
                let failed = s.error.lock().ok().and_then(|e| e.clone());
                failed
                    .or_else(|| s.desk.tokens().blocking_error())
                    .map(|reason| format!("source {}: {reason}", s.name))
            })
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

/// Runs the bridge until `shutdown` fires (or, with `initial_only`, until every snapshot is committed).
pub async fn run(
    settings: Settings,
    snapshot_mode: Option<SnapshotMode>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let metrics = crate::metrics::install();
    for warning in shared_client_warnings(&settings.sources) {
        tracing::warn!("{warning}");
    }
    let desks = DeskRegistry::new(ClientOptions::default());
    let mut handles = Vec::new();
    for s in &settings.sources {
        let desk = desks.client(s).map_err(|error| AppError::Desk { source_name: s.name.clone(), error })?;
        handles.push(Arc::new(SourceHandle {
            name: s.name.clone(),
            progress: Arc::new(SourceProgress::default()),
            desk,
            error: Mutex::new(None),
        }));
    }
    let probe = Arc::new(AppProbe { sources: handles.clone() });
    let listener = admin::bind(settings.http.admin_listen).await?;
    let admin_addr = listener.local_addr().unwrap_or(settings.http.admin_listen);
    tracing::info!(addr = %admin_addr, "Admin server listening (/metrics /healthz /readyz /status).");
    let admin_task = tokio::spawn(admin::serve(listener, admin::router(metrics, probe), shutdown.clone()));

    let registry = Arc::new(RegistryClient::new(&settings.schema_registry.url)?);
    let settings = Arc::new(settings);
    let mut tasks = JoinSet::new();
    for (source, handle) in settings.sources.iter().zip(&handles) {
        let mode = snapshot_mode.unwrap_or(source.snapshot_mode);
        let (settings, registry, handle, shutdown) =
            (settings.clone(), registry.clone(), handle.clone(), shutdown.clone());
        let source = source.clone();
        tasks.spawn(async move {
            let result = source::run_snapshot(
                &handle.desk,
                &settings.kafka,
                &registry,
                &source,
                mode,
                &handle.progress,
                &shutdown,
            )
            .await;
            if let Err(e) = &result {
                if let Ok(mut slot) = handle.error.lock() {
                    *slot = Some(e.to_string());
                }
            }
            (mode, result)
        });
    }

    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((mode, Ok(all_done))) => {
                if mode != SnapshotMode::InitialOnly && all_done {
                    tracing::info!(
                        "Snapshot finished; the webhook stream is not implemented yet in this build."
                    );
                }
            }
            Ok((_, Err(error))) => {
                tracing::error!(%error, "Source failed; stopping.");
                failure.get_or_insert(AppError::Source(error));
                shutdown.cancel();
            }
            Err(error) => {
                tracing::error!(%error, "Source task ended abnormally; stopping.");
                shutdown.cancel();
            }
        }
    }
    let initial_only = snapshot_mode == Some(SnapshotMode::InitialOnly)
        || settings.sources.iter().all(|s| s.snapshot_mode == SnapshotMode::InitialOnly);
    if initial_only && failure.is_none() && !shutdown.is_cancelled() {
        tracing::info!("Every selected module's snapshot is committed (initial_only); exiting.");
        shutdown.cancel();
    }
    shutdown.cancelled().await;
    match admin_task.await {
        Ok(result) => result?,
        Err(error) => tracing::warn!(%error, "Admin server task ended abnormally."),
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("Stopped cleanly.");
            Ok(())
        }
    }
}
