//! Shared helpers for integration tests: where the real broker and registry are, and unique names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

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
webhook_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:8080"

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
