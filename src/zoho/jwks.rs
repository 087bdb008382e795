//! Verification of Desk's `X-ZDesk-JWT` delivery header: an RS256 JWT whose `kid` names a key of the JWKS
//! at `{desk_base}/.well-known/jwks.json`, with `iss` `orgId:<org>`, `aud` `webhookId:<id>`, `iat`, `exp`.
//!
//! The JWKS address comes from the source's configuration only, never from the token (`jku`, `x5u` and
//! embedded `jwk` headers are ignored), so a forged token cannot make the bridge fetch an address of its
//! choosing. Keys are cached; an unknown `kid` (Desk rotated its key) triggers a refetch, at most one per
//! [`JwksVerifier::with_min_refetch`] interval, so a flood of tokens with random `kid`s costs Desk nothing.
//! The token does not hash the body (as at Desk): it proves the sender, not the content.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Longest header value looked at; Desk's tokens are well under 1 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the X-ZDesk-JWT header is missing")]
    Missing,
    #[error("the X-ZDesk-JWT header is not a JWT")]
    Malformed,
    #[error("the X-ZDesk-JWT algorithm is {0}, only RS256 is accepted")]
    Algorithm(String),
    #[error("the X-ZDesk-JWT header names no key id (kid)")]
    MissingKid,
    #[error("the X-ZDesk-JWT key id is not in Desk's JWKS")]
    UnknownKid,
    #[error("the X-ZDesk-JWT signature does not verify")]
    BadSignature,
    #[error("the X-ZDesk-JWT has expired")]
    Expired,
    #[error("the X-ZDesk-JWT is issued in the future (iat)")]
    NotYetValid,
    #[error("the X-ZDesk-JWT issuer is not orgId:{expected_org}")]
    Issuer { expected_org: String },
    #[error("the X-ZDesk-JWT audience is not {expected}")]
    Audience { expected: String },
    #[error("the X-ZDesk-JWT lacks or misformats claim {0}")]
    Claim(&'static str),
    #[error("cannot fetch Desk's JWKS from {url}: {message}")]
    JwksUnavailable { url: String, message: String },
}

impl JwtError {
    /// The HTTP status the service URL answers: 401 for a token that is not Desk's, 503 when the bridge
    /// could not check it (Desk's key set unreachable) — neither makes Desk drop the subscription.
    pub fn status(&self) -> u16 {
        match self {
            JwtError::JwksUnavailable { .. } => 503,
            _ => 401,
        }
    }

    /// A bounded metric label (`reason` of `webhook_rejected_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Missing => "jwt_missing",
            JwtError::Malformed => "jwt_malformed",
            JwtError::Algorithm(_) => "jwt_algorithm",
            JwtError::MissingKid => "jwt_missing_kid",
            JwtError::UnknownKid => "jwt_unknown_kid",
            JwtError::BadSignature => "jwt_bad_signature",
            JwtError::Expired => "jwt_expired",
            JwtError::NotYetValid => "jwt_not_yet_valid",
            JwtError::Issuer { .. } => "jwt_issuer",
            JwtError::Audience { .. } => "jwt_audience",
            JwtError::Claim(_) => "jwt_claim",
            JwtError::JwksUnavailable { .. } => "jwks_unavailable",
        }
    }
}

/// The verified claims of a delivery token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The org id from `iss` (`orgId:<org>`).
    pub org_id: String,
    /// The webhook id from `aud` (`webhookId:<id>`).
    pub webhook_id: String,
    pub iat: i64,
    pub exp: i64,
    pub kid: String,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    aud: Option<Value>,
    iat: Option<Value>,
    exp: Option<Value>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    /// Last fetch attempt, successful or not: the refetch rate limit counts from here.
    attempted_at: Option<Instant>,
}

/// Verifies delivery tokens of one Desk host. Cheap to share (`Arc` it); safe for concurrent use.
pub struct JwksVerifier {
    jwks_url: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// One fetch at a time; concurrent verifiers wait for it and then read the cache.
    fetch: tokio::sync::Mutex<()>,
    min_refetch: Duration,
    max_age: Duration,
    leeway_s: u64,
    fetch_timeout: Duration,
}

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier").field("jwks_url", &self.jwks_url).finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// `desk_base` is the source's Desk host (`https://desk.zoho.eu`, or `desk_url`), without `/api/v1`.
    pub fn new(desk_base: &str, http: reqwest::Client) -> Self {
        let base = desk_base.trim_end_matches('/');
        let base = base.strip_suffix("/api/v1").unwrap_or(base);
        Self {
            jwks_url: format!("{base}/.well-known/jwks.json"),
            http,
            cache: RwLock::new(Cache::default()),
            fetch: tokio::sync::Mutex::new(()),
            min_refetch: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
            leeway_s: 30,
            fetch_timeout: Duration::from_secs(3),
        }
    }

    /// Shortest time between two JWKS fetches (default 30 s).
    pub fn with_min_refetch(mut self, d: Duration) -> Self {
        self.min_refetch = d;
        self
    }

    /// Keys older than this are refetched on the next delivery (default 1 h), so a key Desk withdrew stops
    /// being trusted; if that fetch fails the old keys stay in use.
    pub fn with_max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// Clock skew allowed on `exp` and `iat` (default 30 s).
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway_s = seconds;
        self
    }

    /// Starts with `keys` (as [`parse_jwks`] returns them) as if just fetched, so tokens can be verified
    /// without Desk: used by the fuzz targets (fuzz/) and tests. Unknown `kid`s still trigger a refetch
    /// once [`JwksVerifier::with_min_refetch`] allows it.
    pub fn with_keys(self, keys: HashMap<String, Arc<DecodingKey>>) -> Self {
        {
            let mut c = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            c.keys = keys;
            c.fetched_at = Some(now);
            c.attempted_at = Some(now);
        }
        self
    }

    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// Checks a delivery token for org `org_id`. With `webhook_id` the audience must be exactly
    /// `webhookId:<webhook_id>`; without it (the subscription was made by hand) any `webhookId:` passes.
    pub async fn verify(
        &self,
        token: &str,
        org_id: &str,
        webhook_id: Option<&str>,
    ) -> Result<Claims, JwtError> {
        let token = token.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        if token.is_empty() {
            return Err(JwtError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(JwtError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => {
                algorithm_of(token).filter(|a| a != "RS256").map_or(JwtError::Malformed, JwtError::Algorithm)
            }
            _ => JwtError::Malformed,
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.filter(|k| !k.is_empty() && k.len() <= 256).ok_or(JwtError::MissingKid)?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = self.leeway_s;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let expected_iss = format!("orgId:{org_id}");
        validation.set_issuer(&[expected_iss.as_str()]);
        let expected_aud = webhook_id.map(|w| format!("webhookId:{w}"));
        match &expected_aud {
            Some(aud) => validation.set_audience(&[aud.as_str()]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => JwtError::Expired,
                K::InvalidIssuer => JwtError::Issuer { expected_org: org_id.to_owned() },
                K::InvalidAudience => JwtError::Audience {
                    expected: expected_aud.clone().unwrap_or_else(|| "webhookId:<id>".into()),
                },
                K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => JwtError::Claim(match c.as_str() {
                    "exp" => "exp",
                    "iss" => "iss",
                    "aud" => "aud",
                    _ => "unknown",
                }),
                K::InvalidAlgorithm => JwtError::Algorithm("not RS256".into()),
                K::InvalidSignature | K::InvalidRsaKey(_) => JwtError::BadSignature,
                _ => JwtError::Malformed,
            }
        })?;
        let c = data.claims;
        let iss = c.iss.as_ref().and_then(Value::as_str).unwrap_or_default();
        let org = iss.strip_prefix("orgId:").unwrap_or_default().to_owned();
        let aud = audience(c.aud.as_ref()).ok_or(JwtError::Claim("aud"))?;
        let Some(webhook) = aud.strip_prefix("webhookId:").filter(|w| !w.is_empty()) else {
            return Err(JwtError::Audience { expected: "webhookId:<id>".into() });
        };
        let exp = c.exp.as_ref().and_then(Value::as_i64).ok_or(JwtError::Claim("exp"))?;
        let iat = c.iat.as_ref().and_then(Value::as_i64).ok_or(JwtError::Claim("iat"))?;
        let now = chrono::Utc::now().timestamp();
        if iat > now.saturating_add(self.leeway_s as i64) {
            return Err(JwtError::NotYetValid);
        }
        Ok(Claims { org_id: org, webhook_id: webhook.to_owned(), iat, exp, kid })
    }

    /// The key for `kid`: from the cache, or after a (rate-limited) refetch of the JWKS.
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwtError> {
        let (cached, stale) = {
            let c = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let stale = c.fetched_at.is_none_or(|t| t.elapsed() >= self.max_age);
            (c.keys.get(kid).cloned(), stale)
        };
        if let Some(k) = &cached
            && !stale
        {
            return Ok(k.clone());
        }
        let _guard = self.fetch.lock().await;
        // Someone else may have fetched while we waited.
        let (allowed, ever_fetched) = {
            let c = self.cache.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = c.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
            if let Some(k) = c.keys.get(kid)
                && fresh
            {
                return Ok(k.clone());
            }
            (c.attempted_at.is_none_or(|t| t.elapsed() >= self.min_refetch), c.fetched_at.is_some())
        };
        if !allowed {
            // Stale but known keys stay usable until a refetch is allowed.
            return match cached {
                Some(k) => Ok(k),
                None if ever_fetched => Err(JwtError::UnknownKid),
                None => Err(JwtError::JwksUnavailable {
                    url: self.jwks_url.clone(),
                    message: "the last fetch failed; the next attempt is rate-limited".into(),
                }),
            };
        }
        let now = Instant::now();
        self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner).attempted_at = Some(now);
        match self.fetch_keys().await {
            Ok(keys) => {
                let mut c = self.cache.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                tracing::debug!(url = %self.jwks_url, keys = keys.len(), "Fetched Desk's JWKS.");
                c.keys = keys;
                c.fetched_at = Some(now);
                c.keys.get(kid).cloned().ok_or(JwtError::UnknownKid)
            }
            Err(error) => {
                tracing::warn!(url = %self.jwks_url, %error, "Cannot fetch Desk's JWKS.");
                cached.ok_or(error)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Arc<DecodingKey>>, JwtError> {
        let fail = |message: String| JwtError::JwksUnavailable { url: self.jwks_url.clone(), message };
        let mut resp = self
            .http
            .get(&self.jwks_url)
            .timeout(self.fetch_timeout)
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.without_url().to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(fail(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body).map_err(fail)?;
        if keys.is_empty() {
            return Err(fail("no usable RS256 key".into()));
        }
        Ok(keys)
    }
}

/// The RS256 signing keys of a JWKS document, by `kid`. Keys of other types or uses are skipped.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("no `keys` array")?;
    let mut out = HashMap::new();
    for k in keys {
        let s = |name: &str| k.get(name).and_then(Value::as_str);
        if s("kty") != Some("RSA") || s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        if s("alg").is_some_and(|a| a != "RS256") {
            continue;
        }
        let (Some(kid), Some(n), Some(e)) = (s("kid"), s("n"), s("e")) else { continue };
        match DecodingKey::from_rsa_components(n, e) {
            Ok(key) => {
                out.insert(kid.to_owned(), Arc::new(key));
            }
            Err(error) => tracing::warn!(kid, %error, "Skipping an unusable key in Desk's JWKS."),
        }
    }
    Ok(out)
}

/// `aud` as one string (a one-element array is accepted, as RFC 7519 allows either).
fn audience(aud: Option<&Value>) -> Option<&str> {
    match aud? {
        Value::String(s) => Some(s),
        Value::Array(a) if a.len() == 1 => a[0].as_str(),
        _ => None,
    }
}

/// The raw `alg` of a token whose header jsonwebtoken refuses to parse (`none`, unknown names), so the
/// error can say which algorithm was refused.
fn algorithm_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let head = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let alg = v.get("alg")?.as_str()?;
    Some(alg.chars().take(16).filter(char::is_ascii_alphanumeric).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_an_unreachable_jwks_is_retry_later_and_every_bad_jwt_is_a_refusal() {
        // CONTRACT §4: a bad JWT is 401, an unknown key id included (Desk signs with the keys it publishes).
        assert_eq!(JwtError::UnknownKid.status(), 401);
        assert_eq!(JwtError::UnknownKid.reason(), "jwt_unknown_kid");
        assert_eq!(JwtError::BadSignature.status(), 401);
        assert_eq!(JwtError::Audience { expected: "webhookId:1".into() }.status(), 401);
        assert_eq!(JwtError::Expired.status(), 401);
        assert_eq!(JwtError::JwksUnavailable { url: "u".into(), message: "m".into() }.status(), 503);
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let body = br#"{"keys": [
            {"kty": "EC", "kid": "ec", "x": "a", "y": "b"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ok", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"}
        ]}"#;
        let keys = parse_jwks(body).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ok"]);
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"nope").is_err());
    }

    #[test]
    fn jwks_url_is_derived_from_the_desk_base_only() {
        let http = reqwest::Client::new();
        assert_eq!(
            JwksVerifier::new("https://desk.zoho.eu/", http.clone()).jwks_url(),
            "https://desk.zoho.eu/.well-known/jwks.json"
        );
        assert_eq!(
            JwksVerifier::new("http://127.0.0.1:8900/api/v1", http).jwks_url(),
            "http://127.0.0.1:8900/.well-known/jwks.json"
        );
    }

    #[tokio::test]
    async fn garbage_tokens_are_refused_without_a_fetch() {
        // Port 9 (discard) on loopback: any fetch attempt would fail, and these must not get that far.
        let v = JwksVerifier::new("http://127.0.0.1:9", reqwest::Client::new());
        assert!(matches!(v.verify("", "1", None).await, Err(JwtError::Missing)));
        assert!(matches!(v.verify("abc", "1", None).await, Err(JwtError::Malformed)));
        assert!(matches!(v.verify("a.b.c", "1", None).await, Err(JwtError::Malformed)));
        // alg none, HS256
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJvcmdJZDoxIn0.";
        assert!(matches!(v.verify(none, "1", None).await, Err(JwtError::Algorithm(a)) if a == "none"));
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"iss": "orgId:1", "aud": "webhookId:2", "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(matches!(v.verify(&hs, "1", None).await, Err(JwtError::Algorithm(_))));
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(v.verify(&long, "1", None).await, Err(JwtError::Malformed)));
    }

    /// A verifier preloaded `with_keys` refuses an unknown `kid` without fetching.
    #[tokio::test]
    async fn preloaded_keys_need_no_fetch() {
        let body = br#"{"keys": [{"kty": "RSA", "kid": "ok", "alg": "RS256", "n": "AQAB", "e": "AQAB"}]}"#;
        let v = JwksVerifier::new("http://127.0.0.1:9", reqwest::Client::new())
            .with_keys(parse_jwks(body).unwrap())
            .with_min_refetch(Duration::from_secs(3600));
        let other = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im90aGVyIn0.eyJpc3MiOiJvcmdJZDoxIn0.AAAA";
        assert!(matches!(v.verify(other, "1", None).await, Err(JwtError::UnknownKid)));
    }
}
