//! A subscription re-created while the bridge runs (a new webhook id, the same service URL): its signed
//! deliveries carry the new id as JWT audience, and the bridge accepts them after reading Desk's
//! subscriptions again instead of refusing them (Desk does not retry, so a refusal would lose them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use zoho_desk_cdc::config::Settings;
use zoho_desk_cdc::sim::{SimConfig, Simulator};
use zoho_desk_cdc::zoho::client::ClientOptions;
use zoho_desk_cdc::zoho::registry::DeskRegistry;
use zoho_desk_cdc::zoho::subscription;

async fn sim_stats(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_of_a_recreated_subscription_are_accepted() {
    let sim = Simulator::start(
        SimConfig { webhook_batch_window: Duration::from_millis(50), ..SimConfig::default() },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let base = sim.base_url();
    let common::TicketStream { dir: _dir, prefix: _, config, bridge } =
        common::start_ticket_stream(&base, "resub").await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim_stats(&http, &base).await["webhooks"].as_u64().unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "the bridge never registered its webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Someone deletes the subscription in Desk's UI and makes it again at the same URL: a new id.
    let settings = Settings::load(std::path::Path::new(&config)).unwrap();
    let client = DeskRegistry::new(ClientOptions::default()).client(&settings.sources[0]).unwrap();
    let old = subscription::list(&client).await.unwrap().into_iter().find(|s| s.ours).unwrap();
    client.send_json(Method::DELETE, &format!("webhooks/{}", old.id), &[], None).await.unwrap();
    let body = json!({"url": old.url.expose(), "name": "made by hand",
        "subscriptions": subscription::subscriptions_body()});
    let created = client.send_json(Method::POST, "webhooks", &[], Some(&body)).await.unwrap().unwrap();
    let new_id = created["id"].as_str().map(str::to_owned).unwrap_or_else(|| created["id"].to_string());
    assert_ne!(new_id, old.id);

    let before = sim_stats(&http, &base).await["webhook_deliveries"].clone();
    http.post(format!("{base}/_sim/mutations"))
        .json(&json!({"module": "tickets", "op": "update", "count": 2}))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let d = sim_stats(&http, &base).await["webhook_deliveries"].clone();
        let answered = d["ok"].as_u64().unwrap() + d["failed"].as_u64().unwrap();
        if answered > before["ok"].as_u64().unwrap() + before["failed"].as_u64().unwrap() {
            break d;
        }
        assert!(Instant::now() < deadline, "no delivery of the new subscription was answered: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(
        after["failed"].as_u64(),
        before["failed"].as_u64(),
        "a delivery of the re-created subscription was refused: {after}\n{}",
        common::tail(&err, 30)
    );
    assert!(after["ok"].as_u64() > before["ok"].as_u64(), "{after}");
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
}
