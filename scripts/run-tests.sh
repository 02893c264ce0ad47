#!/usr/bin/env bash
# The one test command (`npm test`): makes sure a nats-server >= 2.10 exists, then runs jest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${NATS_URL:-}" ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  bash scripts/install-nats-server.sh
fi
NODE_OPTIONS="--experimental-vm-modules ${NODE_OPTIONS:-}" exec npx jest "$@"
