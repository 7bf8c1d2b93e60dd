#!/usr/bin/env bash
# Memory benchmark: the resident set of a release server started on the fixture of N flags
# (default 10,000; benches/fixture.py), 1 s and 15 s after it is ready (the allocator returns
# freed pages within ~10 s) and after 2,000 evaluations, with the time the first compile took
# (from its log line). Needs python3, curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
N=${N:-10000}
FORMAT=${FORMAT:-yaml}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --profile "$PROFILE" --quiet --bin toggled
python3 benches/fixture.py "$work/flags.$FORMAT" "$N"
TOGGLED_LOG=info target/$PROFILE/toggled serve --listen 127.0.0.1:0 --flags "$work/flags.$FORMAT" \
  --database "sqlite://$work/toggled.db" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 300); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
sleep 1
rss() { awk -v what="$1" '$1 == what":" {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status"; }
echo "fixture: $N flags, $(wc -c < "$work/flags.$FORMAT") bytes"
echo "1 s after start: RSS $(rss VmRSS), peak $(rss VmHWM)"
sleep 14
echo "15 s after start: RSS $(rss VmRSS), peak $(rss VmHWM)"
for i in $(seq 1 2000); do echo "{\"flag\":\"flag_$(printf %04d $((i % N)))\",\"context\":{\"targetingKey\":\"u$i\",\"plan\":\"pro\"}}"; done > "$work/bodies"
while read -r body; do curl -s -o /dev/null -X POST "$base/evaluate" -d "$body"; done < "$work/bodies"
echo "after 2,000 evaluations: RSS $(rss VmRSS), peak $(rss VmHWM)"
grep -o 'compile_ms=[0-9.]*' "$work/err" | head -1 || true
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)"
