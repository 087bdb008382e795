//! Proves the test stack is real: a topic on the broker, a schema in the registry, a Confluent-framed Avro
//! record produced inside a Kafka transaction and read back with `isolation.level=read_committed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use apache_avro::types::Value;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;

const SCHEMA: &str = r#"{"type":"record","name":"Probe","namespace":"zohodesk.test",
  "fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}"#;

#[tokio::test]
async fn transactional_avro_round_trip_through_real_broker_and_registry() {
    let topic = common::unique("stack");

    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", common::bootstrap()).create().unwrap();
    let res = admin
        .create_topics([&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res[0].is_ok(), "{res:?}");

    // Register the schema under TopicNameStrategy and get its id.
    let http = reqwest::Client::new();
    let resp = ok_json(
        http.post(format!("{}/subjects/{topic}-value/versions", common::registry_url()))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": SCHEMA }))
            .send()
            .await,
    )
    .await;
    let schema_id = u32::try_from(resp["id"].as_u64().expect("registry returned an id")).unwrap();

    // Confluent wire format: magic 0, big-endian schema id, Avro binary datum.
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let record = Value::Record(vec![("id".into(), Value::String("42".into())), ("n".into(), Value::Long(7))]);
    let mut payload = vec![0u8];
    payload.extend_from_slice(&schema_id.to_be_bytes());
    payload.extend(
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(record)
            .unwrap(),
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("transactional.id", common::unique("stack-tx"))
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(FutureRecord::to(&topic).key("42").payload(&payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    producer.commit_transaction(Duration::from_secs(30)).unwrap();

    // Read it back as a read_committed consumer and decode through the registry.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::bootstrap())
        .set("group.id", common::unique("stack-g"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        assert!(std::time::Instant::now() < deadline, "no committed record within 30 s");
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            break m.unwrap().detach();
        }
    };
    let bytes = message.payload().unwrap();
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    assert_eq!(id, schema_id);
    let fetched: serde_json::Value = http
        .get(format!("{}/schemas/ids/{id}", common::registry_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let writer = apache_avro::Schema::parse_str(fetched["schema"].as_str().unwrap()).unwrap();
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&writer).build().unwrap();
    let decoded = reader.read_value(&mut &bytes[5..]).unwrap();
    assert_eq!(
        decoded,
        Value::Record(vec![("id".into(), Value::String("42".into())), ("n".into(), Value::Long(7))])
    );
}

/// CONTRACT §3 writes the registry as `url = "http://127.0.0.1:8081"`. `make registry-up` serves the
/// Confluent API there at the root (scripts/registry_front.py) and under Apicurio's `/apis/ccompat/v7`, and
/// a bare Apicurio (its own port) serves it only under that path, which the client then finds. A URL with a
/// path, or a registry that does not answer, is left as given.
#[tokio::test]
async fn the_registry_url_as_the_contract_writes_it_reaches_the_confluent_api() {
    use zoho_desk_cdc::avro::registry::RegistryClient;
    let full = common::registry_url();
    let Some(root) = full.strip_suffix("/apis/ccompat/v7") else {
        eprintln!("ZDC_TEST_REGISTRY is not an Apicurio ccompat URL; nothing to discover");
        return;
    };
    let client = RegistryClient::discover(root).await.unwrap();
    let subject = format!("{}-value", common::unique("discover"));
    let id = client.register(&subject, SCHEMA).await.unwrap();
    for base in [root, full.as_str()] {
        let latest = ok_json(reqwest::get(format!("{base}/subjects/{subject}/versions/latest")).await).await;
        assert_eq!(latest["id"].as_u64(), Some(u64::from(id)), "{base}");
    }
    assert_eq!(RegistryClient::discover(&full).await.unwrap().base(), full);
    // Apicurio on its own port (REGISTRY_INTERNAL_PORT in scripts/services.sh): no Confluent API at its root.
    let apicurio =
        std::env::var("ZDC_TEST_REGISTRY_APICURIO").unwrap_or_else(|_| "http://127.0.0.1:18081".into());
    if reqwest::get(format!("{apicurio}/apis/ccompat/v7/subjects"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        let found = RegistryClient::discover(&format!("{apicurio}/")).await.unwrap();
        assert_eq!(found.base(), format!("{apicurio}/apis/ccompat/v7"));
    }
    let silent = "http://127.0.0.1:9";
    assert_eq!(RegistryClient::discover(silent).await.unwrap().base(), silent);
}

/// The JSON body of a successful answer.
async fn ok_json(sent: reqwest::Result<reqwest::Response>) -> serde_json::Value {
    sent.unwrap().error_for_status().unwrap().json().await.unwrap()
}

/// `common::java_murmur2` (the oracle the topic checks place keys by) against Kafka's
/// `UtilsTest.testMurmur2` vectors.
#[test]
fn the_key_hash_the_tests_check_placement_by_is_the_java_clients() {
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ] {
        assert_eq!(common::java_murmur2(key.as_bytes()), hash, "{key}");
    }
}
