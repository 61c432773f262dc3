#!/usr/bin/env bash
# Regenerates BENCHMARKS.md (issue 10): every figure, one command.
#
#   bash scripts/bench.sh              # full run (~5-10 min on 2 cores)
#   QUICK=1 bash scripts/bench.sh      # quick mode: fewer, shorter samples (~2 min)
#   OUT=/tmp/b.md bash scripts/bench.sh
#   SERVE=0 bash scripts/bench.sh      # skip the data plane benchmark
#
# Builds the five filters and jose-bench (wasm, release) and the benchmark
# crate (host profile), installs openssl/wrk/binaryen if absent (best
# effort), runs the data plane benchmark (scripts/bench-serve.sh) when it
# exists, then the in-process benchmarks (benches/), which write the report.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
OUT=${OUT:-BENCHMARKS.md}
QUICK=${QUICK:-0}
SERVE=${SERVE:-1}
# Callgrind breakdown of these cases (full mode, when valgrind is installed).
# `ID:empty` profiles the same requests through an empty chain, `ID:native`
# the native cores.
PROFILE_CASES=${PROFILE_CASES-fault-injection fault-injection:empty fault-injection:native custom-metrics-3x6 custom-metrics-3x6:native}
PROFILE_REQUESTS=${PROFILE_REQUESTS:-1000}

bash scripts/setup.sh >/dev/null

# Tools: best effort (no root, no network: the report says what is missing).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v wrk >/dev/null || missing+=(wrk)
command -v wasm-opt >/dev/null || missing+=(binaryen)
[ "$QUICK" = 1 ] || command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "== installing ${missing[*]} (best effort)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo -n"
  { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 \
    || echo "   (could not install ${missing[*]}; continuing without)"
fi

echo "== building the .wasm artifacts (release) and jose-bench"
cargo build -q --release --target wasm32-wasip1 \
  -p jwt-authn -p rbac -p header-router -p fault-injection -p custom-metrics -p jose-bench
echo "== building the benchmarks (host profile)"
# --workspace: the same feature unification as every other host build (a
# `-p` build resolves features differently and rebuilds wasmtime).
cargo build -q --profile host --workspace

if [ "$QUICK" = 1 ]; then
  args=(--out "$OUT" --command "QUICK=1 bash scripts/bench.sh" --quick)
else
  args=(--out "$OUT" --command "bash scripts/bench.sh")
  # Instructions and host calls per request (callgrind, deterministic).
  if command -v valgrind >/dev/null; then args+=(--instructions); fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$SERVE" != 1 ]; then
  args+=(--serve-note "not measured (SERVE=0)")
elif [ ! -f scripts/bench-serve.sh ]; then
  args+=(--serve-note "not measured (the local data plane, \`wasmesh serve\` and scripts/bench-serve.sh, is not merged yet)")
elif ! command -v wrk >/dev/null; then
  args+=(--serve-note "not measured (wrk is not installed)")
else
  echo "== data plane: scripts/bench-serve.sh (the demo's five-filter chain with a valid token vs an empty chain)"
  # Shorter than its defaults to keep this command within ~10 minutes.
  dur=5s; rep=3; load=20s
  [ "$QUICK" = 1 ] && { dur=2s; rep=1; load=5s; }
  if DURATION=$dur REPEAT=$rep LOAD_DURATION=$load \
       bash scripts/bench-serve.sh --markdown > "$tmp/serve.txt" 2>"$tmp/serve.err"; then
    args+=(--serve-output "$tmp/serve.txt")
  else
    tail -20 "$tmp/serve.err" >&2
    args+=(--serve-note "not measured (scripts/bench-serve.sh failed: $(tail -1 "$tmp/serve.err" | tr -d '|`'))")
  fi
fi

if [ "$QUICK" != 1 ] && [ -n "$PROFILE_CASES" ] && command -v valgrind >/dev/null; then
  echo "== callgrind (in parallel): $PROFILE_CASES ($PROFILE_REQUESTS requests each)"
  cg_pids=()
  for c in $PROFILE_CASES; do
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$c" \
      --toggle-collect='wasmesh_benchmarks::harness::WasmChain::run' \
      --toggle-collect='wasmesh_benchmarks::native::NativeChain::run' \
      target/host/wasmesh-benchmarks --run-case "$c" "$PROFILE_REQUESTS" > "$tmp/cg.$c.log" 2>&1 &
    cg_pids+=($!)
  done
  i=0
  for c in $PROFILE_CASES; do
    if wait "${cg_pids[$i]}"; then
      args+=(--callgrind "$c=$tmp/cg.$c=$PROFILE_REQUESTS")
    else
      echo "   (callgrind of $c failed)"; tail -5 "$tmp/cg.$c.log"
    fi
    i=$((i + 1))
  done
fi

echo "== in-process benchmarks"
target/host/wasmesh-benchmarks "${args[@]}"
echo "== wrote $OUT in $(( $(date +%s) - start ))s"
