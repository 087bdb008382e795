//! Managing the Desk webhook subscription of a source through the Desk API (the simulator): registering
//! is idempotent (one subscription, no second validation), a new service URL is PATCHed (and validated),
//! drifted event lists are repaired, duplicates are removed, `delete` removes only this source's, and
//! failures (server down, bad URL, edition without webhooks) end in one clear error without the secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod webhook_desk_support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use webhook_desk_support::{Receiver, SECRET, start};
use zoho_desk_cdc::secret::Secret;
use zoho_desk_cdc::sim::{Edition, SimConfig};
use zoho_desk_cdc::zoho::subscription::{
    self, Action, SubscriptionError, default_name, register, subscriptions_body,
};
use zoho_desk_cdc::zoho::webhook::EVENT_TYPES;

fn quick_sim() -> SimConfig {
    SimConfig { webhook_batch_window: Duration::from_millis(50), ..SimConfig::default() }
}

#[tokio::test]
async fn register_twice_is_one_subscription_and_a_new_url_is_patched() {
    let env = start(quick_sim()).await;
    let rx = Receiver::start().await;
    let name = default_name("main");

    let first = register(&env.client, &rx.service_url(SECRET), &name).await.unwrap();
    assert_eq!(first.action, Action::Created);
    let sub = &first.subscription;
    assert!(sub.ours && sub.enabled);
    assert_eq!(sub.url.expose(), rx.service_url(SECRET).expose());
    let mut wanted: Vec<String> = EVENT_TYPES.iter().map(|s| s.to_string()).collect();
    wanted.sort();
    assert_eq!(sub.event_types, wanted);
    assert_eq!(rx.validation_gets(), 1);
    let dbg = format!("{first:?}");
    assert!(!dbg.contains(SECRET), "{dbg}");

    let found = subscription::find_ours(&env.client, &rx.service_url(SECRET)).await.unwrap().unwrap();
    assert_eq!(found.id, sub.id);

    let again = register(&env.client, &rx.service_url(SECRET), &name).await.unwrap();
    assert_eq!(again.action, Action::Unchanged);
    assert_eq!(again.subscription.id, sub.id);
    assert_eq!(env.webhook_count().await, 1);
    assert_eq!(rx.validation_gets(), 1, "an unchanged URL is not validated again");

    // A new webhook secret (or public_url): the same subscription, PATCHed and validated.
    let new_secret = "fedcba9876543210fedcba9876543210";
    let moved = register(&env.client, &rx.service_url(new_secret), &name).await.unwrap();
    assert_eq!(moved.action, Action::UrlUpdated);
    assert_eq!(moved.subscription.id, sub.id);
    assert_eq!(moved.subscription.url.expose(), rx.service_url(new_secret).expose());
    assert_eq!(rx.validation_gets(), 2);
    assert_eq!(env.webhook_count().await, 1);
    // Found by its exact URL: the old secret's URL no longer names it.
    let found = subscription::find_ours(&env.client, &rx.service_url(new_secret)).await.unwrap().unwrap();
    assert_eq!(found.id, sub.id);
    assert!(subscription::find_ours(&env.client, &rx.service_url(SECRET)).await.unwrap().is_none());

    // Deliveries now go to the new URL.
    env.mutate("contacts", "update", 1).await;
    let posts = rx.wait_for("/webhooks/", 1).await;
    assert!(posts.iter().all(|p| p.path.ends_with(new_secret)), "{posts:?}");
}

#[tokio::test]
async fn drifted_subscriptions_are_repaired_and_duplicates_removed() {
    let env = start(quick_sim()).await;
    let rx = Receiver::start().await;
    let name = default_name("main");
    let reg = register(&env.client, &rx.service_url(SECRET), &name).await.unwrap();
    let id = reg.subscription.id.clone();

    // Someone disables it and narrows the events in Desk's UI.
    let narrowed = json!({"isEnabled": false, "subscriptions": {"Ticket_Add": null,
        "Contact_Update": {"includePrevState": false}}});
    env.client.send_json(Method::PATCH, &format!("webhooks/{id}"), &[], Some(&narrowed)).await.unwrap();
    // And a second one for the same source appears (an old manual setup).
    let dup = json!({"url": rx.service_url("another0secret").expose(), "name": "manual",
        "subscriptions": {"Ticket_Add": null}});
    env.client.send_json(Method::POST, "webhooks", &[], Some(&dup)).await.unwrap();
    // And one that is not ours.
    let foreign = json!({"url": format!("{}/webhooks/zoho/other/x1", rx.base), "name": "someone else",
        "subscriptions": {"Ticket_Add": null}});
    env.client.send_json(Method::POST, "webhooks", &[], Some(&foreign)).await.unwrap();
    assert_eq!(env.webhook_count().await, 3);

    let fixed = register(&env.client, &rx.service_url(SECRET), &name).await.unwrap();
    assert_eq!(fixed.action, Action::Updated);
    assert_eq!(fixed.subscription.id, id, "the one at our URL is kept");
    assert_eq!(fixed.removed_duplicates.len(), 1);
    assert!(fixed.subscription.enabled);
    let desk: Value = env.client.get_json("webhooks", &format!("webhooks/{id}"), &[]).await.unwrap().unwrap();
    for (k, v) in subscriptions_body().as_object().unwrap() {
        assert_eq!(&desk["subscriptions"][k], v, "{k}");
    }
    assert_eq!(desk["includeEventsFrom"], json!(["AUTOMATION"]));

    let all = subscription::list(&env.client).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().filter(|s| s.ours).count(), 1);
    let shown: Vec<String> = all.iter().map(|s| s.redacted_url()).collect();
    assert!(shown.iter().all(|u| !u.contains(SECRET) && u.ends_with("/***")), "{shown:?}");

    // `delete` removes ours only, and is idempotent.
    let deleted = subscription::delete(&env.client).await.unwrap();
    assert_eq!(deleted, vec![id]);
    let left = subscription::list(&env.client).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(!left[0].ours && left[0].name.as_deref() == Some("someone else"));
    assert!(subscription::delete(&env.client).await.unwrap().is_empty());
    assert!(subscription::find_ours(&env.client, &rx.service_url(SECRET)).await.unwrap().is_none());
}

#[tokio::test]
async fn failures_are_one_clear_error_without_the_secret() {
    let env = start(quick_sim()).await;
    let name = default_name("main");

    // Nothing answers at the service URL: Desk's validation fails.
    let rx = Receiver::start().await;
    let url = rx.service_url(SECRET);
    rx.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = register(&env.client, &url, &name).await.unwrap_err();
    assert!(matches!(err, SubscriptionError::Refused { status: 422, .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("validate the service URL") && text.contains("/webhooks/zoho/main/***"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(env.webhook_count().await, 0);

    // A URL that is not this source's service URL is refused before Desk is asked.
    for bad in [
        "http://127.0.0.1:1/webhooks/zoho/other/abc",
        "http://127.0.0.1:1/hook",
        "ftp://x/webhooks/zoho/main/s",
    ] {
        let err = register(&env.client, &Secret::new(bad), &name).await.unwrap_err();
        assert!(matches!(err, SubscriptionError::ServiceUrl { .. }), "{bad}: {err:?}");
    }
    let err = register(&env.client, &Secret::new("http://h/webhooks/zoho/main/"), &name).await.unwrap_err();
    assert!(matches!(err, SubscriptionError::ServiceUrl { .. }), "{err:?}");

    // An edition without webhooks.
    let standard = start(SimConfig { edition: Edition::Standard, ..quick_sim() }).await;
    let rx = Receiver::start().await;
    let err = register(&standard.client, &rx.service_url(SECRET), &name).await.unwrap_err();
    assert!(matches!(err, SubscriptionError::NotLicensed { .. }), "{err:?}");
    assert!(err.to_string().contains("Professional or Enterprise"));
}
