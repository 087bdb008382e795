//! Counters behind `GET /_sim/stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::lock;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests_total: AtomicU64,
    status_counts: Mutex<BTreeMap<u16, u64>>,
    pub webhook_ok: AtomicU64,
    pub webhook_failed: AtomicU64,
    pub webhook_dropped: AtomicU64,
    pub webhook_events: AtomicU64,
    pub cliq_ok: AtomicU64,
    pub cliq_failed: AtomicU64,
    pub mutations: AtomicU64,
}

impl Stats {
    pub fn record(&self, status: u16) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        *lock(&self.status_counts).entry(status).or_insert(0) += 1;
    }

    pub fn status_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.status_counts).iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}
