"""Validates an OpenAPI document (3.1) with openapi-spec-validator.

usage: check.py FILE ; prints `valid` or the first error and exits 1."""
import json
import sys

from openapi_spec_validator import validate

try:
    validate(json.load(open(sys.argv[1])))
except Exception as e:  # the validator raises its own error types; all of them mean invalid
    print(f"invalid: {e}")
    sys.exit(1)
print("valid")
