"""Zitadel management-API settings from the environment.

    ZITADEL_ISSUER_URL          the instance (issuer = API base); an account's `zitadel.issuer`
                                overrides it for that account. `ZITADEL_ISSUER` is read as the
                                old system's spelling, `ZITADEL_MGMT_API_BASE_URL` overrides the
                                global API base (e.g. an internal address).
    ZITADEL_MGMT_API_TOKEN      a personal access token of the service account, or
    ZITADEL_CLIENT_ID           client credentials of the service account; the token comes from
    ZITADEL_CLIENT_SECRET       `/oauth/v2/token` with the management-API scope.
    ZITADEL_TIMEOUT             seconds one request may take (connect, send, wait for the answer;
                                default 10). Each call is tried up to 5 times, so a Zitadel that
                                accepts connections but never answers costs about 5 × this per call.

A personal access token wins when both kinds of credentials are set: the client id and secret
may be there for the OIDC login of `cockpit serve`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from .auth import MANAGEMENT_SCOPE, TOKEN_PATH, ClientCredentialsAuth, PersonalAccessTokenAuth
from .errors import ZitadelConfigError

if TYPE_CHECKING:
    from .client import ZitadelClient

ISSUER = "ZITADEL_ISSUER_URL"
ISSUER_OLD = "ZITADEL_ISSUER"
API_BASE = "ZITADEL_MGMT_API_BASE_URL"
TOKEN = "ZITADEL_MGMT_API_TOKEN"
CLIENT_ID = "ZITADEL_CLIENT_ID"
CLIENT_SECRET = "ZITADEL_CLIENT_SECRET"
TIMEOUT = "ZITADEL_TIMEOUT"
DEFAULT_TIMEOUT = 10.0


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _timeout(environ: Mapping[str, str]) -> float:
    text = _get(environ, TIMEOUT)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 600:  # also false for nan
        raise ZitadelConfigError(
            f"{TIMEOUT} must be a number of seconds between 0 and 600, such as 10, got {text!r}"
        )
    return value


def normalise_issuer(url: str, *, source: str) -> str:
    """`https://id.acme.com/` → `https://id.acme.com`; anything but http(s) is refused."""
    url = url.strip().rstrip("/")
    parsed = httpx.URL(url) if "://" in url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ZitadelConfigError(
            f"{source} must be an http(s) URL such as https://id.example.com, got {url!r}"
        )
    return url


@dataclass(frozen=True)
class ZitadelSettings:
    """How to reach and authenticate to Zitadel's management API; secrets stay out of repr."""

    base_url: str | None
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str = MANAGEMENT_SCOPE
    timeout: float = DEFAULT_TIMEOUT
    _auths: dict[str, httpx.Auth] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )
    _auths_lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ZitadelSettings | None:
        """None when nothing is set; a ZitadelConfigError naming what is missing when half is."""
        issuer = _get(environ, API_BASE) or _get(environ, ISSUER) or _get(environ, ISSUER_OLD)
        source = (
            API_BASE
            if _get(environ, API_BASE)
            else ISSUER
            if _get(environ, ISSUER)
            else ISSUER_OLD
        )
        token = _get(environ, TOKEN)
        client_id = _get(environ, CLIENT_ID)
        client_secret = _get(environ, CLIENT_SECRET)
        if not any((issuer, token, client_id, client_secret)):
            return None
        base_url = normalise_issuer(issuer, source=source) if issuer else None
        timeout = _timeout(environ)
        if token:
            return cls(base_url=base_url, token=token, timeout=timeout)
        if client_id and not client_secret:
            raise ZitadelConfigError(
                f"{CLIENT_ID} is set but {CLIENT_SECRET} is not: set {CLIENT_SECRET} too, "
                f"or use a personal access token in {TOKEN}"
            )
        if client_secret and not client_id:
            raise ZitadelConfigError(
                f"{CLIENT_SECRET} is set but {CLIENT_ID} is not: set {CLIENT_ID} too, "
                f"or use a personal access token in {TOKEN}"
            )
        if not client_id:
            raise ZitadelConfigError(
                f"{source} is set but no Zitadel credentials are: set {TOKEN} (a personal "
                f"access token of the service account), or {CLIENT_ID} and {CLIENT_SECRET}"
            )
        return cls(
            base_url=base_url, client_id=client_id, client_secret=client_secret, timeout=timeout
        )

    @property
    def method(self) -> str:
        """`personal_access_token` or `client_credentials`, for status output."""
        return "personal_access_token" if self.token else "client_credentials"

    def issuer_for(self, account_issuer: str | None = None) -> str:
        """The API base for an account: its own `zitadel.issuer`, else the global one."""
        if account_issuer:
            return normalise_issuer(account_issuer, source="the account's zitadel.issuer")
        if self.base_url:
            return self.base_url
        raise ZitadelConfigError(
            f"no Zitadel issuer: set {ISSUER}, or `zitadel.issuer` on the account"
        )

    def auth_for(self, issuer: str) -> httpx.Auth:
        """One auth per issuer, shared, so every client of an instance reuses one token."""
        with self._auths_lock:
            auth = self._auths.get(issuer)
            if auth is None:
                if self.token:
                    auth = PersonalAccessTokenAuth(self.token)
                else:
                    assert self.client_id and self.client_secret
                    auth = ClientCredentialsAuth(
                        issuer + TOKEN_PATH, self.client_id, self.client_secret, scope=self.scope
                    )
                self._auths[issuer] = auth
            return auth

    def client(
        self,
        *,
        account_issuer: str | None = None,
        org_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        **options: object,
    ) -> ZitadelClient:
        """A client for one account's instance and organization."""
        from .client import ZitadelClient

        issuer = self.issuer_for(account_issuer)
        options.setdefault("timeout", self.timeout)
        return ZitadelClient(
            issuer, self.auth_for(issuer), transport=transport, org_id=org_id, **options  # type: ignore[arg-type]
        )
