"""Evaluates every flag type through the official OpenFeature Python SDK and its OFREP provider.

Usage: python check.py BASE_URL TOKEN. Prints one JSON object with each result, for the
integration test to assert on.
"""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

base, token = sys.argv[1], sys.argv[2]
api.set_provider(OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {token}"}))
client = api.get_client()
ctx = EvaluationContext(targeting_key="user-42", attributes={"country": "US", "plan": "pro"})


def details(d):
    return {
        "value": d.value,
        "variant": d.variant,
        "reason": str(d.reason.value if hasattr(d.reason, "value") else d.reason),
        "error_code": d.error_code.value if d.error_code else None,
        "metadata": dict(d.flag_metadata or {}),
    }


results = {
    "boolean": details(client.get_boolean_details("dark_mode", False, ctx)),
    "string": details(client.get_string_details("welcome_text", "fallback", ctx)),
    "integer": details(client.get_integer_details("max_items", 1, ctx)),
    "float": details(client.get_float_details("discount_rate", 0.5, ctx)),
    "object": details(client.get_object_details("theme", {}, ctx)),
    "disabled": details(client.get_boolean_details("checkout_v1", False, ctx)),
    "sunset": details(client.get_boolean_details("legacy_export", True, ctx)),
    "missing": details(client.get_boolean_details("no_such_flag", True, ctx)),
    "mismatch": details(client.get_integer_details("welcome_text", 7, ctx)),
    "caller_disabled": details(client.get_boolean_details("beta_footer", True, ctx)),
    "caller_default": details(client.get_string_details("region_promo", "caller's text", ctx)),
    "caller_matched": details(client.get_string_details("region_promo", "caller's text", EvaluationContext(targeting_key="u", attributes={"country": "DE"}))),
    "no_targeting_key": details(client.get_string_details("welcome_text", "fallback", EvaluationContext(attributes={"country": "CA"}))),
}
print(json.dumps(results))
