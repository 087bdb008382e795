//! The snapshot (full load) of one module: pages at the endpoint's maximum size, commits each page together
//! with its cursor in one Kafka transaction, and resumes from the committed cursor.
//!
//! Searchable modules are walked by keyset windows on `createdTime` through `/<module>/search`
//! (`createdTimeRange=[window start, snapshot start]`, `sortBy=createdTime`): when a window's `from` would
//! cross Desk's 5000-offset ceiling, the window restarts at the last `createdTime` emitted, skipping the
//! ids already emitted at that instant. The upper bound is the snapshot start; later creations arrive as
//! webhook events.

use super::commit::{CommitError, Shifts, Writer};
use super::cursor::{Id, Partition, SnapshotCursor};
use super::progress::{RawJson, SourceProgress};
use super::{DeskFailure, DeskPages, Page};
use crate::change::Record;
use crate::change::{ChangeEvent, Op, SnapshotMarker, record_time_ms};
use crate::kafka::producer::TxProducer;
use crate::metrics::SNAPSHOT_RECORDS_TOTAL;
use crate::zoho::catalog::{self, FIELD_MODULES, OFFSET_CEILING, SEARCH_MAX_LIMIT, Walk};
use crate::zoho::module::Module;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("Desk call for {module} failed: {source}")]
    Desk { module: Module, source: DeskFailure },
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("{module}: more than {OFFSET_CEILING} records share createdTime {ts_ms}; cannot page past them")]
    TieOverflow { module: Module, ts_ms: i64 },
    #[error("{0} is walked by time or per ticket, not re-listed whole")]
    NotListable(Module),
    #[error("the snapshot cursor could not be written as JSON: {0}")]
    Cursor(#[from] serde_json::Error),
}

/// Everything a module snapshot writes through.
pub struct Sink<'a> {
    pub source: &'a str,
    pub writer: &'a Writer,
    pub producer: &'a TxProducer,
    pub progress: &'a SourceProgress,
    /// Collects the ids the load met, when the load checks for deletions afterwards.
    pub seen: Option<&'a std::sync::Mutex<std::collections::HashSet<String>>>,
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn created_ms(r: &Record) -> Option<i64> {
    r.get_str("createdTime").and_then(|t| crate::change::parse_desk_time(&t))
}

/// The record id, as Desk sends it (string or number).
pub(super) fn id_of(r: &Record) -> Option<String> {
    r.id().map(std::borrow::Cow::into_owned)
}

/// The record id in its shared form: as the cursor keeps it, and as a snapshot event carries it (the ordering
/// guard keeps that one without a copy). [`id_of`] is for the callers that key maps by `String`.
fn cursor_id(r: &Record) -> Option<Id> {
    r.id().map(|id| Id::from(id.as_ref()))
}

/// How a source's Desk lists are read (from its config).
#[derive(Clone, Copy)]
pub struct Listing<'a> {
    /// `sources.list_from_base`.
    pub list_from_base: u32,
    /// `sources.snapshot_split_fields`.
    pub split_fields: &'a [String],
}

/// Runs (or resumes) one module's snapshot until it is done or `shutdown` fires. `last_module` marks the
/// final record of the whole snapshot as `last`.
///
/// Desk is read ahead while Kafka commits: the walk hands each page (with the cursor after it) to the
/// committer, which commits every page waiting at once, up to [`BATCH_RECORDS`], in one transaction with the
/// cursor after the last. One transaction per page cost librdkafka more than the records themselves (a
/// compression context per partition batch, the coordinator round trips), and waiting for the commit left
/// Desk idle.
pub async fn run_module<D: DeskPages>(
    desk: &D,
    sink: &Sink<'_>,
    module: Module,
    cursor: SnapshotCursor,
    listing: &Listing<'_>,
    last_module: bool,
    shutdown: &CancellationToken,
) -> Result<SnapshotCursor, SnapshotError> {
    let name = module.name();
    sink.progress.update(name, |p| {
        p.phase = "snapshot".into();
        p.records = cursor.records;
        p.pages = cursor.pages;
        p.records_at_start = cursor.records;
        p.started = Some(std::time::Instant::now());
    });
    tracing::info!(
        source = sink.source,
        module = name,
        records = cursor.records,
        "Snapshot of module starting."
    );
    // The walk stops on shutdown or once the committer is gone (it failed: its queue is dropped with it);
    // the committer drains what was read either way.
    let stop = shutdown.child_token();
    let (pages, queue) = tokio::sync::mpsc::channel(READ_AHEAD_PAGES);
    let walk = async {
        let walked = walk(desk, sink, module, cursor.clone(), listing, &pages, &stop).await;
        drop(pages);
        walked
    };
    let commit = async {
        let committed = commit_queue(sink, module, cursor.clone(), queue, last_module).await;
        if committed.is_err() {
            stop.cancel();
        }
        committed
    };
    let (walked, committed) = tokio::join!(walk, commit);
    // A failed commit is the first failure (the walk only stopped because of it); then a failed read, once
    // the pages read before it are committed.
    let cursor = committed?;
    walked?;
    if !cursor.done {
        return Ok(cursor);
    }
    sink.progress.update(name, |p| {
        p.phase = "streaming".into();
        p.percent = Some(100.0);
        p.eta_s = Some(0);
    });
    crate::metrics::snapshot_completed(sink.source, module);
    tracing::info!(
        source = sink.source,
        module = name,
        records = cursor.records,
        pages = cursor.pages,
        "Snapshot of module committed."
    );
    Ok(cursor)
}

/// Commits the pages of `queue` until the walk ends: each transaction takes the pages read until it holds
/// [`BATCH_RECORDS`], or [`BATCH_LINGER`] after its first page. Returns the cursor last committed. Takes the
/// queue, so a failed commit drops it and a walk waiting for room in it ends at once.
async fn commit_queue(
    sink: &Sink<'_>,
    module: Module,
    mut committed: SnapshotCursor,
    mut queue: tokio::sync::mpsc::Receiver<(Page, SnapshotCursor)>,
    last_module: bool,
) -> Result<SnapshotCursor, SnapshotError> {
    let name = module.name();
    while let Some(first) = queue.recv().await {
        let mut records = first.0.records.len();
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + BATCH_LINGER;
        while records < BATCH_RECORDS {
            let Ok(Some(next)) = tokio::time::timeout_at(until, queue.recv()).await else { break };
            records += next.0.records.len();
            batch.push(next);
        }
        let pages_before = committed.pages;
        committed = commit_pages(sink, module, committed, batch, last_module).await?;
        if pages_before / PROGRESS_LOG_PAGES != committed.pages / PROGRESS_LOG_PAGES {
            let (percent, eta_s) = sink
                .progress
                .get(name, |p| (p.percent.map(|x| x.round() as u64), p.eta_s))
                .unwrap_or_default();
            tracing::info!(source = sink.source, module = name, records = committed.records,
                pages = committed.pages, percent = ?percent, eta_s = ?eta_s, "Snapshot progress.");
        }
    }
    Ok(committed)
}

/// Pages read ahead of the commits (each at most a page body's worth of memory).
const READ_AHEAD_PAGES: usize = 16;

/// A transaction takes the pages read until it holds this many records, or [`BATCH_LINGER`] after its
/// first page, whichever comes first.
const BATCH_RECORDS: usize = 1_000;
const BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// The walk: reads page after page from `cursor` and queues each with the cursor after it, until the module
/// is done, `stop` fires or the committer is gone.
async fn walk<D: DeskPages>(
    desk: &D,
    sink: &Sink<'_>,
    module: Module,
    mut cursor: SnapshotCursor,
    listing: &Listing<'_>,
    pages: &tokio::sync::mpsc::Sender<(Page, SnapshotCursor)>,
    stop: &CancellationToken,
) -> Result<(), SnapshotError> {
    let spec = catalog::spec(module);
    let list_from_base = listing.list_from_base;
    let mut recent = RecentIds::of(&cursor);
    // Where recent pages started and when they were read, to re-read from before a late-reported delete.
    let mut history: std::collections::VecDeque<(PageContext, u32, i64)> = std::collections::VecDeque::new();
    while !cursor.done {
        // Child modules walk their parent tickets: ticket deletes shift that walk.
        let rewind = match spec.walk {
            Walk::Sorted | Walk::PerTicket => {
                let walked = if spec.walk == Walk::PerTicket { Module::Tickets } else { module };
                Some(rewind_from(sink, walked, &cursor, &mut history).await)
            }
            _ => None,
        };
        // Each step takes the cursor and returns the next one (a cursor holds a thousand recent ids: cloning
        // it per page cost more than the page's bookkeeping).
        let taken = std::mem::take(&mut cursor);
        // A Desk call may wait a long time (a quota pause until the daily reset): shutdown must not wait for
        // it. Only the fetch is abandoned; a commit is never cut off half-way.
        let step = async {
            match (spec.walk, rewind) {
                (Walk::PerTicket, Some((from, seq))) => {
                    per_ticket_step(desk, module, taken, listing, (from, seq), &mut recent).await
                }
                (_, Some((from, seq))) => {
                    sorted_step(desk, module, taken, listing, (from, seq), &mut recent).await
                }
                (Walk::List, _) => list_step(desk, module, taken, list_from_base).await,
                (Walk::FieldMetadata, _) => fields_step(desk, sink.source, module, taken).await,
                (_, None) => whole_step(desk, module, taken).await,
            }
        };
        let (page, next) = tokio::select! {
            r = step => r?,
            _ = stop.cancelled() => return Ok(()),
        };
        cursor = next;
        // Err: the committer is gone (it failed, and says why).
        if pages.send((page, cursor.clone())).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Where the next page of a sorted walk starts, and the deletes sequence it has seen. A deletion moved every
/// later row one offset down: the walk reads again from the first page read after it (pages before it were
/// not affected), as many rows earlier as were deleted.
async fn rewind_from(
    sink: &Sink<'_>,
    walked: Module,
    cursor: &SnapshotCursor,
    history: &mut std::collections::VecDeque<(PageContext, u32, i64)>,
) -> (u32, u64) {
    let Shifts { seq, new_deletes, earliest_ms: earliest } =
        sink.writer.shifts_since(walked, cursor.deletes_seen).await;
    let ctx = PageContext::of(cursor);
    history.retain(|(c, _, _)| *c == ctx);
    let rewind_start = earliest
        .and_then(|t| history.iter().find(|(_, _, at)| *at >= t - DELETE_CLOCK_SLACK_MS))
        .map_or(cursor.from, |(_, start, _)| *start);
    let request_from = rewind_start.saturating_sub(u32::try_from(new_deletes).unwrap_or(u32::MAX));
    history.push_back((ctx, cursor.from, chrono::Utc::now().timestamp_millis()));
    if history.len() > 32 {
        history.pop_front();
    }
    (overlapped(request_from.min(cursor.from), seq), seq)
}

/// Where a page asked for at `from` starts once overlapped with its predecessor. Deletes Desk has not
/// reported (a module without webhook events, or none registered) and updates taking rows out of a split
/// part shift rows too, and nothing announces them: every page after the first starts at least one row
/// early, so `shifted` can see its predecessor's last row, and a few rows early once the module is seen
/// deleting. Re-read rows are dropped as recent ids; the cost is one row per page (about 1% more calls).
fn overlapped(from: u32, deletes_seq: u64) -> u32 {
    let margin = if deletes_seq > 0 { SHIFT_MARGIN } else { 1 };
    from.saturating_sub(margin)
}

/// Whether the list shifted under a page that starts before the previous page's end: that page's last row
/// then belongs in it, and its absence means rows before it left the list (a delete, or an update taking a
/// row out of a split part) since it was read, moving unread rows back into the page already read.
fn shifted(cursor: &SnapshotCursor, request_from: u32, limit: u32, page: &Page) -> bool {
    let Some(last) = cursor.prev_page_ids.last() else { return false };
    let overlaps = request_from < cursor.from && cursor.from - 1 < request_from.saturating_add(limit);
    overlaps && !page.records.iter().any(|r| r.id().is_some_and(|id| *id == **last))
}

/// Puts the rows read again after a shift before the page's own. The two reads overlap where the rows
/// moved (rare: only after a shift), so each id is kept once.
fn prepend_reread(records: &mut Vec<Record>, reread: Vec<Record>) {
    if reread.is_empty() {
        return;
    }
    let mut ids = std::collections::HashSet::with_capacity(reread.len() + records.len());
    let mut both = reread;
    both.append(records);
    both.retain(|r| r.id().is_none_or(|id| ids.insert(id.into_owned())));
    *records = both;
}

/// A page read overlapped with its predecessor (see [`overlapped`] and [`shifted`]).
struct OverlappedPage {
    /// The rows read again (when the list shifted), then the page's own.
    page: Page,
    /// How many rows the page itself held.
    fetched: u32,
    /// The ids of the page's own rows: the next page's predecessor.
    own_ids: Vec<Id>,
    /// Where the rows read again start, if they were read.
    reread_from: Option<u32>,
}

/// Reads `path` at `request_from` (`from` is `list_base` plus the offset) and, when the list shifted under
/// the walk since the previous page was read, the rows before it again: rows that left the list (or the
/// search window) before the previous page's end moved unread rows back past that end. Re-read rows are
/// dropped as recent ids, before any detail call.
#[allow(clippy::too_many_arguments)]
async fn read_overlapped<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: &SnapshotCursor,
    path: String,
    query: Vec<(String, String)>,
    list_base: u32,
    request_from: u32,
    limit: u32,
) -> Result<OverlappedPage, SnapshotError> {
    let key = catalog::spec(module).records_key;
    let read_at = |offset: u32| {
        let mut query = query.clone();
        query.push(("from".into(), (list_base + offset).to_string()));
        fetch(desk, module, path.clone(), query, key)
    };
    let mut page = read_at(request_from).await?;
    let reread_from = shifted(cursor, request_from, limit, &page).then(|| request_from.saturating_sub(limit));
    let reread = match reread_from {
        Some(offset) => read_at(offset).await?.records,
        None => Vec::new(),
    };
    let fetched = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
    let own_ids = page.records.iter().filter_map(cursor_id).collect();
    prepend_reread(&mut page.records, reread);
    Ok(OverlappedPage { page, fetched, own_ids, reread_from })
}

async fn fetch<D: DeskPages>(
    desk: &D,
    module: Module,
    path: String,
    query: Vec<(String, String)>,
    key: &str,
) -> Result<Page, SnapshotError> {
    desk.page(&path, query, key).await.map_err(|source| SnapshotError::Desk { module, source })
}

/// The full record behind a listed row. A row Desk deleted meanwhile (404) is kept as listed: its delete
/// event follows, and the ordering guard keeps the two in order.
async fn fetch_record<D: DeskPages>(
    desk: &D,
    module: Module,
    path: &str,
    id: &str,
) -> Result<Option<Record>, SnapshotError> {
    desk.record(path, id).await.map_err(|source| SnapshotError::Desk { module, source })
}

/// How far before a delete's event time a page may have been read and still be affected (clock skew
/// between Desk and this host, and Desk's own commit lag).
const DELETE_CLOCK_SLACK_MS: i64 = 2_000;

/// Rows each page of a sorted walk re-reads before its offset once the walked module has had a delete
/// committed since start (one row otherwise, see [`overlapped`]). A row deleted before the offset between two
/// page reads moves the next unread row back into the page already read; a delete reported (as a webhook
/// event) before the next read rewinds the walk, this margin covers a few unreported ones, and a page that
/// misses its predecessor's last row is read again from a page earlier (`shifted`), whatever moved the rows.
const SHIFT_MARGIN: u32 = 3;

/// A progress line in the logs every this many pages (and always in `/status`).
const PROGRESS_LOG_PAGES: u64 = 25;

/// Ids of the latest rows emitted, kept in the cursor (a few pages' worth; rewinds reach back less far).
const RECENT_IDS: usize = 1_000;

/// A counted set over a cursor's `recent_ids`, kept by the walk beside its cursor (rebuilt for every page,
/// a set cost a thousand inserts per hundred rows).
#[derive(Default)]
struct RecentIds {
    counts: std::collections::HashMap<Id, u32, foldhash::fast::RandomState>,
    /// How many ids it holds, repeats included: in step with the cursor's list while they are equal.
    len: usize,
}

impl RecentIds {
    fn of(cursor: &SnapshotCursor) -> Self {
        let mut recent = Self::default();
        recent.add(cursor.recent_ids.iter().cloned());
        recent
    }

    /// Rebuilt if `cursor` did not come from the steps this set followed (defensive: only
    /// [`RecentIds::remember`] changes the list).
    fn follow(&mut self, cursor: &SnapshotCursor) {
        if self.len != cursor.recent_ids.len() {
            *self = Self::of(cursor);
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.counts.contains_key(id)
    }

    fn add(&mut self, ids: impl Iterator<Item = Id>) {
        for id in ids {
            *self.counts.entry(id).or_default() += 1;
            self.len += 1;
        }
    }

    /// Appends `ids` to the cursor's list and forgets the oldest past [`RECENT_IDS`], in the list and the set.
    fn remember(&mut self, cursor: &mut SnapshotCursor, ids: impl Iterator<Item = Id>) {
        let ids: Vec<Id> = ids.collect();
        self.add(ids.iter().cloned());
        cursor.recent_ids.push(ids);
        let excess = cursor.recent_ids.len().saturating_sub(RECENT_IDS);
        for id in cursor.recent_ids.forget_oldest(excess) {
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.counts.entry(id) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            self.len = self.len.saturating_sub(1);
        }
    }
}

/// Pages of one partition / phase / search window share offsets; history never crosses them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageContext {
    part: u32,
    searching: bool,
    window_start_ms: Option<i64>,
}

impl PageContext {
    fn of(c: &SnapshotCursor) -> Self {
        Self { part: c.part, searching: c.searching, window_start_ms: c.window_start_ms }
    }
}

/// Remembers the `createdTime` of the last row emitted that has one, and the ids of the rows up to it at
/// exactly that instant (rows without a time do not break the run; the run may go on from earlier pages).
/// Read from the end of the page: only the last instant's rows have their time read.
fn track_created(cursor: &mut SnapshotCursor, records: &[Record]) {
    let mut timed = records.iter().rev().filter_map(|r| created_ms(r).map(|ts| (ts, r)));
    let Some((last, newest)) = timed.next() else { return };
    let mut run = vec![newest];
    // Whether every timed row of the page is at the last instant: then the run may go on from earlier pages.
    let mut from_page_start = true;
    for (ts, r) in timed {
        if ts != last {
            from_page_start = false;
            break;
        }
        run.push(r);
    }
    if !from_page_start || cursor.last_ts_ms != Some(last) {
        cursor.ids_at_last_ts.clear();
    }
    cursor.last_ts_ms = Some(last);
    cursor.ids_at_last_ts.extend(run.iter().rev().filter_map(|r| cursor_id(r)));
}

/// Rows per partition the walk aims below: Desk lists only the first 5000 of a filter, and past that the
/// rest needs search plus one detail call per record. Leaves room for rows created during the walk.
const PARTITION_TARGET: u64 = 4_500;

/// The partitions of a module walked per department: each department, split where it is too big to list
/// by `split_fields` (`sources.snapshot_split_fields`), in order, while a part still holds more than
/// [`PARTITION_TARGET`] rows, counted through search (`count`) up to the snapshot's upper bound. A field's
/// values are those seen in a sample of the part; a split is used only when the counts of its values add
/// up to the part's count, so a value the sample missed (or a null, which no filter selects) keeps the part
/// whole (walked past the ceiling through search) instead of losing its rows. A module that fits under
/// the target, or whose listed departments do not add up to it, is one part without filters (walked whole).
async fn partitions<D: DeskPages>(
    desk: &D,
    module: Module,
    base: u32,
    split_fields: &[String],
    upper_ms: i64,
) -> Result<Vec<Partition>, SnapshotError> {
    // One count for the module first: when it all fits under the ceiling, it is walked whole (no department
    // counted or listed, and none the department list might leave out).
    let (total, _) = count_part(desk, module, upper_ms, &[]).await?;
    if total <= PARTITION_TARGET {
        return Ok(vec![Partition::Filters(Vec::new())]);
    }
    let mut out = Vec::new();
    let mut covered = 0;
    for department in departments(desk, module, base).await? {
        let whole = vec![("departmentId".to_owned(), department.clone())];
        let (count, sample) = count_part(desk, module, upper_ms, &whole).await?;
        covered += count;
        // Depth first, in order: (filters, next split field, rows, sample rows).
        let mut work = vec![(whole, 0usize, count, sample)];
        let mut parts = Vec::new();
        while let Some((filters, dim, count, sample)) = work.pop() {
            let Some(field) = split_fields.get(dim).filter(|_| count > PARTITION_TARGET) else {
                parts.push(filters);
                continue;
            };
            let values: std::collections::BTreeSet<_> =
                sample.iter().filter_map(|r| r.get_str(field.as_str())).collect();
            let mut subs = Vec::with_capacity(values.len());
            for v in values.into_iter().filter(|v| !v.contains(',')) {
                let mut f = filters.clone();
                f.push((field.clone(), v.into_owned()));
                let (c, rows) = count_part(desk, module, upper_ms, &f).await?;
                subs.push((f, dim + 1, c, rows));
            }
            if subs.iter().map(|s| s.2).sum::<u64>() == count {
                work.extend(subs.into_iter().rev());
            } else {
                work.push((filters, dim + 1, count, sample));
            }
        }
        if parts.len() > 1 {
            tracing::info!(module = %module, department = %department, parts = parts.len(),
                "Department split so each part stays under Desk's list ceiling.");
        }
        out.extend(parts.into_iter().map(|f| {
            if f.len() == 1 { Partition::Department(department.clone()) } else { Partition::Filters(f) }
        }));
    }
    if covered < total {
        // Records in a department Desk did not list (hidden from this user, or removed while counting)
        // would never be read per department. More than the total (a record moved department while the
        // departments were counted) loses nothing.
        tracing::warn!(module = %module, total, covered,
            "The listed departments do not hold every record; the module is walked whole instead (through search windows past Desk's 5000-offset ceiling, one detail call per record there).");
        return Ok(vec![Partition::Filters(Vec::new())]);
    }
    Ok(out)
}

/// Rows of a part created up to `upper_ms` (search's `count`) and a sample of them (one search page).
async fn count_part<D: DeskPages>(
    desk: &D,
    module: Module,
    upper_ms: i64,
    filters: &[(String, String)],
) -> Result<(u64, Vec<Record>), SnapshotError> {
    let spec = catalog::spec(module);
    let mut query = filters.to_vec();
    query.push(("createdTimeRange".into(), format!("{},{}", iso(0), iso(upper_ms))));
    query.push(("from".into(), "0".into()));
    query.push(("limit".into(), SEARCH_MAX_LIMIT.to_string()));
    let page = fetch(desk, module, format!("{}/search", spec.path), query, spec.records_key).await?;
    let count = page.count.unwrap_or(page.records.len() as u64);
    Ok((count, page.records))
}

/// The department ids, for modules walked per department.
async fn departments<D: DeskPages>(
    desk: &D,
    module: Module,
    base: u32,
) -> Result<Vec<String>, SnapshotError> {
    let spec = catalog::spec(Module::Departments);
    let mut ids = Vec::new();
    let mut from = 0;
    loop {
        let query = vec![
            ("from".to_owned(), (base + from).to_string()),
            ("limit".to_owned(), spec.max_limit.to_string()),
        ];
        let page = fetch(desk, module, spec.path.to_owned(), query, spec.records_key).await?;
        let n = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
        for id in page.records.iter().filter_map(id_of) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        from += n;
        if n < spec.max_limit || base + from >= OFFSET_CEILING {
            return Ok(ids);
        }
    }
}

/// One step of the sorted walk: a list page in `createdTime` order, or past the ceiling a search window
/// page whose rows are completed by detail calls.
async fn sorted_step<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: SnapshotCursor,
    listing: &Listing<'_>,
    (request_from, deletes_seq): (u32, u64),
    recent: &mut RecentIds,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let Listing { list_from_base: base, split_fields } = *listing;
    let spec = catalog::spec(module);
    let mut next = cursor;
    if spec.partition_by_department && next.partitions.is_none() {
        next.partitions = Some(partitions(desk, module, base, split_fields, next.upper_ms).await?.into());
        return Ok((Page::default(), next));
    }
    let partition = match &next.partitions {
        Some(parts) => match parts.get(next.part as usize) {
            Some(d) => Some(d.clone()),
            None => {
                next.done = true;
                return Ok((Page::default(), next));
            }
        },
        None => None,
    };
    // What the page was read at (`next` moves on below).
    let (searching, window_start_ms, upper_ms) = (next.searching, next.window_start_ms, next.upper_ms);
    let mut query: Vec<(String, String)> = partition.as_ref().map(Partition::query).unwrap_or_default();
    let limit = if searching { SEARCH_MAX_LIMIT } else { spec.max_limit };
    let (path, list_base) = if searching {
        let start = window_start_ms.unwrap_or(0);
        query.push(("createdTimeRange".into(), format!("{},{}", iso(start), iso(upper_ms))));
        (format!("{}/search", spec.path), 0)
    } else {
        query.extend(spec.list_query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        (spec.path.to_owned(), base)
    };
    query.push(("sortBy".into(), "createdTime".into()));
    query.push(("limit".into(), limit.to_string()));
    let OverlappedPage { mut page, fetched, own_ids, reread_from } =
        read_overlapped(desk, module, &next, path, query, list_base, request_from, limit).await?;
    next.prev_page_ids = own_ids;
    if searching && (request_from == 0 || reread_from == Some(0)) {
        // Skip what was emitted at the window's start instant before the window moved.
        page.records.retain(|r| {
            !(created_ms(r) == window_start_ms
                && r.id().is_some_and(|id| next.ids_at_last_ts.iter().any(|known| **known == *id)))
        });
    }
    // Rows re-read after a rewind are dropped here (previous page) or by the ordering guard (same version).
    // Rows re-read after a rewind (or a restart, when the in-memory ordering guard is empty) were emitted
    // recently: the cursor remembers their ids, so a snapshot never emits a key twice.
    recent.follow(&next);
    page.records.retain(|r| !r.id().is_some_and(|id| recent.contains(&id)));
    recent.remember(&mut next, page.records.iter().filter_map(cursor_id));
    next.deletes_seen = deletes_seq;
    // Creations after the snapshot start arrive as webhook events; the snapshot stops at its start.
    page.records.retain(|r| created_ms(r).is_none_or(|t| t <= upper_ms));
    if searching {
        page.records = complete_rows(desk, module, page.records).await?;
    }
    track_created(&mut next, &page.records);
    next.pages += 1;
    next.records += page.records.len() as u64;
    let consumed = request_from + fetched;
    let exhausted = fetched < limit || page.count.is_some_and(|c| u64::from(consumed) >= c);
    if exhausted {
        if partition.is_some() {
            next.next_partition();
        } else {
            next.done = true;
        }
    } else if list_base + consumed + limit > OFFSET_CEILING {
        // Continue at the last instant emitted, through search (or a fresh search window).
        let Some(last) = next.last_ts_ms else {
            return Err(SnapshotError::TieOverflow { module, ts_ms: window_start_ms.unwrap_or(0) });
        };
        if searching && Some(last) == window_start_ms {
            return Err(SnapshotError::TieOverflow { module, ts_ms: last });
        }
        if !searching {
            tracing::warn!(module = %module, partition = ?partition,
                "List reached Desk's 5000-offset ceiling; continuing through search windows with one detail call per record.");
        }
        next.searching = true;
        next.window_start_ms = Some(last);
        next.from = 0;
    } else {
        next.from = consumed;
    }
    Ok((page, next))
}

/// One step of a child module (threads, comments): a page of the ticket walk, then every child of each of
/// those tickets (one list call per ticket; threads also need one detail call each, because the list only
/// has summaries). The ticket walk's position is the cursor.
async fn per_ticket_step<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: SnapshotCursor,
    listing: &Listing<'_>,
    start: (u32, u64),
    recent: &mut RecentIds,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let base = listing.list_from_base;
    let records_before = cursor.records;
    let (tickets, next) = sorted_step(desk, Module::Tickets, cursor, listing, start, recent).await?;
    let spec = catalog::spec(module);
    let mut rows = Vec::new();
    for ticket in &tickets.records {
        let Some(ticket_id) = id_of(ticket) else { continue };
        let mut seen = std::collections::HashSet::new();
        let mut from = 0;
        loop {
            let query = vec![
                ("from".to_owned(), (base + from).to_string()),
                ("limit".to_owned(), spec.max_limit.to_string()),
            ];
            let path = format!("tickets/{ticket_id}/{}", spec.path);
            let page = fetch(desk, module, path.clone(), query, "data").await?;
            let fetched = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
            for mut row in page.records {
                // Left for the commit, which counts it.
                let Some(id) = id_of(&row) else {
                    rows.push(row);
                    continue;
                };
                if !seen.insert(id.clone()) {
                    continue;
                }
                if module == Module::TicketThreads {
                    row = fetch_record(desk, module, &path, &id).await?.unwrap_or(row);
                }
                if row.get("ticketId").is_none() {
                    row = row.with("ticketId", &serde_json::Value::String(ticket_id.clone()));
                }
                rows.push(row);
            }
            from += fetched;
            if fetched < spec.max_limit {
                break;
            }
            if base + from >= OFFSET_CEILING {
                // Desk lists no further and these lists have no search: say so rather than stop silently.
                tracing::error!(module = %module, ticket = %ticket_id, loaded = seen.len(),
                    "A ticket has more rows than Desk lists (5000-offset ceiling); the rest is not loaded.");
                break;
            }
        }
    }
    let mut next = next;
    // The ticket walk counted tickets; this module counts its own rows.
    next.records = records_before + rows.len() as u64;
    Ok((Page { records: rows, count: None }, next))
}

/// Search rows lack fields the list returns (e.g. `description`): fetch each record in full.
async fn complete_rows<D: DeskPages>(
    desk: &D,
    module: Module,
    rows: Vec<Record>,
) -> Result<Vec<Record>, SnapshotError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let spec = catalog::spec(module);
    // Detail calls run side by side (the quota guard caps how many reach Desk at once); order is kept.
    // A row without an id goes on as it is, for the commit to count.
    stream::iter(rows)
        .map(|row| async move {
            let Some(id) = id_of(&row) else { return Ok(row) };
            Ok::<_, SnapshotError>(fetch_record(desk, module, spec.path, &id).await?.unwrap_or(row))
        })
        .buffered(DETAIL_CALLS_IN_FLIGHT)
        .try_collect()
        .await
}

/// Detail calls of one search page in flight at once; the quota guard's `max_concurrency` still rules.
const DETAIL_CALLS_IN_FLIGHT: usize = 16;

/// Every record of a module walked by plain paging, in one call, or per field module: the reconciler's
/// re-list of the modules Desk sends no webhook events for.
pub async fn list_all<D: DeskPages>(
    desk: &D,
    source: &str,
    module: Module,
    base: u32,
) -> Result<Vec<Record>, SnapshotError> {
    let mut cursor = SnapshotCursor::default();
    let mut out = Vec::new();
    while !cursor.done {
        let cursor_now = std::mem::take(&mut cursor);
        let (page, next) = match catalog::spec(module).walk {
            Walk::List => list_step(desk, module, cursor_now, base).await?,
            Walk::Whole => whole_step(desk, module, cursor_now).await?,
            Walk::FieldMetadata => fields_step(desk, source, module, cursor_now).await?,
            Walk::Sorted | Walk::PerTicket => return Err(SnapshotError::NotListable(module)),
        };
        out.extend(page.records);
        cursor = next;
    }
    Ok(out)
}

async fn list_step<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: SnapshotCursor,
    base: u32,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let limit = spec.max_limit;
    let mut query: Vec<(String, String)> =
        spec.list_query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    query.push(("limit".into(), limit.to_string()));
    // As in a sorted walk: a delete nobody reports shifts rows back between two page reads, so every page
    // after the first re-reads its predecessor's last row, and a page without it reads the rows before it
    // again.
    let request_from = overlapped(cursor.from, 0);
    let OverlappedPage { mut page, fetched, own_ids, .. } =
        read_overlapped(desk, module, &cursor, spec.path.to_owned(), query, base, request_from, limit)
            .await?;
    let mut next = cursor;
    let previous = std::mem::replace(&mut next.prev_page_ids, own_ids);
    page.records.retain(|r| !r.id().is_some_and(|id| previous.iter().any(|p| **p == *id)));
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.from = request_from + fetched;
    if fetched < limit {
        next.done = true;
    } else if base + next.from >= OFFSET_CEILING {
        tracing::error!(module = %module, records = next.records,
            "Module has more records than Desk lists (5000-offset ceiling) and no search endpoint; the rest is not loaded.");
        next.done = true;
    }
    Ok((page, next))
}

async fn whole_step<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: SnapshotCursor,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let page = fetch(desk, module, spec.path.to_owned(), Vec::new(), spec.records_key).await?;
    let mut next = cursor;
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.done = true;
    Ok((page, next))
}

/// Whether Desk answered that the module asked about is not available to the org (reference C.3): 403
/// LICENSE_ACCESS_LIMITED (its edition lacks the module), 404, or 422 (a module name it does not know).
fn not_available(error: &super::DeskFailure) -> bool {
    match error.downcast_ref::<crate::zoho::error::ZohoError>() {
        Some(crate::zoho::error::ZohoError::Desk { status, code, .. }) => {
            matches!(status, 404 | 422) || (*status == 403 && code == "LICENSE_ACCESS_LIMITED")
        }
        _ => false,
    }
}

async fn fields_step<D: DeskPages>(
    desk: &D,
    source: &str,
    module: Module,
    cursor: SnapshotCursor,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let mut next = cursor;
    let Some(parent) = FIELD_MODULES.get(next.part as usize) else {
        next.done = true;
        return Ok((Page::default(), next));
    };
    let query = vec![("module".to_owned(), (*parent).to_owned())];
    let mut page = match desk.page(spec.path, query, spec.records_key).await {
        Ok(p) => p,
        // A module the org's edition does not have must not stop the others. Anything else (a 5xx or 429s
        // after the retries, a token failure) fails the step: skipped, the part would count as done and
        // never be loaded again.
        Err(error) if not_available(&error) => {
            tracing::warn!(source, module = parent, %error,
                "Desk says this module's custom-field metadata is not available to the org; skipping it.");
            crate::metrics::field_metadata_skipped(source, parent);
            Page::default()
        }
        Err(source) => return Err(SnapshotError::Desk { module, source }),
    };
    for r in &mut page.records {
        *r = r.with("module", &serde_json::Value::String((*parent).to_owned()));
    }
    next.part += 1;
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.done = next.part as usize >= FIELD_MODULES.len();
    Ok((page, next))
}

/// One transaction: the pages' `r` events and the cursor after the last of them (`cursor`, the one committed
/// before, if there are none), which it returns.
async fn commit_pages(
    sink: &Sink<'_>,
    module: Module,
    mut cursor: SnapshotCursor,
    pages: Vec<(Page, SnapshotCursor)>,
    last_module: bool,
) -> Result<SnapshotCursor, SnapshotError> {
    let mut events = Vec::with_capacity(pages.iter().map(|(p, _)| p.records.len()).sum());
    let mut without_id = 0;
    for (page, after) in pages {
        cursor = after;
        let n = page.records.len();
        if let Some(seen) = sink.seen {
            if let Ok(mut seen) = seen.lock() {
                seen.extend(page.records.iter().filter_map(id_of));
            }
        }
        let position: std::sync::Arc<str> =
            format!("snapshot:{}:page:{}", module.name(), cursor.pages).into();
        for (i, record) in page.records.into_iter().enumerate() {
            let Some(id) = cursor_id(&record) else {
                without_id += 1;
                continue;
            };
            let marker = match (cursor.done && i + 1 == n, last_module) {
                (true, true) => SnapshotMarker::Last,
                (true, false) => SnapshotMarker::LastInDataCollection,
                _ => SnapshotMarker::True,
            };
            events.push(ChangeEvent {
                module,
                source_ts_ms: record_time_ms(&record).unwrap_or(cursor.upper_ms),
                id,
                op: Op::Read,
                before: None,
                after: Some(record),
                snapshot: Some(marker),
                event_type: None,
                position: Some(position.clone()),
            });
        }
    }
    crate::metrics::records_without_id(sink.source, module, without_id);
    // Written straight from the cursor, once for the state record and `/status`: through a
    // `serde_json::Value` its thousand recent ids cost as much as a tenth of the page's encoding.
    let cursor_json = serde_json::to_string(&cursor)?;
    let state = vec![(SnapshotCursor::state_key(module), cursor_json.clone())];
    let committed = sink.writer.commit(sink.producer, events, state).await?;
    let labels = [("source", sink.source.to_owned()), ("module", module.name().to_owned())];
    metrics::counter!(SNAPSHOT_RECORDS_TOTAL, &labels).increment(committed.events as u64);
    sink.progress.update(module.name(), |p| {
        p.records = cursor.records;
        p.pages = cursor.pages;
        p.cursor = Some(RawJson(cursor_json));
    });
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn page(ids: std::ops::Range<u32>) -> Page {
        let records = ids.map(|i| Record::parse(&format!(r#"{{"id":"{i}"}}"#)).unwrap()).collect();
        Page { records, count: None }
    }

    /// The previous page held rows 0..100 (ids 0..100); the next one is asked from offset 99.
    fn after_first_page() -> SnapshotCursor {
        SnapshotCursor {
            from: 100,
            prev_page_ids: (0..100).map(|i| std::sync::Arc::from(i.to_string())).collect(),
            ..Default::default()
        }
    }

    /// The first form of [`track_created`]: row by row, from the start of the page.
    fn track_created_forwards(cursor: &mut SnapshotCursor, records: &[Record]) {
        for r in records {
            let ts = created_ms(r);
            if ts.is_some() && ts == cursor.last_ts_ms {
                cursor.ids_at_last_ts.extend(cursor_id(r));
            } else if ts.is_some() {
                cursor.last_ts_ms = ts;
                cursor.ids_at_last_ts = cursor_id(r).into_iter().collect();
            }
        }
    }

    #[test]
    fn the_last_instant_is_tracked_as_row_by_row() {
        // Every page of up to four rows drawn from: two instants, no time, no id; after either cursor.
        let rows = [
            r#"{"id":"a","createdTime":"2024-01-01T00:00:00.000Z"}"#,
            r#"{"id":"b","createdTime":"2024-01-01T00:00:00.000Z"}"#,
            r#"{"id":"c","createdTime":"2024-01-01T00:00:01.000Z"}"#,
            r#"{"id":"d"}"#,
            r#"{"createdTime":"2024-01-01T00:00:01.000Z"}"#,
        ]
        .map(|r| Record::parse(r).unwrap());
        let at_first = SnapshotCursor {
            last_ts_ms: Some(1_704_067_200_000),
            ids_at_last_ts: vec![Id::from("z")],
            ..Default::default()
        };
        for start in [SnapshotCursor::default(), at_first] {
            for len in 0..=4_u32 {
                for pick in 0..5_usize.pow(len) {
                    let page: Vec<Record> =
                        (0..len).map(|i| rows[pick / 5_usize.pow(i) % 5].clone()).collect();
                    let (mut want, mut got) = (start.clone(), start.clone());
                    track_created_forwards(&mut want, &page);
                    track_created(&mut got, &page);
                    assert_eq!(
                        (got.last_ts_ms, &got.ids_at_last_ts),
                        (want.last_ts_ms, &want.ids_at_last_ts)
                    );
                }
            }
        }
    }

    #[test]
    fn recent_ids_follow_the_cursor_list_repeats_included() {
        let ids = |r: std::ops::Range<usize>| r.map(|i| Id::from(i.to_string())).collect::<Vec<_>>();
        let mut cursor = SnapshotCursor { recent_ids: ids(0..10).into(), ..Default::default() };
        let mut recent = RecentIds::of(&cursor);
        // 10 + (RECENT_IDS - 5) + 1 ids: the 6 oldest go, the first 5 among them; the repeated 5 stays.
        recent.remember(&mut cursor, ids(10..RECENT_IDS + 5).into_iter().chain(ids(5..6)));
        assert_eq!((cursor.recent_ids.len(), recent.len), (RECENT_IDS, RECENT_IDS));
        assert!(!recent.contains("0") && !recent.contains("4"));
        assert!(
            recent.contains("5") && recent.contains("6") && recent.contains(&(RECENT_IDS + 4).to_string())
        );
        assert_eq!(RecentIds::of(&cursor).counts, recent.counts);
        // A whole list of new ids forgets every older one, the repeat too.
        recent.remember(&mut cursor, (0..RECENT_IDS).map(|i| Id::from(format!("x{i}"))));
        assert!(!recent.contains("5") && recent.contains("x0"));
        assert_eq!(recent.counts.len(), RECENT_IDS);
        // A cursor from elsewhere is picked up when the lengths differ.
        let other = SnapshotCursor { recent_ids: ids(2000..2010).into(), ..Default::default() };
        recent.follow(&other);
        assert!(!recent.contains("x0") && recent.contains("2000"));
    }

    /// Desk's products sorted by `createdTime` (0-based `from`, list and search alike), one of which is
    /// trashed right after a given call without anyone being told (products have no webhook events).
    struct TrashedBetweenPages {
        rows: std::sync::Mutex<Vec<u32>>,
        calls: std::sync::atomic::AtomicUsize,
        trash_after_call: usize,
        victim: u32,
        /// How many rows from `victim` on go at once.
        trashed: u32,
    }

    fn product(i: u32) -> Record {
        let created = iso(1_700_000_000_000 + i64::from(i) * 1_000);
        Record::parse(&format!(r#"{{"id":"{i}","createdTime":"{created}"}}"#)).unwrap()
    }

    impl DeskPages for TrashedBetweenPages {
        async fn page(
            &self,
            path: &str,
            query: Vec<(String, String)>,
            _: &str,
        ) -> Result<Page, super::super::DeskFailure> {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let mut rows = self.rows.lock().unwrap();
            let arg = |k: &str| query.iter().find(|(q, _)| q == k).map_or(0, |(_, v)| v.parse().unwrap());
            let page = match path.strip_prefix("products/") {
                Some("search") | None => Page {
                    records: rows.iter().skip(arg("from")).take(arg("limit")).map(|i| product(*i)).collect(),
                    count: (path != "products").then_some(rows.len() as u64),
                },
                Some(id) => Page { records: vec![product(id.parse().unwrap())], count: None },
            };
            if call == self.trash_after_call {
                rows.retain(|r| !(self.victim..self.victim + self.trashed).contains(r));
            }
            Ok(page)
        }
    }

    /// Walks products from `cursor` as [`walk`] does for an org with no reported deletes.
    async fn walk_products(desk: &TrashedBetweenPages, mut cursor: SnapshotCursor) -> Vec<String> {
        let listing = Listing { list_from_base: 0, split_fields: &[] };
        let mut recent = RecentIds::of(&cursor);
        let mut emitted = Vec::new();
        while !cursor.done {
            let from = overlapped(cursor.from, 0);
            let (page, next) =
                sorted_step(desk, Module::Products, cursor, &listing, (from, 0), &mut recent).await.unwrap();
            emitted.extend(page.records.iter().filter_map(id_of));
            cursor = next;
        }
        emitted
    }

    #[tokio::test]
    async fn an_unreported_delete_between_pages_loses_no_row_and_repeats_none() {
        let at_ceiling = SnapshotCursor {
            searching: true,
            window_start_ms: Some(0),
            upper_ms: i64::MAX,
            ..Default::default()
        };
        let listed = SnapshotCursor { upper_ms: i64::MAX, ..Default::default() };
        for (start, what) in [(listed, "list"), (at_ceiling, "search")] {
            // Row 10 goes after the first page was read: every later row moves up one offset, so row 100
            // sits where the first page ended when the second is asked for.
            let desk = TrashedBetweenPages {
                rows: std::sync::Mutex::new((0..250).collect()),
                calls: Default::default(),
                trash_after_call: 1,
                victim: 10,
                trashed: 1,
            };
            let emitted = walk_products(&desk, start).await;
            let survivors = desk.rows.lock().unwrap().clone();
            for id in survivors {
                let times = emitted.iter().filter(|e| **e == id.to_string()).count();
                assert_eq!(times, 1, "{what}: row {id} emitted {times} times");
            }
            let unique: std::collections::HashSet<_> = emitted.iter().collect();
            assert_eq!(unique.len(), emitted.len(), "{what}: a row was emitted twice");
        }
    }

    #[tokio::test]
    async fn unreported_deletes_between_plain_list_pages_lose_no_row_and_repeat_none() {
        // Before the first page's end (one row, or several: the seam row itself moves out of the overlap),
        // at its last row, and after it.
        for (victim, trashed) in [(10, 1), (10, 3), (98, 2), (99, 1), (150, 1)] {
            let desk = TrashedBetweenPages {
                rows: std::sync::Mutex::new((0..250).collect()),
                calls: Default::default(),
                trash_after_call: 1,
                victim,
                trashed,
            };
            let mut cursor = SnapshotCursor::default();
            let mut emitted = Vec::new();
            while !cursor.done {
                let (page, next) = list_step(&desk, Module::Contracts, cursor, 0).await.unwrap();
                emitted.extend(page.records.iter().filter_map(id_of));
                cursor = next;
            }
            for id in desk.rows.lock().unwrap().iter() {
                let times = emitted.iter().filter(|e| **e == id.to_string()).count();
                assert_eq!(times, 1, "{trashed} from row {victim}: row {id} emitted {times} times");
            }
            let unique: std::collections::HashSet<_> = emitted.iter().collect();
            assert_eq!(unique.len(), emitted.len(), "{trashed} from row {victim}: a row was emitted twice");
        }
    }

    /// Tickets counted per department (and in all), and the departments Desk lists.
    struct Counted {
        total: u64,
        per_department: Vec<(&'static str, u64)>,
        listed_departments: std::sync::atomic::AtomicUsize,
    }

    impl DeskPages for Counted {
        async fn page(
            &self,
            path: &str,
            query: Vec<(String, String)>,
            _: &str,
        ) -> Result<Page, super::super::DeskFailure> {
            let department = query.iter().find(|(k, _)| k == "departmentId").map(|(_, v)| v.as_str());
            Ok(match (path, department) {
                ("departments", _) => {
                    self.listed_departments.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let ids = self.per_department.iter().map(|(d, _)| format!(r#"{{"id":"{d}"}}"#));
                    Page { records: ids.map(|r| Record::parse(&r).unwrap()).collect(), count: None }
                }
                ("tickets/search", None) => Page { records: Vec::new(), count: Some(self.total) },
                ("tickets/search", Some(d)) => {
                    let count = self.per_department.iter().find(|(id, _)| *id == d).map(|(_, c)| *c);
                    Page { records: Vec::new(), count }
                }
                _ => panic!("unexpected call {path} {query:?}"),
            })
        }
    }

    #[tokio::test]
    async fn a_module_is_walked_whole_when_small_or_when_its_departments_do_not_add_up() {
        let whole = vec![Partition::Filters(Vec::new())];
        let per =
            |total, per_department| Counted { total, per_department, listed_departments: Default::default() };
        // Small: one count, no department listed.
        let small = per(4_000, vec![("1", 3_000), ("2", 1_000)]);
        assert_eq!(partitions(&small, Module::Tickets, 0, &[], i64::MAX).await.unwrap(), whole);
        assert_eq!(small.listed_departments.load(std::sync::atomic::Ordering::SeqCst), 0);
        // 2,000 tickets sit in a department the list leaves out.
        let hidden = per(10_000, vec![("1", 4_000), ("2", 4_000)]);
        assert_eq!(partitions(&hidden, Module::Tickets, 0, &[], i64::MAX).await.unwrap(), whole);
        // Departments holding every ticket: one part each.
        let full = per(10_000, vec![("1", 4_000), ("2", 6_000)]);
        assert_eq!(
            partitions(&full, Module::Tickets, 0, &[], i64::MAX).await.unwrap(),
            vec![Partition::Department("1".into()), Partition::Department("2".into())]
        );
    }

    /// Desk's field metadata where every module's call fails with `error`.
    struct FieldsFail(fn() -> crate::zoho::error::ZohoError);

    impl DeskPages for FieldsFail {
        async fn page(
            &self,
            _: &str,
            _: Vec<(String, String)>,
            _: &str,
        ) -> Result<Page, super::super::DeskFailure> {
            Err(Box::new((self.0)()))
        }
    }

    #[tokio::test]
    async fn field_metadata_is_skipped_only_where_desk_says_it_is_not_available() {
        use crate::zoho::error::ZohoError;
        fn desk(status: u16, code: &str) -> ZohoError {
            let (source_name, endpoint, message) = ("s".into(), "fields".into(), String::new());
            ZohoError::Desk { source_name, endpoint, status, code: code.into(), message }
        }
        let skipped: [fn() -> ZohoError; 3] = [
            || desk(403, "LICENSE_ACCESS_LIMITED"),
            || desk(404, "URL_NOT_FOUND"),
            || desk(422, "INVALID_DATA"),
        ];
        for error in skipped {
            let (page, next) =
                fields_step(&FieldsFail(error), "s", Module::OrganizationFields, SnapshotCursor::default())
                    .await
                    .unwrap();
            assert!(page.records.is_empty() && next.part == 1, "{}", error());
        }
        let failed: [fn() -> ZohoError; 4] = [
            || desk(403, "FORBIDDEN"),
            || ZohoError::RetriesExhausted {
                source_name: "s".into(),
                endpoint: "fields".into(),
                attempts: 5,
                status: 500,
                code: String::new(),
                message: String::new(),
            },
            || ZohoError::TokenThrottled {
                source_name: "s".into(),
                retry_after: std::time::Duration::from_secs(9),
            },
            || ZohoError::RefreshTokenRejected { source_name: "s".into() },
        ];
        for error in failed {
            let desk = FieldsFail(error);
            let step = fields_step(&desk, "s", Module::OrganizationFields, SnapshotCursor::default());
            assert!(step.await.is_err(), "{} was skipped", error());
        }
    }

    #[test]
    fn pages_after_the_first_overlap_their_predecessor() {
        assert_eq!(overlapped(0, 0), 0);
        assert_eq!(overlapped(100, 0), 99);
        assert_eq!(overlapped(100, 4), 100 - SHIFT_MARGIN);
    }

    #[test]
    fn a_page_that_misses_its_predecessors_last_row_has_shifted() {
        let cursor = after_first_page();
        // Unchanged list: row 99 comes first again.
        assert!(!shifted(&cursor, 99, 100, &page(99..199)));
        // Two rows before it left the list: offset 99 now holds row 101, and row 100 was skipped.
        assert!(shifted(&cursor, 99, 100, &page(101..201)));
        // No overlap asked for (no margin), or a rewind further back than a page: nothing to compare.
        assert!(!shifted(&cursor, 100, 100, &page(102..202)));
        assert!(!shifted(&cursor, 0, 50, &page(0..50)));
        // The first page of a part has no predecessor.
        assert!(!shifted(&SnapshotCursor::default(), 0, 100, &page(0..100)));
    }
}
