//! The `X-ZDesk-JWT` signer and the JWKS that verifies it.
//!
//! The RSA key is generated with aws-lc-rs at start-up, so no private key ever sits in the repository;
//! a restarted simulator has a new key (and `kid`), as a key rotation at Desk would.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("RSA key generation failed")]
    KeyGen,
    #[error("RSA signing failed")]
    Sign,
}

pub struct Signer {
    key: KeyPair,
    kid: String,
    n: String,
    e: String,
    rng: SystemRandom,
    /// Lifetime of a token (`exp - iat`).
    ttl_s: i64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    pub fn generate(ttl_s: i64) -> Result<Self, JwtError> {
        let key = KeyPair::generate(KeySize::Rsa2048).map_err(|_| JwtError::KeyGen)?;
        let comps: PublicKeyComponents<Vec<u8>> = key.public_key().into();
        let n = URL_SAFE_NO_PAD.encode(&comps.n);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &comps.n);
        let kid = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { key, kid, n, e: URL_SAFE_NO_PAD.encode(&comps.e), rng: SystemRandom::new(), ttl_s })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `GET /.well-known/jwks.json`
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        }]})
    }

    /// A token for one delivery: `iss` names the org, `aud` the webhook; the body is not hashed.
    pub fn token(&self, org_id: u64, webhook_id: &str, now_s: i64) -> Result<String, JwtError> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let claims = json!({
            "iss": format!("orgId:{org_id}"),
            "aud": format!("webhookId:{webhook_id}"),
            "iat": now_s,
            "exp": now_s + self.ttl_s,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, signing_input.as_bytes(), &mut sig)
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn token_verifies_against_jwks() {
        let s = Signer::generate(300).unwrap();
        let tok = s.token(60000000001, "555", chrono::Utc::now().timestamp()).unwrap();
        let jwks = s.jwks();
        let k = &jwks["keys"][0];
        let key = jsonwebtoken::DecodingKey::from_rsa_components(
            k["n"].as_str().unwrap(),
            k["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["webhookId:555"]);
        v.set_issuer(&["orgId:60000000001"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&tok, &key, &v).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some(s.kid()));
    }
}
