//! Zoho Accounts: grant codes, refresh and access tokens, and the token endpoint's odd error forms
//! (errors with HTTP 200, the "Access Denied" throttle with HTTP 400).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::config::SimConfig;
use super::rng::Rng;

#[derive(Debug)]
struct GrantCode {
    scopes: Arc<[String]>,
    expires: Instant,
}

#[derive(Debug)]
struct RefreshToken {
    scopes: Arc<[String]>,
    /// Live access tokens, oldest first.
    access: VecDeque<String>,
    /// When access tokens were issued from it, for the 10-per-10-minutes throttle.
    requests: VecDeque<Instant>,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub scopes: Arc<[String]>,
    pub org_id: u64,
    expires: Instant,
    refresh: String,
}

/// Accounts-server state.
#[derive(Debug)]
pub struct OAuth {
    codes: HashMap<String, GrantCode>,
    refresh: HashMap<String, RefreshToken>,
    refresh_order: VecDeque<String>,
    access: HashMap<String, AccessToken>,
    code_requests: VecDeque<Instant>,
    rng: Rng,
    pub tokens_issued: u64,
}

/// The token endpoint's answer: status and JSON body.
pub type TokenReply = (StatusCode, Value);

fn error_200(code: &str) -> TokenReply {
    (StatusCode::OK, json!({"error": code}))
}

fn access_denied() -> TokenReply {
    (
        StatusCode::BAD_REQUEST,
        json!({
            "error_description": "You have made too many requests continuously. Please try again after some time.",
            "error": "Access Denied",
            "status": "failure",
        }),
    )
}

fn trim_window(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
}

/// Splits a scope list ("Desk.tickets.READ,Desk.basic.READ" or space separated).
pub fn parse_scopes(s: &str) -> Vec<String> {
    s.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

/// Whether a token's scopes grant `op` (READ/CREATE/UPDATE/DELETE) on any of the families.
pub fn has_scope(scopes: &[String], families: &[&str], op: &str) -> bool {
    scopes.iter().any(|s| {
        let lower = s.to_ascii_lowercase();
        let mut parts = lower.split('.');
        let (Some("desk"), Some(fam), Some(granted), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        families.iter().any(|f| f.eq_ignore_ascii_case(fam))
            && (granted == "all" || granted == "*" || granted.eq_ignore_ascii_case(op))
    })
}

impl OAuth {
    pub fn new(seed: u64) -> Self {
        Self {
            codes: HashMap::new(),
            refresh: HashMap::new(),
            refresh_order: VecDeque::new(),
            access: HashMap::new(),
            code_requests: VecDeque::new(),
            rng: Rng::new(seed ^ 0x0A07),
            tokens_issued: 0,
        }
    }

    fn token_string(&mut self) -> String {
        format!("1000.{}.{}", self.rng.hex(32), self.rng.hex(32))
    }

    /// `POST /_sim/grant-codes`: a one-time code as the Self Client console would show it.
    pub fn issue_code(&mut self, scopes: &str, ttl: Duration) -> String {
        let code = self.token_string();
        self.codes.insert(
            code.clone(),
            GrantCode { scopes: parse_scopes(scopes).into(), expires: Instant::now() + ttl },
        );
        code
    }

    /// `POST /oauth/v2/token` with its parameters (query and form merged).
    pub fn token(&mut self, cfg: &SimConfig, params: &HashMap<String, String>) -> TokenReply {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
        let grant_type = get("grant_type");
        if grant_type.is_empty() {
            return error_200("invalid_request");
        }
        if get("client_id") != cfg.client_id {
            return error_200("invalid_client");
        }
        // Constant time, as a real accounts server would compare (the lengths may differ: digest first).
        let digest = |v: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v.as_bytes());
        let secret_ok: bool = subtle::ConstantTimeEq::ct_eq(
            digest(get("client_secret")).as_ref(),
            digest(&cfg.client_secret).as_ref(),
        )
        .into();
        if !secret_ok {
            return error_200("invalid_client_secret");
        }
        let now = Instant::now();
        match grant_type {
            "authorization_code" => {
                trim_window(&mut self.code_requests, now, cfg.token_window);
                if self.code_requests.len() >= cfg.token_requests_per_window {
                    return access_denied();
                }
                // One use only, whether or not it had expired.
                let Some(code) = self.codes.remove(get("code")) else {
                    return error_200("invalid_code");
                };
                if code.expires <= now {
                    return error_200("invalid_code");
                }
                self.code_requests.push_back(now);
                let refresh = self.token_string();
                self.refresh.insert(
                    refresh.clone(),
                    RefreshToken {
                        scopes: code.scopes.clone(),
                        access: VecDeque::new(),
                        requests: VecDeque::new(),
                    },
                );
                self.refresh_order.push_back(refresh.clone());
                while self.refresh_order.len() > cfg.max_refresh_tokens {
                    if let Some(old) = self.refresh_order.pop_front() {
                        self.drop_refresh(&old);
                    }
                }
                let access = self.issue_access(cfg, &refresh, now);
                (
                    StatusCode::OK,
                    json!({
                        "access_token": access,
                        "refresh_token": refresh,
                        "scope": code.scopes.join(" "),
                        "api_domain": "https://www.zohoapis.com",
                        "token_type": "Bearer",
                        "expires_in": cfg.token_ttl.as_secs(),
                    }),
                )
            }
            "refresh_token" => {
                let key = get("refresh_token").to_owned();
                let Some(rt) = self.refresh.get_mut(&key) else {
                    return error_200("invalid_code");
                };
                trim_window(&mut rt.requests, now, cfg.token_window);
                if rt.requests.len() >= cfg.token_requests_per_window {
                    return access_denied();
                }
                rt.requests.push_back(now);
                let scope = rt.scopes.join(" ");
                let access = self.issue_access(cfg, &key, now);
                (
                    StatusCode::OK,
                    json!({
                        "access_token": access,
                        "scope": scope,
                        "api_domain": "https://www.zohoapis.com",
                        "token_type": "Bearer",
                        "expires_in": cfg.token_ttl.as_secs(),
                    }),
                )
            }
            _ => error_200("unsupported_grant_type"),
        }
    }

    fn issue_access(&mut self, cfg: &SimConfig, refresh: &str, now: Instant) -> String {
        let token = self.token_string();
        let access = &self.access;
        let Some(rt) = self.refresh.get_mut(refresh) else {
            return token;
        };
        // Only tokens that still work count against the limit.
        rt.access.retain(|a| access.get(a).is_some_and(|t| t.expires > now));
        rt.access.push_back(token.clone());
        let mut evicted = Vec::new();
        while rt.access.len() > cfg.max_live_tokens {
            if let Some(old) = rt.access.pop_front() {
                evicted.push(old);
            }
        }
        let scopes = rt.scopes.clone();
        for old in evicted {
            self.access.remove(&old);
        }
        self.access.insert(
            token.clone(),
            AccessToken {
                scopes,
                org_id: cfg.org_id,
                expires: now + cfg.token_ttl,
                refresh: refresh.to_owned(),
            },
        );
        self.tokens_issued += 1;
        token
    }

    fn drop_refresh(&mut self, refresh: &str) {
        if let Some(rt) = self.refresh.remove(refresh) {
            for a in rt.access {
                self.access.remove(&a);
            }
        }
        self.refresh_order.retain(|r| r != refresh);
    }

    /// `POST /oauth/v2/token/revoke?token=`: a refresh token takes its access tokens with it.
    pub fn revoke(&mut self, token: &str) -> bool {
        if self.refresh.contains_key(token) {
            self.drop_refresh(token);
            return true;
        }
        if let Some(at) = self.access.remove(token) {
            if let Some(rt) = self.refresh.get_mut(&at.refresh) {
                rt.access.retain(|a| a != token);
            }
            return true;
        }
        false
    }

    /// Fault `revoke_tokens`: every access token stops working; refresh tokens stay valid.
    pub fn revoke_all_access(&mut self) {
        self.access.clear();
        for rt in self.refresh.values_mut() {
            rt.access.clear();
        }
    }

    /// A live access token, if the string is one.
    pub fn check(&mut self, token: &str) -> Option<AccessToken> {
        let now = Instant::now();
        let at = self.access.get(token)?;
        if at.expires <= now {
            self.access.remove(token);
            return None;
        }
        Some(at.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn scope_matching() {
        let s = parse_scopes("Desk.tickets.READ,Desk.basic.ALL");
        assert!(has_scope(&s, &["tickets"], "READ"));
        assert!(!has_scope(&s, &["tickets"], "UPDATE"));
        assert!(has_scope(&s, &["basic"], "DELETE"));
        assert!(!has_scope(&s, &["contacts"], "READ"));
    }

    #[test]
    fn code_is_single_use_and_refresh_caps_live_tokens() {
        let cfg = SimConfig { max_live_tokens: 2, ..SimConfig::default() };
        let mut o = OAuth::new(1);
        let code = o.issue_code("Desk.tickets.READ", Duration::from_secs(60));
        let base = [("client_id", cfg.client_id.as_str()), ("client_secret", cfg.client_secret.as_str())];
        let mut p = params(&base);
        p.insert("grant_type".into(), "authorization_code".into());
        p.insert("code".into(), code);
        let (st, body) = o.token(&cfg, &p);
        assert_eq!(st, StatusCode::OK);
        let first = body["access_token"].as_str().unwrap_or_default().to_owned();
        let refresh = body["refresh_token"].as_str().unwrap_or_default().to_owned();
        let (_, again) = o.token(&cfg, &p);
        assert_eq!(again["error"], "invalid_code");
        let mut r = params(&base);
        r.insert("grant_type".into(), "refresh_token".into());
        r.insert("refresh_token".into(), refresh);
        o.token(&cfg, &r);
        assert!(o.check(&first).is_some());
        o.token(&cfg, &r);
        assert!(o.check(&first).is_none(), "third token evicts the first");
    }
}
