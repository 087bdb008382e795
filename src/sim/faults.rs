//! Injected faults (`POST /_sim/faults`): each is active for a while and hits a share of requests.

use std::time::{Duration, Instant};

use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Http500,
    Latency,
    RateLimit,
    RevokeTokens,
    DropWebhooks,
    /// A 2xx answer whose JSON body is cut off half-way (a proxy or connection cutting it short).
    TruncatedBody,
    /// A 2xx answer whose body is `{}` (no records key): what a misbehaving gateway sends.
    EmptyObject,
}

impl FaultKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http_500" => Some(FaultKind::Http500),
            "latency" => Some(FaultKind::Latency),
            "rate_limit" => Some(FaultKind::RateLimit),
            "revoke_tokens" => Some(FaultKind::RevokeTokens),
            "drop_webhooks" => Some(FaultKind::DropWebhooks),
            "truncated_body" => Some(FaultKind::TruncatedBody),
            "empty_object" => Some(FaultKind::EmptyObject),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Fault {
    kind: FaultKind,
    ratio: f64,
    until: Instant,
    latency: Duration,
}

#[derive(Debug)]
pub struct Faults {
    active: Vec<Fault>,
    rng: Rng,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self { active: Vec::new(), rng: Rng::new(seed ^ 0xFA17) }
    }

    pub fn add(&mut self, kind: FaultKind, ratio: f64, duration: Duration, latency: Duration) {
        self.active.push(Fault {
            kind,
            ratio: ratio.clamp(0.0, 1.0),
            until: Instant::now() + duration,
            latency,
        });
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// Whether this request is hit by an active fault of `kind`; for latency, how long to wait.
    pub fn roll(&mut self, kind: FaultKind) -> Option<Duration> {
        let now = Instant::now();
        self.active.retain(|f| f.until > now);
        let f = self.active.iter().find(|f| f.kind == kind)?.clone();
        (self.rng.unit() < f.ratio).then_some(f.latency)
    }
}
