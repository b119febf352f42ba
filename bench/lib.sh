# Shared by bench/run.sh and bench/scale.sh (sourced, not run): the release binary, a
# server on 127.0.0.1 with a redb file in a temporary directory, wrk measurements that fail on
# any non-2xx answer or socket error, and token harvesting through the API.
#
# Before sourcing: PORT, CONNS, THREADS, DURATION; optional BIN (a binary to use instead of
# building the release one) and EXTRA_YAML (configuration lines appended as they are).

for t in wrk curl; do command -v $t >/dev/null || { echo "$t is missing: apt-get install $t" >&2; exit 1; }; done
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
${EXTRA_YAML:-}
YAML
BASE="http://127.0.0.1:$PORT"
BASIC=$(printf '%s' bench:bench-password | base64)

start_server() {
  "$BIN" serve --config "$WORK/oidc-realm.yml" >> "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    curl -sf "$BASE/_health" >/dev/null && return 0
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

# One token for the benchmark user, checked once (so it is in the bearer cache): $TOKEN.
first_token() {
  local response
  response=$(curl -s -H "Authorization: Basic $BASIC" -H 'Content-Type: application/json' \
    -d '{"grant_type":"client_credentials"}' "$BASE/_security/oauth2/token") || fail "token request: curl failed"
  TOKEN=$(sed -nE 's/.*"access_token":"([^"]+)".*/\1/p' <<<"$response")
  [[ $TOKEN =~ ^ora2_[A-Za-z0-9_-]{43}$ ]] || fail "the token request returned no access token: $response"
  curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/_security/_authenticate" >/dev/null \
    || fail "the issued token does not authenticate"
}

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
  printf '[%s] %-44s %12s req/s   p99 %8s\n' "$label" "$name" "$rps" "$p99" >&2
  echo "$rps"
}

# Issue at least $1 tokens through the API (client_credentials, wrk -t$THREADS -c$CONNS) into
# $WORK/tokens.txt, checking every answer carried a distinct access token; prints the issue
# rate (tokens/s over the whole harvest) on stdout.
harvest() {
  local want=$1 have distinct failed started elapsed
  rm -f "$WORK"/tokens.*
  started=$(date +%s.%N)
  HARVEST_OUT="$WORK/tokens" wrk -t"$THREADS" -c"$CONNS" -d3600s -s bench/harvest.lua \
    -H "Authorization: Basic $BASIC" "$BASE/_security/oauth2/token" > "$WORK/harvest.out" &
  HARVEST_PID=$!
  while :; do
    sleep 0.5
    have=$(cat "$WORK"/tokens.* 2>/dev/null | wc -l)
    [ "$have" -ge "$want" ] && break
    kill -0 "$HARVEST_PID" 2>/dev/null || { cat "$WORK/harvest.out" >&2; fail "token issuance stopped early"; }
  done
  kill -INT "$HARVEST_PID"
  wait "$HARVEST_PID" || true
  HARVEST_PID=
  elapsed=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
  check_wrk "$WORK/harvest.out" "token issuance"
  failed=$(sed -nE 's/^harvest: [0-9]+ tokens, ([0-9]+) failed answers$/\1/p' "$WORK/harvest.out")
  [ "$failed" = "0" ] || { cat "$WORK/harvest.out" >&2; fail "token issuance: ${failed:-?} answers without an access token"; }
  cat "$WORK"/tokens.* > "$WORK/tokens.txt"
  have=$(wc -l < "$WORK/tokens.txt")
  distinct=$(sort -u "$WORK/tokens.txt" | wc -l)
  [ "$distinct" -eq "$have" ] || fail "token issuance: $have tokens but only $distinct distinct"
  grep -qvE '^ora2_[A-Za-z0-9_-]{43}$' "$WORK/tokens.txt" && fail "token issuance: a line is not an access token"
  awk -v n="$have" -v t="$elapsed" 'BEGIN { printf "%d\n", n / t }'
}

# The server's resident memory now and at its peak (VmRSS, VmHWM), in MiB: "now peak".
server_rss() {
  awk '/^VmRSS/ {now = $2} /^VmHWM/ {peak = $2} END { printf "%.1f %.1f\n", now / 1024, peak / 1024 }' "/proc/$PID/status"
}
