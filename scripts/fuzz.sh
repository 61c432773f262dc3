#!/usr/bin/env bash
# Coverage-guided fuzzing of wasmesh with libFuzzer (cargo-fuzz), on demand.
# The test command runs a short, non-instrumented smoke run of the same
# targets (fuzz/tests/smoke.rs); this script runs them for longer.
#
#   bash scripts/fuzz.sh                      # every target, 60 s each
#   bash scripts/fuzz.sh --secs 600 jwt_token rbac_request
#   bash scripts/fuzz.sh --list
#   bash scripts/fuzz.sh --replay FILE TARGET # run one input (e.g. a crash) natively
#
# Works on the stable toolchain: cargo-fuzz passes -Z flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz when missing. The working
# corpus is fuzz/corpus/<target> (seeded from the committed fuzz/seeds/);
# crashes land in fuzz/libfuzzer/artifacts/<target>/ — turn each into a file
# under fuzz/regressions/<target>/ (replayed by the test command) and fix it.
# The `hostcalls` target builds the wasmtime harness with instrumentation
# (a long first build). A summary per target goes to target/fuzz-summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=60
sanitizer=${FUZZ_SANITIZER:-none}
targets=()
all=(jwt_config jwt_token jwks rbac_config rbac_request router_config router_request
     fault_config fault_request metrics_config metrics_attribute jose_differential hostcalls)
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --list) printf '%s\n' "${all[@]}"; exit 0 ;;
    --replay)
      file=$2; target=$3
      exec cargo run --profile host -q -p wasmesh-fuzz --example replay -- "$target" "$file" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
summary=target/fuzz-summary.txt
mkdir -p target
: > "$summary"
for t in "${targets[@]}"; do
  features=()
  # hostcalls: the instrumented wasmtime harness, in a target dir of its own
  # (the feature would otherwise rebuild the native targets' crates).
  [ "$t" = hostcalls ] && features=(--features host --target-dir fuzz/libfuzzer/target/hostcalls)
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  [ -d fuzz/regressions/"$t" ] && cp -n fuzz/regressions/"$t"/* "$corpus"/ 2>/dev/null || true
  log=target/fuzz-$t.log
  echo "== $t: ${secs}s (log $log)"
  set +e
  cargo fuzz run --fuzz-dir fuzz/libfuzzer -s "$sanitizer" "${features[@]}" "$t" "$corpus" -- \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  crashes=$(ls fuzz/libfuzzer/artifacts/"$t"/ 2>/dev/null | wc -l)
  line="$t: exit $rc, ${execs:-?} executions in ${secs}s, coverage ${cov:-?} edges, corpus $(ls "$corpus" | wc -l) inputs, crash artifacts $crashes"
  echo "$line" | tee -a "$summary"
  if [ $rc -ne 0 ]; then tail -30 "$log"; fi
done
echo "== summary (target/fuzz-summary.txt)"; cat "$summary"
