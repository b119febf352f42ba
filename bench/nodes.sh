#!/usr/bin/env bash
# Benchmark 1, 2 and 3 oidc-realm nodes on one PostgreSQL database, next to one redb node,
# on loopback with wrk; and the database's own commit rate here (pgbench).
#
# For each setup (redb ×1, postgres ×1, ×2, ×3) the nodes start on a fresh schema (redb: a
# fresh file), then each measurement runs one wrk per node at the same time (CONNS
# connections each) and adds their rates:
#
#   [warm] bearer checks, one token per node checked once before (bearer-cache hits);
#   [warm] durable token issues (client_credentials; each answer after its commit);
#   [warm] login starts (POST oidc/prepare: one pending login stored per request; on
#          PostgreSQL a shared row checked against the limits under an advisory lock).
#
# The second half of a login (authenticate) needs an OpenID Provider and is not measured
# here (see benches/login.rs for the in-process login cost). The run fails on any non-2xx
# answer or socket error.
#
#   bench/nodes.sh
#   DURATION=20s CONNS=32 bench/nodes.sh
#   PGURL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable bench/nodes.sh
#   BIN=path/to/oidc-realm bench/nodes.sh
#
# Needs wrk, curl, psql and pgbench (Debian: wrk, curl, postgresql-client) and a PostgreSQL
# where the URL's user may create schemas and databases. Binds 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
# wrk counts an answer slower than this as a socket error (the machine is shared: see docs).
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
PORT=${PORT:-19380}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
SCHEMA=bench_nodes
for t in wrk curl psql pgbench; do command -v $t >/dev/null || { echo "$t is missing" >&2; exit 1; }; done

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin oidc-realm
  BIN=${CARGO_TARGET_DIR:-target}/release/oidc-realm
fi
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
fail() {
  echo "FAILED: $*" >&2
  for l in "$WORK"/node*.log; do [ -s "$l" ] && { echo "--- $l" >&2; tail -20 "$l" >&2; }; done
  exit 1
}

HASH=$(printf '%s' bench-password | "$BIN" hash-password)
BASIC=$(printf '%s' bench:bench-password | base64)
cp jwks/example.json "$WORK/jwks.json"

config() { # port, data block → a config file on stdout
  cat <<YAML
http:
  bind: 127.0.0.1:$1
$2
log:
  level: warn
limits:
  requests_per_caller: 0
  requests_per_address: 0
  pending_logins_per_caller: 1000000
  pending_logins: 1000000
users:
  bench:
    password_hash: "$HASH"
    privileges: [manage_token, manage_oidc]
realms:
  oidc1:
    order: 0
    rp.client_id: bench
    rp.client_secret: bench-client-secret
    rp.redirect_uri: http://127.0.0.1:5601/api/security/oidc/callback
    rp.response_type: code
    op.issuer: http://127.0.0.1:9
    op.authorization_endpoint: http://127.0.0.1:9/authorize
    op.token_endpoint: http://127.0.0.1:9/token
    op.jwkset_path: jwks.json
    claims.principal: sub
YAML
}

start_nodes() { # count, data block
  PIDS=()
  rm -f "$WORK"/node*.log
  for i in $(seq 1 "$1"); do
    local port=$((PORT + i))
    config "$port" "$2" > "$WORK/node$i.yml"
    "$BIN" serve --config "$WORK/node$i.yml" >> "$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in $(seq 1 "$1"); do
    local ok=
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:$((PORT + i))/_health" >/dev/null && { ok=1; break; }
      sleep 0.1
    done
    [ -n "$ok" ] || { cat "$WORK/node$i.log" >&2; fail "node $i did not start"; }
  done
}

stop_nodes() {
  for p in "${PIDS[@]}"; do kill -TERM "$p"; done
  for p in "${PIDS[@]}"; do wait "$p" || fail "a node did not stop cleanly"; done
  PIDS=()
}

check_wrk() {
  local non2xx sockerr
  non2xx=$(awk '/Non-2xx/ {print $5}' "$1")
  sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$1")
  if [ "${non2xx:-0}" != "0" ] || [ "${sockerr:-0}" != "0" ]; then
    cat "$1" >&2
    fail "$2: ${non2xx:-0} non-2xx answers, ${sockerr:-0} socket errors"
  fi
}

measure_all() { # nodes, name, wrk args (use @BASE@ and @TOKEN@) → sum of req/s on stdout
  local n=$1 name=$2; shift 2
  local pids=()
  for i in $(seq 1 "$n"); do
    local base="http://127.0.0.1:$((PORT + i))" args=()
    for a in "$@"; do a=${a//@BASE@/$base}; a=${a//@TOKEN@/${TOKENS[$i]:-}}; args+=("$a"); done
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout "$WRK_TIMEOUT" "${args[@]}" > "$WORK/wrk$i.out" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "$name: wrk failed"; done
  local sum=0
  for i in $(seq 1 "$n"); do
    check_wrk "$WORK/wrk$i.out" "$name (node $i)"
    sum=$(awk -v s="$sum" '/Requests\/sec/ {print s + $2}' "$WORK/wrk$i.out")
  done
  echo "$sum"
}

declare -A TOKENS
run_setup() { # label, nodes, data block
  local label=$1 n=$2
  start_nodes "$n" "$3"
  for i in $(seq 1 "$n"); do
    local base="http://127.0.0.1:$((PORT + i))" r
    r=$(curl -s -H "Authorization: Basic $BASIC" -H 'Content-Type: application/json' \
      -d '{"grant_type":"client_credentials"}' "$base/_security/oauth2/token")
    TOKENS[$i]=$(sed -nE 's/.*"access_token":"([^"]+)".*/\1/p' <<<"$r")
    [ -n "${TOKENS[$i]}" ] || fail "$label: no token from node $i: $r"
    curl -sf -H "Authorization: Bearer ${TOKENS[$i]}" "$base/_security/_authenticate" >/dev/null \
      || fail "$label: the token does not authenticate on node $i"
  done
  local bearer issue prepare
  bearer=$(measure_all "$n" bearer -H "Authorization: Bearer @TOKEN@" "@BASE@/_security/_authenticate")
  issue=$(measure_all "$n" issue -s bench/issue.lua -H "Authorization: Basic $BASIC" "@BASE@/_security/oauth2/token")
  prepare=$(measure_all "$n" prepare -s bench/prepare.lua -H "Authorization: Basic $BASIC" "@BASE@/_security/oidc/prepare")
  printf '%-14s %5s nodes   bearer %9.0f/s   issue %8.0f/s   prepare %8.0f/s\n' \
    "$label" "$n" "$bearer" "$issue" "$prepare"
  stop_nodes
}

fresh_schema() {
  psql -q "$PGURL" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null
}

echo "== $(nproc) cores shared by the nodes, wrk and PostgreSQL; wrk -t$THREADS -c$CONNS -d$DURATION per node"
[ -n "${SKIP_REDB:-}" ] || run_setup "redb" 1 "data:
  path: data/bench.redb"
for n in ${NODES:-1 2 3}; do
  fresh_schema
  run_setup "postgres" "$n" "data:
  backend: postgres
  url: \"$PGURL\"
  schema: $SCHEMA"
done
fresh_schema

# The database's own cost: single-row insert transactions, each committed (what a durable
# token issue costs the database at least), from 32 clients.
DB=bench_commits_$$
psql -q "$PGURL" -c "CREATE DATABASE $DB" >/dev/null
DBURL=${PGURL/\/test\?/\/$DB?}
psql -q "$DBURL" -c "CREATE TABLE t (id bigserial PRIMARY KEY, v bytea)" >/dev/null
echo "INSERT INTO t (v) VALUES ('\\x00112233445566778899');" > "$WORK/commit.sql"
pgbench -n -c 32 -j 2 -T "${DURATION%s}" -f "$WORK/commit.sql" "$DBURL" > "$WORK/pgbench.out" 2>&1 \
  || { cat "$WORK/pgbench.out" >&2; fail "pgbench"; }
psql -q "$PGURL" -c "DROP DATABASE $DB" >/dev/null
awk '/^tps/ {printf "postgres commits: %.0f/s (pgbench, 32 clients, one-row insert per transaction)\n", $3}' "$WORK/pgbench.out"
psql -qAt "$PGURL" -c "SHOW synchronous_commit" | sed 's/^/synchronous_commit: /'
psql -qAt "$PGURL" -c "SHOW fsync" | sed 's/^/fsync: /'
