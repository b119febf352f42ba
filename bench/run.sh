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
#           holds (token.cache_size, 48 MiB by default, at ~430 bytes a record: about 117,000), so the
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
CACHE_RECORDS=110000
case $MISS_DURATION in *[0-9]s) ;; *) echo "MISS_DURATION must be seconds, like 5s" >&2; exit 1 ;; esac
. bench/lib.sh

if [ "$PREFILL" -gt 0 ]; then
  echo "== storing $PREFILL tokens"
  cargo bench --quiet --bench prefill -- "$WORK/data/bench.redb" "$PREFILL"
fi

start_server
first_token

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
harvest "$MISS_TOKENS" >/dev/null
have=$(wc -l < "$WORK/tokens.txt")
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
