//! The credentials file `auth` writes and the bridge keeps current: the refresh token, the org and data
//! center it was issued for, the webhook secret, and the cached access token.
//!
//! Caching the access token on disk is what lets a restart reuse it instead of spending one of the ten
//! live tokens Zoho allows per refresh token. The file holds secrets, so it is written with mode 0600,
//! through a temporary file and a rename so a crash never leaves half a file.

use crate::secret::Secret;
use crate::zoho::error::ZohoError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub refresh_token: Secret,
    pub org_id: String,
    pub data_center: String,
    /// Which client the refresh token belongs to; a token is useless with any other.
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub webhook_secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<CachedToken>,
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
    /// The token's whole lifetime, which decides how early it is refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_s: Option<u64>,
}

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> ZohoError {
    ZohoError::Credentials { path: path.to_owned(), message: format!("cannot {what}: {e}") }
}

fn json_error_kind(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "JSON syntax error",
        Category::Data => "unexpected field or value type",
        Category::Eof => "file ends early",
    }
}

impl Credentials {
    /// Reads the file; `Ok(None)` when it does not exist yet.
    pub fn load(path: &Path) -> Result<Option<Self>, ZohoError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path, "read it", e)),
        };
        // serde_json's text quotes input values (`invalid type: string "1000.…"`), which here are tokens:
        // only the kind of error and where it is are kept.
        let creds: Credentials = serde_json::from_str(&text).map_err(|e| ZohoError::CredentialsUnusable {
            path: path.to_owned(),
            message: format!(
                "is not a credentials file written by `zoho-desk-cdc auth` ({} at line {} column {}); \
                 run `auth` again",
                json_error_kind(&e),
                e.line(),
                e.column()
            ),
        })?;
        if creds.refresh_token.is_empty() {
            return Err(ZohoError::CredentialsUnusable {
                path: path.to_owned(),
                message: "holds no refresh token; run `auth` again".into(),
            });
        }
        Ok(Some(creds))
    }

    /// Writes atomically with mode 0600, creating the parent directory when needed.
    pub fn save(&self, path: &Path) -> Result<(), ZohoError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io_err(path, "create its directory", e))?;
        let body = serde_json::to_vec_pretty(self).map_err(|e| io_err(path, "encode it", e))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = open_private(&tmp)?;
            f.write_all(&body)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(path, "write it", e));
        }
        Ok(())
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

/// A fresh random webhook secret: 32 hex characters (128 bits), safe in a URL path.
pub fn generate_webhook_secret() -> Secret {
    let bytes: [u8; 16] = rand::random();
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            refresh_token: Secret::new("1000.refresh.secretvalue"),
            org_id: "600".into(),
            data_center: "eu".into(),
            client_id: "1000.CID".into(),
            webhook_secret: generate_webhook_secret(),
            access_token: Some(CachedToken {
                token: Secret::new("1000.access.tok"),
                expires_at: Utc::now(),
                lifetime_s: Some(3600),
            }),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_malformed_file_error_quotes_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        for body in [
            r#"{"refresh_token": "1000.LEAK-SECRET", "org_id": 600, "data_center": "eu"}"#,
            r#"{"refresh_token": ["1000.LEAK-SECRET"], "org_id": "600", "data_center": "eu"}"#,
            r#"{"refresh_token": "1000.LEAK-SECRET", "org_id": "600", "data_center": "eu", "access_token": "1000.LEAK-SECRET"}"#,
            r#"{"refresh_token": "1000.LEAK-SECRET" "org_id": "600"}"#,
        ] {
            std::fs::write(&path, body).unwrap();
            let err = Credentials::load(&path).unwrap_err().to_string();
            assert!(!err.contains("LEAK-SECRET"), "{err}");
            assert!(err.contains("at line 1 column"), "{err}");
        }
    }

    #[test]
    fn round_trips_with_mode_0600_and_hides_secrets_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/main.credentials.json");
        let c = sample();
        c.save(&path).unwrap();
        let back = Credentials::load(&path).unwrap().unwrap();
        assert_eq!(back.refresh_token.expose(), "1000.refresh.secretvalue");
        assert_eq!(back.access_token.unwrap().token.expose(), "1000.access.tok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let debug = format!("{c:?}");
        assert!(!debug.contains("secretvalue") && !debug.contains("access.tok"), "{debug}");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn missing_file_is_none_and_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Credentials::load(&dir.path().join("nope.json")).unwrap().is_none());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"refresh_token\": \"1000.leak\"").unwrap();
        let err = Credentials::load(&bad).unwrap_err().to_string();
        assert!(err.contains("run `auth` again") && !err.contains("1000.leak"), "{err}");
    }

    #[test]
    fn webhook_secrets_are_random_hex() {
        let a = generate_webhook_secret();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), generate_webhook_secret().expose());
    }
}
