//! The quota guard: one per Desk org, shared by every caller, so the bridge as a whole stays inside the
//! org's request rate, concurrent-call allowance and daily API credits.
//!
//! A call first takes a concurrency place, then a rate-limiter cell (in that order, so calls queued for a
//! place do not bank cells and then leave in a burst), then reserves its credits. When the credits are
//! gone, locally or by Desk's THRESHOLD_EXCEEDED, every caller pauses until the reset and then resumes.

use crate::config::QuotaSettings;
use crate::metrics::{API_CREDITS_REMAINING, API_RATE_LIMITED_TOTAL};
use chrono::{DateTime, NaiveDate, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Calls are paced at this share of `requests_per_minute`: a server counting per calendar minute sees
/// scheduling jitter as extra calls in one minute, and the headroom absorbs it.
pub const RATE_HEADROOM: f64 = 0.97;

/// What a call is, for its credit cost (reference C.1; list and search cost more deeper in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `GET /{module}/{id}`.
    Detail,
    /// A list or search page starting at `from`.
    Page { from: u64 },
    /// `/{module}/count`, `ticketsCount`.
    Count,
    /// Organizations, fields, layouts, webhooks list.
    Metadata,
    /// Create, update, delete, moveToTrash.
    Write,
}

impl CallKind {
    /// Credits the call is expected to cost; Desk's X-Rate-Limit-Request-Weight-v3 corrects it.
    pub fn cost(self) -> u64 {
        match self {
            CallKind::Detail | CallKind::Metadata | CallKind::Write => 1,
            CallKind::Page { from } => match from {
                0..=2000 => 3,
                2001..=10_000 => 5,
                10_001..=50_000 => 10,
                50_001..=100_000 => 50,
                _ => 100,
            },
            CallKind::Count => 50,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitEvent {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The guard's state for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaStatus {
    pub daily_credits: u64,
    pub spent_today: u64,
    /// The lower of our own budget and Desk's last X-Rate-Limit-Remaining-v3.
    pub credits_remaining: u64,
    pub desk_credits_remaining: Option<u64>,
    pub paused_until: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    pub last_limit_error: Option<LimitEvent>,
    pub rate_limited_total: u64,
    pub in_flight: u32,
    pub max_concurrency: u32,
    pub requests_per_minute: u32,
    pub calls: u64,
}

#[derive(Debug)]
struct State {
    day: NaiveDate,
    spent_today: u64,
    desk_remaining: Option<u64>,
    paused_until: Option<DateTime<Utc>>,
    pause_reason: Option<String>,
    last_limit_error: Option<LimitEvent>,
    rate_limited_total: u64,
    calls: u64,
}

struct Inner {
    label: String,
    /// Where the credit day starts: minutes east of UTC of the data center's midnight.
    reset_offset_min: i32,
    /// See [`DESK_REMAINING_RECHECK`].
    desk_recheck: Duration,
    limiter: DefaultDirectRateLimiter,
    semaphore: Arc<Semaphore>,
    settings: QuotaSettings,
    state: Mutex<State>,
}

/// Cheap to clone; clones share the same limits.
#[derive(Clone)]
pub struct QuotaGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuotaGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaGuard").field("label", &self.inner.label).finish()
    }
}

/// Held for the duration of one HTTP call: the concurrency place is released when it drops.
#[derive(Debug)]
pub struct QuotaPermit {
    _place: OwnedSemaphorePermit,
    reserved: u64,
}

/// The credit day `now` falls in, for a reset at midnight `offset_min` minutes east of UTC.
pub fn credit_day(now: DateTime<Utc>, offset_min: i32) -> NaiveDate {
    (now + chrono::Duration::minutes(i64::from(offset_min))).date_naive()
}

/// The next credit reset after `now`: the next midnight `offset_min` minutes east of UTC.
fn next_reset(now: DateTime<Utc>, offset_min: i32) -> DateTime<Utc> {
    let offset = chrono::Duration::minutes(i64::from(offset_min));
    let day = credit_day(now, offset_min);
    let tomorrow = day.succ_opt().unwrap_or(day);
    tomorrow.and_hms_opt(0, 0, 0).map(|t| t.and_utc() - offset).unwrap_or(now + chrono::Duration::days(1))
}

/// How long calls wait when Desk's own count (X-Rate-Limit-Remaining-v3) says a call no longer fits,
/// before calls go out again to ask (those in flight at once, `max_concurrency` at most): the reset time is an estimate (see
/// [`crate::zoho::datacenter::DataCenter::credit_reset_utc_offset_min`]), and a refused call is not
/// charged and brings Desk's exact Retry-After.
pub const DESK_REMAINING_RECHECK: Duration = Duration::from_secs(15 * 60);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl QuotaGuard {
    /// `label` names the org in logs and metrics (the source name). Credits reset at UTC midnight; see
    /// [`QuotaGuard::for_org`].
    pub fn new(label: &str, settings: &QuotaSettings) -> Self {
        Self::for_org(label, settings, 0, DESK_REMAINING_RECHECK)
    }

    /// A guard whose credit day starts at midnight `reset_offset_min` minutes east of UTC (the data
    /// center's, [`crate::zoho::datacenter::DataCenter::credit_reset_utc_offset_min`]), and which asks Desk
    /// again `desk_recheck` after its count said no call fits.
    pub fn for_org(
        label: &str,
        settings: &QuotaSettings,
        reset_offset_min: i32,
        desk_recheck: Duration,
    ) -> Self {
        let rpm = f64::from(settings.requests_per_minute.max(1)) * RATE_HEADROOM;
        let period = Duration::from_secs_f64(60.0 / rpm.max(0.001));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        let permits = settings.max_concurrency.max(1) as usize;
        let guard = Self {
            inner: Arc::new(Inner {
                label: label.to_owned(),
                reset_offset_min,
                desk_recheck,
                limiter: RateLimiter::direct(quota),
                semaphore: Arc::new(Semaphore::new(permits)),
                settings: settings.clone(),
                state: Mutex::new(State {
                    day: credit_day(Utc::now(), reset_offset_min),
                    spent_today: 0,
                    desk_remaining: None,
                    paused_until: None,
                    pause_reason: None,
                    last_limit_error: None,
                    rate_limited_total: 0,
                    calls: 0,
                }),
            }),
        };
        guard.publish(&lock(&guard.inner.state));
        guard
    }

    pub fn settings(&self) -> &QuotaSettings {
        &self.inner.settings
    }

    /// Waits until a call costing `cost` credits may go out: no pause, a free place, a rate cell, and
    /// credits left in the day's budget.
    pub async fn acquire(&self, cost: u64) -> QuotaPermit {
        loop {
            self.wait_out_pause().await;
            let Ok(place) = self.inner.semaphore.clone().acquire_owned().await else {
                // The semaphore is never closed; if it were, pacing still holds through the limiter.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if self.paused_for().is_some() {
                continue;
            }
            self.inner.limiter.until_ready().await;
            if self.paused_for().is_some() {
                continue;
            }
            if self.reserve(cost) {
                return QuotaPermit { _place: place, reserved: cost };
            }
        }
    }

    /// Takes `cost` from today's budget, or pauses when it does not fit: until the reset when our own budget
    /// is spent, for [`DESK_REMAINING_RECHECK`] at most when Desk's count says so.
    fn reserve(&self, cost: u64) -> bool {
        let mut st = lock(&self.inner.state);
        let now = Utc::now();
        let offset = self.inner.reset_offset_min;
        if st.day != credit_day(now, offset) {
            st.day = credit_day(now, offset);
            st.spent_today = 0;
            // Desk's count was of the day before.
            st.desk_remaining = None;
        }
        if let Some(left) = st.desk_remaining.filter(|left| *left < cost) {
            let recheck =
                chrono::Duration::from_std(self.inner.desk_recheck).unwrap_or(chrono::Duration::zero());
            let until = next_reset(now, offset).min(now + recheck);
            self.pause(&mut st, until, format!(
                "Desk reports {left} API credits left today (X-Rate-Limit-Remaining-v3), fewer than a call costs"
            ));
            self.publish(&st);
            return false;
        }
        let budget = self.inner.settings.daily_credits;
        if st.spent_today + cost > budget {
            let until = next_reset(now, offset);
            self.pause(
                &mut st,
                until,
                format!("the daily budget of {budget} credits (quota.daily_credits) is spent"),
            );
            self.publish(&st);
            return false;
        }
        st.spent_today += cost;
        st.calls += 1;
        if let Some(r) = st.desk_remaining.as_mut() {
            *r = r.saturating_sub(cost);
        }
        self.publish(&st);
        true
    }

    fn paused_for(&self) -> Option<Duration> {
        let mut st = lock(&self.inner.state);
        let until = st.paused_until?;
        let left = until - Utc::now();
        if left <= chrono::Duration::zero() {
            st.paused_until = None;
            st.pause_reason = None;
            // Desk's count was reset with the day: its last figure no longer says anything.
            st.desk_remaining = None;
            tracing::info!(source = %self.inner.label, "Desk API credits available again; resuming calls.");
            self.publish(&st);
            return None;
        }
        Some(left.to_std().unwrap_or(Duration::from_secs(1)))
    }

    async fn wait_out_pause(&self) {
        while let Some(left) = self.paused_for() {
            // Wake now and then so a pause that is lifted or shortened is noticed.
            tokio::time::sleep(left.min(Duration::from_secs(5))).await;
        }
    }

    /// The current credit day and the credits counted spent in it, to persist across restarts.
    pub fn spent(&self) -> (NaiveDate, u64) {
        let st = lock(&self.inner.state);
        (st.day, st.spent_today)
    }

    /// Takes up what an earlier process counted spent on `day` (see [`QuotaGuard::spent`]): on the same
    /// credit day the larger count wins, so a restart does not start the day's budget afresh.
    pub fn restore(&self, day: NaiveDate, spent: u64) {
        let mut st = lock(&self.inner.state);
        if st.day == credit_day(Utc::now(), self.inner.reset_offset_min) && st.day == day {
            st.spent_today = st.spent_today.max(spent);
            self.publish(&st);
        }
    }

    /// Records what Desk's response headers said: the call's real weight and the credits left today.
    pub fn observe(&self, permit: &QuotaPermit, weight: Option<u64>, remaining: Option<u64>) {
        let mut st = lock(&self.inner.state);
        if let Some(w) = weight {
            st.spent_today = (st.spent_today + w).saturating_sub(permit.reserved);
        }
        if let Some(r) = remaining {
            st.desk_remaining = Some(r);
        }
        self.publish(&st);
    }

    /// A call was refused without being charged (429s, 401s): give its credits back.
    pub fn refund(&self, permit: &QuotaPermit) {
        let mut st = lock(&self.inner.state);
        st.spent_today = st.spent_today.saturating_sub(permit.reserved);
        self.publish(&st);
    }

    /// Desk answered 429 TOO_MANY_REQUESTS: the caller backs off; we count and remember it.
    pub fn too_many_requests(&self, message: &str) {
        self.limit_event("TOO_MANY_REQUESTS", message, "too_many_requests");
    }

    /// Desk answered 429 THRESHOLD_EXCEEDED: pause every caller until `Retry-After`, or the data center's
    /// next midnight when Desk gave none. Returns when calls resume.
    pub fn threshold_exceeded(&self, retry_after: Option<Duration>, message: &str) -> DateTime<Utc> {
        self.limit_event("THRESHOLD_EXCEEDED", message, "threshold_exceeded");
        let now = Utc::now();
        let until = retry_after
            .map(|d| d.min(Duration::from_secs(86_400)))
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map_or_else(|| next_reset(now, self.inner.reset_offset_min), |d| now + d);
        let mut st = lock(&self.inner.state);
        st.desk_remaining = Some(0);
        if st.paused_until.is_none_or(|p| p < until) {
            let reason = "Desk answered THRESHOLD_EXCEEDED: the org's API credits for today are spent";
            self.pause(&mut st, until, reason.into());
        }
        self.publish(&st);
        until
    }

    /// Holds Desk calls until `until`, for `reason` (shown in `/status` and logged).
    fn pause(&self, st: &mut State, until: DateTime<Utc>, reason: String) {
        tracing::warn!(source = %self.inner.label, until = %until.to_rfc3339(), %reason, "Pausing Desk calls.");
        st.paused_until = Some(until);
        st.pause_reason = Some(reason);
    }

    fn limit_event(&self, code: &str, message: &str, reason: &'static str) {
        let mut st = lock(&self.inner.state);
        st.rate_limited_total += 1;
        st.last_limit_error = Some(LimitEvent { code: code.into(), message: message.into(), at: Utc::now() });
        drop(st);
        metrics::counter!(API_RATE_LIMITED_TOTAL, "source" => self.inner.label.clone(), "reason" => reason)
            .increment(1);
    }

    fn remaining(&self, st: &State) -> u64 {
        let own = self.inner.settings.daily_credits.saturating_sub(st.spent_today);
        st.desk_remaining.map_or(own, |d| d.min(own))
    }

    fn publish(&self, st: &State) {
        metrics::gauge!(API_CREDITS_REMAINING, "source" => self.inner.label.clone())
            .set(self.remaining(st) as f64);
    }

    pub fn status(&self) -> QuotaStatus {
        let st = lock(&self.inner.state);
        let max = self.inner.settings.max_concurrency.max(1);
        QuotaStatus {
            daily_credits: self.inner.settings.daily_credits,
            spent_today: st.spent_today,
            credits_remaining: self.remaining(&st),
            desk_credits_remaining: st.desk_remaining,
            paused_until: st.paused_until,
            pause_reason: st.pause_reason.clone(),
            last_limit_error: st.last_limit_error.clone(),
            rate_limited_total: st.rate_limited_total,
            in_flight: max.saturating_sub(self.inner.semaphore.available_permits() as u32),
            max_concurrency: max,
            requests_per_minute: self.inner.settings.requests_per_minute,
            calls: st.calls,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    fn settings(rpm: u32, conc: u32, credits: u64) -> QuotaSettings {
        QuotaSettings {
            requests_per_minute: rpm,
            max_concurrency: conc,
            daily_credits: credits,
            ..QuotaSettings::default()
        }
    }

    #[test]
    fn cost_table_follows_desk() {
        assert_eq!(CallKind::Detail.cost(), 1);
        assert_eq!(CallKind::Page { from: 0 }.cost(), 3);
        assert_eq!(CallKind::Page { from: 2000 }.cost(), 3);
        assert_eq!(CallKind::Page { from: 2001 }.cost(), 5);
        assert_eq!(CallKind::Page { from: 20_000 }.cost(), 10);
        assert_eq!(CallKind::Count.cost(), 50);
    }

    #[tokio::test]
    async fn concurrency_never_exceeds_the_cap_and_rate_is_paced() {
        let guard = QuotaGuard::new("t", &settings(6000, 3, 1_000_000));
        let in_flight = Arc::new(AtomicU32::new(0));
        let peak = Arc::new(AtomicU32::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (g, f, p) = (guard.clone(), in_flight.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    let permit = g.acquire(1).await;
                    let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    f.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        // 80 calls at 97 per second take at least 79 periods.
        let min = Duration::from_secs_f64(79.0 * 60.0 / (6000.0 * RATE_HEADROOM));
        assert!(started.elapsed() >= min, "{:?} < {min:?}", started.elapsed());
        let st = guard.status();
        assert_eq!((st.calls, st.spent_today, st.in_flight), (80, 80, 0));
    }

    #[tokio::test]
    async fn threshold_exceeded_pauses_everyone_until_retry_after() {
        let guard = QuotaGuard::new("t", &settings(60_000, 5, 1000));
        let p = guard.acquire(3).await;
        guard.refund(&p);
        drop(p);
        let until = guard.threshold_exceeded(Some(Duration::from_millis(600)), "credits gone");
        let st = guard.status();
        assert_eq!(st.paused_until, Some(until));
        assert_eq!(st.last_limit_error.as_ref().map(|e| e.code.as_str()), Some("THRESHOLD_EXCEEDED"));
        assert_eq!(st.credits_remaining, 0);
        let t = Instant::now();
        let _p = guard.acquire(1).await;
        assert!(t.elapsed() >= Duration::from_millis(500), "{:?}", t.elapsed());
        let st = guard.status();
        assert!(st.paused_until.is_none());
        assert_eq!(st.credits_remaining, 999);
        assert_eq!(st.rate_limited_total, 1);
    }

    #[test]
    fn the_credit_day_turns_at_the_data_centers_midnight() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 20:00 UTC is already the next day in India (+05:30) and still the same day in the US (-08:00).
        let now = at("2026-03-04T20:00:00Z");
        assert_eq!(next_reset(now, 0), at("2026-03-05T00:00:00Z"));
        assert_eq!(next_reset(now, 330), at("2026-03-05T18:30:00Z"));
        assert_eq!(next_reset(now, -480), at("2026-03-05T08:00:00Z"));
        assert_eq!(next_reset(at("2026-03-04T07:59:00Z"), -480), at("2026-03-04T08:00:00Z"));
        assert_ne!(credit_day(now, 330), credit_day(now, 0));
    }

    #[tokio::test]
    async fn desks_own_count_pauses_calls_it_does_not_cover() {
        let guard = QuotaGuard::for_org("t", &settings(60_000, 5, 1000), 0, Duration::from_millis(300));
        let p = guard.acquire(3).await;
        // Desk says 2 credits are left (another client of the org spent the rest): a page (3) does not fit.
        guard.observe(&p, Some(3), Some(2));
        drop(p);
        let t = Instant::now();
        let blocked = tokio::time::timeout(Duration::from_millis(100), guard.acquire(3)).await;
        assert!(blocked.is_err(), "a call Desk's count does not cover went out");
        let st = guard.status();
        assert!(
            st.pause_reason.as_deref().is_some_and(|r| r.contains("X-Rate-Limit-Remaining-v3")),
            "{st:?}"
        );
        // After the recheck pause calls go out to ask Desk again.
        let _p = guard.acquire(3).await;
        assert!(t.elapsed() >= Duration::from_millis(250), "{:?}", t.elapsed());
        assert!(guard.status().paused_until.is_none());
    }

    #[tokio::test]
    async fn a_restart_takes_up_the_days_spent_credits() {
        let guard = QuotaGuard::new("t", &settings(60_000, 5, 1000));
        let _p = guard.acquire(3).await;
        let (day, spent) = guard.spent();
        assert_eq!(spent, 3);
        let restarted = QuotaGuard::new("t", &settings(60_000, 5, 1000));
        restarted.restore(day.pred_opt().unwrap(), 500);
        assert_eq!(restarted.status().spent_today, 0, "yesterday's count is not today's");
        restarted.restore(day, 998);
        assert_eq!(restarted.status().credits_remaining, 2);
        let blocked = tokio::time::timeout(Duration::from_millis(100), restarted.acquire(3)).await;
        assert!(blocked.is_err(), "the restored count did not hold the budget");
    }

    #[tokio::test]
    async fn desk_headers_correct_the_local_count() {
        let guard = QuotaGuard::new("t", &settings(60_000, 5, 1000));
        let p = guard.acquire(3).await;
        guard.observe(&p, Some(5), Some(420));
        let st = guard.status();
        assert_eq!((st.spent_today, st.desk_credits_remaining, st.credits_remaining), (5, Some(420), 420));
    }

    #[tokio::test]
    async fn own_budget_pauses_until_midnight() {
        let guard = QuotaGuard::new("t", &settings(60_000, 5, 4));
        let _p = guard.acquire(3).await;
        let blocked = tokio::time::timeout(Duration::from_millis(200), guard.acquire(3)).await;
        assert!(blocked.is_err());
        let st = guard.status();
        assert_eq!(st.paused_until, Some(next_reset(Utc::now(), 0)));
        assert!(st.pause_reason.unwrap().contains("quota.daily_credits"));
    }
}
