//! The one place metric names live (CONTRACT §7). Everything records through these names so the set stays
//! reviewable and label cardinality stays bounded (source/module/op/status, never ids or messages).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const EVENTS_TOTAL: &str = "zoho_desk_cdc_events_total";
pub const SNAPSHOT_RECORDS_TOTAL: &str = "zoho_desk_cdc_snapshot_records_total";
pub const SNAPSHOT_COMPLETED: &str = "zoho_desk_cdc_snapshot_completed";
pub const API_REQUESTS_TOTAL: &str = "zoho_desk_cdc_api_requests_total";
/// 2xx Desk answers whose body was not what the endpoint returns (each retried), by endpoint.
pub const API_INVALID_RESPONSES_TOTAL: &str = "zoho_desk_cdc_api_invalid_responses_total";
pub const API_CREDITS_REMAINING: &str = "zoho_desk_cdc_api_credits_remaining";
pub const API_RATE_LIMITED_TOTAL: &str = "zoho_desk_cdc_api_rate_limited_total";
pub const WEBHOOK_REQUESTS_TOTAL: &str = "zoho_desk_cdc_webhook_requests_total";
pub const WEBHOOK_EVENTS_TOTAL: &str = "zoho_desk_cdc_webhook_events_total";
pub const WEBHOOK_INFLIGHT_BYTES: &str = "zoho_desk_cdc_webhook_inflight_bytes";
pub const WEBHOOK_GROUP_DELIVERIES: &str = "zoho_desk_cdc_webhook_group_deliveries";
/// Refused service-URL requests by `reason` (one of [`WEBHOOK_REJECT_REASONS`]).
pub const WEBHOOK_REJECTED_TOTAL: &str = "zoho_desk_cdc_webhook_rejected_total";
/// Webhook events accepted but not written, by `reason` (`unknown_type`, `module_not_selected`).
pub const WEBHOOK_EVENTS_SKIPPED_TOTAL: &str = "zoho_desk_cdc_webhook_events_skipped_total";
/// Records Desk listed that cannot become change events (no `id` to key them by), by module.
pub const RECORDS_WITHOUT_ID_TOTAL: &str = "zoho_desk_cdc_records_without_id_total";
/// Modules whose custom-field metadata Desk says is not available to the org (edition, unknown module),
/// left out of `organization_fields`, by `field_module`.
pub const FIELD_METADATA_SKIPPED_TOTAL: &str = "zoho_desk_cdc_field_metadata_skipped_total";
pub const MILLISECONDS_BEHIND_SOURCE: &str = "zoho_desk_cdc_milliseconds_behind_source";
pub const KAFKA_PRODUCE_ERRORS_TOTAL: &str = "zoho_desk_cdc_kafka_produce_errors_total";
pub const KAFKA_TRANSACTIONS_TOTAL: &str = "zoho_desk_cdc_kafka_transactions_total";
pub const OAUTH_REFRESH_TOTAL: &str = "zoho_desk_cdc_oauth_refresh_total";
pub const RECONCILE_EVENTS_TOTAL: &str = "zoho_desk_cdc_reconcile_events_total";
pub const BUILD_INFO: &str = "zoho_desk_cdc_build_info";
/// From librdkafka's statistics callback.
pub const KAFKA_QUEUE_MESSAGES: &str = "zoho_desk_cdc_kafka_queue_messages";
pub const KAFKA_QUEUE_BYTES: &str = "zoho_desk_cdc_kafka_queue_bytes";
pub const KAFKA_BROKER_RTT_MS: &str = "zoho_desk_cdc_kafka_broker_rtt_ms";

/// Every `reason` label of [`WEBHOOK_REJECTED_TOTAL`]; callers pass one of these, so the set is bounded.
pub const WEBHOOK_REJECT_REASONS: [&str; 23] = [
    "not_found",
    "method_not_allowed",
    "too_large",
    "overloaded",
    "body_unreadable",
    "shutting_down",
    "timeout",
    "malformed",
    "no_hint",
    "org_mismatch",
    "unconvertible",
    "jwt_missing",
    "jwt_malformed",
    "jwt_algorithm",
    "jwt_missing_kid",
    "jwt_unknown_kid",
    "jwt_bad_signature",
    "jwt_expired",
    "jwt_not_yet_valid",
    "jwt_issuer",
    "jwt_audience",
    "jwt_claim",
    "jwks_unavailable",
];

/// The reasons of [`WEBHOOK_EVENTS_SKIPPED_TOTAL`].
pub const WEBHOOK_SKIP_REASONS: [&str; 2] = ["unknown_type", "module_not_selected"];

/// Counts one refused service-URL request. `source` must already be bounded (a configured source or
/// `unknown`); a `reason` outside [`WEBHOOK_REJECT_REASONS`] is counted as `other`.
pub fn webhook_rejected(source: &str, reason: &'static str) {
    let reason = if WEBHOOK_REJECT_REASONS.contains(&reason) { reason } else { "other" };
    metrics::counter!(WEBHOOK_REJECTED_TOTAL, "source" => source.to_owned(), "reason" => reason).increment(1);
}

/// Counts `n` webhook events that were accepted but not written.
pub fn webhook_events_skipped(source: &str, reason: &'static str, n: u64) {
    let reason = if WEBHOOK_SKIP_REASONS.contains(&reason) { reason } else { "other" };
    metrics::counter!(WEBHOOK_EVENTS_SKIPPED_TOTAL, "source" => source.to_owned(), "reason" => reason)
        .increment(n);
}

/// Counts and logs `n` records of one Desk answer that came without an id: they have no key, so they are left
/// out, never silently. One log line per answer, not per record.
pub fn records_without_id(source: &str, module: crate::zoho::module::Module, n: u64) {
    if n == 0 {
        return;
    }
    tracing::warn!(source, module = %module, records = n, "Desk sent records without an id; they cannot be keyed and are left out.");
    metrics::counter!(RECORDS_WITHOUT_ID_TOTAL, "source" => source.to_owned(), "module" => module.name())
        .increment(n);
}

/// Counts one module whose custom-field metadata Desk refused as not available. `field_module` is one of
/// the catalog's field modules, so the label set stays bounded.
pub fn field_metadata_skipped(source: &str, field_module: &'static str) {
    metrics::counter!(FIELD_METADATA_SKIPPED_TOTAL, "source" => source.to_owned(), "field_module" => field_module)
        .increment(1);
}

/// Marks a module's snapshot as committed (this run's, or an earlier run's found in the state topic).
pub fn snapshot_completed(source: &str, module: crate::zoho::module::Module) {
    metrics::gauge!(SNAPSHOT_COMPLETED, "source" => source.to_owned(), "module" => module.name()).set(1.0);
}

/// How many of each key `keys` holds, in first-seen order. Counters are then incremented once per label
/// value, not once per event: a labelled counter lookup costs more than an event's other bookkeeping.
pub fn tally<K: PartialEq>(keys: impl IntoIterator<Item = K>) -> Vec<(K, u64)> {
    let mut counts: Vec<(K, u64)> = Vec::new();
    for key in keys {
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    counts
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle for `/metrics`.
/// `None` only if another recorder was installed first (e.g. by a test harness).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| {
                describe();
                metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                handle
            })
        })
        .clone()
}

/// Registers a source's series at zero, so dashboards and alerts see every CONTRACT metric from the start
/// (a counter that never moved is otherwise absent, which `rate()` and `absent()` read differently).
pub fn init_source(source: &str, modules: &[crate::zoho::module::Module]) {
    let s = || source.to_owned();
    for reason in ["too_many_requests", "threshold_exceeded"] {
        metrics::counter!(API_RATE_LIMITED_TOTAL, "source" => s(), "reason" => reason).absolute(0);
    }
    for outcome in ["ok", "rejected", "throttled", "error"] {
        metrics::counter!(OAUTH_REFRESH_TOTAL, "source" => s(), "outcome" => outcome).absolute(0);
    }
    for outcome in ["committed", "aborted"] {
        metrics::counter!(KAFKA_TRANSACTIONS_TOTAL, "source" => s(), "outcome" => outcome).absolute(0);
    }
    metrics::counter!(KAFKA_PRODUCE_ERRORS_TOTAL, "source" => s()).absolute(0);
    metrics::counter!(WEBHOOK_REQUESTS_TOTAL, "source" => s(), "status" => "200").absolute(0);
    metrics::counter!(WEBHOOK_EVENTS_TOTAL, "source" => s(), "event_type" => "other").absolute(0);
    for reason in WEBHOOK_REJECT_REASONS {
        metrics::counter!(WEBHOOK_REJECTED_TOTAL, "source" => s(), "reason" => reason).absolute(0);
    }
    for reason in WEBHOOK_SKIP_REASONS {
        metrics::counter!(WEBHOOK_EVENTS_SKIPPED_TOTAL, "source" => s(), "reason" => reason).absolute(0);
    }
    for m in modules {
        let module = m.name();
        metrics::counter!(SNAPSHOT_RECORDS_TOTAL, "source" => s(), "module" => module).absolute(0);
        metrics::counter!(RECONCILE_EVENTS_TOTAL, "source" => s(), "module" => module).absolute(0);
        metrics::counter!(RECORDS_WITHOUT_ID_TOTAL, "source" => s(), "module" => module).absolute(0);
        metrics::gauge!(SNAPSHOT_COMPLETED, "source" => s(), "module" => module).set(0.0);
        metrics::gauge!(MILLISECONDS_BEHIND_SOURCE, "source" => s(), "module" => module).set(0.0);
        for op in ["r", "c", "u", "d"] {
            metrics::counter!(EVENTS_TOTAL, "source" => s(), "module" => module, "op" => op).absolute(0);
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(EVENTS_TOTAL, "Change events committed to Kafka, by source, module and op.");
    describe_counter!(SNAPSHOT_RECORDS_TOTAL, "Records read by the snapshot.");
    describe_gauge!(SNAPSHOT_COMPLETED, "1 once a module's snapshot is committed.");
    describe_counter!(API_REQUESTS_TOTAL, "Desk API calls, by endpoint and HTTP status.");
    describe_counter!(
        API_INVALID_RESPONSES_TOTAL,
        "Desk 2xx answers whose body was not what the endpoint returns (cut short, not JSON, no records key); each is retried."
    );
    describe_gauge!(
        API_CREDITS_REMAINING,
        "Desk API credits left today (from X-Rate-Limit-Remaining-v3 or our own count)."
    );
    describe_counter!(API_RATE_LIMITED_TOTAL, "Desk answers of 429 TOO_MANY_REQUESTS or THRESHOLD_EXCEEDED.");
    describe_counter!(WEBHOOK_REQUESTS_TOTAL, "Requests to the service URL, by HTTP status answered.");
    describe_counter!(WEBHOOK_EVENTS_TOTAL, "Webhook events received, by Desk event type.");
    describe_gauge!(
        WEBHOOK_INFLIGHT_BYTES,
        "Declared bytes of webhook deliveries being handled (bounded by http.webhook_max_inflight_mib)."
    );
    describe_histogram!(
        WEBHOOK_GROUP_DELIVERIES,
        "Webhook deliveries committed together in one producer call (group commit)."
    );
    describe_counter!(WEBHOOK_REJECTED_TOTAL, "Refused service-URL requests, by reason.");
    describe_counter!(
        WEBHOOK_EVENTS_SKIPPED_TOTAL,
        "Webhook events accepted but not written (unknown event type, module not selected)."
    );
    describe_counter!(
        RECORDS_WITHOUT_ID_TOTAL,
        "Records Desk listed without an id, left out (they cannot be keyed), by module."
    );
    describe_counter!(
        FIELD_METADATA_SKIPPED_TOTAL,
        "Modules whose custom-field metadata Desk says is not available to the org (403 LICENSE_ACCESS_LIMITED, 404, 422), left out."
    );
    describe_gauge!(MILLISECONDS_BEHIND_SOURCE, "Commit time minus the change's Desk event time.");
    describe_counter!(KAFKA_PRODUCE_ERRORS_TOTAL, "Produce or transaction errors.");
    describe_counter!(KAFKA_TRANSACTIONS_TOTAL, "Kafka transactions, by outcome (committed, aborted).");
    describe_counter!(OAUTH_REFRESH_TOTAL, "Access-token refreshes, by outcome.");
    describe_counter!(RECONCILE_EVENTS_TOTAL, "Changes found by the reconciler that webhooks missed.");
    describe_gauge!(
        KAFKA_QUEUE_MESSAGES,
        "Messages waiting in the producer's local queue (librdkafka msg_cnt)."
    );
    describe_gauge!(KAFKA_QUEUE_BYTES, "Bytes waiting in the producer's local queue (librdkafka msg_size).");
    describe_gauge!(KAFKA_BROKER_RTT_MS, "Mean broker round-trip time over the last statistics window.");
}

#[cfg(test)]
mod tests {
    #[test]
    fn tally_counts_in_first_seen_order() {
        assert_eq!(super::tally(["a", "b", "a"]), vec![("a", 2), ("b", 1)]);
    }
}
