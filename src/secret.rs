//! A string that never prints itself.
//!
//! Client secrets, refresh tokens and access tokens travel through config, logs and error values; wrapping
//! them here means a stray `{:?}` or `tracing` field cannot leak them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value. `Debug` and `Display` print `[redacted]`; only [`Secret::expose`] reveals it.
///
/// Equality (`==`) and [`Secret::ct_eq`] compare in constant time.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it (an HTTP form field, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares in constant time, so a guessed webhook secret cannot be found byte by byte from timing.
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq_str(&self.0, other)
    }
}

/// Constant-time equality of two secret strings. Both are hashed (SHA-256) first, so the time taken does
/// not depend on where they differ nor on the secret's length; the digests are compared with `subtle`.
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    let digest = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    let (da, db) = (digest(a), digest(b));
    da.as_ref().ct_eq(db.as_ref()).into()
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq_str(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Serialises the real value: only used when writing the credentials file (mode 0600).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn constant_time_comparison_matches_equality() {
        let s = Secret::new("abc");
        assert!(s.ct_eq("abc"));
        assert!(!s.ct_eq("abd"));
        assert!(!s.ct_eq("ab"));
        assert!(!s.ct_eq(""));
        assert!(Secret::new("").ct_eq(""));
        assert_eq!(s, Secret::new("abc"));
        assert_ne!(s, Secret::new("abcd"));
        assert!(ct_eq_str("x".repeat(1000).as_str(), "x".repeat(1000).as_str()));
        assert!(!ct_eq_str("x".repeat(1000).as_str(), "x".repeat(999).as_str()));
    }

    /// The comparison goes through `subtle` on fixed-size digests: equal-length inputs that differ in the
    /// first or the last byte take the same path. (Timing itself is not measured: too noisy on shared CI.)
    #[test]
    fn comparison_is_digest_based_and_length_independent() {
        let a = "a".repeat(64);
        let first = format!("b{}", &a[1..]);
        let last = format!("{}b", &a[..63]);
        assert!(!ct_eq_str(&a, &first));
        assert!(!ct_eq_str(&a, &last));
        let d = |s: &str| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref().len();
        assert_eq!(d(""), d(&a));
    }
}
