//! The bad-input catalogue (issue 10, item 3): every class of malformed input the bridge can be sent, one
//! table row each, with the answer the sender sees.
//!
//! Webhook rows run against one bridge (JWT verification on, `tickets` only). For every row the test checks:
//! * the HTTP status and the message of the answer;
//! * the metric that counts the class moved (scraped from `/metrics`);
//! * nothing was lost: a good, signed delivery sent right after the row is answered 200;
//! * at the end, a `read_committed` read of the topic holds exactly the good deliveries' records and those
//!   of the rows accepted on purpose: every row's records have ids of their own, so an extra or a missing
//!   id names its row.
//!
//! Config rows run `zoho-desk-cdc check` on a broken file and check the exit code (2) and the message.
//!
//! The answers come from `src/http/webhook.rs` (path, method, size), `src/zoho/webhook.rs` (body),
//! `src/zoho/jwks.rs` (token) and `src/pipeline/stream.rs` (conversion, skips). When a limit changes there,
//! change the row here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use zoho_desk_cdc::sim::{SimConfig, Simulator};

const ORG: &str = "60000000001";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An RSA key of our own, to forge tokens with.
struct Forger {
    key: KeyPair,
}

impl Forger {
    fn new() -> Self {
        Self { key: KeyPair::generate(KeySize::Rsa2048).unwrap() }
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
}

fn claims() -> Value {
    json!({"iss": format!("orgId:{ORG}"), "aud": "webhookId:1", "iat": now(), "exp": now() + 300})
}

/// A loopback server that counts every request it gets (any path): the SSRF canary.
async fn canary() -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"keys": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

/// Where a row's request goes.
#[derive(Clone, Copy)]
enum Target {
    ServiceUrl,
    WrongSecret,
    UnknownSource,
    NoSecret,
    ExtraSegment,
}

/// How the request is sent.
#[derive(Clone, Copy, PartialEq)]
enum Method {
    Post,
    Get,
    Put,
    /// Written on a raw socket (for header floods reqwest would refuse to build).
    Raw,
}

/// What the row expects.
enum Expect {
    /// Refused: status, a substring of the answer, and the `reason` of `webhook_rejected_total` that must
    /// move (`None`: answered by hyper before the router, so no metric can see it).
    Refused { status: u16, message: &'static str, reason: Option<&'static str> },
    /// Accepted (200): the record ids it writes (in order), and a metric series that must move.
    Accepted { produces: Vec<String>, metric: (&'static str, Vec<(&'static str, &'static str)>) },
}

struct Row {
    class: &'static str,
    method: Method,
    target: Target,
    content_type: Option<&'static str>,
    jwt: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    expect: Expect,
}

fn refused(status: u16, message: &'static str, reason: &'static str) -> Expect {
    Expect::Refused { status, message, reason: Some(reason) }
}

/// A `Ticket_Add` delivery of record `id`.
fn ticket_add(id: &str) -> Vec<u8> {
    json!([{"eventType": "Ticket_Add", "orgId": ORG, "eventTime": (now() * 1000).to_string(),
            "payload": {"id": id, "subject": "bad-input", "modifiedTime": "2026-01-01T00:00:00.000Z"}}])
    .to_string()
    .into_bytes()
}

fn body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// The catalogue. `good` signs a valid token; `rid(n)` is a record id for row `n` that exists nowhere else.
fn webhook_rows(
    good: &dyn Fn() -> String,
    sim: &zoho_desk_cdc::sim::Sim,
    canary: &str,
    ticket: &str,
) -> Vec<Row> {
    let org: u64 = ORG.parse().unwrap();
    let t = now();
    let forger = Forger::new();
    let kid = sim.signer.kid().to_owned();
    let rid = |n: u32| format!("18920000{n:08}");
    let row = |class, body: Vec<u8>, expect| Row {
        class,
        method: Method::Post,
        target: Target::ServiceUrl,
        content_type: Some("application/json"),
        jwt: Some(good()),
        headers: vec![],
        body,
        expect,
    };
    let jwt_row = |class, jwt: Option<String>, message, reason, n| Row {
        jwt,
        ..row(class, ticket_add(&rid(n)), refused(401, message, reason))
    };
    let at = |class, target, expect| Row { target, ..row(class, ticket_add(&rid(999)), expect) };
    let ev = |extra: Value| {
        let mut e = json!({"eventType": "Ticket_Add", "orgId": ORG, "eventTime": "1767225600000",
                           "payload": {"id": rid(1)}});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(k);
            } else {
                e[k] = v.clone();
            }
        }
        json!([e])
    };
    let good_claims = claims();
    let unsigned = {
        let good = sim.signer.token(org, "1", t).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    let tampered = {
        let good = sim.signer.token(org, "1", t).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let mut c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        c["aud"] = json!("webhookId:999");
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(c.to_string()), parts[2])
    };
    let hs256 = {
        let n = sim.signer.jwks()["keys"][0]["n"].as_str().unwrap().to_owned();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, &good_claims, &jsonwebtoken::EncodingKey::from_secret(n.as_bytes())).unwrap()
    };
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims.to_string())
    );
    // A token that names its own key set, certificate URL, embedded key and chain: all must be ignored.
    let steering = forger.sign(
        &json!({"alg": "RS256", "kid": "attacker", "jku": format!("{canary}/jwks.json"),
                "x5u": format!("{canary}/cert.pem"), "x5c": ["MIIBIjANBg=="],
                "jwk": {"kty": "RSA", "kid": "attacker", "n": "AQAB", "e": "AQAB"}}),
        &good_claims,
    );
    // The same, under Desk's kid: verified against Desk's key only, so the forged signature fails.
    let steering_desk_kid = forger.sign(
        &json!({"alg": "RS256", "kid": kid, "jku": format!("{canary}/jwks.json"), "x5u": format!("{canary}/x")}),
        &good_claims,
    );
    let huge_header_value = "a".repeat(600 * 1024);

    vec![
        // --- the body ---
        row("not JSON", b"{not json".to_vec(), refused(400, "not JSON (syntax error)", "malformed")),
        row(
            "truncated JSON",
            br#"[{"eventType": "Ticket_Add", "orgId""#.to_vec(),
            refused(400, "not JSON (truncated)", "malformed"),
        ),
        row("empty body", Vec::new(), refused(400, "not JSON (truncated)", "malformed")),
        row("not UTF-8", b"\xff\xfe[]".to_vec(), refused(400, "not JSON", "malformed")),
        row(
            "nesting 10,000 deep",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            // Valid JSON, read without recursion (the records are kept as text): its first event is no object.
            refused(400, "event 0: not an object", "malformed"),
        ),
        row(
            "top level a number",
            b"42".to_vec(),
            refused(400, "neither an array of events nor a notification object", "malformed"),
        ),
        row(
            "top level an array of numbers",
            b"[1, 2]".to_vec(),
            refused(400, "event 0: not an object", "malformed"),
        ),
        row(
            "object with neither eventType nor text",
            body(json!({"payload": {"id": rid(2)}})),
            refused(400, "an object without `eventType` or `text`", "malformed"),
        ),
        row(
            "eventType missing",
            body(ev(json!({"eventType": null}))),
            refused(400, "`eventType` missing or not a string", "malformed"),
        ),
        row(
            "eventType not a string",
            body(ev(json!({"eventType": 7}))),
            refused(400, "`eventType` missing or not a string", "malformed"),
        ),
        row("orgId missing", body(ev(json!({"orgId": null}))), refused(400, "`orgId` missing", "malformed")),
        row(
            "payload missing",
            body(ev(json!({"payload": null}))),
            refused(400, "`payload.id` missing or not an id", "malformed"),
        ),
        row(
            "payload not an object",
            body(ev(json!({"payload": [rid(3)]}))),
            refused(400, "`payload` is not an object", "malformed"),
        ),
        row(
            "payload.id an object",
            body(ev(json!({"payload": {"id": {"x": 1}}}))),
            refused(400, "`payload.id` missing or not an id", "malformed"),
        ),
        row(
            "prevState not an object",
            body(ev(json!({"eventType": "Ticket_Update", "prevState": 3}))),
            refused(400, "`prevState` is not an object", "malformed"),
        ),
        row(
            "one bad event refuses its whole batch",
            body(json!([
                {"eventType": "Ticket_Add", "orgId": ORG, "payload": {"id": rid(4)}},
                {"eventType": "Ticket_Add", "orgId": ORG, "payload": {}},
            ])),
            refused(400, "event 1: `payload.id` missing", "malformed"),
        ),
        row(
            "event of another org",
            body(ev(json!({"orgId": "70000000009"}))),
            refused(401, "webhook event for org 70000000009", "org_mismatch"),
        ),
        row(
            "payload that cannot convert to Avro (prevState.id an object)",
            body(ev(json!({"eventType": "Ticket_Update", "payload": {"id": rid(5), "subject": "s"},
                           "prevState": {"id": {"x": 1}}}))),
            refused(400, "cannot be converted", "unconvertible"),
        ),
        // --- accepted on purpose: skipped, counted ---
        row(
            "unknown event type",
            body(ev(json!({"eventType": "Widget_Frobnicate"}))),
            Expect::Accepted {
                produces: vec![],
                metric: (
                    "zoho_desk_cdc_webhook_events_skipped_total",
                    vec![("source", "main"), ("reason", "unknown_type")],
                ),
            },
        ),
        row(
            "unknown module (no module maps the event prefix)",
            body(ev(json!({"eventType": "Product_Add"}))),
            Expect::Accepted {
                produces: vec![],
                metric: (
                    "zoho_desk_cdc_webhook_events_total",
                    vec![("source", "main"), ("event_type", "other")],
                ),
            },
        ),
        row(
            "event of a module not selected",
            body(ev(json!({"eventType": "Contact_Add"}))),
            Expect::Accepted {
                produces: vec![],
                metric: (
                    "zoho_desk_cdc_webhook_events_skipped_total",
                    vec![("source", "main"), ("reason", "module_not_selected")],
                ),
            },
        ),
        row(
            "Desk's validation POST (empty array)",
            b"[]".to_vec(),
            Expect::Accepted {
                produces: vec![],
                metric: ("zoho_desk_cdc_webhook_requests_total", vec![("source", "main"), ("status", "200")]),
            },
        ),
        // --- accepted on purpose: nothing Zoho sends is lost ---
        row(
            "wrong field types (kept in `extra`)",
            body(ev(json!({"payload": {"id": rid(6), "subject": 42, "createdTime": true,
                                       "cf": {"cf_a": [1, 2]}, "threadCount": "many"}}))),
            Expect::Accepted {
                produces: vec![rid(6)],
                metric: (
                    "zoho_desk_cdc_events_total",
                    vec![("source", "main"), ("module", "tickets"), ("op", "c")],
                ),
            },
        ),
        Row {
            content_type: Some("text/plain"),
            ..row(
                "Content-Type text/plain (not relied on)",
                ticket_add(&rid(7)),
                Expect::Accepted {
                    produces: vec![rid(7)],
                    metric: (
                        "zoho_desk_cdc_events_total",
                        vec![("source", "main"), ("module", "tickets"), ("op", "c")],
                    ),
                },
            )
        },
        Row {
            content_type: None,
            ..row(
                "no Content-Type",
                ticket_add(&rid(8)),
                Expect::Accepted {
                    produces: vec![rid(8)],
                    metric: (
                        "zoho_desk_cdc_events_total",
                        vec![("source", "main"), ("module", "tickets"), ("op", "c")],
                    ),
                },
            )
        },
        // --- the token ---
        jwt_row("JWT missing (verification on)", None, "missing X-ZDesk-JWT", "jwt_missing", 10),
        jwt_row("JWT header empty", Some(String::new()), "header is missing", "jwt_missing", 11),
        jwt_row("JWT not a JWT", Some("abc".into()), "is not a JWT", "jwt_malformed", 12),
        jwt_row("JWT alg none", Some(none), "algorithm is none", "jwt_algorithm", 13),
        jwt_row("JWT HS256 keyed with Desk's public key", Some(hs256), "only RS256", "jwt_algorithm", 14),
        jwt_row("JWT unsigned (empty signature)", Some(unsigned), "X-ZDesk-JWT", "jwt_bad_signature", 15),
        jwt_row(
            "JWT expired",
            Some(sim.signer.token(org, "1", t - 1000).unwrap()),
            "has expired",
            "jwt_expired",
            16,
        ),
        jwt_row(
            "JWT issued in the future",
            Some(sim.signer.token(org, "1", t + 1000).unwrap()),
            "issued in the future",
            "jwt_not_yet_valid",
            17,
        ),
        jwt_row(
            "JWT of another org",
            Some(sim.signer.token(70000000009, "1", t).unwrap()),
            "issuer is not orgId:60000000001",
            "jwt_issuer",
            18,
        ),
        jwt_row(
            "JWT claims changed after signing",
            Some(tampered),
            "does not verify",
            "jwt_bad_signature",
            19,
        ),
        jwt_row(
            "JWT signed by another key under Desk's kid",
            Some(forger.sign(&json!({"alg": "RS256", "kid": kid}), &good_claims)),
            "does not verify",
            "jwt_bad_signature",
            20,
        ),
        jwt_row(
            "JWT without kid",
            Some(forger.sign(&json!({"alg": "RS256"}), &good_claims)),
            "names no key id",
            "jwt_missing_kid",
            21,
        ),
        jwt_row(
            "JWT with jku/x5u/x5c/jwk pointing elsewhere",
            Some(steering),
            "not in Desk's JWKS",
            "jwt_unknown_kid",
            22,
        ),
        jwt_row(
            "JWT with jku/x5u under Desk's kid, forged",
            Some(steering_desk_kid),
            "does not verify",
            "jwt_bad_signature",
            23,
        ),
        jwt_row(
            "JWT longer than 8 KiB",
            Some("a.b.".to_owned() + &"c".repeat(9000)),
            "is not a JWT",
            "jwt_malformed",
            24,
        ),
        // --- the URL and method ---
        at("wrong secret", Target::WrongSecret, refused(404, "not found", "not_found")),
        Row {
            method: Method::Get,
            ..at("wrong secret (GET)", Target::WrongSecret, refused(404, "not found", "not_found"))
        },
        at("unknown source", Target::UnknownSource, refused(404, "not found", "not_found")),
        at("no secret segment", Target::NoSecret, refused(404, "not found", "not_found")),
        at("extra path segment", Target::ExtraSegment, refused(404, "not found", "not_found")),
        Row {
            method: Method::Put,
            ..at(
                "PUT on the service URL",
                Target::ServiceUrl,
                refused(405, "only GET and POST", "method_not_allowed"),
            )
        },
        // --- sizes ---
        row(
            "body over the limit",
            vec![b' '; zoho_desk_cdc::http::webhook::MAX_BODY_BYTES + 1],
            refused(413, "body larger than", "too_large"),
        ),
        Row {
            headers: vec![("x-padding".into(), huge_header_value)],
            method: Method::Raw,
            ..row(
                "one header of 600 KiB",
                ticket_add(&rid(30)),
                Expect::Refused { status: 431, message: "", reason: None },
            )
        },
        Row {
            headers: (0..150).map(|i| (format!("x-h{i}"), "v".to_owned())).collect(),
            method: Method::Raw,
            ..row(
                "150 headers",
                ticket_add(&rid(31)),
                Expect::Refused { status: 431, message: "", reason: None },
            )
        },
        // --- workflow notifications (no JWT: they carry only a hint; the record is fetched from Desk) ---
        Row {
            jwt: None,
            ..row(
                "notification without a record hint",
                body(json!({"text": "Something happened"})),
                refused(400, "has no record hint", "no_hint"),
            )
        },
        Row {
            jwt: None,
            ..row(
                "notification `text` not a string",
                body(json!({"text": 5})),
                refused(400, "`text` is not a string", "malformed"),
            )
        },
        Row {
            jwt: None,
            ..row(
                "notification naming a module without records by id",
                body(json!({"text": format!("zoho-desk-cdc module=ticket_threads id={}", rid(40))})),
                refused(400, "has no record hint", "no_hint"),
            )
        },
        Row {
            jwt: None,
            ..row(
                "notification id with a path in it",
                body(json!({"text": "zoho-desk-cdc module=tickets id=../../oauth/v2/token"})),
                refused(400, "has no record hint", "no_hint"),
            )
        },
        Row {
            jwt: None,
            ..row(
                "notification for a module not selected",
                body(json!({"text": format!("zoho-desk-cdc module=contacts id={}", rid(41))})),
                Expect::Accepted {
                    produces: vec![],
                    metric: (
                        "zoho_desk_cdc_webhook_events_skipped_total",
                        vec![("source", "main"), ("reason", "module_not_selected")],
                    ),
                },
            )
        },
        Row {
            jwt: None,
            ..row(
                "good notification (the record is fetched)",
                body(json!({"text": format!("zoho-desk-cdc module=tickets id={ticket}")})),
                Expect::Accepted {
                    produces: vec![ticket.to_owned()],
                    metric: (
                        "zoho_desk_cdc_events_total",
                        vec![("source", "main"), ("module", "tickets"), ("op", "u")],
                    ),
                },
            )
        },
    ]
}

/// The sum of the series of `name` whose labels include `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let set = rest.trim_end_matches('}');
            let ok = labels.iter().all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Sends a request on a raw socket and returns the status of the answer (0 if the server closed first).
async fn raw_status(port: u16, path: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let _ = s.write_all(body).await;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_webhook_is_refused_counted_and_writes_nothing() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let (canary_base, canary_hits) = canary().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique("badin").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let extra = "snapshot_mode = \"never\"\nmodules = [\"tickets\"]\nwebhook_secret = \"bad-input-secret-0123456789\"";
    let config = common::bridge_config_with(dir.path(), &base, &prefix, extra, wport, aport);
    // One partition: the log order is the commit order, so "the next record" is well defined.
    let text = std::fs::read_to_string(&config).unwrap().replace("partitions = 3", "partitions = 1");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let bridge = common::Bridge::start(&["run", "--config", &config]);
    let admin = format!("http://127.0.0.1:{aport}");
    common::wait_ready(&admin).await;
    let secret = "bad-input-secret-0123456789";
    let service = format!("/webhooks/zoho/main/{secret}");
    let url = |path: &str| format!("http://127.0.0.1:{wport}{path}");
    assert!(
        common::wait_http_ok(&url(&service), Duration::from_secs(60)).await,
        "service URL never answered"
    );

    let http = reqwest::Client::new();
    let org: u64 = ORG.parse().unwrap();
    let signer = &sim.sim.signer;
    let good = || signer.token(org, "1", now()).unwrap();
    let scrape =
        || async { http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap() };
    let state: Value =
        http.get(format!("{base}/_sim/state/tickets")).send().await.unwrap().json().await.unwrap();
    let ticket = state[0]["id"].as_str().unwrap().to_owned();

    // The first good delivery: the topic exists, then the consumer is positioned.
    let send_good = |id: String| {
        let (http, url, token) = (http.clone(), url(&service), good());
        async move {
            let r = http.post(url).header("X-ZDesk-JWT", token).body(ticket_add(&id)).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "good delivery {id}: {}", r.text().await.unwrap());
        }
    };
    send_good("1892999900000000".into()).await;
    let mut expected: Vec<(String, String)> = vec![("1892999900000000".into(), "first good delivery".into())];

    let rows = webhook_rows(&good, &sim.sim, &canary_base, &ticket);
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let before = scrape().await;
        let path = match row.target {
            Target::ServiceUrl => service.clone(),
            Target::WrongSecret => "/webhooks/zoho/main/not-the-secret".into(),
            Target::UnknownSource => format!("/webhooks/zoho/other/{secret}"),
            Target::NoSecret => "/webhooks/zoho/main".into(),
            Target::ExtraSegment => format!("{service}/x"),
        };
        let (status, text) = if row.method == Method::Raw {
            (raw_status(wport, &path, &row.headers, &row.body).await, String::new())
        } else {
            let mut req = match row.method {
                Method::Get => http.get(url(&path)),
                Method::Put => http.put(url(&path)),
                _ => http.post(url(&path)),
            }
            .body(row.body.clone());
            if let Some(ct) = row.content_type {
                req = req.header("content-type", ct);
            }
            if let Some(j) = &row.jwt {
                req = req.header("X-ZDesk-JWT", j);
            }
            for (k, v) in &row.headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        let after = scrape().await;
        let moved = |name: &str, labels: &[(&str, &str)]| {
            metric(&after, name, labels) > metric(&before, name, labels)
        };
        let mut problems = Vec::new();
        let produces = match &row.expect {
            Expect::Refused { status: want, message, reason } => {
                if status != *want {
                    problems.push(format!("status {status}, want {want}"));
                }
                if !text.contains(message) {
                    problems.push(format!("answer {text:?} lacks {message:?}"));
                }
                if let Some(reason) = reason {
                    if !moved("zoho_desk_cdc_webhook_rejected_total", &[("reason", reason)]) {
                        problems.push(format!("webhook_rejected_total{{reason={reason}}} did not move"));
                    }
                    let code = want.to_string();
                    if !moved("zoho_desk_cdc_webhook_requests_total", &[("status", &code)]) {
                        problems.push(format!("webhook_requests_total{{status={code}}} did not move"));
                    }
                }
                vec![]
            }
            Expect::Accepted { produces, metric: (name, labels) } => {
                if status != 200 {
                    problems.push(format!("status {status}, want 200: {text}"));
                }
                if !moved(name, labels) {
                    problems.push(format!("{name}{labels:?} did not move"));
                }
                produces.clone()
            }
        };
        // Nothing lost: a good delivery right after each row still commits (checked in Kafka at the end).
        let marker = format!("1892999900{i:06}");
        send_good(marker.clone()).await;
        expected.extend(produces.into_iter().map(|id| (id, row.class.to_owned())));
        expected.push((marker, format!("good delivery after {}", row.class)));
        eprintln!("{:<62} {status:>3} {}", row.class, if problems.is_empty() { "ok" } else { "FAILED" });
        if !problems.is_empty() {
            failures.push(format!("{}: {}", row.class, problems.join("; ")));
        }
    }
    // Nothing produced, nothing lost: Kafka holds exactly the records of the good deliveries and of the rows
    // accepted on purpose. Every row's records have ids of their own, so an extra id names its row.
    let topic = format!("{prefix}.{ORG}.tickets");
    let in_kafka = common::topic_ids(&common::bootstrap(), &topic, 1).await;
    for (id, class) in &expected {
        if !in_kafka.contains(id) {
            failures.push(format!("{class}: record {id} lost (not in Kafka)"));
        }
    }
    let wanted: std::collections::HashSet<&String> = expected.iter().map(|(id, _)| id).collect();
    for id in in_kafka.iter().filter(|id| !wanted.contains(id)) {
        failures.push(format!("record {id} reached Kafka, though no row should produce it"));
    }
    eprintln!(
        "bad-input webhook rows: in={} out={} lost={}",
        rows.len(),
        in_kafka.len(),
        expected.iter().filter(|(id, _)| !in_kafka.contains(id)).count()
    );
    let delivered = expected.iter().filter(|(id, _)| in_kafka.contains(id)).count();
    // The line scripts/chaos.sh tabulates: the records that had to reach Kafka, and those that did.
    eprintln!(
        "CHAOS scenario=bad_input_webhooks in={} out={delivered} lost={}",
        expected.len(),
        expected.len() as i64 - delivered as i64
    );
    assert_eq!(canary_hits.load(Ordering::SeqCst), 0, "the bridge fetched an address a token named");
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert!(failures.is_empty(), "catalogue rows failed:\n{}", failures.join("\n"));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    sim.stop().await.unwrap();
}

/// A good config; rows break one key each.
const GOOD: &str = r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
topic_prefix = "zohodesk"
partitions = 3
replication_factor = 1

[schema_registry]
url = "http://127.0.0.1:8081/apis/ccompat/v7"

[http]
webhook_listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
public_url = "http://127.0.0.1:8080"

[[sources]]
name = "main"
org_id = "60000000001"
data_center = "com"
client_id = "1000.ABC"
client_secret = "CONFIG-SECRET-4d1f"
credentials_file = "main.credentials.json"
desk_url = "http://127.0.0.1:8900"
list_from_base = 0
reconcile_interval_s = 900

[sources.quota]
requests_per_minute = 100
max_concurrency = 5
daily_credits = 50000
reconcile_share = 0.2
"#;

struct ConfigRow {
    class: &'static str,
    /// (from, to) replaced in [`GOOD`]; `("", text)` appends.
    edit: (&'static str, &'static str),
    env: Option<(&'static str, &'static str)>,
    exit: i32,
    message: &'static str,
}

const CONFIG_ROWS: &[ConfigRow] = &[
    ConfigRow { class: "file missing", edit: ("", ""), env: None, exit: 2, message: "file not found" },
    ConfigRow {
        class: "not TOML",
        edit: ("[kafka]", "[kafka"),
        env: None,
        exit: 2,
        message: "TOML parse error at line 2",
    },
    ConfigRow {
        class: "unterminated string (the line is not quoted back)",
        edit: ("\"CONFIG-SECRET-4d1f\"", "\"CONFIG-SECRET-4d1f"),
        env: None,
        exit: 2,
        message: "TOML parse error at line 21",
    },
    ConfigRow {
        class: "unknown key",
        edit: ("bootstrap_servers", "bootstrap_server"),
        env: None,
        exit: 2,
        message: "configuration key `bootstrap_server`",
    },
    ConfigRow {
        class: "unknown section",
        edit: ("[http]", "[htpp]"),
        env: None,
        exit: 2,
        message: "configuration key `htpp`",
    },
    ConfigRow {
        class: "wrong type",
        edit: ("partitions = 3", "partitions = \"three\""),
        env: None,
        exit: 2,
        message: "for key `kafka.partitions`",
    },
    ConfigRow {
        class: "bad socket address",
        edit: ("\"127.0.0.1:9090\"", "\"localhost\""),
        env: None,
        exit: 2,
        message: "http.admin_listen",
    },
    ConfigRow {
        class: "empty bootstrap_servers",
        edit: ("\"127.0.0.1:9092\"", "\" \""),
        env: None,
        exit: 2,
        message: "configuration key `kafka.bootstrap_servers`: must not be empty",
    },
    ConfigRow {
        class: "topic_prefix with a space",
        edit: ("\"zohodesk\"", "\"zoho desk\""),
        env: None,
        exit: 2,
        message: "configuration key `kafka.topic_prefix`",
    },
    ConfigRow {
        class: "partitions 0",
        edit: ("partitions = 3", "partitions = 0"),
        env: None,
        exit: 2,
        message: "configuration key `kafka.partitions`: must be at least 1",
    },
    ConfigRow {
        class: "replication_factor 0",
        edit: ("replication_factor = 1", "replication_factor = 0"),
        env: None,
        exit: 2,
        message: "configuration key `kafka.replication_factor`: must be at least 1",
    },
    ConfigRow {
        class: "registry URL not http",
        edit: ("http://127.0.0.1:8081/apis/ccompat/v7", "ftp://registry"),
        env: None,
        exit: 2,
        message: "configuration key `schema_registry.url`: must be an http:// or https:// URL",
    },
    ConfigRow {
        class: "public_url not a URL",
        edit: ("public_url = \"http://127.0.0.1:8080\"", "public_url = \"example.com\""),
        env: None,
        exit: 2,
        message: "configuration key `http.public_url`",
    },
    ConfigRow {
        class: "tls_cert without tls_key",
        edit: ("[http]", "[http]\ntls_cert = \"cert.pem\""),
        env: None,
        exit: 2,
        message: "configuration key `http.tls_cert`: tls_cert and tls_key must be set together",
    },
    ConfigRow {
        class: "source name with a slash",
        edit: ("name = \"main\"", "name = \"ma/in\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.name`",
    },
    ConfigRow {
        class: "duplicate source names",
        edit: (
            "",
            "\n[[sources]]\nname = \"main\"\norg_id = \"1\"\nclient_id = \"x\"\nclient_secret = \"y\"\ncredentials_file = \"c.json\"\n",
        ),
        env: None,
        exit: 2,
        message: "duplicate source name \"main\"",
    },
    ConfigRow {
        class: "org_id not numeric",
        edit: ("\"60000000001\"", "\"acme\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.org_id`: \"acme\" must be the numeric Desk org id",
    },
    ConfigRow {
        class: "unknown data center",
        edit: ("data_center = \"com\"", "data_center = \"de\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.data_center`: unknown data center \"de\"",
    },
    ConfigRow {
        class: "client_id empty",
        edit: ("\"1000.ABC\"", "\"\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.client_id`: is required",
    },
    ConfigRow {
        class: "client_secret missing",
        edit: ("client_secret = \"CONFIG-SECRET-4d1f\"", ""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.client_secret`: is required",
    },
    ConfigRow {
        class: "client_secret_file unreadable",
        edit: ("client_secret = \"CONFIG-SECRET-4d1f\"", "client_secret_file = \"/nonexistent/secret\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.client_secret_file`: cannot read /nonexistent/secret",
    },
    ConfigRow {
        class: "credentials_file missing",
        edit: ("credentials_file = \"main.credentials.json\"", ""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.credentials_file`: is required",
    },
    ConfigRow {
        class: "desk_url without scheme",
        edit: ("\"http://127.0.0.1:8900\"", "\"desk.zoho.com\""),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.desk_url`: must be an http:// or https:// URL",
    },
    ConfigRow {
        class: "unknown module",
        edit: ("list_from_base", "modules = [\"tickets\", \"contract\"]\nlist_from_base"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.modules`: unknown module \"contract\"",
    },
    ConfigRow {
        class: "list_from_base 2",
        edit: ("list_from_base = 0", "list_from_base = 2"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.list_from_base`: must be 0 or 1",
    },
    ConfigRow {
        class: "reconcile_interval_s 0",
        edit: ("reconcile_interval_s = 900", "reconcile_interval_s = 0"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.reconcile_interval_s`: must be at least 1",
    },
    ConfigRow {
        class: "quota.requests_per_minute 0",
        edit: ("requests_per_minute = 100", "requests_per_minute = 0"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.quota.requests_per_minute`: must be at least 1",
    },
    ConfigRow {
        class: "quota.max_concurrency 0",
        edit: ("max_concurrency = 5", "max_concurrency = 0"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.quota.max_concurrency`: must be at least 1",
    },
    ConfigRow {
        class: "quota.daily_credits 0",
        edit: ("daily_credits = 50000", "daily_credits = 0"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.quota.daily_credits`: must be at least 1",
    },
    ConfigRow {
        class: "quota.reconcile_share 1.5",
        edit: ("reconcile_share = 0.2", "reconcile_share = 1.5"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.quota.reconcile_share`: must be above 0 and at most 1",
    },
    ConfigRow {
        class: "request_timeout_s 0",
        edit: ("reconcile_interval_s = 900", "reconcile_interval_s = 900\nrequest_timeout_s = 0"),
        env: None,
        exit: 2,
        message: "configuration key `sources.main.request_timeout_s`: must be between 1 and 600 seconds",
    },
    ConfigRow {
        class: "bad value from the environment",
        edit: ("partitions = 3\n", ""),
        env: Some(("ZOHO_DESK_CDC__KAFKA__PARTITIONS", "0")),
        exit: 2,
        message: "configuration key `kafka.partitions`: must be at least 1",
    },
    ConfigRow {
        class: "webhook_secret too short",
        edit: ("list_from_base = 0", "list_from_base = 0\nwebhook_secret = \"short-4d1f\""),
        env: None,
        exit: 2,
        message: "configuration key `sources[0].webhook_secret`: must be at least 16 characters",
    },
    ConfigRow {
        class: "webhook_secret not a path segment",
        edit: (
            "list_from_base = 0",
            "list_from_base = 0\nwebhook_secret = \"CONFIG-SECRET-4d1f/0123456789\"",
        ),
        env: None,
        exit: 2,
        message: "configuration key `sources[0].webhook_secret`: must be at least 16 characters",
    },
    ConfigRow {
        class: "bad source value from the environment (by index)",
        edit: ("max_concurrency = 5\n", ""),
        env: Some(("ZOHO_DESK_CDC__SOURCES__0__QUOTA__MAX_CONCURRENCY", "0")),
        exit: 2,
        message: "configuration key `sources.main.quota.max_concurrency`: must be at least 1",
    },
    ConfigRow {
        class: "bad source value from the environment (by name)",
        edit: ("", "\n"),
        env: Some(("ZOHO_DESK_CDC__SOURCES__MAIN__ORG_ID", "not-a-number")),
        exit: 2,
        message: "configuration key `sources.main.org_id`",
    },
    ConfigRow {
        class: "environment names no source",
        edit: ("", "\n"),
        env: Some(("ZOHO_DESK_CDC__SOURCES__1__CLIENT_SECRET", "x")),
        exit: 2,
        message: "configuration key `ZOHO_DESK_CDC__SOURCES__1__CLIENT_SECRET`: names no source in the file",
    },
];

#[test]
fn every_bad_config_exits_2_naming_the_key() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, row) in CONFIG_ROWS.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        match row.edit {
            ("", "") => {} // no file at all
            ("", more) => std::fs::write(&path, format!("{GOOD}{more}")).unwrap(),
            (from, to) => {
                assert!(GOOD.contains(from), "{}: {from:?} not in the good config", row.class);
                std::fs::write(&path, GOOD.replacen(from, to, 1)).unwrap();
            }
        }
        let mut cmd = Command::new(common::bridge_bin());
        cmd.args(["check", "--config", path.to_str().unwrap()]);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ZOHO_DESK_CDC__")) {
            cmd.env_remove(k);
        }
        if let Some((k, v)) = row.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ok = code == row.exit && stderr.contains(row.message) && !stderr.contains("CONFIG-SECRET-4d1f");
        eprintln!("{:<52} exit {code} {}", row.class, if ok { "ok" } else { "FAILED" });
        if !ok {
            failures.push(format!("{}: exit {code} (want {}), stderr {stderr:?}", row.class, row.exit));
        }
    }
    assert!(failures.is_empty(), "config rows failed:\n{}", failures.join("\n"));
}

/// A credentials file that `auth` did not write for this source (another client, another data center, not a
/// credentials file at all) is a set-up step to redo: `run` exits 2 telling the operator to run `auth` again,
/// before it connects to anything, and without quoting the file's tokens.
#[test]
fn unusable_credentials_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("main.credentials.json");
    let config = dir.path().join("c.toml");
    let credentials_key = format!("credentials_file = \"{}\"", creds.display());
    std::fs::write(
        &config,
        GOOD.replacen("credentials_file = \"main.credentials.json\"", &credentials_key, 1),
    )
    .unwrap();
    let file = |client: &str, dc: &str| {
        format!(
            r#"{{"refresh_token": "1000.LEAK-REFRESH", "org_id": "60000000001", "data_center": "{dc}", "client_id": "{client}"}}"#
        )
    };
    for (class, text, message) in [
        ("another client", file("1000.OTHER", "com"), "was written for client 1000.OTHER"),
        ("another data center", file("1000.ABC", "eu"), "was written for data center eu"),
        ("not a credentials file", r#"{"refresh_token": 5}"#.to_owned(), "is not a credentials file"),
        (
            "no refresh token",
            file("1000.ABC", "com").replace("1000.LEAK-REFRESH", ""),
            "holds no refresh token",
        ),
    ] {
        std::fs::write(&creds, text).unwrap();
        let out = std::process::Command::new(common::bridge_bin())
            .args(["run", "--snapshot-mode", "initial_only", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{class}: {stderr}");
        assert!(stderr.contains(message) && stderr.contains("auth"), "{class}: {stderr}");
        assert!(!stderr.contains("LEAK-REFRESH"), "{class}: {stderr}");
    }
}

/// A config without `[[sources]]` has nothing to stream: `check` and `run` (which with `initial_only` would
/// otherwise report every snapshot committed) exit 2 naming `sources`.
#[test]
fn no_sources_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &GOOD[..GOOD.find("[[sources]]").unwrap()]).unwrap();
    for args in [&["check"][..], &["run", "--snapshot-mode", "initial_only"]] {
        let out = std::process::Command::new(common::bridge_bin())
            .args(args)
            .args(["--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("configuration key `sources`: configure at least one"), "{args:?}: {stderr}");
    }
}

/// Configuration and set-up errors exit 2 however deep they sit in the error: a `--source` naming no
/// configured source, and `run` before `auth` (no credentials file yet).
#[test]
fn wrapped_config_and_setup_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, GOOD).unwrap();
    let config = path.to_str().unwrap();
    for (args, want) in [
        (&["webhooks", "list", "--source", "typo", "--config", config][..], "no source named \"typo\""),
        (&["run", "--config", config], "run `zoho-desk-cdc auth"),
    ] {
        let mut cmd = std::process::Command::new(common::bridge_bin());
        cmd.args(args).current_dir(dir.path());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ZOHO_DESK_CDC__")) {
            cmd.env_remove(k);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// Usage errors (clap) exit 2 as well.
#[test]
fn usage_errors_exit_2() {
    let out = std::process::Command::new(common::bridge_bin()).args(["run", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bogus'"));
}
