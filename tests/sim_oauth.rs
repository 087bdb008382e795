//! Simulator OAuth over HTTP: grant codes, refresh, lifetimes, Desk's error forms, limits and revoke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_support;

use std::time::Duration;

use serde_json::{Value, json};
use sim_support::{client, start};
use zoho_desk_cdc::sim::SimConfig;

async fn token_call(env: &sim_support::Env, params: &[(&str, &str)]) -> (u16, Value) {
    let r = env.http.post(format!("{}/oauth/v2/token", env.base)).query(params).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn authorization_code_is_single_use_and_returns_desk_shape() {
    let env = start(SimConfig::default()).await;
    let grant = env.control("grant-codes", json!({"scopes": "Desk.tickets.READ", "ttl_s": 60})).await;
    assert_eq!(grant["client_id"], env.client_id.as_str());
    let code = grant["code"].as_str().unwrap();
    let params = [
        ("grant_type", "authorization_code"),
        ("client_id", env.client_id.as_str()),
        ("client_secret", env.client_secret.as_str()),
        ("code", code),
    ];
    let (st, body) = token_call(&env, &params).await;
    assert_eq!(st, 200);
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["api_domain"].as_str().unwrap().starts_with("https://www.zohoapis."));
    assert!(body["access_token"].as_str().unwrap().starts_with("1000."));
    assert!(body["refresh_token"].is_string());
    // Reusing the code: HTTP 200 with an error body.
    let (st, body) = token_call(&env, &params).await;
    assert_eq!((st, body), (200, json!({"error": "invalid_code"})));
}

#[tokio::test]
async fn expired_code_and_bad_client_are_errors_with_http_200() {
    let env = start(SimConfig::default()).await;
    let grant = env.control("grant-codes", json!({"ttl_s": 1})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let code = grant["code"].as_str().unwrap();
    let (st, body) = token_call(
        &env,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("code", code),
        ],
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (200, Some("invalid_code")));
    let (st, body) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nope"),
            ("client_secret", &env.client_secret),
            ("refresh_token", &env.refresh),
        ],
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (200, Some("invalid_client")));
    let (st, body) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", "wrong"),
            ("refresh_token", &env.refresh),
        ],
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (200, Some("invalid_client_secret")));
    let (st, body) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("refresh_token", "1000.bogus.bogus"),
        ],
    )
    .await;
    assert_eq!((st, body["error"].as_str()), (200, Some("invalid_code")));
}

#[tokio::test]
async fn refresh_gives_access_without_new_refresh_token_and_tokens_expire() {
    let cfg = SimConfig { token_ttl: Duration::from_secs(1), ..SimConfig::default() };
    let env = start(cfg).await;
    let (st, body) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("refresh_token", &env.refresh),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body["expires_in"], 1);
    assert!(body.get("refresh_token").is_none(), "refresh tokens are not rotated");
    // Form-encoded bodies work as well as query strings.
    let form: Value = env
        .http
        .post(format!("{}/oauth/v2/token", env.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("refresh_token", &env.refresh),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(form["access_token"].is_string());
    assert_eq!(env.get("tickets").await.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, err) = env.get_json("tickets").await;
    assert_eq!(st, 401);
    assert_eq!(
        err,
        json!({"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."})
    );
}

#[tokio::test]
async fn eleventh_access_token_invalidates_the_oldest() {
    let env = start(SimConfig::default()).await;
    // The code exchange issued token #1 (env.token); nine refreshes make ten live tokens.
    let mut tokens = vec![env.token.clone()];
    for _ in 0..9 {
        let (_, b) = token_call(
            &env,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &env.client_id),
                ("client_secret", &env.client_secret),
                ("refresh_token", &env.refresh),
            ],
        )
        .await;
        tokens.push(b["access_token"].as_str().unwrap().to_owned());
    }
    let call = |t: String| {
        let env = &env;
        async move {
            env.http
                .get(format!("{}/api/v1/tickets", env.base))
                .header("Authorization", format!("Zoho-oauthtoken {t}"))
                .header("orgId", &env.org)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(tokens[0].clone()).await, 200);
    let (_, b) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("refresh_token", &env.refresh),
        ],
    )
    .await;
    let newest = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call(tokens[0].clone()).await, 401, "the oldest token is gone");
    assert_eq!(call(tokens[1].clone()).await, 200);
    assert_eq!(call(newest).await, 200);
}

#[tokio::test]
async fn token_requests_are_throttled_with_access_denied() {
    let env = start(SimConfig::default()).await;
    let params = [
        ("grant_type", "refresh_token"),
        ("client_id", env.client_id.as_str()),
        ("client_secret", env.client_secret.as_str()),
        ("refresh_token", env.refresh.as_str()),
    ];
    for _ in 0..10 {
        let (st, b) = token_call(&env, &params).await;
        assert_eq!(st, 200);
        assert!(b["access_token"].is_string());
    }
    let (st, b) = token_call(&env, &params).await;
    assert_eq!(st, 400);
    assert_eq!(b["error"], "Access Denied");
    assert_eq!(b["status"], "failure");
    assert_eq!(
        b["error_description"],
        "You have made too many requests continuously. Please try again after some time."
    );
}

#[tokio::test]
async fn revoking_the_refresh_token_kills_it_and_its_access_tokens() {
    let env = start(SimConfig::default()).await;
    assert_eq!(env.get("tickets").await.status().as_u16(), 200);
    let r = client()
        .post(format!("{}/oauth/v2/token/revoke", env.base))
        .query(&[("token", env.refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(env.get("tickets").await.status().as_u16(), 401);
    let (st, b) = token_call(
        &env,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &env.client_id),
            ("client_secret", &env.client_secret),
            ("refresh_token", &env.refresh),
        ],
    )
    .await;
    assert_eq!((st, b["error"].as_str()), (200, Some("invalid_code")));
}
