//! The reconciler. Desk documents no webhook retries and sends no delivery ids, so a delivery that failed
//! (the bridge was down, the network dropped it) is a lost change unless someone looks. Every
//! `reconcile_interval_s` this walks each searchable module's `modifiedTimeRange` from its watermark (minus
//! an overlap for Desk's commit and index lag) up to now, sorted by `modifiedTime`, and commits as `u` every
//! version newer than what the ordering guard has seen. Search rows are incomplete, so each change found is
//! fetched in full (one detail call per missed change, none for what webhooks already delivered).
//!
//! Modules Desk sends no webhook events for and cannot search by time (contracts, teams, the field
//! metadata) are re-listed whole each pass and diffed against content hashes kept in the state topic:
//! changed or new records are committed as `u`, vanished ones (confirmed by a detail call) as `d`.
//!
//! Every Desk call of a pass is charged against the reconciler's share of the daily credits
//! (`quota.reconcile_share`); once it is spent, passes wait for the next UTC day.

use super::deletions;
use super::snapshot::{self, Sink, SnapshotError};
use super::source::SourceRuntime;
use super::{DeskFailure, DeskPages, Page};
use crate::change::{ChangeEvent, Record, parse_desk_time, record_time_ms};
use crate::kafka::table;
use crate::metrics::RECONCILE_EVENTS_TOTAL;
use crate::zoho::catalog::{self, OFFSET_CEILING, SEARCH_MAX_LIMIT, Walk};
use crate::zoho::module::Module;
use crate::zoho::quota::credit_day;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
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
    #[error("re-listing failed: {0}")]
    Relist(#[from] SnapshotError),
    #[error(transparent)]
    Table(#[from] crate::kafka::table::TableError),
    #[error(
        "the reconciler spent its share of today's Desk credits ({limit}); it resumes when the credit day turns (the data center's midnight)"
    )]
    BudgetSpent { limit: u64 },
    #[error("shutting down: the pass stopped before its next Desk call")]
    ShuttingDown,
}

fn state_key(module: Module) -> String {
    format!("reconcile/{}", module.name())
}

fn relist_key(module: Module) -> String {
    format!("relist/{}", module.name())
}

/// Content hashes of more records than this are not persisted (the state record would grow past what
/// Kafka takes in one message); after a restart such a module's first pass re-emits its records once
/// (as it does right after the snapshot, which keeps no hashes).
const RELIST_STATE_MAX: usize = 10_000;

/// Desk, as the reconciler may use it: every call is charged against a daily credit allowance, and ends
/// (as [`ReconcileError::ShuttingDown`]) when shutdown fires. Only the Desk calls race shutdown, never a
/// pass as a whole: a pass dropped inside a commit would leave a transaction open on the stream producer
/// the webhook receiver shares, and its writes during the drain would fail.
struct Budgeted<'a, D> {
    desk: &'a D,
    limit: u64,
    /// Minutes east of UTC of the midnight the credit day turns at (the quota guard's, the data center's).
    reset_offset_min: i32,
    /// (credit day, credits charged that day).
    spent: Mutex<(chrono::NaiveDate, u64)>,
    shutdown: CancellationToken,
}

impl<'a, D: DeskPages> Budgeted<'a, D> {
    fn new(
        desk: &'a D,
        daily_credits: u64,
        share: f64,
        reset_offset_min: i32,
        shutdown: CancellationToken,
    ) -> Self {
        let limit = ((daily_credits as f64) * share).floor().max(1.0) as u64;
        let today = credit_day(chrono::Utc::now(), reset_offset_min);
        Self { desk, limit, reset_offset_min, spent: Mutex::new((today, 0)), shutdown }
    }

    fn charge(&self, cost: u64) -> bool {
        let today = credit_day(chrono::Utc::now(), self.reset_offset_min);
        let Ok(mut spent) = self.spent.lock() else { return false };
        if spent.0 != today {
            *spent = (today, 0);
        }
        if spent.1 + cost > self.limit {
            return false;
        }
        spent.1 += cost;
        true
    }
}

impl<D: DeskPages> DeskPages for Budgeted<'_, D> {
    async fn page(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        records_key: &str,
    ) -> Result<Page, DeskFailure> {
        if self.shutdown.is_cancelled() {
            return Err(Box::new(ReconcileError::ShuttingDown));
        }
        let cost = crate::zoho::client::classify(path, &query).cost();
        if !self.charge(cost) {
            return Err(Box::new(ReconcileError::BudgetSpent { limit: self.limit }));
        }
        tokio::select! {
            page = self.desk.page(path, query, records_key) => page,
            _ = self.shutdown.cancelled() => Err(Box::new(ReconcileError::ShuttingDown)),
        }
    }
}

/// FNV-1a of the record's JSON text (keys sorted): stable across processes and releases, unlike the std
/// hasher. Re-listed modules are small, so the map it takes is cheap.
fn content_hash(record: &Record) -> u64 {
    let text = serde_json::to_string(&record.to_map()).unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn is_relisted(module: Module) -> bool {
    let spec = catalog::spec(module);
    spec.event_stem.is_none() && matches!(spec.walk, Walk::List | Walk::Whole | Walk::FieldMetadata)
}

/// Runs passes every `interval` until `shutdown`.
pub async fn run<D: DeskPages>(
    runtime: &SourceRuntime,
    desk: &D,
    interval: Duration,
    shutdown: &CancellationToken,
) {
    let quota = &runtime.settings.quota;
    let offset = runtime.settings.credit_reset_utc_offset_min();
    let budget = Budgeted::new(desk, quota.daily_credits, quota.reconcile_share, offset, shutdown.clone());
    let modules: Vec<Module> =
        runtime.modules.iter().copied().filter(|m| catalog::spec(*m).walk == Walk::Sorted).collect();
    let mut watermarks: Vec<i64> =
        modules.iter().map(|m| runtime.reconcile_watermark(&state_key(*m))).collect();
    let relisted: Vec<Module> = runtime.modules.iter().copied().filter(|m| is_relisted(*m)).collect();
    let mut hashes: Vec<HashMap<String, u64>> = relisted.iter().map(|m| stored_hashes(runtime, *m)).collect();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        // A pass stops at its next Desk call once shutdown fires (see `Budgeted`); a commit it started
        // finishes first.
        for (module, watermark) in modules.iter().zip(watermarks.iter_mut()) {
            let outcome = reconcile_module(runtime, &budget, *module, *watermark).await;
            if shutdown.is_cancelled() {
                return;
            }
            match outcome {
                Ok(next) => *watermark = next,
                Err(error) => report(runtime, *module, &error),
            }
        }
        for (module, known) in relisted.iter().zip(hashes.iter_mut()) {
            let outcome = relist_module(runtime, &budget, *module, known).await;
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(error) = outcome {
                report(runtime, *module, &error);
            }
        }
    }
}

fn report(runtime: &SourceRuntime, module: Module, error: &ReconcileError) {
    let budget_spent = match error {
        ReconcileError::BudgetSpent { .. } => true,
        ReconcileError::Desk { source, .. } => source.downcast_ref::<ReconcileError>().is_some(),
        ReconcileError::Relist(SnapshotError::Desk { source, .. }) => {
            source.downcast_ref::<ReconcileError>().is_some()
        }
        _ => false,
    };
    if budget_spent {
        tracing::info!(source = runtime.name(), module = %module, %error, "Reconciliation paused.");
    } else {
        tracing::warn!(source = runtime.name(), module = %module, %error, "Reconciliation pass failed; retrying next interval.");
    }
}

/// The content hashes the last re-list committed, from the state read back at start.
fn stored_hashes(runtime: &SourceRuntime, module: Module) -> HashMap<String, u64> {
    runtime
        .stored_value(&relist_key(module))
        .and_then(|v| v.get("hashes").cloned())
        .and_then(|h| serde_json::from_value(h).ok())
        .unwrap_or_default()
}

/// One re-list of a module without webhook events: commits what changed, appeared or vanished.
async fn relist_module<D: DeskPages>(
    runtime: &SourceRuntime,
    desk: &D,
    module: Module,
    known: &mut HashMap<String, u64>,
) -> Result<(), ReconcileError> {
    let records = snapshot::list_all(desk, runtime.name(), module, runtime.settings.list_from_base).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut fresh = HashMap::with_capacity(records.len());
    let mut changes = Vec::new();
    let mut without_id = 0;
    for record in records {
        let Some(id) = snapshot::id_of(&record) else {
            without_id += 1;
            continue;
        };
        let hash = content_hash(&record);
        if known.get(&id) != Some(&hash) {
            let version = record_time_ms(&record).unwrap_or(now);
            changes.push(change(module, &id, record, version));
        }
        fresh.insert(id, hash);
    }
    crate::metrics::records_without_id(runtime.name(), module, without_id);
    // Without hashes from an earlier pass (first pass after the snapshot, or a module too big to persist
    // them), what was there before is what the topic holds.
    let previous: HashSet<String> = if known.is_empty() {
        let topic = runtime.writer.encoder.topic(module);
        table::live_keys(&runtime.kafka, &topic).await?
    } else {
        known.keys().cloned().collect()
    };
    let gone: HashSet<String> = previous.into_iter().filter(|id| !fresh.contains_key(id)).collect();
    let mut found = 0u64;
    if !gone.is_empty() {
        let seen: HashSet<String> = fresh.keys().cloned().collect();
        let sink = Sink {
            source: runtime.name(),
            writer: &runtime.writer,
            producer: &runtime.stream_producer,
            progress: &runtime.progress,
            seen: None,
        };
        let outcome = deletions::commit_missing(desk, &sink, module, gone, &seen, false).await?;
        found += outcome.deleted + outcome.refreshed;
    }
    let state = if fresh.len() <= RELIST_STATE_MAX {
        vec![(relist_key(module), serde_json::json!({ "hashes": &fresh }).to_string())]
    } else {
        Vec::new()
    };
    let committed = runtime.writer.commit(&runtime.stream_producer, changes, state).await?;
    found += committed.events as u64;
    *known = fresh;
    if found > 0 {
        metrics::counter!(RECONCILE_EVENTS_TOTAL, "source" => runtime.name().to_owned(), "module" => module.name())
            .increment(found);
        tracing::info!(source = runtime.name(), module = %module, changes = found, "Re-list found changes.");
    }
    Ok(())
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
        // The keyset is the sort key itself: a row without `modifiedTime` (its `createdTime` is no position
        // in this order) leaves the pass to go on by offset.
        let last_ms =
            page.records.last().and_then(|r| r.get_str("modifiedTime")).and_then(|t| parse_desk_time(&t));
        let mut changes = Vec::new();
        let without_id = page.records.iter().filter(|row| row.id().is_none()).count();
        crate::metrics::records_without_id(runtime.name(), module, without_id as u64);
        for row in page.records {
            let Some(id) = super::snapshot::id_of(&row) else { continue };
            let version = record_time_ms(&row).unwrap_or(now);
            newest = newest.max(version);
            let probe = change(module, &id, row.clone(), version);
            if !runtime.writer.guard.lock().await.admits(&probe) {
                continue;
            }
            let found = desk
                .record(spec.path, &id)
                .await
                .map_err(|source| ReconcileError::Desk { module, source })?;
            // Gone (or trashed) since the search listed it: that is the change the webhooks missed.
            changes.push(ChangeEvent::refetched(module, &id, found, now, None, "reconcile"));
        }
        let state = vec![(state_key(module), serde_json::json!({ "watermark_ms": newest }).to_string())];
        let committed = runtime.writer.commit(&runtime.stream_producer, changes, state).await?;
        found += committed.events as u64;
        match next_page(window_start, from, fetched, page.count, last_ms) {
            Next::Done => break,
            Next::At { window_start: start, from: offset } => (window_start, from) = (start, offset),
            Next::TieOverflow => {
                tracing::warn!(source = runtime.name(), module = %module, at_ms = window_start,
                    "More rows share one modifiedTime than Desk lets a search page through; the rest waits for the next pass.");
                break;
            }
        }
    }
    if found > 0 {
        metrics::counter!(RECONCILE_EVENTS_TOTAL, "source" => runtime.name().to_owned(), "module" => module.name())
            .increment(found);
        tracing::info!(source = runtime.name(), module = %module, changes = found, "Reconciliation found changes webhooks missed.");
    }
    Ok(newest)
}

/// Where a pass reads next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Done,
    At {
        window_start: i64,
        from: u32,
    },
    /// The window's start instant alone holds more rows than Desk pages through.
    TieOverflow,
}

/// Keyset paging: the next page's window starts at the last row's `modifiedTime` with `from=0`. Offsets
/// are not stable under a pass: a row edited meanwhile leaves the range (its new time is past the pass's
/// upper bound) and every later row moves up one, so the row at a page boundary would be skipped while
/// the watermark moved past it. Rows at the boundary instant are read again and dropped by the ordering
/// guard (same version), without a detail call. Only when a whole page sits at the window's start instant
/// does the pass go on by offset within it.
fn next_page(window_start: i64, from: u32, fetched: u32, count: Option<u64>, last_ms: Option<i64>) -> Next {
    let consumed = from.saturating_add(fetched);
    if fetched < SEARCH_MAX_LIMIT || count.is_some_and(|c| u64::from(consumed) >= c) {
        return Next::Done;
    }
    match last_ms {
        Some(last) if last > window_start => Next::At { window_start: last, from: 0 },
        _ if consumed.saturating_add(SEARCH_MAX_LIMIT) > OFFSET_CEILING => Next::TieOverflow,
        _ => Next::At { window_start, from: consumed },
    }
}

fn change(module: Module, id: &str, record: Record, version: i64) -> ChangeEvent {
    ChangeEvent::update(module, id, record, version, None, "reconcile")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A search over `rows` (id, modifiedTime) sorted by time, as Desk pages `[start, upper]` from `from`.
    fn search(rows: &[(u32, i64)], start: i64, upper: i64, from: u32) -> (Vec<(u32, i64)>, u64) {
        let hits: Vec<_> = rows.iter().copied().filter(|(_, t)| (start..=upper).contains(t)).collect();
        let page = hits.iter().copied().skip(from as usize).take(SEARCH_MAX_LIMIT as usize).collect();
        (page, hits.len() as u64)
    }

    #[test]
    fn a_row_edited_during_a_pass_moves_no_other_row_out_of_it() {
        // 250 rows modified one second apart; the pass's upper bound is after all of them.
        let mut rows: Vec<(u32, i64)> = (0..250).map(|i| (i, 1_000_000 + i64::from(i) * 1_000)).collect();
        let upper = 2_000_000;
        let (mut start, mut from) = (0, 0);
        let mut seen = std::collections::HashSet::new();
        for page_no in 0.. {
            let (page, count) = search(&rows, start, upper, from);
            seen.extend(page.iter().map(|r| r.0));
            if page_no == 0 {
                // Row 10 is edited after the first page was read: its new time is past the upper bound.
                rows.retain(|r| r.0 != 10);
                rows.push((10, upper + 5_000));
            }
            let fetched = page.len() as u32;
            match next_page(start, from, fetched, Some(count), page.last().map(|r| r.1)) {
                Next::Done => break,
                Next::At { window_start, from: f } => (start, from) = (window_start, f),
                Next::TieOverflow => panic!("no ties here"),
            }
        }
        let missed: Vec<u32> = (0..250).filter(|i| !seen.contains(i)).collect();
        assert!(missed.is_empty(), "rows never read: {missed:?}");
    }

    #[test]
    fn a_page_all_at_one_instant_goes_on_by_offset_within_it() {
        let full = SEARCH_MAX_LIMIT;
        assert_eq!(next_page(5, 0, full, None, Some(9)), Next::At { window_start: 9, from: 0 });
        assert_eq!(next_page(5, 0, full, None, Some(5)), Next::At { window_start: 5, from: full });
        assert_eq!(next_page(5, 0, full - 1, None, Some(9)), Next::Done);
        assert_eq!(next_page(5, 0, full, Some(u64::from(full)), Some(9)), Next::Done);
        assert_eq!(next_page(5, OFFSET_CEILING - full, full, None, Some(5)), Next::TieOverflow);
    }

    /// Desk that never answers.
    struct Hanging;

    impl DeskPages for Hanging {
        async fn page(&self, _: &str, _: Vec<(String, String)>, _: &str) -> Result<Page, DeskFailure> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn shutdown_ends_a_pending_desk_call_not_the_pass() {
        let shutdown = CancellationToken::new();
        let budget = Budgeted::new(&Hanging, 1_000, 1.0, 0, shutdown.clone());
        let call = budget.page("tickets/search", Vec::new(), "data");
        let cancel = async {
            tokio::task::yield_now().await;
            shutdown.cancel();
        };
        let (result, ()) =
            tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(call, cancel) }).await.unwrap();
        let error = result.unwrap_err();
        assert!(
            matches!(error.downcast_ref::<ReconcileError>(), Some(ReconcileError::ShuttingDown)),
            "{error}"
        );
        // Later calls of the pass end at once, before charging credits.
        assert!(budget.page("tickets/search", Vec::new(), "data").await.is_err());
        assert_eq!(budget.spent.lock().unwrap().1, 3);
    }
}
