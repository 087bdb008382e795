//! A transaction commit that times out while the broker is up: a proxy in front of a private broker holds
//! the first EndTxn request longer than the bridge's commit timeout (30 s). librdkafka then keeps that
//! commit pending and refuses every other transactional call until it is called again; the bridge calls it
//! again, the held request goes through, and the load finishes with every record exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zoho_desk_cdc::sim::{SimConfig, Simulator};
use zoho_desk_cdc::zoho::module::Module;

/// Kafka's EndTxn request (commit or abort of a transaction).
const END_TXN: i16 = 26;

/// Longer than the bridge's commit timeout, shorter than librdkafka's socket timeout (60 s).
const HOLD: Duration = Duration::from_secs(36);

/// A TCP proxy to `127.0.0.1:target` that holds the first EndTxn request it sees (and whatever follows it
/// on that connection) for [`HOLD`]. Returns its port and how many requests it held.
async fn txn_holding_proxy(target: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(true));
    let held = Arc::new(AtomicUsize::new(0));
    let counter = held.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            let (mut client_r, mut client_w) = client.into_split();
            let (mut up_r, mut up_w) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut up_r, &mut client_w).await;
            });
            let (armed, held) = (armed.clone(), counter.clone());
            tokio::spawn(async move {
                // Requests are framed: a 4-byte big-endian length, then the request, which starts with its
                // 2-byte API key.
                loop {
                    let mut len = [0u8; 4];
                    if client_r.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                    if client_r.read_exact(&mut frame).await.is_err() {
                        break;
                    }
                    let api_key = frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]));
                    if api_key == Some(END_TXN) && armed.swap(false, Ordering::SeqCst) {
                        held.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(HOLD).await;
                    }
                    if up_w.write_all(&len).await.is_err() || up_w.write_all(&frame).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_times_out_is_called_again_and_the_load_is_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = common::free_port();
    let (proxy_port, held) = txn_holding_proxy(listen).await;
    let broker =
        common::broker::PrivateBroker::start_advertising(tmp.path().join("kafka"), listen, proxy_port).await;
    let bootstrap = broker.bootstrap();

    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let prefix = common::unique("txnhold").replace('-', "_");
    let config = common::bridge_config_with(tmp.path(), &base, &prefix, "", 0, common::free_port());
    let text = std::fs::read_to_string(&config).unwrap().replace(&common::bootstrap(), &bootstrap);
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;

    let mut bridge = common::Bridge::start(&["run", "--config", &config, "--snapshot-mode", "initial_only"]);
    let (rc, err) = bridge.wait(Duration::from_secs(180));
    assert_eq!(rc, 0, "{}", common::tail(&err, 30));
    assert_eq!(held.load(Ordering::SeqCst), 1, "the proxy held no commit");
    let timed_out = err.lines().filter(|l| l.contains("A Kafka transaction call failed")).collect::<Vec<_>>();
    assert!(
        timed_out.iter().any(|l| l.contains("Commit")),
        "no commit timed out and was called again:\n{}",
        common::tail(&err, 30)
    );
    eprintln!("{}", timed_out.join("\n"));

    let modules: Vec<&str> = Module::DEFAULT.iter().map(|m| m.name()).collect();
    let (ok, out) = common::verify_topics_with(&base, &prefix, &modules, &["--bootstrap", &bootstrap]).await;
    eprintln!("{out}");
    assert!(ok, "the load is not exactly Desk's records once each");
    sim.stop().await.unwrap();
    drop(broker);
}
