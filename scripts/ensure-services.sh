# Sourced by test.sh, bench.sh and chaos.sh: `ensure_services kafka registry` starts each service that is not running
# and, on exit, stops only the ones it started (by their pid files, through services.sh).
SVC="$ROOT/scripts/services.sh"
started=()
cleanup_services() {
  local rc=$?
  for (( i=${#started[@]}-1; i>=0; i-- )); do
    "$SVC" "${started[$i]}-down" || true
  done
  exit "$rc"
}
trap cleanup_services EXIT INT TERM

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_services() {
  local svc port
  for svc in "$@"; do
    port=9092; [[ $svc == registry ]] && port=8081
    if ! pid_alive "$ROOT/.cache/$svc/$svc.pid" && ! port_open "$port"; then
      "$SVC" "$svc-up"
      started+=("$svc")
    else
      echo "==> $svc already running; leaving it up afterwards"
    fi
  done
}
