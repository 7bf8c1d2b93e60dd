"""Unleash's Python server SDK (UnleashClient, from PyPI) against toggled's client API: the SDK
fetches /api/client/features, registers, and evaluates locally, as a Python service would.
Input on stdin: {"url", "token", "flags": [...], "contexts": [...]}. Output on stdout: for each
context, for each flag, {enabled, variant, payload} as the SDK answers them."""
import json
import sys
import tempfile

from UnleashClient import UnleashClient

request = json.load(sys.stdin)
with tempfile.TemporaryDirectory() as cache:
    client = UnleashClient(
        url=f"{request['url']}/api",
        app_name="toggled-test-python",
        custom_headers={"Authorization": request["token"]},
        refresh_interval=60,
        metrics_interval=600,
        cache_directory=cache,
    )
    client.initialize_client(fetch_toggles=True)
    if not client.is_initialized:
        sys.exit("the SDK did not initialise")
    out = []
    for context in request["contexts"]:
        answers = {}
        for flag in request["flags"]:
            variant = client.get_variant(flag, context)
            answers[flag] = {
                "enabled": client.is_enabled(flag, context),
                "variant": variant["name"],
                "payload": variant.get("payload"),
            }
        out.append(answers)
    client.destroy()
json.dump(out, sys.stdout)
