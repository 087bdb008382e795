//! The snapshot cursor of one module, stored in the state topic in the same transaction as the page it
//! follows, so a restart resumes exactly after the last committed page.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
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
    pub recent_ids: RecentList,
    pub records: u64,
    pub pages: u64,
    pub done: bool,
}

/// Ids, oldest first, held in shared blocks (one per page). The walk hands a copy of its cursor to the
/// committer with every page: a block is copied by one count, where a plain list of a thousand ids was
/// copied (and later dropped) id by id. Serialised as one plain list.
#[derive(Debug, Clone, Default)]
pub struct RecentList {
    blocks: VecDeque<Arc<[Id]>>,
}

impl RecentList {
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Id> {
        self.blocks.iter().flat_map(|b| b.iter())
    }

    /// Appends `ids` as one block.
    pub fn push(&mut self, ids: Vec<Id>) {
        if !ids.is_empty() {
            self.blocks.push_back(ids.into());
        }
    }

    /// Removes the `n` oldest ids (all of them when there are fewer) and returns them.
    pub fn forget_oldest(&mut self, n: usize) -> Vec<Id> {
        let mut gone = Vec::with_capacity(n.min(self.len()));
        while gone.len() < n {
            let Some(front) = self.blocks.pop_front() else { break };
            let take = (n - gone.len()).min(front.len());
            gone.extend(front.iter().take(take).cloned());
            if take < front.len() {
                self.blocks.push_front(front.get(take..).unwrap_or_default().into());
            }
        }
        gone
    }
}

impl From<Vec<Id>> for RecentList {
    fn from(ids: Vec<Id>) -> Self {
        let mut list = Self::default();
        list.push(ids);
        list
    }
}

/// The same ids in the same order, however they are blocked.
impl PartialEq for RecentList {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for RecentList {}

impl Serialize for RecentList {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for RecentList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Id>::deserialize(deserializer).map(Self::from)
    }
}

/// One part of a partitioned walk: the list filters that select it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Partition {
    /// A whole department (cursors written before departments were split further read as this).
    Department(String),
    /// `departmentId` and further equality filters (`status`, `channel`, ...), in that order; none for a
    /// module walked whole.
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

    #[test]
    fn recent_lists_read_and_write_as_plain_lists() {
        let ids = |r: std::ops::Range<usize>| r.map(|i| Id::from(i.to_string())).collect::<Vec<_>>();
        let mut list = RecentList::default();
        for block in [ids(0..3), Vec::new(), ids(3..4), ids(4..9)] {
            list.push(block);
        }
        assert_eq!((list.len(), list.blocks.len()), (9, 3));
        assert_eq!(list, RecentList::from(ids(0..9)));
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(text, serde_json::to_string(&ids(0..9)).unwrap());
        assert_eq!(serde_json::from_str::<RecentList>(&text).unwrap(), list);
        // Across a block's end, inside a block, nothing, then more than is left.
        assert_eq!(list.forget_oldest(4), ids(0..4));
        assert_eq!(list.forget_oldest(2), ids(4..6));
        assert_eq!(list.forget_oldest(0), Vec::<Id>::new());
        assert_eq!((list.len(), list.iter().cloned().collect::<Vec<_>>()), (3, ids(6..9)));
        assert_eq!(list.forget_oldest(5), ids(6..9));
        assert!(list.is_empty() && list.blocks.is_empty());
    }
}
