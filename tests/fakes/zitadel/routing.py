"""Requests, routes and the route table of the fake (matching, path parameters, families)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .domain import Context
from .errors import ZitadelError

# Route families: how errors are rendered and how callers authenticate.
GATEWAY = "gateway"  # grpc-gateway REST (v1, v2 REST): int `code` errors
CONNECT = "connect"  # Connect protocol: string `code` errors
OAUTH = "oauth"  # OAuth2/OIDC endpoints: `{"error": ...}` errors, no bearer auth


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> dict[str, Any]:
        """The protojson request body: `{}` when empty; 400 INVALID_ARGUMENT when malformed."""
        if not self.body.strip():
            return {}
        try:
            message = json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ZitadelError("INVALID_ARGUMENT", f"proto: syntax error: {exc}") from exc
        if not isinstance(message, dict):
            raise ZitadelError("INVALID_ARGUMENT", "proto: syntax error: expected a JSON object")
        return message

    def form(self) -> dict[str, str]:
        try:
            return dict(parse_qsl(self.body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            return {}


@dataclass
class Response:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request, Context], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    family: str
    auth: str | None  # "v1" (bearer + x-zitadel-orgid), "v2" (bearer only), None (public)


def route(method: str, template: str, handler: Handler, family: str, auth: str | None) -> Route:
    """`/projects/{projectId}/roles` → a regex with named groups for the path parameters."""
    regex = re.sub(
        r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    )
    return Route(method, re.compile(f"^{regex}$"), handler, family, auth)


def family_for(path: str) -> str:
    if path.startswith("/zitadel."):
        return CONNECT
    if path.startswith(("/oauth/", "/oidc/", "/.well-known/")):
        return OAUTH
    return GATEWAY


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path known under another method)."""
        other_method = False
        for candidate in self.routes:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict(), False
            other_method = True
        return None, {}, other_method
