"""Credentials and tokens: signing keys/JWKS, service accounts, PATs, the token endpoint (§2, §3).

* `SigningKeys`: RSA keys served as JWKS; `sign()` makes RS256 JWTs with the active key's kid.
* `Principal`: who a token speaks for: a machine user, its org, and the orgs it administers
  (`None` = instance-wide, like IAM_OWNER; an empty set = no permissions at all).
* `Credentials`: the registered service accounts (client secret, key file), PATs and API apps,
  the issued access tokens, and the OAuth logic of `/oauth/v2/token` and `/oauth/v2/introspect`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .errors import OAuthError, ZitadelError

ZITADEL_AUDIENCE_SCOPE = "urn:zitadel:iam:org:project:id:zitadel:aud"
PROJECT_AUDIENCE_SCOPE = "urn:zitadel:iam:org:project:id:{}:aud"
ROLES_SCOPE = "urn:zitadel:iam:org:projects:roles"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint_b64(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def sign_rs256(
    private_key: rsa.RSAPrivateKey, header: dict[str, Any], claims: dict[str, Any]
) -> str:
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def verify_rs256(token: str, public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The claims of a JWT whose RS256 signature checks out; ValueError otherwise."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        if header.get("alg") != "RS256":
            raise ValueError(f"unsupported alg {header.get('alg')!r}")
        public_key.verify(
            b64url_decode(signature_b64),
            f"{header_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        claims = json.loads(b64url_decode(claims_b64))
    except (InvalidSignature, binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JWT: {exc!r}") from exc
    if not isinstance(claims, dict):
        raise ValueError("invalid JWT: claims are not an object")
    return claims


def jwt_header(token: str) -> dict[str, Any]:
    try:
        header = json.loads(b64url_decode(token.split(".")[0]))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, IndexError) as exc:
        raise ValueError(f"invalid JWT header: {exc!r}") from exc
    if not isinstance(header, dict):
        raise ValueError("invalid JWT header")
    return header


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SigningKeys:
    """The instance's token signing keys; the newest is active, older ones stay in the JWKS."""

    def __init__(self, new_kid: Callable[[], str]) -> None:
        self._new_kid = new_kid
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        self._lock = threading.Lock()
        self.rotate()

    @property
    def kid(self) -> str:
        with self._lock:
            return self._keys[-1][0]

    def rotate(self, *, keep_old: bool = True) -> str:
        kid, key = self._new_kid(), new_rsa_key()
        with self._lock:
            self._keys = [*self._keys, (kid, key)] if keep_old else [(kid, key)]
        return kid

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._keys)
        return {
            "keys": [
                {
                    "use": "sig",
                    "kty": "RSA",
                    "kid": kid,
                    "alg": "RS256",
                    "n": _uint_b64(key.public_key().public_numbers().n),
                    "e": _uint_b64(key.public_key().public_numbers().e),
                }
                for kid, key in keys
            ]
        }

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            return next((key.public_key() for k, key in self._keys if k == kid), None)

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        with self._lock:
            kid = kid or self._keys[-1][0]
            key = next((key for k, key in self._keys if k == kid), None)
        if key is None:
            raise KeyError(f"no signing key with kid {kid!r}")
        return sign_rs256(key, {"alg": "RS256", "kid": kid, "typ": "JWT"}, claims)


# -- principals and tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    user_id: str
    org_id: str
    client_id: str
    orgs: frozenset[str] | None  # None: instance-wide administrator

    def administers(self, org_id: str) -> bool:
        return self.orgs is None or org_id in self.orgs


@dataclass(frozen=True)
class AccessToken:
    value: str
    principal: Principal
    expires_at: float | None
    scopes: tuple[str, ...]
    api_access: bool  # carries the ZITADEL API audience
    issued_at: float
    jwt: bool = False
    pat: bool = False

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def audience(self) -> list[str]:
        prefix, suffix = "urn:zitadel:iam:org:project:id:", ":aud"
        projects = [
            scope[len(prefix) : -len(suffix)]
            for scope in self.scopes
            if scope.startswith(prefix) and scope.endswith(suffix)
        ]
        return [self.principal.client_id, *projects]


@dataclass(frozen=True)
class _ServiceAccount:
    secret: str
    principal: Principal
    jwt_tokens: bool


class Credentials:
    def __init__(self, clock: Callable[[], float], keys: SigningKeys, token_lifetime: int) -> None:
        self.clock = clock
        self.keys = keys
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._service_accounts: dict[str, _ServiceAccount] = {}
        self._machine_keys: dict[str, tuple[rsa.RSAPublicKey, Principal]] = {}
        self._api_apps: dict[str, tuple[str, str]] = {}  # client_id -> (secret, project_id)
        self._tokens: dict[str, AccessToken] = {}

    # -- registration ---------------------------------------------------------------------------

    def add_service_account(
        self, client_id: str, secret: str, principal: Principal, jwt: bool
    ) -> None:
        with self._lock:
            self._service_accounts[client_id] = _ServiceAccount(secret, principal, jwt)

    def add_machine_key(
        self, key_id: str, public_key: rsa.RSAPublicKey, principal: Principal
    ) -> None:
        with self._lock:
            self._machine_keys[key_id] = (public_key, principal)

    def add_pat(self, token: str, principal: Principal, expires_at: float | None) -> None:
        with self._lock:
            self._tokens[token] = AccessToken(
                token, principal, expires_at, (), True, self.clock(), pat=True
            )

    def add_api_app(self, client_id: str, secret: str, project_id: str) -> None:
        with self._lock:
            self._api_apps[client_id] = (secret, project_id)

    def expire_all(self, *, include_pats: bool = False) -> None:
        """Every token issued by the token endpoint (and PATs, if asked) expires now."""
        now = self.clock()
        with self._lock:
            self._tokens = {
                value: replace(token, expires_at=now) if include_pats or not token.pat else token
                for value, token in self._tokens.items()
            }

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def principal_for_client(self, client_id: str) -> Principal | None:
        with self._lock:
            account = self._service_accounts.get(client_id)
        return account.principal if account else None

    # -- API authentication -----------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind `Authorization: Bearer ...`, or 401 as Zitadel answers it."""
        if not authorization:
            raise ZitadelError("UNAUTHENTICATED", "auth header missing")
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            raise ZitadelError("UNAUTHENTICATED", "invalid auth header", "AUTH-7fs1e")
        with self._lock:
            access = self._tokens.get(token.strip())
        if access is None or not access.active(self.clock()) or not access.api_access:
            raise ZitadelError("UNAUTHENTICATED", "Token is invalid", "AUTH-7fs1e")
        return access.principal

    # -- /oauth/v2/token -----------------------------------------------------------------------

    def token_endpoint(
        self, form: dict[str, str], authorization: str | None, issuer: str
    ) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type missing")
        scopes = tuple(form.get("scope", "").split())
        if grant_type == "client_credentials":
            principal, jwt = self._client_credentials(form, authorization)
        elif grant_type == JWT_BEARER:
            principal, jwt = self._jwt_profile(form.get("assertion", ""), issuer), False
        else:
            raise OAuthError(400, "unsupported_grant_type", f"{grant_type} not supported")
        if "openid" not in scopes:
            raise OAuthError(400, "invalid_scope", "The scope openid is missing in your request.")
        token = self._issue(principal, scopes, jwt, issuer)
        return {
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }

    def _client_credentials(
        self, form: dict[str, str], authorization: str | None
    ) -> tuple[Principal, bool]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OAuthError(401, "invalid_client", "invalid basic auth header") from exc
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret = unquote(raw_id), unquote(raw_secret)
        if not client_id:
            raise OAuthError(401, "invalid_client", "client_id missing")
        with self._lock:
            account = self._service_accounts.get(client_id)
        if account is None:
            raise OAuthError(401, "invalid_client", "client not found")
        if not secrets.compare_digest(account.secret, secret):
            raise OAuthError(401, "invalid_client", "invalid client secret")
        return account.principal, account.jwt_tokens

    def _jwt_profile(self, assertion: str, issuer: str) -> Principal:
        if not assertion:
            raise OAuthError(400, "invalid_request", "assertion missing")
        try:
            kid = jwt_header(assertion).get("kid")
        except ValueError as exc:
            raise OAuthError(400, "invalid_grant", str(exc)) from exc
        with self._lock:
            entry = self._machine_keys.get(kid or "")
        if entry is None:
            raise OAuthError(400, "invalid_grant", "assertion key not found")
        public_key, principal = entry
        try:
            claims = verify_rs256(assertion, public_key)
        except ValueError as exc:
            raise OAuthError(400, "invalid_grant", str(exc)) from exc
        now = self.clock()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        problems = [
            "iss and sub must be the user id"
            if not (claims.get("iss") == claims.get("sub") == principal.user_id)
            else "",
            "aud must contain the issuer" if issuer not in audiences else "",
            "assertion expired" if not _number(claims.get("exp")) or claims["exp"] <= now else "",
            "iat too old or in the future"
            if not _number(claims.get("iat")) or not now - 3600 <= claims["iat"] <= now + 60
            else "",
        ]
        problem = next((p for p in problems if p), None)
        if problem:
            raise OAuthError(400, "invalid_grant", problem)
        return principal

    def _issue(
        self, principal: Principal, scopes: tuple[str, ...], jwt: bool, issuer: str
    ) -> AccessToken:
        now = self.clock()
        expires = now + self.token_lifetime
        api_access = ZITADEL_AUDIENCE_SCOPE in scopes
        value = secrets.token_urlsafe(48)
        draft = AccessToken(value, principal, expires, scopes, api_access, now, jwt)
        if jwt:
            value = self.keys.sign(
                {
                    "iss": issuer,
                    "sub": principal.user_id,
                    "aud": draft.audience(),
                    "exp": int(expires),
                    "iat": int(now),
                    "nbf": int(now),
                    "jti": secrets.token_hex(9),
                    "client_id": principal.client_id,
                    "scope": " ".join(scopes),
                }
            )
        token = AccessToken(value, principal, expires, scopes, api_access, now, jwt)
        with self._lock:
            self._tokens[value] = token
        return token

    # -- /oauth/v2/introspect ---------------------------------------------------------------------

    def introspect(
        self,
        form: dict[str, str],
        authorization: str | None,
        issuer: str,
        user_claims: Callable[[str, str, bool], dict[str, Any]],
    ) -> dict[str, Any]:
        """RFC 7662 for an API app (client_secret_basic); inactive tokens → {"active": false}."""
        client_id, secret = "", ""
        if authorization and authorization.startswith("Basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OAuthError(401, "invalid_client", "invalid basic auth header") from exc
            raw_id, _, raw_secret = decoded.partition(":")
            client_id, secret = unquote(raw_id), unquote(raw_secret)
        with self._lock:
            app = self._api_apps.get(client_id)
            access = self._tokens.get(form.get("token", ""))
        if app is None or not secrets.compare_digest(app[0], secret):
            raise OAuthError(401, "invalid_client", "client authentication failed")
        project_id = app[1]
        now = self.clock()
        if access is None or not access.active(now) or project_id not in access.audience():
            return {"active": False}
        claims: dict[str, Any] = {
            "active": True,
            "aud": access.audience(),
            "client_id": access.principal.client_id,
            "iat": int(access.issued_at),
            "nbf": int(access.issued_at),
            "iss": issuer,
            "scope": " ".join(access.scopes),
            "token_type": "Bearer",
            "sub": access.principal.user_id,
        }
        if access.expires_at is not None:
            claims["exp"] = int(access.expires_at)
        claims.update(
            user_claims(access.principal.user_id, project_id, ROLES_SCOPE in access.scopes)
        )
        return claims


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
