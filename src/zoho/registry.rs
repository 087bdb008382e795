//! Builds the [`DeskClient`]s of a process so that what Zoho limits together is shared together: one
//! token cache per refresh token, one quota guard per Desk org.

use crate::config::SourceSettings;
use crate::zoho::client::{ClientOptions, DeskClient, Inner};
use crate::zoho::credentials::Credentials;
use crate::zoho::error::ZohoError;
use crate::zoho::oauth::{AccountsClient, TokenManager};
use crate::zoho::quota::QuotaGuard;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Shared {
    /// Keyed by (accounts server, client id, refresh token): the refresh token is held only as a key.
    tokens: HashMap<(String, String, String), Arc<TokenManager>>,
    /// Keyed by (Desk API base, org id).
    quotas: HashMap<(String, String), QuotaGuard>,
    /// One connection pool for the whole process.
    http: Option<reqwest::Client>,
}

/// Hands out clients that share token caches and quota guards. Clone it freely.
#[derive(Clone, Default)]
pub struct DeskRegistry {
    shared: Arc<Mutex<Shared>>,
    opts: ClientOptions,
    /// Replaces every source's `request_timeout_s` (tests need attempts shorter than a second).
    request_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for DeskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskRegistry").finish_non_exhaustive()
    }
}

/// The HTTP client every Desk and Accounts call uses (rustls, pooled, with timeouts). It follows no
/// redirects: the bridge talks only to the configured Desk and accounts hosts (and fetches the JWKS only
/// from the Desk host), so an answer pointing elsewhere is an error, never a new destination.
pub fn http_client(opts: &ClientOptions) -> Result<reqwest::Client, ZohoError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .user_agent(concat!("zoho-desk-cdc/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ZohoError::HttpClient(e.to_string()))
}

/// The Accounts client of a source, for `auth` (no credentials needed yet).
pub fn accounts_client(source: &SourceSettings, http: reqwest::Client) -> Result<AccountsClient, ZohoError> {
    Ok(AccountsClient::new(
        &source.name,
        &source.accounts_base()?,
        &source.client_id,
        source.client_secret.clone(),
        http,
    ))
}

impl DeskRegistry {
    pub fn new(opts: ClientOptions) -> Self {
        Self { shared: Arc::default(), opts, request_timeout: None }
    }

    /// Uses `timeout` for every Desk attempt instead of each source's `request_timeout_s`.
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The client of `source`, reading its credentials file. Fails with a message telling the operator
    /// to run `auth` when there are no credentials yet.
    pub fn client(&self, source: &SourceSettings) -> Result<DeskClient, ZohoError> {
        let path = &source.credentials_file;
        let creds = Credentials::load(path)?.ok_or_else(|| ZohoError::NotAuthorized {
            source_name: source.name.clone(),
            path: path.clone(),
        })?;
        if !creds.client_id.is_empty() && creds.client_id != source.client_id {
            return Err(ZohoError::CredentialsUnusable {
                path: path.clone(),
                message: format!(
                    "was written for client {} but sources.{}.client_id is {}; run `auth` again for this client",
                    creds.client_id, source.name, source.client_id
                ),
            });
        }
        if !creds.data_center.is_empty() && creds.data_center != source.data_center {
            return Err(ZohoError::CredentialsUnusable {
                path: path.clone(),
                message: format!(
                    "was written for data center {} but sources.{}.data_center is {}; run `auth` again",
                    creds.data_center, source.name, source.data_center
                ),
            });
        }
        let accounts_base = source.accounts_base()?;
        let api_base = format!("{}/api/v1", source.desk_base()?);
        let mut shared = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let http = match &shared.http {
            Some(h) => h.clone(),
            None => {
                let h = http_client(&self.opts)?;
                shared.http = Some(h.clone());
                h
            }
        };
        let token_key =
            (accounts_base.clone(), source.client_id.clone(), creds.refresh_token.expose().to_owned());
        let tokens = match shared.tokens.get(&token_key) {
            Some(t) => {
                t.add_file(path);
                t.clone()
            }
            None => {
                let accounts = AccountsClient::new(
                    &source.name,
                    &accounts_base,
                    &source.client_id,
                    source.client_secret.clone(),
                    http.clone(),
                );
                let t = Arc::new(
                    TokenManager::new(&source.name, accounts, &creds, path)
                        .with_throttle_first(self.opts.token_throttle_first),
                );
                shared.tokens.insert(token_key, t.clone());
                t
            }
        };
        let quota_key = (api_base.clone(), source.org_id.clone());
        let quota = shared
            .quotas
            .entry(quota_key)
            .or_insert_with(|| {
                let reset = source.credit_reset_utc_offset_min();
                QuotaGuard::for_org(&source.name, &source.quota, reset, self.opts.desk_remaining_recheck)
            })
            .clone();
        if quota.settings().requests_per_minute != source.quota.requests_per_minute
            || quota.settings().max_concurrency != source.quota.max_concurrency
            || quota.settings().daily_credits != source.quota.daily_credits
        {
            tracing::warn!(
                source = %source.name,
                "Another source already set the quota of this Desk org; this source's quota settings are ignored."
            );
        }
        drop(shared);
        Ok(DeskClient::from_parts(Inner {
            source: source.name.clone(),
            org_id: source.org_id.clone(),
            api_base,
            http,
            tokens,
            quota,
            // The per-attempt timeout is the source's own (the shared HTTP client's is only the fallback
            // for Accounts calls); every Desk request sets it explicitly.
            opts: ClientOptions {
                request_timeout: self
                    .request_timeout
                    .unwrap_or_else(|| std::time::Duration::from_secs(source.request_timeout_s)),
                ..self.opts.clone()
            },
        }))
    }
}

/// Start-up warnings for sources that share a client id: Zoho counts tokens per refresh token and
/// refresh tokens per user and client, so such sources can push each other's tokens out.
pub fn shared_client_warnings(sources: &[SourceSettings]) -> Vec<String> {
    let mut by_client: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in sources {
        by_client.entry(s.client_id.as_str()).or_default().push(s.name.as_str());
    }
    let mut out: Vec<String> = by_client
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(client, names)| {
            format!(
                "Sources {} share client_id {client}. Zoho allows 10 live access tokens and 10 token requests per \
                 10 minutes per refresh token, and 20 refresh tokens per user and client (the 21st silently \
                 revokes the oldest). Sources with the same refresh token share one token cache here; with \
                 separate refresh tokens, running `auth` often can revoke another source's token. Prefer one \
                 Self Client per source.",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    out.sort();
    for w in &out {
        tracing::warn!(warning = %w, "Sources share a Zoho client.");
    }
    out
}
