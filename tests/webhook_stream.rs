//! The webhook stream end to end: the bridge registers its service URL with the simulator, a workload of
//! mixed mutations runs during the snapshot, and at the end the compacted view of every topic equals
//! Desk's state. Forged and malformed requests are refused, counted, and produce nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::{SimConfig, Simulator};
use zoho_desk_cdc::zoho::module::Module;

/// Waits until the bridge's /status shows every module streaming (snapshot committed).
async fn wait_snapshot_done(admin: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = reqwest::get(format!("{admin}/status")).await {
            let s: serde_json::Value = r.json().await.unwrap_or_default();
            let modules = &s["sources"][0]["modules"];
            if let Some(m) = modules.as_object() {
                if m.len() >= 13 && m.values().all(|v| v["phase"] == "streaming") {
                    return;
                }
            }
        }
        assert!(std::time::Instant::now() < deadline, "snapshot did not finish within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the simulator's delivery counters stop moving.
async fn wait_deliveries_settle(base: &str) {
    let mut last = serde_json::Value::Null;
    let mut stable = 0;
    for _ in 0..200 {
        let s = common::sim_stats(base).await["webhook_deliveries"].clone();
        if s == last {
            stable += 1;
            if stable >= 8 {
                return;
            }
        } else {
            stable = 0;
            last = s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_during_snapshot_converges_to_desk_state() {
    let cfg = SimConfig { scale: zoho_desk_cdc::sim::data::Scale::standard(), ..SimConfig::default() };
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("wh").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config =
        common::bridge_config_with(dir.path(), &base, &prefix, "register_webhook = true", wport, aport);
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    let admin = format!("http://127.0.0.1:{aport}");
    assert!(
        common::wait_http_ok(&format!("{admin}/healthz"), Duration::from_secs(60)).await,
        "bridge did not start"
    );
    // The subscription exists once Desk has validated the service URL.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (rc, out, _) = tokio::task::spawn_blocking({
            let c = config.clone();
            move || {
                common::run_bridge(
                    &["webhooks", "list", "--config", &c, "--source", "main"],
                    Duration::from_secs(30),
                )
            }
        })
        .await
        .unwrap();
        if rc == 0 && out.contains("ours") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the bridge never registered its webhook");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let workload = serde_json::json!({
        "rate_per_s": 200.0, "duration_s": 10.0,
        "modules": ["tickets", "contacts", "accounts", "tasks", "agents"],
        "mix": {"create": 0.3, "update": 0.55, "delete": 0.15}
    });
    let r =
        reqwest::Client::new().post(format!("{base}/_sim/workload")).json(&workload).send().await.unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    tokio::time::sleep(Duration::from_secs(11)).await;
    wait_snapshot_done(&admin, Duration::from_secs(300)).await;
    wait_deliveries_settle(&base).await;
    let st = common::sim_stats(&base).await;
    eprintln!("simulator stats: {st}");
    assert_eq!(st["webhook_deliveries"]["failed"], 0, "every delivery must be answered 200");

    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "bridge did not stop cleanly:\n{}", common::tail(&err, 30));

    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics(&base, &prefix, &modules).await;
    eprintln!("{out}");
    assert!(ok, "topics differ from Desk's state");
    sim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_counted_and_produce_nothing() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("bad").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config =
        common::bridge_config_with(dir.path(), &base, &prefix, "snapshot_mode = \"never\"", wport, aport);
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("main.credentials.json")).unwrap())
            .unwrap();
    let secret = creds["webhook_secret"].as_str().unwrap().to_owned();

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    let admin = format!("http://127.0.0.1:{aport}");
    assert!(common::wait_http_ok(&format!("{admin}/healthz"), Duration::from_secs(60)).await);
    let url = format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{secret}");
    assert!(common::wait_http_ok(&url, Duration::from_secs(60)).await, "service URL never answered GET");
    let http = reqwest::Client::new();
    let event = |org: &str| {
        serde_json::json!([{"eventType": "Ticket_Update", "orgId": org, "eventTime": "1767225600000",
            "payload": {"id": "1892000000042001", "subject": "x", "modifiedTime": "2026-01-01T00:00:00.000Z"}}])
        .to_string()
    };
    let cases: Vec<(&str, String, String, Option<&str>, u16)> = vec![
        (
            "wrong secret",
            format!("http://127.0.0.1:{wport}/webhooks/zoho/main/not-the-secret"),
            event("60000000001"),
            None,
            404,
        ),
        (
            "unknown source",
            format!("http://127.0.0.1:{wport}/webhooks/zoho/other/{secret}"),
            event("60000000001"),
            None,
            404,
        ),
        ("invalid JSON", url.clone(), "{not json".into(), None, 400),
        ("10 MiB body", url.clone(), "x".repeat(10 * 1024 * 1024), None, 413),
        ("missing JWT", url.clone(), event("60000000001"), None, 401),
        (
            "forged JWT",
            url.clone(),
            event("60000000001"),
            Some(
                "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJpc3MiOiJvcmdJZDo2MDAwMDAwMDAwMSJ9.c2lnbmF0dXJl",
            ),
            401,
        ),
        ("another org", url.clone(), event("70000000009"), None, 401),
    ];
    for (name, target, body, jwt, want) in &cases {
        let mut req = http.post(target).header("content-type", "application/json").body(body.clone());
        if let Some(j) = jwt {
            req = req.header("X-ZDesk-JWT", *j);
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert_eq!(status, *want, "{name}");
    }
    // Still serving, and every refusal counted.
    assert!(common::wait_http_ok(&url, Duration::from_secs(5)).await);
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    for code in ["404", "400", "413", "401"] {
        assert!(
            metrics.lines().any(|l| l.starts_with("zoho_desk_cdc_webhook_requests_total")
                && l.contains(&format!("status=\"{code}\""))),
            "no webhook_requests_total for {code}:\n{metrics}"
        );
    }
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));

    // Nothing reached the tickets topic.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", common::bootstrap()).create().unwrap();
    let topic = format!("{prefix}.60000000001.tickets");
    for p in 0..3 {
        let (_, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap();
        assert_eq!(high, 0, "partition {p} of {topic} has records");
    }
    sim.stop().await.unwrap();
}
