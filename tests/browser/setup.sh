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
. "$here/../common/npm_setup.sh"

suite=browser
chromium="${OIDC_REALM_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  say "error: $chromium is missing: install Debian's package with \`apt-get install -y chromium\` (the browser suite never downloads a browser)"
  exit 1
fi
say "browser: $("$chromium" --version 2>/dev/null | tail -n 1)"

npm_setup browser "$here" playwright-core
