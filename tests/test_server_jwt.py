"""JWT verification (`cockpit.server.jwt`) and the claims mapping, without a database.

Keys are made here and served through `JwksCache.fetch`, or by the fake Zitadel on loopback,
so every check runs against real signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cockpit.server.claims import base_roles, map_claims
from cockpit.server.jwt import InvalidToken, JwksCache, JwtSettings, verify
from fakes.zitadel import FakeZitadel

ISSUER = "https://id.example.test"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def uint(number: int, size: int | None = None) -> str:
    return b64(number.to_bytes(size or (number.bit_length() + 7) // 8, "big"))


class Keys:
    """Signing keys and the JWKS that publishes them."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.fetches = 0
        rsa_numbers = self.rsa.public_key().public_numbers()
        ec_numbers = self.ec.public_key().public_numbers()
        self.jwks = {
            "keys": [
                {"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": uint(rsa_numbers.n), "e": uint(rsa_numbers.e)},
                {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": uint(ec_numbers.x, 32), "y": uint(ec_numbers.y, 32)},
            ]
        }

    def fetch(self, url: str) -> dict:
        if url.endswith("openid-configuration"):
            return {"jwks_uri": f"{ISSUER}/oauth/v2/keys"}
        self.fetches += 1
        return self.jwks

    def sign(self, claims: dict, alg: str = "RS256", kid: str | None = "rsa-1", header: dict | None = None) -> str:
        head = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {}), **(header or {})}
        signed = f"{segment(head)}.{segment(claims)}".encode()
        if alg == "RS256":
            signature = self.rsa.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256":
            signature = self.rsa.sign(signed, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(self.ec.sign(signed, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            raise ValueError(alg)
        return f"{signed.decode()}.{b64(signature)}"


def claims(**extra) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "sub": "u-1", "iat": now, "exp": now + 600, **extra}


@pytest.fixture
def keys() -> Keys:
    return Keys()


def check(token: str, keys: Keys, **settings) -> dict:
    config = JwtSettings(ISSUER, **settings)
    return verify(token, config, JwksCache(config, fetch=keys.fetch))


@pytest.mark.parametrize("alg, kid", [("RS256", "rsa-1"), ("PS256", "rsa-1"), ("ES256", "ec-1")])
def test_good_signatures_verify(keys: Keys, alg: str, kid: str) -> None:
    assert check(keys.sign(claims(), alg, kid), keys)["sub"] == "u-1"


def test_tampered_payload_is_refused(keys: Keys) -> None:
    token = keys.sign(claims(roles=["end_user"]))
    head, _payload, signature = token.split(".")
    forged = f"{head}.{segment(claims(roles=['super_admin']))}.{signature}"
    with pytest.raises(InvalidToken, match="bad signature"):
        check(forged, keys)


def test_none_and_hmac_algorithms_are_refused(keys: Keys) -> None:
    unsigned = f"{segment({'alg': 'none', 'kid': 'rsa-1'})}.{segment(claims())}."
    with pytest.raises(InvalidToken, match="not accepted"):
        check(unsigned, keys)
    # HS256 keyed with the public key's JWK: the classic algorithm confusion.
    head = segment({"alg": "HS256", "kid": "rsa-1"})
    body = segment(claims(roles=["super_admin"]))
    secret = json.dumps(keys.jwks["keys"][0]).encode()
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="not accepted"):
        check(f"{head}.{body}.{b64(mac)}", keys)


def test_key_must_fit_the_algorithm(keys: Keys) -> None:
    # An RS256 header naming the EC key, and an ES256 header naming the RSA key.
    with pytest.raises(InvalidToken):
        check(keys.sign(claims(), "RS256", "ec-1"), keys)
    with pytest.raises(InvalidToken):
        check(keys.sign(claims(), "ES256", "rsa-1"), keys)


def test_claims_are_checked(keys: Keys) -> None:
    now = int(time.time())
    with pytest.raises(InvalidToken, match="expired"):
        check(keys.sign(claims(exp=now - 120)), keys)
    assert check(keys.sign(claims(exp=now - 5)), keys)  # within the leeway
    with pytest.raises(InvalidToken, match="not valid yet"):
        check(keys.sign(claims(nbf=now + 600)), keys)
    with pytest.raises(InvalidToken, match="issuer"):
        check(keys.sign(claims(iss="https://evil.example.test")), keys)
    with pytest.raises(InvalidToken, match="exp is missing"):
        check(keys.sign({k: v for k, v in claims().items() if k != "exp"}), keys)
    with pytest.raises(InvalidToken, match="audience"):
        check(keys.sign(claims(aud=["other"])), keys, audience="cockpit")
    assert check(keys.sign(claims(aud=["x", "cockpit"])), keys, audience="cockpit")
    assert check(keys.sign(claims(aud="cockpit")), keys, audience="cockpit")


def test_critical_headers_and_garbage_are_refused(keys: Keys) -> None:
    with pytest.raises(InvalidToken, match="critical"):
        check(keys.sign(claims(), header={"crit": ["exp"]}), keys)
    for garbage in ("", "a.b", "a.b.c", "eyJ.eyJ.!!", "x" * 20_000):
        with pytest.raises(InvalidToken):
            check(garbage, keys)


def test_unknown_kid_refetches_once_then_is_rate_limited(keys: Keys) -> None:
    config = JwtSettings(ISSUER)
    cache = JwksCache(config, fetch=keys.fetch, min_refetch_seconds=3600)
    assert verify(keys.sign(claims()), config, cache)
    assert keys.fetches == 1
    for _ in range(5):
        with pytest.raises(InvalidToken, match="no key"):
            verify(keys.sign(claims(), kid="made-up"), config, cache)
    assert keys.fetches == 1  # made-up kids do not hammer the issuer


def test_rotation_against_the_fake_zitadel() -> None:
    with FakeZitadel() as fake:
        config = JwtSettings(fake.url)
        cache = JwksCache(config, min_refetch_seconds=0)
        assert verify(fake.sign_token({"sub": "1"}), config, cache)["sub"] == "1"
        fetches = fake.count("GET", "/oauth/v2/keys")
        new_kid = fake.rotate_signing_key()
        assert verify(fake.sign_token({"sub": "2"}, kid=new_kid), config, cache)["sub"] == "2"
        assert fake.count("GET", "/oauth/v2/keys") == fetches + 1
        assert verify(fake.sign_token({"sub": "3"}, kid=new_kid), config, cache)["sub"] == "3"
        assert fake.count("GET", "/oauth/v2/keys") == fetches + 1


def test_claims_mapping_follows_the_old_system() -> None:
    mapped = map_claims(
        {
            "sub": "42",
            "email": "Ines.Garcia@ACME.com",
            "role": "end_user",
            "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {"1": "acme.localhost"}},
            "urn:zitadel:iam:org:project:7:roles": [{"acme_end_user": {}}],
            "scope": "openid copilot:admin",
            "product_domains_allowed": "console, copilot",
            "urn:zitadel:iam:org:id": "999",
            "alchemi:account_id": "acme",
        },
        ("alchemi:account_id", "urn:zitadel:iam:org:id"),
        ("super_admin",),
    )
    assert mapped.roles == ("end_user", "acme_account_admin", "acme_end_user")
    assert mapped.scopes == ("openid", "copilot:admin")
    assert mapped.domains == ("console", "copilot")
    assert mapped.account == "acme"
    assert mapped.email == "ines.garcia@acme.com"
    assert not mapped.is_super_admin
    assert map_claims({"roles": ["x", "super_admin"]}, (), ("super_admin",)).is_super_admin
    assert map_claims({"is_super_admin": True}, (), ("super_admin",)).is_super_admin


def test_base_roles_use_only_the_accounts_own_prefix() -> None:
    acme = {"role_prefix": "acme_", "role_mappings": {"account_admin": "acme-admins"}}
    assert base_roles(["acme-admins", "acme_copilot_org_admin", "globex_account_admin", "account_admin"], acme) == (
        "account_admin",
        "copilot_org_admin",
    )
    # Only base roles come out: never super_admin, nor a key the guards do not know.
    assert base_roles(["account_admin", "custom", "super_admin"], {}) == ("account_admin",)
