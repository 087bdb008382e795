//! JWT handling: a token string checked against a fixed JWKS. Must never panic and never accept: the
//! fuzzer does not hold the private key, so every token must be refused. The JWKS is parsed once; no
//! network is used (the verifier is preloaded and refetching is rate-limited away).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use zoho_desk_cdc::zoho::jwks::{JwksVerifier, parse_jwks};

/// The public half of a fixed RSA-2048 key, kid `fuzzkid`.
const JWKS: &str = include_str!("../jwks.json");

fn verifier() -> &'static Arc<JwksVerifier> {
    static V: OnceLock<Arc<JwksVerifier>> = OnceLock::new();
    V.get_or_init(|| {
        let keys = parse_jwks(JWKS.as_bytes()).expect("fixed JWKS parses");
        assert!(!keys.is_empty());
        Arc::new(
            JwksVerifier::new("http://127.0.0.1:9", reqwest::Client::new())
                .with_keys(keys)
                .with_min_refetch(Duration::from_secs(1 << 30))
                .with_max_age(Duration::from_secs(1 << 30)),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses whether the audience is pinned.
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(token) = std::str::from_utf8(rest) else { return };
    let webhook_id = (flags & 1 == 1).then_some("555");
    let v = verifier();
    let result = futures::executor::block_on(v.verify(token, "60000000001", webhook_id));
    if let Ok(claims) = result {
        panic!("a token not signed by the JWKS key was accepted: {claims:?}");
    }
});
