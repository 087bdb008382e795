//! The simulator's settings. Every Desk behaviour the sources disagree on is a setting here.

use std::time::Duration;

use super::data::Scale;

/// Desk edition: sets the default credits, concurrency and webhook allowance (reference C.1, D.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    Free,
    Standard,
    Professional,
    Enterprise,
}

impl Edition {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "free" => Some(Edition::Free),
            "standard" => Some(Edition::Standard),
            "professional" => Some(Edition::Professional),
            "enterprise" => Some(Edition::Enterprise),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Edition::Free => "FREE",
            Edition::Standard => "STANDARD",
            Edition::Professional => "PROFESSIONAL",
            Edition::Enterprise => "ENTERPRISE",
        }
    }

    pub fn daily_credits(self) -> u64 {
        match self {
            Edition::Free => 5_000,
            Edition::Standard => 50_000,
            Edition::Professional => 75_000,
            Edition::Enterprise => 100_000,
        }
    }

    pub fn concurrency(self) -> u32 {
        match self {
            Edition::Free => 5,
            Edition::Standard => 10,
            Edition::Professional => 15,
            Edition::Enterprise => 25,
        }
    }

    /// Webhooks an org may configure; Free and Standard have none.
    pub fn max_webhooks(self) -> usize {
        match self {
            Edition::Free | Edition::Standard => 0,
            Edition::Professional => 5,
            Edition::Enterprise => 10,
        }
    }
}

/// What happens to a delivery the subscriber did not accept (Desk documents no retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Drop,
    Retry(u32),
}

impl FailurePolicy {
    /// `drop` or `retry:N`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "drop" {
            return Some(FailurePolicy::Drop);
        }
        let n = s.strip_prefix("retry:")?.parse().ok()?;
        Some(FailurePolicy::Retry(n))
    }
}

/// How a deletion reaches subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteStyle {
    /// `*_Delete` events only (Desk's documented form).
    Delete,
    /// `*_Update` with `isDeleted`/`isTrashed` true only (the form TapData's docs describe).
    Update,
    /// Both.
    Both,
}

impl DeleteStyle {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "delete" => Some(DeleteStyle::Delete),
            "update" => Some(DeleteStyle::Update),
            "both" => Some(DeleteStyle::Both),
            _ => None,
        }
    }
}

/// Payload of a `*_Delete` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePayload {
    /// `{"id": "..."}` — all consumers rely on.
    Id,
    /// The record's last state with the delete flags set.
    Full,
}

/// How `fields=` on the tickets list combines with the default projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsMode {
    /// Default projection plus the named fields.
    Add,
    /// `id` plus the named fields only.
    Only,
}

/// Per-call credit costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostTable {
    pub detail: u64,
    /// List and search pages with `from` up to 2000; later pages cost `list_deep`.
    pub list: u64,
    pub list_deep: u64,
    pub count: u64,
    pub write: u64,
    pub metadata: u64,
}

impl Default for CostTable {
    fn default() -> Self {
        Self { detail: 1, list: 3, list_deep: 5, count: 50, write: 1, metadata: 1 }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub org_id: u64,
    pub portal_name: String,
    pub scale: Scale,
    pub edition: Edition,
    pub client_id: String,
    pub client_secret: String,
    /// 0: `from` is an offset; 1: `from` is a 1-based position (from=0 acts like from=1).
    pub list_from_base: u8,
    pub requests_per_minute: Option<u32>,
    pub concurrency: Option<u32>,
    pub daily_credits: Option<u64>,
    /// Length of the credit "day", counted from simulator start; `None` (or zero): reset at UTC midnight.
    pub daily_reset: Option<Duration>,
    pub costs: CostTable,
    /// Server time added to every API call, to make concurrency limits reachable.
    pub api_latency: Duration,
    pub token_ttl: Duration,
    pub max_live_tokens: usize,
    pub token_requests_per_window: usize,
    pub token_window: Duration,
    pub max_refresh_tokens: usize,
    pub grant_code_ttl: Duration,
    pub accept_bearer: bool,
    pub accept_org_id_query: bool,
    pub fields_mode: FieldsMode,
    /// Seeded records end here; the two years before it hold their createdTime values.
    pub data_end_ms: i64,
    pub webhook_timeout: Duration,
    pub webhook_batch_window: Duration,
    pub webhook_max_batch: usize,
    pub webhook_failure: FailurePolicy,
    pub webhook_retry_delay: Duration,
    pub webhook_jwt_ttl_s: i64,
    pub webhook_create_status: u16,
    pub webhook_delete_status: u16,
    pub delete_style: DeleteStyle,
    pub delete_payload: DeletePayload,
    pub cliq_url: Option<String>,
    pub cliq_template: String,
    /// Whether a new thread or comment moves the ticket's `modifiedTime` (open question at Desk).
    pub child_bumps_ticket: bool,
}

impl Default for SimConfig {
    /// Suited to tests: a small org, enterprise edition, Desk's documented limits.
    fn default() -> Self {
        Self {
            seed: 42,
            org_id: 60_000_000_001,
            portal_name: "simdesk".to_owned(),
            scale: Scale::small(),
            edition: Edition::Enterprise,
            client_id: "1000.SIMCLIENT000000000000000000000".to_owned(),
            client_secret: "simsecret0000000000000000000000000000000000".to_owned(),
            list_from_base: 1,
            requests_per_minute: None,
            concurrency: None,
            daily_credits: None,
            daily_reset: None,
            costs: CostTable::default(),
            api_latency: Duration::ZERO,
            token_ttl: Duration::from_secs(3600),
            max_live_tokens: 10,
            token_requests_per_window: 10,
            token_window: Duration::from_secs(600),
            max_refresh_tokens: 20,
            grant_code_ttl: Duration::from_secs(180),
            accept_bearer: true,
            accept_org_id_query: true,
            fields_mode: FieldsMode::Add,
            data_end_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            webhook_timeout: Duration::from_secs(5),
            webhook_batch_window: Duration::from_millis(200),
            webhook_max_batch: 100,
            webhook_failure: FailurePolicy::Drop,
            webhook_retry_delay: Duration::from_secs(1),
            webhook_jwt_ttl_s: 300,
            webhook_create_status: 200,
            webhook_delete_status: 200,
            delete_style: DeleteStyle::Delete,
            delete_payload: DeletePayload::Id,
            cliq_url: None,
            cliq_template: DEFAULT_CLIQ_TEMPLATE.to_owned(),
            child_bumps_ticket: false,
        }
    }
}

pub const DEFAULT_CLIQ_TEMPLATE: &str =
    "Ticket #${ticketNumber} ${event}: ${subject} (status ${status}, id ${id})";

/// The daily credit budget and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCredits {
    pub credits: u64,
    /// `None`: at UTC midnight; otherwise every this long since simulator start.
    pub reset: Option<Duration>,
}

impl From<u64> for DailyCredits {
    /// A budget that resets at UTC midnight.
    fn from(credits: u64) -> Self {
        Self { credits, reset: None }
    }
}

impl SimConfig {
    /// The credit budget with its reset period (a zero `daily_reset` means UTC midnight).
    pub fn effective_daily_credits(&self) -> DailyCredits {
        DailyCredits {
            credits: self.daily_credits.unwrap_or_else(|| self.edition.daily_credits()),
            reset: self.daily_reset.filter(|d| !d.is_zero()),
        }
    }

    pub fn effective_concurrency(&self) -> u32 {
        self.concurrency.unwrap_or_else(|| self.edition.concurrency())
    }
}
