"""Zitadel errors: the only exceptions that leave `cockpit.zitadel`.

HTTP and transport failures are translated here, at the boundary, so the journal and the user
never see an httpx exception. Classification follows the contract (zitadel-api.md §1.4–1.5):
HTTP status first, then the gRPC code, which arrives as an int (v1 REST) or a string (Connect).
The human text is localized, so nothing here depends on it; the error id in parentheses
(`COMMAND-Rs8fy`) is not, and is kept for the few places that must tell two 400s apart.
"""

from __future__ import annotations

import json
import re
from typing import Any

GRPC_CODES: dict[str, int] = {
    "ok": 0,
    "canceled": 1,
    "unknown": 2,
    "invalid_argument": 3,
    "deadline_exceeded": 4,
    "not_found": 5,
    "already_exists": 6,
    "permission_denied": 7,
    "resource_exhausted": 8,
    "failed_precondition": 9,
    "aborted": 10,
    "out_of_range": 11,
    "unimplemented": 12,
    "internal": 13,
    "unavailable": 14,
    "data_loss": 15,
    "unauthenticated": 16,
}
GRPC_NAMES: dict[int, str] = {number: name for name, number in GRPC_CODES.items()}

INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9

_ERROR_ID = re.compile(r"\(([A-Za-z0-9]+-[A-Za-z0-9]+)\)\s*$")
_MAX_TEXT = 300


class ZitadelError(Exception):
    """A Zitadel call failed; says where (`endpoint`), how (`status`, `grpc_code`) and why."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        grpc_code: int | None = None,
        endpoint: str | None = None,
        error_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.grpc_code = grpc_code
        self.endpoint = endpoint
        self.error_id = error_id
        self.retry_after = retry_after

    @property
    def code_name(self) -> str | None:
        """The gRPC code as its upper-case name (`ALREADY_EXISTS`), when known."""
        if self.grpc_code is None:
            return None
        return GRPC_NAMES.get(self.grpc_code, str(self.grpc_code)).upper()

    def __str__(self) -> str:
        parts = [self.message]
        facts = []
        if self.endpoint:
            facts.append(self.endpoint)
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.code_name:
            facts.append(self.code_name)
        if facts:
            parts.append(f"[{', '.join(facts)}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"grpc_code={self.grpc_code!r}, endpoint={self.endpoint!r})"
        )


class ZitadelConfigError(ZitadelError):
    """The environment or an account names Zitadel incompletely; the message says what to set."""


class ZitadelUnavailable(ZitadelError):
    """Zitadel could not be reached or kept failing (network error, timeout, 5xx after retries)."""

    transient = True


class ZitadelRateLimited(ZitadelError):
    """Zitadel kept answering 429 (rate limit or exhausted quota) after the retries."""

    transient = True


class ZitadelAuthError(ZitadelError):
    """The credentials were refused (401), lack permission (403), or the token endpoint failed."""


class ZitadelNotFound(ZitadelError):
    """The object does not exist in the organization the request was made in (404)."""


class ZitadelConflict(ZitadelError):
    """The object already exists (409 ALREADY_EXISTS)."""


class ZitadelBadRequest(ZitadelError):
    """Zitadel refused the request as invalid or in the wrong state (400)."""


def _class_for(status: int) -> type[ZitadelError]:
    if status == 400:
        return ZitadelBadRequest
    if status in (401, 403):
        return ZitadelAuthError
    if status == 404:
        return ZitadelNotFound
    if status == 409:
        return ZitadelConflict
    if status == 429:
        return ZitadelRateLimited
    if status >= 500 and status != 501:
        return ZitadelUnavailable
    return ZitadelError


def parse_grpc_code(value: Any) -> int | None:
    """`6` (v1 REST) or `"already_exists"` (Connect) → 6."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        return GRPC_CODES.get(text)
    return None


def _error_id(body: dict[str, Any], message: str) -> str | None:
    for detail in body.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("id"), str) and detail["id"]:
            return detail["id"]
    match = _ERROR_ID.search(message)
    return match.group(1) if match else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def error_from_response(
    status: int, content: bytes, *, endpoint: str, retry_after: float | None = None
) -> ZitadelError:
    """Build the typed error for a non-2xx answer from either documented error body shape."""
    body: Any = None
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    grpc_code = None
    error_id = None
    if isinstance(body, dict):
        message = body.get("message")
        message = message if isinstance(message, str) and message else f"HTTP {status}"
        grpc_code = parse_grpc_code(body.get("code"))
        error_id = _error_id(body, message)
    elif content:
        message = _short(content.decode("utf-8", "replace")) or f"HTTP {status}"
    else:
        message = f"HTTP {status}"
    return _class_for(status)(
        message,
        status=status,
        grpc_code=grpc_code,
        endpoint=endpoint,
        error_id=error_id,
        retry_after=retry_after,
    )
