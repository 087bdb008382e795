//! Zoho Accounts OAuth: the token endpoint client and the per-refresh-token access-token cache.
//!
//! Zoho allows 10 live access tokens and 10 token requests per 10 minutes per refresh token, so the
//! [`TokenManager`] hands every caller the same cached token, refreshes it once (single-flight) a little
//! before it expires or when Desk rejects it, and persists it to the credentials file so a restart
//! reuses it.

use crate::metrics::OAUTH_REFRESH_TOTAL;
use crate::secret::Secret;
use crate::zoho::credentials::{CachedToken, Credentials};
use crate::zoho::error::ZohoError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the token endpoint grants.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// Only the authorization-code grant returns one; refresh tokens are not rotated.
    pub refresh_token: Option<Secret>,
    pub expires_in: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantKind {
    Code,
    Refresh,
}

/// Zoho Accounts' token endpoint for one client.
#[derive(Clone)]
pub struct AccountsClient {
    source_name: String,
    base: String,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
}

impl std::fmt::Debug for AccountsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsClient")
            .field("source_name", &self.source_name)
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

/// Reads `expires_in` in seconds, or the legacy form where it is milliseconds beside `expires_in_sec`.
fn parse_expiry(body: &Value) -> Duration {
    let num = |k: &str| {
        body.get(k).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
    };
    let secs = match (num("expires_in_sec"), num("expires_in")) {
        (Some(s), _) => s,
        // No token lives for 27 hours, so a value this large can only be milliseconds.
        (None, Some(v)) if v >= 100_000 => v / 1000,
        (None, Some(v)) => v,
        (None, None) => 3600,
    };
    Duration::from_secs(secs.max(1))
}

impl AccountsClient {
    /// `accounts_base` is the accounts server root, e.g. `https://accounts.zoho.eu` (no trailing slash).
    pub fn new(
        source_name: &str,
        accounts_base: &str,
        client_id: &str,
        client_secret: Secret,
        http: reqwest::Client,
    ) -> Self {
        Self {
            source_name: source_name.to_owned(),
            base: accounts_base.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            http,
        }
    }

    /// Exchanges a one-time Self Client grant code for a refresh and an access token.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenGrant, ZohoError> {
        self.call(GrantKind::Code, &[("grant_type", "authorization_code"), ("code", code.trim())]).await
    }

    /// Gets a new access token from the refresh token.
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, ZohoError> {
        self.call(
            GrantKind::Refresh,
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())],
        )
        .await
    }

    /// Revokes a refresh token (best effort: used to tidy up after a failed `auth`).
    pub async fn revoke(&self, token: &Secret) -> Result<(), ZohoError> {
        let url = format!("{}/oauth/v2/token/revoke", self.base);
        self.http.post(&url).form(&[("token", token.expose())]).send().await.map_err(|e| {
            ZohoError::TokenEndpoint {
                source_name: self.source_name.clone(),
                message: format!("cannot reach {url}: {}", e.without_url()),
            }
        })?;
        Ok(())
    }

    async fn call(&self, kind: GrantKind, params: &[(&str, &str)]) -> Result<TokenGrant, ZohoError> {
        let url = format!("{}/oauth/v2/token", self.base);
        let mut form: Vec<(&str, &str)> =
            vec![("client_id", self.client_id.as_str()), ("client_secret", self.client_secret.expose())];
        form.extend_from_slice(params);
        // Secrets go in the form body, never the URL, so no error or proxy log can show them.
        let resp = self.http.post(&url).form(&form).send().await.map_err(|e| ZohoError::TokenEndpoint {
            source_name: self.source_name.clone(),
            message: format!("cannot reach {url}: {}", e.without_url()),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ZohoError::TokenEndpoint {
            source_name: self.source_name.clone(),
            message: format!("reading the answer of {url}: {}", e.without_url()),
        })?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.interpret(kind, status, &body)
    }

    fn interpret(&self, kind: GrantKind, status: u16, body: &Value) -> Result<TokenGrant, ZohoError> {
        let source_name = self.source_name.clone();
        // Zoho reports most token errors with HTTP 200, so the body decides, not the status.
        if let Some(code) = body.get("error").and_then(Value::as_str) {
            let description = body.get("error_description").and_then(Value::as_str).unwrap_or_default();
            return Err(match code {
                "invalid_code" if kind == GrantKind::Code => ZohoError::GrantCodeRejected { source_name },
                "invalid_code" => ZohoError::RefreshTokenRejected { source_name },
                "invalid_client" => ZohoError::InvalidClient { source_name },
                "invalid_client_secret" => ZohoError::InvalidClientSecret { source_name },
                c if c.eq_ignore_ascii_case("access denied")
                    || description.to_ascii_lowercase().contains("too many requests") =>
                {
                    ZohoError::TokenThrottled { source_name, retry_after: Duration::from_secs(60) }
                }
                other => ZohoError::TokenEndpoint {
                    source_name,
                    message: format!(
                        "HTTP {status}, error `{other}`{}",
                        if description.is_empty() { String::new() } else { format!(": {description}") }
                    ),
                },
            });
        }
        let access = body.get("access_token").and_then(Value::as_str).filter(|s| !s.is_empty());
        match access {
            Some(token) if (200..300).contains(&status) => Ok(TokenGrant {
                access_token: Secret::new(token),
                refresh_token: body.get("refresh_token").and_then(Value::as_str).map(Secret::new),
                expires_in: parse_expiry(body),
            }),
            _ => Err(ZohoError::TokenEndpoint {
                source_name,
                message: format!("HTTP {status} without an access token"),
            }),
        }
    }
}

/// An access token and when it stops working.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
    /// How long it lived when issued; sets how early it is refreshed.
    pub lifetime: Duration,
}

impl AccessToken {
    /// Refresh this long before expiry: a fifth of the lifetime, at most five minutes, so a call that
    /// takes the token just before the refresh point still lands while it is valid.
    fn margin(&self) -> chrono::Duration {
        let m = (self.lifetime / 5).min(Duration::from_secs(300));
        chrono::Duration::from_std(m).unwrap_or_else(|_| chrono::Duration::seconds(300))
    }

    fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now + self.margin() < self.expires_at
    }

    fn is_valid(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

#[derive(Debug, Default)]
struct TokenState {
    current: Option<AccessToken>,
    last_refresh: Option<DateTime<Utc>>,
    refreshes: u64,
    blocked_until: Option<Instant>,
    throttle_backoff: Duration,
    /// The refresh token was rejected: no more calls to Zoho until the file holds a new one.
    rejected: bool,
    rejected_checked: Option<Instant>,
    last_error: Option<String>,
}

/// The access-token cache for one refresh token, shared by every source that uses it.
pub struct TokenManager {
    label: String,
    accounts: AccountsClient,
    refresh_token: Mutex<Secret>,
    files: Mutex<Vec<PathBuf>>,
    state: Mutex<TokenState>,
    gate: tokio::sync::Mutex<()>,
    /// The first pause after Zoho Accounts throttles a refresh (doubling per throttle after that).
    throttle_first: Duration,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager").field("label", &self.label).field("accounts", &self.accounts).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const REFRESH_ATTEMPTS: u32 = 3;
const THROTTLE_FIRST: Duration = Duration::from_secs(60);
const THROTTLE_MAX: Duration = Duration::from_secs(600);

impl TokenManager {
    /// Starts from the credentials (and their cached access token, when still usable). `label` names the
    /// source in logs and metrics; `file` is where refreshed tokens are persisted.
    pub fn new(label: &str, accounts: AccountsClient, creds: &Credentials, file: &Path) -> Self {
        let current = creds.access_token.as_ref().map(|c| AccessToken {
            token: c.token.clone(),
            expires_at: c.expires_at,
            lifetime: Duration::from_secs(c.lifetime_s.unwrap_or(3600)),
        });
        Self {
            label: label.to_owned(),
            accounts,
            refresh_token: Mutex::new(creds.refresh_token.clone()),
            files: Mutex::new(vec![file.to_owned()]),
            state: Mutex::new(TokenState { current, ..TokenState::default() }),
            gate: tokio::sync::Mutex::new(()),
            throttle_first: THROTTLE_FIRST,
        }
    }

    /// The first pause after a throttled refresh ([`ClientOptions::token_throttle_first`]).
    ///
    /// [`ClientOptions::token_throttle_first`]: crate::zoho::client::ClientOptions::token_throttle_first
    pub fn with_throttle_first(mut self, first: Duration) -> Self {
        self.throttle_first = first;
        self
    }

    /// Also persist refreshed tokens to `file` (another source sharing this refresh token).
    pub fn add_file(&self, file: &Path) {
        let mut files = lock(&self.files);
        if !files.iter().any(|f| f == file) {
            files.push(file.to_owned());
        }
    }

    /// A token that stays valid for a while: the cached one, or a new one after a single-flight refresh.
    pub async fn access_token(&self) -> Result<AccessToken, ZohoError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _gate = self.gate.lock().await;
        // Whoever held the gate before us may have refreshed already.
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        self.refresh_locked().await
    }

    /// Desk answered 401 INVALID_OAUTH to `rejected`: refresh once, unless another caller already did.
    pub async fn token_rejected(&self, rejected: &Secret) -> Result<AccessToken, ZohoError> {
        let _gate = self.gate.lock().await;
        {
            let mut st = lock(&self.state);
            let now = Utc::now();
            match &st.current {
                Some(cur) if cur.token != *rejected && cur.is_valid(now) => return Ok(cur.clone()),
                Some(cur) if cur.token == *rejected => st.current = None,
                _ => {}
            }
        }
        self.refresh_locked().await
    }

    fn fresh(&self) -> Option<AccessToken> {
        let st = lock(&self.state);
        st.current.as_ref().filter(|t| t.is_fresh(Utc::now())).cloned()
    }

    /// The token to fall back on while a refresh is impossible: valid, if no longer fresh.
    fn still_valid(&self) -> Option<AccessToken> {
        lock(&self.state).current.as_ref().filter(|t| t.is_valid(Utc::now())).cloned()
    }

    async fn refresh_locked(&self) -> Result<AccessToken, ZohoError> {
        if lock(&self.state).rejected && !self.reload_refresh_token() {
            return Err(ZohoError::RefreshTokenRejected { source_name: self.label.clone() });
        }
        let blocked = lock(&self.state).blocked_until.filter(|t| *t > Instant::now());
        if let Some(until) = blocked {
            return self.still_valid().ok_or_else(|| ZohoError::TokenThrottled {
                source_name: self.label.clone(),
                retry_after: until.saturating_duration_since(Instant::now()),
            });
        }
        let refresh_token = lock(&self.refresh_token).clone();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let started = Utc::now();
            match self.accounts.refresh(&refresh_token).await {
                Ok(grant) => break Ok((grant, started)),
                Err(e @ ZohoError::TokenEndpoint { .. }) if attempt < REFRESH_ATTEMPTS => {
                    tracing::warn!(source = %self.label, attempt, error = %e, "Token refresh failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok((grant, started)) => {
                let token = AccessToken {
                    token: grant.access_token,
                    expires_at: started
                        + chrono::Duration::from_std(grant.expires_in)
                            .unwrap_or_else(|_| chrono::Duration::seconds(3600)),
                    lifetime: grant.expires_in,
                };
                {
                    let mut st = lock(&self.state);
                    st.current = Some(token.clone());
                    st.last_refresh = Some(Utc::now());
                    st.refreshes += 1;
                    st.throttle_backoff = Duration::ZERO;
                    st.blocked_until = None;
                    st.last_error = None;
                }
                self.count("ok");
                tracing::info!(
                    source = %self.label,
                    expires_in_s = grant.expires_in.as_secs(),
                    "Access token refreshed."
                );
                self.persist(&token, &refresh_token);
                Ok(token)
            }
            Err(e) => {
                let outcome = match &e {
                    ZohoError::RefreshTokenRejected { .. } => {
                        let mut st = lock(&self.state);
                        st.rejected = true;
                        st.rejected_checked = Some(Instant::now());
                        st.current = None;
                        "rejected"
                    }
                    ZohoError::TokenThrottled { .. } => {
                        let mut st = lock(&self.state);
                        st.throttle_backoff = (st.throttle_backoff * 2)
                            .clamp(self.throttle_first, THROTTLE_MAX.max(self.throttle_first));
                        st.blocked_until = Some(Instant::now() + st.throttle_backoff);
                        "throttled"
                    }
                    _ => "error",
                };
                lock(&self.state).last_error = Some(e.to_string());
                self.count(outcome);
                tracing::error!(source = %self.label, error = %e, "Access token refresh failed.");
                if let ZohoError::TokenThrottled { .. } = e {
                    let retry_after = lock(&self.state)
                        .blocked_until
                        .map(|t| t.saturating_duration_since(Instant::now()))
                        .unwrap_or(THROTTLE_FIRST);
                    return self
                        .still_valid()
                        .ok_or(ZohoError::TokenThrottled { source_name: self.label.clone(), retry_after });
                }
                if matches!(e, ZohoError::TokenEndpoint { .. })
                    && let Some(t) = self.still_valid()
                {
                    return Ok(t);
                }
                Err(e)
            }
        }
    }

    /// After a rejection, picks up a refresh token a later `auth` wrote, checking the files at most every
    /// ten seconds so a dead source does not spin on the disk.
    fn reload_refresh_token(&self) -> bool {
        {
            let mut st = lock(&self.state);
            if st.rejected_checked.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
                return false;
            }
            st.rejected_checked = Some(Instant::now());
        }
        let files = lock(&self.files).clone();
        let current = lock(&self.refresh_token).clone();
        for f in files {
            if let Ok(Some(c)) = Credentials::load(&f)
                && c.refresh_token != current
            {
                *lock(&self.refresh_token) = c.refresh_token;
                let mut st = lock(&self.state);
                st.rejected = false;
                st.current = None;
                tracing::info!(source = %self.label, "Found a new refresh token in the credentials file.");
                return true;
            }
        }
        false
    }

    fn persist(&self, token: &AccessToken, refresh_token: &Secret) {
        let files = lock(&self.files).clone();
        for f in files {
            let result = Credentials::load(&f).and_then(|c| match c {
                // Another `auth` replaced the file: its token is not ours to overwrite.
                Some(c) if c.refresh_token == *refresh_token => {
                    let mut c = c;
                    c.access_token = Some(CachedToken {
                        token: token.token.clone(),
                        expires_at: token.expires_at,
                        lifetime_s: Some(token.lifetime.as_secs()),
                    });
                    c.save(&f)
                }
                _ => Ok(()),
            });
            if let Err(error) = result {
                tracing::warn!(source = %self.label, %error, "Cannot cache the access token on disk.");
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(OAUTH_REFRESH_TOTAL, "source" => self.label.clone(), "outcome" => outcome)
            .increment(1);
    }

    /// Token state for `/status` (no secrets).
    pub fn status(&self) -> serde_json::Value {
        let st = lock(&self.state);
        let now = Utc::now();
        serde_json::json!({
            "valid": st.current.as_ref().is_some_and(|t| t.is_valid(now)),
            "expires_at": st.current.as_ref().map(|t| t.expires_at.to_rfc3339()),
            "last_refresh": st.last_refresh.map(|t| t.to_rfc3339()),
            "refreshes": st.refreshes,
            "refresh_token_rejected": st.rejected,
            "throttled_for_s": st.blocked_until.map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
            "last_error": st.last_error,
        })
    }

    /// Whether calls can get a token right now without asking Zoho (for `/readyz`).
    pub fn has_valid_token(&self) -> bool {
        self.still_valid().is_some()
    }

    /// The error a caller would get now, if the token is known to be unusable (for `/readyz`): the refresh
    /// token was rejected, or the last refresh failed (`invalid_client`, `invalid_client_secret`, the accounts
    /// server down, ...) and no access token is left to fall back on.
    pub fn blocking_error(&self) -> Option<String> {
        blocking_error(&lock(&self.state), Utc::now())
    }
}

fn blocking_error(st: &TokenState, now: DateTime<Utc>) -> Option<String> {
    let no_valid_token = !st.current.as_ref().is_some_and(|t| t.is_valid(now));
    if st.rejected || (no_valid_token && st.last_error.is_some()) {
        Some(
            st.last_error
                .clone()
                .unwrap_or_else(|| "the refresh token was rejected; run `auth` again".into()),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn client() -> AccountsClient {
        AccountsClient::new(
            "main",
            "http://127.0.0.1:9",
            "1000.CID",
            Secret::new("topsecret"),
            reqwest::Client::new(),
        )
    }

    #[test]
    fn expiry_in_seconds_or_legacy_milliseconds() {
        assert_eq!(parse_expiry(&json!({"expires_in": 3600})), Duration::from_secs(3600));
        assert_eq!(parse_expiry(&json!({"expires_in": 3_600_000})), Duration::from_secs(3600));
        assert_eq!(
            parse_expiry(&json!({"expires_in": 3_600_000, "expires_in_sec": 3600})),
            Duration::from_secs(3600)
        );
        assert_eq!(parse_expiry(&json!({"expires_in": "5"})), Duration::from_secs(5));
    }

    #[test]
    fn token_endpoint_errors_are_read_from_the_body() {
        let c = client();
        let cases = [
            (GrantKind::Code, 200, json!({"error": "invalid_code"}), "grant code"),
            (GrantKind::Refresh, 200, json!({"error": "invalid_code"}), "refresh token"),
            (GrantKind::Refresh, 200, json!({"error": "invalid_client"}), "client_id"),
            (GrantKind::Code, 200, json!({"error": "invalid_client_secret"}), "client_secret"),
            (
                GrantKind::Refresh,
                400,
                json!({"error": "Access Denied", "status": "failure",
                       "error_description": "You have made too many requests continuously. Please try again after some time."}),
                "throttling",
            ),
            (GrantKind::Refresh, 200, json!({"error": "unsupported_grant_type"}), "unsupported_grant_type"),
            (GrantKind::Refresh, 502, Value::Null, "HTTP 502"),
        ];
        for (kind, status, body, needle) in cases {
            let err = c.interpret(kind, status, &body).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains("topsecret"));
        }
        let ok = c
            .interpret(
                GrantKind::Code,
                200,
                &json!({"access_token": "1000.a", "refresh_token": "1000.r", "expires_in": 5}),
            )
            .unwrap();
        assert_eq!(ok.expires_in, Duration::from_secs(5));
        assert_eq!(ok.refresh_token.unwrap().expose(), "1000.r");
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn blocking_when_rejected_or_when_refresh_failed_and_no_token_is_left() {
        let now = Utc::now();
        let token = |secs| AccessToken {
            token: Secret::new("x"),
            expires_at: now + chrono::Duration::seconds(secs),
            lifetime: Duration::from_secs(3600),
        };
        let failed = Some("invalid_client".to_owned());
        let st = |current, rejected, last_error: &Option<String>| TokenState {
            current,
            rejected,
            last_error: last_error.clone(),
            ..TokenState::default()
        };
        assert_eq!(blocking_error(&st(None, false, &None), now), None, "never refreshed yet");
        assert_eq!(blocking_error(&st(Some(token(60)), false, &failed), now), None, "a valid token is left");
        assert_eq!(
            blocking_error(&st(Some(token(-1)), false, &failed), now),
            failed,
            "expired, refresh failed"
        );
        assert_eq!(blocking_error(&st(None, false, &failed), now), failed);
        assert!(blocking_error(&st(None, true, &None), now).is_some(), "rejected");
        assert_eq!(
            blocking_error(&st(Some(token(-1)), false, &None), now),
            None,
            "expired, refresh not tried"
        );
    }

    /// The accounts server unreachable and no token cached: not ready, with the refresh's error.
    #[tokio::test]
    async fn an_unreachable_accounts_server_without_a_token_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials {
            refresh_token: Secret::new("1000.r"),
            org_id: "1".into(),
            data_center: "com".into(),
            client_id: "1000.CID".into(),
            webhook_secret: Secret::default(),
            access_token: None,
            created_at: Utc::now(),
        };
        let m = TokenManager::new("main", client(), &creds, &dir.path().join("c.json"));
        assert_eq!(m.blocking_error(), None);
        assert!(m.access_token().await.is_err());
        let reason = m.blocking_error().unwrap();
        assert!(reason.contains("cannot reach"), "{reason}");
        assert!(!reason.contains("topsecret") && !reason.contains("1000.r"), "{reason}");
    }

    #[test]
    fn tokens_are_refreshed_a_fifth_of_their_life_early() {
        let now = Utc::now();
        let t = AccessToken {
            token: Secret::new("x"),
            expires_at: now + chrono::Duration::seconds(5),
            lifetime: Duration::from_secs(5),
        };
        assert!(t.is_fresh(now));
        assert!(!t.is_fresh(now + chrono::Duration::milliseconds(4100)));
        assert!(t.is_valid(now + chrono::Duration::milliseconds(4100)));
        let long = AccessToken { lifetime: Duration::from_secs(3600), ..t };
        assert_eq!(long.margin(), chrono::Duration::seconds(300));
    }
}
