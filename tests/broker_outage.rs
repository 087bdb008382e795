//! Kafka down: the service URL answers 503 within Desk's 5 s instead of acknowledging, the bridge keeps
//! serving, and after the broker is back every delivery that was answered 200 is in Kafka. Runs its own
//! broker (private ports and data directory) so stopping it disturbs no other test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};
use zoho_desk_cdc::sim::{SimConfig, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_get_503_while_kafka_is_down_and_nothing_acknowledged_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = common::broker::PrivateBroker::start(tmp.path().join("kafka")).await;
    let bootstrap = broker.bootstrap();

    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let prefix = common::unique("outage").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config = common::bridge_config_with(
        tmp.path(),
        &base,
        &prefix,
        "snapshot_mode = \"never\"\nverify_jwt = false\nmodules = [\"tickets\"]",
        wport,
        aport,
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(&common::bootstrap(), &bootstrap);
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("main.credentials.json")).unwrap())
            .unwrap();
    let url =
        format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{}", creds["webhook_secret"].as_str().unwrap());

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    assert!(common::wait_http_ok(&url, Duration::from_secs(90)).await, "service URL never came up");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut next_id = 1_892_000_000_000_001u64;
    let mut deliver = || {
        next_id += 1;
        let id = next_id.to_string();
        let body = serde_json::json!([{"eventType": "Ticket_Add", "orgId": "60000000001",
            "eventTime": chrono::Utc::now().timestamp_millis().to_string(),
            "payload": {"id": id, "subject": "outage test", "createdTime": "2026-01-01T00:00:00.000Z",
                        "modifiedTime": "2026-01-01T00:00:00.000Z"}}]);
        (id, http.post(&url).json(&body).send())
    };

    let readyz = format!("http://127.0.0.1:{aport}/readyz");
    assert!(wait_status(&readyz, 200, Duration::from_secs(60)).await, "/readyz never turned 200");
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        let (id, fut) = deliver();
        assert_eq!(fut.await.unwrap().status().as_u16(), 200, "delivery before the outage");
        acknowledged.push(id);
    }

    broker.down().await;
    for _ in 0..3 {
        let (id, fut) = deliver();
        let started = Instant::now();
        let status = fut.await.unwrap().status().as_u16();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "answered after {took:?}, past Desk's 5 s budget");
        assert_ne!(status, 200, "acknowledged delivery {id} while Kafka was down");
        assert_eq!(status, 503);
    }
    // Still serving, and not ready.
    assert!(common::wait_http_ok(&url, Duration::from_secs(5)).await);
    assert!(wait_status(&readyz, 503, Duration::from_secs(60)).await, "/readyz stayed ready without Kafka");

    broker.up().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut recovered = 0;
    while recovered < 5 {
        assert!(Instant::now() < deadline, "deliveries were not accepted again after the broker came back");
        let (id, fut) = deliver();
        if let Ok(r) = fut.await {
            if r.status().as_u16() == 200 {
                acknowledged.push(id);
                recovered += 1;
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(wait_status(&readyz, 200, Duration::from_secs(60)).await, "/readyz did not recover");
    let (rc, err) = bridge.terminate(Duration::from_secs(60));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));

    // Every acknowledged delivery is committed.
    let topic = format!("{prefix}.60000000001.tickets");
    let ids = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", common::unique("outage-check"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut keys = std::collections::HashSet::new();
        let mut eofs = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while eofs < 3 && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    keys.insert(m.key().map(|k| k.to_vec()).unwrap_or_default());
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                _ => {}
            }
        }
        keys
    })
    .await
    .unwrap();
    // Keys are Avro {id: string}: the id's bytes follow the 5-byte header and a length byte.
    let committed: std::collections::HashSet<String> =
        ids.iter().filter(|k| k.len() > 6).map(|k| String::from_utf8_lossy(&k[6..]).into_owned()).collect();
    let out = acknowledged.iter().filter(|id| committed.contains(*id)).count();
    eprintln!(
        "CHAOS scenario=broker_outage_webhooks in={} out={out} lost={}",
        acknowledged.len(),
        acknowledged.len() - out
    );
    for id in &acknowledged {
        assert!(committed.contains(id), "delivery {id} was answered 200 but is not in Kafka");
    }
    sim.stop().await.unwrap();
    drop(broker);
}

/// Polls `url` until it answers `status` or `timeout` passes.
async fn wait_status(url: &str, status: u16, timeout: Duration) -> bool {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            if r.status().as_u16() == status {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}
