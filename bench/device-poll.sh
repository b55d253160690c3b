#!/usr/bin/env bash
# Device-flow benchmark: 1,000 code pairs pending, each polled at its interval for 60 s against a release build on
# SQLite, then all approved on the /code pages and collected. Prints errors (must be 0), poll latency and server CPU.
# Usage: bench/device-poll.sh [codes] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
CODES=${1:-1000}
SECONDS_=${2:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey-target}
cargo build --release -q -p latchkey --bin latchkey --example device_bench
BIN=$CARGO_TARGET_DIR/release/latchkey
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_DATA_DIR=$WORK/data LATCHKEY_LISTEN=127.0.0.1:18080 LATCHKEY_LOG_LEVEL=warn
CLIENT_ID=$($BIN client add --name "Bench TV" --privacy-url https://example.com/privacy --device --public --json | sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p')
echo 'bench passphrase' | $BIN user add --email bench@example.com --name Bench --password-stdin >/dev/null
$BIN serve & SERVER=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$CARGO_TARGET_DIR/release/examples/device_bench" --base http://127.0.0.1:18080 --client-id "$CLIENT_ID" \
  --email bench@example.com --password 'bench passphrase' --codes "$CODES" --seconds "$SECONDS_" --server-pid "$SERVER"
