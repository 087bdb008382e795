//! The change-event model: what happened to one Desk record, independent of Desk's wire shapes and of Avro.

pub mod record;
pub(crate) mod scan;
mod time;

pub use record::Record;
pub use time::parse_desk_time;

use crate::zoho::module::Module;

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
    /// The record id: the Kafka key. Shared, so the ordering guard keeps it without a copy.
    pub id: std::sync::Arc<str>,
    pub op: Op,
    pub before: Option<Record>,
    pub after: Option<Record>,
    /// When the change happened at Desk (eventTime or modifiedTime), epoch ms.
    pub source_ts_ms: i64,
    pub snapshot: Option<SnapshotMarker>,
    /// Desk's webhook eventType, when the change came from a webhook.
    pub event_type: Option<String>,
    /// The bridge's position: snapshot page, webhook batch, reconcile window.
    pub position: Option<std::sync::Arc<str>>,
}

impl ChangeEvent {
    /// A delete known only by its key (the record is gone from Desk): `before` carries just the id.
    pub fn gone(module: Module, id: &str, ts_ms: i64, event_type: Option<&str>, position: &str) -> Self {
        Self {
            module,
            id: id.into(),
            op: Op::Delete,
            before: Some(Record::default().with("id", &serde_json::Value::String(id.to_owned()))),
            after: None,
            source_ts_ms: ts_ms,
            snapshot: None,
            event_type: event_type.map(str::to_owned),
            position: Some(position.into()),
        }
    }

    /// A record as it is now, at `ts_ms`: no `before` (Desk's detail and list calls give only the present).
    pub fn update(
        module: Module,
        id: &str,
        record: Record,
        ts_ms: i64,
        event_type: Option<&str>,
        position: &str,
    ) -> Self {
        Self {
            module,
            id: id.into(),
            op: Op::Update,
            before: None,
            after: Some(record),
            source_ts_ms: ts_ms,
            snapshot: None,
            event_type: event_type.map(str::to_owned),
            position: Some(position.into()),
        }
    }

    /// What a detail call `found` for `id` says now: the record as an update, or a delete when Desk no
    /// longer has it or marks it deleted.
    pub fn refetched(
        module: Module,
        id: &str,
        found: Option<Record>,
        now: i64,
        event_type: Option<&str>,
        position: &str,
    ) -> Self {
        match found {
            Some(record) if !is_deleted(&record) => {
                let ts_ms = record_time_ms(&record).unwrap_or(now);
                Self::update(module, id, record, ts_ms, event_type, position)
            }
            _ => Self::gone(module, id, now, event_type, position),
        }
    }
}

/// Whether Desk marks the record deleted or trashed (`isDeleted`/`isTrashed`, as a boolean or a string).
pub fn is_deleted(record: &Record) -> bool {
    ["isDeleted", "isTrashed"].iter().any(|k| match record.get(k) {
        Some(v) => v.as_bool().unwrap_or(false) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")),
        None => false,
    })
}

/// The record's `modifiedTime` (or `createdTime`) in epoch ms, used for ordering and lag.
pub fn record_time_ms(record: &Record) -> Option<i64> {
    ["modifiedTime", "createdTime"].iter().find_map(|k| record.get_str(k).and_then(|t| parse_desk_time(&t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_desk_timestamps() {
        assert_eq!(parse_desk_time("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(parse_desk_time("garbage"), None);
        let m = Record::parse(r#"{"createdTime": "1970-01-01T00:00:02.000Z"}"#).unwrap_or_default();
        assert_eq!(record_time_ms(&m), Some(2000));
        let m = m.with("modifiedTime", &serde_json::json!("1970-01-01T00:00:03.000Z"));
        assert_eq!(record_time_ms(&m), Some(3000));
    }

    #[test]
    fn a_refetched_record_is_an_update_unless_gone_or_marked_deleted() {
        let live =
            Record::parse(r#"{"id": "7", "modifiedTime": "1970-01-01T00:00:03.000Z"}"#).unwrap_or_default();
        let e = ChangeEvent::refetched(Module::Tickets, "7", Some(live.clone()), 9, None, "p");
        assert_eq!((e.op, e.source_ts_ms, e.after), (Op::Update, 3000, Some(live.clone())));
        let trashed = live.with("isTrashed", &serde_json::json!(true));
        for found in [None, Some(trashed)] {
            let e = ChangeEvent::refetched(Module::Tickets, "7", found, 9, Some("t"), "p");
            assert_eq!(
                (e.op, e.source_ts_ms, e.after, e.event_type.as_deref()),
                (Op::Delete, 9, None, Some("t"))
            );
        }
    }
}
