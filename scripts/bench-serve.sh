#!/usr/bin/env bash
# Benchmark (not a test) of `wasmesh serve`: requests/s and p50/p99 latency
# through a filter chain against the same server with an empty chain, at 1
# and 64 connections, with wrk; then a load test (>= 100,000 requests at 64
# connections through the chain) that reports errors and RSS samples.
#
#   bash scripts/bench-serve.sh            # DURATION=10s per run, LOAD_DURATION=40s
#   CHAIN=path/to/serve-chain.yaml bash scripts/bench-serve.sh
#
# Everything runs on loopback. The machine has 2 cores shared by wrk, the
# upstream and the proxy, so absolute figures are low; compare the columns.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
LOAD_DURATION=${LOAD_DURATION:-40s}
WORKERS=${WORKERS:-2}
UP=127.0.0.1:18081
EMPTY=127.0.0.1:18090
CHAINED=127.0.0.1:18091

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
bash scripts/build-wasm.sh >/dev/null 2>&1
cargo build -q --profile host -p wasmesh --bin wasmesh --example serve_upstream

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listening on $1" >&2; exit 1
}

# The chain: rbac with the example bookstore policies (GET /healthz is
# allowed for anyone) and body_rewrite (upper-cases the response body).
if [ -z "${CHAIN:-}" ]; then
  CHAIN=$tmp/chain.yaml
  {
    echo "listen: $CHAINED"
    echo "workers: $WORKERS"
    echo "access_log: off"
    echo "chain:"
    printf '  - name: rbac\n    wasm: rbac\n    config: %s\n' "$(tr -d '\n' < examples/rbac/config.json)"
    echo "  - {name: rewrite, wasm: body_rewrite, config: response}"
    echo "clusters: {upstream: {endpoints: [\"$UP\"]}}"
  } > "$CHAIN"
fi
cat > "$tmp/empty.yaml" <<YAML
listen: $EMPTY
workers: $WORKERS
access_log: off
clusters: {upstream: {endpoints: ["$UP"]}}
YAML

target/host/examples/serve_upstream "$UP" 1 2>/dev/null & pids+=($!)
target/host/wasmesh serve --quiet --listen "$EMPTY" "$tmp/empty.yaml" 2>"$tmp/empty.log" & pids+=($!)
target/host/wasmesh serve --quiet --listen "$CHAINED" --access-log off "$CHAIN" 2>"$tmp/chain.log" & chain_pid=$!; pids+=($chain_pid)
wait_port "$UP"; wait_port "$EMPTY"; wait_port "$CHAINED"

run_wrk() { # addr conns duration -> "rps p50 p99 requests errors"
  local threads=1; [ "$2" -gt 1 ] && threads=2
  wrk -t"$threads" -c"$2" -d"$3" --latency "http://$1/healthz" > "$tmp/wrk.out" 2>&1 || true
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /requests in/ {n=$1}
    /Non-2xx/ {bad+=$NF}
    /Socket errors/ {gsub(",",""); bad+=$4+$6+$8+$10}
    END {printf "%s %s %s %s %d\n", rps, p50, p99, n, bad}' "$tmp/wrk.out"
}

echo "wasmesh serve benchmark: $WORKERS worker(s), wrk $DURATION per run, $(nproc) cores shared with wrk and the upstream"
printf '\n%-12s %-6s %12s %10s %10s %10s\n' chain conns "requests/s" p50 p99 errors
for conns in 1 64; do
  for which in empty chain; do
    addr=$EMPTY; [ "$which" = chain ] && addr=$CHAINED
    run_wrk "$addr" "$conns" 2s >/dev/null   # warm up
    read -r rps p50 p99 n bad <<<"$(run_wrk "$addr" "$conns" "$DURATION")"
    printf '%-12s %-6s %12s %10s %10s %10s\n' "$which" "$conns" "$rps" "$p50" "$p99" "$bad"
    eval "rps_${which}_${conns}=$rps"
  done
  awk -v a="$(eval echo \$rps_chain_$conns)" -v b="$(eval echo \$rps_empty_$conns)" -v c="$conns" \
    'BEGIN {printf "%-12s %-6s %11.1f%%\n", "chain/empty", c, 100*a/b}'
done

echo
echo "load test: 64 connections for $LOAD_DURATION through the chain; RSS of the proxy (KiB) every 2 s:"
rss() { awk '/VmRSS/ {print $2}' "/proc/$chain_pid/status"; }
echo "  before: $(rss)"
wrk -t2 -c64 -d"$LOAD_DURATION" --latency "http://$CHAINED/healthz" > "$tmp/load.out" 2>&1 &
wrk_pid=$!
samples=()
while kill -0 "$wrk_pid" 2>/dev/null; do sleep 2; samples+=("$(rss)"); done
wait "$wrk_pid" || true
echo "  during: ${samples[*]}"
echo "  after:  $(rss)"
awk '/requests in/ {print "  requests:", $1, "in", $4} /Non-2xx/ {print "  non-2xx:", $NF} /Socket errors/ {print " ", $0} /Requests\/sec/ {print "  requests/s:", $2}' "$tmp/load.out"
grep -q "Non-2xx\|Socket errors" "$tmp/load.out" && echo "  ERRORS (see above)" || echo "  errors: 0"
