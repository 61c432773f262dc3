#!/usr/bin/env bash
# The main job: builds everything and runs the demo.
# (Until the local data plane lands this runs the example scenarios.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
cargo build --profile host -p wasmesh
./target/host/wasmesh test examples/
