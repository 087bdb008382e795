#!/usr/bin/env python3
"""Offline validation of rendered Kubernetes manifests for `make deploy-check`.

Every object of the rendered stream is checked:
  * core kinds against the Kubernetes OpenAPI JSON schemas shipped by the `kubernetes-validate` package,
    in strict mode (unknown fields are errors), for every Kubernetes version given with --k8s;
  * the Prometheus Operator kinds (ServiceMonitor, PrometheusRule) against the JSON schemas in
    scripts/deploy/schemas/ (strict as well);
  * a kind with no schema at all is an error, not a warning.
Then the project's own rules: one replica, Recreate, the security context, the probes, the grace period,
references between objects (ConfigMap, Secret, Service ports, Ingress backend), the config.toml keys
against config/example.toml, and the PromQL of the alerts and the Grafana dashboard: it must parse, and
every zoho_desk_cdc_* metric it names must be one of CONTRACT §7.
Exit 0 when everything passes, 1 otherwise; one line per finding.
"""
import argparse
import json
import pathlib
import re
import sys
import tomllib

import jsonschema
import promql_parser
import referencing
import yaml
from kubernetes_validate import utils as kv

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# CONTRACT §7 (+ build_info).
METRICS = {
    "events_total", "snapshot_records_total", "snapshot_completed", "api_requests_total",
    "api_credits_remaining", "api_rate_limited_total", "webhook_requests_total", "webhook_events_total",
    "milliseconds_behind_source", "kafka_produce_errors_total", "kafka_transactions_total",
    "oauth_refresh_total", "reconcile_events_total", "build_info",
}
METRIC_RE = re.compile(r"\bzoho_desk_cdc_([a-z0-9_]+)")
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
APP = "zoho-desk-cdc"
MIN_GRACE_S = 60  # the drain takes up to ~30 s

errors: list[str] = []


def err(where: str, msg: str) -> None:
    errors.append(f"ERROR {where}: {msg}")


def kn(o: dict) -> str:
    md = o.get("metadata") or {}
    return f"{o.get('kind')}/{md.get('name')}"


def crd_registry() -> referencing.Registry:
    reg = referencing.Registry()
    for p in (HERE / "schemas").glob("*.json"):
        contents = json.loads(p.read_text())
        reg = reg.with_resource(p.name, referencing.Resource.from_contents(contents))
    return reg


def validate_schema(o: dict, versions: list[str], reg: referencing.Registry) -> None:
    key = (o.get("apiVersion"), o.get("kind"))
    if key in CRD_SCHEMAS:
        schema = reg.contents(CRD_SCHEMAS[key])
        v = jsonschema.Draft202012Validator(schema, registry=reg)
        for e in sorted(v.iter_errors(o), key=lambda e: list(e.path)):
            err(kn(o), f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
        return
    for version in versions:
        try:
            kv.validate(o, version, strict=True)
        except kv.ValidationError as e:
            err(kn(o), f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message} (Kubernetes {e.version}, strict)")
            return
        except kv.SchemaNotFoundError as e:
            err(kn(o), e.message)
            return


def toml_keys(doc: dict) -> dict[str, set[str]]:
    """section -> keys; [[sources]] and [sources.quota] are flattened."""
    out: dict[str, set[str]] = {}
    for section, body in doc.items():
        if section == "sources":
            for s in body:
                for k, v in s.items():
                    if isinstance(v, dict):
                        out.setdefault(f"sources.{k}", set()).update(v)
                    else:
                        out.setdefault("sources", set()).add(k)
        elif isinstance(body, dict):
            out.setdefault(section, set()).update(body)
    return out


def check_config(cm: dict, secret_keys: set[str], container_ports: dict[str, int]) -> None:
    where = kn(cm) + " config.toml"
    text = (cm.get("data") or {}).get("config.toml")
    if text is None:
        err(kn(cm), "has no key config.toml")
        return
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        err(where, f"not valid TOML: {e}")
        return
    known = toml_keys(tomllib.loads((ROOT / "config/example.toml").read_text()))
    known.setdefault("sources", set()).add("client_secret_file")  # commented out in the example
    for section, keys in toml_keys(doc).items():
        for k in sorted(keys - known.get(section, set())):
            err(where, f"unknown key {section}.{k} (not in config/example.toml)")
    http = doc.get("http", {})
    for key, port_name in (("webhook_listen", "webhook"), ("admin_listen", "admin")):
        addr = http.get(key, "")
        host, _, port = addr.rpartition(":")
        if host in ("127.0.0.1", "localhost", "[::1]"):
            err(where, f"http.{key} = {addr!r} listens on loopback: probes, Services and Prometheus cannot reach it")
        if port_name in container_ports and port != str(container_ports[port_name]):
            err(where, f"http.{key} port {port} != containerPort {port_name}={container_ports[port_name]}")
    if not str(http.get("public_url", "")).startswith("https://"):
        err(where, "http.public_url should be the https:// Ingress host")
    for s in doc.get("sources", []):
        name = s.get("name", "?")
        csf = s.get("client_secret_file", "")
        if s.get("client_secret"):
            err(where, f"sources.{name}.client_secret is inline: use client_secret_file and the Secret")
        elif not csf.startswith("/var/run/secrets/zoho/") or csf.rsplit("/", 1)[-1] not in secret_keys:
            err(where, f"sources.{name}.client_secret_file {csf!r} is not a key of the mounted Secret")
        cf = s.get("credentials_file", "")
        if not cf.startswith("/var/lib/zoho-desk-cdc/"):
            err(where, f"sources.{name}.credentials_file {cf!r} must be on the writable volume /var/lib/zoho-desk-cdc")
        elif cf.rsplit("/", 1)[-1] not in secret_keys:
            err(where, f"sources.{name}: the Secret has no key {cf.rsplit('/', 1)[-1]} to seed the credentials file")


def check_container(where: str, c: dict) -> None:
    sc = c.get("securityContext") or {}
    if sc.get("readOnlyRootFilesystem") is not True:
        err(where, "securityContext.readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        err(where, "securityContext.allowPrivilegeEscalation must be false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        err(where, "securityContext.capabilities.drop must contain ALL")
    res = c.get("resources") or {}
    if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
        err(where, "resources need a memory request and limit")


def check_deployment(d: dict) -> dict[str, int]:
    where = kn(d)
    spec = d["spec"]
    if spec.get("replicas") != 1:
        err(where, "replicas must be 1: one writer per source (the Kafka transactional id fences a second)")
    if (spec.get("strategy") or {}).get("type") != "Recreate":
        err(where, "strategy.type must be Recreate so two writers never overlap in a rollout")
    pod = spec["template"]["spec"]
    if (pod.get("terminationGracePeriodSeconds") or 30) < MIN_GRACE_S:
        err(where, f"terminationGracePeriodSeconds must be >= {MIN_GRACE_S} (the drain takes ~30 s)")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        err(where, "pod securityContext.runAsNonRoot must be true")
    if not psc.get("fsGroup"):
        err(where, "pod securityContext.fsGroup must be set")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        check_container(f"{where} container {c['name']}", c)
    main = next((c for c in pod.get("containers", []) if c["name"] == APP), None)
    if main is None:
        err(where, f"no container named {APP}")
        return {}
    ports = {p.get("name"): p["containerPort"] for p in main.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (main.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("admin", ports.get("admin")):
            err(where, f"{probe} must be GET {path} on the admin port")
    return ports


def check_promql(where: str, expr: str) -> None:
    """Parses `expr` (Grafana variables replaced by plausible values) and checks its metric names."""
    concrete = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    concrete = re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", concrete)
    try:
        promql_parser.parse(concrete)
    except Exception as e:  # the parser raises ValueError; be lenient about the type
        err(where, f"PromQL does not parse ({e}): {' '.join(expr.split())}")
    check_metrics_in(where, expr)


def check_metrics_in(where: str, text: str) -> None:
    for m in METRIC_RE.findall(text):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if m not in METRICS and base not in METRICS:
            err(where, f"unknown metric zoho_desk_cdc_{m} (not in CONTRACT §7)")


def check_objects(objs: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o.get("kind", "?"), []).append(o)
    names = {(o.get("kind"), o["metadata"].get("name")) for o in objs if o.get("metadata")}
    for kind in ("Deployment", "Service", "ConfigMap", "Secret", "Ingress", "PodDisruptionBudget",
                 "NetworkPolicy", "ServiceMonitor", "PrometheusRule"):
        if kind not in by_kind:
            err("render", f"no {kind} in the output")
    ports: dict[str, int] = {}
    pod_labels: dict[str, str] = {}
    for d in by_kind.get("Deployment", []):
        ports = check_deployment(d)
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            for src, kind, field in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
                if src in v and (kind, v[src][field]) not in names:
                    err(kn(d), f"volume {v['name']} refers to {kind} {v[src][field]}, which is not rendered")
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector") or {}
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            err(kn(s), "selector does not match the Deployment's pod labels")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort")
            if isinstance(tp, str) and tp not in ports:
                err(kn(s), f"targetPort {tp} is not a container port name")
    svc_ports = {(s["metadata"]["name"], p.get("name")) for s in by_kind.get("Service", []) for p in s["spec"]["ports"]}
    for ing in by_kind.get("Ingress", []):
        if not ing["spec"].get("tls"):
            err(kn(ing), "no tls: the service URL must be HTTPS on 443")
        for rule in ing["spec"].get("rules", []):
            for path in (rule.get("http") or {}).get("paths", []):
                b = path["backend"]["service"]
                if (b["name"], b["port"].get("name")) not in svc_ports:
                    err(kn(ing), f"backend {b['name']}:{b['port']} is not a rendered Service port")
    secret_keys = {k for s in by_kind.get("Secret", []) for k in (s.get("data") or {}) | (s.get("stringData") or {})}
    for cm in by_kind.get("ConfigMap", []):
        if "config.toml" in (cm.get("data") or {}):
            check_config(cm, secret_keys, ports)
    for r in by_kind.get("PrometheusRule", []):
        alerts = [rule for g in r["spec"].get("groups", []) for rule in g.get("rules", []) if "alert" in rule]
        for rule in alerts:
            check_promql(f"{kn(r)} alert {rule['alert']}", str(rule["expr"]))
            if "severity" not in (rule.get("labels") or {}):
                err(f"{kn(r)} alert {rule['alert']}", "no severity label")


def check_dashboard(path: pathlib.Path) -> int:
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        err(str(path), f"not valid JSON: {e}")
        return 0
    panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
    for p in panels:
        for t in p.get("targets", []):
            if not t.get("expr"):
                err(f"{path.name} panel {p.get('title')!r}", "target without expr")
            check_promql(f"{path.name} panel {p.get('title')!r}", t.get("expr", ""))
    return len(panels)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rendered", help="multi-document YAML (kustomize build output)")
    ap.add_argument("--k8s", default="1.29,1.37", help="Kubernetes versions to validate against")
    ap.add_argument("--dashboard", action="append", default=[], help="Grafana dashboard JSON to check")
    args = ap.parse_args()
    objs = [o for o in yaml.safe_load_all(pathlib.Path(args.rendered).read_text()) if o]
    versions = [v.strip() for v in args.k8s.split(",") if v.strip()]
    reg = crd_registry()
    for o in objs:
        if not isinstance(o, dict) or "kind" not in o or "apiVersion" not in o:
            err("render", f"not a Kubernetes object: {str(o)[:80]}")
            continue
        before = len(errors)
        validate_schema(o, versions, reg)
        if len(errors) == before:
            print(f"  ok  {o['apiVersion']:<32} {kn(o)}")
    check_objects([o for o in objs if isinstance(o, dict) and "kind" in o])
    n_panels = sum(check_dashboard(pathlib.Path(d)) for d in args.dashboard)
    for e in errors:
        print(e)
    status = "FAILED" if errors else "passed"
    extra = f", dashboard {n_panels} panels" if args.dashboard else ""
    print(f"validate: {len(objs)} objects (Kubernetes {', '.join(versions)} strict{extra}): "
          f"{len(errors)} errors — {status}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
