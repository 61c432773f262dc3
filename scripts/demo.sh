#!/usr/bin/env bash
# The README's first command: builds the five filters and wasmesh, then runs
# the demo (an identity provider, echo upstreams and `wasmesh serve` with
# jwt-authn -> rbac -> header-router -> fault-injection -> custom-metrics,
# configured by examples/demo/serve.yaml) and a checked tour of requests.
#
#   scripts/demo.sh          # the tour; exits non-zero if a step is not as expected
#   scripts/demo.sh --keep   # then keep everything running (proxy on :10000,
#                            # admin on :9901) and print curl commands with tokens
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo.sh: building the filters (.wasm) and wasmesh (first time: a few minutes)..." >&2
bash scripts/build-wasm.sh
cargo build --profile host -p wasmesh-cli --bin wasmesh
exec "${CARGO_TARGET_DIR:-target}/host/wasmesh" demo "$@"
