//! The snapshot (full load) of one module: pages at the endpoint's maximum size, commits each page together
//! with its cursor in one Kafka transaction, and resumes from the committed cursor.
//!
//! Searchable modules are walked by keyset windows on `createdTime` through `/<module>/search`
//! (`createdTimeRange=[window start, snapshot start]`, `sortBy=createdTime`): when a window's `from` would
//! cross Desk's 5000-offset ceiling, the window restarts at the last `createdTime` emitted, skipping the
//! ids already emitted at that instant. The upper bound is the snapshot start; later creations arrive as
//! webhook events.

use super::commit::{CommitError, Writer};
use super::cursor::{Partition, SnapshotCursor};
use super::progress::SourceProgress;
use super::{DeskFailure, DeskPages, Page};
use crate::change::{ChangeEvent, Op, SnapshotMarker, record_time_ms};
use crate::kafka::producer::TxProducer;
use crate::metrics::{SNAPSHOT_COMPLETED, SNAPSHOT_RECORDS_TOTAL};
use crate::zoho::catalog::{self, FIELD_MODULES, OFFSET_CEILING, SEARCH_MAX_LIMIT, Walk};
use crate::zoho::module::Module;
use serde_json::{Map, Value};
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

fn created_ms(r: &Map<String, Value>) -> Option<i64> {
    r.get("createdTime").and_then(Value::as_str).and_then(crate::change::parse_desk_time)
}

/// The record id, as Desk sends it (string or number).
pub(super) fn id_of(r: &Map<String, Value>) -> Option<String> {
    match r.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
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
pub async fn run_module<D: DeskPages>(
    desk: &D,
    sink: &Sink<'_>,
    module: Module,
    mut cursor: SnapshotCursor,
    listing: &Listing<'_>,
    last_module: bool,
    shutdown: &CancellationToken,
) -> Result<SnapshotCursor, SnapshotError> {
    let spec = catalog::spec(module);
    let name = module.name();
    let Listing { list_from_base, split_fields } = *listing;
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
    // Where recent pages started and when they were read, to re-read from before a late-reported delete.
    let mut history: std::collections::VecDeque<(PageContext, u32, i64)> = std::collections::VecDeque::new();
    while !cursor.done {
        if shutdown.is_cancelled() {
            return Ok(cursor);
        }
        // A Desk call may wait a long time (a quota pause until the daily reset): shutdown must not wait for
        // it. Only the fetch is abandoned; a commit is never cut off half-way.
        let step = async {
            Ok::<_, SnapshotError>(match spec.walk {
                Walk::Sorted | Walk::PerTicket => {
                    // Child modules walk their parent tickets: ticket deletes shift that walk.
                    let walked = if spec.walk == Walk::PerTicket { Module::Tickets } else { module };
                    let (seq, new_deletes, earliest) =
                        sink.writer.deletes_since(walked, cursor.deletes_seen).await;
                    let ctx = PageContext::of(&cursor);
                    history.retain(|(c, _, _)| *c == ctx);
                    // A deletion moved every later row one offset down: read again from the first page read
                    // after it (pages before it were not affected), and as many rows earlier as were deleted.
                    let rewind_start = earliest
                        .and_then(|t| history.iter().find(|(_, _, at)| *at >= t - DELETE_CLOCK_SLACK_MS))
                        .map_or(cursor.from, |(_, start, _)| *start);
                    let request_from =
                        rewind_start.saturating_sub(u32::try_from(new_deletes).unwrap_or(u32::MAX));
                    history.push_back((ctx, cursor.from, chrono::Utc::now().timestamp_millis()));
                    if history.len() > 32 {
                        history.pop_front();
                    }
                    // Deletes Desk has not reported yet shift rows too: once the module is seen deleting,
                    // start a few rows early (re-read rows are dropped as recent ids).
                    let margin = if seq > 0 { SHIFT_MARGIN } else { 0 };
                    let request_from = request_from.min(cursor.from).saturating_sub(margin);
                    if spec.walk == Walk::PerTicket {
                        per_ticket_step(
                            desk,
                            module,
                            &cursor,
                            list_from_base,
                            split_fields,
                            request_from,
                            seq,
                        )
                        .await?
                    } else {
                        sorted_step(desk, module, &cursor, list_from_base, split_fields, request_from, seq)
                            .await?
                    }
                }
                Walk::List => list_step(desk, module, &cursor, list_from_base).await?,
                Walk::FieldMetadata => fields_step(desk, module, &cursor).await?,
                Walk::Whole => whole_step(desk, module, &cursor).await?,
            })
        };
        let (page, next) = tokio::select! {
            r = step => r?,
            _ = shutdown.cancelled() => return Ok(cursor),
        };
        commit_page(sink, module, page, next.clone(), last_module).await?;
        cursor = next;
        if cursor.pages % PROGRESS_LOG_PAGES == 0 {
            let (percent, eta_s) = sink
                .progress
                .get(name, |p| (p.percent.map(|x| x.round() as u64), p.eta_s))
                .unwrap_or_default();
            tracing::info!(source = sink.source, module = name, records = cursor.records, pages = cursor.pages,
                percent = ?percent, eta_s = ?eta_s, "Snapshot progress.");
        }
    }
    sink.progress.update(name, |p| {
        p.phase = "streaming".into();
        p.percent = Some(100.0);
        p.eta_s = Some(0);
    });
    metrics::gauge!(SNAPSHOT_COMPLETED, "source" => sink.source.to_owned(), "module" => name).set(1.0);
    tracing::info!(
        source = sink.source,
        module = name,
        records = cursor.records,
        pages = cursor.pages,
        "Snapshot of module committed."
    );
    Ok(cursor)
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

/// How far before a delete's event time a page may have been read and still be affected (clock skew
/// between Desk and this host, and Desk's own commit lag).
const DELETE_CLOCK_SLACK_MS: i64 = 2_000;

/// Rows each page of a sorted walk re-reads before its offset once the walked module has had a delete
/// committed since start. A row deleted before the offset between two page reads moves the next unread row
/// back into the page already read; a delete reported (as a webhook event) before the next read rewinds the
/// walk, but one reported later, or after the walk has moved on to the next partition, would lose that row.
/// This many such deletes per page are covered, for about that many more Desk calls per hundred pages,
/// paid only while Desk is deleting: an org with no deletes keeps the minimum number of calls.
const SHIFT_MARGIN: u32 = 3;

/// A progress line in the logs every this many pages (and always in `/status`).
const PROGRESS_LOG_PAGES: u64 = 25;

/// Ids of the latest rows emitted, kept in the cursor (a few pages' worth; rewinds reach back less far).
const RECENT_IDS: usize = 1_000;

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

/// Remembers the newest `createdTime` emitted and the ids emitted at exactly that instant.
fn track_created(cursor: &mut SnapshotCursor, records: &[Map<String, Value>]) {
    for r in records {
        let ts = created_ms(r);
        if ts.is_some() && ts == cursor.last_ts_ms {
            cursor.ids_at_last_ts.extend(id_of(r));
        } else if ts.is_some() {
            cursor.last_ts_ms = ts;
            cursor.ids_at_last_ts = id_of(r).into_iter().collect();
        }
    }
}

/// Rows per partition the walk aims below: Desk lists only the first 5000 of a filter, and past that the
/// rest needs search plus one detail call per record. Leaves room for rows created during the walk.
const PARTITION_TARGET: u64 = 4_500;

/// The partitions of a module walked per department: each department, split where it is too big to list
/// by `split_fields` (`sources.snapshot_split_fields`), in order, while a part still holds more than
/// [`PARTITION_TARGET`] rows, counted through search (`count`) up to the snapshot's upper bound. A field's
/// values are those seen in a sample of the part; a split is used only when the counts of its values add
/// up to the part's count, so a value the sample missed (or a null, which no filter selects) keeps the part
/// whole (walked past the ceiling through search) instead of losing its rows.
async fn partitions<D: DeskPages>(
    desk: &D,
    module: Module,
    base: u32,
    split_fields: &[String],
    upper_ms: i64,
) -> Result<Vec<Partition>, SnapshotError> {
    let departments = departments(desk, module, base).await?;
    // One count for the module first: when it all fits, no department needs counting (small orgs pay one call).
    let (total, _) = count_part(desk, module, upper_ms, &[]).await?;
    if total <= PARTITION_TARGET {
        return Ok(departments.into_iter().map(Partition::Department).collect());
    }
    let mut out = Vec::new();
    for department in departments {
        let whole = vec![("departmentId".to_owned(), department.clone())];
        let (count, sample) = count_part(desk, module, upper_ms, &whole).await?;
        // Depth first, in order: (filters, next split field, rows, sample rows).
        let mut work = vec![(whole, 0usize, count, sample)];
        let mut parts = Vec::new();
        while let Some((filters, dim, count, sample)) = work.pop() {
            let Some(field) = split_fields.get(dim).filter(|_| count > PARTITION_TARGET) else {
                parts.push(filters);
                continue;
            };
            let values: std::collections::BTreeSet<&str> =
                sample.iter().filter_map(|r| r.get(field.as_str()).and_then(Value::as_str)).collect();
            let mut subs = Vec::with_capacity(values.len());
            for v in values.into_iter().filter(|v| !v.contains(',')) {
                let mut f = filters.clone();
                f.push((field.clone(), v.to_owned()));
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
    Ok(out)
}

/// Rows of a part created up to `upper_ms` (search's `count`) and a sample of them (one search page).
async fn count_part<D: DeskPages>(
    desk: &D,
    module: Module,
    upper_ms: i64,
    filters: &[(String, String)],
) -> Result<(u64, Vec<Map<String, Value>>), SnapshotError> {
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
    cursor: &SnapshotCursor,
    base: u32,
    split_fields: &[String],
    request_from: u32,
    deletes_seq: u64,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let mut next = cursor.clone();
    if spec.partition_by_department && cursor.partitions.is_none() {
        next.partitions = Some(partitions(desk, module, base, split_fields, cursor.upper_ms).await?);
        return Ok((Page::default(), next));
    }
    let partition = match &cursor.partitions {
        Some(parts) => match parts.get(cursor.part as usize) {
            Some(d) => Some(d.clone()),
            None => {
                next.done = true;
                return Ok((Page::default(), next));
            }
        },
        None => None,
    };
    let mut query: Vec<(String, String)> = partition.as_ref().map(Partition::query).unwrap_or_default();
    let limit = if cursor.searching { SEARCH_MAX_LIMIT } else { spec.max_limit };
    let mut page = if cursor.searching {
        let start = cursor.window_start_ms.unwrap_or(0);
        query.push(("createdTimeRange".into(), format!("{},{}", iso(start), iso(cursor.upper_ms))));
        query.push(("sortBy".into(), "createdTime".into()));
        query.push(("from".into(), request_from.to_string()));
        query.push(("limit".into(), limit.to_string()));
        fetch(desk, module, format!("{}/search", spec.path), query, spec.records_key).await?
    } else {
        query.extend(spec.list_query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        query.push(("sortBy".into(), "createdTime".into()));
        query.push(("from".into(), (base + request_from).to_string()));
        query.push(("limit".into(), limit.to_string()));
        fetch(desk, module, spec.path.to_owned(), query, spec.records_key).await?
    };
    let fetched = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
    next.prev_page_ids = page.records.iter().filter_map(id_of).collect();
    if cursor.searching && request_from == 0 {
        // Skip what was emitted at the window's start instant before the window moved.
        page.records.retain(|r| {
            !(created_ms(r) == cursor.window_start_ms
                && id_of(r).is_some_and(|id| cursor.ids_at_last_ts.contains(&id)))
        });
    }
    // Rows re-read after a rewind are dropped here (previous page) or by the ordering guard (same version).
    // Rows re-read after a rewind (or a restart, when the in-memory ordering guard is empty) were emitted
    // recently: the cursor remembers their ids, so a snapshot never emits a key twice.
    let recent: std::collections::HashSet<&String> = cursor.recent_ids.iter().collect();
    page.records.retain(|r| !id_of(r).is_some_and(|id| recent.contains(&id)));
    next.recent_ids.extend(page.records.iter().filter_map(id_of));
    let excess = next.recent_ids.len().saturating_sub(RECENT_IDS);
    next.recent_ids.drain(..excess);
    next.deletes_seen = deletes_seq;
    // Creations after the snapshot start arrive as webhook events; the snapshot stops at its start.
    page.records.retain(|r| created_ms(r).is_none_or(|t| t <= cursor.upper_ms));
    if cursor.searching {
        page.records = complete_rows(desk, module, page.records).await?;
    }
    track_created(&mut next, &page.records);
    next.pages += 1;
    next.records += page.records.len() as u64;
    let consumed = request_from + fetched;
    let exhausted = fetched < limit || page.count.is_some_and(|c| u64::from(consumed) >= c);
    let list_base = if cursor.searching { 0 } else { base };
    if exhausted {
        if partition.is_some() {
            next.next_partition();
        } else {
            next.done = true;
        }
    } else if list_base + consumed + limit > OFFSET_CEILING {
        // Continue at the last instant emitted, through search (or a fresh search window).
        let Some(last) = next.last_ts_ms else {
            return Err(SnapshotError::TieOverflow { module, ts_ms: cursor.window_start_ms.unwrap_or(0) });
        };
        if cursor.searching && Some(last) == cursor.window_start_ms {
            return Err(SnapshotError::TieOverflow { module, ts_ms: last });
        }
        if !cursor.searching {
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
    cursor: &SnapshotCursor,
    base: u32,
    split_fields: &[String],
    request_from: u32,
    deletes_seq: u64,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let (tickets, next) =
        sorted_step(desk, Module::Tickets, cursor, base, split_fields, request_from, deletes_seq).await?;
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
                let Some(id) = id_of(&row) else { continue };
                if !seen.insert(id.clone()) {
                    continue;
                }
                if module == Module::TicketThreads {
                    let full = fetch(desk, module, format!("{path}/{id}"), Vec::new(), "").await?;
                    row = full.records.into_iter().next().unwrap_or(row);
                }
                row.entry("ticketId").or_insert_with(|| Value::String(ticket_id.clone()));
                rows.push(row);
            }
            from += fetched;
            if fetched < spec.max_limit || base + from >= OFFSET_CEILING {
                break;
            }
        }
    }
    let mut next = next;
    // The ticket walk counted tickets; this module counts its own rows.
    next.records = cursor.records + rows.len() as u64;
    Ok((Page { records: rows, count: None }, next))
}

/// Search rows lack fields the list returns (e.g. `description`): fetch each record in full.
async fn complete_rows<D: DeskPages>(
    desk: &D,
    module: Module,
    rows: Vec<Map<String, Value>>,
) -> Result<Vec<Map<String, Value>>, SnapshotError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let spec = catalog::spec(module);
    // Detail calls run side by side (the quota guard caps how many reach Desk at once); order is kept.
    stream::iter(rows.into_iter().filter_map(|row| id_of(&row).map(|id| (id, row))))
        .map(|(id, row)| async move {
            let page = fetch(desk, module, format!("{}/{id}", spec.path), Vec::new(), "").await?;
            Ok::<_, SnapshotError>(page.records.into_iter().next().unwrap_or(row))
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
    module: Module,
    base: u32,
) -> Result<Vec<Map<String, Value>>, SnapshotError> {
    let mut cursor = SnapshotCursor::default();
    let mut out = Vec::new();
    while !cursor.done {
        let (page, next) = match catalog::spec(module).walk {
            Walk::List => list_step(desk, module, &cursor, base).await?,
            Walk::Whole => whole_step(desk, module, &cursor).await?,
            Walk::FieldMetadata => fields_step(desk, module, &cursor).await?,
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
    cursor: &SnapshotCursor,
    base: u32,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let limit = spec.max_limit;
    let mut query: Vec<(String, String)> =
        spec.list_query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    query.push(("from".into(), (base + cursor.from).to_string()));
    query.push(("limit".into(), limit.to_string()));
    let mut page = fetch(desk, module, spec.path.to_owned(), query, spec.records_key).await?;
    let fetched = u32::try_from(page.records.len()).unwrap_or(u32::MAX);
    let mut next = cursor.clone();
    next.prev_page_ids = page.records.iter().filter_map(id_of).collect();
    page.records.retain(|r| !id_of(r).is_some_and(|id| cursor.prev_page_ids.contains(&id)));
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.from = cursor.from + fetched;
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
    cursor: &SnapshotCursor,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let page = fetch(desk, module, spec.path.to_owned(), Vec::new(), spec.records_key).await?;
    let mut next = cursor.clone();
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.done = true;
    Ok((page, next))
}

async fn fields_step<D: DeskPages>(
    desk: &D,
    module: Module,
    cursor: &SnapshotCursor,
) -> Result<(Page, SnapshotCursor), SnapshotError> {
    let spec = catalog::spec(module);
    let mut next = cursor.clone();
    let Some(parent) = FIELD_MODULES.get(cursor.part as usize) else {
        next.done = true;
        return Ok((Page::default(), next));
    };
    let query = vec![("module".to_owned(), (*parent).to_owned())];
    let mut page = match desk.page(spec.path, query, spec.records_key).await {
        Ok(p) => p,
        Err(error) => {
            // A module the org's edition does not have must not stop the others.
            tracing::warn!(module = parent, %error, "Cannot load custom-field metadata; skipping this module.");
            Page::default()
        }
    };
    for r in &mut page.records {
        r.insert("module".into(), Value::String((*parent).to_owned()));
    }
    next.part += 1;
    next.pages += 1;
    next.records += page.records.len() as u64;
    next.done = next.part as usize >= FIELD_MODULES.len();
    Ok((page, next))
}

/// One transaction: the page's `r` events and the new cursor.
async fn commit_page(
    sink: &Sink<'_>,
    module: Module,
    page: Page,
    cursor: SnapshotCursor,
    last_module: bool,
) -> Result<(), SnapshotError> {
    let n = page.records.len();
    if let Some(seen) = sink.seen {
        if let Ok(mut seen) = seen.lock() {
            seen.extend(page.records.iter().filter_map(id_of));
        }
    }
    let mut events = Vec::with_capacity(n);
    for (i, record) in page.records.into_iter().enumerate() {
        let Some(id) = id_of(&record) else {
            tracing::warn!(module = %module, "Skipping a record without an id.");
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
            position: Some(format!("snapshot:{}:page:{}", module.name(), cursor.pages)),
        });
    }
    let cursor_json = serde_json::to_value(&cursor).unwrap_or_default();
    let state = vec![(SnapshotCursor::state_key(module), cursor_json.clone())];
    let committed = sink.writer.commit(sink.producer, events, state).await?;
    let labels = [("source", sink.source.to_owned()), ("module", module.name().to_owned())];
    metrics::counter!(SNAPSHOT_RECORDS_TOTAL, &labels).increment(committed.events as u64);
    sink.progress.update(module.name(), |p| {
        p.records = cursor.records;
        p.pages = cursor.pages;
        p.cursor = Some(cursor_json);
    });
    Ok(())
}
