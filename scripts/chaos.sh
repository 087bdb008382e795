#!/usr/bin/env bash
# `make chaos` (first part): the property tests of every parser that takes outside input, with many more
# cases than `make test` runs (CHAOS_CASES per property, default 20000), in release mode.
# Fault-injection scenarios against the broker and simulator run in `make test` (tests/broker_outage.rs,
# tests/exactly_once.rs, tests/fencing.rs, tests/reconcile.rs, tests/desk_client_*.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CASES="${CHAOS_CASES:-20000}"
echo "==> property tests, $CASES cases each (tests/properties.rs)"
start=$(date +%s)
PROPTEST_CASES="$CASES" cargo test --release --test properties -- --test-threads 2
echo "==> $(( $(date +%s) - start )) s; 6 properties x $CASES cases, no failure"

# Fuzz targets (fuzz/, cargo-fuzz + libFuzzer, nightly): FUZZ_SECONDS per target, default 60.
echo "==> fuzz targets, ${FUZZ_SECONDS:-60} s each (scripts/fuzz.sh)"
"$ROOT/scripts/fuzz.sh"
