#!/usr/bin/env bash
# `make test`: static checks, then every test against a real Kafka broker and schema registry.
# Starts the services it needs when they are not running and stops only what it started.
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

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "==> building tests"
cargo test --no-run --all-targets

for svc in kafka registry; do
  port=9092; [[ $svc == registry ]] && port=8081
  if ! pid_alive ".cache/$svc/$svc.pid" && ! port_open "$port"; then
    "$SVC" "$svc-up"
    started+=("$svc")
  else
    echo "==> $svc already running; leaving it up afterwards"
  fi
done

echo "==> Python cross-check consumer (.cache/venv, tests/py/requirements.txt)"
scripts/venv.sh >/dev/null

echo "==> make deploy-check (kustomize render + offline Kubernetes schema validation)"
scripts/deploy-check.sh

echo "==> cargo test"
cargo test --all-targets -- --color never
