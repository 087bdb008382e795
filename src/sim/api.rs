//! Desk-facing HTTP: the accounts endpoints, the JWKS, and `/api/v1/...` with Desk's authentication,
//! quota, strict parameter checks, paging rules and error bodies.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};

use super::config::FieldsMode;
use super::data::{Rec, Store};
use super::errors::DeskError;
use super::faults::FaultKind;
use super::fields;
use super::module::Module;
use super::mutate::{self, Op};
use super::oauth::has_scope;
use super::render::{self, iso, parse_iso};
use super::{Sim, lock, now_ms, query, read, webhooks};

/// Desk refuses to page past this offset.
const OFFSET_CEILING: u64 = 5000;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/oauth/v2/token", post(token))
        .route("/oauth/v2/token/revoke", post(revoke))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/{*rest}", any(api_entry))
}

fn form_params(raw: Option<&str>, headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = query::parse(raw).into_iter().collect();
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form || (!body.is_empty() && !body.starts_with(b"{")) {
        let text = String::from_utf8_lossy(body);
        params.extend(query::parse(Some(&text)));
    }
    params
}

async fn token(
    State(sim): State<Arc<Sim>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_params(raw.as_deref(), &headers, &body);
    let (status, body) = lock(&sim.oauth).token(&sim.cfg, &params);
    (status, axum::Json(body)).into_response()
}

async fn revoke(
    State(sim): State<Arc<Sim>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = form_params(raw.as_deref(), &headers, &body);
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    lock(&sim.oauth).revoke(token);
    (StatusCode::OK, axum::Json(json!({"status": "success"}))).into_response()
}

async fn jwks(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.signer.jwks()).into_response()
}

/// What a request under `/api/v1` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Organizations,
    AccessibleOrganizations,
    List(Module),
    Teams,
    Detail(Module, String),
    Search(Module),
    Count(Module),
    TicketsCount,
    Fields { legacy: bool },
    FieldDetail(String),
    MoveToTrash(Module),
    Threads(String),
    Thread(String, String),
    Comments(String),
    Comment(String, String),
    WebhookList,
    WebhookCreate,
    WebhookGet(String),
    WebhookPatch(String),
    WebhookDelete(String),
}

/// (scope families, operation) a route needs; search also needs `Desk.search.READ`.
fn scope_of(route: &Route) -> (&'static [&'static str], &'static str) {
    match route {
        Route::Organizations | Route::AccessibleOrganizations => (&["basic"], "READ"),
        Route::List(m) | Route::Detail(m, _) | Route::Search(m) | Route::Count(m) => {
            (m.scope_families(), "READ")
        }
        Route::Teams => (&["basic"], "READ"),
        Route::TicketsCount
        | Route::Threads(_)
        | Route::Thread(..)
        | Route::Comments(_)
        | Route::Comment(..) => (&["tickets"], "READ"),
        Route::Fields { .. } | Route::FieldDetail(_) => (&["settings"], "READ"),
        Route::MoveToTrash(m) => (m.scope_families(), "UPDATE"),
        Route::WebhookList | Route::WebhookGet(_) => (&["webhooks", "events", "settings"], "READ"),
        Route::WebhookCreate => (&["webhooks", "events", "settings"], "CREATE"),
        Route::WebhookPatch(_) => (&["webhooks", "events", "settings"], "UPDATE"),
        Route::WebhookDelete(_) => (&["webhooks", "events", "settings"], "DELETE"),
    }
}

fn route(method: &Method, path: &str) -> Result<Route, DeskError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let is_get = *method == Method::GET;
    let only_get = |r: Route| if is_get { Ok(r) } else { Err(DeskError::method_not_allowed()) };
    match segs.as_slice() {
        ["organizations"] => only_get(Route::Organizations),
        // Unlike /organizations, this one wants the orgId header.
        ["accessibleOrganizations"] => only_get(Route::AccessibleOrganizations),
        ["fields"] => only_get(Route::Fields { legacy: false }),
        ["fields", id] => only_get(Route::FieldDetail((*id).to_owned())),
        ["organizationFields"] => only_get(Route::Fields { legacy: true }),
        ["ticketsCount"] => only_get(Route::TicketsCount),
        ["teams"] => only_get(Route::Teams),
        ["webhooks"] => match *method {
            Method::GET => Ok(Route::WebhookList),
            Method::POST => Ok(Route::WebhookCreate),
            _ => Err(DeskError::method_not_allowed()),
        },
        ["webhooks", id] => match *method {
            Method::GET => Ok(Route::WebhookGet((*id).to_owned())),
            Method::PATCH => Ok(Route::WebhookPatch((*id).to_owned())),
            Method::DELETE => Ok(Route::WebhookDelete((*id).to_owned())),
            _ => Err(DeskError::method_not_allowed()),
        },
        ["tickets", t, "threads"] => only_get(Route::Threads((*t).to_owned())),
        ["tickets", t, "threads", th] => only_get(Route::Thread((*t).to_owned(), (*th).to_owned())),
        ["tickets", t, "comments"] => only_get(Route::Comments((*t).to_owned())),
        ["tickets", t, "comments", c] => only_get(Route::Comment((*t).to_owned(), (*c).to_owned())),
        [m, "moveToTrash"] => {
            let module = Module::from_path(m).filter(|m| m.trashable()).ok_or_else(DeskError::not_found)?;
            if *method == Method::POST {
                Ok(Route::MoveToTrash(module))
            } else {
                Err(DeskError::method_not_allowed())
            }
        }
        [m] => {
            let module = Module::from_path(m).ok_or_else(DeskError::not_found)?;
            only_get(Route::List(module))
        }
        [m, "search"] => {
            let module = Module::from_path(m).filter(|m| m.searchable()).ok_or_else(DeskError::not_found)?;
            only_get(Route::Search(module))
        }
        [m, "count"] => {
            let module = Module::from_path(m).ok_or_else(DeskError::not_found)?;
            only_get(Route::Count(module))
        }
        [m, id] => {
            let module = Module::from_path(m).ok_or_else(DeskError::not_found)?;
            only_get(Route::Detail(module, (*id).to_owned()))
        }
        _ => Err(DeskError::not_found()),
    }
}

/// Credits a route costs; list pages deeper than 2000 cost more.
fn cost_of(sim: &Sim, route: &Route, params: &[(String, String)]) -> u64 {
    let c = &sim.cfg.costs;
    let from: u64 = params.iter().find(|(k, _)| k == "from").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let page = if from > 2000 { c.list_deep } else { c.list };
    match route {
        Route::List(_) | Route::Search(_) | Route::Threads(_) | Route::Comments(_) | Route::Teams => page,
        Route::Count(_) | Route::TicketsCount => c.count,
        Route::MoveToTrash(_) | Route::WebhookCreate | Route::WebhookPatch(_) | Route::WebhookDelete(_) => {
            c.write
        }
        Route::Fields { .. }
        | Route::FieldDetail(_)
        | Route::Organizations
        | Route::AccessibleOrganizations
        | Route::WebhookList => c.metadata,
        _ => c.detail,
    }
}

fn bearer(headers: &HeaderMap, accept_bearer: bool) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, tok) = v.split_once(' ')?;
    let ok = scheme.eq_ignore_ascii_case("Zoho-oauthtoken")
        || (accept_bearer && scheme.eq_ignore_ascii_case("Bearer"));
    ok.then(|| tok.trim().to_owned())
}

async fn api_entry(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&sim, &method, &uri, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    sim: &Arc<Sim>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, DeskError> {
    let path = uri.path().strip_prefix("/api/v1/").unwrap_or_default();
    let mut params = query::parse(uri.query());
    // The token is checked before the URL, so a bad token gets 401 even on unknown paths.
    let route = route(method, path);
    let token = bearer(headers, sim.cfg.accept_bearer).ok_or_else(DeskError::invalid_oauth)?;
    let at = lock(&sim.oauth).check(&token).ok_or_else(DeskError::invalid_oauth)?;
    let route = route?;

    if route != Route::Organizations {
        let from_query = if sim.cfg.accept_org_id_query {
            params.iter().position(|(k, _)| k == "orgId").map(|i| params.remove(i).1)
        } else {
            None
        };
        let org =
            headers.get("orgId").and_then(|v| v.to_str().ok()).map(str::to_owned).or(from_query).ok_or_else(
                || {
                    DeskError::new(
                        StatusCode::BAD_REQUEST,
                        "BAD_REQUEST",
                        "The orgId header is mandatory for this request.",
                    )
                },
            )?;
        let org: u64 = org.trim().parse().map_err(|_| DeskError::internal())?;
        if org != at.org_id {
            return Err(DeskError::org_mismatch());
        }
    }
    let (families, op) = scope_of(&route);
    if !has_scope(&at.scopes, families, op) {
        return Err(DeskError::scope_mismatch());
    }
    if matches!(route, Route::Search(_)) && !has_scope(&at.scopes, &["search"], "READ") {
        return Err(DeskError::scope_mismatch());
    }

    let _slot = sim.quota.acquire(sim.cfg.effective_concurrency())?;
    let now = now_ms();
    sim.quota.check_rate(sim.cfg.requests_per_minute, now)?;
    let cost = cost_of(sim, &route, &params);
    let remaining = sim.quota.charge(cost, sim.cfg.effective_daily_credits(), now)?;
    let rate_headers = |mut e: DeskError| {
        e = e.with_header("x-rate-limit-request-weight-v3", &cost.to_string());
        e.with_header("x-rate-limit-remaining-v3", &remaining.to_string())
    };

    let (fail, limit, latency, truncate, empty) = {
        let mut f = lock(&sim.faults);
        (
            f.roll(FaultKind::Http500),
            f.roll(FaultKind::RateLimit),
            f.roll(FaultKind::Latency),
            f.roll(FaultKind::TruncatedBody).is_some(),
            f.roll(FaultKind::EmptyObject).is_some(),
        )
    };
    let delay = sim.cfg.api_latency + latency.unwrap_or_default();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if fail.is_some() {
        return Err(rate_headers(DeskError::internal()));
    }
    if limit.is_some() {
        return Err(rate_headers(DeskError::too_many_concurrent()));
    }

    let result = execute(sim, &route, &params, body).await;
    let mut resp = match result {
        Ok((status, Some(_))) if empty => (status, axum::Json(json!({}))).into_response(),
        Ok((status, Some(v))) if truncate => {
            let text = v.to_string();
            let mut cut = text.len() / 2;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let cut = text.get(..cut).unwrap_or_default().to_owned();
            (status, [(axum::http::header::CONTENT_TYPE, "application/json")], cut).into_response()
        }
        Ok((status, Some(v))) => (status, axum::Json(v)).into_response(),
        Ok((status, None)) => (status, Body::empty()).into_response(),
        Err(e) => rate_headers(e).into_response(),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cost.to_string()) {
        h.insert("x-rate-limit-request-weight-v3", v);
    }
    if let Ok(v) = HeaderValue::from_str(&remaining.to_string()) {
        h.insert("x-rate-limit-remaining-v3", v);
    }
    Ok(resp)
}

type Reply = Result<(StatusCode, Option<Value>), DeskError>;

fn ok(v: Value) -> Reply {
    Ok((StatusCode::OK, Some(v)))
}

fn no_content() -> Reply {
    Ok((StatusCode::NO_CONTENT, None))
}

/// Rejects parameters outside `allowed`, naming the first, as Desk does.
fn check_params(params: &[(String, String)], allowed: &[&str]) -> Result<(), DeskError> {
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(DeskError::extra_param(k)),
        None => Ok(()),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn parse_num(params: &[(String, String)], name: &str) -> Result<Option<u64>, DeskError> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| DeskError::invalid_param(name)),
    }
}

fn parse_id(s: &str, name: &str) -> Result<u64, DeskError> {
    s.parse::<u64>().map_err(|_| {
        DeskError::unprocessable(format!("The value passed for the '{name}' in the URL is invalid."))
    })
}

async fn execute(sim: &Arc<Sim>, route: &Route, params: &[(String, String)], body: &[u8]) -> Reply {
    match route {
        Route::Organizations | Route::AccessibleOrganizations => {
            check_params(params, &[])?;
            ok(json!({"data": [organization(sim)]}))
        }
        Route::List(m) => list(sim, *m, params),
        Route::Teams => teams(sim, params),
        Route::Detail(m, id) => detail(sim, *m, id, params),
        Route::Search(m) => search(sim, *m, params),
        Route::Count(m) => count(sim, *m, params, false),
        Route::TicketsCount => count(sim, Module::Tickets, params, true),
        Route::Fields { legacy } => field_list(sim, params, *legacy),
        Route::FieldDetail(id) => field_detail(sim, id, params),
        Route::MoveToTrash(m) => move_to_trash(sim, *m, params, body),
        Route::Threads(t) => children(sim, t, params, true),
        Route::Comments(t) => children(sim, t, params, false),
        Route::Thread(t, c) => child(sim, t, c, params, true),
        Route::Comment(t, c) => child(sim, t, c, params, false),
        Route::WebhookList => {
            check_params(params, &[])?;
            webhooks::list(sim)
        }
        Route::WebhookCreate => {
            check_params(params, &[])?;
            webhooks::create(sim, body).await
        }
        Route::WebhookGet(id) => {
            check_params(params, &[])?;
            webhooks::get(sim, parse_id(id, "webhookId")?)
        }
        Route::WebhookPatch(id) => {
            check_params(params, &[])?;
            webhooks::update(sim, parse_id(id, "webhookId")?, body).await
        }
        Route::WebhookDelete(id) => {
            check_params(params, &[])?;
            webhooks::delete(sim, parse_id(id, "webhookId")?)
        }
    }
}

fn organization(sim: &Sim) -> Value {
    json!({
        "id": sim.cfg.org_id.to_string(),
        "companyName": "Simulated Help Desk Inc",
        "portalName": sim.cfg.portal_name,
        "portalURL": format!("https://{}.zohodesk.com", sim.cfg.portal_name),
        "edition": sim.cfg.edition.name(),
        "isDefault": true,
        "isAdminInOrg": true,
        "isPayloadEncryptionEnabled": false,
        "createdTime": iso(sim.cfg.data_end_ms - 800 * 86_400_000),
    })
}

/// Record filters shared by list, search and count.
#[derive(Debug, Default)]
struct Filter {
    department: Option<Vec<u64>>,
    status: Option<Vec<String>>,
    priority: Option<Vec<String>>,
    channel: Option<Vec<String>>,
    assignee: Option<Vec<String>>,
    created: Option<(i64, i64)>,
    modified: Option<(i64, i64)>,
    text: Option<String>,
}

const TICKET_STATUS: [&str; 4] = ["Open", "On Hold", "Escalated", "Closed"];
const STATUS_TYPE: [&str; 4] = ["Open", "On Hold", "Open", "Closed"];
const PRIORITY: [&str; 4] = ["High", "Medium", "Low", "None"];
const CHANNEL: [&str; 6] = ["Email", "Phone", "Web", "Chat", "Twitter", "Forums"];

fn csv(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

fn range(params: &[(String, String)], name: &str) -> Result<Option<(i64, i64)>, DeskError> {
    let Some(v) = param(params, name) else {
        return Ok(None);
    };
    let (a, b) = v.split_once(',').ok_or_else(|| DeskError::invalid_param(name))?;
    let a = parse_iso(a).ok_or_else(|| DeskError::invalid_param(name))?;
    let b = parse_iso(b).ok_or_else(|| DeskError::invalid_param(name))?;
    if a > b {
        return Err(DeskError::invalid_param(name));
    }
    Ok(Some((a, b)))
}

fn build_filter(params: &[(String, String)]) -> Result<Filter, DeskError> {
    let mut f = Filter::default();
    let mut deps = Vec::new();
    for key in ["departmentId", "departmentIds"] {
        if let Some(v) = param(params, key) {
            if v.eq_ignore_ascii_case("allDepartment") {
                continue;
            }
            for d in csv(v) {
                deps.push(d.parse::<u64>().map_err(|_| DeskError::invalid_param(key))?);
            }
        }
    }
    if !deps.is_empty() {
        f.department = Some(deps);
    }
    f.status = param(params, "status").map(csv);
    f.priority = param(params, "priority").map(csv);
    f.channel = param(params, "channel").map(csv);
    f.assignee = param(params, "assignee").map(csv);
    f.created = range(params, "createdTimeRange")?;
    f.modified = range(params, "modifiedTimeRange")?;
    f.text = param(params, "_all").map(str::to_lowercase);
    Ok(f)
}

impl Filter {
    fn matches(&self, store: &Store, module: Module, idx: u32, r: &Rec) -> bool {
        if !r.live() {
            return false;
        }
        if let Some((a, b)) = self.created
            && (r.created < a || r.created > b)
        {
            return false;
        }
        if let Some((a, b)) = self.modified
            && (r.modified < a || r.modified > b)
        {
            return false;
        }
        if let Some(deps) = &self.department {
            let d = render::department_of(store, module, idx);
            if !d.is_some_and(|d| deps.contains(&d)) {
                return false;
            }
        }
        if module == Module::Tickets {
            if let Some(st) = &self.status {
                let s = r.status as usize % 4;
                let hit = st.iter().any(|want| match want.as_str() {
                    "${OPEN}" => STATUS_TYPE[s] == "Open",
                    "${ONHOLD}" => STATUS_TYPE[s] == "On Hold",
                    "${CLOSED}" => STATUS_TYPE[s] == "Closed",
                    other => other.eq_ignore_ascii_case(TICKET_STATUS[s]),
                });
                if !hit {
                    return false;
                }
            }
            if let Some(p) = &self.priority
                && !p.iter().any(|w| w.eq_ignore_ascii_case(PRIORITY[r.priority as usize % 4]))
            {
                return false;
            }
            if let Some(c) = &self.channel
                && !c.iter().any(|w| w.eq_ignore_ascii_case(CHANNEL[r.channel as usize % 6]))
            {
                return false;
            }
            if let Some(a) = &self.assignee {
                let id = store.rel_id(Module::Agents, r.rel[2]);
                let hit = a.iter().any(|w| match id {
                    None => w.eq_ignore_ascii_case("Unassigned"),
                    Some(i) => *w == i.to_string(),
                });
                if !hit {
                    return false;
                }
            }
        }
        if let Some(t) = &self.text {
            let text = render::detail(store, 0, "", module, idx).to_string().to_lowercase();
            if !text.contains(t.as_str()) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Created,
    Modified,
}

fn parse_sort(v: Option<&str>, allowed: &[&str]) -> Result<(SortKey, bool), DeskError> {
    let Some(v) = v else {
        return Ok((SortKey::Created, false));
    };
    let (desc, name) = match v.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, v),
    };
    if !allowed.contains(&name) {
        return Err(DeskError::invalid_param("sortBy"));
    }
    let key = if name == "modifiedTime" { SortKey::Modified } else { SortKey::Created };
    Ok((key, desc))
}

/// Indices of matching records in sort order, from `skip`, at most `take`; plus the total matches.
fn select(
    store: &Store,
    module: Module,
    f: &Filter,
    sort: (SortKey, bool),
    skip: usize,
    take: usize,
) -> (Vec<u32>, usize) {
    let table = store.table(module);
    // Tables are sorted by createdTime, so a createdTime window is a slice.
    let (lo, hi) = match f.created {
        Some((a, b)) => (table.partition_point(|r| r.created < a), table.partition_point(|r| r.created <= b)),
        None => (0, table.len()),
    };
    match sort {
        (SortKey::Created, desc) => {
            let mut total = 0usize;
            let mut out = Vec::with_capacity(take.min(1024));
            let mut visit = |i: usize| {
                let r = &table[i];
                if f.matches(store, module, i as u32, r) {
                    if total >= skip && out.len() < take {
                        out.push(i as u32);
                    }
                    total += 1;
                }
            };
            if desc {
                (lo..hi).rev().for_each(&mut visit);
            } else {
                (lo..hi).for_each(&mut visit);
            }
            (out, total)
        }
        (SortKey::Modified, desc) => {
            let mut hits: Vec<u32> = (lo..hi)
                .filter(|i| f.matches(store, module, *i as u32, &table[*i]))
                .map(|i| i as u32)
                .collect();
            let total = hits.len();
            let key = |i: &u32| (table[*i as usize].modified, *i);
            if desc {
                hits.sort_unstable_by_key(|i| std::cmp::Reverse(key(i)));
            } else {
                hits.sort_unstable_by_key(key);
            }
            let out = hits.into_iter().skip(skip).take(take).collect();
            (out, total)
        }
    }
}

fn page_limit(params: &[(String, String)], max: u32) -> Result<usize, DeskError> {
    match parse_num(params, "limit")? {
        None => Ok(10),
        Some(n) if n >= 1 && n <= u64::from(max) => Ok(n as usize),
        Some(_) => Err(DeskError::invalid_param("limit")),
    }
}

/// `from` of a list endpoint as an offset, honouring `--list-from-base`.
fn list_offset(sim: &Sim, params: &[(String, String)]) -> Result<usize, DeskError> {
    let base = u64::from(sim.cfg.list_from_base);
    let from = parse_num(params, "from")?.unwrap_or(base);
    if from >= OFFSET_CEILING {
        return Err(DeskError::from_range());
    }
    Ok(from.saturating_sub(base) as usize)
}

const TICKET_INCLUDES: &[&str] =
    &["contacts", "products", "departments", "team", "assignee", "isRead", "skills"];

fn check_include(params: &[(String, String)], allowed: &[&str]) -> Result<Vec<String>, DeskError> {
    let inc = param(params, "include").map(csv).unwrap_or_default();
    if inc.iter().any(|i| !allowed.contains(&i.as_str())) {
        return Err(DeskError::invalid_param("include"));
    }
    Ok(inc)
}

fn apply_includes(store: &Store, v: &mut Value, includes: &[String], full: &Value) {
    let Some(o) = v.as_object_mut() else {
        return;
    };
    for inc in includes {
        match inc.as_str() {
            "contacts" => {
                o.insert("contact".into(), full.get("contact").cloned().unwrap_or(Value::Null));
            }
            "assignee" => {
                let a = full
                    .get("assigneeId")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                    .and_then(|id| store.index_of(Module::Agents, id))
                    .map(|i| {
                        let d = render::detail(store, 0, "", Module::Agents, i);
                        json!({"id": d["id"], "firstName": d["firstName"], "lastName": d["lastName"],
                               "email": d["emailId"], "photoURL": Value::Null})
                    });
                o.insert("assignee".into(), a.unwrap_or(Value::Null));
            }
            "departments" => {
                let d = full
                    .get("departmentId")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                    .and_then(|id| store.index_of(Module::Departments, id))
                    .map(|i| {
                        let d = render::detail(store, 0, "", Module::Departments, i);
                        json!({"id": d["id"], "name": d["name"]})
                    });
                o.insert("department".into(), d.unwrap_or(Value::Null));
            }
            "isRead" => {
                o.insert("isRead".into(), json!(true));
            }
            _ => {}
        }
    }
}

fn ticket_fields_param(sim: &Sim, params: &[(String, String)]) -> Result<Vec<String>, DeskError> {
    let Some(v) = param(params, "fields") else {
        return Ok(Vec::new());
    };
    let wanted = csv(v);
    let store = read(&sim.store);
    let sample = render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, Module::Tickets, 0);
    let known = |f: &str| {
        f.starts_with("cf_") && fields::custom_fields(Module::Tickets).iter().any(|d| d.api_name == f)
            || sample.get(f).is_some()
            || f == "cf"
    };
    if wanted.is_empty() || wanted.len() > 30 || !wanted.iter().all(|f| known(f)) {
        return Err(DeskError::invalid_param("fields"));
    }
    Ok(wanted)
}

fn list_params(module: Module) -> &'static [&'static str] {
    match module {
        Module::Tickets => &[
            "from",
            "limit",
            "sortBy",
            "include",
            "fields",
            "departmentId",
            "departmentIds",
            "status",
            "priority",
            "channel",
            "assignee",
            "viewId",
            "teamIds",
            "receivedInDays",
        ],
        Module::Contacts => &["from", "limit", "sortBy", "include", "viewId", "fields"],
        Module::Accounts => &["from", "limit", "sortBy", "include", "viewId"],
        Module::Departments => &["from", "limit", "isEnabled", "chatStatus", "searchStr"],
        Module::Agents => {
            &["from", "limit", "status", "isConfirmed", "searchStr", "include", "departmentIds"]
        }
        Module::Products | Module::Contracts => {
            &["from", "limit", "sortBy", "departmentId", "viewId", "include"]
        }
        Module::Tasks | Module::Calls | Module::Events => {
            &["from", "limit", "sortBy", "departmentId", "include", "isCompleted"]
        }
        Module::Articles => &["from", "limit", "sortBy", "categoryId", "status", "permission"],
        _ => &["from", "limit"],
    }
}

fn list_sorts(module: Module) -> &'static [&'static str] {
    match module {
        // `modifiedTime` is not a documented sortBy for /tickets (reference B.3).
        Module::Tickets => &[
            "createdTime",
            "dueDate",
            "recentThread",
            "responseDueDate",
            "customerResponseTime",
            "ticketNumber",
        ],
        Module::Contacts => {
            &["firstName", "lastName", "phone", "email", "account", "createdTime", "modifiedTime"]
        }
        Module::Tasks => {
            &["dueDate", "createdTime", "modifiedTime", "subject", "status", "priority", "category"]
        }
        _ => &["createdTime", "modifiedTime"],
    }
}

fn list(sim: &Sim, module: Module, params: &[(String, String)]) -> Reply {
    check_params(params, list_params(module))?;
    let offset = list_offset(sim, params)?;
    let limit = page_limit(params, module.max_limit())?;
    let sort = parse_sort(param(params, "sortBy"), list_sorts(module))?;
    let includes =
        if module == Module::Tickets { check_include(params, TICKET_INCLUDES)? } else { Vec::new() };
    let extra = if module == Module::Tickets { ticket_fields_param(sim, params)? } else { Vec::new() };
    let mut filter = build_filter(params)?;
    if module != Module::Tickets {
        // Only tickets filter on these; elsewhere the names are other parameters (e.g. article status).
        filter.status = None;
    }
    let store = read(&sim.store);
    let (idxs, _) = select(&store, module, &filter, sort, offset, limit);
    if idxs.is_empty() {
        return no_content();
    }
    let only = sim.cfg.fields_mode == FieldsMode::Only;
    let data: Vec<Value> = idxs
        .into_iter()
        .map(|i| {
            let full = render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, module, i);
            let mut item = render::list_item(full.clone(), module, &extra, only);
            apply_includes(&store, &mut item, &includes, &full);
            item
        })
        .collect();
    ok(json!({"data": data}))
}

fn teams(sim: &Sim, params: &[(String, String)]) -> Reply {
    check_params(params, &["departmentId"])?;
    let filter = build_filter(params)?;
    let store = read(&sim.store);
    let (idxs, _) = select(&store, Module::Teams, &filter, (SortKey::Created, false), 0, usize::MAX);
    if idxs.is_empty() {
        return no_content();
    }
    let teams: Vec<Value> = idxs
        .into_iter()
        .map(|i| render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, Module::Teams, i))
        .collect();
    ok(json!({"teams": teams}))
}

fn detail(sim: &Sim, module: Module, id: &str, params: &[(String, String)]) -> Reply {
    let includes = if module == Module::Tickets {
        check_params(params, &["include"])?;
        check_include(params, TICKET_INCLUDES)?
    } else {
        check_params(params, &["include"])?;
        Vec::new()
    };
    let id = parse_id(id, &format!("{}Id", module.name().trim_end_matches('s')))?;
    let store = read(&sim.store);
    let idx = store.live_index_of(module, id).ok_or_else(DeskError::not_found)?;
    let full = render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, module, idx);
    let mut out = full.clone();
    apply_includes(&store, &mut out, &includes, &full);
    ok(out)
}

fn search_params(module: Module) -> &'static [&'static str] {
    match module {
        Module::Tickets => &[
            "from",
            "limit",
            "sortBy",
            "createdTimeRange",
            "modifiedTimeRange",
            "departmentId",
            "status",
            "priority",
            "channel",
            "assignee",
            "_all",
            "id",
            "ticketNumber",
            "subject",
            "email",
        ],
        _ => &[
            "from",
            "limit",
            "sortBy",
            "createdTimeRange",
            "modifiedTimeRange",
            "departmentId",
            "_all",
            "id",
        ],
    }
}

fn search(sim: &Sim, module: Module, params: &[(String, String)]) -> Reply {
    check_params(params, search_params(module))?;
    // Search is 0-based whatever the list endpoints do.
    let from = parse_num(params, "from")?.unwrap_or(0);
    let limit = page_limit(params, 100)?;
    if from >= OFFSET_CEILING {
        return Err(DeskError::from_range());
    }
    if from + limit as u64 > OFFSET_CEILING {
        return Err(DeskError::search_iterable());
    }
    let sort = parse_sort(
        param(params, "sortBy"),
        &["relevance", "createdTime", "modifiedTime", "customerResponseTime"],
    )?;
    let mut filter = build_filter(params)?;
    let mut text_terms = Vec::new();
    for key in ["ticketNumber", "subject", "email", "id"] {
        if let Some(v) = param(params, key) {
            text_terms.push((key, v.to_owned()));
        }
    }
    if module != Module::Tickets {
        filter.status = None;
    }
    let store = read(&sim.store);
    let render_one = |i: u32| render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, module, i);
    let (idxs, total) = if text_terms.is_empty() {
        select(&store, module, &filter, sort, from as usize, limit)
    } else {
        // Field matches need the rendered record; fine for the ad-hoc lookups they serve.
        let (all, _) = select(&store, module, &filter, sort, 0, usize::MAX);
        let hits: Vec<u32> = all
            .into_iter()
            .filter(|i| {
                let d = render_one(*i);
                text_terms.iter().all(|(k, v)| {
                    d.get(*k).and_then(Value::as_str).is_some_and(|s| {
                        if *k == "subject" { s.to_lowercase().contains(&v.to_lowercase()) } else { s == v }
                    })
                })
            })
            .collect();
        let total = hits.len();
        (hits.into_iter().skip(from as usize).take(limit).collect(), total)
    };
    if idxs.is_empty() {
        return no_content();
    }
    let data: Vec<Value> = idxs
        .into_iter()
        .map(|i| {
            let mut d = render_one(i);
            if let Some(o) = d.as_object_mut() {
                o.remove("description");
            }
            d
        })
        .collect();
    ok(json!({"data": data, "count": total}))
}

fn count(sim: &Sim, module: Module, params: &[(String, String)], tickets_count: bool) -> Reply {
    let allowed: &[&str] = if module == Module::Tickets {
        &[
            "departmentId",
            "status",
            "priority",
            "channel",
            "assignee",
            "viewId",
            "createdTimeRange",
            "modifiedTimeRange",
        ]
    } else {
        &["departmentId", "createdTimeRange", "modifiedTimeRange"]
    };
    check_params(params, allowed)?;
    let mut filter = build_filter(params)?;
    if module != Module::Tickets {
        filter.status = None;
    }
    let store = read(&sim.store);
    let (_, total) = select(&store, module, &filter, (SortKey::Created, false), 0, 0);
    if tickets_count {
        // ticketsCount answers the number as a string.
        ok(json!({"count": total.to_string()}))
    } else {
        ok(json!({"count": total}))
    }
}

fn field_list(sim: &Sim, params: &[(String, String)], legacy: bool) -> Reply {
    let allowed: &[&str] =
        if legacy { &["module"] } else { &["module", "apiNames", "filter", "associatedDepartments"] };
    check_params(params, allowed)?;
    let name = param(params, "module").ok_or_else(|| DeskError::invalid_param("module"))?;
    let module = fields::FIELD_MODULES
        .into_iter()
        .find(|m| m.fields_module() == Some(name))
        .ok_or_else(|| DeskError::invalid_param("module"))?;
    let store = read(&sim.store);
    let id_of = |g: u64| store.field_id(g);
    let mut data = fields::module_fields(module, &id_of, legacy);
    if let Some(names) = param(params, "apiNames").map(csv) {
        data.retain(|f| {
            f.get("apiName").and_then(Value::as_str).is_some_and(|a| names.iter().any(|n| n == a))
        });
    }
    if let Some(filter) = param(params, "filter") {
        match filter {
            "customFields" | "custom" => data.retain(|f| f["isCustomField"] == true),
            "standardFields" | "standard" => data.retain(|f| f["isCustomField"] == false),
            "all" => {}
            _ => return Err(DeskError::invalid_param("filter")),
        }
    }
    if data.is_empty() {
        return no_content();
    }
    ok(json!({"data": data}))
}

fn field_detail(sim: &Sim, id: &str, params: &[(String, String)]) -> Reply {
    check_params(params, &["module"])?;
    let id = parse_id(id, "fieldId")?;
    let store = read(&sim.store);
    let global = store.field_global(id).ok_or_else(DeskError::not_found)?;
    let (module, local) = fields::locate_field(global).ok_or_else(DeskError::not_found)?;
    let id_of = |g: u64| store.field_id(g);
    fields::field_json(module, local, &id_of, false)
        .map(|v| (StatusCode::OK, Some(v)))
        .ok_or_else(DeskError::not_found)
}

fn move_to_trash(sim: &Arc<Sim>, module: Module, params: &[(String, String)], body: &[u8]) -> Reply {
    check_params(params, &[])?;
    let key = match module {
        Module::Contacts => "contactIds",
        Module::Accounts => "accountIds",
        _ => "ticketIds",
    };
    let pointer = format!("/{key}");
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DeskError::empty_payload());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| DeskError::invalid_data(&[("/", "invalid", "the body is not JSON")]))?;
    let ids: Vec<String> = match v.get(key).and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(_) => {
            return Err(DeskError::invalid_data(&[(&pointer, "invalid", "at least one id is needed")]));
        }
        None => return Err(DeskError::invalid_data(&[(&pointer, "missing", "the id list is missing")])),
    };
    {
        let store = read(&sim.store);
        let bad = ids
            .iter()
            .any(|s| s.parse::<u64>().ok().and_then(|id| store.live_index_of(module, id)).is_none());
        if bad {
            return Err(DeskError::invalid_data(&[(
                &pointer,
                "invalid",
                "one or more ids are not live records",
            )]));
        }
    }
    mutate::apply(sim, module, Op::Delete, 0, &ids).map_err(|_| {
        DeskError::invalid_data(&[(&pointer, "invalid", "one or more ids are not live records")])
    })?;
    no_content()
}

fn children(sim: &Sim, ticket: &str, params: &[(String, String)], threads: bool) -> Reply {
    let allowed: &[&str] =
        if threads { &["from", "limit", "sortBy"] } else { &["from", "limit", "sortBy", "include"] };
    check_params(params, allowed)?;
    let max = if threads { Module::TicketThreads.max_limit() } else { Module::TicketComments.max_limit() };
    let offset = list_offset(sim, params)?;
    let limit = page_limit(params, max)?;
    let sort_name = if threads { "sendDateTime" } else { "commentedTime" };
    // Newest first unless asked otherwise, as Desk's default `-sendDateTime`.
    let desc = match param(params, "sortBy") {
        None => true,
        Some(s) if s == sort_name => false,
        Some(s) if s.strip_prefix('-') == Some(sort_name) => true,
        Some(_) => return Err(DeskError::invalid_param("sortBy")),
    };
    let id = parse_id(ticket, "ticketId")?;
    let store = read(&sim.store);
    let t = store.live_index_of(Module::Tickets, id).ok_or_else(DeskError::not_found)?;
    let n = store.get(Module::Tickets, t).map_or(0, |r| if threads { r.threads } else { r.comments });
    let mut ks: Vec<u16> = (0..n).collect();
    if desc {
        ks.reverse();
    }
    let data: Vec<Value> = ks
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|k| if threads { render::thread(&store, t, k, false) } else { render::comment(&store, t, k) })
        .collect();
    if data.is_empty() {
        return no_content();
    }
    ok(json!({"data": data}))
}

fn child(sim: &Sim, ticket: &str, child: &str, params: &[(String, String)], threads: bool) -> Reply {
    check_params(params, &["include"])?;
    let tid = parse_id(ticket, "ticketId")?;
    let cid = parse_id(child, if threads { "threadId" } else { "commentId" })?;
    let store = read(&sim.store);
    let t = store.live_index_of(Module::Tickets, tid).ok_or_else(DeskError::not_found)?;
    let module = if threads { Module::TicketThreads } else { Module::TicketComments };
    let (owner, k) = store.child_of(module, cid).ok_or_else(DeskError::not_found)?;
    let n = store.get(Module::Tickets, t).map_or(0, |r| if threads { r.threads } else { r.comments });
    if owner != t || k >= n {
        return Err(DeskError::not_found());
    }
    ok(if threads { render::thread(&store, t, k, true) } else { render::comment(&store, t, k) })
}

/// Every live record of a module as the detail endpoint shows it (ground truth for `/_sim/state`).
pub fn state_records(sim: &Sim, module: Module, from: usize, take: usize) -> (Vec<Value>, bool) {
    let store = read(&sim.store);
    match module {
        Module::TicketThreads | Module::TicketComments => {
            let threads = module == Module::TicketThreads;
            let table = store.table(Module::Tickets);
            let end = (from + take).min(table.len());
            let mut out = Vec::new();
            for (t, r) in table.iter().enumerate().take(end).skip(from) {
                if !r.live() {
                    continue;
                }
                let n = if threads { r.threads } else { r.comments };
                for k in 0..n {
                    out.push(if threads {
                        render::thread(&store, t as u32, k, true)
                    } else {
                        render::comment(&store, t as u32, k)
                    });
                }
            }
            (out, end >= table.len())
        }
        Module::OrganizationFields => {
            if from > 0 {
                return (Vec::new(), true);
            }
            let id_of = |g: u64| store.field_id(g);
            let out =
                fields::FIELD_MODULES.iter().flat_map(|m| fields::module_fields(*m, &id_of, false)).collect();
            (out, true)
        }
        _ => {
            let table = store.table(module);
            let end = (from + take).min(table.len());
            let out = (from..end)
                .filter(|i| table[*i].live())
                .map(|i| render::detail(&store, sim.cfg.org_id, &sim.cfg.portal_name, module, i as u32))
                .collect();
            (out, end >= table.len())
        }
    }
}
