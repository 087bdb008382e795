//! Simulator quota over HTTP: daily credits with their headers and Retry-After, the concurrent-call cap,
//! and the optional per-minute cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_support;

use std::time::Duration;

use serde_json::json;
use sim_support::start;
use zoho_desk_cdc::sim::SimConfig;

#[tokio::test]
async fn credits_are_charged_per_call_and_exhaustion_is_threshold_exceeded() {
    let env = start(SimConfig { daily_credits: Some(10), ..SimConfig::default() }).await;
    let r = env.get("tickets?limit=5").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-rate-limit-request-weight-v3"], "3");
    assert_eq!(r.headers()["x-rate-limit-remaining-v3"], "7");
    let id = r.json::<serde_json::Value>().await.unwrap()["data"][0]["id"].as_str().unwrap().to_owned();
    let r = env.get(&format!("tickets/{id}")).await;
    assert_eq!(r.headers()["x-rate-limit-request-weight-v3"], "1");
    assert_eq!(r.headers()["x-rate-limit-remaining-v3"], "6");
    assert_eq!(env.get("tickets").await.status().as_u16(), 200); // 3 left
    assert_eq!(env.get("tickets").await.status().as_u16(), 200); // 0 left
    let r = env.get("tickets").await;
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "THRESHOLD_EXCEEDED");
    // Count calls are expensive.
    let env = start(SimConfig { daily_credits: Some(49), ..SimConfig::default() }).await;
    assert_eq!(env.get("tasks/count").await.status().as_u16(), 429);
    assert_eq!(env.stats().await["credits_used"], 0);
}

#[tokio::test]
async fn concurrent_calls_over_the_cap_get_too_many_requests() {
    let env = start(SimConfig {
        concurrency: Some(2),
        api_latency: Duration::from_millis(1000),
        ..SimConfig::default()
    })
    .await;
    let calls = (0..5).map(|_| env.get("tickets?limit=1"));
    let statuses: Vec<u16> =
        futures::future::join_all(calls).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    let r = futures::future::join_all((0..3).map(|_| env.get("tickets?limit=1"))).await;
    let too_many = r.into_iter().find(|r| r.status().as_u16() == 429).unwrap();
    let body: serde_json::Value = too_many.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errorCode": "TOO_MANY_REQUESTS", "message": "The maximum number of Concurrent API Calls that can be made has been exceeded."})
    );
    // Once the calls finish, places are free again.
    assert_eq!(env.get("tickets?limit=1").await.status().as_u16(), 200);
}

#[tokio::test]
async fn optional_requests_per_minute_cap() {
    let env = start(SimConfig { requests_per_minute: Some(3), ..SimConfig::default() }).await;
    for _ in 0..3 {
        assert_eq!(env.get("departments").await.status().as_u16(), 200);
    }
    let r = env.get("departments").await;
    // The fourth call may straddle a minute boundary; allow that rare case.
    if r.status().as_u16() == 429 {
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errorCode"], "TOO_MANY_REQUESTS");
    }
    let stats = env.stats().await;
    assert!(stats["status_counts"]["200"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn short_daily_reset_refuses_with_retry_after_then_restores_the_credits() {
    let env = start(SimConfig {
        daily_credits: Some(6),
        daily_reset: Some(Duration::from_secs(2)),
        ..SimConfig::default()
    })
    .await;
    // Spend the day's credits (a list page costs 3); the next call is refused until the reset.
    let mut refused = None;
    // A few spare calls in case a reset falls between them.
    for _ in 0..6 {
        let r = env.get("tickets?limit=1").await;
        if r.status().as_u16() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = refused.expect("the credits should run out within the day");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry} should count to the short day's reset");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "THRESHOLD_EXCEEDED");

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = env.get("tickets?limit=1").await;
    assert_eq!(r.status().as_u16(), 200, "credits are back after the reset");
    assert_eq!(r.headers()["x-rate-limit-remaining-v3"], "3");
}
