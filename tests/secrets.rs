//! Secrets never reach the logs, `/status` or `/metrics` (issue 10, security): a bridge logging at
//! `debug` goes through auth, a snapshot, signed and forged webhook deliveries, a wrong service-URL secret,
//! revoked access tokens (so it refreshes) and a workflow notification (so it calls Desk with the new
//! token); then every captured line and page is searched for the client secret, the refresh token, every
//! access token it held, and the webhook secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use std::time::Duration;
use zoho_desk_cdc::sim::Simulator;

const ORG: &str = "60000000001";
const CLIENT_SECRET: &str = "simsecret0000000000000000000000000000000000";

fn credentials(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_status_or_metrics() {
    let sim = Simulator::start(common::crash_sim_config(300), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("secrets").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config = common::bridge_config_with(
        dir.path(),
        &base,
        &prefix,
        "modules = [\"departments\", \"tickets\"]",
        wport,
        aport,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(CLIENT_SECRET), "the test's config must carry the client secret it looks for");
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let creds_path = dir.path().join("creds.json");
    let creds_path = if creds_path.exists() {
        creds_path
    } else {
        // Whatever name bridge_config_with gave it: the only JSON file auth wrote.
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .unwrap()
    };
    let first = credentials(&creds_path);
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let webhook_secret = first["webhook_secret"].as_str().unwrap().to_owned();
    let mut access: Vec<String> =
        first["access_token"]["token"].as_str().map(str::to_owned).into_iter().collect();

    let bridge = common::Bridge::start_logging(&["run", "--config", &config], "debug");
    let admin = format!("http://127.0.0.1:{aport}");
    common::wait_ready(&admin).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let streaming = || async {
        let s: Value =
            reqwest::get(format!("{admin}/status")).await.unwrap().json().await.unwrap_or_default();
        s["sources"][0]["modules"]
            .as_object()
            .is_some_and(|m| m.len() == 2 && m.values().all(|v| v["phase"] == "streaming"))
    };
    while !streaming().await {
        assert!(std::time::Instant::now() < deadline, "snapshot did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let http = reqwest::Client::new();
    let service = format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{webhook_secret}");
    let now = chrono::Utc::now().timestamp();
    let good = sim.sim.signer.token(ORG.parse().unwrap(), "1", now).unwrap();
    let delivery = json!([{"eventType": "Ticket_Add", "orgId": ORG, "eventTime": (now * 1000).to_string(),
        "payload": {"id": "1892999999000001", "subject": "s", "modifiedTime": "2026-01-01T00:00:00.000Z"}}])
    .to_string();
    let post = |url: String, jwt: Option<String>, body: String| {
        let http = http.clone();
        async move {
            let mut req = http.post(url).body(body);
            if let Some(j) = jwt {
                req = req.header("X-ZDesk-JWT", j);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(post(service.clone(), Some(good.clone()), delivery.clone()).await, 200);
    assert_eq!(post(service.clone(), Some(format!("{good}x")), delivery.clone()).await, 401);
    assert_eq!(post(service.clone(), None, delivery.clone()).await, 401);
    let wrong = format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{webhook_secret}0");
    assert_eq!(post(wrong, Some(good.clone()), delivery.clone()).await, 404);

    // Revoke the access tokens, then make the bridge call Desk: a workflow notification names a record.
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "revoke_tokens", "ratio": 1.0, "duration_s": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let state: Value =
        http.get(format!("{base}/_sim/state/tickets")).send().await.unwrap().json().await.unwrap();
    let id = state[0]["id"].as_str().unwrap();
    let note = json!({"text": format!("Ticket updated zoho-desk-cdc module=tickets id={id}")}).to_string();
    assert_eq!(post(service.clone(), None, note).await, 200);

    let status = http.get(format!("{admin}/status")).send().await.unwrap().text().await.unwrap();
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let (rc, logs) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&logs, 20));
    access.extend(credentials(&creds_path)["access_token"]["token"].as_str().map(str::to_owned));
    access.dedup();
    assert!(access.len() >= 2, "the bridge never refreshed its access token");
    assert!(logs.lines().count() > 20, "too few log lines to mean anything:\n{logs}");

    let mut secrets = vec![("client secret", CLIENT_SECRET.to_owned()), ("refresh token", refresh)];
    secrets.push(("webhook secret", webhook_secret));
    secrets.extend(access.into_iter().map(|t| ("access token", t)));
    for (what, value) in &secrets {
        assert!(value.len() >= 16, "{what} too short to search for");
        for (place, text) in [("logs", &logs), ("/status", &status), ("/metrics", &metrics)] {
            assert!(!text.contains(value.as_str()), "the {what} appears in {place}");
        }
    }
    eprintln!(
        "searched {} log lines, /status and /metrics for {} secrets",
        logs.lines().count(),
        secrets.len()
    );
    sim.stop().await.unwrap();
}

/// librdkafka echoes a rejected property's value ("... sasl.pasword hunter2"): neither `check` nor `run`
/// may print it, and `run` reports the key as a configuration error (exit 2).
#[test]
fn a_rejected_kafka_property_is_named_without_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
properties = { "sasl.pasword" = "hunter2-KAFKA-SECRET" }
[[sources]]
name = "main"
org_id = "60000000001"
client_id = "1000.ABC"
client_secret = "x"
credentials_file = "none.json"
"#,
    )
    .unwrap();
    for (command, want) in [("check", 1), ("run", 2)] {
        let out = std::process::Command::new(common::bridge_bin())
            .args([command, "--config", path.to_str().unwrap()])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!text.contains("hunter2"), "{command}: {text}");
        assert!(text.contains("kafka.properties.sasl.pasword"), "{command}: {text}");
        assert_eq!(out.status.code(), Some(want), "{command}: {text}");
    }
}
