//! The Desk API client of one source: every call goes through the org's [`QuotaGuard`], carries a cached
//! access token and the `orgId` header, and ends as a value, a recovered retry, or one [`ZohoError`].
//!
//! Retry policy: 429 TOO_MANY_REQUESTS, 5xx and transport failures back off exponentially with jitter, a
//! bounded number of times, and so does a 2xx body that is not what the endpoint returns; THRESHOLD_EXCEEDED
//! pauses the whole org until the reset and then retries the same call (so no caller loses its place); 401
//! refreshes the token once; other 4xx are final.

use crate::metrics::{API_INVALID_RESPONSES_TOTAL, API_REQUESTS_TOTAL};
use crate::secret::Secret;
use crate::zoho::error::ZohoError;
use crate::zoho::oauth::TokenManager;
use crate::zoho::quota::{CallKind, QuotaGuard};
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the client; the defaults suit production Desk.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole-request timeout of one attempt.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts for 5xx and transport failures (including the first).
    pub max_attempts: u32,
    /// Attempts for 429 TOO_MANY_REQUESTS (including the first).
    pub max_rate_limited_attempts: u32,
    /// First backoff; doubles per attempt up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a call may wait for Zoho Accounts to lift its token throttle before failing.
    pub max_token_wait: Duration,
    /// The first pause after Zoho Accounts throttles a token refresh; doubles per further throttle, up
    /// to ten minutes (Zoho allows 10 token requests per 10 minutes and names no retry time).
    pub token_throttle_first: Duration,
    /// How long calls wait, when Desk's X-Rate-Limit-Remaining-v3 says no call fits, before one asks again.
    pub desk_remaining_recheck: Duration,
    /// The `from` of the first record on list endpoints (reference B.1: Desk's docs disagree). With 0
    /// against a 1-based Desk, pages overlap by one record and [`crate::zoho::pager::ListPager`] drops it;
    /// with 1 against a 0-based Desk the first record would be lost, so 0 is the safe default.
    pub list_from_base: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            max_rate_limited_attempts: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_token_wait: Duration::from_secs(900),
            token_throttle_first: Duration::from_secs(60),
            desk_remaining_recheck: crate::zoho::quota::DESK_REMAINING_RECHECK,
            list_from_base: 0,
        }
    }
}

impl ClientOptions {
    /// The delay before retry number `n` (1-based): exponential, capped, with "equal jitter" so callers
    /// that failed together do not retry together.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let d = exp.min(self.backoff_max);
        let half = d / 2;
        half + Duration::from_secs_f64(half.as_secs_f64() * rand::random::<f64>())
    }
}

/// One search page: the records and Desk's total match count.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub records: Vec<Value>,
    pub count: Option<u64>,
}

pub(crate) struct Inner {
    pub(crate) source: String,
    pub(crate) org_id: String,
    pub(crate) api_base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: Arc<TokenManager>,
    pub(crate) quota: QuotaGuard,
    pub(crate) opts: ClientOptions,
}

/// A Desk client for one source. Cheap to clone (an `Arc` inside); clones share token and quota.
#[derive(Clone)]
pub struct DeskClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskClient")
            .field("source", &self.inner.source)
            .field("org_id", &self.inner.org_id)
            .field("api_base", &self.inner.api_base)
            .field("tokens", &self.inner.tokens)
            .field("quota", &self.inner.quota)
            .finish()
    }
}

/// A metric label for a path: ids become `{id}` so the label set stays bounded.
pub fn endpoint_label(path: &str) -> String {
    let path = path.trim_matches('/');
    let segs: Vec<&str> = path
        .split('/')
        .map(|s| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { "{id}" } else { s })
        .collect();
    segs.join("/")
}

/// The credit class of a GET, from its path and query.
pub fn classify(path: &str, query: &[(String, String)]) -> CallKind {
    let path = path.trim_matches('/');
    let segs: Vec<&str> = path.split('/').collect();
    let first = segs.first().copied().unwrap_or_default();
    let last = segs.last().copied().unwrap_or_default();
    let from = query.iter().find(|(k, _)| k == "from").and_then(|(_, v)| v.parse().ok());
    if last == "count" || first == "ticketsCount" {
        CallKind::Count
    } else if matches!(
        first,
        "organizations"
            | "accessibleOrganizations"
            | "fields"
            | "organizationFields"
            | "layouts"
            | "webhooks"
    ) && from.is_none()
    {
        CallKind::Metadata
    } else if segs.len() > 1 && last.bytes().all(|b| b.is_ascii_digit()) {
        CallKind::Detail
    } else {
        CallKind::Page { from: from.unwrap_or(0) }
    }
}

/// Pulls the records out of a list answer: `data`, or the module's own key (`teams`, `members`).
pub fn extract_records(body: Value) -> Vec<Value> {
    match body {
        Value::Array(a) => a,
        Value::Object(mut o) => {
            if let Some(Value::Array(a)) = o.remove("data") {
                return a;
            }
            o.into_iter()
                .find_map(|(_, v)| if let Value::Array(a) = v { Some(a) } else { None })
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn header_u64(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// What one attempt ended in.
enum Attempt {
    /// The body of a 2xx answer; `None` for 204 or a blank body.
    Done(Option<bytes::Bytes>),
    Retry {
        delay: Duration,
        rate_limited: bool,
        error: ZohoError,
    },
    Paused,
    /// 401: the token was refused (Desk's code and message, for when a fresh one is refused too).
    Reauth {
        code: String,
        message: String,
    },
    Fail(ZohoError),
}

impl DeskClient {
    pub(crate) fn from_parts(inner: Inner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    pub fn source_name(&self) -> &str {
        &self.inner.source
    }

    pub fn org_id(&self) -> &str {
        &self.inner.org_id
    }

    /// `https://desk.zoho.eu/api/v1` (or the `desk_url` override).
    pub fn api_base(&self) -> &str {
        &self.inner.api_base
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn quota(&self) -> &QuotaGuard {
        &self.inner.quota
    }

    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.inner.tokens
    }

    /// `GET {api}/{path}?{query}`; `Ok(None)` on 204. `endpoint` labels the call in metrics and errors
    /// (keep it bounded, e.g. `tickets/{id}`; [`endpoint_label`] makes one from a path).
    pub async fn get_json(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, ZohoError> {
        self.get_parsed(endpoint, path, query, Self::parse_json).await
    }

    /// A write (`POST`/`PATCH`/`DELETE`) with an optional JSON body; `Ok(None)` on 204. Retried like reads,
    /// so use it for idempotent writes (webhook subscriptions are matched by URL before creating).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ZohoError> {
        let endpoint = endpoint_label(path);
        let answer = self.call(method, &endpoint, path, query, body, CallKind::Write, Ok).await?;
        self.json(&endpoint, answer)
    }

    /// One list page: `from` exactly as sent to Desk, `limit` records at most. Empty on 204. The records
    /// come from `data` or the module's own key (`teams`).
    pub async fn list_page(
        &self,
        path: &str,
        from: u32,
        limit: u32,
        extra_query: &[(String, String)],
    ) -> Result<Vec<Value>, ZohoError> {
        let mut query = vec![("from".to_owned(), from.to_string()), ("limit".to_owned(), limit.to_string())];
        query.extend_from_slice(extra_query);
        let endpoint = endpoint_label(path);
        let kind = CallKind::Page { from: from.into() };
        let body = self.get_parsed_as(&endpoint, path, &query, kind, Self::parse_json).await?;
        Ok(body.map(extract_records).unwrap_or_default())
    }

    /// One search page (`from` is 0-based on search endpoints) with Desk's total `count`.
    pub async fn search_page(
        &self,
        path: &str,
        from: u32,
        limit: u32,
        extra_query: &[(String, String)],
    ) -> Result<SearchPage, ZohoError> {
        let mut query = vec![("from".to_owned(), from.to_string()), ("limit".to_owned(), limit.to_string())];
        query.extend_from_slice(extra_query);
        let endpoint = endpoint_label(path);
        let kind = CallKind::Page { from: from.into() };
        Ok(match self.get_parsed_as(&endpoint, path, &query, kind, Self::parse_json).await? {
            None => SearchPage::default(),
            Some(v) => {
                let count = v.get("count").and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
                SearchPage { records: extract_records(v), count }
            }
        })
    }

    /// `GET {path}/{id}`; `Ok(None)` when Desk says the record does not exist (404).
    pub async fn get_by_id(
        &self,
        path: &str,
        id: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, ZohoError> {
        let full = format!("{}/{}", path.trim_matches('/'), id);
        let endpoint = format!("{}/{{id}}", endpoint_label(path));
        match self.get_parsed_as(&endpoint, &full, query, CallKind::Detail, Self::parse_json).await {
            Err(e) if e.is_not_found() => Ok(None),
            other => other,
        }
    }

    /// The HTTP client this one calls through (shared by the source's other Desk-host calls, such as the
    /// JWKS: building one loads the system's CA certificates).
    pub fn http(&self) -> reqwest::Client {
        self.inner.http.clone()
    }

    /// Token and quota state for `/status` (no secrets).
    pub fn status(&self) -> Value {
        serde_json::json!({
            "source": self.inner.source,
            "org_id": self.inner.org_id,
            "token": self.inner.tokens.status(),
            "quota": self.inner.quota.status(),
        })
    }

    /// A GET whose 2xx body (shared text, UTF-8 checked; `None` on 204 or a blank body) `parse` reads.
    /// A body `parse` refuses (cut short, not JSON, not the endpoint's shape) is retried like a 5xx:
    /// a proxy or Desk itself sent it, and treating it as final would stop the whole source on one bad
    /// answer. Every refused body is counted in [`API_INVALID_RESPONSES_TOTAL`].
    pub async fn get_parsed<T>(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(String, String)],
        parse: impl Fn(Option<Arc<str>>) -> Result<T, String>,
    ) -> Result<T, ZohoError> {
        self.get_parsed_as(endpoint, path, query, classify(path, query), parse).await
    }

    async fn get_parsed_as<T>(
        &self,
        endpoint: &str,
        path: &str,
        query: &[(String, String)],
        kind: CallKind,
        parse: impl Fn(Option<Arc<str>>) -> Result<T, String>,
    ) -> Result<T, ZohoError> {
        let read = |body: Option<bytes::Bytes>| match body {
            None => parse(None),
            // `simdutf8`: a page is a few hundred kilobytes, and std's check was 1 % of a snapshot's instructions.
            Some(bytes) => match simdutf8::basic::from_utf8(&bytes) {
                Ok(text) => parse(Some(Arc::from(text))),
                Err(_) => Err("the body is not UTF-8".to_owned()),
            },
        };
        self.call(Method::GET, endpoint, path, query, None, kind, read).await
    }

    /// Reads a 2xx body as JSON (`None` stays `None`: a 204).
    fn parse_json(body: Option<Arc<str>>) -> Result<Option<Value>, String> {
        body.map(|text| serde_json::from_str(&text).map_err(|e| e.to_string())).transpose()
    }

    /// A body Desk answered 2xx with that is not what the endpoint returns.
    pub fn invalid_response(&self, endpoint: &str, message: String) -> ZohoError {
        ZohoError::InvalidResponse {
            source_name: self.inner.source.clone(),
            endpoint: endpoint.to_owned(),
            message,
        }
    }

    /// A 2xx body read as JSON (`None` stays `None`: a 204).
    fn json(&self, endpoint: &str, body: Option<bytes::Bytes>) -> Result<Option<Value>, ZohoError> {
        let Some(bytes) = body else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| self.invalid_response(endpoint, e.to_string()))
    }

    /// One Desk call with its retries, its 2xx body read by `parse`. A body `parse` refuses counts as a
    /// failed attempt like a 5xx (the same `max_attempts` bound both), and in
    /// [`API_INVALID_RESPONSES_TOTAL`].
    #[allow(clippy::too_many_arguments)]
    async fn call<T>(
        &self,
        method: Method,
        endpoint: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        kind: CallKind,
        parse: impl Fn(Option<bytes::Bytes>) -> Result<T, String>,
    ) -> Result<T, ZohoError> {
        let url = format!("{}/{}", self.inner.api_base, path.trim_start_matches('/'));
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        let mut reauthed = false;
        let mut token_wait = Duration::ZERO;
        loop {
            let permit = self.inner.quota.acquire(kind.cost()).await;
            // The token is taken after the quota wait, so it cannot age in the queue.
            let token = match self.inner.tokens.access_token().await {
                Ok(t) => t,
                Err(ZohoError::TokenThrottled { retry_after, source_name })
                    if token_wait < self.inner.opts.max_token_wait =>
                {
                    self.inner.quota.refund(&permit);
                    drop(permit);
                    let pause = retry_after.clamp(Duration::from_secs(1), Duration::from_secs(60));
                    tracing::warn!(
                        source = %source_name,
                        wait_s = pause.as_secs(),
                        "Zoho Accounts is throttling token requests; waiting before the next Desk call."
                    );
                    token_wait += pause;
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => {
                    self.inner.quota.refund(&permit);
                    return Err(e);
                }
            };
            let outcome = self
                .attempt(
                    &method,
                    endpoint,
                    &url,
                    path,
                    query,
                    body,
                    &token.token,
                    &permit,
                    failures,
                    rate_limited,
                )
                .await;
            drop(permit);
            match outcome {
                Attempt::Done(v) => {
                    let message = match parse(v) {
                        Ok(parsed) => return Ok(parsed),
                        Err(message) => message,
                    };
                    metrics::counter!(API_INVALID_RESPONSES_TOTAL,
                        "source" => self.inner.source.clone(), "endpoint" => endpoint.to_owned())
                    .increment(1);
                    failures += 1;
                    if failures >= self.inner.opts.max_attempts {
                        let message = format!("{message} (after {failures} attempts)");
                        return Err(self.invalid_response(endpoint, message));
                    }
                    tracing::warn!(source = %self.inner.source, endpoint, attempt = failures, error = %message,
                        "Desk answered 2xx with a body that is not what the endpoint returns; retrying.");
                    tokio::time::sleep(self.inner.opts.backoff(failures)).await;
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Paused => continue,
                Attempt::Reauth { .. } if !reauthed => {
                    reauthed = true;
                    match self.inner.tokens.token_rejected(&token.token).await {
                        // Zoho Accounts throttles refreshes: the token wait at the top of the loop takes
                        // over (bounded by `max_token_wait`), as for a token that expires while throttled.
                        // Failing here would stop a whole load on a 401 that a short wait heals.
                        Ok(_) | Err(ZohoError::TokenThrottled { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Attempt::Reauth { code, message } => {
                    return Err(ZohoError::Unauthorized {
                        source_name: self.inner.source.clone(),
                        endpoint: endpoint.to_owned(),
                        status: 401,
                        code,
                        message,
                    });
                }
                Attempt::Retry { delay, rate_limited: rl, error } => {
                    let (n, max) = if rl {
                        rate_limited += 1;
                        (rate_limited, self.inner.opts.max_rate_limited_attempts)
                    } else {
                        failures += 1;
                        (failures, self.inner.opts.max_attempts)
                    };
                    if n >= max {
                        return Err(error);
                    }
                    tracing::debug!(source = %self.inner.source, endpoint, attempt = n, error = %error, "Retrying Desk call.");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: &Method,
        endpoint: &str,
        url: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        token: &Secret,
        permit: &crate::zoho::quota::QuotaPermit,
        failures: u32,
        rate_limited: u32,
    ) -> Attempt {
        let inner = &self.inner;
        let mut req = inner
            .http
            .request(method.clone(), url)
            .timeout(inner.opts.request_timeout)
            .header("Authorization", format!("Zoho-oauthtoken {}", token.expose()));
        // Every Desk endpoint but /organizations requires the org header.
        if !path.trim_start_matches('/').starts_with("organizations") {
            req = req.header("orgId", &inner.org_id);
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let count = |status: &str| {
            metrics::counter!(API_REQUESTS_TOTAL,
                "source" => inner.source.clone(), "endpoint" => endpoint.to_owned(), "status" => status.to_owned())
            .increment(1);
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                count(if e.is_timeout() { "timeout" } else { "error" });
                let n = failures + 1;
                return Attempt::Retry {
                    delay: inner.opts.backoff(n),
                    rate_limited: false,
                    error: ZohoError::Transport {
                        source_name: inner.source.clone(),
                        what: format!("Desk ({endpoint})"),
                        attempts: n,
                        message: e.without_url().to_string(),
                    },
                };
            }
        };
        let status = resp.status().as_u16();
        count(&status.to_string());
        let headers = resp.headers().clone();
        let weight = header_u64(&headers, "x-rate-limit-request-weight-v3");
        let remaining = header_u64(&headers, "x-rate-limit-remaining-v3");
        let retry_after = header_u64(&headers, "retry-after").map(Duration::from_secs);
        if weight.is_some() || remaining.is_some() {
            inner.quota.observe(permit, weight, remaining);
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let n = failures + 1;
                return Attempt::Retry {
                    delay: inner.opts.backoff(n),
                    rate_limited: false,
                    error: ZohoError::Transport {
                        source_name: inner.source.clone(),
                        what: format!("Desk ({endpoint})"),
                        attempts: n,
                        message: e.without_url().to_string(),
                    },
                };
            }
        };
        if (200..300).contains(&status) {
            if status == 204 || bytes.iter().all(u8::is_ascii_whitespace) {
                return Attempt::Done(None);
            }
            return Attempt::Done(Some(bytes));
        }
        // Refused calls are not charged unless Desk said otherwise.
        if weight.is_none() {
            inner.quota.refund(permit);
        }
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = parsed.get("errorCode").and_then(Value::as_str).unwrap_or_default().to_owned();
        let message = parsed
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        let source_name = inner.source.clone();
        let endpoint_s = endpoint.to_owned();
        match (status, code.as_str()) {
            (429, "THRESHOLD_EXCEEDED") => {
                inner.quota.threshold_exceeded(retry_after, &message);
                Attempt::Paused
            }
            (429, _) => {
                inner.quota.too_many_requests(&message);
                let n = rate_limited + 1;
                let delay =
                    inner.opts.backoff(n).max(retry_after.unwrap_or_default().min(Duration::from_secs(60)));
                let code = if code.is_empty() { "TOO_MANY_REQUESTS".to_owned() } else { code };
                Attempt::Retry {
                    delay,
                    rate_limited: true,
                    error: ZohoError::RetriesExhausted {
                        source_name,
                        endpoint: endpoint_s,
                        attempts: n,
                        status,
                        code,
                        message,
                    },
                }
            }
            (401, _) => Attempt::Reauth { code, message },
            (403, "OAUTH_ORG_MISMATCH") => Attempt::Fail(ZohoError::OrgMismatch {
                source_name,
                org_id: inner.org_id.clone(),
                known: String::new(),
            }),
            (403, "SCOPE_MISMATCH") => {
                Attempt::Fail(ZohoError::ScopeMismatch { source_name, endpoint: endpoint_s })
            }
            (s, _) if s >= 500 || s == 408 => {
                let n = failures + 1;
                Attempt::Retry {
                    delay: inner.opts.backoff(n),
                    rate_limited: false,
                    error: ZohoError::RetriesExhausted {
                        source_name,
                        endpoint: endpoint_s,
                        attempts: n,
                        status,
                        code,
                        message,
                    },
                }
            }
            _ => Attempt::Fail(ZohoError::Desk { source_name, endpoint: endpoint_s, status, code, message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_hide_ids() {
        assert_eq!(endpoint_label("/tickets/1892000000042001/threads"), "tickets/{id}/threads");
        assert_eq!(endpoint_label("tickets"), "tickets");
    }

    #[test]
    fn calls_are_classified_for_credits() {
        let q = |from: &str| vec![("from".to_owned(), from.to_owned())];
        assert_eq!(classify("tickets", &q("0")), CallKind::Page { from: 0 });
        assert_eq!(classify("tickets/search", &q("2500")), CallKind::Page { from: 2500 });
        assert_eq!(classify("tickets/123", &[]), CallKind::Detail);
        assert_eq!(classify("tasks/count", &[]), CallKind::Count);
        assert_eq!(classify("ticketsCount", &[]), CallKind::Count);
        assert_eq!(classify("organizations", &[]), CallKind::Metadata);
        assert_eq!(classify("teams", &[]), CallKind::Page { from: 0 });
    }

    #[test]
    fn records_come_from_data_or_the_module_key() {
        assert_eq!(extract_records(json!({"data": [1, 2]})).len(), 2);
        assert_eq!(extract_records(json!({"teams": [1]})).len(), 1);
        assert_eq!(extract_records(json!([1, 2, 3])).len(), 3);
        assert!(extract_records(json!({"count": 3})).is_empty());
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let o = ClientOptions::default();
        for n in 1..12 {
            let d = o.backoff(n);
            let full = o.backoff_base.saturating_mul(1 << (n - 1)).min(o.backoff_max);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
    }
}
