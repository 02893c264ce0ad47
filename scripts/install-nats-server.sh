#!/usr/bin/env bash
# Installs a nats-server >= 2.10 into .cache/nats-server/bin (git-ignored). Debian bookworm
# ships 2.9.10, which is too old (term reasons, consumer create/update semantics), so the
# binary comes from a newer Debian suite's package, fetched with a private apt sources list
# and unpacked without installing it system-wide.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# `--floor`: the oldest supported line instead (Debian trixie's 2.10.x) into its own folder, for
# `npm run test:floor`, which runs the suite against it.
SUITES="sid forky trixie"
DIR="$ROOT/.cache/nats-server"
if [ "${1:-}" = "--floor" ]; then
  SUITES="trixie"
  DIR="$ROOT/.cache/nats-server-floor"
fi
BIN="$DIR/bin/nats-server"
MIN_MINOR=10

supported() {
  local v
  v="$("$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9]*\)\.\([0-9][0-9]*\)\..*/\1 \2/p')" || return 1
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge "$MIN_MINOR" ]; }
}

if [ -x "$BIN" ] && supported "$BIN"; then
  echo "nats-server already installed: $("$BIN" --version) ($BIN)"
  exit 0
fi

mkdir -p "$DIR/bin" "$DIR/apt/lists/partial" "$DIR/deb"
for suite in $SUITES; do
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" > "$DIR/apt/sources.list"
  APT_OPTS=(-o "Dir::Etc::sourcelist=$DIR/apt/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$DIR/apt/lists" -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1")
  if ! apt-get update -qq "${APT_OPTS[@]}" >/dev/null 2>&1; then
    echo "apt-get update for suite $suite failed; trying the next suite" >&2
    continue
  fi
  rm -f "$DIR"/deb/*.deb
  if ! (cd "$DIR/deb" && apt-get download -qq "${APT_OPTS[@]}" nats-server >/dev/null 2>&1); then
    echo "no nats-server package in suite $suite; trying the next suite" >&2
    continue
  fi
  rm -rf "$DIR/x"
  dpkg-deb -x "$DIR"/deb/nats-server_*.deb "$DIR/x"
  cp "$DIR/x/usr/sbin/nats-server" "$BIN.tmp"
  chmod +x "$BIN.tmp"
  if supported "$BIN.tmp"; then
    mv "$BIN.tmp" "$BIN"
    rm -rf "$DIR/x"
    echo "installed $("$BIN" --version) from Debian $suite into $BIN"
    exit 0
  fi
  echo "suite $suite has $("$BIN.tmp" --version 2>&1), older than 2.$MIN_MINOR" >&2
  rm -f "$BIN.tmp"
done

echo "ERROR: could not obtain nats-server >= 2.$MIN_MINOR. Install one and set NATS_SERVER_BIN, or set NATS_URL to a running server >= 2.$MIN_MINOR." >&2
exit 1
