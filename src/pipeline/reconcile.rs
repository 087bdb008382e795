//! The reconciler. Desk documents no webhook retries and sends no delivery ids, so a delivery that failed
//! (the bridge was down, the network dropped it) is a lost change unless someone looks. Every
//! `reconcile_interval_s` this walks each searchable module's `modifiedTimeRange` from its watermark (minus
//! an overlap for Desk's commit and index lag) up to now, sorted by `modifiedTime`, and commits as `u` every
//! version newer than what the ordering guard has seen. Search rows are incomplete, so each change found is
//! fetched in full (one detail call per missed change, none for what webhooks already delivered).

use super::source::SourceRuntime;
use super::{DeskFailure, DeskPages, Page};
use crate::change::{ChangeEvent, Op, record_time_ms};
use crate::metrics::RECONCILE_EVENTS_TOTAL;
use crate::zoho::catalog::{self, OFFSET_CEILING, SEARCH_MAX_LIMIT, Walk};
use crate::zoho::module::Module;
use serde_json::{Map, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Re-read this much before the watermark: Desk may make a change searchable a little after its time.
const OVERLAP_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Desk call for {module} failed: {source}")]
    Desk { module: Module, source: DeskFailure },
    #[error(transparent)]
    Commit(#[from] super::commit::CommitError),
}

fn state_key(module: Module) -> String {
    format!("reconcile/{}", module.name())
}

/// Runs passes every `interval` until `shutdown`.
pub async fn run<D: DeskPages>(
    runtime: &SourceRuntime,
    desk: &D,
    interval: Duration,
    shutdown: &CancellationToken,
) {
    let modules: Vec<Module> =
        runtime.modules.iter().copied().filter(|m| catalog::spec(*m).walk == Walk::Sorted).collect();
    let mut watermarks: Vec<i64> =
        modules.iter().map(|m| runtime.reconcile_watermark(&state_key(*m))).collect();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        for (module, watermark) in modules.iter().zip(watermarks.iter_mut()) {
            let pass = reconcile_module(runtime, desk, *module, *watermark);
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = pass => r,
            };
            match outcome {
                Ok(next) => *watermark = next,
                Err(error) => {
                    tracing::warn!(source = runtime.name(), module = %module, %error, "Reconciliation pass failed; retrying next interval.");
                }
            }
        }
    }
}

/// One pass over one module; returns the new watermark.
async fn reconcile_module<D: DeskPages>(
    runtime: &SourceRuntime,
    desk: &D,
    module: Module,
    watermark: i64,
) -> Result<i64, ReconcileError> {
    let spec = catalog::spec(module);
    let now = chrono::Utc::now().timestamp_millis();
    let mut window_start = watermark - OVERLAP_MS;
    let mut from = 0u32;
    let mut newest = watermark;
    let mut found = 0u64;
    loop {
        let query = vec![
            (
                "modifiedTimeRange".to_owned(),
                format!("{},{}", super::snapshot::iso(window_start), super::snapshot::iso(now)),
            ),
            ("sortBy".to_owned(), "modifiedTime".to_owned()),
            ("from".to_owned(), from.to_string()),
            ("limit".to_owned(), SEARCH_MAX_LIMIT.to_string()),
        ];
        let page: Page = desk
            .page(&format!("{}/search", spec.path), query, spec.records_key)
            .await
            .map_err(|source| ReconcileError::Desk { module, source })?;
        let fetched = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
        let mut changes = Vec::new();
        for row in page.records {
            let Some(id) = super::snapshot::id_of(&row) else { continue };
            let version = record_time_ms(&row).unwrap_or(now);
            newest = newest.max(version);
            let probe = change(module, &id, row.clone(), version);
            if !runtime.writer.guard.lock().await.admits(&probe) {
                continue;
            }
            let full = desk
                .page(&format!("{}/{id}", spec.path), Vec::new(), "")
                .await
                .map_err(|source| ReconcileError::Desk { module, source })?;
            if let Some(record) = full.records.into_iter().next() {
                let v = record_time_ms(&record).unwrap_or(version);
                changes.push(change(module, &id, record, v));
            }
        }
        let state = vec![(state_key(module), serde_json::json!({ "watermark_ms": newest }))];
        let committed = runtime.writer.commit(&runtime.stream_producer, changes, state).await?;
        found += committed.events as u64;
        let consumed = from + fetched;
        if fetched < SEARCH_MAX_LIMIT || page.count.is_some_and(|c| u64::from(consumed) >= c) {
            break;
        }
        if consumed + SEARCH_MAX_LIMIT > OFFSET_CEILING {
            // Keyset: restart the window at the newest modification seen (re-reads at that instant are
            // dropped by the ordering guard).
            window_start = newest;
            from = 0;
        } else {
            from = consumed;
        }
    }
    if found > 0 {
        metrics::counter!(RECONCILE_EVENTS_TOTAL, "source" => runtime.name().to_owned(), "module" => module.name())
            .increment(found);
        tracing::info!(source = runtime.name(), module = %module, changes = found, "Reconciliation found changes webhooks missed.");
    }
    Ok(newest)
}

fn change(module: Module, id: &str, record: Map<String, Value>, version: i64) -> ChangeEvent {
    ChangeEvent {
        module,
        id: id.to_owned(),
        op: Op::Update,
        before: None,
        after: Some(record),
        source_ts_ms: version,
        snapshot: None,
        event_type: None,
        position: Some("reconcile".into()),
    }
}
