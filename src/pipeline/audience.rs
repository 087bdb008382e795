//! Whether a delivery token's audience (`webhookId:<id>`) that is not the subscription id the stream knows
//! is one of this source's subscriptions all the same: a subscription re-created while the bridge runs
//! gets a new id, and refusing its deliveries would lose them (Desk does not retry). Desk's list of
//! subscriptions decides, read again at most once per interval; until a list made after the delivery
//! arrived says the id is foreign, the answer is "unknown" (retry later), not a refusal.

use std::future::Future;
use std::time::{Duration, Instant};

/// What Desk's subscriptions say of a token's webhook id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A subscription delivering to this source's service URL.
    Ours,
    /// Not among them in a list made after the delivery arrived.
    Foreign,
    /// Not known yet: the list is rate-limited or could not be read.
    Unknown,
}

#[derive(Debug, Default)]
struct State {
    /// The last list attempt, successful or not: the rate limit counts from here.
    attempted: Option<Instant>,
    /// When the last successful list started, and the ids of ours it found.
    listed: Option<(Instant, Vec<String>)>,
}

impl State {
    /// What the last list says of `id` for a delivery that arrived at `arrived`, if it can say.
    fn known(&self, id: &str, arrived: Instant) -> Option<Audience> {
        let (at, ours) = self.listed.as_ref()?;
        if ours.iter().any(|o| o == id) {
            Some(Audience::Ours)
        } else {
            (*at >= arrived).then_some(Audience::Foreign)
        }
    }
}

/// Shared by a source's deliveries. One list at a time: a delivery arriving while one runs is answered
/// "unknown" at once instead of queueing behind a Desk call that may outlast its HTTP deadline.
#[derive(Debug)]
pub struct AudienceCheck {
    state: std::sync::Mutex<State>,
    listing: tokio::sync::Mutex<()>,
    relist: Duration,
}

impl AudienceCheck {
    /// `relist`: the shortest time between two lists, so tokens for made-up webhook ids cost Desk little.
    pub fn new(relist: Duration) -> Self {
        Self { state: std::sync::Mutex::default(), listing: tokio::sync::Mutex::new(()), relist }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether webhook `id` is ours, for a delivery that arrived at `arrived`. `list` gives the ids of the
    /// subscriptions delivering to the service URL; it is called only when the last list cannot answer and
    /// the rate limit allows.
    pub async fn check<F, Fut, E>(&self, id: &str, arrived: Instant, list: F) -> Audience
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<String>, E>>,
        E: std::fmt::Display,
    {
        if let Some(known) = self.state().known(id, arrived) {
            return known;
        }
        let Ok(_listing) = self.listing.try_lock() else { return Audience::Unknown };
        let started = {
            let mut state = self.state();
            // A list may have ended since the look above.
            if let Some(known) = state.known(id, arrived) {
                return known;
            }
            if state.attempted.is_some_and(|t| t.elapsed() < self.relist) {
                return Audience::Unknown;
            }
            let started = Instant::now();
            state.attempted = Some(started);
            started
        };
        match list().await {
            Ok(ours) => {
                let found = ours.iter().any(|o| o == id);
                self.state().listed = Some((started, ours));
                if found { Audience::Ours } else { Audience::Foreign }
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot list Desk webhook subscriptions to check a token's audience.");
                Audience::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A list of `ids` that counts its calls.
    fn lister<'a>(
        calls: &'a AtomicU32,
        ids: &'static [&'static str],
    ) -> impl FnOnce() -> std::future::Ready<Result<Vec<String>, String>> + 'a {
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(ids.iter().map(|s| (*s).to_owned()).collect()))
        }
    }

    #[tokio::test]
    async fn a_recreated_subscription_is_found_and_a_foreign_one_confirmed() {
        let check = AudienceCheck::new(Duration::ZERO);
        let calls = AtomicU32::new(0);
        let arrived = Instant::now();
        assert_eq!(check.check("2", arrived, lister(&calls, &["2"])).await, Audience::Ours);
        // The list made after this delivery arrived already says 9 is not ours.
        assert_eq!(check.check("9", arrived, lister(&calls, &["2"])).await, Audience::Foreign);
        // Known ids need no new list.
        assert_eq!(check.check("2", Instant::now(), lister(&calls, &["2"])).await, Audience::Ours);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_delivery_newer_than_the_last_list_waits_for_the_rate_limit() {
        let check = AudienceCheck::new(Duration::from_secs(30));
        let calls = AtomicU32::new(0);
        assert_eq!(check.check("1", Instant::now(), lister(&calls, &["1"])).await, Audience::Ours);
        // A subscription created after that list: not listed again within 30 s, and not refused.
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(check.check("2", later, lister(&calls, &["1", "2"])).await, Audience::Unknown);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_list_is_unknown_and_the_next_one_may_follow_the_interval() {
        let check = AudienceCheck::new(Duration::ZERO);
        let failed = check.check("1", Instant::now(), || async { Err::<Vec<String>, _>("down") }).await;
        assert_eq!(failed, Audience::Unknown);
        let ok = check.check("1", Instant::now(), || async { Ok::<_, String>(vec!["1".to_owned()]) }).await;
        assert_eq!(ok, Audience::Ours);
    }
}
