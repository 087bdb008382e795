//! Desk does not retry webhooks: with the simulator dropping 20% of its deliveries during a workload, the
//! reconciler finds the missed changes through `modifiedTimeRange` search and brings every topic to Desk's
//! state within two reconcile intervals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::AuthorizedSource;
use std::time::{Duration, Instant};
use zoho_desk_cdc::sim::{SimConfig, Simulator};
use zoho_desk_cdc::zoho::module::Module;

/// A simulator of the standard org and a source authorised against it, reconciling every `interval_s`
/// (`extra`: further lines of its source entry; `webhook_port` 0 when it gets no webhooks).
async fn reconciling_source(
    tag: &str,
    interval_s: u64,
    extra: &str,
    webhook_port: u16,
) -> (zoho_desk_cdc::sim::SimHandle, String, AuthorizedSource) {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let extra = format!("{extra}\nreconcile_interval_s = {interval_s}");
    let source = common::authorized_source_with(&base, tag, &extra, webhook_port).await;
    (sim, base, source)
}

/// Starts the bridge on `config` and waits until its snapshot is done (every module loaded).
async fn start_loaded(config: &str, admin: &str) -> common::Bridge {
    let bridge = common::Bridge::start(&["run", "--config", config]);
    common::wait_ready(admin).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !common::snapshot_done(admin).await {
        assert!(Instant::now() < deadline, "the snapshot did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bridge
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_recovers_dropped_webhooks_within_two_intervals() {
    let interval_s = 3;
    let (sim, base, AuthorizedSource { dir: _dir, prefix, config, admin }) =
        reconciling_source("rec", interval_s, "register_webhook = true", common::free_port()).await;
    let bridge = common::Bridge::start(&["run", "--config", &config]);
    assert!(common::wait_http_ok(&format!("{admin}/healthz"), Duration::from_secs(60)).await);
    let http = reqwest::Client::new();
    let stats = || common::sim_stats(&base);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats().await["webhooks"].as_u64().unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "the bridge never registered its webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let fault = serde_json::json!({"kind": "drop_webhooks", "ratio": 0.2, "duration_s": 12});
    assert!(
        http.post(format!("{base}/_sim/faults")).json(&fault).send().await.unwrap().status().is_success()
    );
    // Deletes vanish from search (trashed records are not listed), so they are the snapshot diff's job;
    // this workload creates and updates.
    let workload = serde_json::json!({"rate_per_s": 40.0, "duration_s": 10.0,
        "modules": ["tickets", "contacts", "accounts", "tasks"], "mix": {"create": 0.3, "update": 0.7, "delete": 0.0}});
    assert!(
        http.post(format!("{base}/_sim/workload"))
            .json(&workload)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The last mutation is now; two intervals (plus a pass's own run time) later the topics must match.
    tokio::time::sleep(Duration::from_secs(2 * interval_s + 2)).await;
    let st = stats().await;
    eprintln!("simulator stats: {st}");
    assert!(st["webhook_deliveries"]["dropped"].as_u64().unwrap_or(0) > 0, "the fault dropped nothing: {st}");
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("zoho_desk_cdc_reconcile_events_total"),
        "no reconcile_events_total in /metrics"
    );

    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics(&base, &prefix, &modules).await;
    eprintln!("{out}");
    assert!(ok, "the reconciler did not bring the topics to Desk's state");
    sim.stop().await.unwrap();
}

/// Contracts and teams have no webhook events: each pass re-lists them and commits what changed, appeared
/// or vanished (a vanished one as `d` plus a tombstone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relist_keeps_modules_without_webhooks_current() {
    let interval_s = 2;
    let (sim, base, AuthorizedSource { dir: _dir, prefix, config, admin }) =
        reconciling_source("relist", interval_s, "", 0).await;
    let bridge = start_loaded(&config, &admin).await;
    let http = reqwest::Client::new();
    for (op, count) in [("update", 5), ("create", 3), ("delete", 2)] {
        let body = serde_json::json!({"module": "contracts", "op": op, "count": count});
        let r = http.post(format!("{base}/_sim/mutations")).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{op}: {}", r.text().await.unwrap());
    }
    // Two intervals plus a pass's own run time.
    tokio::time::sleep(Duration::from_secs(2 * interval_s + 3)).await;
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    assert!(
        metrics.contains("zoho_desk_cdc_events_total{source=\"main\",module=\"contracts\",op=\"d\"} 2"),
        "the two vanished contracts were not deleted"
    );
    let (ok, out) =
        common::verify_topics(&base, &prefix, &["contracts", "teams", "organization_fields"]).await;
    eprintln!("{out}");
    assert!(ok, "re-listing did not bring contracts to Desk's state");
    sim.stop().await.unwrap();
}

/// SIGTERM while a reconcile pass waits on Desk: the pass is abandoned at that call (nothing it found is
/// half-written, its watermark not moved), the bridge exits 0 without waiting the call out, and the next
/// run's passes bring every topic to Desk's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_cut_short_by_shutdown_is_made_up_by_the_next_run() {
    let interval_s = 2;
    let (sim, base, AuthorizedSource { dir: _dir, prefix, config, admin }) =
        reconciling_source("recstop", interval_s, "register_webhook = true", common::free_port()).await;
    let bridge = start_loaded(&config, &admin).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        let req = http.post(format!("{base}{path}")).json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    let credits_used = || async { common::sim_stats(&base).await["credits_used"].as_u64().unwrap() };
    // Changes only the reconciler can find, and every Desk call from now on held for 20 s.
    post("/_sim/faults", serde_json::json!({"kind": "drop_webhooks", "ratio": 1.0, "duration_s": 120})).await;
    post(
        "/_sim/faults",
        serde_json::json!({"kind": "latency", "ratio": 1.0, "duration_s": 120, "latency_ms": 20_000}),
    )
    .await;
    let before = credits_used().await;
    post("/_sim/mutations", serde_json::json!({"module": "tickets", "op": "update", "count": 8})).await;
    post("/_sim/mutations", serde_json::json!({"module": "contacts", "op": "create", "count": 3})).await;
    // Desk charges a call when it arrives, before the held time: a pass is now waiting on Desk.
    let deadline = Instant::now() + Duration::from_secs(20);
    while credits_used().await == before {
        assert!(Instant::now() < deadline, "no reconcile pass called Desk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopping = Instant::now();
    let (rc, err) = bridge.terminate(Duration::from_secs(15));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    assert!(stopping.elapsed() < Duration::from_secs(10), "the stop waited out the Desk call");

    let r = http.delete(format!("{base}/_sim/faults")).send().await.unwrap();
    assert!(r.status().is_success());
    // Timed from streaming, not from the admin port: reading the state back at start can take seconds, and
    // a fixed wait from the port left the reconciler a single pass on a slow machine.
    let bridge = start_loaded(&config, &admin).await;
    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ok, out) = loop {
        let (ok, out) = common::verify_topics(&base, &prefix, &modules).await;
        if ok || Instant::now() > deadline {
            break (ok, out);
        }
        tokio::time::sleep(Duration::from_secs(interval_s)).await;
    };
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    // Reading the state back ends at each partition's end, which is no error (it was logged as one).
    assert!(!err.contains("PartitionEOF"), "{}", common::tail(&err, 20));
    eprintln!("{out}");
    assert!(ok, "the next run did not make up the pass cut short; its log ends:\n{}", common::tail(&err, 60));
    sim.stop().await.unwrap();
}
