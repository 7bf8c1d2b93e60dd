#!/usr/bin/env python3
"""Writes the benchmark fixture (every strategy) to the path given: 1,000 flags, or as many as
the second argument says. Used by benches/load.sh, idle.sh, console.sh and memory.sh."""
import sys
out = ["segments:", "  internal: [{attribute: email, operator: STR_ENDS_WITH, values: ['@example.com']}]",
       "  beta: [{attribute: beta, operator: IN, values: ['true']}]", "feature_flags:"]
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1000):
    k = f"flag_{i:04d}"
    if i % 4 == 0:
        out += [f"  {k}:", "    default_value: false", "    constraints: [{attribute: plan, operator: IN, values: [pro, team]}]",
                f"    rollout_strategy: {{type: percentage, percentage: {i % 101}}}"]
    elif i % 4 == 1:
        out += [f"  {k}:", "    default_value: false", "    rollout_strategy:", "      type: gradual", "      stages:",
                "        - {percentage: 5, duration: 24h, criteria: internal}", "        - {percentage: 25, duration: 48h, criteria: beta}",
                "        - {percentage: 100, duration: permanent}"]
    elif i % 4 == 2:
        out += [f"  {k}:", "    type: variant", "    variants: {control: a, treatment: b}", "    default_variant: control",
                "    rollout_strategy: {type: ab_test, traffic_split: {control: 50, treatment: 50}}"]
    else:
        out += [f"  {k}:", "    default_value: true", "    constraints: [{segment: beta}]"]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
