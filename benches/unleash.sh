#!/usr/bin/env bash
# Unleash APIs benchmark on the 1,000-flag fixture (benches/fixture.py), method of load.sh: the
# server pinned to core 0, wrk -t1 pinned to core 1, a new user per request.
#   1. GET /api/frontend: every enabled flag for one context (what a browser SDK fetches);
#   2. GET /api/frontend/features/{name}: one flag (the first enabled for user-1);
#   3. GET /api/client/features answered 304 (a server SDK's poll with the current ETag),
#      beside POST /evaluate of one flag (load.lua), which it must not cost more than.
# EDGE=path/to/unleash-edge runs the same frontend loads against Unleash Edge (offline, on a
# bootstrap written by `toggled export unleash`, one actix worker on core 0; see
# ../shared/edge-benchmark.md for building v19). BIN overrides toggled's binary.
# Needs: wrk, taskset, python3, curl. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
DURATION=${DURATION:-10s}
BIN=${BIN:-target/$PROFILE/toggled}
CONNECTIONS=${CONNECTIONS:-8}
export FRONTEND_TOKEN='*:development.benchfrontend' CLIENT_TOKEN='default:development.benchclient'
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
[ -n "${BIN_BUILT:-}" ] || cargo build --profile "$PROFILE" --quiet --bin toggled
python3 benches/fixture.py "$work/flags.yaml"

run() { # label, url, lua script
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s "$3" "$2" > /dev/null
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$3" --latency "$2" > "$work/wrk"
  printf '%-44s %10s req/s   p50 %8s   p99 %8s   non-2xx/3xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk")" "$(awk '$1 == "50%" {print $2}' "$work/wrk")" \
    "$(awk '$1 == "99%" {print $2}' "$work/wrk")" "$(awk '/Non-2xx/ {print $5}' "$work/wrk" | grep . || echo 0)"
}

taskset -c 0 "$BIN" serve --listen 127.0.0.1:0 --flags "$work/flags.yaml" --database "sqlite://$work/t.db" \
  --client-tokens "svc:$CLIENT_TOKEN" --frontend-tokens "web:$FRONTEND_TOKEN" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$work/out")
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), wrk -t1 -c$CONNECTIONS -d$DURATION"
query='userId=user-1&properties%5Bemail%5D=u1%40example.com&properties%5Bplan%5D=pro&properties%5Bbeta%5D=true'
echo "toggled: /api/frontend lists $(curl -s "$base/api/frontend?$query" -H "Authorization: $FRONTEND_TOKEN" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["toggles"]))') enabled flags for user-1 ($(curl -s "$base/api/frontend?$query" -H "Authorization: $FRONTEND_TOKEN" | wc -c) bytes)"
run "toggled GET /api/frontend" "$base/api/frontend" benches/frontend.lua
one=$(curl -s "$base/api/frontend?$query" -H "Authorization: $FRONTEND_TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["toggles"][0]["name"])')
run "toggled GET /api/frontend/features/$one" "$base/api/frontend/features/$one" benches/frontend.lua
ETAG=$(curl -s -D - -o /dev/null "$base/api/client/features" -H "Authorization: $CLIENT_TOKEN" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
export ETAG
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/client/features" -H "Authorization: $CLIENT_TOKEN" -H "If-None-Match: $ETAG")
[ "$status" = 304 ] || { echo "expected 304 for the current ETag, got $status"; exit 1; }
run "toggled GET /api/client/features (304)" "$base/api/client/features" benches/poll304.lua
run "toggled POST /evaluate (one flag)" "$base/evaluate" benches/load.lua
echo "toggled peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"

if [ -n "${EDGE:-}" ]; then
  "$BIN" export unleash "$work/edge-features.json" --flags "$work/flags.yaml" 2> "$work/notes"
  python3 - "$work/edge-features.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for f in doc["features"]:
    f["project"] = "default"  # Edge's offline client API serves features that name a project
json.dump(doc, open(sys.argv[1], "w"))
PY
  port=$((30000 + RANDOM % 20000))
  taskset -c 0 "$EDGE" -i 127.0.0.1 -p "$port" -w 1 offline -b "$work/edge-features.json" \
    -c "$CLIENT_TOKEN" -f "$FRONTEND_TOKEN" > "$work/edge.out" 2>&1 &
  epid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/internal-backstage/health" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "edge: /api/frontend lists $(curl -s "http://127.0.0.1:$port/api/frontend?$query" -H "Authorization: $FRONTEND_TOKEN" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["toggles"]))') enabled flags for user-1"
  run "edge    GET /api/frontend" "http://127.0.0.1:$port/api/frontend" benches/frontend.lua
  run "edge    GET /api/frontend/features/$one" "http://127.0.0.1:$port/api/frontend/features/$one" benches/frontend.lua
  echo "edge peak RSS $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$epid/status)"
  # The same answers? Edge evaluates toggled's projection with Unleash's own evaluator.
  python3 - "$base" "http://127.0.0.1:$port" "$work/notes" <<'PY'
import json, os, re, sys, urllib.request
# Flags whose projection `toggled export unleash` names as inexact are compared apart.
noted = {m.group(1) for m in re.finditer(r"^note: (\S+): ", open(sys.argv[3]).read(), re.M)}
def toggles(base, user):
    q = f"userId=user-{user}&properties%5Bemail%5D=u{user}%40example.com&properties%5Bplan%5D=pro&properties%5Bbeta%5D=true"
    req = urllib.request.Request(f"{base}/api/frontend?{q}", headers={"Authorization": os.environ["FRONTEND_TOKEN"]})
    body = json.load(urllib.request.urlopen(req))
    return {t["name"]: (t["variant"]["name"], json.dumps(t["variant"].get("payload"))) for t in body["toggles"]}
def split(answers):
    return ({k: v for k, v in answers.items() if k not in noted}, {k: v for k, v in answers.items() if k in noted})
same = noted_differ = 0
for u in range(200):
    (t, tn), (e, en) = split(toggles(sys.argv[1], u)), split(toggles(sys.argv[2], u))
    same += t == e
    noted_differ += tn != en
print(f"same answers: {same} of 200 users get the same enabled flags and variants from toggled and Edge "
      f"on the {1000 - len(noted)} flags exported exactly; on the {len(noted)} named inexact, {noted_differ} users differ")
PY
fi
kill $pid
