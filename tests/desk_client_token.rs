//! The access-token cache against the simulator: short-lived tokens over a long run fail no call and
//! keep few tokens alive, refresh is single-flight (on expiry and on 401), a restart reuses the cached
//! token, and sources sharing a refresh token share one cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod desk_client_support;

use chrono::Utc;
use desk_client_support::{Env, Quota, quick_options, start};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zoho_desk_cdc::config::Settings;
use zoho_desk_cdc::sim::SimConfig;
use zoho_desk_cdc::zoho::client::ClientOptions;
use zoho_desk_cdc::zoho::credentials::Credentials;
use zoho_desk_cdc::zoho::error::ZohoError;
use zoho_desk_cdc::zoho::registry::{DeskRegistry, shared_client_warnings};

async fn tokens_issued(env: &Env) -> u64 {
    env.stats().await["tokens_issued"].as_u64().unwrap()
}

/// Calls Desk from `callers` tasks for `run`, with tokens living `ttl`; returns (calls, failures).
async fn short_token_run(ttl: Duration, run: Duration) {
    let sim_cfg = SimConfig {
        token_ttl: ttl,
        // Few live tokens: a refresh storm would evict tokens still in use and show up as failures.
        max_live_tokens: 3,
        // Zoho allows 10 token requests per 10 minutes; tokens this short need more than that.
        token_requests_per_window: 1000,
        ..SimConfig::default()
    };
    let env = start(sim_cfg, Quota { rpm: 1200, concurrency: 4, credits: 1_000_000 }).await;
    env.authorize().await;
    let issued_before = tokens_issued(&env).await;
    let client = env.client(quick_options());
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, calls, failures) = (client.clone(), calls.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match c.list_page("tickets", 0, 5, &[]).await {
                    Ok(p) if p.len() == 5 => {}
                    other => {
                        eprintln!("failed call: {other:?}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                calls.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let issued = tokens_issued(&env).await - issued_before;
    let unauthorized = env.status_count("401").await;
    let calls = calls.load(Ordering::SeqCst);
    eprintln!(
        "ttl {ttl:?} over {run:?}: {calls} calls, {} failed, {issued} tokens issued, {unauthorized} answers 401; status {}",
        failures.load(Ordering::SeqCst),
        client.status()
    );
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    assert!(calls > 100, "{calls}");
    assert_eq!(unauthorized, 0, "tokens are refreshed before they expire");
    // Refreshed once per 4/5 of a lifetime (plus the first): never more than two alive at a time.
    let bound = (run.as_secs_f64() / (ttl.as_secs_f64() * 0.8)).ceil() as u64 + 1;
    assert!(issued <= bound, "{issued} tokens for {bound} lifetimes");
    assert!(issued >= bound - 2, "{issued} tokens: the short lifetime was not exercised");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_second_tokens_over_twelve_seconds_fail_no_call() {
    short_token_run(Duration::from_secs(2), Duration::from_secs(12)).await;
}

/// The acceptance scenario: 5 s tokens over 60 s. `cargo test --test desk_client_token -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "takes a minute"]
async fn five_second_tokens_over_sixty_seconds_fail_no_call() {
    short_token_run(Duration::from_secs(5), Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_is_single_flight_persisted_and_reused_after_restart() {
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    // Age the cached token as if the process had been down for hours.
    let path = env.credentials_file();
    let mut creds = Credentials::load(&path).unwrap().unwrap();
    let old = creds.access_token.clone().unwrap();
    creds.access_token.as_mut().unwrap().expires_at = Utc::now() - chrono::Duration::minutes(1);
    creds.save(&path).unwrap();

    let before = tokens_issued(&env).await;
    let client = env.client(quick_options());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.list_page("tickets", 0, 5, &[]).await.unwrap().len() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 5);
    }
    assert_eq!(tokens_issued(&env).await, before + 1, "16 callers, one refresh");
    let saved = Credentials::load(&path).unwrap().unwrap().access_token.unwrap();
    assert_ne!(saved.token, old.token, "the new token is cached on disk");
    assert!(saved.expires_at > Utc::now() + chrono::Duration::minutes(50));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A restart: a new registry reads the file and spends no token.
    let restarted = env.client(quick_options());
    assert_eq!(restarted.list_page("tickets", 0, 5, &[]).await.unwrap().len(), 5);
    assert_eq!(tokens_issued(&env).await, before + 1);
    assert_eq!(restarted.status()["token"]["refreshes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_oauth_refreshes_once_for_all_callers() {
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    let client = env.client(quick_options());
    assert_eq!(client.list_page("tickets", 0, 5, &[]).await.unwrap().len(), 5);
    let before = tokens_issued(&env).await;
    env.fault(serde_json::json!({"kind": "revoke_tokens"})).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.list_page("tickets", 0, 5, &[]).await.unwrap().len() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 5);
    }
    assert_eq!(tokens_issued(&env).await, before + 1, "one refresh however many callers saw the 401");
    assert!(env.status_count("401").await >= 1);
    assert_eq!(client.status()["token"]["refreshes"], 1);
}

#[tokio::test]
async fn sources_sharing_a_refresh_token_share_one_cache_and_get_a_warning() {
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    let s = &env.settings.sources[0];
    let other_file = env.dir.path().join("state/second.credentials.json");
    std::fs::copy(&s.credentials_file, &other_file).unwrap();
    let cfg = format!(
        r#"
[[sources]]
name = "first"
org_id = "{org}"
client_id = "{cid}"
client_secret = "{secret}"
credentials_file = "{f1}"
accounts_url = "{base}"
desk_url = "{base}"
[[sources]]
name = "second"
org_id = "{org}"
client_id = "{cid}"
client_secret = "{secret}"
credentials_file = "{f2}"
accounts_url = "{base}"
desk_url = "{base}"
"#,
        org = s.org_id,
        cid = s.client_id,
        secret = s.client_secret.expose(),
        f1 = s.credentials_file.display(),
        f2 = other_file.display(),
        base = env.base,
    );
    let path = env.dir.path().join("two.toml");
    std::fs::write(&path, cfg).unwrap();
    let settings = Settings::load(&path).unwrap();
    let warnings = shared_client_warnings(&settings.sources);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("`first`") && warnings[0].contains("`second`"), "{warnings:?}");
    assert!(warnings[0].contains("10 live access tokens"), "{warnings:?}");
    assert!(!warnings[0].contains(s.client_secret.expose()));

    let registry = DeskRegistry::new(quick_options());
    let a = registry.client(&settings.sources[0]).unwrap();
    let b = registry.client(&settings.sources[1]).unwrap();
    assert!(Arc::ptr_eq(a.tokens(), b.tokens()), "one token cache");
    // One org, one quota guard: credits spent by either show in both.
    a.list_page("tickets", 0, 5, &[]).await.unwrap();
    b.list_page("tickets", 0, 5, &[]).await.unwrap();
    assert_eq!(a.status()["quota"]["calls"], 2);
    assert_eq!(b.status()["quota"]["calls"], 2);
}

#[tokio::test]
async fn token_endpoint_throttle_is_respected() {
    zoho_desk_cdc::metrics::install();
    let sim_cfg = SimConfig { token_requests_per_window: 1, ..SimConfig::default() };
    let env = start(sim_cfg, Quota::default()).await;
    env.authorize().await;
    let opts = ClientOptions { max_token_wait: Duration::ZERO, ..quick_options() };
    let client = env.client(opts);
    // The first refresh is allowed, the second is "Access Denied".
    env.fault(serde_json::json!({"kind": "revoke_tokens"})).await;
    assert_eq!(client.list_page("tickets", 0, 5, &[]).await.unwrap().len(), 5);
    env.fault(serde_json::json!({"kind": "revoke_tokens"})).await;
    let err = client.list_page("tickets", 0, 5, &[]).await.unwrap_err();
    assert!(matches!(err, ZohoError::TokenThrottled { .. }), "{err:?}");
    assert!(err.to_string().contains("10 per 10 minutes"), "{err}");
    // While throttled, no further token requests go out.
    let before = env.stats().await["requests_total"].as_u64().unwrap();
    let again = client.list_page("tickets", 0, 5, &[]).await.unwrap_err();
    assert!(matches!(again, ZohoError::TokenThrottled { .. }), "{again:?}");
    assert_eq!(env.stats().await["requests_total"].as_u64().unwrap(), before);
    assert!(client.status()["token"]["throttled_for_s"].as_u64().unwrap() > 50);
    let text = desk_client_support::metrics_text();
    assert!(
        text.lines().any(|l| l.starts_with("zoho_desk_cdc_oauth_refresh_total") && l.contains("throttled")),
        "{text}"
    );
}

/// A 401 while Zoho Accounts throttles refreshes waits for the throttle to lift and then succeeds, as a
/// call whose token expired while throttled does: it does not fail the caller (a snapshot would stop).
#[tokio::test]
async fn a_401_while_refreshes_are_throttled_waits_and_succeeds() {
    // One token request per 2 s window: the second refresh right after the first is "Access Denied".
    let sim_cfg = SimConfig {
        token_requests_per_window: 1,
        token_window: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let env = start(sim_cfg, Quota::default()).await;
    env.authorize().await;
    let opts = ClientOptions {
        token_throttle_first: Duration::from_secs(1),
        max_token_wait: Duration::from_secs(30),
        ..quick_options()
    };
    let client = env.client(opts);
    env.fault(serde_json::json!({"kind": "revoke_tokens"})).await;
    assert_eq!(client.list_page("tickets", 0, 5, &[]).await.unwrap().len(), 5);
    env.fault(serde_json::json!({"kind": "revoke_tokens"})).await;
    let started = Instant::now();
    let page = client.list_page("tickets", 0, 5, &[]).await;
    let waited = started.elapsed();
    assert_eq!(page.unwrap().len(), 5);
    // It did meet the throttle (waited at least the first pause), and waited no longer than needed.
    assert!(waited >= Duration::from_millis(900), "{waited:?}: the refresh was not throttled");
    assert!(waited < Duration::from_secs(15), "{waited:?}");
}

/// Desk refusing even a fresh token: one refresh, one retry, then one error (no loop).
#[tokio::test]
async fn a_refused_fresh_token_ends_in_one_error() {
    use axum::routing::{any, post};
    let hits = Arc::new(AtomicU64::new(0));
    let token_hits = Arc::new(AtomicU64::new(0));
    let (h, t) = (hits.clone(), token_hits.clone());
    let app = axum::Router::new()
        .route(
            "/oauth/v2/token",
            post(move || {
                t.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(serde_json::json!({"access_token": "1000.fresh", "expires_in": 3600})) }
            }),
        )
        .route(
            "/api/v1/{*rest}",
            any(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({"errorCode": "INVALID_OAUTH",
                            "message": "The OAuth Token you provided is invalid."})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let settings =
        desk_client_support::settings_for(dir.path(), &base, "600", "1000.M", "s3cret", &Quota::default());
    Credentials {
        refresh_token: zoho_desk_cdc::secret::Secret::new("1000.refresh"),
        org_id: "600".into(),
        data_center: "com".into(),
        client_id: "1000.M".into(),
        webhook_secret: zoho_desk_cdc::secret::Secret::new("w"),
        access_token: None,
        created_at: Utc::now(),
    }
    .save(&settings.sources[0].credentials_file)
    .unwrap();
    let client = DeskRegistry::new(quick_options()).client(&settings.sources[0]).unwrap();
    let err = client.get_by_id("tickets", "1", &[]).await.unwrap_err();
    assert!(matches!(err, ZohoError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("INVALID_OAUTH") && !err.to_string().contains("1000.fresh"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the call and one retry with a fresh token");
    assert_eq!(token_hits.load(Ordering::SeqCst), 2, "the first token and one refresh");
}
