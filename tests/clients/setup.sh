#!/usr/bin/env bash
# Install the pinned Elasticsearch clients that tests/clients.rs runs against oidc-realm:
#
#   tests/clients/node_modules    npm ci from package-lock.json (aliases es8 and es9 of
#                                 @elastic/elasticsearch)
#   target/clients/venv-es8       python3 -m venv + requirements-es8.txt (elasticsearch 8.19.x)
#   target/clients/venv-es9       python3 -m venv + requirements-es9.txt (elasticsearch 9.x)
#
# Idempotent: each install writes a stamp (sha256 of its lockfile and of the interpreter
# version) when it succeeds, and is skipped while the stamp matches. Up to date, this takes
# well under a second. Safe to run concurrently (flock).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/clients"
mkdir -p "$out"

say() { printf 'clients/setup: %s\n' "$*"; }

if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.setup.lock"
  flock 9
fi

for tool in node npm python3 sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { say "error: $tool is not installed"; exit 1; }
done

# sha256 of the given files' contents plus extra text (an interpreter version).
fingerprint() {
  local extra="$1"
  shift
  { cat "$@"; printf '%s\n' "$extra"; } | sha256sum | cut -d' ' -f1
}

# --- Node: npm ci -------------------------------------------------------------------------
node_stamp="$here/node_modules/.oidc-realm-setup-stamp"
node_want="$(fingerprint "node $(node --version)" "$here/package.json" "$here/package-lock.json")"
if [[ -f "$node_stamp" && "$(cat "$node_stamp")" == "$node_want" ]]; then
  say "npm packages up to date ($here/node_modules)"
else
  say "npm ci in $here (package-lock.json changed or not installed)"
  # --ignore-scripts: the clients need no install scripts. es9 is the newest 9.x whose
  # declared engines include Node 20 (9.5 needs Node 22).
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$node_want" >"$node_stamp"
  say "npm packages installed: $(cd "$here" && node -e '
    const v = (a) => JSON.parse(require("fs").readFileSync(`node_modules/${a}/package.json`)).version;
    process.stdout.write(`es8 = @elastic/elasticsearch ${v("es8")}, es9 = @elastic/elasticsearch ${v("es9")}`)')"
fi

# --- Python: one venv per client major ------------------------------------------------------
py_version="$(python3 -c 'import sys; print(sys.version)')"
for major in es8 es9; do
  req="$here/requirements-$major.txt"
  venv="$out/venv-$major"
  stamp="$venv/.oidc-realm-setup-stamp"
  want="$(fingerprint "python $py_version" "$req")"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "python venv up to date ($venv)"
    continue
  fi
  say "creating python venv $venv from $(basename "$req")"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # Every package is pinned in the file; --no-deps installs exactly that list, and pip check
  # fails if the list is not complete and consistent.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$req"
  "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
  printf '%s\n' "$want" >"$stamp"
  say "python venv ready: $("$venv/bin/python" -c 'import elasticsearch; print("elasticsearch", elasticsearch.__versionstr__)')"
done
