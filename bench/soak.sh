#!/usr/bin/env bash
# Soak test of live operations: logins in a loop on several connections while the JWKS file
# and the YAML configuration are rewritten (by rename and in place, with broken versions in
# between) EDITS times. Reports the failed valid logins (target: 0).
#
#   bench/soak.sh                  # 4 connections, 100 edits
#   CONNS=8 EDITS=200 bench/soak.sh
#
# Uses the development OP (`cargo run --example dev_op`, 127.0.0.1:9380, must be free) and a
# copy of config/oidc-realm.yml in a temporary directory. Needs curl and jq. Binds 127.0.0.1.
# A login = prepare → GET the authorization URL (no redirect followed) → authenticate.
set -uo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-4}
EDITS=${EDITS:-100}
PORT=${PORT:-19281}
PAUSE=${PAUSE:-0.25}
for t in curl jq; do command -v $t >/dev/null || { echo "$t is missing" >&2; exit 1; }; done

cargo build --release --quiet --bin oidc-realm --example dev_op || exit 1
BIN=target/release/oidc-realm
OP=target/release/examples/dev_op
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/config/secrets" "$WORK/jwks" "$WORK/data"
cp config/secrets/oidc1_client_secret "$WORK/config/secrets/"
cp jwks/example.json "$WORK/jwks/example.json"
JWKS="$WORK/jwks/example.json"
CFG="$WORK/config/oidc-realm.yml"
sed -e "s|^  bind: 127.0.0.1:9280|  bind: 127.0.0.1:$PORT|" \
    -e "s|^  path: ../data/oidc-realm.redb|  path: ../data/soak.redb|" \
    -e "s|^  # level: info|  level: warn|" \
    config/oidc-realm.yml > "$CFG"
cp "$CFG" "$WORK/good.yml"

$OP > "$WORK/op.log" 2>&1 &
PIDS+=($!)
$BIN serve --config "$CFG" > "$WORK/server.log" 2>&1 &
PIDS+=($!)
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do curl -sf "$BASE/_health" >/dev/null && curl -s -o /dev/null http://127.0.0.1:9380/jwks && break; sleep 0.1; done
curl -sf "$BASE/_health" >/dev/null || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }

AUTH=(-u facilitator:facilitator-password -H 'Content-Type: application/json')

login() {
  local p redirect state nonce loc code
  p=$(curl -s --max-time 10 "${AUTH[@]}" -d '{"realm":"oidc1"}' "$BASE/_security/oidc/prepare") || { echo "prepare: curl"; return 1; }
  redirect=$(jq -r '.redirect // empty' <<<"$p")
  [ -n "$redirect" ] || { echo "prepare: $p"; return 1; }
  state=$(jq -r .state <<<"$p"); nonce=$(jq -r .nonce <<<"$p")
  loc=$(curl -s --max-time 10 -o /dev/null -w '%{redirect_url}' "$redirect")
  [ -n "$loc" ] || { echo "authorize: no redirect"; return 1; }
  code=$(jq -n --arg r "$loc" --arg s "$state" --arg n "$nonce" '{redirect_uri:$r,state:$s,nonce:$n,realm:"oidc1"}' \
    | curl -s --max-time 10 -o "$WORK/auth.$BASHPID" -w '%{http_code}' "${AUTH[@]}" -d @- "$BASE/_security/oidc/authenticate")
  [ "$code" = 200 ] || { echo "authenticate $code: $(cat "$WORK/auth.$BASHPID")"; return 1; }
}

worker() {
  local ok=0 fail=0
  while [ ! -e "$WORK/stop" ]; do
    if out=$(login); then ok=$((ok + 1)); else fail=$((fail + 1)); echo "$out" >> "$WORK/failures"; fi
  done
  echo "$ok $fail" > "$WORK/result.$1"
}

# Sanity: one login before the storm.
login >/dev/null || { echo "the first login failed: $(login)"; tail "$WORK/server.log"; exit 1; }

for i in $(seq 1 "$CONNS"); do worker "$i" & PIDS+=($!); done

ORIG=$(cat "$JWKS")
REVERSED=$(jq -c '.keys |= reverse' <<<"$ORIG")
broken_jwks=0; broken_yaml=0
for i in $(seq 1 "$EDITS"); do
  # JWKS: same keys in a different order, alternately by rename and in place; every 10th
  # edit first writes a file that does not parse (the last good keys must stay live).
  if [ $((i % 10)) = 0 ]; then printf '{"keys": [' > "$JWKS"; broken_jwks=$((broken_jwks + 1)); sleep "$PAUSE"; fi
  if [ $((i % 2)) = 0 ]; then body=$ORIG; else body=$REVERSED; fi
  if [ $((i % 4)) -lt 2 ]; then printf '%s\n' "$body" > "$JWKS.tmp" && mv "$JWKS.tmp" "$JWKS"; else printf '%s\n' "$body" > "$JWKS"; fi
  # YAML: a reloadable change (token lifetime) by rename; every 10th edit first an invalid one.
  if [ $((i % 10)) = 5 ]; then sed 's/^    rp.client_id: /    rp.clientid: /' "$WORK/good.yml" > "$CFG.tmp" && mv "$CFG.tmp" "$CFG"; broken_yaml=$((broken_yaml + 1)); sleep "$PAUSE"; fi
  sed "s|^  # timeout: 20m|  timeout: $((10 + i % 10))m|" "$WORK/good.yml" > "$CFG.tmp" && mv "$CFG.tmp" "$CFG"
  sleep "$PAUSE"
done
sleep 1
touch "$WORK/stop"
for p in "${PIDS[@]:2}"; do wait "$p"; done

ok=0; fail=0
for f in "$WORK"/result.*; do read -r o x < "$f"; ok=$((ok + o)); fail=$((fail + x)); done
STATUS=$(curl -s -u admin:admin-password "$BASE/_security/oidc/_status")
echo "edits: $EDITS JWKS rewrites ($broken_jwks broken), $EDITS YAML rewrites ($broken_yaml invalid)"
echo "config: generation $(jq .config.generation <<<"$STATUS"), reloads $(jq -c .config.reloads <<<"$STATUS")"
echo "logins: $ok succeeded, $fail failed on $CONNS connections"
if [ "$fail" -gt 0 ]; then echo "first failures:"; sort "$WORK/failures" | uniq -c | head; fi
[ "$fail" = 0 ]
