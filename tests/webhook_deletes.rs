//! Deletes both ways: Desk's `*_Delete` event and the update that sets `isDeleted`/`isTrashed` (the form
//! TapData's docs describe) each become `op = d` followed by a tombstone, so compacted topics forget the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};
use zoho_desk_cdc::sim::{DeleteStyle, SimConfig, Simulator};

/// (key id, Some(op) or None for a tombstone), in topic order per partition.
fn read_ops(topic: &str, schema: &apache_avro::Schema) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("group.id", common::unique("deletes"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let (mut eofs, deadline) = (0, Instant::now() + Duration::from_secs(60));
    while eofs < 3 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let key = m.key().unwrap();
                let id = String::from_utf8_lossy(&key[6..]).into_owned();
                let op = m.payload().map(|v| {
                    let value = GenericDatumReader::builder(schema)
                        .build()
                        .unwrap()
                        .read_value(&mut &v[5..])
                        .unwrap();
                    let Value::Record(fields) = value else { panic!("not a record") };
                    match fields.into_iter().find(|(n, _)| n == "op").unwrap().1 {
                        Value::String(s) => s,
                        other => panic!("op {other:?}"),
                    }
                });
                out.push((id, op));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
            _ => {}
        }
    }
    out
}

async fn deletes_become_d_and_tombstone(style: DeleteStyle) {
    let sim = Simulator::start(SimConfig { delete_style: style, ..SimConfig::default() }, "127.0.0.1:0")
        .await
        .unwrap();
    let base = sim.base_url();
    let common::TicketStream { dir: _dir, prefix, config: _, bridge } =
        common::start_ticket_stream(&base, "del").await;
    let http = reqwest::Client::new();
    // Wait until Desk has validated and stored the subscription, then delete three tickets.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ids: Vec<String> = loop {
        let stats: serde_json::Value =
            http.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
        if stats["webhooks"].as_u64().unwrap_or(0) >= 1 {
            let r: serde_json::Value = http
                .post(format!("{base}/_sim/mutations"))
                .json(&serde_json::json!({"module": "tickets", "op": "delete", "count": 3}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            break r["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        }
        assert!(Instant::now() < deadline, "the bridge never registered its webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Deliveries are batched for a moment; wait until they are answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats: serde_json::Value =
            http.get(format!("{base}/_sim/stats")).send().await.unwrap().json().await.unwrap();
        if stats["webhook_deliveries"]["ok"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery reached the bridge: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));

    let topic = format!("{prefix}.60000000001.tickets");
    // One schema version per subject in this test: the latest is the writer schema of every value.
    let latest: serde_json::Value = http
        .get(format!("{}/subjects/{topic}-value/versions/latest", common::registry_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = apache_avro::Schema::parse_str(latest["schema"].as_str().unwrap()).unwrap();
    let ops = tokio::task::spawn_blocking(move || read_ops(&topic, &schema)).await.unwrap();
    for id in &ids {
        let seq: Vec<Option<String>> =
            ops.iter().filter(|(k, _)| k == id).map(|(_, op)| op.clone()).collect();
        assert!(!seq.is_empty(), "{style:?}: nothing for deleted ticket {id}");
        assert_eq!(seq.last(), Some(&None), "{style:?}: {id} does not end with a tombstone: {seq:?}");
        let d = seq.iter().position(|op| op.as_deref() == Some("d"));
        assert!(
            d.is_some_and(|i| seq.get(i + 1) == Some(&None)),
            "{style:?}: {id}: no d followed by a tombstone: {seq:?}"
        );
    }
    sim.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_events_become_d_and_tombstone() {
    deletes_become_d_and_tombstone(DeleteStyle::Delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_deleted_updates_become_d_and_tombstone() {
    deletes_become_d_and_tombstone(DeleteStyle::Update).await;
}
