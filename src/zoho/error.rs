//! Every way talking to Zoho can fail, worded for the operator who has to act on it.
//!
//! Messages name the source and, where a setting is at fault, the config key; they never carry a client
//! secret, refresh token or access token (those only travel as [`crate::secret::Secret`]).

use crate::config::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ZohoError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(
        "source `{source_name}` has no credentials yet ({path} is missing): run `zoho-desk-cdc auth --config <file> --source {source_name} --code <grant code>` first"
    )]
    NotAuthorized { source_name: String, path: PathBuf },

    /// The file could not be read or written (a runtime failure).
    #[error("credentials file {path}: {message}")]
    Credentials { path: PathBuf, message: String },

    /// The file is not one `auth` wrote for this source's client and data center: `auth` has to run again.
    #[error("credentials file {path}: {message}")]
    CredentialsUnusable { path: PathBuf, message: String },

    #[error(
        "Zoho Accounts rejected the grant code for source `{source_name}` (invalid_code): it has expired, was already used, or was made for another client; generate a new one (API Console → Self Client → Generate Code) and run `auth` again within its lifetime"
    )]
    GrantCodeRejected { source_name: String },

    #[error(
        "Zoho Accounts rejected the refresh token of source `{source_name}` (invalid_code): it was revoked or replaced; run `zoho-desk-cdc auth --config <file> --source {source_name} --code <new grant code>` again"
    )]
    RefreshTokenRejected { source_name: String },

    #[error(
        "Zoho Accounts does not know the client id of source `{source_name}` (invalid_client): check `sources.{source_name}.client_id` and `sources.{source_name}.data_center` (a client exists in one data center only)"
    )]
    InvalidClient { source_name: String },

    #[error(
        "Zoho Accounts rejected the client secret of source `{source_name}` (invalid_client_secret): check `sources.{source_name}.client_secret` (or client_secret_file) against the API Console"
    )]
    InvalidClientSecret { source_name: String },

    #[error(
        "Zoho Accounts is throttling token requests for source `{source_name}` (Access Denied: too many requests); it allows 10 per 10 minutes, next attempt in {}s",
        retry_after.as_secs()
    )]
    TokenThrottled { source_name: String, retry_after: Duration },

    #[error("Zoho Accounts token request for source `{source_name}` failed: {message}")]
    TokenEndpoint { source_name: String, message: String },

    #[error(
        "Desk says org {org_id} is not reachable with the token of source `{source_name}` (OAUTH_ORG_MISMATCH): check `sources.{source_name}.org_id`{known}"
    )]
    OrgMismatch { source_name: String, org_id: String, known: String },

    #[error(
        "the token of source `{source_name}` lacks the scope for {endpoint} (SCOPE_MISMATCH): generate a grant code with the Desk read scopes and run `auth` again"
    )]
    ScopeMismatch { source_name: String, endpoint: String },

    #[error(
        "Desk rejected even a freshly refreshed access token of source `{source_name}` on {endpoint} (HTTP {status} {code}): {message}"
    )]
    Unauthorized { source_name: String, endpoint: String, status: u16, code: String, message: String },

    #[error("Desk answered {endpoint} of source `{source_name}` with HTTP {status} {code}: {message}")]
    Desk { source_name: String, endpoint: String, status: u16, code: String, message: String },

    #[error(
        "Desk kept answering {endpoint} of source `{source_name}` with HTTP {status} {code} after {attempts} attempts: {message}"
    )]
    RetriesExhausted {
        source_name: String,
        endpoint: String,
        attempts: u32,
        status: u16,
        code: String,
        message: String,
    },

    #[error("cannot reach {what} for source `{source_name}` after {attempts} attempts: {message}")]
    Transport { source_name: String, what: String, attempts: u32, message: String },

    #[error(
        "Desk answered {endpoint} of source `{source_name}` with a body that is not what Desk sends: {message}"
    )]
    InvalidResponse { source_name: String, endpoint: String, message: String },

    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// What a caller should do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Permanent for this request: fix something, then try again.
    Never,
    /// Transient: back off and try again (bounded).
    Backoff,
}

impl ZohoError {
    /// Whether retrying the same request may succeed without anyone changing anything.
    pub fn retry(&self) -> Retry {
        match self {
            ZohoError::TokenThrottled { .. }
            | ZohoError::TokenEndpoint { .. }
            | ZohoError::RetriesExhausted { .. }
            | ZohoError::Transport { .. } => Retry::Backoff,
            _ => Retry::Never,
        }
    }

    /// The process exit code for a command that stops on this error (CONTRACT §2): 2 when the
    /// configuration or the command line is at fault, 1 for runtime failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            ZohoError::Config(_)
            | ZohoError::NotAuthorized { .. }
            | ZohoError::CredentialsUnusable { .. }
            | ZohoError::GrantCodeRejected { .. }
            | ZohoError::InvalidClient { .. }
            | ZohoError::InvalidClientSecret { .. }
            | ZohoError::OrgMismatch { .. }
            | ZohoError::ScopeMismatch { .. } => 2,
            _ => 1,
        }
    }

    /// True for Desk's 404 (a record that is gone, or a wrong path).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ZohoError::Desk { status: 404, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_name_the_source_and_the_fix() {
        let e = ZohoError::RefreshTokenRejected { source_name: "main".into() };
        let text = e.to_string();
        assert!(text.contains("`main`") && text.contains("auth"), "{text}");
        assert_eq!(e.exit_code(), 1);
        let e = ZohoError::InvalidClientSecret { source_name: "eu".into() };
        assert!(e.to_string().contains("sources.eu.client_secret"));
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.retry(), Retry::Never);
    }

    #[test]
    fn transient_errors_are_retryable() {
        let e = ZohoError::TokenThrottled { source_name: "m".into(), retry_after: Duration::from_secs(60) };
        assert_eq!(e.retry(), Retry::Backoff);
        assert!(e.to_string().contains("60s"));
    }
}
