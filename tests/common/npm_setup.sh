# Sourced by tests/e2e/setup.sh and tests/browser/setup.sh (not run): install a suite's
# pinned npm packages.
#
#   npm_setup <suite> <dir> <package>
#
# Takes a lock (flock, so concurrent runs wait), checks node (20 or later), npm and
# sha256sum, then runs `npm ci --ignore-scripts` in <dir> from its package-lock.json unless
# the stamp (sha256 of package.json, package-lock.json and the Node version) says the
# installed packages match; reports <package>'s installed version. Messages start with
# "<suite>/setup:". Exits the calling script with 1 on any missing tool.

say() { printf '%s/setup: %s\n' "$suite" "$*"; }

npm_setup() {
  suite="$1"
  local dir="$2" package="$3" root major stamp want
  root="$(cd "$dir/../.." && pwd)"
  mkdir -p "$root/target/$suite"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$root/target/$suite/.setup.lock"
    flock 9
  fi
  for tool in node npm sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { say "error: $tool is not installed (the $suite suite needs Node.js 20 or later and npm)"; exit 1; }
  done
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if (( major < 20 )); then
    say "error: Node.js $(node --version) is too old; the $suite suite needs Node.js 20 or later"
    exit 1
  fi
  stamp="$dir/node_modules/.oidc-realm-setup-stamp"
  want="$({ cat "$dir/package.json" "$dir/package-lock.json"; printf 'node %s\n' "$(node --version)"; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "npm packages up to date ($dir/node_modules)"
    return 0
  fi
  say "npm ci in $dir (package-lock.json changed or not installed)"
  # --ignore-scripts: no package of these suites needs an install script (and playwright-core
  # must not download a browser).
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$stamp"
  say "installed: $package $(node -p 'require(process.argv[1]).version' "$dir/node_modules/$package/package.json")"
}
