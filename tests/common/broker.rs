//! A Kafka broker of the test's own (private ports and data directory, started by `scripts/services.sh`
//! with KAFKA_DIR / KAFKA_PORT / CONTROLLER_PORT), so a test can stop and restart it without disturbing
//! the shared broker other tests use. Dropping it stops it (by the pid the script recorded).

use std::path::{Path, PathBuf};

pub struct PrivateBroker {
    dir: PathBuf,
    port: u16,
    controller: u16,
}

fn services(dir: &Path, port: u16, controller: u16, action: &str) {
    let status = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh"))
        .arg(action)
        .env("KAFKA_DIR", dir)
        .env("KAFKA_PORT", port.to_string())
        .env("CONTROLLER_PORT", controller.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {action} failed");
}

impl PrivateBroker {
    /// Starts a broker whose data lives under `dir` (blocks a runtime thread for its start-up).
    pub async fn start(dir: PathBuf) -> Self {
        let broker = Self { dir, port: super::free_port(), controller: super::free_port() };
        broker.up().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka-up` (idempotent); returns once the broker answers.
    pub async fn up(&self) {
        self.run("kafka-up").await;
    }

    /// `kafka-down`: stops the broker (SIGTERM to its recorded pid, SIGKILL after 30 s).
    pub async fn down(&self) {
        self.run("kafka-down").await;
    }

    async fn run(&self, action: &'static str) {
        let (dir, port, controller) = (self.dir.clone(), self.port, self.controller);
        tokio::task::spawn_blocking(move || services(&dir, port, controller, action)).await.unwrap();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        services(&self.dir, self.port, self.controller, "kafka-down");
    }
}
