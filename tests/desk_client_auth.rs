//! `auth` and `check` against the simulator, tried as a new user would: the happy path, a wrong client
//! secret, an expired grant code, a wrong org id and a revoked refresh token each end in one clear
//! message and the right exit code, with no secret in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod desk_client_support;

use desk_client_support::{Env, Quota, quick_options, settings_for, start};
use std::time::Duration;
use zoho_desk_cdc::sim::SimConfig;
use zoho_desk_cdc::zoho::auth::{CheckOutcome, check_desk, check_lines, check_token, exchange_grant_code};
use zoho_desk_cdc::zoho::credentials::Credentials;
use zoho_desk_cdc::zoho::error::ZohoError;
use zoho_desk_cdc::zoho::registry::DeskRegistry;

fn assert_no_secret(env: &Env, text: &str) {
    let secret = env.settings.sources[0].client_secret.expose();
    assert!(!text.contains(secret), "client secret leaked: {text}");
    if let Ok(Some(c)) = Credentials::load(&env.credentials_file()) {
        assert!(!text.contains(c.refresh_token.expose()), "refresh token leaked: {text}");
        if let Some(a) = c.access_token {
            assert!(!text.contains(a.token.expose()), "access token leaked: {text}");
        }
    }
}

#[tokio::test]
async fn auth_writes_private_credentials_and_prints_the_service_url() {
    let env = start(SimConfig::default(), Quota::default()).await;
    let code = env.grant_code(120).await;
    let out = exchange_grant_code(&env.settings, "main", &code).await.unwrap();
    let creds = Credentials::load(&env.credentials_file()).unwrap().unwrap();
    assert_eq!(creds.org_id, "60000000001");
    assert_eq!(creds.data_center, "com");
    assert_eq!(creds.webhook_secret.expose().len(), 32);
    assert!(creds.access_token.is_some(), "the first access token is cached");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.credentials_file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let expected_url = format!("http://127.0.0.1:8080/webhooks/zoho/main/{}", creds.webhook_secret.expose());
    assert_eq!(out.service_url, expected_url);
    let msg = out.message();
    assert!(msg.contains(&expected_url) && msg.contains("Simulated Help Desk Inc"), "{msg}");
    assert!(out.webhook_secret_generated);
    assert_no_secret(&env, &msg);

    // Re-authorizing keeps the webhook secret, so the service URL Desk knows stays valid.
    let again = exchange_grant_code(&env.settings, "main", &env.grant_code(120).await).await.unwrap();
    assert_eq!(again.service_url, expected_url);
    assert!(!again.webhook_secret_generated);

    // `check` lines, and a restart that reuses the cached token instead of asking for a new one.
    let issued = env.stats().await["tokens_issued"].as_u64().unwrap();
    let lines = check_lines(&DeskRegistry::new(quick_options()), &env.settings.sources[0]).await;
    assert!(lines.iter().all(|l| l.outcome == CheckOutcome::Ok), "{lines:?}");
    assert!(lines[0].text.starts_with("token: ok"), "{lines:?}");
    assert!(lines[1].text.starts_with("desk: ok") && lines[1].text.contains("60000000001"), "{lines:?}");
    assert_eq!(env.stats().await["tokens_issued"].as_u64().unwrap(), issued, "cached token reused");
    let client = env.client(quick_options());
    let dbg = format!("{client:?} {}", client.status());
    assert_no_secret(&env, &dbg);
}

#[tokio::test]
async fn wrong_client_secret_is_one_clear_configuration_error() {
    let env = start(SimConfig::default(), Quota::default()).await;
    let org = env.settings.sources[0].org_id.clone();
    let cid = env.settings.sources[0].client_id.clone();
    let bad = settings_for(env.dir.path(), &env.base, &org, &cid, "not-the-secret-xyz", &Quota::default());
    let err = exchange_grant_code(&bad, "main", &env.grant_code(120).await).await.unwrap_err();
    assert!(matches!(err, ZohoError::InvalidClientSecret { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("sources.main.client_secret"), "{text}");
    assert!(!text.contains("not-the-secret-xyz"));
    assert_eq!(err.exit_code(), 2);
    assert!(!env.credentials_file().exists());
}

#[tokio::test]
async fn expired_grant_code_is_one_clear_usage_error() {
    let env = start(SimConfig::default(), Quota::default()).await;
    let code = env.grant_code(1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = exchange_grant_code(&env.settings, "main", &code).await.unwrap_err();
    assert!(matches!(err, ZohoError::GrantCodeRejected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("expired") && text.contains("Generate Code"), "{text}");
    assert!(!text.contains(&code));
    assert_no_secret(&env, &text);
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn wrong_org_id_names_the_key_and_the_reachable_orgs() {
    let env = start(SimConfig::default(), Quota::default()).await;
    let s = &env.settings.sources[0];
    let bad = settings_for(
        env.dir.path(),
        &env.base,
        "12345",
        &s.client_id,
        s.client_secret.expose(),
        &Quota::default(),
    );
    let err = exchange_grant_code(&bad, "main", &env.grant_code(120).await).await.unwrap_err();
    assert!(matches!(err, ZohoError::OrgMismatch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("sources.main.org_id") && text.contains("12345"), "{text}");
    assert!(text.contains("60000000001 (Simulated Help Desk Inc)"), "{text}");
    assert_eq!(err.exit_code(), 2);
    assert!(!env.credentials_file().exists(), "nothing written for a wrong org");

    // A wrong org id after a good `auth` (edited config): Desk's OAUTH_ORG_MISMATCH, same message.
    env.authorize().await;
    let edited = settings_for(
        env.dir.path(),
        &env.base,
        "12345",
        &s.client_id,
        s.client_secret.expose(),
        &Quota::default(),
    );
    let client = DeskRegistry::new(quick_options()).client(&edited.sources[0]).unwrap();
    let err = check_desk(&client).await.unwrap_err();
    assert!(err.to_string().contains("sources.main.org_id"), "{err}");
    assert_eq!(err.exit_code(), 2);
    let err = client.list_page("tickets", 0, 10, &[]).await.unwrap_err();
    assert!(matches!(err, ZohoError::OrgMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn revoked_refresh_token_is_one_error_naming_the_source_and_auth() {
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    let client = env.client(quick_options());
    assert!(client.list_page("tickets", 0, 5, &[]).await.unwrap().len() == 5);
    let refresh = Credentials::load(&env.credentials_file()).unwrap().unwrap().refresh_token;
    env.http
        .post(format!("{}/oauth/v2/token/revoke", env.base))
        .form(&[("token", refresh.expose())])
        .send()
        .await
        .unwrap();
    let err = client.list_page("tickets", 0, 5, &[]).await.unwrap_err();
    assert!(matches!(err, ZohoError::RefreshTokenRejected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`main`") && text.contains("zoho-desk-cdc auth"), "{text}");
    assert_no_secret(&env, &format!("{text} {err:?} {client:?} {}", client.status()));
    assert_eq!(client.status()["token"]["refresh_token_rejected"], true);

    // Later calls fail the same way without hammering the token endpoint.
    let before = env.stats().await["requests_total"].as_u64().unwrap();
    for _ in 0..5 {
        let e = client.list_page("tickets", 0, 5, &[]).await.unwrap_err();
        assert!(matches!(e, ZohoError::RefreshTokenRejected { .. }));
    }
    let e = check_token(&client).await.unwrap_err();
    assert!(matches!(e, ZohoError::RefreshTokenRejected { .. }));
    assert_eq!(env.stats().await["requests_total"].as_u64().unwrap(), before);
}

#[tokio::test]
async fn missing_credentials_tell_the_operator_to_run_auth() {
    let env = start(SimConfig::default(), Quota::default()).await;
    let err = DeskRegistry::new(quick_options()).client(&env.settings.sources[0]).unwrap_err();
    assert!(matches!(err, ZohoError::NotAuthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("zoho-desk-cdc auth"), "{err}");
    assert_eq!(err.exit_code(), 2);
}
