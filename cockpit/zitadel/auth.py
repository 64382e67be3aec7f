"""Service-account credentials as `httpx.Auth`: a personal access token or client credentials.

The client-credentials flow fetches its token through the same client and transport as the API
calls (the token request is yielded from the auth flow, as httpx's own digest auth does), caches it
until shortly before `expires_in`, and on a 401 refreshes once and retries the request once. That
logic lives here and nowhere else: the client and its callers never see a token.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Generator
from urllib.parse import quote

import httpx

from .errors import (
    ZitadelAuthError,
    ZitadelRateLimited,
    ZitadelUnavailable,
)

MANAGEMENT_SCOPE = "openid urn:zitadel:iam:org:project:id:zitadel:aud"
"""The scopes a service account needs to call Zitadel's own APIs (zitadel-api.md §2.2)."""

TOKEN_PATH = "/oauth/v2/token"
_DEFAULT_LIFETIME = 300.0  # when the token endpoint omits expires_in
_MAX_SKEW = 60.0


class PersonalAccessTokenAuth(httpx.Auth):
    """`Authorization: Bearer <PAT>`; a PAT cannot be refreshed, so a 401 is final."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "PersonalAccessTokenAuth(token=***)"


class ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client credentials (client_secret_basic) against Zitadel's token endpoint."""

    requires_request_body = True  # a request may be sent twice (after a refresh)

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str = MANAGEMENT_SCOPE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            "client_secret=***)"
        )

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        token = yield from self._valid_token(request, stale=None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        token = yield from self._valid_token(request, stale=token)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    async def async_auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        raise NotImplementedError("ClientCredentialsAuth serves the synchronous httpx.Client")
        yield request  # pragma: no cover - makes this an async generator

    def _valid_token(
        self, request: httpx.Request, *, stale: str | None
    ) -> Generator[httpx.Request, httpx.Response, str]:
        """The cached token, or a fresh one; `stale` is a token the server just refused.

        The lock is held while the token request is in flight, so concurrent requests wait for
        one fetch instead of each starting their own; a token someone else already refreshed is
        reused rather than refreshed again.
        """
        with self._lock:
            if self._token is not None and self._token != stale:
                if self._clock() < self._expires_at:
                    return self._token
            self._token = None
            response = yield self._token_request(request)
            response.read()
            self._store(response)
            assert self._token is not None
            return self._token

    def _token_request(self, api_request: httpx.Request) -> httpx.Request:
        """The token request, with the API request's timeouts (httpx sets them per request)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
        basic = base64.b64encode(pair.encode()).decode("ascii")
        return httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials", "scope": self.scope},
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            extensions={
                name: value
                for name, value in api_request.extensions.items()
                if name == "timeout"
            },
        )

    def _store(self, response: httpx.Response) -> None:
        endpoint = f"POST {TOKEN_PATH}"
        if response.status_code != 200:
            raise _token_error(response, endpoint)
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ZitadelAuthError(
                "the Zitadel token endpoint answered without an access_token",
                status=response.status_code,
                endpoint=endpoint,
            )
        lifetime = body.get("expires_in")
        try:
            seconds = float(lifetime) if lifetime is not None else _DEFAULT_LIFETIME
        except (TypeError, ValueError):
            seconds = _DEFAULT_LIFETIME
        skew = min(_MAX_SKEW, seconds / 2)
        self._token = token
        self._expires_at = self._clock() + seconds - skew
        self.tokens_fetched += 1


def _token_error(response: httpx.Response, endpoint: str) -> Exception:
    """OAuth2 error bodies (`{"error","error_description"}`) become a ZitadelAuthError."""
    status = response.status_code
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    text = f"HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
        if isinstance(body.get("error_description"), str) and body["error_description"]:
            text = f"{text}: {body['error_description']}"
    if status == 429:
        return ZitadelRateLimited(
            f"the Zitadel token endpoint is rate limiting: {text}", status=status, endpoint=endpoint
        )
    if status >= 500:
        return ZitadelUnavailable(
            f"the Zitadel token endpoint failed: {text}", status=status, endpoint=endpoint
        )
    return ZitadelAuthError(
        f"the Zitadel token endpoint refused the client credentials: {text}; check "
        "ZITADEL_CLIENT_ID and ZITADEL_CLIENT_SECRET",
        status=status,
        endpoint=endpoint,
    )
