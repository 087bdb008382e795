//! The change-event model: what happened to one Desk record, independent of Desk's wire shapes and of Avro.

use crate::zoho::module::Module;
use serde_json::{Map, Value};

/// Debezium operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Snapshot read.
    Read,
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// Debezium `source.snapshot` markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// Inside a snapshot, not the last record.
    True,
    /// Last record of one module's snapshot.
    LastInDataCollection,
    /// Last record of the whole snapshot.
    Last,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::True => "true",
            SnapshotMarker::LastInDataCollection => "last_in_data_collection",
            SnapshotMarker::Last => "last",
        }
    }
}

/// One change to one record.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub module: Module,
    /// The record id: the Kafka key.
    pub id: String,
    pub op: Op,
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
    /// When the change happened at Desk (eventTime or modifiedTime), epoch ms.
    pub source_ts_ms: i64,
    pub snapshot: Option<SnapshotMarker>,
    /// Desk's webhook eventType, when the change came from a webhook.
    pub event_type: Option<String>,
    /// The bridge's position: snapshot page, webhook batch, reconcile window.
    pub position: Option<String>,
}

impl ChangeEvent {
    /// A delete known only by its key (the record is gone from Desk): `before` carries just the id.
    pub fn gone(module: Module, id: &str, ts_ms: i64, event_type: Option<&str>, position: &str) -> Self {
        Self {
            module,
            id: id.to_owned(),
            op: Op::Delete,
            before: Some(Map::from_iter([("id".to_owned(), Value::String(id.to_owned()))])),
            after: None,
            source_ts_ms: ts_ms,
            snapshot: None,
            event_type: event_type.map(str::to_owned),
            position: Some(position.to_owned()),
        }
    }
}

/// Whether Desk marks the record deleted or trashed (`isDeleted`/`isTrashed`, as a boolean or a string).
pub fn is_deleted(record: &Map<String, Value>) -> bool {
    ["isDeleted", "isTrashed"].iter().any(|k| match record.get(*k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// Parses Desk's ISO-8601 timestamps ("2026-01-15T10:22:33.000Z") to epoch ms.
pub fn parse_desk_time(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value).ok().map(|t| t.timestamp_millis())
}

/// The record's `modifiedTime` (or `createdTime`) in epoch ms, used for ordering and lag.
pub fn record_time_ms(record: &Map<String, Value>) -> Option<i64> {
    ["modifiedTime", "createdTime"]
        .iter()
        .find_map(|k| record.get(*k).and_then(Value::as_str).and_then(parse_desk_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_desk_timestamps() {
        assert_eq!(parse_desk_time("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_desk_time("garbage"), None);
        let mut m = Map::new();
        m.insert("createdTime".into(), Value::String("1970-01-01T00:00:02.000Z".into()));
        assert_eq!(record_time_ms(&m), Some(2000));
        m.insert("modifiedTime".into(), Value::String("1970-01-01T00:00:03.000Z".into()));
        assert_eq!(record_time_ms(&m), Some(3000));
    }
}
