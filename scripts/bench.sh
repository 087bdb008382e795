#!/usr/bin/env bash
# `make bench`: release build, Kafka and the registry (started if not running, stopped afterwards if we
# started them), then scripts/bench/bench.py. Report: target/bench/report.json plus a Markdown table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/ensure-services.sh
source "$ROOT/scripts/ensure-services.sh"

cargo build --release --bins --example webhook_load
ensure_services kafka registry
PY="$(scripts/venv.sh)"
"$PY" scripts/bench/bench.py
