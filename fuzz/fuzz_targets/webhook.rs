//! Webhook body parsing (`parse_delivery`) and mapping to change events (`map_events`): any bytes must
//! come back as a parsed delivery or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_desk_cdc::zoho::webhook;

fuzz_target!(|body: &[u8]| {
    if let Ok(webhook::Delivery::Events(events)) = webhook::parse_delivery(body, "60000000001") {
        let n = events.len();
        let mapped = webhook::map_events(events, 0);
        assert!(mapped.changes.len() + mapped.skipped.len() <= n);
    }
});
