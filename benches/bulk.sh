#!/usr/bin/env bash
# Bulk evaluation benchmark: POST /evaluate/all and the OFREP bulk route on the 1,000-flag
# fixture (benches/fixture.py), server pinned to core 0, wrk -t1 -c8 pinned to core 1, a new
# user per request. BIN overrides the binary (to compare builds). Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
DURATION=${DURATION:-10s}
BIN=${BIN:-target/$PROFILE/toggled}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
[ -n "${BIN_BUILT:-}" ] || cargo build --profile "$PROFILE" --quiet --bin toggled
python3 benches/fixture.py "$work/flags.yaml"
taskset -c 0 "$BIN" serve --listen 127.0.0.1:0 --flags "$work/flags.yaml" --database "sqlite://$work/t.db" \
  > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
bytes=$(curl -s -X POST "$base/evaluate/all" -d '{"context":{"targetingKey":"user-1"}}' | wc -c)
for route in /evaluate/all /ofrep/v1/evaluate/flags; do
  taskset -c 1 wrk -t1 -c8 -d2s -s benches/bulk.lua "$base$route" > /dev/null
  taskset -c 1 wrk -t1 -c8 -d"$DURATION" -s benches/bulk.lua --latency "$base$route" > "$work/wrk"
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk")
  printf '%-28s %10s req/s   p50 %8s   p99 %8s\n' "$route" "$rps" "$p50" "$p99"
done
echo "answer size (/evaluate/all): $bytes bytes; peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
