//! The control API (`/_sim/...`, CONTRACT §8): grant codes, mutations, workload, ground-truth state,
//! stats and fault injection. Not part of Desk; no authentication.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::faults::FaultKind;
use super::module::Module;
use super::mutate::{self, Op};
use super::{Sim, api, lock};

/// Scopes a grant code carries when the request names none: read everything, manage webhooks.
pub const DEFAULT_SCOPES: &str = "Desk.tickets.READ,Desk.tickets.UPDATE,Desk.contacts.READ,Desk.basic.READ,\
Desk.settings.READ,Desk.search.READ,Desk.products.READ,Desk.tasks.READ,Desk.calls.READ,Desk.events.READ,\
Desk.contracts.READ,Desk.articles.READ,Desk.activities.READ,Desk.webhooks.ALL";

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/grant-codes", post(grant_codes))
        .route("/_sim/mutations", post(mutations))
        .route("/_sim/workload", post(workload))
        .route("/_sim/state/{module}", get(state))
        .route("/_sim/stats", get(stats))
        .route("/_sim/faults", post(faults).delete(clear_faults))
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg.into()}))).into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| Box::new(bad(format!("invalid JSON body: {e}"))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantReq {
    scopes: Option<String>,
    ttl_s: Option<u64>,
}

async fn grant_codes(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req: GrantReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let scopes = req.scopes.unwrap_or_else(|| DEFAULT_SCOPES.to_owned());
    let ttl = req.ttl_s.map_or(sim.cfg.grant_code_ttl, Duration::from_secs);
    let code = lock(&sim.oauth).issue_code(&scopes, ttl);
    axum::Json(json!({
        "code": code,
        "client_id": sim.cfg.client_id,
        "client_secret": sim.cfg.client_secret,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MutationReq {
    module: String,
    op: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    ids: Vec<String>,
}

fn one() -> usize {
    1
}

async fn mutations(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req: MutationReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(module) = Module::from_name(&req.module) else {
        return bad(format!("unknown module '{}'", req.module));
    };
    let Some(op) = Op::parse(&req.op) else {
        return bad(format!("unknown op '{}' (create, update or delete)", req.op));
    };
    if req.count > 100_000 {
        return bad("count must be at most 100000");
    }
    match mutate::apply(&sim, module, op, req.count, &req.ids) {
        Ok(ids) => axum::Json(json!({"ids": ids})).into_response(),
        Err(e) => {
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadReq {
    rate_per_s: f64,
    duration_s: f64,
    #[serde(default)]
    modules: Vec<String>,
    #[serde(default)]
    mix: Option<Mix>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Mix {
    #[serde(default)]
    create: f64,
    #[serde(default)]
    update: f64,
    #[serde(default)]
    delete: f64,
}

async fn workload(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req: WorkloadReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let rate_ok = req.rate_per_s > 0.0 && req.rate_per_s <= 100_000.0;
    let duration_ok = req.duration_s > 0.0 && req.duration_s <= 86_400.0;
    if !rate_ok || !duration_ok {
        return bad("rate_per_s must be in (0, 100000] and duration_s in (0, 86400]");
    }
    let mut modules = Vec::new();
    for name in &req.modules {
        match Module::from_name(name) {
            Some(m) if m != Module::OrganizationFields => modules.push(m),
            _ => return bad(format!("unknown module '{name}'")),
        }
    }
    if modules.is_empty() {
        modules.push(Module::Tickets);
    }
    let mix = req.mix.unwrap_or(Mix { create: 0.2, update: 0.7, delete: 0.1 });
    let total_w = mix.create + mix.update + mix.delete;
    if total_w <= 0.0 || total_w.is_nan() || mix.create < 0.0 || mix.update < 0.0 || mix.delete < 0.0 {
        return bad("mix weights must be non-negative and not all zero");
    }
    let total = (req.rate_per_s * req.duration_s).round() as u64;
    tokio::spawn(run_workload(sim.clone(), req.rate_per_s, total, modules, mix));
    axum::Json(json!({"accepted": true, "planned_mutations": total})).into_response()
}

async fn run_workload(sim: Arc<Sim>, rate: f64, total: u64, modules: Vec<Module>, mix: Mix) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let sum = mix.create + mix.update + mix.delete;
    for n in 0..total {
        let due = start + period.mul_f64(n as f64);
        tokio::select! {
            () = sim.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(due) => {}
        }
        let (module, op) = {
            let mut rng = lock(&sim.rng);
            let m = modules[rng.below(modules.len() as u64) as usize];
            let u = rng.unit() * sum;
            let op = if u < mix.create {
                Op::Create
            } else if u < mix.create + mix.update {
                Op::Update
            } else {
                Op::Delete
            };
            (m, op)
        };
        // Threads and comments only grow (and comments get edited); deletes turn into creates there.
        let op = match (module, op) {
            (Module::TicketThreads, _) => Op::Create,
            (Module::TicketComments, Op::Delete) => Op::Create,
            (_, op) => op,
        };
        if let Err(e) = mutate::apply(&sim, module, op, 1, &[]) {
            tracing::debug!(error = %e, "workload step skipped");
        }
    }
}

/// Streams the array in chunks so a million tickets never sit in memory as one string.
async fn state(State(sim): State<Arc<Sim>>, Path(module): Path<String>) -> Response {
    let Some(module) = Module::from_name(&module) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("unknown module '{module}'")})))
            .into_response();
    };
    const CHUNK: usize = 2000;
    let stream = futures::stream::unfold((0usize, false, false), move |(from, first_done, finished)| {
        let sim = sim.clone();
        async move {
            if finished {
                return None;
            }
            let (recs, last) = api::state_records(&sim, module, from, CHUNK);
            let mut buf = Vec::new();
            if from == 0 {
                buf.push(b'[');
            }
            let mut first = !first_done;
            for r in recs {
                if !first {
                    buf.push(b',');
                }
                first = false;
                if serde_json::to_writer(&mut buf, &r).is_err() {
                    buf.extend_from_slice(b"null");
                }
            }
            if last {
                buf.push(b']');
            }
            let any_written = first_done || !first;
            Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), (from + CHUNK, any_written, last)))
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn stats(State(sim): State<Arc<Sim>>) -> Response {
    let s = &sim.stats;
    axum::Json(json!({
        "requests_total": s.requests_total.load(Ordering::Relaxed),
        "status_counts": s.status_counts(),
        "credits_used": sim.quota.credits_used_total.load(Ordering::Relaxed),
        "webhook_deliveries": {
            "ok": s.webhook_ok.load(Ordering::Relaxed),
            "failed": s.webhook_failed.load(Ordering::Relaxed),
            "dropped": s.webhook_dropped.load(Ordering::Relaxed),
        },
        "webhook_events": s.webhook_events.load(Ordering::Relaxed),
        "cliq_notifications": {
            "ok": s.cliq_ok.load(Ordering::Relaxed),
            "failed": s.cliq_failed.load(Ordering::Relaxed),
        },
        "tokens_issued": lock(&sim.oauth).tokens_issued,
        "mutations": s.mutations.load(Ordering::Relaxed),
        "webhooks": lock(&sim.webhooks).subs.len(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultReq {
    kind: String,
    #[serde(default = "full_ratio")]
    ratio: f64,
    #[serde(default = "thirty")]
    duration_s: f64,
    /// Extra delay for `latency` faults.
    #[serde(default = "latency_default")]
    latency_ms: u64,
}

fn full_ratio() -> f64 {
    1.0
}
fn thirty() -> f64 {
    30.0
}
fn latency_default() -> u64 {
    2000
}

async fn faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req: FaultReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(kind) = FaultKind::parse(&req.kind) else {
        return bad(format!(
            "unknown kind '{}' (http_500, latency, rate_limit, revoke_tokens, drop_webhooks, truncated_body, empty_object)",
            req.kind
        ));
    };
    if !((0.0..=1.0).contains(&req.ratio) && (0.0..=86_400.0).contains(&req.duration_s)) {
        return bad("ratio must be in [0, 1] and duration_s in [0, 86400]");
    }
    if kind == FaultKind::RevokeTokens {
        lock(&sim.oauth).revoke_all_access();
    } else {
        lock(&sim.faults).add(
            kind,
            req.ratio,
            Duration::from_secs_f64(req.duration_s),
            Duration::from_millis(req.latency_ms),
        );
    }
    axum::Json(json!({"ok": true, "kind": req.kind, "ratio": req.ratio, "duration_s": req.duration_s}))
        .into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    lock(&sim.faults).clear();
    axum::Json(json!({"ok": true})).into_response()
}
