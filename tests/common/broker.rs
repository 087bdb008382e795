//! A Kafka broker of the test's own (private ports and data directory, started by `scripts/services.sh`
//! with KAFKA_DIR / KAFKA_PORT / CONTROLLER_PORT), so a test can stop and restart it without disturbing
//! the shared broker other tests use. Dropping it stops it (by the pid the script recorded).

use std::path::{Path, PathBuf};

pub struct PrivateBroker {
    dir: PathBuf,
    ports: Ports,
}

#[derive(Clone, Copy)]
struct Ports {
    listen: u16,
    /// The port clients are told to use (a proxy's, or `listen`).
    advertised: u16,
    controller: u16,
}

fn services(dir: &Path, ports: Ports, action: &str) {
    let status = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh"))
        .arg(action)
        .env("KAFKA_DIR", dir)
        .env("KAFKA_PORT", ports.listen.to_string())
        .env("KAFKA_ADVERTISED_PORT", ports.advertised.to_string())
        .env("CONTROLLER_PORT", ports.controller.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "services.sh {action} failed");
}

impl PrivateBroker {
    /// Starts a broker whose data lives under `dir` (blocks a runtime thread for its start-up).
    pub async fn start(dir: PathBuf) -> Self {
        let port = super::free_port();
        Self::start_advertising(dir, port, port).await
    }

    /// Starts a broker listening on `port` that tells its clients to connect to `advertised` (where a test
    /// has a proxy to `port`), so every request after the bootstrap passes the proxy.
    pub async fn start_advertising(dir: PathBuf, port: u16, advertised: u16) -> Self {
        let broker = Self { dir, ports: Ports { listen: port, advertised, controller: super::free_port() } };
        broker.up().await;
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports.advertised)
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
        let (dir, ports) = (self.dir.clone(), self.ports);
        tokio::task::spawn_blocking(move || services(&dir, ports, action)).await.unwrap();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        services(&self.dir, self.ports, "kafka-down");
    }
}
