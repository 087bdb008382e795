#!/usr/bin/env bash
# The bench's peer pipeline: Apache Camel 4.22.0 on camel-main (Apache-2.0, no Spring), an HTTP server route
# (camel-platform-http-vertx) -> camel-kafka on the same broker. Configuration: scripts/bench/peer/
# (pom.xml pins the jars, application.properties and routes.yaml are the pipeline, PeerHttpServer.java
# starts the Vert.x HTTP server). Everything it fetches or builds lives in .cache/peer/.
#
# usage: scripts/bench/peer.sh fetch   copy the pinned jars into .cache/peer/lib and compile the one class
#                                      into .cache/peer/classes (idempotent: redone only when pom.xml or
#                                      PeerHttpServer.java changed)
#        scripts/bench/peer.sh run     fetch, then exec the JVM in the foreground (its pid is this script's,
#                                      so the caller stops it by that pid). Environment: PEER_HOST
#                                      (127.0.0.1), PEER_PORT (18183), PEER_BROKERS (127.0.0.1:9092),
#                                      PEER_TOPIC (bench.peer.tickets), PEER_JAVA_OPTS (-Xms256m -Xmx512m).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/scripts/bench/peer"
CACHE="$ROOT/.cache/peer"
LIB="$CACHE/lib"
CLASSES="$CACHE/classes"
MVN="mvn -q -B -Dstyle.color=never"

log() { printf '[peer] %s\n' "$*" >&2; }

fetch() {
  if [[ ! -f "$LIB/.complete" ]] || ! cmp -s "$SRC/pom.xml" "$LIB/.pom"; then
    log "Fetching Apache Camel 4.22.0 jars (scripts/bench/peer/pom.xml) into .cache/peer/lib ..."
    rm -rf "$LIB"
    mkdir -p "$LIB"
    # -o first: after one fetch the local Maven repository has every jar; online only if that fails.
    $MVN -o -f "$SRC/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime >&2 \
      || $MVN -f "$SRC/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime >&2
    cp "$SRC/pom.xml" "$LIB/.pom"
    touch "$LIB/.complete"
    rm -rf "$CLASSES"
  fi
  if [[ ! -f "$CLASSES/.complete" ]] || ! cmp -s "$SRC/PeerHttpServer.java" "$CLASSES/.src"; then
    log "Compiling scripts/bench/peer/PeerHttpServer.java into .cache/peer/classes ..."
    rm -rf "$CLASSES"
    mkdir -p "$CLASSES"
    javac --release 17 -nowarn -d "$CLASSES" -cp "$LIB/*" "$SRC/PeerHttpServer.java"
    cp "$SRC/PeerHttpServer.java" "$CLASSES/.src"
    touch "$CLASSES/.complete"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  run)
    fetch
    # shellcheck disable=SC2086  # PEER_JAVA_OPTS is a list of JVM flags
    exec java ${PEER_JAVA_OPTS:--Xms256m -Xmx512m} -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
      -cp "$SRC:$CLASSES:$LIB/*" org.apache.camel.main.Main
    ;;
  *) echo "usage: $0 fetch|run" >&2; exit 2 ;;
esac
