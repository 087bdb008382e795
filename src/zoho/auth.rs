//! What the `auth` and `check` commands do on the Desk side, as library functions the CLI calls.

use crate::config::{Settings, SourceSettings};
use crate::secret::Secret;
use crate::zoho::client::{ClientOptions, DeskClient};
use crate::zoho::credentials::{Credentials, generate_webhook_secret};
use crate::zoho::error::ZohoError;
use crate::zoho::registry::{DeskRegistry, accounts_client, http_client};
use chrono::Utc;
use serde_json::Value;
use std::path::PathBuf;

/// What `auth` achieved, for the CLI to print.
#[derive(Debug, Clone)]
pub struct AuthOutcome {
    pub source: String,
    pub org_id: String,
    pub org_name: String,
    pub credentials_file: PathBuf,
    /// `{public_url}/webhooks/zoho/{source}/{webhook_secret}`: the address to give Desk.
    pub service_url: String,
    pub webhook_secret_generated: bool,
}

impl AuthOutcome {
    /// The lines `auth` prints (no client secret or token among them).
    pub fn message(&self) -> String {
        let mut out = format!(
            "Authorized source `{}` for org {} ({}); credentials written to {} (mode 0600).\n",
            self.source,
            self.org_id,
            self.org_name,
            self.credentials_file.display()
        );
        if self.webhook_secret_generated {
            out.push_str("Generated a webhook secret and stored it in the credentials file.\n");
        }
        out.push_str(&format!("Service URL (register it as the Desk webhook URL): {}\n", self.service_url));
        out
    }
}

/// The service URL of a source: where Desk delivers its webhooks.
pub fn service_url(public_url: &str, source: &str, webhook_secret: &Secret) -> String {
    format!("{}/webhooks/zoho/{}/{}", public_url.trim_end_matches('/'), source, webhook_secret.expose())
}

/// The webhook secret a source uses: the config's, else the one `auth` stored in the credentials file.
pub fn webhook_secret(source: &SourceSettings) -> Result<Option<Secret>, ZohoError> {
    if !source.webhook_secret.is_empty() {
        return Ok(Some(source.webhook_secret.clone()));
    }
    Ok(Credentials::load(&source.credentials_file)?.map(|c| c.webhook_secret).filter(|s| !s.is_empty()))
}

/// The orgs a token can reach, as `(id, name)`.
async fn organizations(
    http: &reqwest::Client,
    source: &SourceSettings,
    token: &Secret,
) -> Result<Vec<(String, String)>, ZohoError> {
    let url = format!("{}/api/v1/organizations", source.desk_base()?);
    let transport = |e: reqwest::Error| ZohoError::Transport {
        source_name: source.name.clone(),
        what: format!("Desk at {}", source.desk_base().unwrap_or_default()),
        attempts: 1,
        message: e.without_url().to_string(),
    };
    let resp = http
        .get(&url)
        .header("Authorization", format!("Zoho-oauthtoken {}", token.expose()))
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err(ZohoError::Desk {
            source_name: source.name.clone(),
            endpoint: "organizations".into(),
            status,
            code: body.get("errorCode").and_then(Value::as_str).unwrap_or_default().to_owned(),
            message: body.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
        });
    }
    Ok(orgs_of(&body))
}

fn orgs_of(body: &Value) -> Vec<(String, String)> {
    body.get("data")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|o| {
                    let id = match o.get("id") {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    };
                    let name = o.get("companyName").and_then(Value::as_str).unwrap_or_default().to_owned();
                    (id, name)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn known_orgs(orgs: &[(String, String)]) -> String {
    if orgs.is_empty() {
        return "; this Zoho user can reach no Desk org".into();
    }
    let list: Vec<String> = orgs.iter().map(|(id, name)| format!("{id} ({name})")).collect();
    format!("; this Zoho user can reach: {}", list.join(", "))
}

/// `zoho-desk-cdc auth`: exchanges a Self Client grant code, checks the configured org is reachable,
/// and writes the credentials file (mode 0600) with a webhook secret (the config's, the previous
/// file's, or a new one). On a wrong org id nothing is written and the new refresh token is revoked.
pub async fn exchange_grant_code(
    settings: &Settings,
    source: &str,
    code: &str,
) -> Result<AuthOutcome, ZohoError> {
    let src = settings.source(source)?;
    let http = http_client(&ClientOptions::default())?;
    let accounts = accounts_client(src, http.clone())?;
    let grant = accounts.exchange_code(code).await?;
    let refresh = grant.refresh_token.clone().ok_or_else(|| ZohoError::TokenEndpoint {
        source_name: src.name.clone(),
        message: "the grant code was exchanged but no refresh token came back; generate the code in the \
                  Self Client's Generate Code tab and try again"
            .into(),
    })?;
    let orgs = organizations(&http, src, &grant.access_token).await?;
    let Some((_, org_name)) = orgs.iter().find(|(id, _)| *id == src.org_id).cloned() else {
        if let Err(error) = accounts.revoke(&refresh).await {
            tracing::warn!(source = %src.name, %error, "Cannot revoke the unused refresh token.");
        }
        return Err(ZohoError::OrgMismatch {
            source_name: src.name.clone(),
            org_id: src.org_id.clone(),
            known: known_orgs(&orgs),
        });
    };
    let previous = Credentials::load(&src.credentials_file).ok().flatten();
    let (secret, generated) = if !src.webhook_secret.is_empty() {
        (src.webhook_secret.clone(), false)
    } else if let Some(s) = previous.map(|p| p.webhook_secret).filter(|s| !s.is_empty()) {
        // Keep the service URL stable across re-authorizations.
        (s, false)
    } else {
        (generate_webhook_secret(), true)
    };
    let creds = Credentials {
        refresh_token: refresh,
        org_id: src.org_id.clone(),
        data_center: src.data_center.clone(),
        client_id: src.client_id.clone(),
        webhook_secret: secret.clone(),
        access_token: Some(crate::zoho::credentials::CachedToken {
            token: grant.access_token,
            expires_at: Utc::now()
                + chrono::Duration::from_std(grant.expires_in)
                    .unwrap_or_else(|_| chrono::Duration::seconds(3600)),
            lifetime_s: Some(grant.expires_in.as_secs()),
        }),
        created_at: Utc::now(),
    };
    if let Err(error) = creds.save(&src.credentials_file) {
        // Nothing was written (the previous file is intact), so no one can use the new refresh token:
        // revoke it rather than leave it counting against Zoho's 20 refresh tokens per user and client
        // (the 21st silently revokes the oldest, which may be the one a running bridge uses).
        if let Err(e) = accounts.revoke(&creds.refresh_token).await {
            tracing::warn!(source = %src.name, error = %e, "Cannot revoke the unsaved refresh token.");
        }
        return Err(error);
    }
    tracing::info!(source = %src.name, file = %src.credentials_file.display(), "Credentials written.");
    Ok(AuthOutcome {
        source: src.name.clone(),
        org_id: src.org_id.clone(),
        org_name,
        credentials_file: src.credentials_file.clone(),
        service_url: service_url(&settings.http.public_url, &src.name, &secret),
        webhook_secret_generated: generated,
    })
}

/// `check`, token line: a usable access token (refreshing it if needed).
pub async fn check_token(client: &DeskClient) -> Result<String, ZohoError> {
    let t = client.tokens().access_token().await?;
    let left = (t.expires_at - Utc::now()).num_seconds().max(0);
    Ok(format!("token: ok (source {}, access token valid for {} min)", client.source_name(), left / 60))
}

/// `check`, Desk line: `GET /organizations` answers and lists the configured org.
pub async fn check_desk(client: &DeskClient) -> Result<String, ZohoError> {
    let body = client.get_json("organizations", "organizations", &[]).await?.unwrap_or(Value::Null);
    let orgs = orgs_of(&body);
    let Some((id, name)) = orgs.iter().find(|(id, _)| id == client.org_id()) else {
        return Err(ZohoError::OrgMismatch {
            source_name: client.source_name().to_owned(),
            org_id: client.org_id().to_owned(),
            known: known_orgs(&orgs),
        });
    };
    let q = client.quota().status();
    Ok(format!(
        "desk: ok (source {}, org {id} \"{name}\" at {}, {} API credits left today)",
        client.source_name(),
        client.api_base(),
        q.credits_remaining
    ))
}

/// One line of `check`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub outcome: CheckOutcome,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    Ok,
    Failed,
    /// Not tried because a check it depends on failed (that one is counted).
    Skipped,
}

/// The `token:` and `desk:` lines of `check` for one source, each its own pass or failure (CONTRACT §2:
/// one line per check); the Desk call needs a token, so it is skipped when the token step failed.
pub async fn check_lines(registry: &DeskRegistry, source: &SourceSettings) -> Vec<CheckLine> {
    let failed = |what: &str, e: ZohoError| CheckLine {
        outcome: CheckOutcome::Failed,
        text: format!("{what}: FAILED (source {}): {e}", source.name),
    };
    let token = match registry.client(source) {
        Ok(client) => check_token(&client).await.map(|line| (client, line)),
        Err(e) => Err(e),
    };
    match token {
        Ok((client, line)) => {
            let desk = match check_desk(&client).await {
                Ok(text) => CheckLine { outcome: CheckOutcome::Ok, text },
                Err(e) => failed("desk", e),
            };
            vec![CheckLine { outcome: CheckOutcome::Ok, text: line }, desk]
        }
        Err(e) => vec![
            failed("token", e),
            CheckLine {
                outcome: CheckOutcome::Skipped,
                text: format!("desk: skipped (source {}: no token)", source.name),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn check_prints_a_token_line_and_skips_desk_without_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[[sources]]\nname = \"main\"\norg_id = \"1\"\nclient_id = \"1000.C\"\nclient_secret = \"s\"\n\
             credentials_file = \"{}\"\n",
            dir.path().join("missing.json").display()
        );
        let settings = Settings::from_toml_str(&text).unwrap();
        let lines = check_lines(&DeskRegistry::new(ClientOptions::default()), &settings.sources[0]).await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].outcome == CheckOutcome::Failed
                && lines[0].text.starts_with("token: FAILED (source main): "),
            "{lines:?}"
        );
        assert!(lines[0].text.contains("run `zoho-desk-cdc auth"), "{lines:?}");
        assert!(
            lines[1].outcome == CheckOutcome::Skipped
                && lines[1].text == "desk: skipped (source main: no token)",
            "{lines:?}"
        );
    }
}
