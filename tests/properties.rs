//! Property tests of the parsers that take outside input: webhook bodies and their mapping, workflow
//! notifications, JSON → Avro conversion, and configuration files. None may panic, whatever the input, and
//! conversion must keep every field (typed, in `cf`, or in `extra`). Seeded from Desk's payload shapes; a
//! fixed case count keeps the run bounded (`make chaos` runs many more cases).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use zoho_desk_cdc::avro::{convert, direct, schemas};
use zoho_desk_cdc::change::Record;
use zoho_desk_cdc::zoho::module::Module;
use zoho_desk_cdc::zoho::webhook;

const ORG: &str = "60000000001";

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 :._-]{0,24}".prop_map(Value::String),
        Just(json!("2026-01-05T09:12:44.000Z")),
        Just(json!("1892000000042032")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field name: one of a Desk record's usual ones, or anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "subject",
            "status",
            "createdTime",
            "modifiedTime",
            "departmentId",
            "contactId",
            "cf",
            "isDeleted",
            "isTrashed",
            "email",
            "priority",
            "dueDate",
            "customFields",
            "ticketNumber",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_]{1,12}",
    ]
}

fn record() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(field_name(), json_value(), 0..10).prop_map(|m| m.into_iter().collect())
}

fn event() -> impl Strategy<Value = Value> {
    let event_type = prop_oneof![
        prop::sample::select(vec![
            "Ticket_Add",
            "Ticket_Update",
            "Ticket_Delete",
            "Contact_Add",
            "Contact_Update",
            "Task_Delete",
            "Ticket_Thread_Add",
            "Ticket_Comment_Update",
            "Agent_Update",
            "Article_Add",
            "Nonsense",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z_]{0,20}",
    ];
    (event_type, prop::option::of(record()), prop::option::of(record()), any::<bool>(), any::<i64>())
        .prop_map(|(t, payload, prev, same_org, time)| {
            let mut e = json!({"eventType": t, "orgId": if same_org { ORG } else { "1" },
                "eventTime": time.to_string()});
            if let Some(p) = payload {
                e["payload"] = Value::Object(p);
            }
            if let Some(p) = prev {
                e["prevState"] = Value::Object(p);
            }
            e
        })
}

/// What conversion must keep: every non-null value, compared by its text (a typed field may turn the
/// number Desk sent as a string into a number, or back), recursively. Avro's optional fields read back
/// absent, so nulls drop out.
fn kept(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), kept(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(kept).collect()),
        Value::String(s) => Value::String(s.clone()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Null => Value::Null,
    }
}

/// 256 cases per property in `make test`; `make chaos` raises it with PROPTEST_CASES.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn delivery_parsing_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = webhook::parse_delivery(&body, ORG);
    }

    #[test]
    fn delivery_parsing_and_mapping_never_panic(events in prop::collection::vec(event(), 0..8), wrap in any::<bool>()) {
        let body = if wrap { json!(events) } else { events.first().cloned().unwrap_or(Value::Null) };
        let bytes = body.to_string().into_bytes();
        if let Ok(webhook::Delivery::Events(parsed)) = webhook::parse_delivery(&bytes, ORG) {
            let n = parsed.len();
            let mapped = webhook::map_events(parsed, 0);
            prop_assert!(mapped.changes.len() + mapped.skipped.len() <= n);
        }
    }

    #[test]
    fn notification_parsing_never_panics(text in ".{0,200}", id in "[0-9]{1,20}") {
        let _ = webhook::parse_notification(&text);
        let hinted = format!("{text} zoho-desk-cdc module=tickets id={id}");
        let _ = webhook::parse_notification(&hinted);
        let body = json!({"text": hinted}).to_string().into_bytes();
        let _ = webhook::parse_delivery(&body, ORG);
    }

    #[test]
    fn conversion_never_panics_and_keeps_every_field(module_index in 0usize..15, rec in record()) {
        let module = Module::all().nth(module_index % Module::all().count()).unwrap();
        let s = schemas::for_module(module).unwrap();
        if let Ok(avro) = convert::record_to_avro(&s.record, &Record::from_map(&rec)) {
            let back = convert::avro_to_json(&avro).unwrap_or_default();
            prop_assert_eq!(kept(&Value::Object(back)), kept(&Value::Object(rec.clone())));
        }
    }

    /// The bytes the bridge writes straight from the JSON decode to the value the checked path builds.
    #[test]
    fn direct_avro_equals_the_value_path(module_index in 0usize..15, rec in record()) {
        let module = Module::all().nth(module_index % Module::all().count()).unwrap();
        let s = schemas::for_module(module).unwrap();
        let (plan, rec) = (direct::Plan::new(&s.record).unwrap(), Record::from_map(&rec));
        let mut bytes = Vec::new();
        let written = direct::write_record(&plan, &rec, &mut bytes);
        match convert::record_to_avro(&s.record, &rec) {
            Ok(avro) => {
                prop_assert!(written.is_ok());
                let reader = apache_avro::reader::datum::GenericDatumReader::builder(&s.record).build().unwrap();
                prop_assert_eq!(reader.read_value(&mut bytes.as_slice()).unwrap(), avro);
            }
            Err(_) => prop_assert!(written.is_err()),
        }
    }

    /// Records and list pages read as `serde_json` reads them, escapes, whitespace and nesting included.
    #[test]
    fn records_read_as_serde_json_reads_them(
        items in prop::collection::vec(prop::collection::btree_map("[a-zA-Z\"\\\\é\u{1}]{0,8}", json_value(), 0..8), 0..4),
        text_values in prop::collection::vec("[a-z\"\\\\/\u{1}\n\té€ ]{0,10}", 0..4),
        pretty in any::<bool>(),
    ) {
        let items: Vec<Map<String, Value>> = items
            .into_iter()
            .map(|m| {
                let mut m: Map<String, Value> = m.into_iter().collect();
                for (i, t) in text_values.iter().enumerate() {
                    m.insert(format!("t{i}"), Value::String(t.clone()));
                }
                m
            })
            .collect();
        let page = json!({"count": items.len(), "data": items, "more": {"a": [1, "x"]}});
        let text = if pretty { serde_json::to_string_pretty(&page) } else { serde_json::to_string(&page) }.unwrap();
        let text: std::sync::Arc<str> = text.into();
        let list = Record::list(&text, "data").unwrap().unwrap();
        prop_assert!(list.has_array);
        prop_assert_eq!(list.records.len(), items.len());
        for (record, item) in list.records.iter().zip(&items) {
            prop_assert_eq!(&record.to_map(), item);
            let alone = if pretty { serde_json::to_string_pretty(item) } else { serde_json::to_string(item) }.unwrap();
            prop_assert_eq!(&Record::parse(&alone).unwrap().to_map(), item);
        }
        let rest: Vec<&str> = list.rest.iter().map(|(k, _)| k.as_ref()).collect();
        prop_assert_eq!(rest, vec!["count", "more"]);
    }

    #[test]
    fn config_parsing_never_panics(text in "[a-z_\\[\\]=\"0-9 .\n]{0,300}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let _ = zoho_desk_cdc::config::Settings::load(&path);
    }
}
