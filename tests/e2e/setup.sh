#!/usr/bin/env bash
# Install the pinned OpenID Provider that tests/e2e.rs runs oidc-realm against:
#
#   tests/e2e/node_modules    npm ci from package-lock.json (oidc-provider, by panva)
#
# Idempotent: a successful install writes a stamp (sha256 of package.json, package-lock.json
# and the Node version) and is skipped while the stamp matches (well under a second).
# Safe to run concurrently (flock). Needs node and npm (Node 20 or later) and, the first
# time, the npm registry.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../common/npm_setup.sh"
npm_setup e2e "$here" oidc-provider
