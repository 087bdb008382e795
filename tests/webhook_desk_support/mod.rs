//! Helpers for the Desk-side webhook tests: an in-process simulator, an authorized source `main` pointing
//! at it, and a small receiver on 127.0.0.1 that answers Desk's validation GET and records every POST.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zoho_desk_cdc::config::Settings;
use zoho_desk_cdc::secret::Secret;
use zoho_desk_cdc::sim::{SimConfig, SimHandle, Simulator};
use zoho_desk_cdc::zoho::auth::exchange_grant_code;
use zoho_desk_cdc::zoho::client::{ClientOptions, DeskClient};
use zoho_desk_cdc::zoho::registry::DeskRegistry;

pub const ORG: &str = "60000000001";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Bytes,
    pub jwt: Option<String>,
}

#[derive(Clone, Default)]
struct Log {
    posts: Arc<Mutex<Vec<Received>>>,
    gets: Arc<Mutex<u32>>,
}

/// A stand-in for the bridge's webhook server.
pub struct Receiver {
    pub base: String,
    log: Log,
    stop: CancellationToken,
}

impl Receiver {
    pub async fn start() -> Self {
        let log = Log::default();
        let app = Router::new()
            .route("/webhooks/zoho/{source}/{secret}", get(validate).post(collect))
            .route("/cliq", post(collect))
            .with_state(log.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await
        });
        Self { base, log, stop }
    }

    pub fn service_url(&self, secret: &str) -> Secret {
        Secret::new(format!("{}/webhooks/zoho/main/{secret}", self.base))
    }

    pub fn validation_gets(&self) -> u32 {
        *self.log.gets.lock().unwrap()
    }

    pub fn posts(&self) -> Vec<Received> {
        self.log.posts.lock().unwrap().clone()
    }

    /// Waits (bounded) until the POSTs to paths starting with `prefix` hold `n` JSON elements in all
    /// (array elements, or one per object).
    pub async fn wait_for(&self, prefix: &str, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Received> =
                self.posts().into_iter().filter(|r| r.path.starts_with(prefix)).collect();
            let count: usize = got
                .iter()
                .map(|r| match serde_json::from_slice::<Value>(&r.body) {
                    Ok(Value::Array(a)) => a.len(),
                    Ok(_) => 1,
                    Err(_) => 0,
                })
                .sum();
            if count >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {count} of {n} elements arrived: {got:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn clear(&self) {
        self.log.posts.lock().unwrap().clear();
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

async fn validate(State(log): State<Log>) -> StatusCode {
    *log.gets.lock().unwrap() += 1;
    StatusCode::OK
}

async fn collect(
    State(log): State<Log>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let jwt = headers.get("x-zdesk-jwt").and_then(|v| v.to_str().ok()).map(str::to_owned);
    log.posts.lock().unwrap().push(Received { path: uri.path().to_owned(), body, jwt });
    StatusCode::OK
}

pub struct Env {
    pub sim: SimHandle,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    pub client: DeskClient,
}

fn settings_for(dir: &std::path::Path, base: &str, cfg: &SimConfig) -> Settings {
    let text = format!(
        r#"
[http]
public_url = "http://127.0.0.1:8080"
[[sources]]
name = "main"
org_id = "{org}"
client_id = "{cid}"
client_secret = "{secret}"
credentials_file = "{creds}"
accounts_url = "{base}"
desk_url = "{base}"
[sources.quota]
requests_per_minute = 60000
max_concurrency = 10
daily_credits = 1000000
"#,
        org = cfg.org_id,
        cid = cfg.client_id,
        secret = cfg.client_secret,
        creds = dir.join("state/main.credentials.json").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(&path).unwrap()
}

/// A simulator plus an authorized Desk client of source `main`.
pub async fn start(cfg: SimConfig) -> Env {
    let sim = Simulator::start(cfg.clone(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), &base, &cfg);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let v: Value = http
        .post(format!("{base}/_sim/grant-codes"))
        .json(&json!({"ttl_s": 120}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    exchange_grant_code(&settings, "main", v["code"].as_str().unwrap()).await.unwrap();
    let opts = ClientOptions {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let client = DeskRegistry::new(opts).client(&settings.sources[0]).unwrap();
    Env { sim, base, http, dir, settings, client }
}

impl Env {
    /// `POST /_sim/mutations`; returns the ids changed.
    pub async fn mutate(&self, module: &str, op: &str, count: usize) -> Vec<String> {
        let r = self
            .http
            .post(format!("{}/_sim/mutations", self.base))
            .json(&json!({"module": module, "op": op, "count": count}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{module} {op}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect()
    }

    /// The live record of `module` with `id`, as the detail endpoint shows it.
    pub async fn state_of(&self, module: &str, id: &str) -> Option<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/state/{module}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().iter().find(|r| r["id"] == id).cloned()
    }

    /// The org's webhooks as `GET /api/v1/webhooks` lists them.
    pub async fn webhook_count(&self) -> usize {
        zoho_desk_cdc::zoho::subscription::list(&self.client).await.unwrap().len()
    }
}
