#!/usr/bin/env bash
# Builds every .wasm artifact: the five filters (the names are a contract) and
# the test plugins used by the harness's own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --target wasm32-wasip1 \
  -p jwt-authn -p rbac -p header-router -p fault-injection -p custom-metrics \
  -p probe -p body-rewrite -p jose-bench
