//! Two bridges with the same config: the second fences the first (Kafka transactional ids), the first stops,
//! and nothing is committed twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::Simulator;
use zoho_desk_cdc::zoho::module::Module;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_fences_the_first_and_nothing_is_committed_twice() {
    let sim = Simulator::start(common::crash_sim_config(12_000), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("fence").replace('-', "_");
    let (w1, a1, w2, a2) =
        (common::free_port(), common::free_port(), common::free_port(), common::free_port());
    let config1 =
        common::bridge_config_with(dir.path(), &base, &prefix, "", w1, a1).to_str().unwrap().to_owned();
    common::auth(&base, &config1).await;
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("main.credentials.json"), dir2.path().join("main.credentials.json"))
        .unwrap();
    let config2 =
        common::bridge_config_with(dir2.path(), &base, &prefix, "", w2, a2).to_str().unwrap().to_owned();

    let mut first = common::Bridge::start(&["run", "--config", &config1]);
    common::wait_ready(&format!("http://127.0.0.1:{a1}")).await;
    // The service URL listens once the first's producers hold their transactional ids; a second started
    // before that could be fenced by the first instead (a broker that just started is slow to answer).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while tokio::net::TcpStream::connect(("127.0.0.1", w1)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the first instance's service URL never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut second = common::Bridge::start(&["run", "--config", &config2]);
    common::wait_ready(&format!("http://127.0.0.1:{a2}")).await;
    // The first instance learns it was fenced at its next commit (or heartbeat) and stops with an error.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (rc, err) = loop {
        if let Some(done) = first.exited() {
            break done;
        }
        if let Some((rc, err)) = second.exited() {
            panic!("the second instance exited ({rc}) before fencing the first:\n{}", common::tail(&err, 30));
        }
        assert!(std::time::Instant::now() < deadline, "the first instance was not fenced within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(rc, 0, "the fenced instance kept running");
    assert!(err.contains("another instance"), "no fencing message:\n{}", common::tail(&err, 20));
    let admin2 = format!("http://127.0.0.1:{a2}");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !common::snapshot_done(&admin2).await {
        assert!(std::time::Instant::now() < deadline, "the second instance did not finish the snapshot");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (rc, err) = second.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics(&base, &prefix, &modules).await;
    eprintln!("{out}");
    assert!(ok, "fencing let something be committed twice or lost");
    sim.stop().await.unwrap();
}
