//! The rate-limited Desk client as the pipeline's page source.

use super::{DeskFailure, DeskPages, Page};
use crate::change::record::Record;
use crate::zoho::client::{DeskClient, endpoint_label};

impl DeskPages for DeskClient {
    async fn page(
        &self,
        path: &str,
        query: Vec<(String, String)>,
        records_key: &str,
    ) -> Result<Page, DeskFailure> {
        let endpoint = endpoint_label(path);
        // A body that is not the endpoint's shape is an error (retried by the client, then final): read as
        // an empty page it would end the walk there and mark the module done, silently cut short.
        let page = self.get_parsed(&endpoint, path, &query, |text| read_page(text, records_key)).await?;
        Ok(page)
    }
}

/// A 2xx body as a page: `None` (204 or blank) is Desk's empty page; otherwise the object's array under
/// `records_key` (its `count` too), or, for an empty `records_key`, the object itself (a detail call).
fn read_page(text: Option<std::sync::Arc<str>>, records_key: &str) -> Result<Page, String> {
    let Some(text) = text else { return Ok(Page::default()) };
    if records_key.is_empty() {
        // The records share the body's text.
        let record = Record::within(&text, &text).map_err(|e| e.to_string())?;
        return Ok(Page { records: vec![record], count: None });
    }
    let list = Record::list(&text, records_key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the body is not a JSON object".to_owned())?;
    if !list.has_array {
        return Err(format!("the body has no `{records_key}` array"));
    }
    let count = list
        .rest
        .iter()
        .rev()
        .find(|(k, _)| k == "count")
        .and_then(|(_, c)| c.as_number().and_then(|n| n.as_u64()).or_else(|| c.as_str()?.parse().ok()));
    Ok(Page { records: list.records, count })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(body: &str, key: &str) -> Result<Page, String> {
        read_page(Some(std::sync::Arc::from(body)), key)
    }

    #[test]
    fn only_desks_empty_answers_are_empty_pages() {
        assert!(read_page(None, "data").unwrap().records.is_empty());
        assert!(read(r#"{"data": []}"#, "data").unwrap().records.is_empty());
        assert!(read(r#"{"data": {}, "data": [7]}"#, "data").unwrap().records.is_empty());
        let page = read(r#"{"data": [{"id": "1"}], "count": 7}"#, "data").unwrap();
        assert_eq!((page.records.len(), page.count), (1, Some(7)));
        assert_eq!(read(r#"{"teams": [{"id": "1"}]}"#, "teams").unwrap().records.len(), 1);
        assert_eq!(read(r#"{"id": "1"}"#, "").unwrap().records.len(), 1);
    }

    #[test]
    fn bodies_that_are_not_the_endpoints_shape_are_errors() {
        for (body, key) in [
            (r#"{"count": 3}"#, "data"),
            (r#"{"data": null}"#, "data"),
            (r#"{"data": [], "data": {}}"#, "data"),
            (r#"{"data": [{"id": "1"}"#, "data"),
            (r#"[{"id": "1"}]"#, "data"),
            ("<html>gateway</html>", "data"),
            (r#"["not", "a", "record"]"#, ""),
            (r#"{"id": "1""#, ""),
        ] {
            assert!(read(body, key).is_err(), "{body} under `{key}` read as a page");
        }
    }
}
