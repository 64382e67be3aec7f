"""protojson conventions shared by every JSON route (contract §1.1, §4 common types, §4.7).

Responses: lowerCamelCase, zero values omitted (`prune`), 64-bit numbers as strings (`u64`),
RFC 3339 UTC timestamps with milliseconds. Requests: camelCase or snake_case field names
(`field`), numbers or strings for 64-bit values, unknown fields ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import ZitadelError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def u64(number: int) -> str | None:
    """A uint64/int64 the protojson way: a string, omitted (None) when zero."""
    return str(number) if number else None


def prune(value: Any) -> Any:
    """Drop zero values (None, "", 0, False, [], {}) from objects, recursively."""
    if isinstance(value, dict):
        pruned = {key: prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if not _is_zero(item)}
    if isinstance(value, list):
        return [prune(item) for item in value]
    return value


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", [], {})


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def field(message: Any, name: str, default: Any = None) -> Any:
    """Read a request field given in camelCase or snake_case."""
    if not isinstance(message, dict):
        return default
    if name in message:
        return message[name]
    return message.get(_snake(name), default)


def text(message: Any, name: str) -> str:
    value = field(message, name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"invalid value for string field {name}: {value!r}")
    return value


def strings(message: Any, name: str) -> list[str]:
    value = field(message, name, [])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"invalid value for repeated string field {name}: {value!r}")
    return value


def invalid(text: str) -> ZitadelError:
    """A request that fails proto parsing or validation: 400, code 3, no Zitadel error id."""
    return ZitadelError("INVALID_ARGUMENT", text)


def uint(value: Any, name: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise invalid(f"invalid value for uint field {name}: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    else:
        raise invalid(f"invalid value for uint field {name}: {value!r}")
    if number < 0:
        raise invalid(f"invalid value for uint field {name}: {value!r}")
    return number


@dataclass(frozen=True)
class Page:
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    asc: bool = False  # Zitadel's default order is descending

    def apply(self, items: list[Any]) -> list[Any]:
        ordered = items if self.asc else list(reversed(items))
        return ordered[self.offset : self.offset + self.limit]


def page(
    query: Any, request_name: str, message_name: str = "ListQuery", field_name: str = "Query"
) -> Page:
    """Parse `{offset, limit, asc}` (v1 ListQuery, v2 ListQuery or PaginationRequest); a limit
    above 1000 fails proto validation (400 INVALID_ARGUMENT, code 3)."""
    if query is None:
        return Page()
    if not isinstance(query, dict):
        raise invalid(f"invalid value for message {message_name}: {query!r}")
    offset = uint(field(query, "offset"), "offset")
    limit = uint(field(query, "limit"), "limit")
    asc = field(query, "asc", False)
    if not isinstance(asc, bool):
        raise invalid(f"invalid value for bool field asc: {asc!r}")
    if limit > MAX_LIMIT:
        raise invalid(
            f"invalid {request_name}.{field_name}: embedded message failed validation | caused by: "
            f"invalid {message_name}.Limit: value must be less than or equal to {MAX_LIMIT}"
        )
    return Page(offset=offset, limit=limit or DEFAULT_LIMIT, asc=asc)


# -- text queries -------------------------------------------------------------------------------

_METHODS = (
    "EQUALS",
    "EQUALS_IGNORE_CASE",
    "STARTS_WITH",
    "STARTS_WITH_IGNORE_CASE",
    "CONTAINS",
    "CONTAINS_IGNORE_CASE",
    "ENDS_WITH",
    "ENDS_WITH_IGNORE_CASE",
)


def text_method(value: Any) -> str:
    """TEXT_QUERY_METHOD_* (v1, user/org v2) or TEXT_FILTER_METHOD_* (filter v2), name or number."""
    if value is None or value == "":
        return "EQUALS"
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(_METHODS):
        return _METHODS[value]
    if isinstance(value, str):
        for prefix in ("TEXT_QUERY_METHOD_", "TEXT_FILTER_METHOD_"):
            if value.startswith(prefix) and value[len(prefix) :] in _METHODS:
                return value[len(prefix) :]
    raise invalid(f"invalid value for enum field method: {value!r}")


def text_matches(actual: str, wanted: str, method: str) -> bool:
    if method.endswith("IGNORE_CASE"):
        actual, wanted = actual.lower(), wanted.lower()
        method = method.removesuffix("_IGNORE_CASE")
    if method == "EQUALS":
        return actual == wanted
    if method == "STARTS_WITH":
        return actual.startswith(wanted)
    if method == "CONTAINS":
        return wanted in actual
    return actual.endswith(wanted)
