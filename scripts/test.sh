#!/usr/bin/env bash
# The one command that runs every test (CI runs exactly this via .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
echo "== test tools"; bash scripts/test-tools.sh
echo "== fmt";    cargo fmt --all --check
echo "== wasm";   bash scripts/build-wasm.sh
echo "== clippy (host)"; cargo clippy --workspace --all-targets -- -D warnings
echo "== clippy (wasm)"; cargo clippy --release --target wasm32-wasip1 \
  -p jwt-authn -p rbac -p header-router -p fault-injection -p custom-metrics -p probe -p body-rewrite -- -D warnings
echo "== tests";  cargo test --profile host --workspace
echo "== all tests passed in $(( $(date +%s) - start ))s"
