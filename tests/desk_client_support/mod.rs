//! Helpers for the Desk client tests: an in-process simulator on 127.0.0.1, a config pointing at it,
//! and an authorized source.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use zoho_desk_cdc::config::Settings;
use zoho_desk_cdc::sim::{SimConfig, SimHandle, Simulator};
use zoho_desk_cdc::zoho::auth::exchange_grant_code;
use zoho_desk_cdc::zoho::client::{ClientOptions, DeskClient};
use zoho_desk_cdc::zoho::registry::DeskRegistry;

pub struct Quota {
    pub rpm: u32,
    pub concurrency: u32,
    pub credits: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Self { rpm: 60_000, concurrency: 10, credits: 1_000_000 }
    }
}

pub struct Env {
    pub sim: SimHandle,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
}

pub fn quick_options() -> ClientOptions {
    ClientOptions {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        // Desk's remaining-credits header pauses calls; the tests' short credit days need a short recheck.
        desk_remaining_recheck: Duration::from_secs(1),
        ..ClientOptions::default()
    }
}

/// Writes a config for one source `main` pointing at `base` and loads it through the real loader.
pub fn settings_for(
    dir: &std::path::Path,
    base: &str,
    org: &str,
    client_id: &str,
    client_secret: &str,
    q: &Quota,
) -> Settings {
    let cfg = format!(
        r#"
[http]
public_url = "http://127.0.0.1:8080"
[[sources]]
name = "main"
org_id = "{org}"
client_id = "{client_id}"
client_secret = "{client_secret}"
credentials_file = "{creds}"
accounts_url = "{base}"
desk_url = "{base}"
[sources.quota]
requests_per_minute = {rpm}
max_concurrency = {conc}
daily_credits = {credits}
"#,
        creds = dir.join("state/main.credentials.json").display(),
        rpm = q.rpm,
        conc = q.concurrency,
        credits = q.credits,
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, cfg).unwrap();
    Settings::load(&path).unwrap()
}

pub async fn start(cfg: SimConfig, q: Quota) -> Env {
    // Metrics recorded before the recorder exists are lost, so install it first.
    zoho_desk_cdc::metrics::install();
    let org = cfg.org_id.to_string();
    let (cid, secret) = (cfg.client_id.clone(), cfg.client_secret.clone());
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_for(dir.path(), &base, &org, &cid, &secret, &q);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    Env { sim, base, http, dir, settings }
}

impl Env {
    pub async fn grant_code(&self, ttl_s: u64) -> String {
        let v: Value = self
            .http
            .post(format!("{}/_sim/grant-codes", self.base))
            .json(&json!({"ttl_s": ttl_s}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["code"].as_str().unwrap().to_owned()
    }

    /// Runs `auth` for `main` with a fresh grant code.
    pub async fn authorize(&self) {
        let code = self.grant_code(120).await;
        exchange_grant_code(&self.settings, "main", &code).await.unwrap();
    }

    pub fn client(&self, opts: ClientOptions) -> DeskClient {
        let timeout = opts.request_timeout;
        DeskRegistry::new(opts).with_request_timeout(timeout).client(&self.settings.sources[0]).unwrap()
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.settings.sources[0].credentials_file.clone()
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sim/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn fault(&self, body: Value) {
        let r = self.http.post(format!("{}/_sim/faults", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    pub async fn status_count(&self, status: &str) -> u64 {
        self.stats().await["status_counts"][status].as_u64().unwrap_or(0)
    }
}

/// The Prometheus text of this test process (the recorder is installed once per process).
pub fn metrics_text() -> String {
    zoho_desk_cdc::metrics::install().map(|h| h.render()).unwrap_or_default()
}
