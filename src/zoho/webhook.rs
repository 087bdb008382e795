//! What Desk POSTs to the service URL, parsed and mapped to [`ChangeEvent`]s. Pure functions: no I/O,
//! no clock, no panics on any input.
//!
//! Two kinds of body arrive:
//!
//! * **Desk webhook deliveries**: a JSON array of events
//!   `{"eventType", "orgId", "eventTime" (epoch-ms string), "payload", "prevState"?}`. Every element counts:
//!   Desk batches several changes into one POST.
//! * **Workflow notifications** ("Send Cliq Notification" pointed at the service URL): a JSON object with
//!   user-written `text`. It carries no record, only a hint of which one changed; the caller fetches it by id.
//!
//! # The workflow-notification template
//!
//! Configure the workflow rule's "Send Cliq Notification" action with this message, inserting the record id
//! with Desk's placeholder picker (the record id, the long number in the record's URL, not the ticket number):
//!
//! ```text
//! zoho-desk-cdc module=tickets id=<record id placeholder>
//! ```
//!
//! `module=` names the bridge module (CONTRACT §5: `tickets`, `contacts`, `accounts`, `tasks`, ...). Anything
//! else on the line is ignored, so a human-readable text may follow. Several lines give several hints. The
//! simulator's default text (`Ticket #${ticketNumber} ${event}: ${subject} (status ${status}, id ${id})`)
//! is understood too: without `module=`, the first word (`Ticket`, `Contact`, ...) names the module and
//! `id <digits>` the record.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::change::record::{Json, Kind, Placed, Record, RecordError};
use crate::change::scan::Scanner;
use crate::change::{ChangeEvent, Op, parse_desk_time, record_time_ms};
use crate::zoho::catalog::module_for_event;
use crate::zoho::module::Module;

/// The webhook event types the bridge subscribes to and maps (CONTRACT §5). Metrics label other types
/// `other`, so the label set stays bounded whatever a sender puts in `eventType`.
pub const EVENT_TYPES: [&str; 29] = [
    "Ticket_Add",
    "Ticket_Update",
    "Ticket_Delete",
    "Ticket_Thread_Add",
    "Ticket_Comment_Add",
    "Ticket_Comment_Update",
    "Contact_Add",
    "Contact_Update",
    "Contact_Delete",
    "Account_Add",
    "Account_Update",
    "Account_Delete",
    "Agent_Add",
    "Agent_Update",
    "Agent_Delete",
    "Department_Add",
    "Department_Update",
    "Task_Add",
    "Task_Update",
    "Task_Delete",
    "Call_Add",
    "Call_Update",
    "Call_Delete",
    "Event_Add",
    "Event_Update",
    "Event_Delete",
    "Article_Add",
    "Article_Update",
    "Article_Delete",
];

/// Longest record id accepted; Desk ids are 16–19 digit numbers, so this only stops abuse.
const MAX_ID_LEN: usize = 64;

/// Why a body is refused. Messages never quote the body (it holds customer data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not JSON, or JSON of a shape Desk does not send. Answer 400.
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// An event names another Desk org than the source's. Answer 401: it fails authentication for this
    /// source (CONTRACT §4 has no 403; Desk does not retry either way).
    #[error("webhook event for org {got} arrived at the service URL of org {expected}")]
    OrgMismatch { expected: String, got: String },
    /// A workflow notification whose text holds no `module`/`id` hint (the template is not configured as
    /// docs/webhooks.md describes). Answer 400.
    #[error("workflow notification text has no record hint; configure the template from docs/webhooks.md")]
    NoHint,
}

impl WebhookError {
    /// The HTTP status the service URL answers with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Malformed(_) | WebhookError::NoHint => 400,
            WebhookError::OrgMismatch { .. } => 401,
        }
    }

    /// A bounded metric label (`reason` of `webhook_rejected_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::Malformed(_) => "malformed",
            WebhookError::NoHint => "no_hint",
            WebhookError::OrgMismatch { .. } => "org_mismatch",
        }
    }
}

/// One element of a Desk delivery, shape-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskEvent {
    pub event_type: String,
    pub org_id: String,
    /// `eventTime` in epoch ms, when present and readable.
    pub event_time_ms: Option<i64>,
    /// The record (`{}` when Desk sent none, e.g. on event types the bridge does not map).
    pub payload: Record,
    /// Previous values of the changed fields (`*_Update` with `includePrevState`).
    pub prev_state: Option<Record>,
}

/// "Record `id` of `module` changed": fetch it by id to learn how.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hint {
    pub module: Module,
    /// All digits, so it is safe in a URL path.
    pub id: String,
}

/// A parsed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A Desk webhook delivery. Empty for Desk's validation POST (`[]`), which is answered 200.
    Events(Vec<DeskEvent>),
    /// A workflow notification: at least one hint, deduplicated, in text order.
    Notification(Vec<Hint>),
}

/// An event the bridge does not turn into a change (counted and skipped by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub event_type: String,
}

/// The changes of one delivery, in delivery order, and what was skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    pub changes: Vec<ChangeEvent>,
    pub skipped: Vec<Skipped>,
}

/// Parses a body POSTed to the service URL of the source for org `expected_org`. One pass over the body:
/// the records (payloads, previous states) keep the body's text and are read in place.
pub fn parse_delivery(body: &[u8], expected_org: &str) -> Result<Delivery, WebhookError> {
    let text: Arc<str> = Arc::from(
        std::str::from_utf8(body).map_err(|_| WebhookError::Malformed("not JSON (syntax error)".into()))?,
    );
    let parsed = read_body(&text)
        .map_err(|e| WebhookError::Malformed(format!("not JSON ({})", json_error_kind(&e))))?;
    match parsed {
        Body::Batch(items) => {
            let events = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Some(event) => check_event(i, event, expected_org),
                    None => Err(WebhookError::Malformed(format!("event {i}: not an object"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Delivery::Events(events))
        }
        // Desk always sends an array; a lone event object is accepted as a batch of one.
        Body::Object(event) if event.event_type.is_some() => {
            Ok(Delivery::Events(vec![check_event(0, event, expected_org)?]))
        }
        Body::Object(object) => match object.text {
            Some(t) if t.kind() == Kind::String => {
                let hints = parse_notification(&t.as_str().unwrap_or_default());
                if hints.is_empty() { Err(WebhookError::NoHint) } else { Ok(Delivery::Notification(hints)) }
            }
            Some(_) => Err(WebhookError::Malformed("`text` is not a string".into())),
            None => Err(WebhookError::Malformed("an object without `eventType` or `text`".into())),
        },
        Body::Neither => {
            Err(WebhookError::Malformed("neither an array of events nor a notification object".into()))
        }
    }
}

/// What kind of JSON error, without serde's excerpt of the offending input.
fn json_error_kind(e: &RecordError) -> &'static str {
    match e {
        RecordError::Json(kind) => kind,
        RecordError::NotAnObject => "data error",
    }
}

/// A body as read, before its events are checked.
enum Body<'t> {
    /// An array: each element an event object (`None` for an element that is not an object).
    Batch(Vec<Option<RawEvent<'t>>>),
    /// One object: a lone event or a workflow notification.
    Object(RawEvent<'t>),
    Neither,
}

/// The fields of one event (or notification) object the bridge reads; the rest is skipped.
#[derive(Default)]
struct RawEvent<'t> {
    event_type: Option<Json<'t>>,
    org_id: Option<Json<'t>>,
    event_time: Option<Json<'t>>,
    payload: Option<Placed>,
    prev_state: Option<Placed>,
    text: Option<Json<'t>>,
}

/// Reads a body: an array of events, or one object.
fn read_body(text: &Arc<str>) -> Result<Body<'_>, RecordError> {
    let mut scan = Scanner::new(text, 0..text.len());
    let body = if scan.open_array()? {
        let mut items = Vec::new();
        let mut first = true;
        while scan.next_item(&mut first)? {
            items.push(read_event(text, &mut scan)?);
        }
        Body::Batch(items)
    } else {
        read_event(text, &mut scan)?.map_or(Body::Neither, Body::Object)
    };
    scan.finish()?;
    Ok(body)
}

/// The event object next in `scan` (`None`, the value skipped, for any other value). A repeated key counts
/// as its last value.
fn read_event<'t>(text: &'t Arc<str>, scan: &mut Scanner<'t>) -> Result<Option<RawEvent<'t>>, RecordError> {
    if !scan.open_object()? {
        scan.skip_value()?;
        return Ok(None);
    }
    let mut event = RawEvent::default();
    let mut first = true;
    while let Some(key) = scan.next_key(&mut first)? {
        let slot = match &*scan.key_text(&key)? {
            "payload" => {
                event.payload = Some(Record::scan_value(text, scan)?);
                continue;
            }
            "prevState" => {
                event.prev_state = Some(Record::scan_value(text, scan)?);
                continue;
            }
            "eventType" => &mut event.event_type,
            "orgId" => &mut event.org_id,
            "eventTime" => &mut event.event_time,
            "text" => &mut event.text,
            _ => {
                scan.skip_value()?;
                continue;
            }
        };
        let value = scan.skip_value()?;
        *slot = Some(Json::new(scan.slice(value)));
    }
    Ok(Some(event))
}

fn check_event(index: usize, event: RawEvent<'_>, expected_org: &str) -> Result<DeskEvent, WebhookError> {
    let malformed = |what: &str| WebhookError::Malformed(format!("event {index}: {what}"));
    let event_type = match event.event_type.filter(|v| v.kind() == Kind::String).and_then(Json::as_str) {
        Some(s) if !s.is_empty() && s.len() <= 100 => s.into_owned(),
        _ => return Err(malformed("`eventType` missing or not a string")),
    };
    let org_id = match event.org_id {
        Some(v) if v.kind() == Kind::String => v.as_str().unwrap_or_default().into_owned(),
        Some(v) if v.kind() == Kind::Number => v.as_number().map(|n| n.to_string()).unwrap_or_default(),
        _ => return Err(malformed("`orgId` missing")),
    };
    if org_id.trim() != expected_org {
        return Err(WebhookError::OrgMismatch { expected: expected_org.to_owned(), got: short(&org_id) });
    }
    let event_time_ms = event.event_time.and_then(epoch_ms);
    let payload = match event.payload {
        Some(Placed::Object(p)) => p,
        None | Some(Placed::Null) => Record::default(),
        Some(Placed::Other) => return Err(malformed("`payload` is not an object")),
    };
    let prev_state = match event.prev_state {
        Some(Placed::Object(p)) => Some(p),
        None | Some(Placed::Null) => None,
        Some(Placed::Other) => return Err(malformed("`prevState` is not an object")),
    };
    // An event we map must name its record; one that does not is refused rather than half-written.
    if module_for_event(&event_type).is_some() && record_id(&payload).is_none() {
        return Err(malformed("`payload.id` missing or not an id"));
    }
    Ok(DeskEvent { event_type, org_id, event_time_ms, payload, prev_state })
}

/// A bounded, printable excerpt of a sender-controlled string for error messages.
fn short(s: &str) -> String {
    s.chars().take(32).filter(|c| !c.is_control()).collect()
}

/// `eventTime`: epoch ms as a string or a number; an ISO timestamp is read too.
fn epoch_ms(v: Json<'_>) -> Option<i64> {
    match v.kind() {
        Kind::Number => {
            let n = v.as_number()?;
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        }
        Kind::String => {
            let s = v.as_str()?;
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| parse_desk_time(s))
        }
        _ => None,
    }
    .filter(|ms| *ms > 0)
}

/// `payload.id` as a string (Desk sends strings; numbers are accepted).
fn record_id(payload: &Record) -> Option<std::sync::Arc<str>> {
    let v = payload.get("id")?;
    let text = match v.kind() {
        Kind::String => v.as_str()?,
        Kind::Number => {
            std::borrow::Cow::Owned(v.as_number().filter(|n| n.is_u64() || n.is_i64())?.to_string())
        }
        _ => return None,
    };
    let id = text.trim();
    (!id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control)).then(|| id.into())
}

/// The metric label of an event type: itself when it is one of [`EVENT_TYPES`], else `other`.
pub fn event_type_label(event_type: &str) -> &'static str {
    EVENT_TYPES.iter().find(|t| **t == event_type).copied().unwrap_or("other")
}

/// Maps a delivery's events to changes. `received_ms` is the fallback `source_ts_ms` for an event that
/// carries neither `eventTime` nor a record timestamp (a `*_Delete` with only `{id}` and no time).
pub fn map_events(events: Vec<DeskEvent>, received_ms: i64) -> Mapped {
    let mut out = Mapped::default();
    for ev in events {
        match map_event(ev, received_ms) {
            Ok(change) => out.changes.push(change),
            Err(skipped) => out.skipped.push(skipped),
        }
    }
    out
}

/// One event as a change (its records moved into it, not copied); skipped for event types the bridge does
/// not load.
pub fn map_event(ev: DeskEvent, received_ms: i64) -> Result<ChangeEvent, Skipped> {
    // An unknown type is skipped before its payload is read for an id.
    let Some((module, id)) =
        module_for_event(&ev.event_type).and_then(|m| Some((m, record_id(&ev.payload)?)))
    else {
        return Err(Skipped { event_type: ev.event_type });
    };
    let action = ev.event_type.rsplit('_').next().unwrap_or_default();
    let payload = ev.payload;
    let overlaid = ev.prev_state.as_ref().map(|prev| payload.overlaid(prev));
    let (op, before, after) = match action {
        "Add" => (Op::Create, None, Some(payload)),
        "Delete" => (Op::Delete, Some(payload), None),
        // The "IsDel" form: an update that moves the record to the trash or flags it deleted.
        _ if crate::change::is_deleted(&payload) => (Op::Delete, Some(overlaid.unwrap_or(payload)), None),
        _ => (Op::Update, overlaid, Some(payload)),
    };
    let source_ts_ms = ev
        .event_time_ms
        .or_else(|| after.as_ref().and_then(record_time_ms))
        .or_else(|| before.as_ref().and_then(record_time_ms))
        .unwrap_or(received_ms);
    Ok(ChangeEvent {
        module,
        id,
        op,
        before,
        after,
        source_ts_ms,
        snapshot: None,
        event_type: Some(ev.event_type),
        position: None,
    })
}

/// The hints in a workflow notification's text (see the module docs for the template).
pub fn parse_notification(text: &str) -> Vec<Hint> {
    let mut seen = BTreeMap::new();
    let mut hints = Vec::new();
    // Texts are user-written and unbounded; only the first lines are worth reading.
    for line in text.lines().take(100) {
        let Some(id) = find_id(line) else { continue };
        let Some(module) = explicit_module(line).or_else(|| leading_module(line)) else { continue };
        let hint = Hint { module, id };
        if seen.insert(hint.clone(), ()).is_none() {
            hints.push(hint);
        }
    }
    hints
}

/// `module=<name>` anywhere in the line; only modules whose records Desk serves at `/{module}/{id}`
/// (threads and comments live under their ticket, field metadata is no record).
fn explicit_module(line: &str) -> Option<Module> {
    line.split_whitespace()
        .find_map(|tok| tok.strip_prefix("module="))
        .and_then(|name| name.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').parse().ok())
        .filter(|m| !matches!(m, Module::TicketThreads | Module::TicketComments | Module::OrganizationFields))
}

/// The first word as a record kind (`Ticket #12 updated ...`).
fn leading_module(line: &str) -> Option<Module> {
    let word: String = line.trim_start().chars().take_while(char::is_ascii_alphabetic).collect();
    match word.to_ascii_lowercase().as_str() {
        "ticket" | "tickets" => Some(Module::Tickets),
        "contact" | "contacts" => Some(Module::Contacts),
        "account" | "accounts" => Some(Module::Accounts),
        "task" | "tasks" => Some(Module::Tasks),
        "call" | "calls" => Some(Module::Calls),
        "event" | "events" => Some(Module::Events),
        "article" | "articles" => Some(Module::Articles),
        "agent" | "agents" => Some(Module::Agents),
        "department" | "departments" => Some(Module::Departments),
        "product" | "products" => Some(Module::Products),
        "contract" | "contracts" => Some(Module::Contracts),
        _ => None,
    }
}

/// The record id after a standalone `id` word: `id=123`, `id: 123`, `id 123`.
fn find_id(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let lower = line.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower.get(from..).and_then(|rest| rest.find("id")) {
        let start = from + pos;
        from = start + 2;
        let word_start = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if !word_start {
            continue;
        }
        let rest = &line[start + 2..];
        let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start_matches([' ', '\t', ':']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest[digits.len()..].chars().next();
        if !digits.is_empty()
            && digits.len() <= MAX_ID_LEN
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Some(digits);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::{Value, json};

    const ORG: &str = "60000000001";

    fn events(v: Value) -> Vec<DeskEvent> {
        match parse_delivery(v.to_string().as_bytes(), ORG).unwrap() {
            Delivery::Events(e) => e,
            other => panic!("not events: {other:?}"),
        }
    }

    fn one(v: Value) -> ChangeEvent {
        let evs = events(json!([v]));
        let m = map_events(evs, 7);
        assert!(m.skipped.is_empty(), "{m:?}");
        m.changes.into_iter().next().unwrap()
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        let inputs: &[&[u8]] = &[
            b"",
            b"   ",
            b"not json",
            b"{",
            b"[",
            b"[1,2]",
            b"[null]",
            b"\"text\"",
            b"42",
            b"null",
            b"[{\"eventType\": 5}]",
            b"[{\"eventType\": \"Ticket_Add\"}]",
            b"[{\"eventType\": \"Ticket_Add\", \"orgId\": \"60000000001\", \"payload\": []}]",
            b"[{\"eventType\": \"Ticket_Add\", \"orgId\": \"60000000001\", \"payload\": {\"id\": {}}}]",
            b"[{\"eventType\": \"Ticket_Add\", \"orgId\": \"60000000001\", \"payload\": {\"id\": \"\"}}]",
            b"[{\"eventType\": \"Ticket_Update\", \"orgId\": \"60000000001\", \"payload\": {\"id\": \"1\"}, \"prevState\": 3}]",
            b"{\"text\": 5}",
            b"\xff\xfe",
        ];
        for body in inputs {
            let err = parse_delivery(body, ORG).unwrap_err();
            assert!(matches!(err, WebhookError::Malformed(_)), "{body:?}: {err:?}");
            assert_eq!(err.status(), 400);
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_delivery(deep.as_bytes(), ORG).is_err());
    }

    #[test]
    fn random_bytes_and_texts_never_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet: Vec<char> = "id=: 0123456789módule=ticketsİ\n\u{0}[]{}\"#,".chars().collect();
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_delivery(&bytes, ORG);
            let text: String =
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let _ = parse_notification(&text);
            let _ = parse_delivery(json!({"text": text}).to_string().as_bytes(), ORG);
        }
    }

    #[test]
    fn empty_array_is_the_validation_post() {
        assert_eq!(parse_delivery(b"[]", ORG).unwrap(), Delivery::Events(vec![]));
        assert_eq!(map_events(Vec::new(), 0), Mapped::default());
    }

    #[test]
    fn object_without_text_is_malformed_and_text_without_hint_is_no_hint() {
        let e = parse_delivery(br#"{"message": "hi"}"#, ORG).unwrap_err();
        assert!(matches!(e, WebhookError::Malformed(_)));
        let e = parse_delivery(br#"{"text": "Something happened"}"#, ORG).unwrap_err();
        assert_eq!(e, WebhookError::NoHint);
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn other_org_is_refused_for_any_element() {
        let body = json!([
            {"eventType": "Ticket_Add", "orgId": ORG, "eventTime": "1", "payload": {"id": "1"}},
            {"eventType": "Ticket_Add", "orgId": "999", "eventTime": "1", "payload": {"id": "2"}},
        ]);
        let e = parse_delivery(body.to_string().as_bytes(), ORG).unwrap_err();
        assert_eq!(e, WebhookError::OrgMismatch { expected: ORG.into(), got: "999".into() });
        assert_eq!((e.status(), e.reason()), (401, "org_mismatch"));
        // orgId as a number is the same org.
        let ok = json!([{"eventType": "Ticket_Add", "orgId": 60000000001u64, "payload": {"id": "1"}}]);
        assert_eq!(events(ok).len(), 1);
    }

    #[test]
    fn every_element_of_a_batch_is_mapped() {
        let evs = events(json!([
            {"eventType": "Ticket_Add", "orgId": ORG, "eventTime": "1000", "payload": {"id": "1", "subject": "a"}},
            {"eventType": "Contact_Update", "orgId": ORG, "eventTime": "2000", "payload": {"id": "2"}},
            {"eventType": "IM_Message_Add", "orgId": ORG, "eventTime": "3000", "payload": {"x": 1}},
            {"eventType": "Task_Delete", "orgId": ORG, "eventTime": "4000", "payload": {"id": "3"}},
        ]));
        let m = map_events(evs, 0);
        let got: Vec<(Module, &str, &str)> =
            m.changes.iter().map(|c| (c.module, &*c.id, c.op.code())).collect();
        assert_eq!(
            got,
            vec![(Module::Tickets, "1", "c"), (Module::Contacts, "2", "u"), (Module::Tasks, "3", "d")]
        );
        assert_eq!(m.skipped, vec![Skipped { event_type: "IM_Message_Add".into() }]);
        assert_eq!(event_type_label("IM_Message_Add"), "other");
        assert_eq!(event_type_label("Ticket_Add"), "Ticket_Add");
    }

    #[test]
    fn numbers_as_strings_and_strings_as_numbers() {
        let c = one(json!({"eventType": "Ticket_Add", "orgId": ORG, "eventTime": 1618493667780u64,
                           "payload": {"id": 1892000000042001u64}}));
        assert_eq!(&*c.id, "1892000000042001");
        assert_eq!(c.source_ts_ms, 1618493667780);
        let c = one(json!({"eventType": "Ticket_Add", "orgId": ORG, "eventTime": " 1618493667780 ",
                           "payload": {"id": "1892000000042001"}}));
        assert_eq!(c.source_ts_ms, 1618493667780);
        // Unreadable eventTime: the record's modifiedTime, else the receive time.
        let c = one(json!({"eventType": "Ticket_Add", "orgId": ORG, "eventTime": "soon",
                           "payload": {"id": "1", "modifiedTime": "1970-01-01T00:00:05.000Z"}}));
        assert_eq!(c.source_ts_ms, 5000);
        let c = one(json!({"eventType": "Ticket_Delete", "orgId": ORG, "payload": {"id": "1"}}));
        assert_eq!(c.source_ts_ms, 7);
    }

    #[test]
    fn update_before_is_after_overlaid_with_nested_prev_state() {
        let c = one(json!({
            "eventType": "Ticket_Update", "orgId": ORG, "eventTime": "10",
            "payload": {"id": "1", "status": "Closed", "priority": "High",
                        "cf": {"cf_a": "new", "cf_b": "same"}, "assignee": null},
            "prevState": {"status": "Open", "cf": {"cf_a": "old"}, "assignee": {"id": "9"}}
        }));
        assert_eq!(c.op, Op::Update);
        assert_eq!(c.event_type.as_deref(), Some("Ticket_Update"));
        let before = Value::Object(c.before.unwrap().to_map());
        assert_eq!(
            before,
            json!({"id": "1", "status": "Open", "priority": "High",
                   "cf": {"cf_a": "old", "cf_b": "same"}, "assignee": {"id": "9"}})
        );
        assert_eq!(c.after.unwrap().to_map()["status"], "Closed");
        // No prevState: the before-image is unknown.
        let c = one(json!({"eventType": "Agent_Update", "orgId": ORG, "payload": {"id": "1"}}));
        assert_eq!((c.op, c.before, c.module), (Op::Update, None, Module::Agents));
    }

    #[test]
    fn flat_prev_state_overlays_in_place() {
        let c = one(json!({
            "eventType": "Ticket_Update", "orgId": ORG, "eventTime": "10",
            "payload": {"id": "1", "status": "Closed", "modifiedTime": "2026-01-02T00:00:00.000Z", "x": 1},
            "prevState": {"status": "Open", "modifiedTime": "2026-01-01T00:00:00.000Z", "gone": true}
        }));
        let before = c.before.unwrap();
        assert_eq!(
            Value::Object(before.to_map()),
            json!({"id": "1", "status": "Open", "modifiedTime": "2026-01-01T00:00:00.000Z", "x": 1, "gone": true})
        );
        // The fields the pipeline reads by name are found in the new field list.
        assert_eq!(crate::change::record_time_ms(&before), Some(1_767_225_600_000));
        assert_eq!(before.id().as_deref(), Some("1"));
    }

    #[test]
    fn deletes_both_ways() {
        let c = one(json!({"eventType": "Contact_Delete", "orgId": ORG, "eventTime": "5",
                           "payload": {"id": "42"}}));
        assert_eq!((c.op, c.after.clone()), (Op::Delete, None));
        assert_eq!(Value::Object(c.before.unwrap().to_map()), json!({"id": "42"}));
        // The IsDel update: isTrashed (or isDeleted) flips to true.
        let c = one(json!({"eventType": "Ticket_Update", "orgId": ORG, "eventTime": "6",
                           "payload": {"id": "42", "isTrashed": true, "subject": "s"},
                           "prevState": {"isTrashed": false}}));
        assert_eq!(c.op, Op::Delete);
        assert!(c.after.is_none());
        assert_eq!(c.before.unwrap().to_map()["isTrashed"], false);
        let c = one(
            json!({"eventType": "Task_Update", "orgId": ORG, "payload": {"id": "1", "isDeleted": "true"}}),
        );
        assert_eq!(c.op, Op::Delete);
        let c = one(
            json!({"eventType": "Task_Update", "orgId": ORG, "payload": {"id": "1", "isDeleted": false}}),
        );
        assert_eq!(c.op, Op::Update);
    }

    #[test]
    fn child_modules_and_unknown_types() {
        let c = one(
            json!({"eventType": "Ticket_Thread_Add", "orgId": ORG, "payload": {"id": "5", "ticketId": "1"}}),
        );
        assert_eq!((c.module, c.op), (Module::TicketThreads, Op::Create));
        let c = one(json!({"eventType": "Ticket_Comment_Update", "orgId": ORG, "payload": {"id": "6"}}));
        assert_eq!((c.module, c.op), (Module::TicketComments, Op::Update));
        // Unknown types need no id and are skipped, not refused.
        let evs = events(json!([{"eventType": "Agent_Presence_Update", "orgId": ORG}]));
        assert_eq!(map_events(evs, 0).skipped.len(), 1);
    }

    #[test]
    fn notifications_parse_into_hints() {
        let d = parse_delivery(
            br#"{"text": "zoho-desk-cdc module=contacts id=1892000000000123 (Jane changed)"}"#,
            ORG,
        )
        .unwrap();
        assert_eq!(
            d,
            Delivery::Notification(vec![Hint { module: Module::Contacts, id: "1892000000000123".into() }])
        );
        let sim = "Ticket #101 updated: Printer id card broken (status Open, id 1892000000042001)";
        assert_eq!(
            parse_notification(sim),
            vec![Hint { module: Module::Tickets, id: "1892000000042001".into() }]
        );
        // Several lines, duplicates dropped; a line without a module or an id is ignored.
        let text = "module=tasks id: 7\nmodule=tasks id 7\nmodule=calls idx=8\nhello id=9\nmodule=nope id=1";
        assert_eq!(parse_notification(text), vec![Hint { module: Module::Tasks, id: "7".into() }]);
        assert!(parse_notification("module=tickets id=12a").is_empty());
        assert!(parse_notification("module=ticket_threads id=12").is_empty());
        assert!(parse_notification("module=tickets id=../etc").is_empty());
        assert!(parse_notification("").is_empty());
        // A lone event object is a one-event delivery.
        let d = parse_delivery(
            json!({"eventType": "Ticket_Add", "orgId": ORG, "payload": {"id": "1"}}).to_string().as_bytes(),
            ORG,
        )
        .unwrap();
        assert!(matches!(d, Delivery::Events(v) if v.len() == 1));
    }
}
