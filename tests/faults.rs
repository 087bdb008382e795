//! Fault injection with the real broker and registry and the simulator's faults API (`POST /_sim/faults`):
//! a Desk 5xx burst, latency past the request timeout, a 429 storm, revoked access tokens, a revoked
//! refresh token, a broker restart, a broker gone for good, a schema-registry outage (through a switchable TCP
//! proxy) and a full disk under the credentials file.
//!
//! Every scenario but the broker gone for good (which checks the exit) prints one
//! `CHAOS scenario=<name> in=<n> out=<n> lost=<n>` line to stderr (scripts/chaos.sh tabulates them) and
//! asserts lost == 0 and no duplicate per id. Each fault lasts less than the Desk client's retry budget
//! (5 attempts span at least 3.75 s of backoff, 8 attempts for a 429), so a run's outcome does not depend on
//! which calls the simulator's dice pick.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zoho_desk_cdc::sim::{SimConfig, Simulator};

/// The modules every scenario loads: tickets is large enough (30 pages) to inject a fault mid-load.
const MODULES: [&str; 3] = ["tickets", "contacts", "accounts"];
const PARTITIONS: usize = 3;
/// Webhook record ids of the test's own deliveries, far from the simulator's.
const FIRST_WEBHOOK_ID: u64 = 1_899_000_000_000_000;

/// A small org with `tickets` tickets and `api_latency_ms` of server time per Desk call, so a snapshot
/// lasts long enough to be hit mid-way.
fn sim_config(tickets: u32, api_latency_ms: u64) -> SimConfig {
    let mut scale = zoho_desk_cdc::sim::data::Scale::small();
    scale.counts.insert(zoho_desk_cdc::sim::module::Module::Tickets, tickets);
    SimConfig { scale, api_latency: Duration::from_millis(api_latency_ms), ..SimConfig::default() }
}

/// Prints the scenario's CHAOS line and fails when anything was lost.
fn chaos(scenario: &str, input: usize, output: usize, started: Instant) {
    let lost = input as i64 - output as i64;
    eprintln!("CHAOS scenario={scenario} in={input} out={output} lost={lost}");
    eprintln!("scenario {scenario} took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(lost, 0, "{scenario}: {lost} records lost");
}

struct Rig {
    sim: zoho_desk_cdc::sim::SimHandle,
    base: String,
    dir: tempfile::TempDir,
    config: String,
    admin: String,
    webhook_port: u16,
    prefix: String,
    http: reqwest::Client,
}

impl Rig {
    /// A simulator, a bridge config for MODULES (no JWT check; `extra` adds source keys; `edit` rewrites
    /// the file's text, e.g. the broker or registry address) and credentials from `auth`.
    async fn new(name: &str, cfg: SimConfig, extra: &str, edit: impl Fn(String) -> String) -> Self {
        let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
        let base = sim.base_url();
        let dir = tempfile::tempdir().unwrap();
        let prefix = common::unique(&format!("faults_{name}")).replace('-', "_");
        let (webhook_port, admin_port) = (common::free_port(), common::free_port());
        let modules = MODULES.map(|m| format!("\"{m}\"")).join(", ");
        let extra = format!("verify_jwt = false\nmodules = [{modules}]\n{extra}");
        let path = common::bridge_config_with(dir.path(), &base, &prefix, &extra, webhook_port, admin_port);
        std::fs::write(&path, edit(std::fs::read_to_string(&path).unwrap())).unwrap();
        let config = path.to_str().unwrap().to_owned();
        common::auth(&base, &config).await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Self {
            sim,
            base,
            dir,
            config,
            admin: format!("http://127.0.0.1:{admin_port}"),
            webhook_port,
            prefix,
            http,
        }
    }

    fn start(&self) -> common::Bridge {
        common::Bridge::start(&["run", "--config", &self.config])
    }

    async fn fault(&self, body: Value) {
        let r = self.http.post(format!("{}/_sim/faults", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "fault {body} refused: {}", r.text().await.unwrap());
    }

    async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sim/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn status(&self) -> Value {
        match self.http.get(format!("{}/status", self.admin)).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        }
    }

    /// The sum of every series of `name` in /metrics whose labels contain `label` ("" = all).
    async fn metric(&self, name: &str, label: &str) -> f64 {
        let text =
            self.http.get(format!("{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits until `module` is loading and has committed at least `records`: the moment to inject.
    async fn wait_loading(&self, bridge: &mut common::Bridge, module: &str, records: u64) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(Instant::now() < deadline, "{module} never reached {records} records");
            if let Some((rc, err)) = bridge.exited() {
                panic!("bridge exited ({rc}) before the fault:\n{}", common::tail(&err, 30));
            }
            let m = &self.status().await["sources"][0]["modules"][module];
            if m["records"].as_u64().unwrap_or(0) >= records {
                assert_eq!(m["phase"], "snapshot", "{module} finished before the fault could be injected");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every module is streaming (its snapshot committed), failing if the bridge exits.
    async fn wait_done(&self, bridge: &mut common::Bridge, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            assert!(Instant::now() < deadline, "the snapshot did not finish within {timeout:?}");
            if let Some((rc, err)) = bridge.exited() {
                panic!("bridge exited ({rc}) during the snapshot:\n{}", common::tail(&err, 30));
            }
            let s = self.status().await;
            let done = s["sources"][0]["modules"].as_object().is_some_and(|m| {
                MODULES.iter().all(|name| m.get(*name).is_some_and(|v| v["phase"] == "streaming"))
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The simulator's live record ids per module (ground truth).
    async fn truth(&self) -> HashMap<&'static str, HashSet<String>> {
        let mut out = HashMap::new();
        for m in MODULES {
            let records: Vec<Value> = self
                .http
                .get(format!("{}/_sim/state/{m}", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.insert(m, records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect());
        }
        out
    }

    fn topic(&self, module: &str) -> String {
        format!("{}.60000000001.{module}", self.prefix)
    }

    /// Reads every module's topic on `bootstrap` (read_committed) and checks it against the ground truth
    /// plus `delivered` ticket ids (the test's acknowledged webhook deliveries): no id twice, no id from
    /// nowhere (`posted` are the ticket ids the test sent, acknowledged or not). Returns (in, out);
    /// `report` prints some missing ids.
    async fn check_kafka(
        &self,
        bootstrap: &str,
        delivered: &HashSet<String>,
        posted: &HashSet<String>,
        report: bool,
    ) -> (usize, usize) {
        let truth = self.truth().await;
        let (mut input, mut output) = (0, 0);
        for m in MODULES {
            let counts = common::topic_id_counts(bootstrap, &self.topic(m), PARTITIONS).await;
            let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
            assert!(dups.is_empty(), "{m}: ids written more than once: {dups:?}");
            let mut expected = truth[m].clone();
            if m == "tickets" {
                expected.extend(delivered.iter().cloned());
            }
            let strays: Vec<_> = counts
                .keys()
                .filter(|id| !(expected.contains(*id) || (m == "tickets" && posted.contains(*id))))
                .collect();
            assert!(strays.is_empty(), "{m}: ids in Kafka that no one sent: {strays:?}");
            let missing: Vec<_> = expected.iter().filter(|id| counts.get(*id).copied() != Some(1)).collect();
            if !missing.is_empty() && report {
                eprintln!("{m}: {} ids missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
            }
            input += expected.len();
            output += expected.len() - missing.len();
        }
        (input, output)
    }

    /// The independent Python consumer's comparison (values too) against the simulator, shared broker only.
    async fn verify(&self) {
        let (ok, out) = common::verify_topics(&self.base, &self.prefix, &MODULES).await;
        assert!(ok, "topics differ from the simulator's state:\n{out}");
    }

    fn service_url(&self) -> String {
        let creds: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir.path().join("main.credentials.json")).unwrap(),
        )
        .unwrap();
        format!(
            "http://127.0.0.1:{}/webhooks/zoho/main/{}",
            self.webhook_port,
            creds["webhook_secret"].as_str().unwrap()
        )
    }

    /// A snapshot scenario: start the bridge, wait until tickets is mid-load, `inject`, wait for the
    /// snapshot, stop the bridge (exit 0 on SIGTERM) and compare Kafka with the simulator. Returns
    /// (in, out) and the bridge's /metrics values of `watch` (name, label) read before it stopped.
    async fn snapshot_under(
        &self,
        inject: impl std::future::Future<Output = ()>,
        watch: &[(&str, &str)],
    ) -> ((usize, usize), Vec<f64>) {
        let mut bridge = self.start();
        common::wait_ready(&self.admin).await;
        self.wait_loading(&mut bridge, "tickets", 100).await;
        inject.await;
        self.wait_done(&mut bridge, Duration::from_secs(120)).await;
        let mut seen = Vec::new();
        for (name, label) in watch {
            seen.push(self.metric(name, label).await);
        }
        let (rc, err) = bridge.terminate(Duration::from_secs(30));
        assert_eq!(rc, 0, "bridge did not stop cleanly on SIGTERM:\n{}", common::tail(&err, 30));
        assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
        self.verify().await;
        let none = HashSet::new();
        (self.check_kafka(&common::bootstrap(), &none, &none, true).await, seen)
    }
}

/// Posts one `Ticket_Add` delivery for `id`; the HTTP status, or 0 when no answer came.
async fn deliver(http: &reqwest::Client, url: &str, id: &str) -> u16 {
    let body = json!([{"eventType": "Ticket_Add", "orgId": "60000000001",
        "eventTime": chrono::Utc::now().timestamp_millis().to_string(),
        "payload": {"id": id, "subject": "fault test", "createdTime": "2026-01-01T00:00:00.000Z",
                    "modifiedTime": "2026-01-01T00:00:00.000Z"}}]);
    match http.post(url).json(&body).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Posts deliveries one after another (new id each) until stopped; remembers every id sent and the
/// acknowledged (200) ones. Any answer other than 200 or 503 fails the test.
struct Poster {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(HashSet<String>, HashSet<String>)>,
}

impl Poster {
    fn start(url: String, next_id: Arc<AtomicU64>, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                let (mut posted, mut acked) = (HashSet::new(), HashSet::new());
                while !stop.load(Ordering::SeqCst) {
                    let id = next_id.fetch_add(1, Ordering::SeqCst).to_string();
                    posted.insert(id.clone());
                    let status = deliver(&http, &url, &id).await;
                    assert!(matches!(status, 0 | 200 | 503), "delivery {id} answered {status}");
                    if status == 200 {
                        acked.insert(id);
                    }
                    tokio::time::sleep(pause).await;
                }
                (posted, acked)
            }
        });
        Self { stop, task }
    }

    async fn finish(self) -> (HashSet<String>, HashSet<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// 1. A burst of Desk 500s (half the calls, 3 s) in the middle of the snapshot: every call is retried
///    until it succeeds, the load completes, and Kafka equals the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_5xx_burst_during_the_snapshot_loses_nothing() {
    let started = Instant::now();
    let rig = Rig::new("5xx", sim_config(3000, 100), "", |t| t).await;
    let before = rig.stats().await["status_counts"]["500"].as_u64().unwrap_or(0);
    let ((input, output), _) =
        rig.snapshot_under(rig.fault(json!({"kind": "http_500", "ratio": 0.5, "duration_s": 3})), &[]).await;
    let after = rig.stats().await["status_counts"]["500"].as_u64().unwrap_or(0);
    assert!(after > before, "the burst hit no call");
    eprintln!("desk_5xx: {} calls answered 500", after - before);
    chaos("desk_5xx_burst", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// 2. Latency past the bridge's request timeout (1 s; half the calls take 2.5 s, for 3 s): the timed-out
///    calls are retried, the load completes, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_latency_past_the_request_timeout_is_retried() {
    let started = Instant::now();
    let rig = Rig::new("latency", sim_config(3000, 100), "request_timeout_s = 1", |t| t).await;
    let fault = json!({"kind": "latency", "ratio": 0.5, "duration_s": 3, "latency_ms": 2500});
    let ((input, output), seen) = rig
        .snapshot_under(rig.fault(fault), &[("zoho_desk_cdc_api_requests_total", "status=\"timeout\"")])
        .await;
    assert!(seen[0] > 0.0, "no Desk call timed out");
    eprintln!("desk_latency: {} calls timed out", seen[0]);
    chaos("desk_latency", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// 3. A 429 storm (70% of the calls, 4 s): the client backs off, the load completes, the rate-limit
///    counter moved, and the simulator (which enforces the same per-minute cap and concurrency as the
///    bridge's quota) saw no more calls than the quota allows and no credit overdraft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storm_backs_off_within_the_quota() {
    let started = Instant::now();
    let (rpm, concurrency, credits) = (180u32, 3u32, 20_000u64);
    let cfg = SimConfig {
        requests_per_minute: Some(rpm),
        concurrency: Some(concurrency),
        daily_credits: Some(credits),
        ..sim_config(3000, 50)
    };
    let quota = move |t: String| {
        t.replace("requests_per_minute = 60000", &format!("requests_per_minute = {rpm}"))
            .replace("max_concurrency = 10", &format!("max_concurrency = {concurrency}"))
            .replace("daily_credits = 1000000", &format!("daily_credits = {credits}"))
    };
    let rig = Rig::new("429", cfg, "", quota).await;
    let before = rig.stats().await;
    let t0 = Instant::now();
    let ((input, output), seen) = rig
        .snapshot_under(
            rig.fault(json!({"kind": "rate_limit", "ratio": 0.7, "duration_s": 4})),
            &[("zoho_desk_cdc_api_rate_limited_total", "")],
        )
        .await;
    let elapsed = t0.elapsed().as_secs_f64();
    let after = rig.stats().await;
    let calls = after["requests_total"].as_u64().unwrap() - before["requests_total"].as_u64().unwrap();
    let n429 = after["status_counts"]["429"].as_u64().unwrap_or(0);
    // The limiter allows one call at once and then one per 60/(0.97 rpm) s.
    let allowed = 1.0 + elapsed * f64::from(rpm) / 60.0;
    eprintln!(
        "rate_limit: {calls} calls in {elapsed:.1} s (allowed {allowed:.0}), {n429} answered 429, \
         rate_limited_total {}, credits used {}",
        seen[0], after["credits_used"]
    );
    assert!(seen[0] > 0.0, "api_rate_limited_total did not move");
    assert!(n429 > 0, "the storm hit no call");
    assert!((calls as f64) <= allowed, "{calls} calls in {elapsed:.1} s exceed {rpm}/min");
    assert!(after["credits_used"].as_u64().unwrap() <= credits, "credits overdrawn: {after}");
    chaos("rate_limit_storm", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// 4. Every access token revoked mid-load (twice): the bridge refreshes (single-flight) and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_revoked_mid_load_are_refreshed() {
    let started = Instant::now();
    let rig = Rig::new("revoke", sim_config(3000, 100), "", |t| t).await;
    let issued = rig.stats().await["tokens_issued"].as_u64().unwrap_or(0);
    let revoke = async {
        rig.fault(json!({"kind": "revoke_tokens"})).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        rig.fault(json!({"kind": "revoke_tokens"})).await;
    };
    let ((input, output), seen) =
        rig.snapshot_under(revoke, &[("zoho_desk_cdc_oauth_refresh_total", "outcome=\"ok\"")]).await;
    let now_issued = rig.stats().await["tokens_issued"].as_u64().unwrap_or(0);
    eprintln!("revoke_tokens: {} refreshes, {} tokens issued", seen[0], now_issued - issued);
    assert!(seen[0] >= 1.0, "oauth_refresh_total{{outcome=\"ok\"}} did not move");
    assert!(now_issued > issued, "the simulator issued no new access token");
    chaos("access_tokens_revoked", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// 5. The refresh token revoked mid-load (it takes its access tokens with it): the bridge stops with a
///    non-zero exit and an error telling the operator to run `auth`; what it committed is whole pages only
///    (no id twice, none from nowhere), and after a new `auth` the load resumes to exactly the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_revoked_stops_with_an_auth_error_and_resumes_after_auth() {
    let started = Instant::now();
    let rig = Rig::new("refresh", sim_config(3000, 100), "", |t| t).await;
    let mut bridge = rig.start();
    common::wait_ready(&rig.admin).await;
    rig.wait_loading(&mut bridge, "tickets", 100).await;
    let creds: Value =
        serde_json::from_str(&std::fs::read_to_string(rig.dir.path().join("main.credentials.json")).unwrap())
            .unwrap();
    let refresh = creds["refresh_token"].as_str().unwrap();
    let r = rig
        .http
        .post(format!("{}/oauth/v2/token/revoke", rig.base))
        .query(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "revoke refused: {}", r.text().await.unwrap());
    let (rc, err) = bridge.wait(Duration::from_secs(90));
    eprintln!("refresh_revoked: exit {rc}: {}", common::tail(&err, 3));
    assert_ne!(rc, 0, "the bridge went on without a refresh token");
    assert_eq!(rc, 1, "runtime auth failures exit 1 (CONTRACT §2)");
    assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
    assert!(
        err.contains("rejected the refresh token") && err.contains("zoho-desk-cdc auth"),
        "no clear error naming the fix:\n{}",
        common::tail(&err, 10)
    );
    // Nothing half-written: no id twice and none the simulator does not have (whole transactions only).
    let none = HashSet::new();
    let (input, partial) = rig.check_kafka(&common::bootstrap(), &none, &none, false).await;
    assert!(partial < input, "the load finished before the revocation bit");
    eprintln!("refresh_revoked: {partial} of {input} records committed before the stop");
    // A new grant code; the load resumes from the committed cursor to exactly the simulator's state.
    common::auth(&rig.base, &rig.config).await;
    let (rc, err) = common::run_initial_only(&rig.config, Duration::from_secs(120)).await;
    assert_eq!(rc, 0, "resume after auth failed:\n{}", common::tail(&err, 30));
    rig.verify().await;
    let (input, output) = rig.check_kafka(&common::bootstrap(), &none, &none, true).await;
    chaos("refresh_token_revoked", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// 6. The broker stopped and restarted in the middle of the snapshot while webhook deliveries arrive:
///    afterwards every snapshot record and every acknowledged delivery is in Kafka exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_transaction_keeps_everything_acknowledged_exactly_once() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let broker = common::broker::PrivateBroker::start(tmp.path().join("kafka")).await;
    let bootstrap = broker.bootstrap();
    let rig =
        Rig::new("broker", sim_config(3000, 100), "", |t| t.replace(&common::bootstrap(), &bootstrap)).await;
    let mut bridge = rig.start();
    let url = rig.service_url();
    assert!(common::wait_http_ok(&url, Duration::from_secs(90)).await, "service URL never came up");
    let next_id = Arc::new(AtomicU64::new(FIRST_WEBHOOK_ID));
    let poster = Poster::start(url.clone(), next_id.clone(), Duration::from_millis(100));
    rig.wait_loading(&mut bridge, "tickets", 300).await;
    broker.down().await;
    eprintln!("broker_restart: broker stopped at {:.1} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.up().await;
    eprintln!("broker_restart: broker back at {:.1} s", started.elapsed().as_secs_f64());
    rig.wait_done(&mut bridge, Duration::from_secs(180)).await;
    // Deliveries are acknowledged again after the restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let (mut retried, mut retried_acked) = (HashSet::new(), HashSet::new());
    loop {
        assert!(Instant::now() < deadline, "deliveries were not acknowledged after the restart");
        let id = next_id.fetch_add(1, Ordering::SeqCst).to_string();
        retried.insert(id.clone());
        if deliver(&http, &url, &id).await == 200 {
            retried_acked.insert(id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (mut posted, mut acked) = poster.finish().await;
    posted.extend(retried);
    acked.extend(retried_acked);
    let aborted = rig.metric("zoho_desk_cdc_kafka_transactions_total", "outcome=\"aborted\"").await;
    let errors = rig.metric("zoho_desk_cdc_kafka_produce_errors_total", "").await;
    eprintln!("broker_restart: {aborted} transactions aborted, {errors} produce errors");
    for _ in 0..3 {
        let id = next_id.fetch_add(1, Ordering::SeqCst).to_string();
        posted.insert(id.clone());
        assert_eq!(deliver(&http, &url, &id).await, 200);
        acked.insert(id);
    }
    let (rc, err) = bridge.terminate(Duration::from_secs(60));
    assert_eq!(rc, 0, "bridge did not stop cleanly:\n{}", common::tail(&err, 30));
    assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
    eprintln!("broker_restart: {} deliveries posted, {} acknowledged", posted.len(), acked.len());
    let (input, output) = rig.check_kafka(&bootstrap, &acked, &posted, true).await;
    chaos("broker_restart", input, output, started);
    rig.sim.stop().await.unwrap();
    drop(broker);
}

/// 6b. The broker gone for good in the middle of the snapshot, while pages are read ahead faster than they
///     commit: the bridge exits 1 once a commit fails (`message.timeout.ms` 5 s here, then librdkafka's abort
///     times out), instead of hanging with the page reader waiting for room in the full read-ahead queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_gone_mid_snapshot_exits_1_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let broker = common::broker::PrivateBroker::start(tmp.path().join("kafka")).await;
    let bootstrap = broker.bootstrap();
    // Contracts: a plain list walk, which reads pages without waiting for the ordering guard's lock (the
    // sorted walks check for deletes under it), so the read-ahead queue is full when the commit fails.
    let mut cfg = sim_config(100, 5);
    cfg.scale.counts.insert(zoho_desk_cdc::sim::module::Module::Contracts, 8000);
    let rig = Rig::new("gone", cfg, "", |t| {
        t.replace(&common::bootstrap(), &bootstrap)
            .replace(
                &format!("modules = [{}]", MODULES.map(|m| format!("\"{m}\"")).join(", ")),
                "modules = [\"contracts\"]",
            )
            .replace(
                "replication_factor = 1\n",
                "replication_factor = 1\nproperties = { \"message.timeout.ms\" = \"5000\" }\n",
            )
    })
    .await;
    assert!(std::fs::read_to_string(&rig.config).unwrap().contains("modules = [\"contracts\"]"));
    let mut bridge = rig.start();
    rig.wait_loading(&mut bridge, "contracts", 300).await;
    broker.down().await;
    let stopped = Instant::now();
    let (rc, err) = bridge.wait(Duration::from_secs(150));
    eprintln!(
        "broker_gone: exit {rc} {:.1} s after the broker stopped: {}",
        stopped.elapsed().as_secs_f64(),
        common::tail(&err, 3)
    );
    assert_eq!(rc, 1, "a snapshot that cannot commit must exit 1:\n{}", common::tail(&err, 30));
    assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
    assert!(err.contains("Source failed"), "no clear error:\n{}", common::tail(&err, 10));
    rig.sim.stop().await.unwrap();
    drop(broker);
}

/// A TCP proxy to the real registry that the test switches off (new connections are closed at once and
/// open ones cut) and on again.
struct Switch {
    port: u16,
    on: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Switch {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        tokio::spawn({
            let on = on.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !on.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let mut cuts = cuts.clone();
                    // Only cuts after this connection was accepted count.
                    cuts.borrow_and_update();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cuts.changed() => {}
                        }
                    });
                }
            }
        });
        Self { port, on, cut }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        if !on {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

/// 7. The schema registry down at start (the bridge must fail clearly or wait, never panic or write
///    unencoded data; once it is up the load completes) and again mid-run, during the snapshot and
///    webhook deliveries (schema ids are cached at start, so nothing needs it then): nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_at_start_and_mid_run_loses_nothing() {
    let started = Instant::now();
    let registry = common::registry_url();
    let rest = registry.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let switch = Switch::start(host.to_owned()).await;
    let proxied = format!("http://127.0.0.1:{}/{path}", switch.port);
    switch.set(false);
    let rig = Rig::new("registry", sim_config(3000, 100), "", |t| t.replace(&registry, &proxied)).await;

    // Down at start.
    let mut bridge = rig.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let waited = loop {
        if let Some((rc, err)) = bridge.exited() {
            eprintln!("registry_down_at_start: exit {rc}: {}", common::tail(&err, 2));
            assert_eq!(rc, 1, "a registry outage is a runtime failure (exit 1):\n{}", common::tail(&err, 20));
            assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
            assert!(err.contains("schema registry"), "no clear error:\n{}", common::tail(&err, 10));
            break false;
        }
        if Instant::now() > deadline {
            eprintln!("registry_down_at_start: the bridge is still waiting after 60 s");
            break true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for m in MODULES {
        let n = records_on(&common::bootstrap(), &rig.topic(m)).await;
        assert_eq!(n, 0, "{m}: records written before any schema was registered");
    }
    switch.set(true);
    if !waited {
        bridge = rig.start();
    }

    // Down mid-run: during the snapshot, with deliveries arriving.
    let url = rig.service_url();
    if !common::wait_http_ok(&url, Duration::from_secs(90)).await {
        let err = bridge.exited().map(|(_, e)| e).unwrap_or_default();
        panic!("service URL never came up once the registry was back:\n{}", common::tail(&err, 20));
    }
    rig.wait_loading(&mut bridge, "tickets", 100).await;
    switch.set(false);
    let next_id = Arc::new(AtomicU64::new(FIRST_WEBHOOK_ID));
    let poster = Poster::start(url.clone(), next_id.clone(), Duration::from_millis(100));
    rig.wait_done(&mut bridge, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    switch.set(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (posted, acked) = poster.finish().await;
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "bridge did not stop cleanly:\n{}", common::tail(&err, 30));
    assert!(!err.contains("panicked"), "the bridge panicked:\n{}", common::tail(&err, 30));
    eprintln!("registry_down_mid_run: {} deliveries posted, {} acknowledged", posted.len(), acked.len());
    assert!(!acked.is_empty(), "no delivery was acknowledged");
    let (input, output) = rig.check_kafka(&common::bootstrap(), &acked, &posted, true).await;
    chaos("registry_outage", input, output, started);
    rig.sim.stop().await.unwrap();
}

/// How many records `topic` holds (the sum of its partitions' high watermarks; 0 when it does not exist).
async fn records_on(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).unwrap();
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
            return 0;
        };
        t.partitions()
            .iter()
            .map(|p| consumer.fetch_watermarks(&topic, p.id(), timeout).map(|(_, high)| high).unwrap_or(0))
            .sum()
    })
    .await
    .unwrap()
}

/// Whether this machine lets an unprivileged user mount a tmpfs in a user+mount namespace.
fn tmpfs_namespace_works() -> Result<(), String> {
    let probe = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs \"$1\"", "sh"])
        .arg(probe.path())
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("unshare -rm + mount tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs `bridge_args` inside a user+mount namespace where `creds_dir` is a full 16 KiB tmpfs holding only
/// a copy of `old` as the credentials file. Returns (exit code, stderr, the credentials file afterwards,
/// the directory's listing afterwards).
fn run_on_full_disk(
    creds_dir: &std::path::Path,
    old: &std::path::Path,
    bridge_args: &[&str],
) -> (i32, String, Vec<u8>, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let script = r#"
set -u
dir="$1"; old="$2"; out="$3"; shift 3
mount -t tmpfs -o size=16k tmpfs "$dir" || exit 97
cp "$old" "$dir/main.credentials.json" || exit 98
dd if=/dev/zero of="$dir/zz-filler" bs=1k count=64 2>/dev/null
"$@" 2>"$out/stderr"
rc=$?
cp "$dir/main.credentials.json" "$out/after.json"
ls -A "$dir" > "$out/ls"
exit $rc
"#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script, "sh"])
        .arg(creds_dir)
        .arg(old)
        .arg(out_dir.path())
        .arg(common::bridge_bin())
        .args(bridge_args)
        .env("RUST_LOG", "info");
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let rc = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bridge_args:?} on a full disk did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(rc != 97 && rc != 98, "setting up the full tmpfs failed ({rc})");
    let read = |f: &str| std::fs::read(out_dir.path().join(f)).unwrap_or_default();
    (
        rc,
        String::from_utf8_lossy(&read("stderr")).into_owned(),
        read("after.json"),
        String::from_utf8_lossy(&read("ls")).into_owned(),
    )
}

/// 8. No space left where the credentials file lives: `auth` fails with a clear error and a non-zero exit,
///    and a token refresh that cannot cache its token warns and goes on; neither panics, and the old
///    credentials file is left whole (the write goes through a temporary file and a rename).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_leaves_the_credentials_file_intact() {
    let started = Instant::now();
    if let Err(why) = tmpfs_namespace_works() {
        eprintln!("SKIP full_disk: {why}");
        return;
    }
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let creds_dir = dir.path().join("creds");
    std::fs::create_dir(&creds_dir).unwrap();
    let prefix = common::unique("faults_disk").replace('-', "_");
    let path = common::bridge_config(dir.path(), &base, &prefix, "verify_jwt = false");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &dir.path().join("main.credentials.json").display().to_string(),
        &creds_dir.join("main.credentials.json").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let old_path = dir.path().join("old.credentials.json");
    std::fs::copy(creds_dir.join("main.credentials.json"), &old_path).unwrap();
    let old = std::fs::read(&old_path).unwrap();
    let http = reqwest::Client::new();

    // `auth` with a new grant code cannot write the new file.
    let code = common::grant_code(&base).await;
    let (rc, err, after, listing) = tokio::task::spawn_blocking({
        let (creds_dir, old_path, config) = (creds_dir.clone(), old_path.clone(), config.clone());
        move || {
            run_on_full_disk(
                &creds_dir,
                &old_path,
                &["auth", "--config", &config, "--source", "main", "--code", &code],
            )
        }
    })
    .await
    .unwrap();
    eprintln!("full_disk auth: exit {rc}: {}", common::tail(&err, 2));
    assert_ne!(rc, 0, "auth reported success without writing the credentials");
    assert_eq!(rc, 1, "a write failure is a runtime failure (exit 1)");
    assert!(!err.contains("panicked"), "auth panicked:\n{err}");
    assert!(err.contains("No space left on device"), "the error does not say why:\n{err}");
    assert_eq!(after, old, "the old credentials file was changed");
    assert!(!listing.contains(".tmp"), "a temporary file was left behind: {listing}");

    // A refresh (the cached access token revoked) that cannot cache the new token on disk.
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "revoke_tokens"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (rc, err, after, listing) = tokio::task::spawn_blocking({
        let (creds_dir, old_path, config) = (creds_dir.clone(), old_path.clone(), config.clone());
        move || run_on_full_disk(&creds_dir, &old_path, &["check", "--config", &config])
    })
    .await
    .unwrap();
    eprintln!("full_disk refresh: exit {rc}: {}", common::tail(&err, 2));
    assert!(!err.contains("panicked"), "check panicked:\n{err}");
    assert!(err.contains("Access token refreshed"), "no refresh happened:\n{err}");
    assert!(
        err.contains("Cannot cache the access token on disk"),
        "no warning about the failed write:\n{err}"
    );
    assert_eq!(rc, 0, "the refreshed token works in memory, so check passes:\n{err}");
    assert_eq!(after, old, "the old credentials file was changed");
    assert!(!listing.contains(".tmp"), "a temporary file was left behind: {listing}");
    chaos("full_disk", 0, 0, started);
    sim.stop().await.unwrap();
}
