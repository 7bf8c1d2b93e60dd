"""Validates YAML files against a JSON Schema with the `jsonschema` package (2020-12).

usage: check.py SCHEMA.json FILE... ; prints `FILE: valid` or `FILE: invalid: <first error>` per
file and always exits 0 unless the schema itself is not a valid 2020-12 schema (exit 2)."""
import json
import sys

import jsonschema
import yaml

schema = json.load(open(sys.argv[1]))
try:
    jsonschema.Draft202012Validator.check_schema(schema)
except jsonschema.SchemaError as e:
    print(f"schema: invalid: {e.message}")
    sys.exit(2)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    document = yaml.safe_load(open(path))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path)
        print(f"{path}: invalid: {where}: {errors[0].message}")
    else:
        print(f"{path}: valid")
