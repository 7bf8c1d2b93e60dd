#!/usr/bin/env bash
# Releases at scale: a store seeded with N deployed releases of C commits (~1 KB each; default
# 10,000 x 140, on /dev/shm), then POST /releases timed 50 times (p50, p90), GET /releases (one
# page) timed, and the resident set of the idle server against one on an empty store. Needs
# curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
N=${N:-10000}
C=${C:-140}
work=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --profile "$PROFILE" --quiet --bin toggled --example seed_releases
target/$PROFILE/examples/seed_releases "sqlite://$work/many.db" "$N" "$C"
echo "store: $N releases of $C commits, $(du -m "$work/many.db" | cut -f1) MB"
start() { # start NAME DATABASE -> sets base_NAME and pid_NAME
  TOGGLED_LOG=warn TOGGLED_ADMIN_TOKENS=ops:bench-secret-1 target/$PROFILE/toggled serve --listen 127.0.0.1:0 \
    --flags flags/feature-flags.yaml --database "$2" > "$work/$1.out" 2> "$work/$1.err" &
  eval "pid_$1=$!"
  for _ in $(seq 1 300); do grep -q "listening on" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  eval "base_$1=$(sed -n 's/^listening on //p' "$work/$1.out")"
}
start many "sqlite://$work/many.db"
start empty "sqlite://$work/empty.db"
auth=(-H 'Authorization: Bearer bench-secret-1')
for i in $(seq 1 50); do
  curl -s -o /dev/null -w '%{time_total}\n' "${auth[@]}" -X POST "$base_many/releases" \
    -d "{\"service\":\"bench-$i\",\"commits\":[\"feat: one\"]}"
done | sort -n > "$work/post"
echo "POST /releases: p50 $(awk 'NR==25{printf "%.1f ms", $1*1000}' "$work/post"), p90 $(awk 'NR==45{printf "%.1f ms", $1*1000}' "$work/post")"
echo "GET /releases (a page of 50): $(curl -s -o "$work/page" -w '%{time_total}' "${auth[@]}" "$base_many/releases" | awk '{printf "%.1f ms", $1*1000}'), $(wc -c < "$work/page") bytes"
curl -s -o /dev/null "${auth[@]}" "$base_many/releases/metrics"
curl -s -o /dev/null "${auth[@]}" "$base_empty/releases/metrics"
sleep 30 # idle: the allocator returns what reports read within its decay time
rss() { awk '$1 == "VmRSS:" {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }
echo "idle RSS: $(rss "$pid_many") with $N releases, $(rss "$pid_empty") on an empty store"
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)"
