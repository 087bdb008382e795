#!/usr/bin/env bash
# `make run`: Kafka, the schema registry and the simulator in the background, then the bridge in the
# foreground on config/local.toml until Ctrl-C. Kafka and the registry stay up afterwards (`make down`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SVC="$ROOT/scripts/services.sh"
CONFIG="${CONFIG:-config/local.toml}"

"$SVC" kafka-up
"$SVC" registry-up
"$SVC" sim-up

# Against the simulator (which forgets its tokens when restarted): exchange a fresh grant code the way an
# operator does once with a Self Client. The webhook secret in the credentials file is kept.
if [[ "$CONFIG" == "config/local.toml" ]]; then
  mkdir -p "$ROOT/.cache/state"
  code="$(curl -sf -X POST http://127.0.0.1:8900/_sim/grant-codes -d '{}' | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')"
  "$ROOT/target/release/zoho-desk-cdc" auth --config "$CONFIG" --source main --code "$code"
fi

cat <<INFO

  zoho-desk-cdc is starting on $CONFIG
    admin:        http://127.0.0.1:9090  (/metrics /healthz /readyz /status)
    service URL:  http://127.0.0.1:8080/webhooks/zoho/main/<webhook_secret>
    simulator:    http://127.0.0.1:8900  (ZoHo Desk stand-in; control API under /_sim/)
    Kafka:        127.0.0.1:9092, topics zohodesk.60000000001.<module>
    registry:     http://127.0.0.1:8081
  Ctrl-C stops the bridge and the simulator; \`make down\` stops Kafka and the registry.

INFO

# exec so Ctrl-C reaches the bridge directly and its exit code is ours.
exec "$ROOT/target/release/zoho-desk-cdc" run --config "$CONFIG"
