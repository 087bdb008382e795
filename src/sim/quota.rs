//! API credits (daily, reset at UTC midnight), the concurrent-call cap and the optional per-minute cap.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::errors::DeskError;
use super::lock;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default)]
struct Window {
    day: i64,
    used_today: u64,
    minute: i64,
    minute_count: u32,
}

#[derive(Debug, Default)]
pub struct Quota {
    in_flight: Arc<AtomicU32>,
    window: Mutex<Window>,
    pub credits_used_total: AtomicU64,
}

/// Holds one of the concurrent-call places until dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Quota {
    /// Takes a concurrent-call place, or fails with Desk's TOO_MANY_REQUESTS.
    pub fn acquire(&self, cap: u32) -> Result<Slot, DeskError> {
        let prev = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.in_flight.clone());
        if prev >= cap {
            return Err(DeskError::too_many_concurrent());
        }
        Ok(slot)
    }

    /// The optional requests-per-minute cap (not a documented Desk limit; off by default).
    pub fn check_rate(&self, per_minute: Option<u32>, now_ms: i64) -> Result<(), DeskError> {
        let Some(limit) = per_minute else {
            return Ok(());
        };
        let mut w = lock(&self.window);
        let minute = now_ms.div_euclid(60_000);
        if w.minute != minute {
            w.minute = minute;
            w.minute_count = 0;
        }
        if w.minute_count >= limit {
            let retry = (60_000 - now_ms.rem_euclid(60_000) + 999) / 1000;
            return Err(DeskError::too_many_per_minute(retry.max(1) as u64));
        }
        w.minute_count += 1;
        Ok(())
    }

    /// Spends `cost` credits; answers the credits left, or THRESHOLD_EXCEEDED with Retry-After.
    pub fn charge(&self, cost: u64, daily: u64, now_ms: i64) -> Result<u64, DeskError> {
        let mut w = lock(&self.window);
        let day = now_ms.div_euclid(DAY_MS);
        if w.day != day {
            w.day = day;
            w.used_today = 0;
        }
        if w.used_today + cost > daily {
            let retry = (DAY_MS - now_ms.rem_euclid(DAY_MS) + 999) / 1000;
            return Err(DeskError::threshold_exceeded(retry.max(1) as u64)
                .with_header("x-rate-limit-request-weight-v3", &cost.to_string())
                .with_header("x-rate-limit-remaining-v3", &(daily - w.used_today.min(daily)).to_string()));
        }
        w.used_today += cost;
        self.credits_used_total.fetch_add(cost, Ordering::Relaxed);
        Ok(daily - w.used_today)
    }
}
