#!/usr/bin/env bash
# `make chaos` (fuzz part): runs every cargo-fuzz (libFuzzer) target in fuzz/ for FUZZ_SECONDS each
# (default 60), one at a time, and prints one line per target:
#   FUZZ target=<name> execs=<N> seconds=<S> crashes=<C>
# Fails if any target crashed (panic, hang/timeout, OOM); the input is saved under fuzz/artifacts/<target>/.
# FUZZ_TARGETS="webhook jwt" picks targets, FUZZ_PROFILE=dev|release (default release). Needs nightly Rust; installs the pinned cargo-fuzz if missing.
# The grown corpus goes to fuzz/corpus/<target> (git-ignored); fuzz/seeds/<target> is read as seeds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
CARGO_FUZZ_VERSION="0.12.0"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-webhook notification convert config jwt}"
NICE="${FUZZ_NICE:-19}"
# FUZZ_PROFILE=dev builds without optimization (much faster to build, slower to run, debug assertions on);
# the default is an optimized build (-O) without debug assertions.
PROFILE_FLAG="-O"
[ "${FUZZ_PROFILE:-release}" = "dev" ] && PROFILE_FLAG="--dev"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: nightly Rust is needed (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

dict_for() {
  case "$1" in
    webhook | convert) echo "-dict=dict/json.dict" ;;
    notification) echo "-dict=dict/notification.dict" ;;
    config) echo "-dict=dict/config.dict" ;;
    *) echo "" ;;
  esac
}

failed=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t"
  nice -n "$NICE" cargo +nightly fuzz build $PROFILE_FLAG "$t" >/dev/null
  log="$(mktemp)"
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2046
  nice -n "$NICE" cargo +nightly fuzz run $PROFILE_FLAG "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 $(dict_for "$t") >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=1
    failed=1
    tail -40 "$log" >&2
  fi
  echo "FUZZ target=$t execs=${execs:-0} seconds=$secs crashes=$crashes"
  rm -f "$log"
done
exit "$failed"
