#!/usr/bin/env bash
# Console benchmark: how fast the web console shows the 1,000-flag fixture in Debian's Chromium
# from loopback (release build). Seven reloads of a signed-in tab; prints, per reload, the first
# contentful paint, the time the flag list is built and the time it is painted (the frame after;
# all from navigation start),
# then the medians, and the bytes of the three files. Needs: chromium and playwright-core in
# target/js (.ci/deps installs both), python3. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --profile "$PROFILE" --quiet --bin toggled
python3 benches/fixture.py "$work/flags.yaml"
TOGGLED_ADMIN_TOKENS="ops:bench-console-token" target/$PROFILE/toggled serve --listen 127.0.0.1:0 \
  --flags "$work/flags.yaml" --database "sqlite://$work/toggled.db" > "$work/out" 2> "$work/err" &
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
cp tests/ui/console.mjs target/js/console.mjs
(cd target/js && TOGGLED_URL="$base" TOGGLED_TOKEN=bench-console-token node console.mjs --measure) | python3 -c '
import json, statistics, sys
runs = json.load(sys.stdin)["runs"]
for r in runs:
    print("first paint %5.1f ms   list built %5.1f ms   list painted %5.1f ms   rows %d   fetches (ms) %s" % (r["first_paint_ms"], r["list_ms"], r["painted_ms"], r["rows"], r["fetches"]))
print("median: first paint %.1f ms, list built %.1f ms, list painted %.1f ms" % tuple(
    statistics.median(r[k] for r in runs) for k in ("first_paint_ms", "list_ms", "painted_ms")))
'
for f in index.html app.js app.css; do printf '%s %s bytes\n' "$f" "$(curl -s "$base/ui$( [ $f = index.html ] || echo /$f )" | wc -c)"; done
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs)"
