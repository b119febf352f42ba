#!/usr/bin/env bash
# Install what tests/browser.rs drives Chromium with, and check the browser is there:
#
#   tests/browser/node_modules   npm ci from package-lock.json (playwright-core; no browser
#                                download: Playwright drives Debian's /usr/bin/chromium)
#   /usr/bin/chromium            checked, never installed here: `apt-get install -y chromium`
#                                (CI's .ci/run does that)
#
# Idempotent: a successful install writes a stamp (sha256 of package.json, package-lock.json
# and the Node version) and is skipped while the stamp matches (well under a second).
# Safe to run concurrently (flock). Needs node and npm (Node 20 or later) and, the first
# time, the npm registry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mkdir -p "$root/target/browser"

say() { printf 'browser/setup: %s\n' "$*"; }

if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/target/browser/.setup.lock"
  flock 9
fi

for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { say "error: $tool is not installed (the browser suite needs Node.js 20 or later and npm)"; exit 1; }
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 20 )); then
  say "error: Node.js $(node --version) is too old; the browser suite needs Node.js 20 or later"
  exit 1
fi

chromium="${OIDC_REALM_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  say "error: $chromium is missing: install Debian's package with \`apt-get install -y chromium\` (the browser suite never downloads a browser)"
  exit 1
fi
say "browser: $("$chromium" --version 2>/dev/null | tail -n 1)"

stamp="$here/node_modules/.oidc-realm-setup-stamp"
want="$({ cat "$here/package.json" "$here/package-lock.json"; printf 'node %s\n' "$(node --version)"; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  say "npm packages up to date ($here/node_modules)"
  exit 0
fi

say "npm ci in $here (package-lock.json changed or not installed)"
# --ignore-scripts: playwright-core needs no install script (and must not download a browser).
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
printf '%s\n' "$want" >"$stamp"
say "installed: playwright-core $(node -p 'require(process.argv[1]).version' "$here/node_modules/playwright-core/package.json")"
