#!/usr/bin/env bash
# `make chaos`, three parts:
# 1. the property tests of every parser that takes outside input, with many more cases than `make test`
#    runs (CHAOS_CASES per property, default 20000), in release mode;
# 2. the fuzz targets (scripts/fuzz.sh, FUZZ_SECONDS per target);
# 3. the fault-injection scenarios against the real broker, registry and simulator (tests/faults.rs: Desk
#    5xx, latency, 429 storm, revoked tokens, broker restart, registry outage, full disk; plus
#    tests/bad_input.rs, tests/webhook_flood.rs, tests/broker_outage.rs), in release mode, one test at a
#    time. Every scenario prints `CHAOS scenario=<name> in=<n> out=<n> lost=<n>`; the section prints them as
#    a table and fails when a test fails, a scenario reports lost != 0, or no CHAOS line appears at all.
#    The log is kept in target/chaos/faults.log. CHAOS_SKIP_FUZZ=1 skips part 2.
# Other fault tests run in `make test` too (tests/exactly_once.rs, tests/fencing.rs, tests/reconcile.rs,
# tests/desk_client_*.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/ensure-services.sh
source "$ROOT/scripts/ensure-services.sh"
ensure_services kafka registry
CASES="${CHAOS_CASES:-20000}"
FAULT_TESTS=(--test faults --test bad_input --test webhook_flood --test broker_outage)
echo "==> release builds: properties and fault tests"
cargo test --release --no-run --test properties "${FAULT_TESTS[@]}"
echo "==> property tests, $CASES cases each (tests/properties.rs)"
start=$(date +%s)
PROPTEST_CASES="$CASES" cargo test --release --test properties -- --test-threads 2
echo "==> $(( $(date +%s) - start )) s; 6 properties x $CASES cases, no failure"

# Fuzz targets (fuzz/, cargo-fuzz + libFuzzer, nightly): FUZZ_SECONDS per target, default 60.
if [[ "${CHAOS_SKIP_FUZZ:-0}" == 1 ]]; then
  echo "==> fuzz targets skipped (CHAOS_SKIP_FUZZ=1)"
else
  echo "==> fuzz targets, ${FUZZ_SECONDS:-60} s each (scripts/fuzz.sh)"
  "$ROOT/scripts/fuzz.sh"
fi

# Fault injection against the shared broker and registry (started above when they were not running).
echo "==> fault-injection scenarios (tests/faults.rs, bad_input.rs, webhook_flood.rs, broker_outage.rs)"
"$ROOT/scripts/venv.sh" >/dev/null
log="$ROOT/target/chaos/faults.log"
mkdir -p "$(dirname "$log")"
start=$(date +%s)
set +e
cargo test --release "${FAULT_TESTS[@]}" -- --nocapture --test-threads 1 2>&1 | tee "$log"
tests_rc=${PIPESTATUS[0]}
set -e
echo "==> fault-injection summary ($(( $(date +%s) - start )) s; log: ${log#"$ROOT"/})"
# One row per CHAOS line: scenario, in, out, lost.
if ! awk '
  # Anywhere in a line: with --nocapture, the "test name ... " of libtest may precede it.
  match($0, /CHAOS scenario=[^ ]+ in=[^ ]+ out=[^ ]+ lost=[^ ]+/) {
    n++
    nf = split(substr($0, RSTART + 6, RLENGTH - 6), fields, " ")
    for (i = 1; i <= nf; i++) {
      split(fields[i], kv, "="); v[kv[1]] = kv[2]
    }
    printf "  %-28s %10s %10s %6s\n", v["scenario"], v["in"], v["out"], v["lost"]
    if (v["lost"] != "0") bad++
    delete v
  }
  BEGIN { printf "  %-28s %10s %10s %6s\n", "scenario", "in", "out", "lost" }
  END {
    if (n == 0) { print "  no CHAOS line in the output"; exit 1 }
    if (bad > 0) { printf "  %d scenario(s) lost records\n", bad; exit 1 }
    printf "  %d scenario(s), nothing lost\n", n
  }' "$log"; then
  echo "==> FAILED: records lost (or no scenario reported)"
  exit 1
fi
grep -oE 'SKIP [a-z_]+: .*' "$log" | sed 's/^/  /' || true
if (( tests_rc != 0 )); then
  echo "==> FAILED: a fault-injection test failed (exit $tests_rc); see $log"
  exit "$tests_rc"
fi
echo "==> fault injection: every test passed, nothing lost"
