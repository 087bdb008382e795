//! Exactly-once across crashes and a second instance: `kill -9` the bridge at several moments of a
//! snapshot with a mutation workload running, restart it each time, and check with an independent
//! read_committed consumer that every live record is there once (no duplicate `r` per key, nothing lost).
//! (The fencing check is in tests/fencing.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::Simulator;
use zoho_desk_cdc::zoho::module::Module;

async fn wait_quiet(base: &str) {
    let mut last = serde_json::Value::Null;
    let mut stable = 0;
    for _ in 0..400 {
        let d = common::sim_stats(base).await["webhook_deliveries"].clone();
        if d == last {
            stable += 1;
            if stable >= 12 {
                return;
            }
        } else {
            stable = 0;
            last = d;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_snapshot_and_workload_loses_and_duplicates_nothing() {
    let sim = Simulator::start(common::crash_sim_config(50_000), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("eos").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config = common::bridge_config_with(
        dir.path(),
        &base,
        &prefix,
        // Split by status only: departments of 12,500 tickets become parts of about 1,250 and 5,000, so
        // the load walks split parts and, past the ceiling of the biggest, search windows.
        "register_webhook = true\nsnapshot_split_fields = [\"status\"]",
        wport,
        aport,
    );
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let admin = format!("http://127.0.0.1:{aport}");

    let mut bridge = common::Bridge::start(&["run", "--config", &config]);
    common::wait_ready(&admin).await;
    let workload = serde_json::json!({"rate_per_s": 40.0, "duration_s": 20.0,
        "modules": ["tickets", "contacts", "accounts", "tasks"], "mix": {"create": 0.3, "update": 0.55, "delete": 0.15}});
    reqwest::Client::new().post(format!("{base}/_sim/workload")).json(&workload).send().await.unwrap();
    // Fixed, uneven moments so the run is repeatable yet lands on different pages and phases.
    let mut kills = 0;
    for delay_ms in [2_300u64, 1_700, 3_100, 1_200, 2_600] {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if common::snapshot_done(&admin).await {
            break;
        }
        bridge.kill();
        kills += 1;
        bridge = common::Bridge::start(&["run", "--config", &config]);
        common::wait_ready(&admin).await;
    }
    eprintln!("killed the bridge {kills} times during the snapshot");
    assert!(kills >= 3, "the snapshot finished too early to test crashes ({kills} kills)");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !common::snapshot_done(&admin).await {
        assert!(std::time::Instant::now() < deadline, "snapshot did not finish after restarts");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_quiet(&base).await;
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));

    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics(&base, &prefix, &modules).await;
    eprintln!("{out}");
    // How many changes Desk delivered (and gave up on) against how many it made.
    eprintln!("simulator stats: {}", common::sim_stats(&base).await);
    if !ok {
        let warnings: Vec<&str> =
            err.lines().filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\"")).collect();
        eprintln!("the last instance's warnings:\n{}", warnings.join("\n"));
    }
    assert!(ok, "after {kills} crashes the topics differ from Desk's state or hold duplicate reads");
    sim.stop().await.unwrap();
}
