//! Config parsing: TOML text → validated settings, or an error naming what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = zoho_desk_cdc::config::Settings::from_toml_str(text);
});
