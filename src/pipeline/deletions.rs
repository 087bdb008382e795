//! Deletion detection on a full re-load. A re-load cannot see deleted records (Desk lists only live ones),
//! so records deleted while no webhook reached the bridge would stay in the topics forever. A load that
//! starts from scratch therefore reads the topic's live keys first, and when the load is committed, every
//! key it did not meet is confirmed gone with one detail call and committed as `d` plus a tombstone.
//!
//! Keys the stream or the reconciler committed meanwhile are skipped: their own events say what they are.
//! A key Desk still returns (a ticket that moved department while the walk passed) is committed as `u`.

use super::DeskPages;
use super::snapshot::{Sink, SnapshotError};
use crate::change::{ChangeEvent, Op};
use crate::zoho::catalog::{self, Walk};
use crate::zoho::module::Module;
use std::collections::HashSet;

/// Detail calls (and so events) per committed transaction.
const BATCH: usize = 100;

/// Whether a module's records can be confirmed gone by a detail call at `/<path>/<id>`.
pub fn applies(module: Module) -> bool {
    matches!(catalog::spec(module).walk, Walk::Sorted | Walk::List | Walk::Whole | Walk::FieldMetadata)
}

/// What a pass committed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub deleted: u64,
    /// Still at Desk although the walk missed them: re-emitted as `u`.
    pub refreshed: u64,
}

/// Commits a delete for every key of `previous` (the topic's live keys before the load, or the last
/// re-list) that the walk did not meet in `seen`, after Desk confirms it is gone. With `skip_known`, keys
/// the ordering guard has seen committed meanwhile are left alone.
pub async fn commit_missing<D: DeskPages>(
    desk: &D,
    sink: &Sink<'_>,
    module: Module,
    previous: HashSet<String>,
    seen: &HashSet<String>,
    skip_known: bool,
) -> Result<Outcome, SnapshotError> {
    let mut missing: Vec<String> = previous.into_iter().filter(|id| !seen.contains(id)).collect();
    missing.sort();
    let mut outcome = Outcome::default();
    if missing.is_empty() {
        return Ok(outcome);
    }
    tracing::info!(source = sink.source, module = %module, candidates = missing.len(),
        "Records in the topic but not in the fresh load; confirming with Desk.");
    let spec = catalog::spec(module);
    let (path, metadata) = (spec.path, spec.walk == Walk::FieldMetadata);
    for chunk in missing.chunks(BATCH) {
        let mut events = Vec::with_capacity(chunk.len());
        for id in chunk {
            if skip_known && sink.writer.guard.lock().await.knows(module, id) {
                continue;
            }
            let now = chrono::Utc::now().timestamp_millis();
            let found =
                desk.record(path, id).await.map_err(|source| SnapshotError::Desk { module, source })?;
            // Field metadata rows carry the module they belong to, which the detail call lacks: a live one is
            // left as it is.
            if metadata && found.is_some() {
                continue;
            }
            events.push(ChangeEvent::refetched(module, id, found, now, None, "reload-diff"));
        }
        outcome.deleted += events.iter().filter(|e| e.op == Op::Delete).count() as u64;
        outcome.refreshed += events.iter().filter(|e| e.op == Op::Update).count() as u64;
        sink.writer.commit(sink.producer, events, Vec::new()).await?;
    }
    tracing::info!(source = sink.source, module = %module, deleted = outcome.deleted, refreshed = outcome.refreshed,
        "Deletion check of the re-load committed.");
    Ok(outcome)
}
