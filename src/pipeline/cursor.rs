//! The snapshot cursor of one module, stored in the state topic in the same transaction as the page it
//! follows, so a restart resumes exactly after the last committed page.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A record id as the cursor keeps it: shared, since the walk hands a copy of its cursor to the committer
/// with every page and a cursor holds a thousand recent ids (serialised as a plain string).
pub type Id = Arc<str>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCursor {
    /// The snapshot's upper bound (its start), epoch ms: later creations arrive as webhook events.
    pub upper_ms: i64,
    /// The partitions when the module is walked per department (fixed at the snapshot's first step; shared,
    /// since the cursor is copied for every page and a big module has dozens of parts).
    #[serde(default)]
    pub partitions: Option<Arc<[Partition]>>,
    /// Deletes of this module the source had committed when the previous page was read.
    #[serde(default)]
    pub deletes_seen: u64,
    /// Index into `partitions` (sorted walk) or into the catalog's field-module list (metadata walk).
    pub part: u32,
    /// Next `from` inside the current list, partition or search window.
    pub from: u32,
    /// The current partition passed the offset ceiling and continues through search windows.
    #[serde(default)]
    pub searching: bool,
    /// Start of the current `createdTimeRange` window, epoch ms (search walk).
    pub window_start_ms: Option<i64>,
    /// The latest `createdTime` emitted and the ids emitted at exactly that time: when a window restarts at
    /// that time these are skipped, so ties across a window boundary are neither lost nor duplicated.
    pub last_ts_ms: Option<i64>,
    pub ids_at_last_ts: Vec<Id>,
    /// Ids of the previous list page: a 1-based list asked from 0 repeats one record per page.
    #[serde(default)]
    pub prev_page_ids: Vec<Id>,
    /// Ids of the latest rows emitted by the sorted walk (bounded), to drop re-reads.
    #[serde(default)]
    pub recent_ids: Vec<Id>,
    pub records: u64,
    pub pages: u64,
    pub done: bool,
}

/// One part of a partitioned walk: the list filters that select it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Partition {
    /// A whole department (cursors written before departments were split further read as this).
    Department(String),
    /// `departmentId` and further equality filters (`status`, `channel`, ...), in that order.
    Filters(Vec<(String, String)>),
}

impl Partition {
    /// The list (and search) parameters that select the partition.
    pub fn query(&self) -> Vec<(String, String)> {
        match self {
            Partition::Department(d) => vec![("departmentId".to_owned(), d.clone())],
            Partition::Filters(f) => f.clone(),
        }
    }
}

impl SnapshotCursor {
    /// Moves to the next partition, forgetting the per-partition position.
    pub fn next_partition(&mut self) {
        self.part += 1;
        self.from = 0;
        self.searching = false;
        self.window_start_ms = None;
        self.last_ts_ms = None;
        self.ids_at_last_ts.clear();
        self.prev_page_ids.clear();
    }

    pub fn state_key(module: crate::zoho::module::Module) -> String {
        format!("snapshot/{}", module.name())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursors_with_department_ids_still_read() {
        let old: SnapshotCursor = serde_json::from_str(
            r#"{"upper_ms":1,"partitions":["7001"],"part":0,"from":0,"window_start_ms":null,
                "last_ts_ms":null,"ids_at_last_ts":[],"records":0,"pages":0,"done":false}"#,
        )
        .unwrap();
        assert_eq!(old.partitions.as_deref(), Some(&[Partition::Department("7001".into())][..]));
        let split = Partition::Filters(vec![
            ("departmentId".into(), "7001".into()),
            ("status".into(), "Open".into()),
        ]);
        let text = serde_json::to_string(&split).unwrap();
        assert_eq!(serde_json::from_str::<Partition>(&text).unwrap(), split);
        assert_eq!(split.query()[1], ("status".to_owned(), "Open".to_owned()));
    }
}
