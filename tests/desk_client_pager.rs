//! Paging helpers against the simulator: list pages end on 204 or a short page and read every record
//! exactly once whatever the `from` base; search windows split past Desk's 5000 ceiling and resume from
//! a stored cursor; module keys such as `teams` are understood.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod desk_client_support;

use chrono::{TimeZone, Utc};
use desk_client_support::{Env, Quota, quick_options, start};
use serde_json::Value;
use std::collections::HashSet;
use zoho_desk_cdc::sim::{Scale, SimConfig};
use zoho_desk_cdc::zoho::client::ClientOptions;
use zoho_desk_cdc::zoho::pager::{ListPager, SearchCursor, SearchPager, TimeWindow};

async fn truth(env: &Env, module: &str) -> Vec<String> {
    let v: Vec<Value> =
        env.http.get(format!("{}/_sim/state/{module}", env.base)).send().await.unwrap().json().await.unwrap();
    v.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

async fn walk(env: &Env, opts: ClientOptions, module: &str, limit: u32) -> Vec<String> {
    let client = env.client(opts);
    let mut pager = ListPager::new(&client, module, limit, Vec::new());
    let mut ids = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        ids.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    assert!(pager.cursor().done);
    ids
}

#[tokio::test]
async fn list_pages_read_every_record_once_whatever_the_from_base() {
    for (sim_base, client_base) in [(1u8, 0u32), (1, 1), (0, 0)] {
        let cfg = SimConfig { list_from_base: sim_base, ..SimConfig::default() };
        let env = start(cfg, Quota::default()).await;
        env.authorize().await;
        let mut expected = truth(&env, "contacts").await;
        expected.sort();
        for limit in [7, 10, 100] {
            let opts = ClientOptions { list_from_base: client_base, ..quick_options() };
            let ids = walk(&env, opts, "contacts", limit).await;
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "duplicates (sim {sim_base}, client {client_base}, limit {limit})"
            );
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(sorted, expected, "sim base {sim_base}, client base {client_base}, limit {limit}");
        }
    }
}

#[tokio::test]
async fn module_keys_and_204_are_understood() {
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    let client = env.client(quick_options());
    let teams = client.get_json("teams", "teams", &[]).await.unwrap().unwrap();
    assert!(teams.get("teams").is_some());
    let pages = client.list_page("contacts", 4000, 10, &[]).await.unwrap();
    assert!(pages.is_empty(), "204 past the end is an empty page");
    let none = client
        .search_page("tickets/search", 0, 10, &[("subject".into(), "no such subject anywhere".into())])
        .await
        .unwrap();
    assert!(none.records.is_empty() && none.count.is_none());
}

#[tokio::test]
async fn search_windows_split_past_the_ceiling_and_resume_from_a_cursor() {
    let mut scale = Scale::small();
    scale.apply("tickets=6500").unwrap();
    let cfg = SimConfig { scale, ..SimConfig::default() };
    let data_end = cfg.data_end_ms;
    let env = start(cfg, Quota::default()).await;
    env.authorize().await;
    let client = env.client(quick_options());
    let window = TimeWindow {
        start: Utc.timestamp_millis_opt(data_end - 3 * 365 * 86_400_000).unwrap(),
        end: Utc.timestamp_millis_opt(data_end).unwrap(),
    };
    let extra = vec![("sortBy".to_owned(), "createdTime".to_owned())];
    let mut pager =
        SearchPager::new(&client, "tickets/search", "createdTimeRange", window, 100, extra.clone());
    let mut ids = Vec::new();
    for _ in 0..20 {
        let batch = pager.next_batch().await.unwrap().unwrap();
        ids.extend(batch.records.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    let first = pager.cursor().windows[0];
    assert!(
        first.start > window.start && first.end <= window.end,
        "the 6500-match window was split: {first:?}"
    );
    // A restart: the cursor survives JSON, and a new pager carries on where the old one stopped.
    let stored = serde_json::to_string(pager.cursor()).unwrap();
    drop(pager);
    let cursor: SearchCursor = serde_json::from_str(&stored).unwrap();
    let mut pager = SearchPager::resume(&client, "tickets/search", "createdTimeRange", 100, extra, cursor);
    while let Some(batch) = pager.next_batch().await.unwrap() {
        ids.extend(batch.records.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no record twice");
    assert_eq!(ids.len(), truth(&env, "tickets").await.len(), "no record missed");
    assert_eq!(env.status_count("422").await, 0, "never asked past the ceiling");
}

/// A 2xx body that is not the endpoint's shape (cut short, or without the records key) is neither an
/// empty page (which would end the walk there) nor final: the client retries it like a 5xx, counts it,
/// and fails with InvalidResponse only once the attempts are spent.
#[tokio::test]
async fn bodies_cut_short_or_without_records_are_retried_then_fail() {
    use zoho_desk_cdc::pipeline::DeskPages;
    use zoho_desk_cdc::zoho::error::ZohoError;
    let env = start(SimConfig::default(), Quota::default()).await;
    env.authorize().await;
    let client = env.client(quick_options());
    let query = || vec![("from".to_owned(), "0".to_owned()), ("limit".to_owned(), "10".to_owned())];
    let invalid = || {
        desk_client_support::metrics_text()
            .lines()
            .filter(|l| {
                l.starts_with("zoho_desk_cdc_api_invalid_responses_total{") && l.contains("\"contacts\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    for kind in ["truncated_body", "empty_object"] {
        // Lasting longer than every backoff of one call (quick options: 5 attempts, 50 ms doubling): fails.
        let before = invalid();
        env.fault(serde_json::json!({"kind": kind, "ratio": 1.0, "duration_s": 30})).await;
        let err = client.page("contacts", query(), "data").await.unwrap_err();
        let err = err.downcast_ref::<ZohoError>().expect("a Desk client error");
        assert!(matches!(err, ZohoError::InvalidResponse { .. }), "{kind}: {err}");
        assert_eq!(invalid() - before, 5, "{kind}: every refused body counted");
        env.http.delete(format!("{}/_sim/faults", env.base)).send().await.unwrap();

        // A short burst (shorter than the first four backoffs together, at least 375 ms): recovered.
        env.fault(serde_json::json!({"kind": kind, "ratio": 1.0, "duration_s": 0.2})).await;
        let page = client.page("contacts", query(), "data").await.unwrap();
        assert_eq!(page.records.len(), 10, "{kind}: the retried call reads the page");
    }
}
