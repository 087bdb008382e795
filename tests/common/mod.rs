//! Shared helpers for integration tests: where the real broker and registry are, and unique names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

pub mod broker;

/// The broker `make test` starts (override with ZDC_TEST_BOOTSTRAP).
pub fn bootstrap() -> String {
    std::env::var("ZDC_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The registry's Confluent-compatible base URL (override with ZDC_TEST_REGISTRY).
pub fn registry_url() -> String {
    std::env::var("ZDC_TEST_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// A name no other test run has used, so tests never see each other's topics.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// The bridge binary cargo built for this test run.
pub fn bridge_bin() -> &'static str {
    env!("CARGO_BIN_EXE_zoho-desk-cdc")
}

/// The Python interpreter of `.cache/venv` (made by `make test`), for the confluent-kafka cross-check.
pub fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".cache/venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run `make test` (it creates the venv from tests/py/requirements.txt)",
        py.display()
    );
    py
}

/// A bridge config for one source against a simulator at `sim_base`.
pub fn bridge_config(
    dir: &std::path::Path,
    sim_base: &str,
    prefix: &str,
    extra_source: &str,
) -> std::path::PathBuf {
    bridge_config_with(dir, sim_base, prefix, extra_source, 0, 0)
}

/// As [`bridge_config`], with fixed webhook and admin ports (0 = any).
pub fn bridge_config_with(
    dir: &std::path::Path,
    sim_base: &str,
    prefix: &str,
    extra_source: &str,
    webhook_port: u16,
    admin_port: u16,
) -> std::path::PathBuf {
    let text = format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
partitions = 3
replication_factor = 1

[schema_registry]
url = "{registry}"

[http]
webhook_listen = "127.0.0.1:{webhook_port}"
admin_listen = "127.0.0.1:{admin_port}"
public_url = "http://127.0.0.1:{webhook_port}"

[[sources]]
name = "main"
org_id = "60000000001"
client_id = "1000.SIMCLIENT000000000000000000000"
client_secret = "simsecret0000000000000000000000000000000000"
credentials_file = "{creds}"
accounts_url = "{sim_base}"
desk_url = "{sim_base}"
{extra_source}

[sources.quota]
requests_per_minute = 60000
max_concurrency = 10
daily_credits = 1000000
"#,
        bootstrap = bootstrap(),
        registry = registry_url(),
        creds = dir.join("main.credentials.json").display(),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a bridge subcommand to completion (bounded) and returns (exit code, stdout, stderr).
pub fn run_bridge(args: &[&str], timeout: std::time::Duration) -> (i32, String, String) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bridge_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap();
            panic!("bridge {args:?} did not finish within {timeout:?}\nstderr tail:\n{}", tail(&err, 40));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    (code, out.join().unwrap(), err.join().unwrap())
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A long-running `zoho-desk-cdc run` child process.
pub struct Bridge {
    child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Bridge {
    pub fn start(args: &[&str]) -> Self {
        Self::start_logging(args, "info")
    }

    /// Like [`Bridge::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(args: &[&str], filter: &str) -> Self {
        use std::io::Read;
        use std::process::{Command, Stdio};
        let mut child = Command::new(bridge_bin())
            .args(args)
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self { child, stderr: Some(stderr) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (to our own child, by pid) and waits up to `timeout`; returns (exit code, stderr).
    pub fn terminate(mut self, timeout: std::time::Duration) -> (i32, String) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.wait(timeout)
    }

    /// Kills the child with SIGKILL (a crash).
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default()
    }

    /// The exit code and stderr if the child has exited, without waiting.
    pub fn exited(&mut self) -> Option<(i32, String)> {
        let status = self.child.try_wait().ok().flatten()?;
        Some((status.code().unwrap_or(-1), self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default()))
    }

    pub fn wait(&mut self, timeout: std::time::Duration) -> (i32, String) {
        let deadline = std::time::Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
                panic!("bridge did not exit within {timeout:?}\n{}", tail(&err, 40));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        (code, self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `url` until it answers 2xx or `timeout` passes.
pub async fn wait_http_ok(url: &str, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let http = reqwest::Client::new();
    while std::time::Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Runs tests/py/verify_topics.py and returns (success, stdout).
pub async fn verify_topics(sim_base: &str, prefix: &str, modules: &[&str]) -> (bool, String) {
    verify_topics_with(sim_base, prefix, modules, &[]).await
}

/// As [`verify_topics`], with extra flags (`--allow-duplicate-reads` after a re-load).
pub async fn verify_topics_with(
    sim_base: &str,
    prefix: &str,
    modules: &[&str],
    flags: &[&str],
) -> (bool, String) {
    let py = python();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/verify_topics.py");
    let mut args = vec![
        script.to_owned(),
        "--bootstrap".into(),
        bootstrap(),
        "--registry".into(),
        registry_url(),
        "--sim".into(),
        sim_base.to_owned(),
        "--prefix".into(),
        prefix.to_owned(),
        "--org".into(),
        "60000000001".into(),
    ];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args.extend(modules.iter().map(|m| (*m).to_owned()));
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new(py).args(&args).output().unwrap())
            .await
            .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// One source authorised against the simulator at `sim_base`: its directory (config and credentials), topic
/// prefix (unique, from `tag`), config path and admin URL; the service URL on any free port.
pub struct AuthorizedSource {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub config: String,
    pub admin: String,
}

pub async fn authorized_source(sim_base: &str, tag: &str) -> AuthorizedSource {
    authorized_source_with(sim_base, tag, "", 0).await
}

/// [`authorized_source`] with `extra` lines in its `[[sources]]` entry and the service URL on `webhook_port`
/// (0: a port the system picks, for a bridge that is sent no webhooks).
pub async fn authorized_source_with(
    sim_base: &str,
    tag: &str,
    extra: &str,
    webhook_port: u16,
) -> AuthorizedSource {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique(tag).replace('-', "_");
    let aport = free_port();
    let config = bridge_config_with(dir.path(), sim_base, &prefix, extra, webhook_port, aport)
        .to_str()
        .unwrap()
        .to_owned();
    auth(sim_base, &config).await;
    AuthorizedSource { dir, prefix, config, admin: format!("http://127.0.0.1:{aport}") }
}

/// Runs `run --snapshot-mode initial_only` to completion (bounded) and returns (exit code, stderr).
pub async fn run_initial_only(config: &str, timeout: std::time::Duration) -> (i32, String) {
    let config = config.to_owned();
    let (rc, _, err) = tokio::task::spawn_blocking(move || {
        run_bridge(&["run", "--config", &config, "--snapshot-mode", "initial_only"], timeout)
    })
    .await
    .unwrap();
    (rc, err)
}

/// The simulator's counters (`/_sim/stats`).
pub async fn sim_stats(sim_base: &str) -> serde_json::Value {
    reqwest::get(format!("{sim_base}/_sim/stats")).await.unwrap().json().await.unwrap()
}

/// A fresh grant code from the simulator's control API (default scopes).
pub async fn grant_code(sim_base: &str) -> String {
    let grant: serde_json::Value = reqwest::Client::new()
        .post(format!("{sim_base}/_sim/grant-codes"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    grant["code"].as_str().unwrap().to_owned()
}

/// Exchanges a fresh simulator grant code with `zoho-desk-cdc auth`.
pub async fn auth(sim_base: &str, config: &str) {
    let code = grant_code(sim_base).await;
    let config = config.to_owned();
    let (rc, out, err) = tokio::task::spawn_blocking(move || {
        run_bridge(
            &["auth", "--config", &config, "--source", "main", "--code", &code],
            std::time::Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert_eq!(rc, 0, "auth failed:\n{out}\n{err}");
}

/// A standard-scale simulator with `tickets` tickets that retries refused deliveries (the crash tests stop
/// the bridge on purpose).
pub fn crash_sim_config(tickets: u32) -> zoho_desk_cdc::sim::SimConfig {
    let mut scale = zoho_desk_cdc::sim::data::Scale::standard();
    scale.counts.insert(zoho_desk_cdc::sim::module::Module::Tickets, tickets);
    zoho_desk_cdc::sim::SimConfig {
        scale,
        webhook_failure: zoho_desk_cdc::sim::config::FailurePolicy::Retry(30),
        webhook_retry_delay: std::time::Duration::from_millis(500),
        ..zoho_desk_cdc::sim::SimConfig::default()
    }
}

/// Waits until the bridge's admin server answers.
pub async fn wait_ready(admin: &str) {
    assert!(
        wait_http_ok(&format!("{admin}/healthz"), std::time::Duration::from_secs(90)).await,
        "bridge did not start"
    );
}

/// Whether the bridge's /status shows every default module streaming (snapshot committed).
pub async fn snapshot_done(admin: &str) -> bool {
    let Ok(r) = reqwest::get(format!("{admin}/status")).await else { return false };
    let s: serde_json::Value = r.json().await.unwrap_or_default();
    s["sources"][0]["modules"]
        .as_object()
        .is_some_and(|m| m.len() >= 13 && m.values().all(|v| v["phase"] == "streaming"))
}

/// The record ids on `topic` (read_committed, from the start to the end of each of its `partitions`).
/// Keys are Avro `{id: string}` in the Confluent wire format: the id follows the 5-byte header and its
/// one-byte length.
pub async fn topic_ids(bootstrap: &str, topic: &str, partitions: usize) -> std::collections::HashSet<String> {
    topic_id_counts(bootstrap, topic, partitions).await.into_keys().collect()
}

/// Kafka's Java client hash of a key (`Utils.murmur2`, seed 0x9747b28c), written from its definition.
pub fn java_murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner gives a keyed record.
pub fn java_partition(key: &[u8], partitions: usize) -> i32 {
    ((java_murmur2(key) & 0x7fff_ffff) as usize % partitions) as i32
}

/// How many records with a value (tombstones not counted) each record id has on `topic` (read_committed,
/// from the start to the end of each of its `partitions`): a count above one is a duplicate. Every keyed
/// record must sit on the partition the Java client would have chosen for its key.
pub async fn topic_id_counts(
    bootstrap: &str,
    topic: &str,
    partitions: usize,
) -> std::collections::HashMap<String, usize> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique("count-check"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let mut counts = std::collections::HashMap::new();
        let mut eofs = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while eofs < partitions && std::time::Instant::now() < deadline {
            match consumer.poll(std::time::Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    if let Some(k) = m.key().filter(|k| k.len() > 6) {
                        assert_eq!(
                            m.partition(),
                            java_partition(k, partitions),
                            "a key not where Java puts it"
                        );
                        let n = counts.entry(String::from_utf8_lossy(&k[6..]).into_owned()).or_insert(0);
                        if m.payload().is_some() {
                            *n += 1;
                        }
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                _ => {}
            }
        }
        assert!(eofs >= partitions, "did not reach the end of {topic} within 60 s");
        counts
    })
    .await
    .unwrap()
}

/// A bridge streaming tickets only (no snapshot) from the simulator at a base URL, with its webhook
/// registered there, up and healthy. `dir` holds its config and credentials.
pub struct TicketStream {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub config: String,
    pub bridge: Bridge,
}

/// Starts a [`TicketStream`] against the simulator at `sim_base`, its topic prefix made unique from `tag`.
pub async fn start_ticket_stream(sim_base: &str, tag: &str) -> TicketStream {
    let extra = "snapshot_mode = \"never\"\nregister_webhook = true\nmodules = [\"tickets\"]";
    let AuthorizedSource { dir, prefix, config, admin } =
        authorized_source_with(sim_base, tag, extra, free_port()).await;
    let bridge = Bridge::start(&["run", "--config", &config]);
    let health = format!("{admin}/healthz");
    assert!(wait_http_ok(&health, std::time::Duration::from_secs(60)).await, "the bridge never came up");
    TicketStream { dir, prefix, config, bridge }
}
