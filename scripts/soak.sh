#!/usr/bin/env bash
# Soak runs (on demand; the test command runs a 20,000-request version).
#
#   bash scripts/soak.sh                 # 1,000,000 requests through the five-filter chain in the harness
#   WASMESH_SOAK_REQUESTS=200000 bash scripts/soak.sh
#   bash scripts/soak.sh --serve [MINUTES]   # `wasmesh serve` (its demo chain) at moderate load on loopback
#                                        # (default 10 min; scripts/soak_serve.py, SOAK_RPS=200 ...)
#
# The harness run prints, at 20 checkpoints, the linear memory of each VM and
# the process RSS, and fails if linear memory changes after warm-up or RSS
# grows by 32 MiB or more. Output is kept in target/soak-harness.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=harness
minutes=10
case "${1:-}" in
  --serve) mode=serve; minutes=${2:-10} ;;
  "") ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
bash scripts/build-wasm.sh
mkdir -p target

if [ "$mode" = harness ]; then
  cargo test --profile host -p wasmesh --test soak_chain soak_million -- --ignored --nocapture 2>&1 \
    | tee target/soak-harness.log
  exit "${PIPESTATUS[0]}"
fi

# --serve: the local data plane at moderate load, loopback only, bounded.
cargo build --profile host -p wasmesh-cli
bin=target/host/wasmesh
if ! "$bin" --help 2>&1 | grep -q '\bserve\b'; then
  echo "wasmesh serve is not available in this build (the local data plane has not landed yet)" >&2
  exit 3
fi
exec python3 scripts/soak_serve.py "$bin" "$minutes"
