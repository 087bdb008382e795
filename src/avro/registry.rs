//! A small client of the Confluent Schema Registry REST API (works with Confluent, Apicurio's ccompat
//! API, Karapace). Registration happens once per subject at start-up; ids are cached so the hot path never
//! calls the registry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where Apicurio Registry serves the Confluent API (v7).
const APICURIO_CCOMPAT: &str = "/apis/ccompat/v7";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry at {url} is unreachable: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error(
        "schema for subject {subject} is not compatible with the registered one (HTTP 409): {message}. \
         Keep schema changes BACKWARD compatible (new fields optional with defaults), or set the subject's \
         compatibility level to NONE deliberately."
    )]
    Incompatible { subject: String, message: String },
    #[error("schema registry rejected subject {subject} with HTTP {status}: {message}")]
    Rejected { subject: String, status: u16, message: String },
    #[error("schema registry answered without a schema id for subject {0}")]
    NoId(String),
}

#[derive(Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<(String, String), u32>>,
}

impl RegistryClient {
    /// `base` is the Confluent-API base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub fn new(base: &str) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|source| RegistryError::Unreachable { url: base.to_owned(), source })?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http, cache: Mutex::new(HashMap::new()) })
    }

    /// [`Self::new`], and when `url` is a bare host (no path) that serves no Confluent API at its root but
    /// does at Apicurio's `/apis/ccompat/v7`, that path: `url = "http://127.0.0.1:8081"`, as CONTRACT §3
    /// writes it, works against the Apicurio registry `make registry-up` starts as well as against Confluent.
    /// Any other answer (or none) keeps `url` as given; calls then fail as they would have.
    pub async fn discover(url: &str) -> Result<Self, RegistryError> {
        let client = Self::new(url)?;
        let bare = reqwest::Url::parse(&client.base).is_ok_and(|u| u.path() == "/");
        if !bare || client.answers(&client.base).await != Some(404) {
            return Ok(client);
        }
        let ccompat = format!("{}{APICURIO_CCOMPAT}", client.base);
        if client.answers(&ccompat).await.is_some_and(|status| (200..300).contains(&status)) {
            tracing::info!(url = %client.base, base = %ccompat, "The schema registry's Confluent API is under Apicurio's path; using it.");
            return Ok(Self { base: ccompat, ..client });
        }
        Ok(client)
    }

    /// The status `GET {base}/subjects` answers, if any.
    async fn answers(&self, base: &str) -> Option<u16> {
        self.http.get(format!("{base}/subjects")).send().await.ok().map(|r| r.status().as_u16())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Registers `schema` under `subject` (after a compatibility check) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let cache_key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.cache.lock().ok().and_then(|c| c.get(&cache_key).copied()) {
            return Ok(id);
        }
        self.check_compatible(subject, schema).await?;
        let (status, body) = self.post_schema(&format!("subjects/{subject}/versions"), schema).await?;
        match status {
            200..=299 => {}
            409 => {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    message: message(&body),
                });
            }
            _ => {
                return Err(RegistryError::Rejected {
                    subject: subject.to_owned(),
                    status,
                    message: message(&body),
                });
            }
        }
        let id = body["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| RegistryError::NoId(subject.to_owned()))?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(cache_key, id);
        }
        Ok(id)
    }

    /// POSTs an Avro schema to `path` under the base URL; returns the status and the JSON body (Null if none).
    async fn post_schema(&self, path: &str, schema: &str) -> Result<(u16, serde_json::Value), RegistryError> {
        let resp = self
            .http
            .post(format!("{}/{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&serde_json::json!({ "schema": schema, "schemaType": "AVRO" }))
            .send()
            .await
            .map_err(|source| RegistryError::Unreachable { url: self.base.clone(), source })?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// A new subject (404) is compatible by definition.
    async fn check_compatible(&self, subject: &str, schema: &str) -> Result<(), RegistryError> {
        let (status, body) =
            self.post_schema(&format!("compatibility/subjects/{subject}/versions/latest"), schema).await?;
        match status {
            404 => Ok(()),
            200..=299 if body["is_compatible"] == serde_json::Value::Bool(false) => {
                Err(RegistryError::Incompatible { subject: subject.to_owned(), message: message(&body) })
            }
            200..=299 => Ok(()),
            409 => Err(RegistryError::Incompatible { subject: subject.to_owned(), message: message(&body) }),
            _ => {
                Err(RegistryError::Rejected { subject: subject.to_owned(), status, message: message(&body) })
            }
        }
    }

    /// Cheap reachability probe for `check` and readiness.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        self.http
            .get(format!("{}/subjects", self.base))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(|_| ())
            .map_err(|source| RegistryError::Unreachable { url: self.base.clone(), source })
    }
}

fn message(body: &serde_json::Value) -> String {
    body.get("message").and_then(|m| m.as_str()).map(str::to_owned).unwrap_or_else(|| body.to_string())
}
