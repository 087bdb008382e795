#!/usr/bin/env bash
# `make bench`: release build, Kafka and the registry (started if not running, stopped afterwards if we
# started them), then scripts/bench/bench.py. Report: target/bench/report.json plus a Markdown table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SVC="$ROOT/scripts/services.sh"

started=()
cleanup() {
  local rc=$?
  for (( i=${#started[@]}-1; i>=0; i-- )); do
    "$SVC" "${started[$i]}-down" || true
  done
  exit "$rc"
}
trap cleanup EXIT INT TERM
pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cargo build --release --bins --example webhook_load
for svc in kafka registry; do
  port=9092; [[ $svc == registry ]] && port=8081
  if ! pid_alive ".cache/$svc/$svc.pid" && ! port_open "$port"; then
    "$SVC" "$svc-up"
    started+=("$svc")
  fi
done
PY="$(scripts/venv.sh)"
"$PY" scripts/bench/bench.py
