//! The rate-limited Desk client as the pipeline's page source.

use super::{DeskFailure, DeskPages, Page};
use crate::zoho::client::{DeskClient, endpoint_label};
use serde_json::Value;

impl DeskPages for DeskClient {
    async fn page(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        records_key: &str,
    ) -> Result<Page, DeskFailure> {
        let body = self.get_json(&endpoint_label(path), path, &query).await?;
        let Some(mut body) = body else { return Ok(Page::default()) };
        if records_key.is_empty() {
            // A detail call: the body is the record.
            let records = match body {
                Value::Object(m) => vec![m],
                _ => Vec::new(),
            };
            return Ok(Page { records, count: None });
        }
        let count = body.get("count").and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
        let records = match body.get_mut(records_key).map(Value::take) {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Page { records, count })
    }
}
