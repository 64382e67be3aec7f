"""Small value helpers shared by the importers."""

from __future__ import annotations

import json
from typing import Any


def number(value: float) -> float | int:
    """A whole number as an int (`600`, not `600.0`), as a person writes it in YAML."""
    return int(value) if float(value).is_integer() else value


def json_object(value: Any) -> dict[str, Any]:
    """A JSON column's object (drivers hand back a dict, or text); anything else is empty."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, dict) else {}
