#!/usr/bin/env bash
# Builds and runs the sample orders service (sample-app/).
#
#   npm run sample                                  # starts its own throwaway nats-server
#   NATS_URL=nats://host:4222 npm run sample        # uses that server instead
#   NATS_SERVER_BIN=/path/to/nats-server npm run sample
#   DATABASE_URL=postgres://... npm run sample      # PostgreSQL instead of PGlite in memory
#
# Without NATS_URL, it starts nats-server (>= 2.10) on 127.0.0.1 with a random free port and a
# temporary JetStream store, and stops it and removes the store when the sample exits. The
# server binary is NATS_SERVER_BIN when set, else the one `npm run nats:install` puts in
# .cache/nats-server/bin/ (installed on demand). Exit status is the sample's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MIN_MAJOR=2
MIN_MINOR=10
CACHED_BIN="$ROOT/.cache/nats-server/bin/nats-server"
OUT_DIR="$ROOT/dist-sample"

log() { printf '[sample] %s\n' "$*" >&2; }
die() { printf '[sample] error: %s\n' "$*" >&2; exit 1; }

# --- checks -------------------------------------------------------------------------------
[ -x node_modules/.bin/tsc ] || die "node_modules is missing; run 'npm ci' first"
command -v node >/dev/null || die "node is not on PATH"

# Prints the server's version (e.g. 2.15.1), or nothing.
server_version() {
  "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1
}

version_ok() {
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }
}

find_server() {
  local bin
  if [ -n "${NATS_SERVER_BIN:-}" ]; then
    bin="$NATS_SERVER_BIN"
    [ -x "$bin" ] || die "NATS_SERVER_BIN=$bin is not an executable file"
  else
    if [ ! -x "$CACHED_BIN" ] || ! version_ok "$(server_version "$CACHED_BIN" || true)"; then
      [ -f scripts/install-nats-server.sh ] \
        || die "no nats-server: set NATS_URL to a running server, or NATS_SERVER_BIN to a nats-server >= $MIN_MAJOR.$MIN_MINOR binary"
      log "installing nats-server into .cache/nats-server (npm run nats:install)"
      bash scripts/install-nats-server.sh >&2 || die "scripts/install-nats-server.sh failed; set NATS_SERVER_BIN or NATS_URL instead"
    fi
    bin="$CACHED_BIN"
    [ -x "$bin" ] || die "scripts/install-nats-server.sh did not produce $bin"
  fi
  local version
  version="$(server_version "$bin")"
  [ -n "$version" ] || die "$bin --version did not report a version"
  version_ok "$version" || die "$bin is nats-server $version; the sample needs >= $MIN_MAJOR.$MIN_MINOR"
  SERVER_BIN="$bin"
  SERVER_VERSION="$version"
}

# --- build --------------------------------------------------------------------------------
build() {
  log "building the package (npm run build): the sample imports it by name, as users do"
  npm run --silent build
  log "compiling sample-app (tsc -p sample-app/tsconfig.json)"
  rm -rf "$OUT_DIR"
  local status=0
  node_modules/.bin/tsc -p sample-app/tsconfig.json || status=$?
  [ "$status" -le 128 ] || exit "$status" # interrupted
  [ "$status" -eq 0 ] || die "the sample does not compile (tsc exit $status)"
}

run_sample() {
  log "running the sample against $NATS_URL"
  set +e
  node "$OUT_DIR/main.js"
  local status=$?
  set -e
  return "$status"
}

# --- with an external server ----------------------------------------------------------------
if [ -n "${NATS_URL:-}" ]; then
  build
  export NATS_URL
  status=0
  run_sample || status=$?
  exit "$status"
fi

# --- with a server of our own ---------------------------------------------------------------
find_server
build

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/nestjs-jetstream-sample.XXXXXX")"
SERVER_PID=""

cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    log "stopped nats-server (pid $SERVER_PID)"
  fi
  rm -rf "$WORK_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SERVER_LOG="$WORK_DIR/nats-server.log"
# -p -1: the OS picks a free port, which the server logs; nothing else on the machine is touched.
"$SERVER_BIN" -a 127.0.0.1 -p -1 -js -sd "$WORK_DIR/jetstream" -n nestjs-jetstream-sample >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

PORT=""
for _ in $(seq 1 100); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$SERVER_LOG" >&2
    SERVER_PID=""
    die "nats-server exited during startup (log above)"
  fi
  if grep -q 'Server is ready' "$SERVER_LOG"; then
    PORT="$(sed -n 's/.*Listening for client connections on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$SERVER_LOG" | head -n 1)"
    break
  fi
  sleep 0.1
done
if [ -z "$PORT" ]; then
  cat "$SERVER_LOG" >&2
  die "nats-server did not become ready within 10 s (log above)"
fi

export NATS_URL="nats://127.0.0.1:$PORT"
log "started nats-server $SERVER_VERSION (pid $SERVER_PID) on $NATS_URL, store in $WORK_DIR"

status=0
run_sample || status=$?
if [ "$status" -ne 0 ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "nats-server is no longer running; its log:"
  tail -n 40 "$SERVER_LOG" >&2 || true
  SERVER_PID=""
fi
exit "$status"
