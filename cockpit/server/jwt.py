"""Verify Zitadel access tokens (JWT) against the issuer's JWKS, with `cryptography` alone.

PyJWT is not a dependency; this module does the little of it we need and nothing clever:

- the header's `alg` must be one of `ALGORITHMS` (RS/PS/ES 256-512): never `none`, never HMAC,
  whose secret would be the public key; a `crit` header (extensions we do not know) is refused;
- the key is found by `kid` in the JWKS (a JWKS of one key serves a token without `kid`); its
  `kty` (and `crv`) must fit the algorithm and its `alg`, when it names one, must be the same;
  RSA keys must have at least 2048 bits;
- the signature is checked over the first two segments exactly as received;
- `iss` must equal the configured issuer, `aud` must contain the configured audience when
  there is one, `exp` is required, `exp` and `nbf` allow `LEEWAY_SECONDS` of clock skew;
  `exp`, `nbf` and `iat` must be finite numbers between 1970 and 9999 (JSON's non-standard
  `Infinity` and `NaN` are refused when the payload is parsed: `exp: Infinity` never expired,
  and `NaN` compares false with everything, so it passed every time check), and `iat` may not be
  in the future.

Keys are cached (`JwksCache`): fetched on first use, kept for `max_age` seconds, and fetched
again at once when a token names a `kid` the cache does not hold (key rotation), but not more
than once per `min_refetch_seconds`, so tokens with made-up kids cannot hammer the issuer.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
MAX_TOKEN_BYTES = 16_384
MIN_RSA_BITS = 2048
MAX_TIMESTAMP = 253_402_300_799
"""9999-12-31T23:59:59Z: a time claim past it is absurd (and a huge integer would overflow a float)."""

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_CURVES: dict[str, tuple[str, type[ec.EllipticCurve], int]] = {
    "ES256": ("P-256", ec.SECP256R1, 32),
    "ES384": ("P-384", ec.SECP384R1, 48),
    "ES512": ("P-521", ec.SECP521R1, 66),
}
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", *_CURVES})


class InvalidToken(Exception):
    """The token is not one we accept; the message says why (for logs, never for callers)."""


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    jwks_uri: str | None = None
    """None: from the issuer's discovery document, else `<issuer>/oauth/v2/keys`."""
    audience: str | None = None
    leeway: int = LEEWAY_SECONDS


def verify(token: str, settings: JwtSettings, keys: JwksCache, now: float | None = None) -> dict[str, Any]:
    """The token's claims when its signature and claims check out; InvalidToken otherwise."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWS compact serialisation")
    header = _json_segment(parts[0], "header")
    claims = _json_segment(parts[1], "payload")
    signature = _b64decode(parts[2], "signature")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidToken(f"algorithm {alg!r} is not accepted")
    if "crit" in header:
        raise InvalidToken("critical header extensions are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("kid is not a string")
    jwk = keys.key(kid)
    if jwk is None:
        raise InvalidToken(f"no key {kid!r} in the issuer's JWKS")
    _verify_signature(alg, jwk, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)
    _check_claims(claims, settings, time.time() if now is None else now)
    return claims


def _check_claims(claims: Mapping[str, Any], settings: JwtSettings, now: float) -> None:
    if claims.get("iss") != settings.issuer:
        raise InvalidToken(f"issuer {claims.get('iss')!r} is not {settings.issuer!r}")
    exp = claims.get("exp")
    if exp is None:
        raise InvalidToken("exp is missing")
    if not _is_timestamp(exp):
        raise InvalidToken("exp is not a time (seconds since 1970, before 10000)")
    if now > exp + settings.leeway:
        raise InvalidToken("token expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not _is_timestamp(nbf) or now < nbf - settings.leeway):
        raise InvalidToken("token not valid yet")
    iat = claims.get("iat")
    if iat is not None and (not _is_timestamp(iat) or now < iat - settings.leeway):
        raise InvalidToken("iat is not a time in the past")
    if settings.audience is not None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if settings.audience not in audiences:
            raise InvalidToken(f"audience {settings.audience!r} not in the token")


def _verify_signature(alg: str, jwk: Mapping[str, Any], signed: bytes, signature: bytes) -> None:
    digest = _HASHES[alg[2:]]()
    if jwk.get("alg") not in (None, alg):
        raise InvalidToken(f"key {jwk.get('kid')!r} is for {jwk.get('alg')}, the token says {alg}")
    if jwk.get("use") not in (None, "sig"):
        raise InvalidToken(f"key {jwk.get('kid')!r} is not a signing key")
    try:
        if alg[:2] in ("RS", "PS"):
            key = _rsa_key(jwk)
            pad = padding.PKCS1v15() if alg[:2] == "RS" else padding.PSS(padding.MGF1(digest), digest.digest_size)
            key.verify(signature, signed, pad, digest)
        else:
            curve_name, curve, size = _CURVES[alg]
            if jwk.get("kty") != "EC" or jwk.get("crv") != curve_name:
                raise InvalidToken(f"key {jwk.get('kid')!r} is not a {curve_name} key")
            public = ec.EllipticCurvePublicNumbers(_b64int(jwk.get("x")), _b64int(jwk.get("y")), curve()).public_key()
            if len(signature) != 2 * size:
                raise InvalidToken("bad signature length")
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            public.verify(der, signed, ec.ECDSA(digest))
    except InvalidSignature:
        raise InvalidToken("bad signature") from None
    except ValueError as exc:  # malformed key numbers
        raise InvalidToken(f"unusable key: {exc}") from None


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    if jwk.get("kty") != "RSA":
        raise InvalidToken(f"key {jwk.get('kid')!r} is not an RSA key")
    key = rsa.RSAPublicNumbers(_b64int(jwk.get("e")), _b64int(jwk.get("n"))).public_key()
    if key.key_size < MIN_RSA_BITS:
        raise InvalidToken(f"RSA key {jwk.get('kid')!r} is too small ({key.key_size} bits)")
    return key


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, what), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError):  # ValueError: bad JSON, a constant, an integer of 4,300+ digits
        raise InvalidToken(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value


def _b64decode(segment: str, what: str) -> bytes:
    try:
        return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidToken(f"{what} is not base64url") from None


def _b64int(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise InvalidToken("key parameter missing")
    return int.from_bytes(_b64decode(value, "key parameter"), "big")


def _refuse_constant(name: str) -> Any:
    """`json.loads` accepts `Infinity`, `-Infinity` and `NaN`, which JSON does not have."""
    raise ValueError(f"{name} is not JSON")


def _is_timestamp(value: Any) -> bool:
    """A number of seconds since 1970 up to year 9999: no bool, no NaN or infinity."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP


def jwt_shaped(token: str) -> bool:
    """Three dot-separated segments whose first starts like a JSON object (`{"` → `ey`)."""
    return token.count(".") == 2 and token.startswith("ey")


@dataclass
class JwksCache:
    """The issuer's signing keys, fetched lazily and refreshed on an unknown `kid`.

    Thread-safe: the tenant resolver calls it from worker threads.
    """

    settings: JwtSettings
    max_age: float = 3600.0
    min_refetch_seconds: float = 10.0
    fetch: Callable[[str], Any] | None = None
    """GET a URL and return its JSON; defaults to httpx with a short timeout."""
    _keys: dict[str | None, dict[str, Any]] = field(default_factory=dict, repr=False)
    _fetched_at: float | None = None
    _jwks_uri: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def key(self, kid: str | None) -> dict[str, Any] | None:
        with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at > self.max_age:
                self._refresh(now)
            elif self._find(kid) is None and now - self._fetched_at >= self.min_refetch_seconds:
                self._refresh(now)
            return self._find(kid)

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            document = self._get(self._uri())
            keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise ValueError("no 'keys' list")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot fetch the Zitadel JWKS: %s", exc)
            # Keep what we had; try again after min_refetch_seconds, not on every request.
            self._fetched_at = now if self._fetched_at is None else max(self._fetched_at, now - self.max_age + self.min_refetch_seconds)
            return
        self._keys = {k.get("kid"): k for k in keys if isinstance(k, dict)}
        self._fetched_at = now

    def _uri(self) -> str:
        if self.settings.jwks_uri:
            return self.settings.jwks_uri
        if self._jwks_uri is None:
            try:
                discovered = self._get(f"{self.settings.issuer}/.well-known/openid-configuration").get("jwks_uri")
            except (httpx.HTTPError, ValueError, AttributeError):
                discovered = None
            self._jwks_uri = discovered if isinstance(discovered, str) and discovered else f"{self.settings.issuer}/oauth/v2/keys"
        return self._jwks_uri

    def _get(self, url: str) -> Any:
        if self.fetch is not None:
            return self.fetch(url)
        response = httpx.get(url, timeout=5.0, follow_redirects=False)
        response.raise_for_status()
        return response.json()
