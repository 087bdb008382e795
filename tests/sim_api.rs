//! Simulator Desk API over HTTP: authentication errors, list/detail/search/count rules, field metadata,
//! moveToTrash, and the 5000-offset ceiling versus a createdTimeRange walk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_support;

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};
use sim_support::{start, start_with_scopes};
use zoho_desk_cdc::sim::{Scale, SimConfig};

fn is_iso_ms(s: &str) -> bool {
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn authentication_and_org_errors_use_desk_bodies() {
    let env = start(SimConfig::default()).await;
    let url = format!("{}/api/v1/tickets", env.base);
    let r = env.http.get(&url).header("orgId", &env.org).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errorCode": "INVALID_OAUTH", "message": "The OAuth Token you provided is invalid."})
    );
    let r = env
        .http
        .get(&url)
        .header("Authorization", "Zoho-oauthtoken 1000.nope.nope")
        .header("orgId", &env.org)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = env
        .http
        .get(&url)
        .header("Authorization", format!("Zoho-oauthtoken {}", env.token))
        .header("orgId", "12345")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], "OAUTH_ORG_MISMATCH");
    // Bearer and orgId as a query parameter are accepted too (flags).
    let r = env
        .http
        .get(format!("{url}?orgId={}", env.org))
        .header("Authorization", format!("Bearer {}", env.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // /organizations needs no orgId.
    let r = env
        .http
        .get(format!("{}/api/v1/organizations", env.base))
        .header("Authorization", format!("Zoho-oauthtoken {}", env.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["data"][0]["id"], env.org.as_str());
}

#[tokio::test]
async fn missing_scope_is_scope_mismatch() {
    let env = start_with_scopes(SimConfig::default(), Some("Desk.contacts.READ")).await;
    assert_eq!(env.get("contacts").await.status().as_u16(), 200);
    let (st, body) = env.get_json("tickets").await;
    assert_eq!(st, 403);
    assert_eq!(
        body,
        json!({"errorCode": "SCOPE_MISMATCH", "message": "The OAuth Token does not contain the scope to perform this operation."})
    );
    // Search needs Desk.search.READ on top of the module's scope.
    let (st, _) = env.get_json("contacts/search?limit=5").await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn tickets_list_projection_and_fields_parameter() {
    let env = start(SimConfig::default()).await;
    let (st, body) = env.get_json("tickets?limit=5").await;
    assert_eq!(st, 200);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    for t in data {
        let id = t["id"].as_str().unwrap();
        assert!((15..=19).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()));
        assert!(is_iso_ms(t["createdTime"].as_str().unwrap()));
        assert!(t.get("modifiedTime").is_none());
        assert!(t.get("description").is_none());
        assert!(t.get("cf").is_none());
        assert!(t["departmentId"].is_string());
        assert!(t["ticketNumber"].is_string());
    }
    let (st, body) = env.get_json("tickets?limit=3&fields=modifiedTime,cf_severity,description").await;
    assert_eq!(st, 200);
    let t = &body["data"][0];
    assert!(is_iso_ms(t["modifiedTime"].as_str().unwrap()));
    assert!(t["description"].is_string());
    let cf = t["cf"].as_object().unwrap();
    assert_eq!(cf.keys().collect::<Vec<_>>(), vec!["cf_severity"]);
    let (st, body) = env.get_json("tickets?fields=noSuchField").await;
    assert_eq!(st, 422);
    assert_eq!(body["errorCode"], "UNPROCESSABLE_ENTITY");
    // Detail has everything the list omits.
    let id = t["id"].as_str().unwrap();
    let (st, d) = env.get_json(&format!("tickets/{id}")).await;
    assert_eq!(st, 200);
    for k in [
        "modifiedTime",
        "description",
        "cf",
        "isDeleted",
        "isTrashed",
        "contactId",
        "accountId",
        "assigneeId",
        "statusType",
        "dueDate",
    ] {
        assert!(d.get(k).is_some(), "detail has {k}");
    }
    assert!(is_iso_ms(d["modifiedTime"].as_str().unwrap()));
}

#[tokio::test]
async fn paging_rules_limits_unknown_params_and_empty_pages() {
    let env = start(SimConfig::default()).await;
    let (st, b) = env.get_json("tickets?limit=101").await;
    assert_eq!((st, b["errorCode"].as_str()), (422, Some("UNPROCESSABLE_ENTITY")));
    assert_eq!(env.get("tickets?limit=100").await.status().as_u16(), 200);
    assert_eq!(env.get("departments?limit=200").await.status().as_u16(), 200);
    assert_eq!(env.get("articles?limit=51").await.status().as_u16(), 422);
    let (st, b) = env.get_json("tickets?sortOrder=asc").await;
    assert_eq!(st, 422);
    assert_eq!(
        b,
        json!({"errorCode": "UNPROCESSABLE_ENTITY", "message": "Extra query parameter 'sortOrder' is present in the input."})
    );
    let (st, b) = env.get_json("tickets?from=5000&limit=10").await;
    assert_eq!(st, 422);
    assert_eq!(
        b,
        json!({"errorCode": "UNPROCESSABLE_ENTITY", "message": "The value passed for field 'from' exceeds the range of '0-4999'"})
    );
    // `modifiedTime` is not a sortBy of /tickets.
    assert_eq!(env.get("tickets?sortBy=modifiedTime").await.status().as_u16(), 422);
    assert_eq!(env.get("tickets?sortBy=-createdTime").await.status().as_u16(), 200);
    // Past the end: 204 with an empty body.
    let r = env.get("tickets?from=4000&limit=10").await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    // Default base 1: from=0 and from=1 both start at the first record; from=2 at the second.
    let first = |b: Value| b["data"][0]["id"].as_str().unwrap().to_owned();
    let a = first(env.get_json("tickets?from=0&limit=1").await.1);
    let b1 = first(env.get_json("tickets?from=1&limit=1").await.1);
    let c = first(env.get_json("tickets?from=2&limit=1").await.1);
    assert_eq!(a, b1);
    assert_ne!(b1, c);
}

#[tokio::test]
async fn list_from_base_zero_is_a_plain_offset() {
    let env = start(SimConfig { list_from_base: 0, ..SimConfig::default() }).await;
    let first = |b: Value| b["data"][0]["id"].as_str().unwrap().to_owned();
    let a = first(env.get_json("contacts?from=0&limit=1").await.1);
    let b = first(env.get_json("contacts?from=1&limit=1").await.1);
    let all = env.get_json("contacts?from=0&limit=2").await.1;
    assert_ne!(a, b);
    assert_eq!(all["data"][1]["id"], b.as_str());
}

#[tokio::test]
async fn custom_fields_match_field_metadata_new_and_legacy() {
    let env = start(SimConfig::default()).await;
    for module in ["tickets", "contacts", "accounts", "tasks"] {
        let (st, f) = env.get_json(&format!("fields?module={module}")).await;
        assert_eq!(st, 200, "{module}");
        let custom: HashSet<String> = f["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["isCustomField"] == true)
            .map(|x| x["apiName"].as_str().unwrap().to_owned())
            .collect();
        let (_, legacy) = env.get_json(&format!("organizationFields?module={module}")).await;
        let legacy_custom: HashSet<String> = legacy["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["isCustomField"] == true)
            .map(|x| x["apiName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(custom, legacy_custom);
        let state = env.state(module).await;
        let rec = &state[0];
        let cf_keys: HashSet<String> = rec["cf"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(cf_keys, custom, "{module} cf keys match /fields");
        assert!(rec["cf"].as_object().unwrap().values().all(|v| v.is_string() || v.is_null()));
    }
    assert_eq!(env.get("fields").await.status().as_u16(), 422);
    assert_eq!(env.get("fields?module=nope").await.status().as_u16(), 422);
}

#[tokio::test]
async fn move_to_trash_removes_tickets_from_lists_state_and_counts() {
    let env = start(SimConfig::default()).await;
    let (_, count_before) = env.get_json("ticketsCount").await;
    let before: usize = count_before["count"].as_str().unwrap().parse().unwrap();
    let victim = env.state("tickets").await[3]["id"].as_str().unwrap().to_owned();
    let r = env
        .authed(reqwest::Method::POST, "tickets/moveToTrash")
        .json(&json!({"ticketIds": [victim]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(env.get(&format!("tickets/{victim}")).await.status().as_u16(), 404);
    let mut listed = Vec::new();
    let mut from = 1;
    loop {
        let (st, b) = env.get_json(&format!("tickets?from={from}&limit=100")).await;
        if st == 204 {
            break;
        }
        for t in b["data"].as_array().unwrap() {
            listed.push(t["id"].as_str().unwrap().to_owned());
        }
        from += 100;
    }
    assert!(!listed.contains(&victim));
    assert_eq!(listed.len(), before - 1);
    assert!(env.state("tickets").await.iter().all(|t| t["id"] != victim.as_str()));
    let (_, after) = env.get_json("ticketsCount").await;
    assert_eq!(after["count"].as_str().unwrap().parse::<usize>().unwrap(), before - 1);
    // Trashing it again, or with a bad body, is INVALID_DATA.
    let r = env
        .authed(reqwest::Method::POST, "tickets/moveToTrash")
        .json(&json!({"ticketIds": [victim]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = env.authed(reqwest::Method::POST, "tickets/moveToTrash").json(&json!({})).send().await.unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errorCode"], "INVALID_DATA");
    assert_eq!(b["errors"][0]["fieldName"], "/ticketIds");
}

#[tokio::test]
async fn search_time_ranges_sorting_count_and_cap() {
    let env = start(SimConfig::default()).await;
    let state = env.state("tickets").await;
    let mut created: Vec<&str> = state.iter().map(|t| t["createdTime"].as_str().unwrap()).collect();
    created.sort_unstable();
    let (lo, hi) = (created[10], created[40]);
    let expected = created.iter().filter(|c| **c >= lo && **c <= hi).count();
    let (st, b) = env
        .get_json(&format!("tickets/search?createdTimeRange={lo},{hi}&sortBy=createdTime&limit=100"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["count"], expected);
    let got: Vec<&str> =
        b["data"].as_array().unwrap().iter().map(|t| t["createdTime"].as_str().unwrap()).collect();
    assert_eq!(got.len(), expected);
    assert!(got.windows(2).all(|w| w[0] <= w[1]));
    // modifiedTime sorting, descending.
    let (st, b) = env.get_json("tickets/search?sortBy=-modifiedTime&limit=50&from=0").await;
    assert_eq!(st, 200);
    let m: Vec<&str> =
        b["data"].as_array().unwrap().iter().map(|t| t["modifiedTime"].as_str().unwrap()).collect();
    assert!(m.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(b["count"], state.len());
    // The iteration cap and the from ceiling.
    let (st, b) = env.get_json("tickets/search?from=4950&limit=100").await;
    assert_eq!(st, 422);
    assert_eq!(b["message"], "Max search result iterable is 5000");
    assert_eq!(env.get("tickets/search?from=5000&limit=1").await.status().as_u16(), 422);
    // No match: 204.
    let r =
        env.get("tickets/search?createdTimeRange=2001-01-01T00:00:00.000Z,2001-01-02T00:00:00.000Z").await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(env.get("tickets/search?createdTimeRange=garbage").await.status().as_u16(), 422);
    assert_eq!(env.get("tickets/search?bogus=1").await.status().as_u16(), 422);
}

#[tokio::test]
async fn counts_detail_and_other_modules() {
    let env = start(SimConfig::default()).await;
    let (st, c) = env.get_json("ticketsCount").await;
    assert_eq!(st, 200);
    assert_eq!(c["count"], SimConfig::default().scale.get(zoho_desk_cdc::sim::Module::Tickets).to_string());
    let (_, c) = env.get_json("tasks/count").await;
    assert_eq!(c["count"], 25);
    let (st, teams) = env.get_json("teams").await;
    assert_eq!(st, 200);
    assert!(teams["teams"].is_array(), "teams come under 'teams'");
    for module in [
        "contacts",
        "accounts",
        "departments",
        "products",
        "agents",
        "tasks",
        "calls",
        "events",
        "contracts",
        "articles",
    ] {
        let (st, b) = env.get_json(&format!("{module}?limit=2")).await;
        assert_eq!(st, 200, "{module}");
        let id = b["data"][0]["id"].as_str().unwrap().to_owned();
        let (st, d) = env.get_json(&format!("{module}/{id}")).await;
        assert_eq!(st, 200, "{module} detail");
        assert_eq!(d["id"], id.as_str());
    }
    assert_eq!(env.get("tickets/123").await.status().as_u16(), 404);
    assert_eq!(env.get("tickets/abc").await.status().as_u16(), 422);
    assert_eq!(env.get("nosuchmodule").await.status().as_u16(), 404);
    // Threads and comments hang off tickets.
    let tid = env.state("tickets").await[0]["id"].as_str().unwrap().to_owned();
    let (st, th) = env.get_json(&format!("tickets/{tid}/threads")).await;
    assert_eq!(st, 200);
    let thread_id = th["data"][0]["id"].as_str().unwrap().to_owned();
    let (st, full) = env.get_json(&format!("tickets/{tid}/threads/{thread_id}")).await;
    assert_eq!(st, 200);
    assert!(full["content"].is_string());
}

#[tokio::test]
async fn state_matches_detail_for_every_module() {
    let env = start(SimConfig::default()).await;
    for module in ["tickets", "contacts", "accounts", "agents", "tasks", "contracts", "articles"] {
        let state = env.state(module).await;
        assert!(!state.is_empty());
        for rec in state.iter().take(3) {
            let (_, d) = env.get_json(&format!("{module}/{}", rec["id"].as_str().unwrap())).await;
            assert_eq!(&d, rec, "{module}");
        }
    }
}

/// Paging /tickets stops at the 5000 ceiling; createdTimeRange windows reach every ticket.
#[tokio::test]
async fn list_walk_hits_ceiling_but_search_windows_reach_everything() {
    let mut scale = Scale::small();
    scale.apply("tickets=6000").unwrap();
    let env = start(SimConfig { scale, ..SimConfig::default() }).await;
    let mut seen = 0usize;
    let mut from = 1u64;
    let stop = loop {
        let (st, b) = env.get_json(&format!("tickets?from={from}&limit=100")).await;
        if st != 200 {
            break (st, b);
        }
        seen += b["data"].as_array().unwrap().len();
        from += 100;
    };
    assert_eq!(seen, 5000, "the list walk sees only the first 5000");
    assert_eq!(stop.0, 422);
    assert_eq!(stop.1["message"], "The value passed for field 'from' exceeds the range of '0-4999'");

    // Keyset walk on createdTime: window [cursor, end], skipping ids already seen at the cursor.
    let end = "2030-01-01T00:00:00.000Z";
    let mut cursor = "2000-01-01T00:00:00.000Z".to_owned();
    let mut ids: BTreeMap<String, ()> = BTreeMap::new();
    let mut at_cursor: HashSet<String> = HashSet::new();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 200, "walk does not terminate");
        let (st, b) = env
            .get_json(&format!(
                "tickets/search?createdTimeRange={cursor},{end}&sortBy=createdTime&from=0&limit=100"
            ))
            .await;
        if st == 204 {
            break;
        }
        let page = b["data"].as_array().unwrap();
        let mut new = 0;
        for t in page {
            let id = t["id"].as_str().unwrap().to_owned();
            let c = t["createdTime"].as_str().unwrap().to_owned();
            if c != cursor {
                cursor = c;
                at_cursor.clear();
            }
            if at_cursor.insert(id.clone()) && ids.insert(id, ()).is_none() {
                new += 1;
            }
        }
        if page.len() < 100 || new == 0 {
            break;
        }
    }
    assert_eq!(ids.len(), 6000, "the search walk reaches every ticket");
}

#[tokio::test]
async fn relations_point_at_existing_records() {
    let env = start(SimConfig::default()).await;
    let tickets = env.state("tickets").await;
    for t in tickets.iter().take(15) {
        let dept = t["departmentId"].as_str().unwrap();
        assert_eq!(env.get(&format!("departments/{dept}")).await.status().as_u16(), 200);
        let contact = t["contactId"].as_str().unwrap();
        let (st, c) = env.get_json(&format!("contacts/{contact}")).await;
        assert_eq!(st, 200);
        assert_eq!(t["accountId"], c["accountId"], "a ticket's account is its contact's");
        assert_eq!(t["email"], c["email"]);
        if let Some(a) = t["assigneeId"].as_str() {
            assert_eq!(env.get(&format!("agents/{a}")).await.status().as_u16(), 200);
        }
        assert_eq!(t["isDeleted"], false);
        assert_eq!(t["isTrashed"], false);
    }
    // An unknown path with a bad token is still 401: authentication comes first.
    let r = env
        .http
        .get(format!("{}/api/v1/nowhere", env.base))
        .header("Authorization", "Zoho-oauthtoken 1000.x.y")
        .header("orgId", &env.org)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(env.get("nowhere").await.status().as_u16(), 404);
}

/// A million tickets start well inside 30 s (even unoptimised) and stay far below 2 GiB.
#[tokio::test]
async fn a_million_tickets_start_fast_and_small() {
    let mut scale = Scale::small();
    scale.apply("tickets=1000000").unwrap();
    let t0 = std::time::Instant::now();
    let env = start(SimConfig { scale, ..SimConfig::default() }).await;
    let started = t0.elapsed();
    assert!(started.as_secs() < 30, "start took {started:?}");
    let (_, c) = env.get_json("ticketsCount").await;
    assert_eq!(c["count"], "1000000");
    let (st, page) = env.get_json("tickets/search?sortBy=-modifiedTime&limit=100").await;
    assert_eq!(st, 200);
    assert_eq!(page["count"], 1_000_000);
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let rss_kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(rss_kb < 2 * 1024 * 1024, "RSS {rss_kb} kB");
    }
}

#[tokio::test]
async fn fields_mode_only_returns_id_and_the_named_fields() {
    let env =
        start(SimConfig { fields_mode: zoho_desk_cdc::sim::FieldsMode::Only, ..SimConfig::default() }).await;
    let (st, b) = env.get_json("tickets?limit=2&fields=subject,cf_region").await;
    assert_eq!(st, 200);
    let t = b["data"][0].as_object().unwrap();
    let mut keys: Vec<&str> = t.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["cf", "id", "subject"]);
    assert!(t["cf"].get("cf_region").is_some());
}
