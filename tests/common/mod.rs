//! Shared helpers for integration tests: where the real broker and registry are, and unique names.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

/// The broker `make test` starts (override with ZDC_TEST_BOOTSTRAP).
pub fn bootstrap() -> String {
    std::env::var("ZDC_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The registry's Confluent-compatible base URL (override with ZDC_TEST_REGISTRY).
pub fn registry_url() -> String {
    std::env::var("ZDC_TEST_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// A name no other test run has used, so tests never see each other's topics.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
