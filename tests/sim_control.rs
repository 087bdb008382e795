//! Simulator control API over HTTP (CONTRACT §8): mutations, workload, state, stats, faults, plus
//! determinism from the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_support;

use std::time::Duration;

use serde_json::{Value, json};
use sim_support::start;
use zoho_desk_cdc::sim::SimConfig;

#[tokio::test]
async fn same_seed_gives_the_same_org() {
    let a = start(SimConfig::default()).await;
    let b = start(SimConfig::default()).await;
    let c = start(SimConfig { seed: 7, ..SimConfig::default() }).await;
    let (sa, sb, sc) = (a.state("tickets").await, b.state("tickets").await, c.state("tickets").await);
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
    assert_eq!(a.state("contacts").await, b.state("contacts").await);
}

#[tokio::test]
async fn mutations_change_state_and_report_ids() {
    let env = start(SimConfig::default()).await;
    let before = env.state("tickets").await.len();
    let created = env.control("mutations", json!({"module": "tickets", "op": "create", "count": 4})).await;
    let ids: Vec<String> =
        created["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 4);
    let state = env.state("tickets").await;
    assert_eq!(state.len(), before + 4);
    let (_, d) = env.get_json(&format!("tickets/{}", ids[0])).await;
    assert_eq!(d["createdTime"], d["modifiedTime"]);

    let updated =
        env.control("mutations", json!({"module": "tickets", "op": "update", "ids": [ids[0]]})).await;
    assert_eq!(updated["ids"][0], ids[0].as_str());
    let (_, d2) = env.get_json(&format!("tickets/{}", ids[0])).await;
    assert!(d2["modifiedTime"].as_str().unwrap() > d["modifiedTime"].as_str().unwrap());

    env.control("mutations", json!({"module": "tickets", "op": "delete", "ids": [ids[1]]})).await;
    let state = env.state("tickets").await;
    assert_eq!(state.len(), before + 3);
    assert_eq!(env.get(&format!("tickets/{}", ids[1])).await.status().as_u16(), 404);

    // Children and other modules.
    let t = env.control("mutations", json!({"module": "ticket_comments", "op": "create", "count": 1})).await;
    assert!(t["ids"][0].is_string());
    for m in
        ["contacts", "accounts", "tasks", "calls", "events", "articles", "products", "contracts", "agents"]
    {
        let r = env.control("mutations", json!({"module": m, "op": "update", "count": 1})).await;
        assert_eq!(r["ids"].as_array().unwrap().len(), 1, "{m}");
    }
    let r = env
        .http
        .post(format!("{}/_sim/mutations", env.base))
        .json(&json!({"module": "nope", "op": "create"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = env
        .http
        .post(format!("{}/_sim/mutations", env.base))
        .json(&json!({"module": "tickets", "op": "update", "ids": ["1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
}

#[tokio::test]
async fn workload_runs_at_the_requested_rate() {
    let env = start(SimConfig::default()).await;
    let before = env.stats().await["mutations"].as_u64().unwrap();
    let r = env
        .control(
            "workload",
            json!({"rate_per_s": 40, "duration_s": 0.5, "modules": ["tickets", "contacts"],
                   "mix": {"create": 0.5, "update": 0.5, "delete": 0.0}}),
        )
        .await;
    assert_eq!(r["planned_mutations"], 20);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = env.stats().await["mutations"].as_u64().unwrap() - before;
        if n >= 20 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "workload finished only {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn stats_count_requests_statuses_credits_and_tokens() {
    let env = start(SimConfig::default()).await;
    env.get("tickets").await;
    env.get("tickets?bogus=1").await;
    let s = env.stats().await;
    // One token request plus two API calls; control calls are not counted.
    assert_eq!(s["requests_total"], 3);
    assert_eq!(s["status_counts"]["200"], 2);
    assert_eq!(s["status_counts"]["422"], 1);
    assert_eq!(s["credits_used"], 6);
    assert_eq!(s["tokens_issued"], 1);
    assert!(s["webhook_deliveries"]["ok"].is_u64());
}

#[tokio::test]
async fn faults_http_500_rate_limit_latency_and_revoke() {
    let env = start(SimConfig::default()).await;
    env.control("faults", json!({"kind": "http_500", "ratio": 1.0, "duration_s": 1})).await;
    let (st, b) = env.get_json("tickets").await;
    assert_eq!(st, 500);
    assert_eq!(
        b,
        json!({"errorCode": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred while performing this operation."})
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get("tickets").await.status().as_u16(), 200, "the fault expires");

    env.control("faults", json!({"kind": "rate_limit", "ratio": 1.0, "duration_s": 30})).await;
    let (st, b) = env.get_json("tickets").await;
    assert_eq!((st, b["errorCode"].as_str()), (429, Some("TOO_MANY_REQUESTS")));
    let r = env.http.delete(format!("{}/_sim/faults", env.base)).send().await.unwrap();
    assert!(r.status().is_success());

    env.control("faults", json!({"kind": "latency", "ratio": 1.0, "duration_s": 30, "latency_ms": 300}))
        .await;
    let t0 = std::time::Instant::now();
    assert_eq!(env.get("departments").await.status().as_u16(), 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    env.http.delete(format!("{}/_sim/faults", env.base)).send().await.unwrap();

    env.control("faults", json!({"kind": "revoke_tokens"})).await;
    assert_eq!(env.get("tickets").await.status().as_u16(), 401);
    // The refresh token still works.
    let tok: Value = env
        .http
        .post(format!("{}/oauth/v2/token", env.base))
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", env.client_id.as_str()),
            ("client_secret", env.client_secret.as_str()),
            ("refresh_token", env.refresh.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tok["access_token"].is_string());

    let r = env
        .http
        .post(format!("{}/_sim/faults", env.base))
        .json(&json!({"kind": "meteor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn new_threads_bump_the_ticket_only_when_flagged() {
    for bump in [false, true] {
        let env = start(SimConfig { child_bumps_ticket: bump, ..SimConfig::default() }).await;
        let id = env.state("tickets").await[0]["id"].as_str().unwrap().to_owned();
        let (_, before) = env.get_json(&format!("tickets/{id}")).await;
        env.control("mutations", json!({"module": "ticket_threads", "op": "create", "ids": [id]})).await;
        let (_, after) = env.get_json(&format!("tickets/{id}")).await;
        let count = |v: &Value| v["threadCount"].as_str().unwrap().parse::<u32>().unwrap();
        assert_eq!(count(&after), count(&before) + 1);
        assert_eq!(after["modifiedTime"] != before["modifiedTime"], bump);
    }
}
