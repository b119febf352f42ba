#!/usr/bin/env bash
# Benchmark oidc-realm on loopback with wrk: bearer checks (plain, and with the headers
# Elasticsearch's official clients send) and durable token issuance, each next to the trivial
# handler (GET /_health) measured in the same run, reported as ratios. Warm paths: the bearer
# token is checked once before the measurement, so its cache entry is hot. Any non-2xx
# answer fails the run.
#
#   bench/run.sh                 # 10 s per measurement
#   DURATION=30s bench/run.sh
#   PREFILL=1000000 bench/run.sh # first store 1,000,000 tokens, then measure
#
# Needs wrk (Debian package `wrk`). Builds the release binary. Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-19280}
PREFILL=${PREFILL:-0}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
BIN=target/release/oidc-realm
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

HASH=$(printf '%s' bench-password | $BIN hash-password)
cat > "$WORK/oidc-realm.yml" <<YAML
http:
  bind: 127.0.0.1:$PORT
data:
  path: data/bench.redb
log:
  level: warn
# The benchmark measures capacity: request rate limits off.
limits:
  requests_per_caller: 0
  requests_per_address: 0
users:
  bench:
    password_hash: "$HASH"
    privileges: [manage_token]
YAML

if [ "$PREFILL" -gt 0 ]; then
  echo "== storing $PREFILL tokens"
  cargo bench --quiet --bench prefill -- "$WORK/data/bench.redb" "$PREFILL"
fi

$BIN serve --config "$WORK/oidc-realm.yml" > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/_health" >/dev/null && break; sleep 0.1; done

BASIC=$(printf '%s' bench:bench-password | base64)
TOKEN=$(curl -sf -H "Authorization: Basic $BASIC" -H 'Content-Type: application/json' \
  -d '{"grant_type":"client_credentials"}' "http://127.0.0.1:$PORT/_security/oauth2/token" \
  | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

measure() { # name, wrk args...
  local name=$1; shift
  local out; out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-34s %12s req/s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p99" "${non2xx:-0}" >&2
  if [ "${non2xx:-0}" != "0" ]; then
    echo "FAILED: $name had error answers:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$rps"
}

echo "== wrk -t$THREADS -c$CONNS -d$DURATION on 127.0.0.1 ($(nproc) cores shared by server and wrk)"
TRIVIAL=$(measure "trivial GET /_health" "http://127.0.0.1:$PORT/_health")
BEARER=$(measure "bearer GET /_security/_authenticate" -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/_security/_authenticate")
CLIENT=$(measure "bearer, official client headers" -H "Authorization: Bearer $TOKEN" \
  -H "Accept: application/vnd.elasticsearch+json; compatible-with=8" \
  "http://127.0.0.1:$PORT/_security/_authenticate")
ISSUE=$(measure "POST oauth2/token client_credentials" -s bench/issue.lua \
  -H "Authorization: Basic $BASIC" "http://127.0.0.1:$PORT/_security/oauth2/token")

awk -v t="$TRIVIAL" -v b="$BEARER" -v c="$CLIENT" -v i="$ISSUE" 'BEGIN {
  printf "bearer / trivial   = %.2f  (target >= 0.60)\n", b / t;
  printf "bearer with client headers / trivial = %.2f  (target >= 0.60)\n", c / t;
  printf "issuance / trivial = %.2f  (durable tokens/s: %d, target >= 5000)\n", i / t, i }'
ls -l "$WORK/data/bench.redb" | awk '{printf "data file: %.1f MiB\n", $5 / 1048576}'
