//! Desk → bridge deliveries against the in-process simulator: a subscription registered through the Desk
//! API receives signed, batched deliveries; every event parses and maps to the right change for creates,
//! updates and deletes (both delete forms); the token verifies against the simulator's JWKS while forged
//! ones do not; key rotation refetches the JWKS at a bounded rate; a workflow "Send Cliq Notification"
//! parses into a (module, id) hint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod webhook_desk_support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webhook_desk_support::{Env, ORG, Receiver, SECRET, start};
use zoho_desk_cdc::change::{ChangeEvent, Op};
use zoho_desk_cdc::sim::{DeletePayload, DeleteStyle, SimConfig};
use zoho_desk_cdc::zoho::jwks::{JwksVerifier, JwtError};
use zoho_desk_cdc::zoho::module::Module;
use zoho_desk_cdc::zoho::subscription::{self, default_name};
use zoho_desk_cdc::zoho::webhook::{Delivery, Hint, map_events, parse_delivery};

fn quick_sim() -> SimConfig {
    SimConfig { webhook_batch_window: Duration::from_millis(50), ..SimConfig::default() }
}

/// Registers `main`'s subscription at the receiver; returns the webhook id.
async fn subscribe(env: &Env, rx: &Receiver) -> String {
    let reg =
        subscription::register(&env.client, &rx.service_url(SECRET), &default_name("main")).await.unwrap();
    reg.subscription.id
}

/// Verifies, parses and maps every POST to the service URL, in arrival order.
async fn changes_of(env: &Env, rx: &Receiver, webhook_id: &str, n: usize) -> Vec<ChangeEvent> {
    let verifier = JwksVerifier::new(&env.base, reqwest::Client::new());
    let mut out = Vec::new();
    for post in rx.wait_for("/webhooks/", n).await {
        let token = post.jwt.as_deref().expect("every delivery is signed");
        let claims = verifier.verify(token, ORG, Some(webhook_id)).await.unwrap();
        assert_eq!((claims.org_id.as_str(), claims.webhook_id.as_str()), (ORG, webhook_id));
        let Delivery::Events(events) = parse_delivery(&post.body, ORG).unwrap() else {
            panic!("a Desk delivery is an array of events")
        };
        let mapped = map_events(events, 1);
        assert!(mapped.skipped.is_empty(), "{:?}", mapped.skipped);
        out.extend(mapped.changes);
    }
    assert_eq!(out.len(), n);
    out
}

#[tokio::test]
async fn deliveries_for_creates_updates_and_deletes_map_to_changes() {
    let env = start(quick_sim()).await;
    let rx = Receiver::start().await;
    let webhook_id = subscribe(&env, &rx).await;
    assert_eq!(rx.validation_gets(), 1, "Desk validated the URL with one GET");

    let modules = ["tickets", "contacts", "tasks", "agents"];
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut deleted = Vec::new();
    for m in modules {
        for id in env.mutate(m, "create", 2).await {
            created.push((m, id));
        }
        for id in env.mutate(m, "update", 2).await {
            updated.push((m, id));
        }
        for id in env.mutate(m, "delete", 1).await {
            deleted.push((m, id));
        }
    }
    let changes = changes_of(&env, &rx, &webhook_id, 20).await;

    let find = |m: &str, id: &str, op: Op| -> Vec<&ChangeEvent> {
        changes.iter().filter(|c| c.module.name() == m && &*c.id == id && c.op == op).collect()
    };
    for (m, id) in &created {
        let c = find(m, id, Op::Create);
        assert_eq!(c.len(), 1, "{m} {id} created");
        let c = c[0];
        assert!(c.before.is_none());
        assert!(c.event_type.as_deref().unwrap().ends_with("_Add"));
        assert!(c.source_ts_ms > 1_600_000_000_000);
        // Unless it was updated or deleted since, the payload is the record as Desk shows it.
        let after = Value::Object(c.after.as_ref().unwrap().to_map());
        if let Some(live) = env.state_of(m, id).await
            && !updated.iter().chain(&deleted).any(|(um, uid)| um == m && uid == id)
        {
            assert_eq!(after, live, "{m} {id}");
        }
    }
    for (m, id) in &updated {
        let ups = find(m, id, Op::Update);
        assert!(!ups.is_empty(), "{m} {id} updated");
        for c in ups {
            let before = c.before.as_ref().expect("prevState gives a before-image").to_map();
            let after = c.after.as_ref().unwrap().to_map();
            assert_ne!(before, after, "{m} {id}: the update changed something");
            assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
            assert_eq!(before["id"], after["id"]);
            assert_eq!(c.event_type.as_deref().unwrap(), format!("{}_Update", stem(c.module)));
        }
    }
    for (m, id) in &deleted {
        let c = find(m, id, Op::Delete);
        assert_eq!(c.len(), 1, "{m} {id} deleted");
        assert!(c[0].after.is_none());
        assert_eq!(Value::Object(c[0].before.as_ref().unwrap().to_map()), json!({"id": id}));
        assert!(env.state_of(m, id).await.is_none());
    }
    // Deliveries keep Desk's order within the subscription: event times never go backwards.
    let times: Vec<i64> = changes.iter().map(|c| c.source_ts_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    rx.stop();
}

fn stem(m: Module) -> &'static str {
    match m {
        Module::Tickets => "Ticket",
        Module::Contacts => "Contact",
        Module::Tasks => "Task",
        Module::Agents => "Agent",
        _ => "?",
    }
}

#[tokio::test]
async fn deletes_as_is_deleted_updates_and_full_payloads_map_to_deletes() {
    let cfg =
        SimConfig { delete_style: DeleteStyle::Both, delete_payload: DeletePayload::Full, ..quick_sim() };
    let env = start(cfg).await;
    let rx = Receiver::start().await;
    let webhook_id = subscribe(&env, &rx).await;
    let ticket = env.mutate("tickets", "delete", 1).await.remove(0);
    let task = env.mutate("tasks", "delete", 1).await.remove(0);
    let changes = changes_of(&env, &rx, &webhook_id, 4).await;
    for (module, id, flag) in [(Module::Tickets, &ticket, "isTrashed"), (Module::Tasks, &task, "isDeleted")] {
        let ds: Vec<&ChangeEvent> = changes.iter().filter(|c| c.module == module && *c.id == **id).collect();
        assert_eq!(ds.len(), 2, "{module}: *_Delete and the IsDel *_Update");
        assert!(ds.iter().all(|c| c.op == Op::Delete && c.after.is_none()), "{ds:?}");
        let kinds: Vec<&str> = ds.iter().map(|c| c.event_type.as_deref().unwrap()).collect();
        assert!(kinds.iter().any(|k| k.ends_with("_Delete")) && kinds.iter().any(|k| k.ends_with("_Update")));
        // Full delete payload: the last state. IsDel update: the state before the flag flipped.
        for c in ds {
            let before = c.before.as_ref().unwrap().to_map();
            assert!(before.len() > 5, "a full record: {before:?}");
            let expected = c.event_type.as_deref().unwrap().ends_with("_Delete");
            assert_eq!(before[flag], json!(expected), "{:?}", c.event_type);
        }
    }
}

/// An RSA key of our own, to forge tokens with.
struct Forger {
    key: KeyPair,
    n: String,
    e: String,
}

impl Forger {
    fn new() -> Self {
        let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let comps: PublicKeyComponents<Vec<u8>> = key.public_key().into();
        Self { n: URL_SAFE_NO_PAD.encode(&comps.n), e: URL_SAFE_NO_PAD.encode(&comps.e), key }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": self.n, "e": self.e})
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn good_claims(webhook: &str) -> Value {
    json!({"iss": format!("orgId:{ORG}"), "aud": format!("webhookId:{webhook}"), "iat": now(), "exp": now() + 300})
}

#[tokio::test]
async fn tokens_verify_against_the_desk_jwks_and_forgeries_do_not() {
    let env = start(SimConfig::default()).await;
    let signer = &env.sim.sim.signer;
    let org: u64 = ORG.parse().unwrap();
    let v = JwksVerifier::new(&env.base, reqwest::Client::new());
    let t = now();

    let good = signer.token(org, "555", t).unwrap();
    let c = v.verify(&good, ORG, Some("555")).await.unwrap();
    assert_eq!((c.webhook_id.as_str(), c.kid.as_str()), ("555", signer.kid()));
    assert!(c.exp > c.iat);
    // Without a known webhook id any webhookId: audience passes; with one, only it.
    assert!(v.verify(&good, ORG, None).await.is_ok());
    let err = v.verify(&good, ORG, Some("556")).await.unwrap_err();
    assert!(matches!(err, JwtError::Audience { .. }), "{err:?}");
    assert_eq!(err.status(), 401);

    let other_org = signer.token(60000000002, "555", t).unwrap();
    assert!(matches!(v.verify(&other_org, ORG, Some("555")).await, Err(JwtError::Issuer { .. })));
    let expired = signer.token(org, "555", t - 1000).unwrap();
    assert!(matches!(v.verify(&expired, ORG, Some("555")).await, Err(JwtError::Expired)));
    let future = signer.token(org, "555", t + 1000).unwrap();
    assert!(matches!(v.verify(&future, ORG, Some("555")).await, Err(JwtError::NotYetValid)));

    // Claims changed after signing.
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["aud"] = json!("webhookId:999");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    assert!(matches!(v.verify(&tampered, ORG, None).await, Err(JwtError::BadSignature)));

    // Our own key: under Desk's kid the signature fails; under our kid the key is unknown.
    let forger = Forger::new();
    let wrong_key =
        forger.sign(&json!({"alg": "RS256", "typ": "JWT", "kid": signer.kid()}), &good_claims("555"));
    assert!(matches!(v.verify(&wrong_key, ORG, Some("555")).await, Err(JwtError::BadSignature)));
    let own_kid = forger.sign(&json!({"alg": "RS256", "kid": "attacker"}), &good_claims("555"));
    assert!(matches!(v.verify(&own_kid, ORG, Some("555")).await, Err(JwtError::UnknownKid)));
    // A token pointing at its own key set is not believed: the JWKS address is configuration only.
    let jku = forger.sign(
        &json!({"alg": "RS256", "kid": "attacker", "jku": "http://127.0.0.1:9/jwks.json", "jwk": forger.jwk("attacker")}),
        &good_claims("555"),
    );
    assert!(matches!(v.verify(&jku, ORG, Some("555")).await, Err(JwtError::UnknownKid)));
    let no_kid = forger.sign(&json!({"alg": "RS256"}), &good_claims("555"));
    assert!(matches!(v.verify(&no_kid, ORG, Some("555")).await, Err(JwtError::MissingKid)));

    // alg none, and HS256 keyed with Desk's public modulus (algorithm confusion).
    let body = URL_SAFE_NO_PAD.encode(good_claims("555").to_string());
    let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#));
    assert!(matches!(v.verify(&none, ORG, None).await, Err(JwtError::Algorithm(_))));
    let jwks = signer.jwks();
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(signer.kid().to_owned());
    let hs = jsonwebtoken::encode(
        &hs_header,
        &good_claims("555"),
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()),
    )
    .unwrap();
    let err = v.verify(&hs, ORG, None).await.unwrap_err();
    assert!(matches!(err, JwtError::Algorithm(_)), "{err:?}");
    assert!(!err.to_string().contains(&hs), "the token is never echoed");
}

/// A JWKS endpoint we control: its keys can be swapped and its fetches counted.
struct KeyServer {
    base: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicU32>,
}

async fn key_server(initial: Value) -> KeyServer {
    let keys = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicU32::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(k.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    KeyServer { base, keys, fetches }
}

#[tokio::test]
async fn key_rotation_refetches_the_jwks_at_a_bounded_rate() {
    let a = Forger::new();
    let b = Forger::new();
    let server = key_server(json!({"keys": [a.jwk("a")]})).await;
    let v =
        JwksVerifier::new(&server.base, reqwest::Client::new()).with_min_refetch(Duration::from_millis(300));
    let tok = |f: &Forger, kid: &str| f.sign(&json!({"alg": "RS256", "kid": kid}), &good_claims("1"));

    v.verify(&tok(&a, "a"), ORG, Some("1")).await.unwrap();
    v.verify(&tok(&a, "a"), ORG, Some("1")).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // Unknown kids right after a fetch do not reach Desk: a flood of random kids costs nothing.
    for i in 0..20 {
        let r = v.verify(&tok(&b, &format!("rnd{i}")), ORG, Some("1")).await;
        assert!(matches!(r, Err(JwtError::UnknownKid)), "{r:?}");
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // Desk rotates to key b; once the interval has passed one refetch picks it up.
    *server.keys.lock().unwrap() = json!({"keys": [b.jwk("b")]});
    tokio::time::sleep(Duration::from_millis(350)).await;
    let results: Vec<_> =
        futures::future::join_all((0..10).map(|_| async { v.verify(&tok(&b, "b"), ORG, Some("1")).await }))
            .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2, "concurrent deliveries share one refetch");
    assert!(matches!(v.verify(&tok(&a, "a"), ORG, Some("1")).await, Err(JwtError::UnknownKid)));

    // Desk's key set unreachable and nothing cached: the bridge cannot check, so 503 rather than 401.
    let down = JwksVerifier::new("http://127.0.0.1:9", reqwest::Client::new());
    let err = down.verify(&tok(&a, "a"), ORG, None).await.unwrap_err();
    assert!(matches!(err, JwtError::JwksUnavailable { .. }), "{err:?}");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn workflow_cliq_notifications_parse_into_hints() {
    let rx = Receiver::start().await;
    let cfg = SimConfig { cliq_url: Some(format!("{}/cliq", rx.base)), ..quick_sim() };
    let env = start(cfg).await;
    let updated = env.mutate("tickets", "update", 1).await.remove(0);
    let created = env.mutate("tickets", "create", 1).await.remove(0);
    let posts = rx.wait_for("/cliq", 2).await;
    let mut hints = Vec::new();
    for p in &posts {
        assert!(p.jwt.is_none(), "workflow notifications are unsigned");
        match parse_delivery(&p.body, ORG).unwrap() {
            Delivery::Notification(h) => hints.extend(h),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        hints,
        vec![Hint { module: Module::Tickets, id: updated }, Hint { module: Module::Tickets, id: created }]
    );
}
