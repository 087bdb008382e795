//! With `http.tls_cert` / `http.tls_key` set, the service URL is served over HTTPS (so it can sit on 443
//! without a proxy), and plain HTTP is not answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;
use zoho_desk_cdc::sim::{SimConfig, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_url_is_served_over_https() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0").await.unwrap();
    let base = sim.base_url();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();
    let prefix = common::unique("tls").replace('-', "_");
    let (wport, aport) = (common::free_port(), common::free_port());
    let config =
        common::bridge_config_with(dir.path(), &base, &prefix, "snapshot_mode = \"never\"", wport, aport);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("public_url = \"http://127.0.0.1:{wport}\""),
        &format!(
            "public_url = \"https://127.0.0.1:{wport}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
            dir.path().join("tls.crt").display(),
            dir.path().join("tls.key").display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();
    common::auth(&base, &config).await;
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("main.credentials.json")).unwrap())
            .unwrap();
    let secret = creds["webhook_secret"].as_str().unwrap().to_owned();

    let bridge = common::Bridge::start(&["run", "--config", &config]);
    assert!(
        common::wait_http_ok(&format!("http://127.0.0.1:{aport}/healthz"), Duration::from_secs(60)).await
    );
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{wport}/webhooks/zoho/main/{secret}");
    let mut status = 0;
    for _ in 0..50 {
        if let Ok(r) = https.get(&url).send().await {
            status = r.status().as_u16();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "Desk's validation GET over HTTPS");
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let over_http = plain.get(format!("http://127.0.0.1:{wport}/webhooks/zoho/main/{secret}")).send().await;
    assert!(over_http.map(|r| r.status().as_u16() != 200).unwrap_or(true), "plain HTTP must not be served");
    let (rc, err) = bridge.terminate(Duration::from_secs(30));
    assert_eq!(rc, 0, "{}", common::tail(&err, 20));
    sim.stop().await.unwrap();
}
