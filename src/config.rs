//! Typed settings (CONTRACT §3): plain serde data, layered as defaults → TOML file → environment
//! (`ZOHO_DESK_CDC__SECTION__KEY`), and validated once at start-up so a bad key fails before any work.

use crate::secret::Secret;
use crate::zoho::datacenter::DataCenter;
use crate::zoho::module::Module;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variables with this prefix override file keys; `__` separates the levels.
pub const ENV_PREFIX: &str = "ZOHO_DESK_CDC";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub kafka: KafkaSettings,
    #[serde(default)]
    pub schema_registry: RegistrySettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub sources: Vec<SourceSettings>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    /// Topics are `<topic_prefix>.<org_id>.<module>`.
    pub topic_prefix: String,
    /// Transactional producer (data + cursor in one transaction); false = idempotent at-least-once.
    pub exactly_once: bool,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Passed through to librdkafka (security.protocol, sasl.*, compression.type, ...).
    pub properties: BTreeMap<String, String>,
}

/// Whether a librdkafka property holds a credential (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, ...): its value never goes to Debug output or error text.
pub fn is_sensitive_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token", "credential", "jaas"].iter().any(|word| key.contains(word))
}

// By hand, because `properties` may carry `sasl.password` and friends.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_sensitive_property(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaSettings")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic_prefix", &self.topic_prefix)
            .field("exactly_once", &self.exactly_once)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &properties)
            .finish()
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_prefix: "zohodesk".into(),
            exactly_once: true,
            partitions: 3,
            replication_factor: 1,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Full base URL of the Confluent-compatible API (for Apicurio: `.../apis/ccompat/v7`; a bare host
    /// that serves it only there is found: [`crate::avro::registry::RegistryClient::discover`]).
    pub url: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:8081".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub webhook_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Externally reachable base of the service URL (port 80/443 in production).
    pub public_url: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// Webhook bodies (by declared length) being handled at once; past it new deliveries get 503, so a flood
    /// cannot grow memory without bound.
    pub webhook_max_inflight_mib: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            webhook_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            public_url: "http://127.0.0.1:8080".into(),
            tls_cert: String::new(),
            tls_key: String::new(),
            webhook_max_inflight_mib: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot only the modules that have no committed cursor.
    #[default]
    Initial,
    /// Snapshot at every start (finds deletions by diffing against the topic).
    Always,
    /// Never snapshot; stream only.
    Never,
    /// Snapshot, then exit once every selected module is committed.
    InitialOnly,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub name: String,
    pub org_id: String,
    #[serde(default = "default_data_center")]
    pub data_center: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    /// Read the client secret from this file instead (a mounted Kubernetes Secret).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub credentials_file: PathBuf,
    /// Override of the data center's accounts server (e.g. the simulator).
    #[serde(default)]
    pub accounts_url: String,
    /// Override of the data center's Desk host (e.g. the simulator).
    #[serde(default)]
    pub desk_url: String,
    /// Empty = every default module.
    #[serde(default)]
    pub modules: Vec<String>,
    /// The service URL's secret path segment; `auth` generates one when empty.
    #[serde(default)]
    pub webhook_secret: Secret,
    #[serde(default = "yes")]
    pub verify_jwt: bool,
    #[serde(default)]
    pub register_webhook: bool,
    #[serde(default)]
    pub snapshot_mode: SnapshotMode,
    #[serde(default = "default_reconcile_interval_s")]
    pub reconcile_interval_s: u64,
    /// The `from` value of the first list page. Desk's docs disagree (0 vs 1); 0 is safe for both because
    /// the snapshot drops records repeated from the previous page.
    #[serde(default)]
    pub list_from_base: u32,
    /// Seconds one Desk API call may take (one attempt; a timed-out call is retried with backoff like a
    /// 5xx). Desk usually answers in well under a second; the default leaves room for slow search pages.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u64,
    /// Ticket list filters a department with more tickets than Desk lists is split by, in order (see
    /// `pipeline::snapshot::partitions`); `[]` walks such a department past the ceiling through search,
    /// with one detail call per ticket.
    #[serde(default = "default_split_fields")]
    pub snapshot_split_fields: Vec<String>,
    #[serde(default)]
    pub quota: QuotaSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    pub requests_per_minute: u32,
    /// Desk's per-edition concurrent-call limit.
    pub max_concurrency: u32,
    pub daily_credits: u64,
    /// The share of `daily_credits` the reconciler may spend per day (the snapshot and webhooks keep the rest).
    pub reconcile_share: f64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self { requests_per_minute: 100, max_concurrency: 5, daily_credits: 50_000, reconcile_share: 0.2 }
    }
}

fn default_data_center() -> String {
    "com".into()
}
fn yes() -> bool {
    true
}
fn default_reconcile_interval_s() -> u64 {
    900
}
/// The ticket fields the list endpoint filters by equality (reference B.3).
pub const SPLIT_FIELDS: [&str; 3] = ["status", "channel", "priority"];

fn default_split_fields() -> Vec<String> {
    SPLIT_FIELDS.iter().map(|f| (*f).to_owned()).collect()
}
fn default_request_timeout_s() -> u64 {
    30
}

impl SourceSettings {
    pub fn data_center(&self) -> Result<DataCenter, ConfigError> {
        self.data_center
            .parse()
            .map_err(|m: String| ConfigError::invalid(format!("sources.{}.data_center", self.name), m))
    }

    /// Minutes east of UTC of the midnight the org's API credit day turns at (its data center's; UTC for
    /// a data center that does not parse, which validation has refused already).
    pub fn credit_reset_utc_offset_min(&self) -> i32 {
        self.data_center().map_or(0, DataCenter::credit_reset_utc_offset_min)
    }

    /// The selected modules, in catalog order.
    pub fn selected_modules(&self) -> Result<Vec<Module>, ConfigError> {
        if self.modules.is_empty() {
            return Ok(Module::DEFAULT.to_vec());
        }
        let mut out = Vec::with_capacity(self.modules.len());
        for name in &self.modules {
            let m = name
                .parse::<Module>()
                .map_err(|msg| ConfigError::invalid(format!("sources.{}.modules", self.name), msg))?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn accounts_base(&self) -> Result<String, ConfigError> {
        if self.accounts_url.is_empty() {
            Ok(self.data_center()?.accounts_url())
        } else {
            Ok(self.accounts_url.trim_end_matches('/').to_owned())
        }
    }

    pub fn desk_base(&self) -> Result<String, ConfigError> {
        if self.desk_url.is_empty() {
            Ok(self.data_center()?.desk_url())
        } else {
            Ok(self.desk_url.trim_end_matches('/').to_owned())
        }
    }
}

impl Settings {
    /// Loads `path`, applies `ZOHO_DESK_CDC__*` overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        // A variable whose name or value is not UTF-8 cannot name one of our keys; skipping it beats the
        // panic of `std::env::vars`.
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_with_env(path, vars)
    }

    /// [`Settings::load`] with the environment given as `(name, value)` pairs, so tests need not mutate the
    /// process environment (which would race other tests).
    pub fn load_with_env(
        path: &Path,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let load_err = |message: String| ConfigError::Load { path: path.to_owned(), message };
        if !path.exists() {
            return Err(load_err("file not found".into()));
        }
        // Read once: the file's source names (which `ZOHO_DESK_CDC__SOURCES__<name>__*` may use instead of
        // the index) and its values must come from the same text.
        let file = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .build()
            .map_err(|e| load_err(without_excerpt(&e.to_string())))?;
        let names = file
            .get::<Vec<SourceName>>("sources")
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name.unwrap_or_default())
            .collect::<Vec<_>>();
        let env = EnvOverrides::split(vars, &names)?;
        let mut builder = config::Config::builder().add_source(file).add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env.plain.into_iter().collect())),
        );
        for (key, value) in env.sources {
            builder = builder.set_override(key, value).map_err(|e| load_err(e.to_string()))?;
        }
        let raw = builder.build().map_err(|e| load_err(without_excerpt(&e.to_string())))?;
        let mut settings: Settings = raw.try_deserialize().map_err(|e| {
            let text = e.to_string();
            // Serde reports the offending field inside the message; surface it as the key.
            match unknown_field(&text) {
                Some(key) => ConfigError::invalid(key, text),
                None => load_err(text),
            }
        })?;
        settings.kafka.properties.extend(env.kafka_properties);
        settings.resolve_files(path.parent().unwrap_or(Path::new(".")))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses and validates TOML `text` as [`Settings::load`] does, without `ZOHO_DESK_CDC__*` overrides
    /// and without reading `client_secret_file`: the entry point of the config fuzz target (fuzz/).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let load_err = |message: String| ConfigError::Load { path: PathBuf::from("<text>"), message };
        let raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .map_err(|e| load_err(e.to_string()))?;
        let settings: Settings = raw.try_deserialize().map_err(|e| {
            let text = e.to_string();
            match unknown_field(&text) {
                Some(key) => ConfigError::invalid(key, text),
                None => load_err(text),
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads `client_secret_file` into `client_secret`.
    fn resolve_files(&mut self, _base: &Path) -> Result<(), ConfigError> {
        for s in &mut self.sources {
            if let Some(file) = &s.client_secret_file {
                let value = std::fs::read_to_string(file).map_err(|e| {
                    ConfigError::invalid(
                        format!("sources.{}.client_secret_file", s.name),
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                s.client_secret = Secret::new(value.trim());
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.bootstrap_servers", "must not be empty"));
        }
        if !valid_topic_part(&k.topic_prefix) {
            return Err(ConfigError::invalid(
                "kafka.topic_prefix",
                "must be non-empty and use only letters, digits, '.', '_' and '-'",
            ));
        }
        if k.partitions < 1 {
            return Err(ConfigError::invalid("kafka.partitions", "must be at least 1"));
        }
        if k.replication_factor < 1 {
            return Err(ConfigError::invalid("kafka.replication_factor", "must be at least 1"));
        }
        if !is_http_url(&self.schema_registry.url) {
            return Err(ConfigError::invalid("schema_registry.url", "must be an http:// or https:// URL"));
        }
        let h = &self.http;
        if !is_http_url(&h.public_url) {
            return Err(ConfigError::invalid("http.public_url", "must be an http:// or https:// URL"));
        }
        if (h.webhook_max_inflight_mib as usize) * 1024 * 1024 < crate::http::webhook::MAX_BODY_BYTES {
            return Err(ConfigError::invalid(
                "http.webhook_max_inflight_mib",
                "must be at least 5 (the largest delivery accepted is 5 MiB)",
            ));
        }
        if h.tls_cert.is_empty() != h.tls_key.is_empty() {
            return Err(ConfigError::invalid("http.tls_cert", "tls_cert and tls_key must be set together"));
        }
        // With no source the bridge has nothing to do, and `initial_only` would report success at once.
        if self.sources.is_empty() {
            return Err(ConfigError::invalid("sources", "configure at least one [[sources]] entry"));
        }
        let mut names = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            if !s.webhook_secret.is_empty() && !valid_webhook_secret(s.webhook_secret.expose()) {
                return Err(ConfigError::invalid(
                    format!("sources[{i}].webhook_secret"),
                    format!(
                        "must be at least {MIN_WEBHOOK_SECRET_LEN} characters of letters, digits, '-', '_', '.' \
                         and '~' (it is a path segment of the service URL); leave it empty and `auth` generates one"
                    ),
                ));
            }
            validate_source(s)?;
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError::invalid(
                    "sources.name",
                    format!("duplicate source name {:?}", s.name),
                ));
            }
        }
        Ok(())
    }

    pub fn source(&self, name: &str) -> Result<&SourceSettings, ConfigError> {
        self.sources.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
            ConfigError::invalid("sources.name", format!("no source named {name:?} (configured: {known:?})"))
        })
    }
}

/// Only the name of a `[[sources]]` entry, read before the environment is applied.
#[derive(Deserialize)]
struct SourceName {
    name: Option<String>,
}

/// The `ZOHO_DESK_CDC__*` variables, sorted by the way each is applied. config-rs's `Environment` reads
/// `SOURCES__0__KEY` as a map key `0` (not an array index) and `KAFKA__PROPERTIES__SASL_PASSWORD` as the
/// key `sasl_password` (librdkafka wants `sasl.password`), so those two shapes are mapped here.
#[derive(Default, PartialEq)]
struct EnvOverrides {
    /// Every other variable, left to `config::Environment` as before.
    plain: Vec<(String, String)>,
    /// `sources[<i>].<key>` paths for `set_override`.
    sources: Vec<(String, config::Value)>,
    /// librdkafka property name → value, added to `kafka.properties`.
    kafka_properties: Vec<(String, String)>,
}

/// Keys of a source that hold a list: the environment gives them comma-separated.
const SOURCE_LIST_KEYS: [&str; 2] = ["modules", "snapshot_split_fields"];

impl EnvOverrides {
    fn split(
        vars: impl IntoIterator<Item = (String, String)>,
        source_names: &[String],
    ) -> Result<Self, ConfigError> {
        let prefix = format!("{ENV_PREFIX}__");
        let mut out = EnvOverrides::default();
        for (var, value) in vars {
            // `get` rather than slicing: a non-ASCII variable name must not panic at a char boundary.
            let Some(rest) = var
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(&prefix))
                .and(var.get(prefix.len()..))
            else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            match parts.as_slice() {
                [section, rest @ ..] if section == "sources" => {
                    let (index, key) = match rest {
                        [which, key @ ..] if !key.is_empty() && key.iter().all(|k| !k.is_empty()) => {
                            (source_index(which, source_names), key.join("."))
                        }
                        _ => {
                            return Err(ConfigError::invalid(
                                var.as_str(),
                                format!("use {prefix}SOURCES__<index or name>__<KEY>"),
                            ));
                        }
                    };
                    let Some(index) = index else {
                        return Err(ConfigError::invalid(
                            var.as_str(),
                            format!("names no source in the file (sources: {source_names:?})"),
                        ));
                    };
                    let value = if SOURCE_LIST_KEYS.contains(&key.as_str()) {
                        let items: Vec<String> = value
                            .split(',')
                            .map(str::trim)
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned)
                            .collect();
                        config::Value::from(items)
                    } else {
                        config::Value::from(value)
                    };
                    out.sources.push((format!("sources[{index}].{key}"), value));
                }
                [section, properties, name]
                    if section == "kafka" && properties == "properties" && !name.is_empty() =>
                {
                    out.kafka_properties.push((name.replace('_', "."), value));
                }
                _ => out.plain.push((var, value)),
            }
        }
        Ok(out)
    }
}

/// The index `which` (lower-cased) names: a 0-based index, or a source name with `-` and `.` written as `_`
/// (environment variable names cannot hold them), compared case-insensitively.
fn source_index(which: &str, source_names: &[String]) -> Option<usize> {
    if !which.is_empty() && which.bytes().all(|b| b.is_ascii_digit()) {
        return which.parse::<usize>().ok().filter(|i| *i < source_names.len());
    }
    let env_form = |name: &str| name.to_ascii_lowercase().replace(['-', '.'], "_");
    source_names.iter().position(|n| env_form(n) == which)
}

fn validate_source(s: &SourceSettings) -> Result<(), ConfigError> {
    if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ConfigError::invalid(
            "sources.name",
            format!("{:?} must be non-empty and use only letters, digits, '-' and '_'", s.name),
        ));
    }
    let key = |k: &str| format!("sources.{}.{k}", s.name);
    if s.org_id.is_empty() || !s.org_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::invalid(
            key("org_id"),
            format!("{:?} must be the numeric Desk org id", s.org_id),
        ));
    }
    s.data_center()?;
    if s.client_id.trim().is_empty() {
        return Err(ConfigError::invalid(key("client_id"), "is required (API Console → Self Client)"));
    }
    if s.client_secret.is_empty() {
        return Err(ConfigError::invalid(
            key("client_secret"),
            "is required (set client_secret or client_secret_file)",
        ));
    }
    if s.credentials_file.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key("credentials_file"), "is required"));
    }
    for (k, v) in [("accounts_url", &s.accounts_url), ("desk_url", &s.desk_url)] {
        if !v.is_empty() && !is_http_url(v) {
            return Err(ConfigError::invalid(key(k), "must be an http:// or https:// URL"));
        }
    }
    s.selected_modules()?;
    if s.list_from_base > 1 {
        return Err(ConfigError::invalid(key("list_from_base"), "must be 0 or 1"));
    }
    if let Some(bad) = s.snapshot_split_fields.iter().find(|f| !SPLIT_FIELDS.contains(&f.as_str())) {
        return Err(ConfigError::invalid(
            key("snapshot_split_fields"),
            format!("unknown field {bad:?}; use some of {SPLIT_FIELDS:?}"),
        ));
    }
    if s.reconcile_interval_s == 0 {
        return Err(ConfigError::invalid(key("reconcile_interval_s"), "must be at least 1"));
    }
    if !(1..=600).contains(&s.request_timeout_s) {
        return Err(ConfigError::invalid(key("request_timeout_s"), "must be between 1 and 600 seconds"));
    }
    let q = &s.quota;
    if q.requests_per_minute == 0 {
        return Err(ConfigError::invalid(key("quota.requests_per_minute"), "must be at least 1"));
    }
    if q.max_concurrency == 0 {
        return Err(ConfigError::invalid(key("quota.max_concurrency"), "must be at least 1"));
    }
    if q.daily_credits == 0 {
        return Err(ConfigError::invalid(key("quota.daily_credits"), "must be at least 1"));
    }
    if !(q.reconcile_share > 0.0 && q.reconcile_share <= 1.0) {
        return Err(ConfigError::invalid(key("quota.reconcile_share"), "must be above 0 and at most 1"));
    }
    Ok(())
}

/// A guessable service URL lets anyone post events; `auth` generates 32 hex characters.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// The secret is used verbatim as a URL path segment, so only RFC 3986 unreserved characters are allowed.
fn valid_webhook_secret(secret: &str) -> bool {
    secret.len() >= MIN_WEBHOOK_SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn valid_topic_part(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "https://".len()
}

/// A TOML parse error without the excerpt of the offending line: the line may hold a secret
/// (`client_secret = "...` with a missing quote), and the message goes to stderr and logs. The line and
/// column stay, so the user still finds the mistake.
fn without_excerpt(message: &str) -> String {
    let is_excerpt = |line: &str| {
        let t = line.trim_start();
        let t = t.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        t.starts_with('|')
    };
    message
        .lines()
        .filter(|l| !is_excerpt(l) && !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Pulls `name` out of serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let field = rest.split('`').next()?;
    Some(field.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;

    const GOOD: &str = r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[schema_registry]
url = "http://127.0.0.1:8081/apis/ccompat/v7"
[http]
admin_listen = "127.0.0.1:9090"
[[sources]]
name = "main"
org_id = "60000000001"
data_center = "eu"
client_id = "1000.ABC"
client_secret = "s3cr3t-value"
credentials_file = "/tmp/creds.json"
"#;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        Settings::load(f.path())
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let s = load(GOOD).unwrap();
        assert_eq!(s.kafka.topic_prefix, "zohodesk");
        assert!(s.kafka.exactly_once);
        let src = &s.sources[0];
        assert_eq!(src.desk_base().unwrap(), "https://desk.zoho.eu");
        assert_eq!(src.selected_modules().unwrap().len(), 13);
        assert_eq!(src.snapshot_mode, SnapshotMode::Initial);
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn misspelled_key_is_named() {
        let err = load(&GOOD.replace("bootstrap_servers", "bootstrap_server")).unwrap_err();
        assert!(err.to_string().contains("bootstrap_server"), "{err}");
    }

    #[test]
    fn missing_client_secret_is_named() {
        let err = load(&GOOD.replace("client_secret = \"s3cr3t-value\"", "")).unwrap_err();
        assert!(err.to_string().contains("sources.main.client_secret"), "{err}");
    }

    #[test]
    fn syntax_errors_do_not_quote_the_line() {
        let err = load(&GOOD.replace("\"s3cr3t-value\"", "\"s3cr3t-value")).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t-value"), "{err}");
        assert!(err.contains("at line "), "{err}");
    }

    #[test]
    fn settings_debug_shows_no_secret() {
        let text =
            GOOD.replace("credentials_file", "webhook_secret = \"whsec-value-123456\"\ncredentials_file");
        let s = load(&text).unwrap();
        let debug = format!("{s:?} {:#?}", s.sources[0]);
        for secret in ["s3cr3t-value", "whsec-value-123456"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("[redacted]"));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load_env(text: &str, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        Settings::load_with_env(f.path(), env(pairs))
    }

    #[test]
    fn env_sources_map_by_index_or_name() {
        let names = vec!["main".to_owned(), "EU-West.2".to_owned()];
        let o = EnvOverrides::split(
            env(&[
                ("ZOHO_DESK_CDC__SOURCES__0__CLIENT_SECRET", "a"),
                ("zoho_desk_cdc__sources__eu_west_2__quota__max_concurrency", "3"),
                ("ZOHO_DESK_CDC__SOURCES__MAIN__MODULES", "tickets, contacts"),
                ("ZOHO_DESK_CDC__KAFKA__PROPERTIES__SASL_PASSWORD", "pw"),
                ("ZOHO_DESK_CDC__KAFKA__PARTITIONS", "4"),
                ("OTHER__SOURCES__0__X", "ignored"),
            ]),
            &names,
        )
        .unwrap();
        let keys: Vec<&str> = o.sources.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["sources[0].client_secret", "sources[1].quota.max_concurrency", "sources[0].modules"]
        );
        assert_eq!(o.kafka_properties, [("sasl.password".to_owned(), "pw".to_owned())]);
        assert_eq!(o.plain, env(&[("ZOHO_DESK_CDC__KAFKA__PARTITIONS", "4")]));
    }

    #[test]
    fn env_naming_no_source_is_an_error_naming_the_variable() {
        let names = vec!["main".to_owned()];
        for var in [
            "ZOHO_DESK_CDC__SOURCES__1__CLIENT_ID",
            "ZOHO_DESK_CDC__SOURCES__other__CLIENT_ID",
            "ZOHO_DESK_CDC__SOURCES__0",
        ] {
            let err = EnvOverrides::split(env(&[(var, "x")]), &names).err().unwrap().to_string();
            assert!(err.contains(&format!("configuration key `{var}`")), "{err}");
        }
        let err = load_env(GOOD, &[("ZOHO_DESK_CDC__SOURCES__3__CLIENT_SECRET", "x")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "ZOHO_DESK_CDC__SOURCES__3__CLIENT_SECRET")
        );
    }

    #[test]
    fn env_overrides_reach_sources_and_kafka_properties_typed() {
        let s = load_env(
            &GOOD.replace("client_secret = \"s3cr3t-value\"", ""),
            &[
                ("ZOHO_DESK_CDC__SOURCES__0__CLIENT_SECRET", "from-env"),
                ("ZOHO_DESK_CDC__SOURCES__MAIN__VERIFY_JWT", "false"),
                ("ZOHO_DESK_CDC__SOURCES__main__QUOTA__REQUESTS_PER_MINUTE", "7"),
                ("ZOHO_DESK_CDC__SOURCES__0__QUOTA__RECONCILE_SHARE", "0.5"),
                ("ZOHO_DESK_CDC__SOURCES__0__MODULES", "tickets,contacts"),
                ("ZOHO_DESK_CDC__SOURCES__0__SNAPSHOT_MODE", "never"),
                ("ZOHO_DESK_CDC__KAFKA__PROPERTIES__SASL_PASSWORD", "pw"),
                ("ZOHO_DESK_CDC__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
                ("ZOHO_DESK_CDC__KAFKA__PARTITIONS", "5"),
            ],
        )
        .unwrap();
        let src = &s.sources[0];
        assert_eq!(src.client_secret.expose(), "from-env");
        assert!(!src.verify_jwt);
        assert_eq!(src.quota.requests_per_minute, 7);
        assert_eq!(src.quota.reconcile_share, 0.5);
        assert_eq!(src.selected_modules().unwrap(), [Module::Tickets, Module::Contacts]);
        assert_eq!(src.snapshot_mode, SnapshotMode::Never);
        assert_eq!(src.org_id, "60000000001", "keys not overridden stay as in the file");
        assert_eq!(s.kafka.properties.get("sasl.password").map(String::as_str), Some("pw"));
        assert_eq!(s.kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(s.kafka.partitions, 5);
    }

    #[test]
    fn env_override_with_a_bad_value_or_key_is_named() {
        let err = load_env(GOOD, &[("ZOHO_DESK_CDC__SOURCES__0__QUOTA__MAX_CONCURRENCY", "0")]).unwrap_err();
        assert!(err.to_string().contains("sources.main.quota.max_concurrency"), "{err}");
        let err = load_env(GOOD, &[("ZOHO_DESK_CDC__SOURCES__0__CLIENT_SECRTE", "x")]).unwrap_err();
        assert!(err.to_string().contains("client_secrte"), "{err}");
    }

    #[test]
    fn kafka_property_credentials_stay_out_of_debug() {
        let text = GOOD.replace(
            "[schema_registry]",
            "properties = { \"sasl.password\" = \"pw-SECRET-1\", \"ssl.key.password\" = \"pw-SECRET-2\", \
             \"sasl.oauthbearer.client.secret\" = \"pw-SECRET-3\", \"ssl.key.pem\" = \"pw-SECRET-4\", \
             \"security.protocol\" = \"SASL_SSL\" }\n[schema_registry]",
        );
        let s = load(&text).unwrap();
        assert_eq!(s.kafka.properties.len(), 5);
        let debug = format!("{s:?} {:#?} {:?}", s.kafka, s.kafka);
        assert!(!debug.contains("pw-SECRET"), "{debug}");
        assert!(debug.contains("SASL_SSL"), "non-secret properties stay visible: {debug}");
        assert!(debug.contains("sasl.password"), "the key stays visible: {debug}");
    }

    #[test]
    fn no_sources_is_an_error() {
        let text = &GOOD[..GOOD.find("[[sources]]").unwrap()];
        let err = load(text).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref key, .. } if key == "sources"), "{err}");
    }

    #[test]
    fn webhook_secret_must_be_a_long_url_safe_segment() {
        let with = |secret: &str| {
            load(
                &GOOD
                    .replace("credentials_file", &format!("webhook_secret = \"{secret}\"\ncredentials_file")),
            )
        };
        for bad in
            ["short-SECRET", "has/a/slash-SECRET-0123", "has space-SECRET-0123", "per%cent-SECRET-0123"]
        {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("configuration key `sources[0].webhook_secret`"), "{err}");
            assert!(!err.contains("SECRET"), "the value stays out of the message: {err}");
        }
        for good in [
            "0123456789abcdef",
            "A-b_c.d~e-0123456789",
            crate::zoho::credentials::generate_webhook_secret().expose(),
        ] {
            assert!(with(good).is_ok(), "{good}");
        }
        assert!(with("").is_ok(), "empty: auth generates one");
    }

    #[test]
    fn unknown_data_center_is_named() {
        let err = load(&GOOD.replace("\"eu\"", "\"de\"")).unwrap_err();
        assert!(err.to_string().contains("sources.main.data_center"), "{err}");
    }

    #[test]
    fn unknown_module_is_named() {
        let text =
            GOOD.replace("credentials_file", "modules = [\"tickets\", \"contract\"]\ncredentials_file");
        let err = load(&text).unwrap_err();
        assert!(err.to_string().contains("sources.main.modules"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// Every key of the documented example parses (with a client secret filled in).
    #[test]
    fn example_config_is_complete_and_valid() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
            .unwrap()
            .replace("client_secret = \"\"", "client_secret = \"x\"");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, text).unwrap();
        let s = super::Settings::load(&path).unwrap();
        assert_eq!(s.sources.len(), 1);
        // The fuzz target's entry point agrees with `load`.
        let from_text = super::Settings::from_toml_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(from_text.sources.len(), 1);
        assert!(super::Settings::from_toml_str("[kafka\n").is_err());
    }
}
