#!/usr/bin/env python3
"""Writes the benchmark fixture (every strategy) to the path given: 1,000 flags, or as many as
the second argument says. A path ending in `.json` gets the same document as JSON (a flag file
may be either). Used by benches/load.sh, idle.sh, console.sh and memory.sh."""
import json
import sys

n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
segments = {"internal": [{"attribute": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"]}],
            "beta": [{"attribute": "beta", "operator": "IN", "values": ["true"]}]}
flags = {}
for i in range(n):
    if i % 4 == 0:
        flag = {"default_value": False, "constraints": [{"attribute": "plan", "operator": "IN", "values": ["pro", "team"]}],
                "rollout_strategy": {"type": "percentage", "percentage": i % 101}}
    elif i % 4 == 1:
        flag = {"default_value": False, "rollout_strategy": {"type": "gradual", "stages": [
            {"percentage": 5, "duration": "24h", "criteria": "internal"},
            {"percentage": 25, "duration": "48h", "criteria": "beta"},
            {"percentage": 100, "duration": "permanent"}]}}
    elif i % 4 == 2:
        flag = {"type": "variant", "variants": {"control": "a", "treatment": "b"}, "default_variant": "control",
                "rollout_strategy": {"type": "ab_test", "traffic_split": {"control": 50, "treatment": 50}}}
    else:
        flag = {"default_value": True, "constraints": [{"segment": "beta"}]}
    flags[f"flag_{i:04d}"] = flag

if sys.argv[1].endswith(".json"):
    text = json.dumps({"segments": segments, "feature_flags": flags}, indent=2) + "\n"
else:
    # Block style for the flags and their stages, flow style inside, as people write it.
    def flow(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {flow(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(flow(x) for x in v) + "]"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str) and (v.startswith("@") or v in ("true", "false")):
            return f"'{v}'"
        return str(v)
    out = ["segments:"] + [f"  {k}: {flow(v)}" for k, v in segments.items()] + ["feature_flags:"]
    for key, flag in flags.items():
        out.append(f"  {key}:")
        for field, value in flag.items():
            strategy = value if field == "rollout_strategy" else {}
            if strategy.get("type") == "gradual":
                out += [f"    {field}:", "      type: gradual", "      stages:"]
                out += [f"        - {flow(stage)}" for stage in strategy["stages"]]
            else:
                out.append(f"    {field}: {flow(value)}")
    text = "\n".join(out) + "\n"
open(sys.argv[1], "w").write(text)
