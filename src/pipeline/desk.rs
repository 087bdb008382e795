//! The rate-limited Desk client as the pipeline's page source.

use super::{DeskFailure, DeskPages, Page};
use crate::change::record::{self, Record};
use crate::zoho::client::{DeskClient, endpoint_label};

impl DeskPages for DeskClient {
    async fn page(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        records_key: &str,
    ) -> Result<Page, DeskFailure> {
        let endpoint = endpoint_label(path);
        // The records share the body's text.
        let Some(text) = self.get_text(&endpoint, path, &query).await? else { return Ok(Page::default()) };
        let invalid = |e: record::RecordError| self.invalid_response(&endpoint, e.to_string());
        if records_key.is_empty() {
            // A detail call: the body is the record.
            return match Record::within(&text, &text) {
                Ok(record) => Ok(Page { records: vec![record], count: None }),
                Err(record::RecordError::NotAnObject) => Ok(Page::default()),
                Err(e) => Err(invalid(e).into()),
            };
        }
        let list = match Record::list(&text, records_key) {
            Ok(Some(list)) => list,
            Ok(None) => return Ok(Page::default()),
            Err(e) => return Err(invalid(e).into()),
        };
        let count =
            list.rest.iter().rev().find(|(k, _)| k == "count").and_then(|(_, c)| {
                c.as_number().and_then(|n| n.as_u64()).or_else(|| c.as_str()?.parse().ok())
            });
        let records = list.records;
        Ok(Page { records, count })
    }
}
