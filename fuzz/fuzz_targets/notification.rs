//! Workflow notification parsing: the text itself, and the text as a notification body POSTed to the
//! service URL (`{"text": ...}`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_desk_cdc::zoho::webhook;

fuzz_target!(|text: &str| {
    let _ = webhook::parse_notification(text);
    let body = serde_json::json!({ "text": text }).to_string();
    let _ = webhook::parse_delivery(body.as_bytes(), "60000000001");
});
