#!/usr/bin/env bash
# Build every fuzz target once into the build cache that .ci/run fuzzes with
# (OIDC_REALM_FUZZ_TARGET_DIR, default ~/.cache/oidc-realm/fuzz-target). Needs a nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`). Takes ~12 min
# on a 2-core machine the first time; later builds reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${OIDC_REALM_FUZZ_TARGET_DIR:-$HOME/.cache/oidc-realm/fuzz-target}"
mkdir -p "$dir"
cargo +nightly fuzz build -O --target-dir "$dir"
echo "fuzz build cache ready: $dir"
