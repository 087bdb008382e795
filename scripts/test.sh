#!/usr/bin/env bash
# `make test`: static checks, then every test against a real Kafka broker and schema registry.
# Starts the services it needs when they are not running and stops only what it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/ensure-services.sh
source "$ROOT/scripts/ensure-services.sh"

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "==> building tests"
cargo test --no-run --all-targets

ensure_services kafka registry

echo "==> Python cross-check consumer (.cache/venv, tests/py/requirements.txt)"
scripts/venv.sh >/dev/null

echo "==> make deploy-check (kustomize render + offline Kubernetes schema validation)"
scripts/deploy-check.sh

echo "==> cargo test"
cargo test --all-targets -- --color never
