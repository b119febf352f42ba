#!/usr/bin/env bash
# One node at scale: issue TOKENS (default 1,000,000) access tokens through the API into a
# fresh redb store, then measure bearer checks against that store, and the server's memory
# through the whole run:
#
#   [warm]  trivial handler (GET /_health): the baseline of every ratio;
#   [warm]  bearer checks with one token (always in the bearer cache);
#   [warm]  bearer checks with a token drawn at random from a hot set of HOT (default 100,000)
#           tokens, after one pass of WARMUP over the same set (the set fits the default
#           bearer cache, so this measures hits);
#   [cold]  bearer checks with a token drawn uniformly from all TOKENS: most miss the bearer
#           cache and read the store (whose page cache holds a fraction of the file; the
#           operating system's page cache is not dropped);
#   issuance: durable token issues/s over the whole harvest of TOKENS tokens (each answered
#           after its commit with Durability::Immediate).
#
# Then the server's resident memory (VmRSS) and its peak (VmHWM) over the whole run, which
# includes issuing TOKENS tokens. The run fails on any non-2xx answer or socket error.
#
#   bench/scale.sh
#   TOKENS=200000 HOT=50000 DURATION=5s bench/scale.sh
#   EXTRA_YAML='data.cache_size: 64mb' bench/scale.sh    # extra configuration (dotted keys)
#   BIN=path/to/oidc-realm bench/scale.sh
#
# Needs wrk and curl. Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-19281}
TOKENS=${TOKENS:-1000000}
HOT=${HOT:-100000}
METRICS_PORT=$((PORT + 1))
EXTRA_YAML="metrics.bind: 127.0.0.1:$METRICS_PORT
${EXTRA_YAML:-}"
. bench/lib.sh
# The bearer cache's entries and estimated MiB, from the metrics listener: "entries MiB".
cache_fill() {
  curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk '
    /^oidc_realm_bearer_cache_entries / {e = $2} /^oidc_realm_bearer_cache_bytes / {b = $2}
    END { printf "%d %.1f\n", e, b / 1048576 }'
}

start_server
first_token
echo "== issuing $TOKENS tokens through the API (wrk -t$THREADS -c$CONNS, $(nproc) cores shared by server and wrk)"
ISSUE=$(harvest "$TOKENS")
have=$(wc -l < "$WORK/tokens.txt")
read -r rss_now rss_peak < <(server_rss)
echo "   $have tokens at $ISSUE durable issues/s; server RSS ${rss_now} MiB (peak ${rss_peak} MiB)"

TRIVIAL=$(measure warm "trivial GET /_health" "$BASE/_health") || exit 1
ONE=$(measure warm "bearer, one token" -H "Authorization: Bearer $TOKEN" \
  "$BASE/_security/_authenticate") || exit 1
# The hot set: one pass to load it into the bearer cache, then the measurement.
DURATION=$WARMUP TOKENS="$WORK/tokens.txt" HOT=$HOT measure warm "(warm-up: hot set of $HOT)" \
  -s bench/bearer-draw.lua "$BASE/_security/_authenticate" >/dev/null || exit 1
HOTRATE=$(TOKENS="$WORK/tokens.txt" HOT=$HOT measure warm "bearer, random of a hot set of $HOT" \
  -s bench/bearer-draw.lua "$BASE/_security/_authenticate") || exit 1
read -r entries mib < <(cache_fill)
echo "   bearer cache after the hot set: $entries entries, ${mib} MiB (estimated)"
UNIFORM=$(TOKENS="$WORK/tokens.txt" HOT=0 measure cold "bearer, uniform over all $have" \
  -s bench/bearer-draw.lua "$BASE/_security/_authenticate") || exit 1
read -r rss_now rss_peak < <(server_rss)

awk -v t="$TRIVIAL" -v o="$ONE" -v h="$HOTRATE" -v u="$UNIFORM" -v i="$ISSUE" 'BEGIN {
  printf "[warm] bearer, one token / trivial = %.2f\n", o / t;
  printf "[warm] bearer, hot set / trivial   = %.2f  (target >= 0.60)\n", h / t;
  printf "[cold] bearer, uniform / trivial   = %.2f  (target >= 0.50)\n", u / t;
  printf "durable issues/s over the harvest  = %d  (target >= 20000)\n", i }'
echo "server RSS at the end ${rss_now} MiB, peak ${rss_peak} MiB (target < 100 MiB)"
ls -l "$WORK/data/bench.redb" | awk '{printf "data file: %.1f MiB\n", $5 / 1048576}'
