//! Two bridges with the same config: the second fences the first (Kafka transactional ids), the first stops,
//! and nothing is committed twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::Simulator;
use zoho_desk_cdc::zoho::module::Module;

/// Waits until the service URL on `port` answers HTTP, which it does once the instance's producers hold their
/// transactional ids (its port is bound before that, so a connection alone says nothing).
async fn wait_serving(port: u16) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while client.get(format!("http://127.0.0.1:{port}/")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the first instance's service URL never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    // A second started before the first's producers hold their transactional ids could be fenced by the
    // first instead (a broker that just started is slow to answer).
    wait_serving(w1).await;
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

/// A second instance that cannot serve its service URL (the port taken, or a certificate that cannot be
/// read) stops before it starts a producer, so the running instance is not fenced by a failed start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_that_cannot_serve_does_not_fence_the_first() {
    let sim = Simulator::start(zoho_desk_cdc::sim::SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let prefix = common::unique("fence_start").replace('-', "_");
    let extra = "snapshot_mode = \"never\"\nmodules = [\"tickets\"]";
    let dir = tempfile::tempdir().unwrap();
    let (w1, a1) = (common::free_port(), common::free_port());
    let config1 =
        common::bridge_config_with(dir.path(), &base, &prefix, extra, w1, a1).to_str().unwrap().to_owned();
    common::auth(&base, &config1).await;
    let mut first = common::Bridge::start(&["run", "--config", &config1]);
    common::wait_ready(&format!("http://127.0.0.1:{a1}")).await;
    wait_serving(w1).await;

    // The same source with (a) the first's webhook port, (b) a certificate file that does not exist.
    let second = |webhook_port: u16, tls: bool| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            std::path::Path::new(&config1).with_file_name("main.credentials.json"),
            dir.path().join("main.credentials.json"),
        )
        .unwrap();
        let config =
            common::bridge_config_with(dir.path(), &base, &prefix, extra, webhook_port, common::free_port());
        if tls {
            let text = std::fs::read_to_string(&config).unwrap().replace(
                "[http]\n",
                &format!(
                    "[http]\ntls_cert = \"{0}/missing.crt\"\ntls_key = \"{0}/missing.key\"\n",
                    dir.path().display()
                ),
            );
            std::fs::write(&config, text).unwrap();
        }
        (dir, config.to_str().unwrap().to_owned())
    };
    let (_port_dir, port_taken) = second(w1, false);
    let (rc, _, err) = common::run_bridge(&["run", "--config", &port_taken], Duration::from_secs(60));
    assert_eq!(rc, 1, "{}", common::tail(&err, 20));
    assert!(err.contains("cannot listen on"), "{}", common::tail(&err, 20));
    let (_tls_dir, bad_tls) = second(common::free_port(), true);
    let (rc, _, err) = common::run_bridge(&["run", "--config", &bad_tls], Duration::from_secs(60));
    assert_eq!(rc, 2, "{}", common::tail(&err, 20));
    assert!(err.contains("http.tls_cert"), "{}", common::tail(&err, 20));

    // A fenced instance learns it at its next heartbeat (every 5 s) and exits; three beats pass here.
    tokio::time::sleep(Duration::from_secs(16)).await;
    if let Some((rc, err)) = first.exited() {
        panic!("the running instance stopped ({rc}):\n{}", common::tail(&err, 30));
    }
    let (rc, err) = first.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    assert!(!err.contains("another instance"), "{}", common::tail(&err, 20));
    sim.stop().await.unwrap();
}
