#!/usr/bin/env bash
# Load benchmark: toggled (release, pinned to core 0, 1,000 flags) against a bare axum handler
# returning a same-size body (the ceiling), driven by wrk pinned to core 1 with varying keys.
# Prints requests/s, p99 and peak RSS for both, then how long a flag file change takes to show.
# Needs: wrk, taskset (util-linux), python3. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-production} # the image's build (Cargo.toml); PROFILE=release builds faster
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --profile "$PROFILE" --quiet --bin toggled --example ceiling
python3 benches/fixture.py "$work/flags.yaml"

start() { # name, command...
  local name=$1; shift
  taskset -c 0 "$@" > "$work/$name.out" 2> "$work/$name.err" &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  echo "$pid $(sed -n 's/^listening on //p' "$work/$name.out")"
}

drive() { # name, pid, base url
  local name=$1 pid=$2 base=$3
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s benches/load.lua "$base/evaluate" >/dev/null # warm-up
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s benches/load.lua --latency "$base/evaluate" > "$work/$name.wrk"
  local rps p99 rss
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.wrk")
  rss=$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")
  non2xx=$(awk '/Non-2xx/ {print $4}' "$work/$name.wrk")
  printf '%-8s %12s req/s   p99 %8s   peak RSS %10s   non-2xx %s\n' "$name" "$rps" "$p99" "$rss" "${non2xx:-0}"
}

read -r tpid tbase < <(start toggled target/$PROFILE/toggled serve --listen 127.0.0.1:0 --flags "$work/flags.yaml" --database "sqlite://$work/toggled.db" --reload-debounce 5ms)
read -r cpid cbase < <(start ceiling target/$PROFILE/examples/ceiling 127.0.0.1:0)
echo "machine: $(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs), wrk -c$CONNECTIONS -d$DURATION"
drive toggled "$tpid" "$tbase"
drive ceiling "$cpid" "$cbase"

# File change visibility: rewrite the file, poll /evaluate until the answer changes.
python3 - "$work/flags.yaml" "$tbase" <<'PY'
import json, os, sys, time, urllib.request
path, base = sys.argv[1], sys.argv[2]
text = open(path).read()
block = "  flag_0003:\n    default_value: {}\n"
def value():
    req = urllib.request.Request(base + "/evaluate", data=b'{"flag":"flag_0003","context":{"beta":"true"}}', method="POST")
    return json.load(urllib.request.urlopen(req))["value"]
samples, default = [], True
for i in range(20):
    before = value()
    new_default = not default
    text = text.replace(block.format(str(default).lower()), block.format(str(new_default).lower()))
    default = new_default
    with open(path + ".tmp", "w") as f:
        f.write(text)
    t0 = time.perf_counter()
    os.rename(path + ".tmp", path)
    while value() == before:
        if time.perf_counter() - t0 > 5:
            raise SystemExit("change not visible within 5 s")
    samples.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.05)
samples.sort()
print(f"file change visible after: median {samples[len(samples)//2]:.1f} ms, max {samples[-1]:.1f} ms (20 rewrites, 1,000 flags)")
PY
