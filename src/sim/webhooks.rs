//! Webhook subscriptions (`/api/v1/webhooks`), the URL validation handshake, and delivery: batched JSON
//! arrays signed with `X-ZDesk-JWT`, 410 unsubscribes, a timeout, and drop-or-retry on failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::FailurePolicy;
use super::errors::DeskError;
use super::faults::FaultKind;
use super::module::Module;
use super::mutate::Event;
use super::render::iso;
use super::{Sim, lock, now_ms, read};

/// Event types a subscription may name (OAS Webhook.json `subscriptions` keys).
pub const KNOWN_EVENTS: &[&str] = &[
    "Ticket_Add",
    "Ticket_Update",
    "Ticket_Delete",
    "Ticket_Thread_Add",
    "Ticket_Comment_Add",
    "Ticket_Comment_Update",
    "Ticket_Approval_Add",
    "Ticket_Approval_Update",
    "Ticket_Attachment_Add",
    "Ticket_Attachment_Update",
    "Ticket_Attachment_Delete",
    "Ticket_Attachment_Trashed",
    "Ticket_Attachment_Restored",
    "Ticket_Comment_Attachment_Add",
    "Ticket_Comment_Attachment_Delete",
    "Contact_Add",
    "Contact_Update",
    "Contact_Delete",
    "Account_Add",
    "Account_Update",
    "Account_Delete",
    "Agent_Add",
    "Agent_Update",
    "Agent_Delete",
    "Agent_Presence_Update",
    "Agent_Channel_Preference_Update",
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
    "TimeEntry_Add",
    "TimeEntry_Update",
    "TimeEntry_Delete",
    "Article_Add",
    "Article_Update",
    "Article_Delete",
    "Article_Translation_Add",
    "Article_Translation_Update",
    "Article_Translation_Delete",
    "Article_Feedback_Add",
    "KBRootCategory_Add",
    "KBRootCategory_Update",
    "KBRootCategory_Delete",
    "KBSection_Add",
    "KBSection_Update",
    "KBSection_Delete",
    "IM_Message_Add",
    "IM_Session_Status",
    "IM_Message_Status",
];

#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub body: Map<String, Value>,
    pub created_ms: i64,
    pub modified_ms: i64,
    tx: mpsc::UnboundedSender<Value>,
    cancel: CancellationToken,
}

impl Subscription {
    fn url(&self) -> String {
        self.body.get("url").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    fn enabled(&self) -> bool {
        self.body.get("isEnabled").and_then(Value::as_bool).unwrap_or(true)
    }

    pub fn to_json(&self, creator: &str) -> Value {
        let mut o = self.body.clone();
        o.insert("id".into(), json!(self.id.to_string()));
        o.insert("createdBy".into(), json!(creator));
        o.insert("createdTime".into(), json!(iso(self.created_ms)));
        o.insert("modifiedTime".into(), json!(iso(self.modified_ms)));
        o.insert("type".into(), json!("CUSTOMER_WEBHOOK"));
        Value::Object(o)
    }

    /// Whether the event passes this subscription's filters; returns the event as delivered.
    fn render(&self, ev: &Event, org_id: u64) -> Option<Value> {
        let subs = self.body.get("subscriptions")?.as_object()?;
        let filter = subs.get(&ev.event_type)?;
        let f = filter.as_object();
        if ev.module.has_department()
            && let Some(f) = f
        {
            let mut wanted: Vec<String> = f
                .get("departmentIds")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if let Some(d) = f.get("departmentId").and_then(Value::as_str) {
                wanted.push(d.to_owned());
            }
            let dep = ev.department.map(|d| d.to_string()).unwrap_or_default();
            if !wanted.is_empty() && !wanted.contains(&dep) {
                return None;
            }
        }
        if let Some(fields) = f.and_then(|f| f.get("fields")).and_then(Value::as_array)
            && !fields.is_empty()
            && !fields.iter().filter_map(Value::as_str).any(|name| ev.changed.iter().any(|c| c == name))
        {
            return None;
        }
        if let Some(dir) = f.and_then(|f| f.get("direction")).and_then(Value::as_str)
            && ev.payload.get("direction").and_then(Value::as_str).is_some_and(|d| d != dir)
        {
            return None;
        }
        let include_prev =
            f.and_then(|f| f.get("includePrevState")).and_then(Value::as_bool).unwrap_or(false);
        let mut out = json!({
            "eventType": ev.event_type,
            "orgId": org_id.to_string(),
            "eventTime": ev.time_ms.to_string(),
            "payload": ev.payload,
        });
        if include_prev && let (Some(prev), Some(o)) = (&ev.prev_state, out.as_object_mut()) {
            o.insert("prevState".into(), prev.clone());
        }
        Some(out)
    }
}

#[derive(Debug, Default)]
pub struct Webhooks {
    pub subs: BTreeMap<u64, Subscription>,
    next_seq: u64,
}

/// Queues an event for every matching subscription (and the Cliq notifier).
pub fn dispatch(sim: &Arc<Sim>, ev: Event) {
    let hooks = lock(&sim.webhooks);
    for sub in hooks.subs.values().filter(|s| s.enabled()) {
        if let Some(body) = sub.render(&ev, sim.cfg.org_id) {
            sim.stats.webhook_events.fetch_add(1, Ordering::Relaxed);
            let _ = sub.tx.send(body);
        }
    }
    drop(hooks);
    if let Some(tx) = &sim.cliq_tx
        && ev.module == Module::Tickets
    {
        let _ = tx.send(cliq_message(&sim.cfg.cliq_template, &ev));
    }
}

fn cliq_message(template: &str, ev: &Event) -> Value {
    let field = |k: &str| {
        ev.payload
            .get(k)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let event = match ev.event_type.rsplit('_').next() {
        Some("Add") => "created",
        Some("Delete") => "deleted",
        _ => "updated",
    };
    let text = template
        .replace("${ticketNumber}", &field("ticketNumber"))
        .replace("${subject}", &field("subject"))
        .replace("${status}", &field("status"))
        .replace("${id}", &field("id"))
        .replace("${event}", event);
    json!({"text": text})
}

/// Posts workflow "Send Cliq Notification" messages: a JSON object, unsigned, one per change.
pub async fn cliq_worker(sim: Arc<Sim>, mut rx: mpsc::UnboundedReceiver<Value>) {
    let Some(url) = sim.cfg.cliq_url.clone() else {
        return;
    };
    loop {
        let msg = tokio::select! {
            () = sim.shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let ok = sim.http.post(&url).json(&msg).send().await.is_ok_and(|r| r.status().is_success());
        let counter = if ok { &sim.stats.cliq_ok } else { &sim.stats.cliq_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Batches a subscription's events and delivers them in order.
async fn worker(sim: Arc<Sim>, id: u64, mut rx: mpsc::UnboundedReceiver<Value>, cancel: CancellationToken) {
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => return,
            () = sim.shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + sim.cfg.webhook_batch_window;
        while batch.len() < sim.cfg.webhook_max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => batch.push(m),
                Ok(None) | Err(_) => break,
            }
        }
        if !deliver(&sim, id, batch).await {
            return;
        }
    }
}

enum Outcome {
    Ok,
    Gone,
    Failed,
}

/// One POST of a batch. Returns false once the subscription is gone.
async fn deliver(sim: &Arc<Sim>, id: u64, batch: Vec<Value>) -> bool {
    if lock(&sim.faults).roll(FaultKind::DropWebhooks).is_some() {
        sim.stats.webhook_dropped.fetch_add(1, Ordering::Relaxed);
        sim.stats.webhook_failed.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    let body = Value::Array(batch);
    let attempts = match sim.cfg.webhook_failure {
        FailurePolicy::Drop => 1,
        FailurePolicy::Retry(n) => n + 1,
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(sim.cfg.webhook_retry_delay).await;
        }
        let url = match lock(&sim.webhooks).subs.get(&id) {
            Some(s) => s.url(),
            None => return false,
        };
        match post(sim, id, &url, &body).await {
            Outcome::Ok => {
                sim.stats.webhook_ok.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Outcome::Gone => {
                tracing::info!(webhook = id, "subscriber answered 410; unsubscribing");
                sim.stats.webhook_failed.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = lock(&sim.webhooks).subs.remove(&id) {
                    s.cancel.cancel();
                }
                return false;
            }
            Outcome::Failed => {}
        }
    }
    sim.stats.webhook_failed.fetch_add(1, Ordering::Relaxed);
    true
}

async fn post(sim: &Sim, id: u64, url: &str, body: &Value) -> Outcome {
    let token = match sim.signer.token(sim.cfg.org_id, &id.to_string(), now_ms() / 1000) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot sign delivery");
            return Outcome::Failed;
        }
    };
    let resp = sim
        .http
        .post(url)
        .header("X-ZDesk-JWT", token)
        .header("User-Agent", "ZohoDesk-Webhook")
        .json(body)
        .timeout(sim.cfg.webhook_timeout)
        .send()
        .await;
    match resp {
        Ok(r) if r.status() == reqwest::StatusCode::GONE => Outcome::Gone,
        Ok(r) if r.status().is_success() => Outcome::Ok,
        Ok(r) => {
            tracing::debug!(webhook = id, status = r.status().as_u16(), "delivery refused");
            Outcome::Failed
        }
        Err(e) => {
            tracing::debug!(webhook = id, error = %e, "delivery failed");
            Outcome::Failed
        }
    }
}

/// Desk's check of a new URL: a GET that must answer 200, else a POST that must.
async fn handshake(sim: &Sim, url: &str) -> bool {
    let get = sim.http.get(url).timeout(sim.cfg.webhook_timeout).send().await;
    if get.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
        return true;
    }
    let post = sim.http.post(url).json(&json!([])).timeout(sim.cfg.webhook_timeout).send().await;
    post.is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
}

fn validate(body: &Map<String, Value>, partial: bool) -> Result<(), DeskError> {
    let mut errs: Vec<(String, &'static str, &'static str)> = Vec::new();
    match body.get("url") {
        None if !partial => errs.push(("/url".into(), "missing", "url is required")),
        None => {}
        Some(Value::String(u))
            if (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 500 => {}
        Some(_) => {
            errs.push(("/url".into(), "invalid", "url must be an http(s) URL of at most 500 characters"))
        }
    }
    match body.get("subscriptions") {
        None if !partial => errs.push(("/subscriptions".into(), "missing", "subscriptions is required")),
        None => {}
        Some(Value::Object(m)) if !m.is_empty() => {
            for (k, v) in m {
                if !KNOWN_EVENTS.contains(&k.as_str()) {
                    errs.push((format!("/subscriptions/{k}"), "invalid", "unknown event type"));
                } else if !(v.is_null() || v.is_object() || v.is_string()) {
                    errs.push((format!("/subscriptions/{k}"), "invalid", "filter must be an object or null"));
                } else if let Some(fields) = v.get("fields").and_then(Value::as_array)
                    && fields.len() > 5
                {
                    errs.push((format!("/subscriptions/{k}/fields"), "invalid", "at most 5 fields"));
                }
            }
        }
        Some(_) => {
            errs.push(("/subscriptions".into(), "invalid", "subscriptions must be a non-empty object"))
        }
    }
    let too_long =
        |k: &str, max: usize| body.get(k).and_then(Value::as_str).is_some_and(|s| s.chars().count() > max);
    if too_long("name", 100) {
        errs.push(("/name".into(), "invalid", "name is longer than 100 characters"));
    }
    if too_long("description", 3000) {
        errs.push(("/description".into(), "invalid", "description is longer than 3000 characters"));
    }
    if let Some(v) = body.get("isEnabled")
        && !v.is_boolean()
    {
        errs.push(("/isEnabled".into(), "invalid", "isEnabled must be a boolean"));
    }
    if let Some(v) = body.get("includeEventsFrom")
        && !v.is_null()
        && !v.as_array().is_some_and(|a| a.iter().all(|x| x == "AUTOMATION"))
    {
        errs.push(("/includeEventsFrom".into(), "invalid", "only AUTOMATION is allowed"));
    }
    for k in body.keys() {
        if !matches!(
            k.as_str(),
            "url"
                | "name"
                | "description"
                | "isEnabled"
                | "subscriptions"
                | "includeEventsFrom"
                | "ignoreSourceId"
        ) {
            errs.push((format!("/{k}"), "invalid", "unknown field"));
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&str, &str, &str)> = errs.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
    Err(DeskError::invalid_data(&refs))
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, DeskError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DeskError::empty_payload());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(DeskError::invalid_data(&[("/", "invalid", "the body is not a JSON object")])),
    }
}

fn creator(sim: &Sim) -> String {
    let store = read(&sim.store);
    store.id(Module::Agents, 0).to_string()
}

pub fn list(sim: &Sim) -> Result<(StatusCode, Option<Value>), DeskError> {
    let who = creator(sim);
    let hooks = lock(&sim.webhooks);
    if hooks.subs.is_empty() {
        return Ok((StatusCode::NO_CONTENT, None));
    }
    let data: Vec<Value> = hooks.subs.values().map(|s| s.to_json(&who)).collect();
    Ok((StatusCode::OK, Some(json!({"data": data}))))
}

pub fn get(sim: &Sim, id: u64) -> Result<(StatusCode, Option<Value>), DeskError> {
    let who = creator(sim);
    let hooks = lock(&sim.webhooks);
    let s = hooks.subs.get(&id).ok_or_else(DeskError::not_found)?;
    Ok((StatusCode::OK, Some(s.to_json(&who))))
}

pub async fn create(sim: &Arc<Sim>, body: &[u8]) -> Result<(StatusCode, Option<Value>), DeskError> {
    let max = sim.cfg.edition.max_webhooks();
    if max == 0 {
        return Err(DeskError::license_limited());
    }
    let mut m = parse_body(body)?;
    validate(&m, false)?;
    if lock(&sim.webhooks).subs.len() >= max {
        return Err(DeskError::license_limited());
    }
    let url = m.get("url").and_then(Value::as_str).unwrap_or_default().to_owned();
    if !handshake(sim, &url).await {
        return Err(DeskError::invalid_data(&[(
            "/url",
            "invalid",
            "The URL did not answer the validation request with 200 OK.",
        )]));
    }
    m.entry("isEnabled").or_insert(json!(true));
    m.entry("name").or_insert(Value::Null);
    m.entry("description").or_insert(Value::Null);
    m.entry("includeEventsFrom").or_insert(json!([]));
    m.entry("ignoreSourceId").or_insert(Value::Null);
    let now = now_ms();
    let (tx, rx) = mpsc::unbounded_channel();
    let cancel = sim.shutdown.child_token();
    let id = {
        let mut hooks = lock(&sim.webhooks);
        if hooks.subs.len() >= max {
            return Err(DeskError::license_limited());
        }
        hooks.next_seq += 1;
        let prefix = read(&sim.store).id_prefix;
        let id = prefix * 1_000_000_000_000 + 98 * 10_000_000_000 + hooks.next_seq * 1000 + 1;
        hooks.subs.insert(
            id,
            Subscription { id, body: m, created_ms: now, modified_ms: now, tx, cancel: cancel.clone() },
        );
        id
    };
    tokio::spawn(worker(sim.clone(), id, rx, cancel));
    let status = StatusCode::from_u16(sim.cfg.webhook_create_status).unwrap_or(StatusCode::OK);
    let (_, body) = get(sim, id)?;
    Ok((status, body))
}

pub async fn update(sim: &Arc<Sim>, id: u64, body: &[u8]) -> Result<(StatusCode, Option<Value>), DeskError> {
    let patch = parse_body(body)?;
    validate(&patch, true)?;
    let old_url =
        lock(&sim.webhooks).subs.get(&id).map(Subscription::url).ok_or_else(DeskError::not_found)?;
    if let Some(new_url) = patch.get("url").and_then(Value::as_str)
        && new_url != old_url
        && !handshake(sim, new_url).await
    {
        return Err(DeskError::invalid_data(&[(
            "/url",
            "invalid",
            "The URL did not answer the validation request with 200 OK.",
        )]));
    }
    {
        let mut hooks = lock(&sim.webhooks);
        let s = hooks.subs.get_mut(&id).ok_or_else(DeskError::not_found)?;
        for (k, v) in patch {
            s.body.insert(k, v);
        }
        s.modified_ms = now_ms();
    }
    get(sim, id)
}

pub fn delete(sim: &Sim, id: u64) -> Result<(StatusCode, Option<Value>), DeskError> {
    let s = lock(&sim.webhooks).subs.remove(&id).ok_or_else(DeskError::not_found)?;
    s.cancel.cancel();
    let status = StatusCode::from_u16(sim.cfg.webhook_delete_status).unwrap_or(StatusCode::OK);
    Ok((status, None))
}
