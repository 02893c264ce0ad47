#!/usr/bin/env bash
# The one test command (`npm test`): makes sure a nats-server >= 2.10 exists, then runs jest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# NATS_TEST_URL, never NATS_URL: NATS_URL names an app's server (a developer's dev server), and
# the suite must not run against it by accident.
if [ -z "${NATS_TEST_URL:-}" ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  bash scripts/install-nats-server.sh
fi
mkdir -p .cache
# Global setup loads the built testing helpers (dist/testing), so build first.
npm run --silent build
RESULTS=.cache/jest-results.json
rm -f "$RESULTS"
# Reliability specs append their scenario rows here; the table is printed after the run.
export RELIABILITY_ROWS="$ROOT/.cache/reliability/rows.jsonl"
rm -f "$RELIABILITY_ROWS"
status=0
NODE_OPTIONS="--experimental-vm-modules ${NODE_OPTIONS:-}" npx jest --json --outputFile="$RESULTS" "$@" || status=$?
# A plain closing line ("N passed, N failed") that any CI log reader understands.
if [ -f "$RESULTS" ]; then
  node -e 'const r = require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$ROOT/$RESULTS"
fi
node scripts/reliability-summary.mjs
# After a full reliability run, the table of docs/reliability.md must say what this run saw (timings aside).
node scripts/reliability-readme.mjs --check || status=1
exit "$status"
