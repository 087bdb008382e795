//! Simulator webhooks over HTTP: CRUD, the GET-then-POST validation, signed batched deliveries that
//! verify against the JWKS, prevState, filters, delete forms, 410, timeouts, failure policy, Cliq.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use sim_support::{Env, Subscriber, start};
use zoho_desk_cdc::sim::{DeleteStyle, Edition, FailurePolicy, SimConfig};

fn fast() -> SimConfig {
    SimConfig {
        webhook_batch_window: Duration::from_millis(300),
        webhook_timeout: Duration::from_millis(1500),
        ..SimConfig::default()
    }
}

async fn create_hook(env: &Env, url: &str, subscriptions: Value) -> (u16, Value) {
    let r = env
        .authed(reqwest::Method::POST, "webhooks")
        .json(&json!({"url": url, "name": "bridge", "subscriptions": subscriptions}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn verify(env: &Env, jwt: &str, webhook_id: &str) -> jsonwebtoken::TokenData<Value> {
    let jwks: Value = env
        .http
        .get(format!("{}/.well-known/jwks.json", env.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .expect("kid is in the JWKS");
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("webhookId:{webhook_id}")]);
    v.set_issuer(&[format!("orgId:{}", env.org)]);
    jsonwebtoken::decode::<Value>(jwt, &dk, &v).unwrap()
}

#[tokio::test]
async fn validation_get_first_then_signed_batched_deliveries() {
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    let (st, hook) = create_hook(
        &env,
        &sub.url,
        json!({
            "Ticket_Add": {"departmentId": null, "departmentIds": null},
            "Ticket_Update": {"departmentId": null, "departmentIds": null, "fields": null, "includePrevState": true},
            "Ticket_Delete": null
        }),
    )
    .await;
    assert_eq!(st, 200, "{hook}");
    assert_eq!(hook["type"], "CUSTOMER_WEBHOOK");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let seen = sub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET", "validation GET comes first");

    let created = env.control("mutations", json!({"module": "tickets", "op": "create", "count": 3})).await;
    assert!(sub.wait_for(10, |s| s.iter().filter(|x| x.method == "POST").count() >= 1).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let posts: Vec<_> = sub.seen().into_iter().filter(|s| s.method == "POST").collect();
    assert_eq!(posts.len(), 1, "three close changes arrive in one POST");
    let batch = posts[0].body.as_array().unwrap();
    assert_eq!(batch.len(), 3);
    let data = verify(&env, posts[0].jwt.as_deref().unwrap(), &hook_id).await;
    assert_eq!(data.claims["iss"], format!("orgId:{}", env.org));
    assert!(data.claims["exp"].as_i64().unwrap() > data.claims["iat"].as_i64().unwrap());
    for (ev, id) in batch.iter().zip(created["ids"].as_array().unwrap()) {
        assert_eq!(ev["eventType"], "Ticket_Add");
        assert_eq!(ev["orgId"], env.org.as_str());
        let t = ev["eventTime"].as_str().unwrap();
        assert!(t.len() >= 13 && t.bytes().all(|b| b.is_ascii_digit()), "eventTime is epoch-ms text");
        assert_eq!(&ev["payload"]["id"], id);
        assert!(ev["payload"]["cf"].is_object(), "payload is the full record");
        assert!(ev.get("prevState").is_none());
    }

    let id = created["ids"][0].as_str().unwrap();
    env.control("mutations", json!({"module": "tickets", "op": "update", "ids": [id]})).await;
    assert!(sub.wait_for(10, |_| sub.events().iter().any(|e| e["eventType"] == "Ticket_Update")).await);
    let upd = sub.events().into_iter().find(|e| e["eventType"] == "Ticket_Update").unwrap();
    let prev = upd["prevState"].as_object().expect("prevState with includePrevState");
    assert!(prev.contains_key("modifiedTime"));
    let (_, detail) = env.get_json(&format!("tickets/{id}")).await;
    assert_eq!(upd["payload"], detail, "payload equals GET /tickets/{{id}}");

    env.control("mutations", json!({"module": "tickets", "op": "delete", "ids": [id]})).await;
    assert!(sub.wait_for(10, |_| sub.events().iter().any(|e| e["eventType"] == "Ticket_Delete")).await);
    let del = sub.events().into_iter().find(|e| e["eventType"] == "Ticket_Delete").unwrap();
    assert_eq!(del["payload"], json!({"id": id}));
    let stats = env.stats().await;
    assert!(stats["webhook_deliveries"]["ok"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn validation_falls_back_to_post_and_rejects_dead_urls() {
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    sub.get_status.store(405, Ordering::SeqCst);
    let (st, _) = create_hook(&env, &sub.url, json!({"Contact_Add": null})).await;
    assert_eq!(st, 200);
    let methods: Vec<String> = sub.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, vec!["GET", "POST"]);

    let dead = Subscriber::start().await;
    dead.get_status.store(500, Ordering::SeqCst);
    dead.post_status.store(500, Ordering::SeqCst);
    let (st, body) = create_hook(&env, &dead.url, json!({"Contact_Add": null})).await;
    assert_eq!(st, 422);
    assert_eq!(body["errorCode"], "INVALID_DATA");
    assert_eq!(body["errors"][0]["fieldName"], "/url");
}

#[tokio::test]
async fn webhook_crud_and_input_validation() {
    let env = start(fast()).await;
    let r = env.get("webhooks").await;
    assert_eq!(r.status().as_u16(), 204);
    let sub = Subscriber::start().await;
    let (st, body) = create_hook(&env, &sub.url, json!({"No_Such_Event": null})).await;
    assert_eq!(st, 422);
    assert_eq!(body["errors"][0]["fieldName"], "/subscriptions/No_Such_Event");
    let r = env
        .authed(reqwest::Method::POST, "webhooks")
        .json(&json!({"subscriptions": {"Ticket_Add": null}}))
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b["errors"][0],
        json!({"fieldName": "/url", "errorType": "missing", "errorMessage": "url is required"})
    );

    let (_, hook) = create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    let id = hook["id"].as_str().unwrap();
    let (st, list) = env.get_json("webhooks").await;
    assert_eq!(st, 200);
    assert_eq!(list["data"][0]["id"], id);
    let other = Subscriber::start().await;
    let r = env
        .authed(reqwest::Method::PATCH, &format!("webhooks/{id}"))
        .json(&json!({"name": "renamed", "url": other.url}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "renamed");
    assert_eq!(other.seen()[0].method, "GET", "a changed URL is validated again");
    let r = env.authed(reqwest::Method::DELETE, &format!("webhooks/{id}")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(env.get(&format!("webhooks/{id}")).await.status().as_u16(), 404);
}

#[tokio::test]
async fn editions_without_webhooks_are_license_limited() {
    let env = start(SimConfig { edition: Edition::Standard, ..fast() }).await;
    let sub = Subscriber::start().await;
    let (st, body) = create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    assert_eq!(st, 403);
    assert_eq!(body["errorCode"], "LICENSE_ACCESS_LIMITED");
}

#[tokio::test]
async fn subscriber_answering_410_is_unsubscribed() {
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    let (_, _) = create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    sub.post_status.store(410, Ordering::SeqCst);
    env.control("mutations", json!({"module": "tickets", "op": "create", "count": 1})).await;
    assert!(sub.wait_for(10, |s| s.iter().any(|x| x.jwt.is_some())).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(env.get("webhooks").await.status().as_u16(), 204, "subscription deleted after 410");
}

#[tokio::test]
async fn department_filter_limits_deliveries() {
    let env = start(fast()).await;
    let dept = env.state("departments").await[0]["id"].as_str().unwrap().to_owned();
    let sub = Subscriber::start().await;
    create_hook(&env, &sub.url, json!({"Ticket_Add": {"departmentId": null, "departmentIds": [dept]}})).await;
    let created = env.control("mutations", json!({"module": "tickets", "op": "create", "count": 12})).await;
    let mut expected = 0;
    for id in created["ids"].as_array().unwrap() {
        let (_, t) = env.get_json(&format!("tickets/{}", id.as_str().unwrap())).await;
        if t["departmentId"] == dept.as_str() {
            expected += 1;
        }
    }
    assert!(expected > 0 && expected < 12, "seeded data spreads tickets over departments");
    assert!(sub.wait_for(10, |_| sub.events().len() >= expected).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let evs = sub.events();
    assert_eq!(evs.len(), expected);
    assert!(evs.iter().all(|e| e["payload"]["departmentId"] == dept.as_str()));
}

#[tokio::test]
async fn delete_style_both_sends_delete_and_is_deleted_update() {
    let env = start(SimConfig { delete_style: DeleteStyle::Both, ..fast() }).await;
    let sub = Subscriber::start().await;
    create_hook(
        &env,
        &sub.url,
        json!({"Contact_Delete": null, "Contact_Update": {"includePrevState": true}}),
    )
    .await;
    let ids = env.control("mutations", json!({"module": "contacts", "op": "delete", "count": 1})).await;
    assert!(sub.wait_for(10, |_| sub.events().len() >= 2).await);
    let evs = sub.events();
    let del = evs.iter().find(|e| e["eventType"] == "Contact_Delete").unwrap();
    assert_eq!(del["payload"]["id"], ids["ids"][0]);
    let upd = evs.iter().find(|e| e["eventType"] == "Contact_Update").unwrap();
    assert_eq!(upd["payload"]["isTrashed"], true);
    assert_eq!(upd["prevState"]["isTrashed"], false);
}

#[tokio::test]
async fn failures_drop_by_default_retry_when_configured_and_time_out() {
    // Drop: one attempt, counted as failed.
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    sub.post_status.store(500, Ordering::SeqCst);
    env.control("mutations", json!({"module": "tickets", "op": "create", "count": 1})).await;
    assert!(sub.wait_for(10, |s| s.iter().any(|x| x.jwt.is_some())).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sub.seen().iter().filter(|x| x.jwt.is_some()).count(), 1);
    assert_eq!(env.stats().await["webhook_deliveries"]["failed"], 1);

    // Retry:2 → three attempts.
    let env = start(SimConfig {
        webhook_failure: FailurePolicy::Retry(2),
        webhook_retry_delay: Duration::from_millis(100),
        ..fast()
    })
    .await;
    let sub = Subscriber::start().await;
    create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    sub.post_status.store(503, Ordering::SeqCst);
    env.control("mutations", json!({"module": "tickets", "op": "create", "count": 1})).await;
    assert!(sub.wait_for(10, |s| s.iter().filter(|x| x.jwt.is_some()).count() >= 3).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sub.seen().iter().filter(|x| x.jwt.is_some()).count(), 3);

    // A subscriber slower than the timeout fails the delivery.
    let env = start(SimConfig { webhook_timeout: Duration::from_millis(300), ..fast() }).await;
    let sub = Subscriber::start().await;
    create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    sub.post_delay_ms.store(1500, Ordering::SeqCst);
    env.control("mutations", json!({"module": "tickets", "op": "create", "count": 1})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.stats().await["webhook_deliveries"]["failed"] != 1 {
        assert!(tokio::time::Instant::now() < deadline, "timeout is counted as a failure");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn drop_webhooks_fault_loses_deliveries() {
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    create_hook(&env, &sub.url, json!({"Ticket_Add": null})).await;
    env.control("faults", json!({"kind": "drop_webhooks", "ratio": 1.0, "duration_s": 30})).await;
    env.control("mutations", json!({"module": "tickets", "op": "create", "count": 2})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sub.events().is_empty());
    let stats = env.stats().await;
    assert_eq!(stats["webhook_deliveries"]["dropped"], 1);
}

#[tokio::test]
async fn cliq_notifications_are_json_objects_with_text() {
    let sub = Subscriber::start().await;
    let env = start(SimConfig { cliq_url: Some(sub.url.clone()), ..fast() }).await;
    let ids = env.control("mutations", json!({"module": "tickets", "op": "update", "count": 1})).await;
    assert!(sub.wait_for(10, |s| !s.is_empty()).await);
    let msg = &sub.seen()[0];
    assert_eq!(msg.method, "POST");
    assert!(msg.jwt.is_none());
    let text = msg.body["text"].as_str().unwrap();
    assert!(text.contains(ids["ids"][0].as_str().unwrap()), "{text}");
    assert!(text.contains("updated"));
}

#[tokio::test]
async fn ticket_update_fields_filter_only_passes_changes_of_those_fields() {
    let env = start(fast()).await;
    let sub = Subscriber::start().await;
    create_hook(
        &env,
        &sub.url,
        json!({"Ticket_Update": {"departmentId": null, "departmentIds": null, "fields": ["status"], "includePrevState": true}}),
    )
    .await;
    let id = env.state("tickets").await[0]["id"].as_str().unwrap().to_owned();
    let mut status_changes = 0;
    for _ in 0..12 {
        let (_, before) = env.get_json(&format!("tickets/{id}")).await;
        env.control("mutations", json!({"module": "tickets", "op": "update", "ids": [id]})).await;
        let (_, after) = env.get_json(&format!("tickets/{id}")).await;
        if before["status"] != after["status"] {
            status_changes += 1;
        }
    }
    assert!(status_changes > 0 && status_changes < 12, "updates change different fields");
    assert!(sub.wait_for(10, |_| sub.events().len() >= status_changes).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let evs = sub.events();
    assert_eq!(evs.len(), status_changes);
    assert!(evs.iter().all(|e| e["prevState"].get("status").is_some()));
}

#[tokio::test]
async fn flagged_statuses_and_full_delete_payload() {
    let env = start(SimConfig {
        webhook_create_status: 201,
        webhook_delete_status: 204,
        delete_payload: zoho_desk_cdc::sim::DeletePayload::Full,
        ..fast()
    })
    .await;
    let sub = Subscriber::start().await;
    let (st, hook) = create_hook(&env, &sub.url, json!({"Account_Delete": null})).await;
    assert_eq!(st, 201);
    let ids = env.control("mutations", json!({"module": "accounts", "op": "delete", "count": 1})).await;
    assert!(sub.wait_for(10, |_| !sub.events().is_empty()).await);
    let ev = &sub.events()[0];
    assert_eq!(ev["payload"]["id"], ids["ids"][0]);
    assert_eq!(ev["payload"]["isTrashed"], true);
    assert!(ev["payload"]["accountName"].is_string(), "full last state");
    let r = env
        .authed(reqwest::Method::DELETE, &format!("webhooks/{}", hook["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}
