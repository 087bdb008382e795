#!/usr/bin/env bash
# Starts and stops the local infrastructure the bridge runs against: a single-node Apache Kafka (KRaft,
# broker + controller in one JVM) and an Apicurio schema registry (Confluent-compatible API), both from
# pinned Maven Central artifacts. Everything lives under .cache/; processes are tracked by pid file and
# only ever stopped by the pid we recorded.
#
# usage: scripts/services.sh kafka-up|kafka-down|registry-up|registry-down|kafka-status|registry-status
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
KAFKA_DIR="${KAFKA_DIR:-$CACHE/kafka}"   # overridable: tests run private brokers
KAFKA_LIB="$CACHE/kafka/lib"
REG_DIR="$CACHE/registry"
KAFKA_PORT="${KAFKA_PORT:-9092}"
# The port clients are told to connect to (tests put a proxy there, in front of KAFKA_PORT).
KAFKA_ADVERTISED_PORT="${KAFKA_ADVERTISED_PORT:-$KAFKA_PORT}"
CONTROLLER_PORT="${CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
# Apicurio itself listens here; scripts/registry_front.py serves REGISTRY_PORT with the Confluent API at its root.
REGISTRY_INTERNAL_PORT="${REGISTRY_INTERNAL_PORT:-18081}"
MVN="mvn -q -B -Dstyle.color=never"
# Apicurio 3.0.x is the newest line that runs on Java 17 (3.1+ needs Java 21).
APICURIO_VERSION="3.0.9"

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits until the pid in $1 exits, up to $2 seconds, then sends SIGKILL to that pid only.
stop_pid() {
  local pidfile="$1" name="$2" waited=0
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    log "$name is not running (no live pid file)."
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= 60 )); then
      log "$name (pid $pid) did not stop in 30 s; sending SIGKILL."
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  log "$name stopped (pid $pid)."
}

kafka_fetch() {
  if [[ -f "$KAFKA_LIB/.complete" ]] && cmp -s "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIB/.pom"; then
    return 0
  fi
  log "Fetching Apache Kafka jars (scripts/kafka/pom.xml) into .cache/kafka/lib ..."
  rm -rf "$KAFKA_LIB"
  mkdir -p "$KAFKA_LIB"
  $MVN -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIB" -DincludeScope=runtime >&2
  cp "$ROOT/scripts/kafka/pom.xml" "$KAFKA_LIB/.pom"
  touch "$KAFKA_LIB/.complete"
}

kafka_java() {
  java -cp "$KAFKA_LIB/*" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn "$@"
}

kafka_up() {
  if pid_alive "$KAFKA_DIR/kafka.pid"; then
    log "Kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid")) on 127.0.0.1:$KAFKA_PORT."
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    log "Something not started by this script already listens on 127.0.0.1:$KAFKA_PORT; using it as the broker."
    return 0
  fi
  kafka_fetch
  mkdir -p "$KAFKA_DIR/data"
  cat > "$KAFKA_DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_ADVERTISED_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid | tail -1)"
    kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1
  fi
  log "Starting Kafka on 127.0.0.1:$KAFKA_PORT (log: .cache/kafka/kafka.log) ..."
  nohup java -Xms1g -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/kafka.log" 2>&1 < /dev/null &
  echo $! >"$KAFKA_DIR/kafka.pid"
  local i
  for i in $(seq 1 120); do
    if ! pid_alive "$KAFKA_DIR/kafka.pid"; then
      log "Kafka exited during start-up; last log lines:"
      tail -20 "$KAFKA_DIR/kafka.log" >&2
      rm -f "$KAFKA_DIR/kafka.pid"
      return 1
    fi
    if port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_DIR/kafka.log"; then
      log "Kafka is up (pid $(cat "$KAFKA_DIR/kafka.pid"))."
      return 0
    fi
    sleep 0.5
  done
  log "Kafka did not answer within 60 s; see .cache/kafka/kafka.log."
  return 1
}

kafka_down() { stop_pid "$KAFKA_DIR/kafka.pid" "Kafka"; }

registry_fetch() {
  if [[ -f "$REG_DIR/app/.complete" ]] && [[ "$(cat "$REG_DIR/app/.complete")" == "$APICURIO_VERSION" ]]; then
    return 0
  fi
  log "Fetching Apicurio Registry $APICURIO_VERSION into .cache/registry ..."
  rm -rf "$REG_DIR/app" "$REG_DIR/dl"
  mkdir -p "$REG_DIR/app" "$REG_DIR/dl"
  # dependency:copy (not a pom): the artifact's parent pom is not published, only the assembly.
  $MVN dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
    -DoutputDirectory="$REG_DIR/dl" >&2
  tar xzf "$REG_DIR/dl/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$REG_DIR/app"
  rm -rf "$REG_DIR/dl"
  echo "$APICURIO_VERSION" >"$REG_DIR/app/.complete"
}

registry_up() {
  if pid_alive "$REG_DIR/registry.pid" && pid_alive "$REG_DIR/front.pid"; then
    log "Schema registry already running (pid $(cat "$REG_DIR/registry.pid"), front $(cat "$REG_DIR/front.pid")) on 127.0.0.1:$REGISTRY_PORT."
    return 0
  fi
  if port_open "$REGISTRY_PORT"; then
    log "Something not started by this script already listens on 127.0.0.1:$REGISTRY_PORT; using it as the registry."
    return 0
  fi
  registry_fetch
  if ! pid_alive "$REG_DIR/registry.pid"; then
    local jar
    jar="$(ls "$REG_DIR"/app/apicurio-registry-app-*-runner.jar | head -1)"
    log "Starting Apicurio Registry on 127.0.0.1:$REGISTRY_INTERNAL_PORT (log: .cache/registry/registry.log) ..."
    nohup java -Xmx384m -XX:+UseSerialGC \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_INTERNAL_PORT" \
      -jar "$jar" >"$REG_DIR/registry.log" 2>&1 < /dev/null &
    echo $! >"$REG_DIR/registry.pid"
  fi
  # The front door: Apicurio serves the Confluent API only under /apis/ccompat/v7.
  nohup python3 "$ROOT/scripts/registry_front.py" "$REGISTRY_PORT" "$REGISTRY_INTERNAL_PORT" \
    >"$REG_DIR/front.log" 2>&1 < /dev/null &
  echo $! >"$REG_DIR/front.pid"
  local i
  for i in $(seq 1 120); do
    if ! pid_alive "$REG_DIR/registry.pid" || ! pid_alive "$REG_DIR/front.pid"; then
      log "The registry or its front exited during start-up; last log lines:"
      tail -20 "$REG_DIR/registry.log" "$REG_DIR/front.log" >&2
      stop_pid "$REG_DIR/front.pid" "Schema registry front"
      stop_pid "$REG_DIR/registry.pid" "Schema registry"
      return 1
    fi
    if curl -sf "http://127.0.0.1:$REGISTRY_PORT/subjects" >/dev/null 2>&1 &&
      curl -sf "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects" >/dev/null 2>&1; then
      log "Schema registry is up (pid $(cat "$REG_DIR/registry.pid"), front $(cat "$REG_DIR/front.pid")), Confluent API at http://127.0.0.1:$REGISTRY_PORT (also under /apis/ccompat/v7)."
      return 0
    fi
    sleep 0.5
  done
  log "The registry did not answer within 60 s; see .cache/registry/registry.log and front.log."
  return 1
}

registry_down() {
  stop_pid "$REG_DIR/front.pid" "Schema registry front"
  stop_pid "$REG_DIR/registry.pid" "Schema registry"
}

SIM_DIR="$CACHE/sim"
SIM_PORT="${SIM_PORT:-8900}"

sim_up() {
  if pid_alive "$SIM_DIR/sim.pid"; then
    log "Simulator already running (pid $(cat "$SIM_DIR/sim.pid")) on 127.0.0.1:$SIM_PORT."
    return 0
  fi
  if port_open "$SIM_PORT"; then
    log "Something not started by this script already listens on 127.0.0.1:$SIM_PORT; using it as the simulator."
    return 0
  fi
  local bin="$ROOT/target/release/zoho-desk-sim"
  [[ -x "$bin" ]] || { log "Build first: cargo build --release --bins"; return 1; }
  mkdir -p "$SIM_DIR"
  log "Starting the ZoHo Desk simulator on 127.0.0.1:$SIM_PORT (log: .cache/sim/sim.log) ..."
  # shellcheck disable=SC2086
  nohup "$bin" --addr "127.0.0.1:$SIM_PORT" ${SIM_ARGS:-} >"$SIM_DIR/sim.log" 2>&1 < /dev/null &
  echo $! >"$SIM_DIR/sim.pid"
  local i
  for i in $(seq 1 120); do
    if ! pid_alive "$SIM_DIR/sim.pid"; then
      log "The simulator exited during start-up; last log lines:"
      tail -20 "$SIM_DIR/sim.log" >&2
      rm -f "$SIM_DIR/sim.pid"
      return 1
    fi
    if port_open "$SIM_PORT"; then
      log "Simulator is up (pid $(cat "$SIM_DIR/sim.pid"))."
      return 0
    fi
    sleep 0.5
  done
  log "The simulator did not listen within 60 s; see .cache/sim/sim.log."
  return 1
}

sim_down() { stop_pid "$SIM_DIR/sim.pid" "Simulator"; }

case "${1:-}" in
  kafka-up) kafka_up ;;
  kafka-down) kafka_down ;;
  kafka-fetch) kafka_fetch ;;
  registry-up) registry_up ;;
  registry-down) registry_down ;;
  registry-fetch) registry_fetch ;;
  sim-up) sim_up ;;
  sim-down) sim_down ;;
  kafka-java) shift; kafka_fetch; kafka_java "$@" ;;
  *) echo "usage: $0 kafka-up|kafka-down|registry-up|registry-down|kafka-fetch|registry-fetch|kafka-java CLASS ARGS..." >&2; exit 2 ;;
esac
