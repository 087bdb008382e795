//! Helpers shared by the simulator's HTTP tests: start a simulator, get a token, call the API, and run
//! a recording webhook subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::Value;
use zoho_desk_cdc::sim::{SimConfig, SimHandle, Simulator};

pub struct Env {
    pub sim: SimHandle,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub refresh: String,
    pub org: String,
    pub client_id: String,
    pub client_secret: String,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// Starts a simulator on 127.0.0.1:0 and exchanges a grant code for tokens with `scopes`.
pub async fn start_with_scopes(cfg: SimConfig, scopes: Option<&str>) -> Env {
    let org = cfg.org_id.to_string();
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let http = client();
    let mut req = serde_json::json!({"ttl_s": 60});
    if let Some(s) = scopes {
        req["scopes"] = Value::String(s.to_owned());
    }
    let grant: Value =
        http.post(format!("{base}/_sim/grant-codes")).json(&req).send().await.unwrap().json().await.unwrap();
    let client_id = grant["client_id"].as_str().unwrap().to_owned();
    let client_secret = grant["client_secret"].as_str().unwrap().to_owned();
    let tok: Value = http
        .post(format!("{base}/oauth/v2/token"))
        .query(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
            ("code", grant["code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Env {
        sim,
        http,
        base,
        token: tok["access_token"].as_str().unwrap().to_owned(),
        refresh: tok["refresh_token"].as_str().unwrap().to_owned(),
        org,
        client_id,
        client_secret,
    }
}

pub async fn start(cfg: SimConfig) -> Env {
    start_with_scopes(cfg, None).await
}

impl Env {
    /// `GET /api/v1/{path}` with the token and orgId header.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/api/v1/{path}", self.base))
            .header("Authorization", format!("Zoho-oauthtoken {}", self.token))
            .header("orgId", &self.org)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, v)
    }

    pub fn authed(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1/{path}", self.base))
            .header("Authorization", format!("Zoho-oauthtoken {}", self.token))
            .header("orgId", &self.org)
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/_sim/{path}", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn state(&self, module: &str) -> Vec<Value> {
        self.http
            .get(format!("{}/_sim/state/{module}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sim/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// A fresh token pair for `scopes`.
    pub async fn token_for(&self, scopes: &str) -> String {
        let grant = self.control("grant-codes", serde_json::json!({"scopes": scopes})).await;
        let tok: Value = self
            .http
            .post(format!("{}/oauth/v2/token", self.base))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
                ("code", grant["code"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tok["access_token"].as_str().unwrap().to_owned()
    }
}

/// One request the subscriber saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub jwt: Option<String>,
    pub body: Value,
}

/// A local webhook receiver that records requests and answers with configurable statuses.
#[derive(Clone)]
pub struct Subscriber {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub get_status: Arc<AtomicU16>,
    pub post_status: Arc<AtomicU16>,
    pub post_delay_ms: Arc<AtomicU64>,
}

#[derive(Clone)]
struct SubState {
    seen: Arc<Mutex<Vec<Seen>>>,
    get_status: Arc<AtomicU16>,
    post_status: Arc<AtomicU16>,
    post_delay_ms: Arc<AtomicU64>,
}

async fn sub_get(State(s): State<SubState>) -> StatusCode {
    s.seen.lock().unwrap().push(Seen { method: "GET".into(), jwt: None, body: Value::Null });
    StatusCode::from_u16(s.get_status.load(Ordering::SeqCst)).unwrap()
}

async fn sub_post(State(s): State<SubState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let jwt = headers.get("x-zdesk-jwt").and_then(|v| v.to_str().ok()).map(str::to_owned);
    s.seen.lock().unwrap().push(Seen {
        method: "POST".into(),
        jwt,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let delay = s.post_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(s.post_status.load(Ordering::SeqCst)).unwrap()
}

impl Subscriber {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let get_status = Arc::new(AtomicU16::new(200));
        let post_status = Arc::new(AtomicU16::new(200));
        let post_delay_ms = Arc::new(AtomicU64::new(0));
        let state = SubState {
            seen: seen.clone(),
            get_status: get_status.clone(),
            post_status: post_status.clone(),
            post_delay_ms: post_delay_ms.clone(),
        };
        let app = Router::new().route("/hook", get(sub_get).post(sub_post)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://{addr}/hook"), seen, get_status, post_status, post_delay_ms }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// POSTed events (flattened), excluding the validation POST.
    pub fn events(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "POST" && s.jwt.is_some())
            .flat_map(|s| s.body.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until `pred` holds on the recorded requests, at most `secs`.
    pub async fn wait_for(&self, secs: u64, pred: impl Fn(&[Seen]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if pred(&self.seen()) {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
