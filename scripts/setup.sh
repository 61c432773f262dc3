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
# The harness's verify_signature foreign function links the system's OpenSSL
# (the `openssl` crate finds it with pkg-config).
if ! pkg-config --exists openssl 2>/dev/null; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config
  else
    echo "setup: OpenSSL development files (libssl-dev) and pkg-config are needed" >&2
    exit 1
  fi
fi
