#!/usr/bin/env bash
# Benchmark oidc-realm on loopback with wrk, each figure labelled by the state of the caches it
# ran against:
#
#   [warm]  trivial handler (GET /_health, the baseline); bearer checks with one token, checked
#           once before the measurement, so every check is a hit in the bearer cache (plain,
#           and with the headers Elasticsearch's official clients send); durable token
#           issuance (the Basic password check remembered after the first argon2 check).
#   [cold]  bearer checks that all miss the bearer cache: MISS_TOKENS distinct tokens, issued
#           first through the API and never checked, each used once (bench/bearer-once.lua;
#           the run fails if wrk needed to reuse one). There are more of them than the cache
#           holds (64 MiB at ~550 bytes a record: about 122,000; src/tokens/cache.rs), so the
#           cache is full and evicting. The server is restarted before this measurement, so
#           redb's own page cache is empty too; the operating system's page cache is not
#           dropped (that needs root and is left to the operator: see docs/performance.md).
#
# The run fails on any non-2xx answer, any socket error, a login (token request) that does
# not return an access token, or a token that does not authenticate. Request rate limits are
# off in the benchmark's configuration (it measures capacity).
#
#   bench/run.sh                        # 10 s per warm measurement, 5 s for the cold one
#   DURATION=30s MISS_DURATION=10s bench/run.sh
#   PREFILL=1000000 bench/run.sh        # first store 1,000,000 tokens, then measure
#   MISS_TOKENS=500000 bench/run.sh     # issue this many tokens for the cold measurement
#   BIN=path/to/oidc-realm bench/run.sh # use this binary instead of building the release one
#
# Needs wrk (Debian package `wrk`) and curl. Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
MISS_DURATION=${MISS_DURATION:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-19280}
PREFILL=${PREFILL:-0}
MISS_TOKENS=${MISS_TOKENS:-}
# Bearer-cache capacity in records of the benchmark user (see above); the cold run uses at
# least twice as many tokens.
CACHE_RECORDS=122000
for t in wrk curl; do command -v $t >/dev/null || { echo "$t is missing: apt-get install $t" >&2; exit 1; }; done
case $MISS_DURATION in *[0-9]s) ;; *) echo "MISS_DURATION must be seconds, like 5s" >&2; exit 1 ;; esac

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin oidc-realm
  BIN=${CARGO_TARGET_DIR:-target}/release/oidc-realm
fi
WORK=$(mktemp -d)
PID=
HARVEST_PID=
trap 'kill $PID $HARVEST_PID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }

HASH=$(printf '%s' bench-password | "$BIN" hash-password)
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

start_server() {
  "$BIN" serve --config "$WORK/oidc-realm.yml" >> "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/_health" >/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "the server exited"; }
    sleep 0.1
  done
  fail "the server did not answer on 127.0.0.1:$PORT"
}
stop_server() { # graceful: the store file is closed cleanly
  kill -TERM "$PID"
  wait "$PID" || fail "the server did not stop cleanly"
  PID=
}

start_server
BASE="http://127.0.0.1:$PORT"
BASIC=$(printf '%s' bench:bench-password | base64)
RESPONSE=$(curl -s -H "Authorization: Basic $BASIC" -H 'Content-Type: application/json' \
  -d '{"grant_type":"client_credentials"}' "$BASE/_security/oauth2/token") || fail "token request: curl failed"
TOKEN=$(sed -nE 's/.*"access_token":"([^"]+)".*/\1/p' <<<"$RESPONSE")
[[ $TOKEN =~ ^ora1_[A-Za-z0-9_-]{43}$ ]] || fail "the token request returned no access token: $RESPONSE"
curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/_security/_authenticate" >/dev/null \
  || fail "the issued token does not authenticate"

# Fail unless wrk's output (file $1, for measurement $2) shows only 2xx answers and no socket error.
check_wrk() {
  local non2xx sockerr
  non2xx=$(awk '/Non-2xx/ {print $5}' "$1")
  sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$1")
  if [ "${non2xx:-0}" != "0" ] || [ "${sockerr:-0}" != "0" ]; then
    cat "$1" >&2
    fail "$2: ${non2xx:-0} non-2xx answers, ${sockerr:-0} socket errors"
  fi
}

measure() { # label (warm|cold), name, wrk args...; prints req/s on stdout, wrk's output in $WORK/last.out
  local label=$1 name=$2; shift 2
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" > "$WORK/last.out" || fail "$name: wrk failed"
  check_wrk "$WORK/last.out" "$name"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/last.out")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/last.out")
  printf '[%s] %-40s %12s req/s   p99 %8s\n' "$label" "$name" "$rps" "$p99" >&2
  echo "$rps"
}

echo "== wrk -t$THREADS -c$CONNS -d$DURATION on 127.0.0.1 ($(nproc) cores shared by server and wrk)"
TRIVIAL=$(measure warm "trivial GET /_health" "$BASE/_health") || exit 1
BEARER=$(measure warm "bearer, one cached token" -H "Authorization: Bearer $TOKEN" \
  "$BASE/_security/_authenticate") || exit 1
CLIENT=$(measure warm "bearer, one cached token, client headers" -H "Authorization: Bearer $TOKEN" \
  -H "Accept: application/vnd.elasticsearch+json; compatible-with=8" \
  "$BASE/_security/_authenticate") || exit 1
ISSUE=$(measure warm "POST oauth2/token client_credentials" -s bench/issue.lua \
  -H "Authorization: Basic $BASIC" "$BASE/_security/oauth2/token") || exit 1

# The cold run: enough never-checked tokens that no thread runs out during MISS_DURATION even
# at the warm bearer rate (a miss is not faster than a hit), and at least twice the cache.
if [ -z "$MISS_TOKENS" ]; then
  MISS_TOKENS=$(awk -v r="$BEARER" -v d="${MISS_DURATION%s}" -v c="$CACHE_RECORDS" \
    'BEGIN { n = int(r * d * 1.25) + 1; if (n < 2 * c) n = 2 * c; print n }')
fi
echo "== issuing $MISS_TOKENS tokens for the cold measurement"
HARVEST_OUT="$WORK/tokens" wrk -t"$THREADS" -c"$CONNS" -d3600s -s bench/harvest.lua \
  -H "Authorization: Basic $BASIC" "$BASE/_security/oauth2/token" > "$WORK/harvest.out" &
HARVEST_PID=$!
while :; do
  sleep 0.5
  have=$(cat "$WORK"/tokens.* 2>/dev/null | wc -l)
  [ "$have" -ge "$MISS_TOKENS" ] && break
  kill -0 "$HARVEST_PID" 2>/dev/null || { cat "$WORK/harvest.out" >&2; fail "token issuance stopped early"; }
done
kill -INT "$HARVEST_PID"
wait "$HARVEST_PID" || true
HARVEST_PID=
check_wrk "$WORK/harvest.out" "token issuance"
failed=$(sed -nE 's/^harvest: [0-9]+ tokens, ([0-9]+) failed answers$/\1/p' "$WORK/harvest.out")
[ "$failed" = "0" ] || { cat "$WORK/harvest.out" >&2; fail "token issuance: ${failed:-?} answers without an access token"; }
cat "$WORK"/tokens.* > "$WORK/tokens.txt"
have=$(wc -l < "$WORK/tokens.txt")
distinct=$(sort -u "$WORK/tokens.txt" | wc -l)
[ "$distinct" -eq "$have" ] || fail "token issuance: $have tokens but only $distinct distinct"
grep -qvE '^ora1_[A-Za-z0-9_-]{43}$' "$WORK/tokens.txt" && fail "token issuance: a line is not an access token"
echo "   $have distinct tokens (bearer cache: about $CACHE_RECORDS records)"

# Restart: redb's page cache starts empty; the bearer cache too (it was never fed these).
stop_server
start_server
DURATION=$MISS_DURATION
MISS=$(TOKENS="$WORK/tokens.txt" WRK_THREADS=$THREADS measure cold "bearer, cache miss, each token once" \
  -s bench/bearer-once.lua "$BASE/_security/_authenticate") || exit 1
reused=$(sed -nE 's/^tokens reused: ([0-9]+)$/\1/p' "$WORK/last.out")
[ "$reused" = "0" ] || fail "cold bearer run: ${reused:-?} requests reused a token (raise MISS_TOKENS): not a pure miss rate"

awk -v t="$TRIVIAL" -v b="$BEARER" -v c="$CLIENT" -v i="$ISSUE" -v m="$MISS" 'BEGIN {
  printf "[warm] bearer / trivial   = %.2f  (target >= 0.60)\n", b / t;
  printf "[warm] bearer with client headers / trivial = %.2f  (target >= 0.60)\n", c / t;
  printf "[warm] issuance / trivial = %.2f  (durable tokens/s: %d, target >= 5000)\n", i / t, i;
  printf "[cold] bearer cache miss / trivial = %.2f  (miss / hit = %.2f)\n", m / t, m / b }'
ls -l "$WORK/data/bench.redb" | awk '{printf "data file: %.1f MiB\n", $5 / 1048576}'
