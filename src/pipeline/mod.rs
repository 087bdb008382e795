//! Orchestration: the snapshot, (later) the webhook stream and the reconciler, per source.

pub mod commit;
pub mod cursor;
pub mod deletions;
pub mod desk;
pub mod ordering;
pub mod progress;
pub mod reconcile;
pub mod snapshot;
pub mod source;
pub mod stream;

use crate::change::Record;
use std::future::Future;

/// One page of Desk records.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// Total matches, when the endpoint reports it (search).
    pub count: Option<u64>,
}

/// A Desk error as the pipeline sees it: already retried by the client, so it is final.
pub type DeskFailure = Box<dyn std::error::Error + Send + Sync>;

/// What the pipeline needs from Desk; implemented by the rate-limited client, and by fakes in unit tests.
pub trait DeskPages: Send + Sync {
    /// GETs `/api/v1/<path>` with `query` and returns the records under `records_key` (204 → empty page);
    /// an empty `records_key` means the body is one record (a detail call).
    fn page(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        records_key: &str,
    ) -> impl Future<Output = Result<Page, DeskFailure>> + Send;
}
