//! API credits (daily, reset at UTC midnight or every `daily_reset` since simulator start), the
//! concurrent-call cap and the optional per-minute cap.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::config::DailyCredits;
use super::errors::DeskError;
use super::{lock, now_ms};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default)]
struct Window {
    day: i64,
    used_today: u64,
    minute: i64,
    minute_count: u32,
}

#[derive(Debug)]
pub struct Quota {
    in_flight: Arc<AtomicU32>,
    window: Mutex<Window>,
    pub credits_used_total: AtomicU64,
    /// When the simulator started (ms since the epoch): the origin of a short `daily_reset` day.
    started_ms: i64,
}

impl Default for Quota {
    /// A fresh quota; its creation time is the simulator's start.
    fn default() -> Self {
        Self::starting_at(now_ms())
    }
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
    /// A fresh quota whose short credit days (if any) count from `started_ms`.
    pub fn starting_at(started_ms: i64) -> Self {
        Self {
            in_flight: Arc::default(),
            window: Mutex::default(),
            credits_used_total: AtomicU64::new(0),
            started_ms,
        }
    }

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

    /// Spends `cost` credits; answers the credits left, or THRESHOLD_EXCEEDED with Retry-After (seconds
    /// until the reset, rounded up, at least 1).
    pub fn charge(&self, cost: u64, daily: impl Into<DailyCredits>, now_ms: i64) -> Result<u64, DeskError> {
        let DailyCredits { credits: daily, reset } = daily.into();
        // The day's length and where days start: UTC midnight, or every `reset` since the start.
        let (len_ms, origin) = match reset {
            Some(d) => (i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1), self.started_ms),
            None => (DAY_MS, 0),
        };
        let since = now_ms - origin;
        let mut w = lock(&self.window);
        let day = since.div_euclid(len_ms);
        if w.day != day {
            w.day = day;
            w.used_today = 0;
        }
        if w.used_today + cost > daily {
            let left_ms = len_ms - since.rem_euclid(len_ms);
            let retry = left_ms / 1000 + i64::from(left_ms % 1000 != 0);
            return Err(DeskError::threshold_exceeded(retry.max(1) as u64)
                .with_header("x-rate-limit-request-weight-v3", &cost.to_string())
                .with_header("x-rate-limit-remaining-v3", &(daily - w.used_today.min(daily)).to_string()));
        }
        w.used_today += cost;
        self.credits_used_total.fetch_add(cost, Ordering::Relaxed);
        Ok(daily - w.used_today)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn retry_after(e: &DeskError) -> Option<String> {
        e.headers.iter().find(|(k, _)| *k == "retry-after").map(|(_, v)| v.clone())
    }

    #[test]
    fn short_day_resets_from_the_start_with_retry_after_until_the_reset() {
        let q = Quota::starting_at(1_000_000);
        let budget = DailyCredits { credits: 5, reset: Some(Duration::from_millis(2_500)) };
        assert_eq!(q.charge(3, budget, 1_000_000).ok(), Some(2));
        let err = q.charge(3, budget, 1_000_100).err();
        let retry = err.as_ref().map(|e| (e.code, retry_after(e)));
        // 2.4 s left, rounded up.
        assert_eq!(retry, Some(("THRESHOLD_EXCEEDED", Some("3".to_owned()))));
        let err = q.charge(3, budget, 1_002_499).err();
        assert_eq!(err.as_ref().and_then(retry_after).as_deref(), Some("1"));
        // The next day starts 2.5 s after the start: the credits are back.
        assert_eq!(q.charge(3, budget, 1_002_500).ok(), Some(2));
        assert_eq!(q.charge(2, budget, 1_004_999).ok(), Some(0));
        assert_eq!(q.charge(3, budget, 1_005_000).ok(), Some(2));
    }

    #[test]
    fn without_a_short_day_credits_reset_at_utc_midnight() {
        let q = Quota::starting_at(5);
        let midnight = 20_000 * DAY_MS;
        assert_eq!(q.charge(4, 5u64, midnight - 10).ok(), Some(1));
        let err = q.charge(4, 5u64, midnight - 1).err();
        assert_eq!(err.as_ref().and_then(retry_after).as_deref(), Some("1"));
        assert_eq!(q.charge(4, 5u64, midnight).ok(), Some(1));
    }
}
