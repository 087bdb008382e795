//! Webhook floods beyond capacity: the service URL sheds load with 503 before reading a body once the
//! in-flight budget (`http.webhook_max_inflight_mib`) is spent, never crashes, keeps its memory bounded, and
//! every delivery it answered 200 is in Kafka.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zoho_desk_cdc::sim::{SimConfig, Simulator};

/// Peak resident memory of the bridge the flood may reach (the bound for the whole process).
const RSS_LIMIT_KIB: u64 = 150 * 1024;

struct Env {
    _sim: zoho_desk_cdc::sim::SimHandle,
    _dir: tempfile::TempDir,
    bridge: common::Bridge,
    url: String,
    admin: String,
    prefix: String,
}

/// A bridge that takes tickets from webhooks only, with a 5 MiB in-flight budget (the smallest allowed: one
/// body of unknown length fills it).
async fn start() -> Env {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("flood").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config = common::bridge_config_with(
        dir.path(),
        &base,
        &prefix,
        "snapshot_mode = \"never\"\nverify_jwt = false\nmodules = [\"tickets\"]",
        wport,
        aport,
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[[sources]]", "webhook_max_inflight_mib = 5\n\n[[sources]]");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("main.credentials.json")).unwrap())
            .unwrap();
    let url =
        format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{}", creds["webhook_secret"].as_str().unwrap());
    let bridge = common::Bridge::start(&["run", "--config", &config]);
    let admin = format!("http://127.0.0.1:{aport}");
    assert!(common::wait_http_ok(&url, Duration::from_secs(90)).await, "service URL never came up");
    assert!(common::wait_http_ok(&format!("{admin}/readyz"), Duration::from_secs(60)).await, "never ready");
    Env { _sim: sim, _dir: dir, bridge, url, admin, prefix }
}

/// A Desk-format delivery adding the tickets `ids`.
fn delivery(ids: &[u64]) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"eventType": "Ticket_Add", "orgId": "60000000001", "eventTime": now,
                "payload": {"id": id.to_string(), "subject": "Printer on the third floor does not print",
                            "status": "Open", "channel": "Email", "email": "carol@example.com",
                            "description": "x".repeat(2_000),
                            "createdTime": "2026-01-01T00:00:00.000Z", "modifiedTime": "2026-01-01T00:00:00.000Z"}})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// The value of an unlabelled gauge, or of the sum of a labelled counter's series, on /metrics.
async fn metric(admin: &str, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{admin}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_length_fills_the_budget_and_the_next_delivery_gets_503() {
    let env = start().await;
    let ids = [1_892_000_000_100_001u64];
    let body = delivery(&ids);
    let url = reqwest::Url::parse(&env.url).unwrap();

    // A chunked upload with no Content-Length claims the whole 5 MiB budget while its body trickles in.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", url.port().unwrap())).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        url.path()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    slow.write_all(format!("{:x}\r\n", first.len()).as_bytes()).await.unwrap();
    slow.write_all(first).await.unwrap();
    slow.write_all(b"\r\n").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(&env.admin, "zoho_desk_cdc_webhook_inflight_bytes", "").await < (5 * 1024 * 1024) as f64 {
        assert!(std::time::Instant::now() < deadline, "the open upload never claimed the budget");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let refused = http.post(&env.url).body(delivery(&[1_892_000_000_100_002])).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.text().await.unwrap().contains("retry later"));
    assert!(metric(&env.admin, "zoho_desk_cdc_webhook_requests_total", "status=\"503\"").await >= 1.0);

    // Finishing the upload commits it and frees the budget.
    slow.write_all(format!("{:x}\r\n", rest.len()).as_bytes()).await.unwrap();
    slow.write_all(rest).await.unwrap();
    slow.write_all(b"\r\n0\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let again = http.post(&env.url).body(delivery(&[1_892_000_000_100_003])).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(metric(&env.admin, "zoho_desk_cdc_webhook_inflight_bytes", "").await, 0.0);

    let (rc, err) = env.bridge.terminate(Duration::from_secs(60));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    let topic = format!("{}.60000000001.tickets", env.prefix);
    let ids_in_kafka = common::topic_ids(&common::bootstrap(), &topic, 3).await;
    let expected: HashSet<String> =
        [1_892_000_000_100_001u64, 1_892_000_000_100_003].iter().map(u64::to_string).collect();
    let out = expected.intersection(&ids_in_kafka).count();
    eprintln!("CHAOS scenario=webhook_budget in={} out={out} lost={}", expected.len(), expected.len() - out);
    assert_eq!(ids_in_kafka, expected, "exactly the two deliveries answered 200 are in Kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_200_or_503_only_and_every_200_is_in_kafka() {
    let env = start().await;
    const CLIENTS: u64 = 96;
    const ROUNDS: u64 = 6;
    const BATCH: u64 = 25; // about 60 KiB a delivery: 96 at once need more than the 5 MiB budget
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url) = (http.clone(), env.url.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    let first = 1_892_000_001_000_000 + (client * ROUNDS + round) * BATCH;
                    let ids: Vec<u64> = (first..first + BATCH).collect();
                    let status = http.post(&url).body(delivery(&ids)).send().await.unwrap().status().as_u16();
                    outcomes.push((status, ids));
                }
                outcomes
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    let (mut ok, mut shed) = (0, 0);
    for task in tasks {
        for (status, ids) in task.await.unwrap() {
            match status {
                200 => {
                    ok += 1;
                    acknowledged.extend(ids.iter().map(u64::to_string));
                }
                503 => shed += 1,
                other => panic!("a flooded delivery got {other}; only 200 or 503 are allowed"),
            }
        }
    }
    println!("flood: {ok} deliveries answered 200, {shed} answered 503");
    assert!(ok > 0, "nothing got through the flood");
    let rss = peak_rss_kib(env.bridge.pid());
    println!("flood: bridge peak RSS {} MiB", rss / 1024);
    assert!(rss < RSS_LIMIT_KIB, "bridge peak RSS {rss} KiB is past {RSS_LIMIT_KIB} KiB");
    assert_eq!(metric(&env.admin, "zoho_desk_cdc_webhook_inflight_bytes", "").await, 0.0);

    let (rc, err) = env.bridge.terminate(Duration::from_secs(60));
    assert_eq!(rc, 0, "the bridge did not survive the flood cleanly: {}", common::tail(&err, 20));
    let topic = format!("{}.60000000001.tickets", env.prefix);
    let in_kafka = common::topic_ids(&common::bootstrap(), &topic, 3).await;
    let out = acknowledged.intersection(&in_kafka).count();
    eprintln!(
        "CHAOS scenario=webhook_flood in={} out={out} lost={}",
        acknowledged.len(),
        acknowledged.len() - out
    );
    let missing: Vec<_> = acknowledged.difference(&in_kafka).take(5).collect();
    assert!(missing.is_empty(), "answered 200 but not in Kafka: {missing:?}");
}
