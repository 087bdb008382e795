//! Orchestration: the snapshot, (later) the webhook stream and the reconciler, per source.

pub mod audience;
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
use crate::zoho::error::ZohoError;
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

    /// The record `id` of `path` by a detail call; `None` when Desk has no such record (404) or answers
    /// without one.
    fn record(
        &self,
        path: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Record>, DeskFailure>> + Send {
        async move {
            match self.page(&format!("{path}/{id}"), Vec::new(), "").await {
                Ok(page) => Ok(page.records.into_iter().next()),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// Whether Desk answered that the record does not exist.
fn is_not_found(e: &DeskFailure) -> bool {
    e.downcast_ref::<ZohoError>().is_some_and(ZohoError::is_not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Desk with record 7 only; id 5 fails with a server error.
    struct OneRecord;

    impl DeskPages for OneRecord {
        async fn page(&self, path: &str, _: Vec<(String, String)>, _: &str) -> Result<Page, DeskFailure> {
            let status = match path {
                "tickets/7" => {
                    let record = Record::parse(r#"{"id": "7"}"#)?;
                    return Ok(Page { records: vec![record], count: None });
                }
                "tickets/5" => 500,
                _ => 404,
            };
            Err(Box::new(ZohoError::Desk {
                source_name: "s".into(),
                endpoint: path.into(),
                status,
                code: String::new(),
                message: String::new(),
            }))
        }
    }

    #[tokio::test]
    async fn a_detail_call_reads_404_as_no_record_and_passes_other_errors_on() {
        let found = OneRecord.record("tickets", "7").await.ok().flatten();
        assert_eq!(found.and_then(|r| r.get("id").map(|v| v.raw().to_owned())).as_deref(), Some(r#""7""#));
        assert!(matches!(OneRecord.record("tickets", "8").await, Ok(None)));
        assert!(OneRecord.record("tickets", "5").await.is_err());
    }
}
