//! Deletes Desk made while the bridge was down (no webhook reached it) are found by the next `always`
//! load: ids in the topic that the fresh load does not meet are confirmed gone and get `op=d` plus a
//! tombstone, so the compacted topics equal Desk's state again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::{SimConfig, Simulator};
use zoho_desk_cdc::zoho::module::Module;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_reload_tombstones_records_deleted_while_the_bridge_was_down() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let common::AuthorizedSource { dir: _dir, prefix, config, admin } =
        common::authorized_source(&base, "reload").await;

    let (rc, err) = common::run_initial_only(&config, Duration::from_secs(300)).await;
    assert_eq!(rc, 0, "first load failed:\n{}", common::tail(&err, 40));

    // The bridge is down: Desk deletes records and nobody is told.
    let http = reqwest::Client::new();
    let mut deleted = Vec::new();
    for (module, count) in [("tickets", 7), ("contacts", 3)] {
        let body = serde_json::json!({"module": module, "op": "delete", "count": count});
        let r: serde_json::Value = http
            .post(format!("{base}/_sim/mutations"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids = r["ids"].as_array().unwrap().len();
        assert_eq!(ids, count, "{module}: {r}");
        deleted.push((module, ids));
    }

    let bridge = common::Bridge::start(&["run", "--config", &config, "--snapshot-mode", "always"]);
    common::wait_ready(&admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !common::snapshot_done(&admin).await {
        assert!(std::time::Instant::now() < deadline, "the re-load did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    for (module, n) in &deleted {
        let line = format!("zoho_desk_cdc_events_total{{source=\"main\",module=\"{module}\",op=\"d\"}} {n}");
        assert!(
            metrics.contains(&line),
            "expected `{line}` in /metrics:\n{}",
            metrics_lines(&metrics, "op=\"d\"")
        );
    }

    // Every record is read twice (two loads); the compacted view must equal Desk's state.
    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics_with(&base, &prefix, &modules, &["--allow-duplicate-reads"]).await;
    eprintln!("{out}");
    assert!(ok, "records deleted while the bridge was down are still in the topics");
    sim.stop().await.unwrap();
}

fn metrics_lines(text: &str, needle: &str) -> String {
    text.lines().filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
}
