"""JSON Schemas of the kinds: generated from the models, exported, and used for the first pass.

The schema pass checks every document against its kind's schema and turns each jsonschema error
into a located, actionable message. Messages never repeat the value of a secret field.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from cockpit.config.diagnostics import Diagnostics, did_you_mean
from cockpit.config.models import API_VERSION
from cockpit.config.source import SourceDocument
from cockpit.config.descriptor import Descriptor, Registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URL = "https://cockpit.dev/schemas/v1/"
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


def schema_file_name(kind: str) -> str:
    return f"{kind}.schema.json"


def kind_schema(descriptor: Descriptor) -> dict[str, Any]:
    """The JSON Schema of one kind, as committed under `schemas/`."""
    body = descriptor.model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_BASE_URL + schema_file_name(descriptor.kind),
        **body,
    }


def render_schema(descriptor: Descriptor) -> str:
    return json.dumps(kind_schema(descriptor), indent=2, sort_keys=True) + "\n"


def export_schemas(registry: Registry, directory: Path) -> list[Path]:
    """Write `<Kind>.schema.json` for every kind; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for descriptor in registry:
        target = directory / schema_file_name(descriptor.kind)
        target.write_text(render_schema(descriptor), encoding="utf-8")
        written.append(target)
    return written


@cache
def _validator(descriptor: Descriptor) -> jsonschema.protocols.Validator:
    schema = kind_schema(descriptor)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def check_envelope(
    document: SourceDocument, registry: Registry, diagnostics: Diagnostics
) -> Descriptor | None:
    """The document is a mapping with a known kind; returns its descriptor, or None."""
    data = document.data
    known = registry.kinds()
    if not isinstance(data, dict):
        diagnostics.error(
            document.locate(()),
            f"a document must be a mapping with apiVersion: {API_VERSION} and a kind; "
            f"got {_type_name(data)}",
        )
        return None
    kind = data.get("kind")
    if kind is None:
        diagnostics.error(
            document.locate(()),
            f"document has no 'kind'; add one of: {', '.join(known)}",
        )
        return None
    descriptor = registry.get(kind) if isinstance(kind, str) else None
    if descriptor is None:
        diagnostics.error(
            document.locate(("kind",)),
            f"unknown kind {_show(kind)}; use one of: {', '.join(known)}"
            f"{did_you_mean(str(kind), known)}",
        )
    return descriptor


def check_document(
    document: SourceDocument, descriptor: Descriptor, diagnostics: Diagnostics
) -> bool:
    """Validate one document against its kind's schema, reporting every error; True when valid."""
    valid = True
    for error in _validator(descriptor).iter_errors(document.data):
        valid = False
        for path, key, message in _explain(error):
            diagnostics.error(document.locate(path, key=key), message)
    return valid


def _explain(error: ValidationError) -> Iterator[tuple[tuple[Any, ...], bool, str]]:
    """(path, locate-the-key?, message) for one jsonschema error."""
    path = tuple(error.absolute_path)
    field = _field_name(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    secret = bool(schema.get("x-cockpit-secret"))
    validator = error.validator
    if validator in ("anyOf", "oneOf") and error.context and all(e.validator == "required" for e in error.context):
        names = " or ".join(f"'{name}'" for e in error.context for name in e.validator_value)
        yield path, False, f"missing {names}; add one of them"
    elif validator in ("anyOf", "oneOf") and error.context:
        yield from _explain(_best_branch(error))
    elif validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        for extra in sorted(set(error.instance) - set(known), key=str):
            hint = did_you_mean(str(extra), known) or f"; known fields: {', '.join(known)}"
            yield (*path, extra), True, f"unknown field '{extra}'{hint}"
    elif validator == "required":
        for name in error.validator_value:
            if isinstance(error.instance, dict) and name not in error.instance:
                where = f" in '{field}'" if path else ""
                yield path, False, f"missing required field '{name}'{where}; add it"
    elif validator == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        yield path, False, f"'{field}' must be {wanted}, not {_type_name(error.instance)}"
    elif validator in ("enum", "const"):
        options = error.validator_value if validator == "enum" else [error.validator_value]
        shown = ", ".join(str(o) for o in options)
        hint = did_you_mean(str(error.instance), [str(o) for o in options])
        value = "" if secret else f" (got {_show(error.instance)})"
        yield path, False, f"'{field}' must be {'one of: ' if validator == 'enum' else ''}{shown}{value}{hint}"
    elif validator == "pattern":
        yield path, False, _pattern_message(field, schema, error.instance, secret)
    elif validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
        yield path, False, (
            f"'{field}' must be {sign[validator]} {error.validator_value} "
            f"(got {_show(error.instance)})"
        )
    elif validator == "minItems":
        n = error.validator_value
        yield path, False, f"'{field}' needs at least {n} entr{'y' if n == 1 else 'ies'}"
    elif validator == "minLength":
        yield path, False, f"'{field}' must not be empty"
    elif validator == "maxLength":
        yield path, False, f"'{field}' is longer than {error.validator_value} characters"
    elif secret:
        yield path, False, f"'{field}' is not a valid secret reference ({validator})"
    else:
        yield path, False, f"'{field}': {error.message}"


def _best_branch(error: ValidationError) -> ValidationError:
    """Of an anyOf's failed branches, the one the user most likely meant (not `null`)."""
    branches = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
    return best_match(branches or error.context)


def _pattern_message(field: str, schema: dict[str, Any], value: Any, secret: bool) -> str:
    if secret:
        return (
            f"'{field}' takes a reference, not a literal secret: write ${{env:NAME}} or "
            "${file:PATH} and keep the value out of the repository"
        )
    description = schema.get("description", "")
    if "x-cockpit-scope" in schema:
        return f"'{field}' must be {description.rstrip('.')} (got {_show(value)})"
    return f"'{field}' has an invalid value {_show(value)}; {description or 'see the schema'}"


def _field_name(path: tuple[Any, ...]) -> str:
    """The innermost named field of a path, with trailing list indexes: `grants[3]`."""
    name, suffix = "document", ""
    for element in path:
        if isinstance(element, int):
            suffix += f"[{element}]"
        else:
            name, suffix = str(element), ""
    return name + suffix


def _type_name(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."
