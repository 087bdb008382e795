//! Live progress of every source and module, for `/status` and the logs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Default)]
pub struct ModuleProgress {
    pub phase: String,
    pub records: u64,
    pub pages: u64,
    /// Total records when Desk reports a count (search).
    pub total: Option<u64>,
    pub percent: Option<f64>,
    pub eta_s: Option<u64>,
    pub cursor: Option<serde_json::Value>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub started: Option<Instant>,
    #[serde(skip)]
    pub records_at_start: u64,
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
