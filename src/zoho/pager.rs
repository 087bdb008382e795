//! Walking Desk collections: list pages (`from`/`limit`), search time windows, and their resumable
//! positions. Every page goes through the client, so the quota guard charges each one.
//!
//! Desk stops iterating at offset 5000 (reference B.1), so a list longer than that cannot be paged to
//! the end; [`SearchPager`] splits a time range until every window holds fewer matches than that.

use crate::zoho::client::DeskClient;
use crate::zoho::error::ZohoError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;

/// Desk's offset ceiling: `from` must stay below it (and search `from + limit` at or below it).
pub const OFFSET_CEILING: u32 = 5000;

/// Where a list walk stands; store it to resume after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListCursor {
    /// 0-based offset of the next record to ask for.
    pub offset: u32,
    pub done: bool,
}

/// Pages through `GET /{path}?from=&limit=` until a 204 or a short page.
#[derive(Debug)]
pub struct ListPager {
    client: DeskClient,
    path: String,
    limit: u32,
    extra: Vec<(String, String)>,
    cursor: ListCursor,
    /// Ids of the previous page: with `from` base 0 against a 1-based Desk, pages overlap by one.
    previous: HashSet<String>,
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl ListPager {
    pub fn new(client: &DeskClient, path: &str, limit: u32, extra: Vec<(String, String)>) -> Self {
        Self::resume(client, path, limit, extra, ListCursor::default())
    }

    /// Continues from a stored cursor.
    pub fn resume(
        client: &DeskClient,
        path: &str,
        limit: u32,
        extra: Vec<(String, String)>,
        cursor: ListCursor,
    ) -> Self {
        Self {
            client: client.clone(),
            path: path.to_owned(),
            limit: limit.max(1),
            extra,
            cursor,
            previous: HashSet::new(),
        }
    }

    pub fn cursor(&self) -> ListCursor {
        self.cursor
    }

    /// The next page of new records, or `None` once the list is exhausted. An error leaves the cursor
    /// where it was, so calling again retries the same page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, ZohoError> {
        if self.cursor.done {
            return Ok(None);
        }
        let from = self.cursor.offset + self.client.options().list_from_base;
        if from >= OFFSET_CEILING {
            return Err(ZohoError::Desk {
                source_name: self.client.source_name().to_owned(),
                endpoint: self.path.clone(),
                status: 422,
                code: "UNPROCESSABLE_ENTITY".into(),
                message: format!(
                    "the list goes past Desk's offset ceiling of {OFFSET_CEILING}; read it in search windows instead"
                ),
            });
        }
        let limit = self.limit.min(OFFSET_CEILING - from);
        let page = self.client.list_page(&self.path, from, limit, &self.extra).await?;
        let got = page.len() as u32;
        self.cursor.offset += got;
        if got < limit || got == 0 {
            self.cursor.done = true;
        }
        let ids: HashSet<String> = page.iter().filter_map(id_of).collect();
        let fresh: Vec<Value> =
            page.into_iter().filter(|r| id_of(r).is_none_or(|id| !self.previous.contains(&id))).collect();
        // The overlapping record shifts the next page by one.
        let overlap = got - fresh.len() as u32;
        self.cursor.offset -= overlap;
        self.previous = ids;
        if fresh.is_empty() && self.cursor.done {
            return Ok(None);
        }
        Ok(Some(fresh))
    }
}

/// A time range `[start, end]` of a search (both ends inclusive, as Desk's ranges are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl TimeWindow {
    /// Desk's range syntax: `2024-01-01T00:00:00.000Z,2024-01-02T00:00:00.000Z`.
    pub fn to_param(&self) -> String {
        let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        format!("{},{}", f(self.start), f(self.end))
    }

    fn split(&self) -> Option<(TimeWindow, TimeWindow)> {
        let span = self.end - self.start;
        if span < chrono::Duration::milliseconds(2) {
            return None;
        }
        let mid = self.start + span / 2;
        Some((
            TimeWindow { start: self.start, end: mid },
            TimeWindow { start: mid + chrono::Duration::milliseconds(1), end: self.end },
        ))
    }
}

/// Where a search walk stands: the windows still to read (next first) and the offset in the first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchCursor {
    pub windows: Vec<TimeWindow>,
    pub from: u32,
}

/// One page of a search walk and the window it belongs to.
#[derive(Debug, Clone)]
pub struct SearchBatch {
    pub window: TimeWindow,
    pub records: Vec<Value>,
}

/// Walks `GET /{module}/search?{range_param}=start,end&sortBy=...` over a time range, splitting any
/// window with more matches than Desk lets one iterate.
#[derive(Debug)]
pub struct SearchPager {
    client: DeskClient,
    path: String,
    range_param: String,
    limit: u32,
    extra: Vec<(String, String)>,
    cursor: SearchCursor,
}

impl SearchPager {
    /// `range_param` is e.g. `modifiedTimeRange`; `extra` carries `sortBy` and filters.
    pub fn new(
        client: &DeskClient,
        path: &str,
        range_param: &str,
        window: TimeWindow,
        limit: u32,
        extra: Vec<(String, String)>,
    ) -> Self {
        let cursor = SearchCursor { windows: vec![window], from: 0 };
        Self::resume(client, path, range_param, limit, extra, cursor)
    }

    pub fn resume(
        client: &DeskClient,
        path: &str,
        range_param: &str,
        limit: u32,
        extra: Vec<(String, String)>,
        cursor: SearchCursor,
    ) -> Self {
        Self {
            client: client.clone(),
            path: path.to_owned(),
            range_param: range_param.to_owned(),
            limit: limit.clamp(1, 100),
            extra,
            cursor,
        }
    }

    pub fn cursor(&self) -> &SearchCursor {
        &self.cursor
    }

    /// The next non-empty page, or `None` when every window is read.
    pub async fn next_batch(&mut self) -> Result<Option<SearchBatch>, ZohoError> {
        loop {
            let Some(window) = self.cursor.windows.first().copied() else {
                return Ok(None);
            };
            let from = self.cursor.from;
            let limit = self.limit.min(OFFSET_CEILING.saturating_sub(from)).max(1);
            let mut query = vec![(self.range_param.clone(), window.to_param())];
            query.extend(self.extra.iter().cloned());
            let page = self.client.search_page(&self.path, from, limit, &query).await?;
            let count = page.count.unwrap_or(0);
            if from == 0 && count > u64::from(OFFSET_CEILING) {
                if let Some((a, b)) = window.split() {
                    self.cursor.windows.splice(0..1, [a, b]);
                    continue;
                }
            }
            let got = page.records.len() as u32;
            self.cursor.from += got;
            let exhausted = got < limit
                || got == 0
                || u64::from(self.cursor.from) >= count
                || self.cursor.from >= OFFSET_CEILING;
            if exhausted {
                self.cursor.windows.remove(0);
                self.cursor.from = 0;
            }
            if page.records.is_empty() {
                continue;
            }
            return Ok(Some(SearchBatch { window, records: page.records }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_use_desk_syntax_and_split_without_overlap() {
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap_or_default();
        let end = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).single().unwrap_or_default();
        let w = TimeWindow { start, end };
        assert_eq!(w.to_param(), "2024-01-01T00:00:00.000Z,2024-01-02T00:00:00.000Z");
        let (a, b) = w.split().unwrap_or((w, w));
        assert_eq!(a.end + chrono::Duration::milliseconds(1), b.start);
        assert_eq!((a.start, b.end), (start, end));
        assert!(TimeWindow { start, end: start }.split().is_none());
    }
}
