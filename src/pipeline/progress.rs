//! Live progress of every source and module, for `/status` and the logs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// The phase of a selected module whose snapshot (or stream) has not started yet.
pub const PENDING: &str = "pending";

#[derive(Debug, Clone, Serialize, Default)]
pub struct ModuleProgress {
    pub phase: String,
    pub records: u64,
    pub pages: u64,
    /// Total records when Desk reports a count (search).
    pub total: Option<u64>,
    pub percent: Option<f64>,
    pub eta_s: Option<u64>,
    pub cursor: Option<RawJson>,
    /// Commit time minus the Desk event time of the module's last streamed change (the
    /// `milliseconds_behind_source` gauge); null until a webhook change of the module is committed.
    pub lag_ms: Option<i64>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub started: Option<Instant>,
    #[serde(skip)]
    pub records_at_start: u64,
}

/// JSON text, shown in `/status` as the JSON it holds (a snapshot cursor, written once per page for its
/// state record and read here only when asked for).
#[derive(Debug, Clone, Default)]
pub struct RawJson(pub String);

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl ModuleProgress {
    fn refresh_estimates(&mut self) {
        let Some(total) = self.total.filter(|t| *t > 0) else { return };
        self.percent = Some(((self.records as f64 / total as f64) * 100.0).min(100.0));
        if let Some(started) = self.started {
            let done_here = self.records.saturating_sub(self.records_at_start);
            let elapsed = started.elapsed().as_secs_f64();
            if done_here > 0 && elapsed > 0.0 {
                let rate = done_here as f64 / elapsed;
                self.eta_s = Some((total.saturating_sub(self.records) as f64 / rate) as u64);
            }
        }
    }
}

/// Progress of one source, shared between its tasks and the admin server.
#[derive(Debug, Default)]
pub struct SourceProgress {
    modules: Mutex<BTreeMap<String, ModuleProgress>>,
}

impl SourceProgress {
    pub fn update(&self, module: &str, f: impl FnOnce(&mut ModuleProgress)) {
        if let Ok(mut m) = self.modules.lock() {
            let entry = m.entry(module.to_owned()).or_default();
            f(entry);
            entry.refresh_estimates();
        }
    }

    /// Lists `modules` with phase `pending` (unless already known), so `/status` shows every selected
    /// module from the start, not only those whose snapshot has begun.
    pub fn add_pending<'a>(&self, modules: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut m) = self.modules.lock() {
            for module in modules {
                m.entry(module.to_owned())
                    .or_insert_with(|| ModuleProgress { phase: PENDING.into(), ..ModuleProgress::default() });
            }
        }
    }

    /// Reads one module's progress.
    pub fn get<T>(&self, module: &str, f: impl FnOnce(&ModuleProgress) -> T) -> Option<T> {
        self.modules.lock().ok().and_then(|m| m.get(module).map(f))
    }

    pub fn snapshot(&self) -> serde_json::Value {
        match self.modules.lock() {
            Ok(m) => serde_json::to_value(&*m).unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

/// The `status` command's table from a `/status` document: one row per source and module.
pub fn render_table(doc: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SOURCE     MODULE               PHASE         RECORDS   PAGES   DONE%    ETA_S     LAG_MS  LAST ERROR"
    );
    for source in doc["sources"].as_array().into_iter().flatten() {
        let name = source["name"].as_str().unwrap_or("?");
        let quota = &source["desk"]["quota"];
        if let Some(modules) = source["modules"].as_object() {
            for (module, m) in modules {
                let opt = |v: &serde_json::Value| v.as_f64().map_or("-".to_owned(), |f| format!("{f:.0}"));
                let _ = writeln!(
                    out,
                    "{:<10} {:<20} {:<10} {:>10} {:>7} {:>7} {:>8} {:>10}  {}",
                    name,
                    module,
                    m["phase"].as_str().unwrap_or("-"),
                    m["records"].as_u64().unwrap_or(0),
                    m["pages"].as_u64().unwrap_or(0),
                    opt(&m["percent"]),
                    opt(&m["eta_s"]),
                    opt(&m["lag_ms"]),
                    m["last_error"].as_str().unwrap_or("")
                );
            }
        }
        let _ = writeln!(
            out,
            "{:<10} credits remaining: {}  paused until: {}",
            name,
            quota["credits_remaining"],
            quota["paused_until"].as_str().unwrap_or("-")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn every_selected_module_is_listed_from_the_start_with_a_lag_field() {
        let p = SourceProgress::default();
        p.add_pending(["tickets", "contacts"]);
        p.update("tickets", |m| m.phase = "snapshot".into());
        p.add_pending(["tickets", "contacts"]);
        let doc = p.snapshot();
        assert_eq!(doc["tickets"]["phase"], "snapshot", "pending does not overwrite a started module");
        assert_eq!(doc["contacts"]["phase"], "pending");
        assert!(doc["contacts"]["lag_ms"].is_null(), "{doc}");
        p.update("contacts", |m| m.lag_ms = Some(1234));
        assert_eq!(p.snapshot()["contacts"]["lag_ms"], 1234);
    }

    #[test]
    fn status_table_has_a_lag_column() {
        let p = SourceProgress::default();
        p.add_pending(["tickets", "contacts"]);
        p.update("contacts", |m| {
            m.phase = "streaming".into();
            m.lag_ms = Some(1234);
        });
        let doc = serde_json::json!({"sources": [{"name": "main", "modules": p.snapshot(),
            "desk": {"quota": {"credits_remaining": 5}}}]});
        let table = render_table(&doc);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("LAG_MS"), "{table}");
        assert!(lines[1].starts_with("main       contacts") && lines[1].contains(" 1234  "), "{table}");
        assert!(lines[2].contains("tickets") && lines[2].contains("pending"), "{table}");
        assert_eq!(lines.len(), 4, "{table}");
    }

    #[test]
    fn a_cursor_shows_as_the_json_it_holds() {
        let p = SourceProgress::default();
        p.update("tickets", |m| m.cursor = Some(RawJson(r#"{"from":100,"recent_ids":["1","2"]}"#.into())));
        assert_eq!(
            p.snapshot()["tickets"]["cursor"],
            serde_json::json!({"from": 100, "recent_ids": ["1", "2"]})
        );
    }
}
