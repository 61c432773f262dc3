#!/usr/bin/env bash
# Benchmark (not a test) of `wasmesh serve`: requests/s and p50/p99 latency
# through the full five-filter chain of the demo (jwt-authn -> rbac ->
# header-router -> fault-injection -> custom-metrics, examples/demo/serve.yaml,
# with a valid demo token on every request) against the same server with an
# empty chain, at 1 and 64 connections, with wrk; then a load test (64
# connections through the chain, >= 100,000 requests) that reports errors and
# the proxy's RSS.
#
#   bash scripts/bench-serve.sh              # text tables
#   bash scripts/bench-serve.sh --markdown   # markdown tables (for BENCHMARKS.md)
#   DURATION=10s REPEAT=3 LOAD_DURATION=60s WORKERS=2 bash scripts/bench-serve.sh
#   CHAIN=my-serve.yaml bash scripts/bench-serve.sh   # another chain (its listen
#                                            # is overridden; cluster `upstream`)
#
# Everything runs on loopback: one upstream (serve/examples/
# serve_upstream.rs, one thread), the two proxies and wrk share the machine's
# cores, so absolute figures depend on it; compare the columns.
set -euo pipefail
cd "$(dirname "$0")/.."
MARKDOWN=0
for a in "$@"; do
  case "$a" in
    --markdown) MARKDOWN=1 ;;
    *) echo "usage: $0 [--markdown]" >&2; exit 2 ;;
  esac
done
DURATION=${DURATION:-10s}
# Each cell is the median of REPEAT runs, empty and chain alternating (the
# machine is shared: single runs vary a lot).
REPEAT=${REPEAT:-3}
LOAD_DURATION=${LOAD_DURATION:-60s}
WORKERS=${WORKERS:-2}
UP=127.0.0.1:18081
IDP=127.0.0.1:18082
EMPTY=127.0.0.1:18090
CHAINED=127.0.0.1:18091
CHAINED_ADMIN=127.0.0.1:18092
PATH_=/reviews/1

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
bash scripts/build-wasm.sh >/dev/null 2>&1
cargo build -q --profile host -p wasmesh-cli --bin wasmesh
cargo build -q --profile host -p wasmesh-serve --example serve_upstream

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listening on $1" >&2; exit 1
}

cat > "$tmp/empty.yaml" <<YAML
listen: $EMPTY
workers: $WORKERS
access_log: off
clusters: {upstream: {endpoints: ["$UP"]}}
YAML

target/host/examples/serve_upstream "$UP" 1 2>/dev/null & pids+=($!)
target/host/wasmesh serve --quiet "$tmp/empty.yaml" 2>"$tmp/empty.log" & pids+=($!)
AUTH=()
if [ -z "${CHAIN:-}" ]; then
  CHAIN_NAME="five filters"
  # The demo's configuration with the benchmark's ports: both reviews
  # clusters on the fast upstream, the demo's identity provider on $IDP.
  sed -e "s#^listen: .*#listen: $CHAINED#" -e "s#^admin: .*#admin: $CHAINED_ADMIN#" \
      -e "s#^workers: .*#workers: $WORKERS#" \
      -e "s#127.0.0.1:1800[12]#$UP#" -e "s#127.0.0.1:18080#$IDP#" \
      examples/demo/serve.yaml > "$tmp/full.yaml"
  target/host/wasmesh demo --keep --no-tour --idp-only --config "$tmp/full.yaml" >"$tmp/chain.out" 2>"$tmp/chain.log" & chain_pid=$!; pids+=($chain_pid)
  wait_port "$IDP"
  TOKEN=$(curl -sf "http://$IDP/token/alice")
  AUTH=(-H "authorization: Bearer $TOKEN")
else
  CHAIN_NAME=$(basename "$CHAIN" .yaml)
  target/host/wasmesh serve --quiet --listen "$CHAINED" --workers "$WORKERS" --access-log off "$CHAIN" 2>"$tmp/chain.log" & chain_pid=$!; pids+=($chain_pid)
fi
wait_port "$UP"; wait_port "$EMPTY"; wait_port "$CHAINED"
# Both must answer 200 (the chain: token verified, keys fetched).
for a in "$EMPTY" "$CHAINED"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${AUTH[@]}" "http://$a$PATH_")
  [ "$code" = 200 ] || { echo "http://$a$PATH_ answered $code, expected 200" >&2; cat "$tmp/chain.log" >&2; exit 1; }
done

run_wrk() { # addr conns duration -> "rps p50 p99 requests errors"
  local threads=1; [ "$2" -gt 1 ] && threads=2
  wrk -t"$threads" -c"$2" -d"$3" --latency "${AUTH[@]}" "http://$1$PATH_" > "$tmp/wrk.out" 2>&1 || true
  awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /requests in/ {n=$1}
    /Non-2xx/ {bad+=$NF}
    /Socket errors/ {gsub(",",""); bad+=$4+$6+$8+$10}
    END {printf "%s %s %s %s %d\n", rps, p50, p99, n, bad}' "$tmp/wrk.out"
}

if [ $MARKDOWN = 1 ]; then
  echo "wasmesh serve, $WORKERS worker(s), wrk: median of $REPEAT runs of ${DURATION}, $(nproc) cores shared by wrk, the upstream and the proxy; request: GET $PATH_ with a valid token"
  echo
  echo "| chain | connections | requests/s | p50 | p99 | errors | vs empty |"
  echo "|---|---|---|---|---|---|---|"
else
  echo "wasmesh serve benchmark: $WORKERS worker(s), wrk: median of $REPEAT runs of $DURATION, $(nproc) cores shared with wrk and the upstream"
  printf '\n%-14s %-6s %12s %10s %10s %8s %9s\n' chain conns "requests/s" p50 p99 errors "vs empty"
fi
for conns in 1 64; do
  for which in empty chain; do
    addr=$EMPTY; [ "$which" = chain ] && addr=$CHAINED
    run_wrk "$addr" "$conns" 2s >/dev/null   # warm up
    : > "$tmp/runs.$which.$conns"
  done
  for _ in $(seq 1 "$REPEAT"); do
    for which in empty chain; do
      addr=$EMPTY; [ "$which" = chain ] && addr=$CHAINED
      run_wrk "$addr" "$conns" "$DURATION" >> "$tmp/runs.$which.$conns"
    done
  done
  empty_rps=
  for which in empty chain; do
    name=empty; [ "$which" = chain ] && name=$CHAIN_NAME
    # The run with the median requests/s; errors summed over all runs.
    bad=$(awk '{b+=$5} END {print b+0}' "$tmp/runs.$which.$conns")
    read -r rps p50 p99 n _ <<<"$(sort -g -k1,1 "$tmp/runs.$which.$conns" | awk -v m=$(( (REPEAT + 1) / 2 )) 'NR==m')"
    if [ "$which" = empty ]; then empty_rps=$rps; ratio="100%"; else
      ratio=$(awk -v a="$rps" -v b="$empty_rps" 'BEGIN {printf "%.0f%%", 100*a/b}'); fi
    if [ $MARKDOWN = 1 ]; then
      echo "| $name | $conns | $rps | $p50 | $p99 | $bad | $ratio |"
    else
      printf '%-14s %-6s %12s %10s %10s %8s %9s\n' "$name" "$conns" "$rps" "$p50" "$p99" "$bad" "$ratio"
    fi
  done
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$chain_pid/status"; }
before=$(rss)
wrk -t2 -c64 -d"$LOAD_DURATION" --latency "${AUTH[@]}" "http://$CHAINED$PATH_" > "$tmp/load.out" 2>&1 &
wrk_pid=$!
samples=()
while kill -0 "$wrk_pid" 2>/dev/null; do sleep 2; samples+=("$(rss)"); done
wait "$wrk_pid" || true
after=$(rss)
read -r lrps lp50 lp99 ln lbad <<<"$(awk '
    /Requests\/sec/ {rps=$2}
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /requests in/ {n=$1}
    /Non-2xx/ {bad+=$NF}
    /Socket errors/ {gsub(",",""); bad+=$4+$6+$8+$10}
    END {printf "%s %s %s %s %d\n", rps, p50, p99, n, bad}' "$tmp/load.out")"
echo
if [ $MARKDOWN = 1 ]; then
  echo "Load test ($CHAIN_NAME, 64 connections, $LOAD_DURATION): $ln requests, $lbad errors, $lrps requests/s, p50 $lp50, p99 $lp99."
  echo "Proxy RSS (KiB): before $before; every 2 s: ${samples[*]}; after $after."
else
  echo "load test: $CHAIN_NAME, 64 connections for $LOAD_DURATION"
  echo "  requests: $ln  errors: $lbad  requests/s: $lrps  p50: $lp50  p99: $lp99"
  echo "  RSS of the proxy (KiB): before $before"
  echo "  every 2 s: ${samples[*]}"
  echo "  after: $after"
fi
[ "${ln:-0}" -ge 100000 ] || echo "note: fewer than 100,000 requests; raise LOAD_DURATION" >&2
[ "$lbad" = 0 ] || { echo "load test had errors" >&2; exit 1; }
