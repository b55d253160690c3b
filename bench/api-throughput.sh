#!/usr/bin/env bash
# Hot-path throughput: wrk against a release build of `latchkey serve` on this machine, SQLite by default
# (`bench/api-throughput.sh postgres://postgres@127.0.0.1:5432/DB` for PostgreSQL). Measures, for DURATION seconds
# each with CONNECTIONS connections over 2 wrk threads: GET /auth/o2/tokeninfo, GET /user/profile,
# POST /oauth2/introspect, and POST /auth/o2/token (client_credentials, which writes a token each time).
# Usage: bench/api-throughput.sh [database_url] ; env DURATION (default 15), CONNECTIONS (default 64), BIN (a
# latchkey binary to measure instead of building this checkout's release build, e.g. an older commit's).
# PEER=1 also measures node-oidc-provider (bench/peer) in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:-}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey-target}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p latchkey --bin latchkey
  BIN=$CARGO_TARGET_DIR/release/latchkey
fi
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
export LATCHKEY_DATA_DIR=$WORK/data LATCHKEY_LISTEN=127.0.0.1:18081 LATCHKEY_LOG_LEVEL=warn
[ -n "$DB" ] && export LATCHKEY_DATABASE_URL=$DB
BASE=http://127.0.0.1:18081
CB=http://127.0.0.1:9/callback
APP=$($BIN client add --name "Bench" --privacy-url https://example.com/privacy --redirect-uri $CB --client-credentials --json)
ID=$(sed -n 's/.*"client_id": "\([^"]*\)".*/\1/p' <<<"$APP"); SECRET=$(sed -n 's/.*"client_secret": "\([^"]*\)".*/\1/p' <<<"$APP")
echo 'bench passphrase' | $BIN user add --email bench@example.com --name Bench --postal-code 10115 --password-stdin >/dev/null
$BIN serve & SERVER=$!
for _ in $(seq 50); do curl -sf $BASE/healthz >/dev/null && break; sleep 0.1; done

# A customer's access token, through the real pages: sign in, allow, exchange the code.
JAR=$WORK/cookies
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" | head -1 | sed 's/&#38;/\&/g; s/&amp;/\&/g; s/&#34;/"/g; s/&#39;/'"'"'/g'; }
AUTHZ="/ap/oa?client_id=$ID&scope=profile%20postal_code&response_type=code&redirect_uri=$CB"
CSRF=$(curl -s -c $JAR -b $JAR "$BASE/ap/signin" | field csrf)
curl -s -o /dev/null -c $JAR -b $JAR $BASE/ap/signin --data-urlencode "csrf=$CSRF" --data-urlencode email=bench@example.com \
  --data-urlencode 'password=bench passphrase' --data-urlencode "return_to=$AUTHZ"
PAGE=$(curl -s -c $JAR -b $JAR "$BASE$AUTHZ")
CODE=$(curl -s -o /dev/null -w '%{redirect_url}' -c $JAR -b $JAR $BASE/ap/oa/consent \
  --data-urlencode "csrf=$(field csrf <<<"$PAGE")" --data-urlencode "request=$(field request <<<"$PAGE")" \
  --data-urlencode "consent_token=$(field consent_token <<<"$PAGE")" -d decision=allow \
  $(grep -o 'name="share" value="[^"]*"' <<<"$PAGE" | sed 's/name="share" value="\([^"]*\)"/-d share=\1/') | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
TOKEN=$(curl -s $BASE/auth/o2/token -d grant_type=authorization_code -d code="$CODE" -d redirect_uri=$CB \
  -d client_id="$ID" -d client_secret="$SECRET" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "could not get a customer token" >&2; exit 1; }
curl -sf $BASE/user/profile -H "x-amz-access-token: $TOKEN" >/dev/null

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); database: ${DB:-SQLite}"
# The server's CPU time (user + system, in clock ticks): CPU per request is less sensitive than throughput to what
# else the machine is doing, so it compares builds measured on a busy machine.
cpu_ticks() { awk '{print $14 + $15}' /proc/$SERVER/stat; }
run() { # name, then wrk arguments
  local name=$1; shift
  local before; before=$(cpu_ticks)
  local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
  local after; after=$(cpu_ticks)
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local p50 p99; p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errors; errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); errors=${errors:-0}
  local sockerr; sockerr=$(awk '/Socket errors/ {print}' <<<"$out")
  local total; total=$(awk '/requests in/ {print $1}' <<<"$out")
  local us; us=$(awk -v t=$((after - before)) -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')
  printf '%-28s %10s req/s   p50 %-8s p99 %-8s server CPU %4s µs/req   non-2xx %s %s\n' "$name" "$rps" "$p50" "$p99" "$us" "$errors" "$sockerr"
}
TOKEN=$TOKEN run "GET tokeninfo" -s bench/wrk/get.lua "$BASE/auth/o2/tokeninfo"
TOKEN=$TOKEN run "GET profile" -s bench/wrk/get.lua "$BASE/user/profile"
BODY="token=$(printf %s "$TOKEN" | sed 's/|/%7C/')&client_id=$ID&client_secret=$SECRET" \
  run "POST introspect" -s bench/wrk/post.lua "$BASE/oauth2/introspect"
BODY="grant_type=client_credentials&client_id=$ID&client_secret=$SECRET" \
  run "POST token (client_cred.)" -s bench/wrk/post.lua "$BASE/auth/o2/token"

# The peer, in the same run (PEER=1): node-oidc-provider 9 from npm (bench/peer, pinned by its package-lock.json),
# tokens in memory only, on the same machine; the same token and introspection loads.
if [ "${PEER:-0}" = 1 ]; then
  command -v node >/dev/null || { echo "PEER=1 needs Node.js" >&2; exit 1; }
  (cd bench/peer && npm ci --silent --no-audit --no-fund)
  PORT=18082 node bench/peer/server.mjs >/dev/null 2>&1 & PEER_PID=$!
  trap 'kill $SERVER $PEER_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/.well-known/openid-configuration >/dev/null && break; sleep 0.1; done
  PSEC=bench-secret-bench-secret-bench-secret
  PTOKEN=$(curl -s http://127.0.0.1:18082/token -d grant_type=client_credentials -d client_id=bench -d client_secret=$PSEC \
    | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [ -n "$PTOKEN" ] || { echo "the peer gave no token" >&2; exit 1; }
  SERVER=$PEER_PID
  BODY="token=$PTOKEN&client_id=bench&client_secret=$PSEC" \
    run "peer: POST introspect" -s bench/wrk/post.lua "http://127.0.0.1:18082/token/introspection"
  BODY="grant_type=client_credentials&client_id=bench&client_secret=$PSEC" \
    run "peer: POST token (cl. cred.)" -s bench/wrk/post.lua "http://127.0.0.1:18082/token"
fi
