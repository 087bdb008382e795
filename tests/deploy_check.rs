#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `make deploy-check` (scripts/deploy-check.sh): the example overlay renders and validates, and a
//! deliberately broken manifest is rejected. Relies on the tools `make test` / `make deploy-check` set up
//! under .cache/ (the script runs with --no-setup here, so it never downloads anything).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy_check(dir: &Path) -> (bool, String) {
    let started = Instant::now();
    let Output { status, stdout, stderr } = Command::new(root().join("scripts/deploy-check.sh"))
        .arg("--no-setup")
        .arg(dir)
        .output()
        .expect("run scripts/deploy-check.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert_ne!(
        status.code(),
        Some(3),
        "the deploy-check tools are not set up under .cache/: run `make deploy-check` (or `make test`) first\n{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "deploy-check took {:?}", started.elapsed());
    (status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of deploy/ with `edit` applied to one file; returns the temp dir and the example overlay in it.
fn broken_copy(file: &str, from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&root().join("deploy"), &tmp.path().join("deploy"));
    let path = tmp.path().join("deploy").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} no longer contains {from:?}; update this test");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    let overlay = tmp.path().join("deploy/overlays/example");
    (tmp, overlay)
}

#[test]
fn example_overlay_renders_and_validates() {
    let (ok, out) = deploy_check(&root().join("deploy/overlays/example"));
    assert!(ok, "deploy-check failed on the example overlay:\n{out}");
    for kind in [
        "Deployment/zoho-desk-cdc",
        "Service/zoho-desk-cdc-webhook",
        "Service/zoho-desk-cdc-admin",
        "Ingress/zoho-desk-cdc",
        "PodDisruptionBudget/zoho-desk-cdc",
        "NetworkPolicy/zoho-desk-cdc",
        "ServiceMonitor/zoho-desk-cdc",
        "PrometheusRule/zoho-desk-cdc",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with("ok") && l.ends_with(kind)),
            "{kind} not validated:\n{out}"
        );
    }
    assert!(out.contains("deploy-check: OK"), "{out}");
}

#[test]
fn wrong_type_is_rejected() {
    let (_tmp, overlay) = broken_copy("base/deployment.yaml", "\n  replicas: 1\n", "\n  replicas: \"one\"\n");
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "a string replicas passed:\n{out}");
    assert!(out.contains("spec.replicas") && out.contains("not of type 'integer'"), "{out}");
}

#[test]
fn unknown_field_is_rejected() {
    let (_tmp, overlay) = broken_copy(
        "base/deployment.yaml",
        "      enableServiceLinks: false\n",
        "      enableServiceLinks: false\n      containerz: []\n",
    );
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "an unknown field passed:\n{out}");
    assert!(out.contains("'containerz' was unexpected"), "{out}");
}

#[test]
fn crd_unknown_field_is_rejected() {
    let (_tmp, overlay) = broken_copy("base/servicemonitor.yaml", "interval: 30s", "intervall: 30s");
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "a ServiceMonitor typo passed:\n{out}");
    assert!(
        out.contains("ServiceMonitor/zoho-desk-cdc") && out.contains("'intervall' was unexpected"),
        "{out}"
    );
}

#[test]
fn unknown_metric_in_an_alert_is_rejected() {
    let (_tmp, overlay) = broken_copy(
        "base/prometheusrule.yaml",
        "zoho_desk_cdc_api_credits_remaining",
        "zoho_desk_cdc_credits_left",
    );
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "an alert on an unknown metric passed:\n{out}");
    assert!(out.contains("unknown metric zoho_desk_cdc_credits_left"), "{out}");
}

#[test]
fn loopback_admin_listen_is_rejected() {
    let (_tmp, overlay) = broken_copy(
        "overlays/example/config.toml",
        "admin_listen = \"0.0.0.0:9090\"",
        "admin_listen = \"127.0.0.1:9090\"",
    );
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "a loopback admin_listen passed:\n{out}");
    assert!(out.contains("http.admin_listen"), "{out}");
}

#[test]
fn promql_syntax_error_is_rejected() {
    let (_tmp, overlay) = broken_copy("base/prometheusrule.yaml", "> 300000", "> ");
    let (ok, out) = deploy_check(&overlay);
    assert!(!ok, "an alert with broken PromQL passed:\n{out}");
    assert!(out.contains("ZohoDeskCdcLagHigh: PromQL does not parse"), "{out}");
}
