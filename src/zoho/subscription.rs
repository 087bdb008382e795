//! The Desk webhook subscription of a source (`/api/v1/webhooks`): one per source, covering every event
//! type of CONTRACT §5, found again by its service-URL path (`/webhooks/zoho/<source>/`) or its name, so
//! registering twice never makes a second one.
//!
//! Desk validates a new or changed URL with a GET that must answer 200 before it accepts the call, so
//! registration only succeeds while the bridge's webhook server is reachable at the service URL.
//!
//! The service URL carries the webhook secret: it is held as a [`Secret`] and shown redacted.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::secret::Secret;
use crate::zoho::client::DeskClient;
use crate::zoho::error::ZohoError;
use crate::zoho::webhook::EVENT_TYPES;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Desk(ZohoError),

    #[error(
        "the Desk org of source `{source_name}` cannot have webhooks (LICENSE_ACCESS_LIMITED): webhooks need the Professional or Enterprise edition; without them the reconciler keeps the topics current (reconcile_interval_s)"
    )]
    NotLicensed { source_name: String },

    #[error(
        "Desk refused the webhook of source `{source_name}` (HTTP {status} {code}: {message}); the usual cause is that Desk could not validate the service URL {url}: the bridge must be running (its webhook server answers GET 200 there) and `http.public_url` must be reachable from Desk, and the URL must be at most 100 characters"
    )]
    Refused { source_name: String, status: u16, code: String, message: String, url: String },

    #[error(
        "the service URL {url} of source `{source_name}` does not have the path /webhooks/zoho/{source_name}/<webhook_secret>; build it with `auth::service_url`"
    )]
    ServiceUrl { source_name: String, url: String },

    #[error("Desk answered a webhook call of source `{source_name}` with something unexpected: {message}")]
    InvalidResponse { source_name: String, message: String },
}

/// One Desk webhook subscription.
#[derive(Clone, PartialEq)]
pub struct Subscription {
    /// Desk's webhook id: the JWT `aud` is `webhookId:<id>`.
    pub id: String,
    pub name: Option<String>,
    /// Holds the webhook secret when it is one of ours; see [`Subscription::redacted_url`].
    pub url: Secret,
    pub enabled: bool,
    /// The event types it subscribes to, sorted.
    pub event_types: Vec<String>,
    /// Whether it belongs to the source it was listed for (URL path or name).
    pub ours: bool,
    raw_subscriptions: Map<String, Value>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("enabled", &self.enabled)
            .field("event_types", &self.event_types.len())
            .field("ours", &self.ours)
            .finish()
    }
}

impl Subscription {
    /// The URL with the path segment after `/webhooks/zoho/<source>/` (the secret) replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact(self.url.expose())
    }
}

/// What [`register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    /// The URL changed (new `public_url` or webhook secret): Desk validated the new one.
    UrlUpdated,
    /// Same URL; the event list, `includePrevState` or `isEnabled` was brought up to date.
    Updated,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub subscription: Subscription,
    pub action: Action,
    /// Ids of extra subscriptions of this source that were deleted (left by earlier manual setups).
    pub removed_duplicates: Vec<String>,
}

/// The name `register` gives a source's subscription when the caller has none.
pub fn default_name(source: &str) -> String {
    format!("zoho-desk-cdc {source}")
}

/// `/webhooks/zoho/<source>/`: the path prefix of every service URL of `source`.
fn path_marker(source: &str) -> String {
    format!("/webhooks/zoho/{source}/")
}

/// Replaces the secret segment of a service URL with `***`; other URLs keep only scheme and host.
pub fn redact(url: &str) -> String {
    if let Some(pos) = url.find("/webhooks/zoho/") {
        let rest = &url[pos + "/webhooks/zoho/".len()..];
        if let Some(slash) = rest.find('/') {
            return format!("{}{}/***", &url[..pos + "/webhooks/zoho/".len()], &rest[..slash]);
        }
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            format!("{scheme}://{}/***", rest.split(['/', '?', '#']).next().unwrap_or_default())
        }
        None => "***".into(),
    }
}

/// The `subscriptions` object: every event type of CONTRACT §5, with `includePrevState` where Desk offers
/// it, and each filter object with exactly the keys Desk's schema requires (nulls meaning "no filter").
pub fn subscriptions_body() -> Value {
    let mut m = Map::new();
    for t in EVENT_TYPES {
        m.insert(t.to_owned(), filter_for(t));
    }
    Value::Object(m)
}

/// Per OAS Webhook.json: some filters are objects with fixed required keys (min = max properties), the
/// rest take `null`.
fn filter_for(event_type: &str) -> Value {
    match event_type {
        "Ticket_Add" | "Ticket_Comment_Add" | "Ticket_Comment_Update" => {
            json!({"departmentId": null, "departmentIds": null})
        }
        "Ticket_Update" => {
            json!({"departmentId": null, "departmentIds": null, "fields": null, "includePrevState": true})
        }
        "Ticket_Thread_Add" => json!({"departmentId": null, "departmentIds": null, "direction": null}),
        "Task_Add" | "Call_Add" | "Event_Add" => json!({"departmentIds": null}),
        "Task_Update" | "Call_Update" | "Event_Update" => {
            json!({"departmentIds": null, "includePrevState": true})
        }
        "Contact_Update" | "Account_Update" | "Agent_Update" | "Department_Update" | "Article_Update" => {
            json!({"includePrevState": true})
        }
        _ => Value::Null,
    }
}

/// Whether Desk's copy of the subscriptions covers what we need: every event type, and `includePrevState`
/// on, where we ask for it. Extra event types someone added are left alone.
fn covers(current: &Map<String, Value>) -> bool {
    EVENT_TYPES.iter().all(|t| {
        let Some(have) = current.get(*t) else { return false };
        match filter_for(t).get("includePrevState") {
            Some(_) => have.get("includePrevState").and_then(Value::as_bool) == Some(true),
            None => true,
        }
    })
}

fn from_json(v: &Value, source: &str, name: Option<&str>) -> Option<Subscription> {
    let o = v.as_object()?;
    let id = match o.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let url = o.get("url").and_then(Value::as_str).unwrap_or_default().to_owned();
    let sub_name = o.get("name").and_then(Value::as_str).map(str::to_owned);
    let raw_subscriptions = o.get("subscriptions").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut event_types: Vec<String> = raw_subscriptions.keys().cloned().collect();
    event_types.sort();
    let default = default_name(source);
    let wanted_name = name.unwrap_or(&default);
    let ours = url_path(&url).contains(&path_marker(source))
        || sub_name.as_deref().is_some_and(|n| n == wanted_name || n == default);
    Some(Subscription {
        id,
        name: sub_name,
        url: Secret::new(url),
        enabled: o.get("isEnabled").and_then(Value::as_bool).unwrap_or(true),
        event_types,
        ours,
        raw_subscriptions,
    })
}

/// The path of a URL (from the first `/` after the host).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}

fn desk_error(client: &DeskClient, url: &str, e: ZohoError) -> SubscriptionError {
    match e {
        ZohoError::Desk { status: 403, ref code, .. } if code == "LICENSE_ACCESS_LIMITED" => {
            SubscriptionError::NotLicensed { source_name: client.source_name().to_owned() }
        }
        ZohoError::Desk { status: 422, code, message, .. } if !url.is_empty() => SubscriptionError::Refused {
            source_name: client.source_name().to_owned(),
            status: 422,
            code,
            // Desk's messages do not quote the URL today; if one ever does, the secret must not travel on.
            message: message.replace(url, &redact(url)),
            url: redact(url),
        },
        other => SubscriptionError::Desk(other),
    }
}

/// Every webhook of the org, with `ours` set for those of this source.
pub async fn list(client: &DeskClient) -> Result<Vec<Subscription>, SubscriptionError> {
    list_named(client, None).await
}

async fn list_named(client: &DeskClient, name: Option<&str>) -> Result<Vec<Subscription>, SubscriptionError> {
    let body = client.get_json("webhooks", "webhooks", &[]).await.map_err(|e| desk_error(client, "", e))?;
    let Some(body) = body else { return Ok(Vec::new()) };
    let items =
        body.get("data").and_then(Value::as_array).ok_or_else(|| SubscriptionError::InvalidResponse {
            source_name: client.source_name().to_owned(),
            message: "the webhook list has no `data` array".into(),
        })?;
    Ok(items.iter().filter_map(|v| from_json(v, client.source_name(), name)).collect())
}

/// The subscription delivering to `service_url` itself (secret included), if Desk has one (an enabled one
/// first when there are several): its id lets the JWT audience be checked exactly even when the bridge does
/// not register it itself. A subscription of this source at another URL (an old secret) is not it: its
/// tokens do not prove a delivery to this URL.
pub async fn find_ours(
    client: &DeskClient,
    service_url: &Secret,
) -> Result<Option<Subscription>, SubscriptionError> {
    let mut ours = delivering_to(client, service_url).await?;
    ours.sort_by_key(|s| !s.enabled);
    Ok(ours.into_iter().next())
}

/// Every subscription whose URL is exactly `service_url`.
pub async fn delivering_to(
    client: &DeskClient,
    service_url: &Secret,
) -> Result<Vec<Subscription>, SubscriptionError> {
    Ok(list(client).await?.into_iter().filter(|s| same_url(s.url.expose(), service_url.expose())).collect())
}

/// Whether two service URLs are the same, ignoring a trailing `/` (to recognise our subscription;
/// `register` still rewrites such a URL, since the service URL route has no trailing `/`).
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Creates the source's subscription, or brings the existing one up to date (URL, event types,
/// `includePrevState`, enabled). Never creates a second one; extra ones of this source are deleted.
pub async fn register(
    client: &DeskClient,
    service_url: &Secret,
    name: &str,
) -> Result<Registration, SubscriptionError> {
    let source = client.source_name();
    let url = service_url.expose();
    if !url_path(url).starts_with(&path_marker(source))
        || url_path(url).len() <= path_marker(source).len()
        || !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(SubscriptionError::ServiceUrl { source_name: source.to_owned(), url: redact(url) });
    }
    let mut ours: Vec<Subscription> =
        list_named(client, Some(name)).await?.into_iter().filter(|s| s.ours).collect();
    // Prefer the one already pointing at this URL, so a duplicate never costs a validation round.
    ours.sort_by_key(|s| (s.url.expose() != url, !s.enabled));
    let mut ours = ours.into_iter();
    let Some(existing) = ours.next() else {
        let body = json!({
            "url": url,
            "name": name,
            "description": format!("zoho-desk-cdc: change events of source {source} into Kafka"),
            "isEnabled": true,
            "subscriptions": subscriptions_body(),
            // Changes made by workflow rules are changes too.
            "includeEventsFrom": ["AUTOMATION"],
            "ignoreSourceId": null,
        });
        let created = client
            .send_json(Method::POST, "webhooks", &[], Some(&body))
            .await
            .map_err(|e| desk_error(client, url, e))?;
        let sub = parse_one(client, created.as_ref(), name)?;
        tracing::info!(source, webhook_id = %sub.id, url = %sub.redacted_url(), "Created the Desk webhook subscription.");
        return Ok(Registration {
            subscription: sub,
            action: Action::Created,
            removed_duplicates: Vec::new(),
        });
    };
    let mut removed = Vec::new();
    for dup in ours {
        delete_one(client, &dup.id).await?;
        tracing::warn!(source, webhook_id = %dup.id, "Deleted a duplicate Desk webhook subscription of this source.");
        removed.push(dup.id);
    }
    let url_changed = existing.url.expose() != url;
    let mut patch = Map::new();
    if url_changed {
        patch.insert("url".into(), json!(url));
    }
    if !covers(&existing.raw_subscriptions) {
        // Keep event types someone added by hand; ours override theirs.
        let mut subs = existing.raw_subscriptions.clone();
        if let Value::Object(wanted) = subscriptions_body() {
            subs.extend(wanted);
        }
        patch.insert("subscriptions".into(), Value::Object(subs));
    }
    if !existing.enabled {
        patch.insert("isEnabled".into(), json!(true));
    }
    if existing.name.as_deref() != Some(name) {
        patch.insert("name".into(), json!(name));
    }
    if patch.is_empty() {
        return Ok(Registration {
            subscription: existing,
            action: Action::Unchanged,
            removed_duplicates: removed,
        });
    }
    let path = format!("webhooks/{}", existing.id);
    let updated = client
        .send_json(Method::PATCH, &path, &[], Some(&Value::Object(patch)))
        .await
        .map_err(|e| desk_error(client, url, e))?;
    let sub = parse_one(client, updated.as_ref(), name)?;
    let action = if url_changed { Action::UrlUpdated } else { Action::Updated };
    tracing::info!(source, webhook_id = %sub.id, url = %sub.redacted_url(), ?action, "Updated the Desk webhook subscription.");
    Ok(Registration { subscription: sub, action, removed_duplicates: removed })
}

fn parse_one(client: &DeskClient, v: Option<&Value>, name: &str) -> Result<Subscription, SubscriptionError> {
    v.and_then(|v| from_json(v, client.source_name(), Some(name))).ok_or_else(|| {
        SubscriptionError::InvalidResponse {
            source_name: client.source_name().to_owned(),
            message: "the webhook answer has no numeric `id`".into(),
        }
    })
}

async fn delete_one(client: &DeskClient, id: &str) -> Result<(), SubscriptionError> {
    let path = format!("webhooks/{id}");
    match client.send_json(Method::DELETE, &path, &[], None).await {
        Ok(_) => Ok(()),
        // Gone already: what we wanted.
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(desk_error(client, "", e)),
    }
}

/// Deletes this source's subscriptions (and no other); returns their ids.
pub async fn delete(client: &DeskClient) -> Result<Vec<String>, SubscriptionError> {
    let mut deleted = Vec::new();
    for sub in list(client).await?.into_iter().filter(|s| s.ours) {
        delete_one(client, &sub.id).await?;
        tracing::info!(source = client.source_name(), webhook_id = %sub.id, "Deleted the Desk webhook subscription.");
        deleted.push(sub.id);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn filters_follow_the_desk_schema() {
        let body = subscriptions_body();
        let o = body.as_object().unwrap();
        assert_eq!(o.len(), EVENT_TYPES.len());
        let keys = |t: &str| -> Vec<String> {
            let mut k: Vec<String> =
                o[t].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(keys("Ticket_Update"), ["departmentId", "departmentIds", "fields", "includePrevState"]);
        assert_eq!(keys("Ticket_Add"), ["departmentId", "departmentIds"]);
        assert_eq!(keys("Ticket_Thread_Add"), ["departmentId", "departmentIds", "direction"]);
        assert_eq!(keys("Task_Add"), ["departmentIds"]);
        assert_eq!(keys("Call_Update"), ["departmentIds", "includePrevState"]);
        assert_eq!(keys("Contact_Update"), ["includePrevState"]);
        assert!(o["Ticket_Delete"].is_null() && o["Contact_Add"].is_null() && o["Agent_Delete"].is_null());
        assert!(covers(o));
        let mut without_prev = o.clone();
        without_prev.insert("Contact_Update".into(), json!({"includePrevState": false}));
        assert!(!covers(&without_prev));
        without_prev.remove("Contact_Update");
        assert!(!covers(&without_prev));
    }

    #[test]
    fn urls_are_redacted_and_ours_is_found_by_path_or_name() {
        assert_eq!(
            redact("https://cdc.example.com/webhooks/zoho/main/abcdef0123"),
            "https://cdc.example.com/webhooks/zoho/main/***"
        );
        assert_eq!(redact("https://other.example.com/hook?token=x"), "https://other.example.com/***");
        let v = json!({"id": "98001", "url": "http://h:1/webhooks/zoho/main/s3cr3t", "name": "x",
                       "subscriptions": {"Ticket_Add": null}});
        let s = from_json(&v, "main", None).unwrap();
        assert!(s.ours);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(!from_json(&v, "eu", None).unwrap().ours);
        let v = json!({"id": 5, "url": "http://elsewhere/x", "name": "zoho-desk-cdc eu"});
        assert!(from_json(&v, "eu", None).unwrap().ours);
        assert!(from_json(&json!({"id": "../x", "url": ""}), "eu", None).is_none());
    }

    #[test]
    fn the_service_url_matches_only_itself() {
        let url = "https://cdc.example.com/webhooks/zoho/main/s3cr3t";
        assert!(same_url(url, url));
        assert!(same_url(&format!("{url}/"), url));
        assert!(!same_url("https://cdc.example.com/webhooks/zoho/main/old", url));
        assert!(!same_url("https://other.example.com/webhooks/zoho/main/s3cr3t", url));
    }
}
