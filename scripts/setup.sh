#!/usr/bin/env bash
# Installs what the build needs on a machine that has only the Rust toolchain.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi
for c in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$c"; then
    rustup component add "$c"
  fi
done
