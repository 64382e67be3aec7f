"""Zitadel's error vocabulary and the three error body shapes (contract §1.4, §1.5, §2.4).

Handlers raise `ZitadelError(code, text, error_id)`; the app renders it in the shape of the route
family: grpc-gateway (`{"code": 6, "message": ..., "details": [...]}`) for `/management/v1` and
`/v2/...` REST, Connect (`{"code": "already_exists", ...}`) for `/zitadel.<pkg>.<Service>/<Method>`,
and OAuth2 (`{"error": "invalid_client", ...}`) for the token and introspection endpoints.

Messages are built as Zitadel builds them: `"<translated text> (<error id>)"`. Error ids were taken
from the Zitadel sources where the contract or the sources name them; ids starting with `FAKE-`
are the fake's own (clients must never parse messages anyway).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Code:
    name: str
    number: int
    connect: str
    http: int


CODES: dict[str, Code] = {
    code.name: code
    for code in (
        Code("UNKNOWN", 2, "unknown", 500),
        Code("INVALID_ARGUMENT", 3, "invalid_argument", 400),
        Code("DEADLINE_EXCEEDED", 4, "deadline_exceeded", 504),
        Code("NOT_FOUND", 5, "not_found", 404),
        Code("ALREADY_EXISTS", 6, "already_exists", 409),
        Code("PERMISSION_DENIED", 7, "permission_denied", 403),
        Code("RESOURCE_EXHAUSTED", 8, "resource_exhausted", 429),
        Code("FAILED_PRECONDITION", 9, "failed_precondition", 400),
        Code("UNIMPLEMENTED", 12, "unimplemented", 501),
        Code("INTERNAL", 13, "internal", 500),
        Code("UNAVAILABLE", 14, "unavailable", 503),
        Code("UNAUTHENTICATED", 16, "unauthenticated", 401),
    )
}

# What an injected HTTP status means in gRPC terms (for the body of an injected failure).
_CODE_FOR_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TEXT_FOR_STATUS = {
    429: "The quota for authenticated requests is exhausted",
    500: "An internal error occurred",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ZitadelError(Exception):
    """An API error: gRPC code name, (translated) text and Zitadel error id."""

    def __init__(
        self, code: str, text: str, error_id: str | None = None, *, http_status: int | None = None
    ) -> None:
        self.code = CODES[code]
        self.text = text
        self.error_id = error_id
        self.http_status = http_status or self.code.http
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.text} ({self.error_id})" if self.error_id else self.text


class OAuthError(Exception):
    """A token/introspection endpoint error, RFC 6749 §5.2 shape."""

    def __init__(self, status: int, error: str, description: str) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}")


def injected_error(status: int) -> ZitadelError:
    """The error a fault switch answers with, keeping the exact HTTP status asked for."""
    code = _CODE_FOR_STATUS.get(status, "UNKNOWN" if status >= 500 else "INVALID_ARGUMENT")
    return ZitadelError(
        code, _TEXT_FOR_STATUS.get(status, "injected failure"), None, http_status=status
    )


# -- bodies -------------------------------------------------------------------------------------


def gateway_body(error: ZitadelError) -> dict[str, Any]:
    """grpc-gateway: `google.rpc.Status` in protojson (details omitted when empty)."""
    body: dict[str, Any] = {"code": error.code.number, "message": error.message}
    if error.error_id:
        body["details"] = [
            {
                "@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                "id": error.error_id,
                "message": error.text,
            }
        ]
    return body


def connect_body(error: ZitadelError) -> dict[str, Any]:
    """Connect: string code; details carry the protobuf-encoded `zitadel.v1.ErrorDetail`."""
    body: dict[str, Any] = {"code": error.code.connect, "message": error.message}
    if error.error_id:
        value = _proto_string(1, error.error_id) + _proto_string(2, error.text)
        body["details"] = [
            {
                "type": "zitadel.v1.ErrorDetail",
                "value": base64.b64encode(value).decode().rstrip("="),
            }
        ]
    return body


def oauth_body(error: OAuthError) -> dict[str, Any]:
    return {"error": error.error, "error_description": error.description}


def _proto_string(field: int, value: str) -> bytes:
    data = value.encode()
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_error_detail(value: str) -> dict[str, str]:
    """Decode a Connect detail `value` back into {"id", "message"} (for tests and clients)."""
    data = base64.b64decode(value + "=" * (-len(value) % 4))
    fields: dict[str, str] = {}
    index = 0
    while index < len(data):
        tag, index = _read_varint(data, index)
        length, index = _read_varint(data, index)
        fields[{1: "id", 2: "message"}.get(tag >> 3, str(tag >> 3))] = data[
            index : index + length
        ].decode()
        index += length
    return fields


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[index]
        index += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, index
        shift += 7
