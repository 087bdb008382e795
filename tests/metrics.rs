//! While a snapshot runs and webhooks arrive, `/metrics` exposes every CONTRACT §7 metric with sensible
//! values, plus librdkafka's queue depth and broker round-trip time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};
use zoho_desk_cdc::sim::Simulator;

const CONTRACT: [&str; 13] = [
    "events_total",
    "snapshot_records_total",
    "snapshot_completed",
    "api_requests_total",
    "api_credits_remaining",
    "api_rate_limited_total",
    "webhook_requests_total",
    "webhook_events_total",
    "milliseconds_behind_source",
    "kafka_produce_errors_total",
    "kafka_transactions_total",
    "oauth_refresh_total",
    "reconcile_events_total",
];

/// Sum of every sample of `name` (all label sets).
fn sum(text: &str, name: &str) -> f64 {
    let full = format!("zoho_desk_cdc_{name}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(full.as_str()))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn has(text: &str, name: &str) -> bool {
    let full = format!("zoho_desk_cdc_{name}");
    text.lines().any(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(full.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_during_a_snapshot_cover_the_contract() {
    let sim = Simulator::start(common::crash_sim_config(30_000), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("metrics").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config =
        common::bridge_config_with(dir.path(), &base, &prefix, "register_webhook = true", wport, aport);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[kafka.properties]\n\"statistics.interval.ms\" = \"500\"\n");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let bridge = common::Bridge::start(&["run", "--config", &config]);
    let admin = format!("http://127.0.0.1:{aport}");
    common::wait_ready(&admin).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st: serde_json::Value =
            http.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
        if st["webhooks"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge never registered its webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Changes during the snapshot reach the service URL as webhooks.
    let body = serde_json::json!({"module": "contacts", "op": "update", "count": 5});
    http.post(format!("{base}/_sim/mutations")).json(&body).send().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    let metrics = loop {
        let m = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
        let ready = sum(&m, "snapshot_records_total") > 0.0
            && sum(&m, "webhook_events_total") > 0.0
            && has(&m, "kafka_queue_messages")
            && has(&m, "kafka_broker_rtt_ms");
        if ready {
            break m;
        }
        assert!(Instant::now() < deadline, "metrics never showed snapshot and webhook activity:\n{m}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(!common::snapshot_done(&admin).await, "the snapshot finished before metrics were read");
    let missing: Vec<&str> = CONTRACT.iter().copied().filter(|n| !has(&metrics, n)).collect();
    assert!(missing.is_empty(), "missing from /metrics: {missing:?}");
    assert!(sum(&metrics, "api_requests_total") > 0.0);
    assert!(sum(&metrics, "api_credits_remaining") > 0.0);
    assert!(sum(&metrics, "events_total") > 0.0);
    assert!(sum(&metrics, "kafka_transactions_total") > 0.0);
    assert_eq!(sum(&metrics, "kafka_produce_errors_total"), 0.0);
    assert_eq!(sum(&metrics, "api_rate_limited_total"), 0.0);
    let status: serde_json::Value =
        http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap();
    let tickets = &status["sources"][0]["modules"]["tickets"];
    assert!(tickets.is_object(), "/status has no tickets progress: {status}");
    // CONTRACT §4: lag per module (null until a webhook change of the module is committed).
    assert!(tickets.get("lag_ms").is_some_and(|l| l.is_null() || l.is_i64()), "no lag_ms: {status}");
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    sim.stop().await.unwrap();
}

/// After a restart, modules whose snapshot an earlier run committed are not loaded again, and
/// `snapshot_completed` still reads 1 for each of them (not the 0 every series starts at).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_completed_survives_a_restart() {
    let sim = Simulator::start(zoho_desk_cdc::sim::SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let common::AuthorizedSource { dir: _dir, config, admin, .. } =
        common::authorized_source(&base, "completed").await;
    let (rc, err) = common::run_initial_only(&config, Duration::from_secs(300)).await;
    assert_eq!(rc, 0, "first load failed:\n{}", common::tail(&err, 40));

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    common::wait_ready(&admin).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::snapshot_done(&admin).await {
        assert!(Instant::now() < deadline, "the restarted bridge never reported its snapshot done");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    assert_eq!(sum(&metrics, "snapshot_records_total"), 0.0, "the restart loaded modules again");
    for module in zoho_desk_cdc::zoho::module::Module::DEFAULT {
        let line =
            format!("zoho_desk_cdc_snapshot_completed{{source=\"main\",module=\"{}\"}} 1", module.name());
        assert!(metrics.lines().any(|l| l == line), "expected `{line}` in /metrics");
    }
    sim.stop().await.unwrap();
}

/// The credits a run spent today are written to the state topic, and a restart takes them up: the daily
/// budget (and `api_credits_remaining`) does not start afresh with every process. The bridge is stopped
/// well within one persist interval (10 s) of the load's last calls: the count written on shutdown is the one
/// the restart must find.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_credits_survive_a_restart() {
    let sim = Simulator::start(zoho_desk_cdc::sim::SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let common::AuthorizedSource { dir: _dir, config, admin, .. } =
        common::authorized_source(&base, "credits").await;
    let http = reqwest::Client::new();
    let spent =
        |status: serde_json::Value| status["sources"][0]["desk"]["quota"]["spent_today"].as_u64().unwrap();

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    common::wait_ready(&admin).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !common::snapshot_done(&admin).await {
        assert!(Instant::now() < deadline, "the load did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = spent(http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap());
    assert!(first > 0, "the load spent no credits");
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    let first_log = err;

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    common::wait_ready(&admin).await;
    // The state topic is read once the admin server is up; the snapshot phase is decided after it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !common::snapshot_done(&admin).await {
        assert!(Instant::now() < deadline, "the restarted bridge never reported its snapshot done");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = spent(http.get(format!("{admin}/status")).send().await.unwrap().json().await.unwrap());
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    assert!(
        again >= first,
        "the restart counted {again} credits spent today, the first run {first}:\n{}\n{}",
        common::tail(&first_log, 15),
        common::tail(&err, 15)
    );
    sim.stop().await.unwrap();
}
