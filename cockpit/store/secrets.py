"""Encryption of stored secrets, and keyed fingerprints to detect that a secret changed.

Connection secrets, model API keys and SSO client secrets are stored Fernet-encrypted. Beside
each goes an HMAC-SHA256 fingerprint, so a plan can say "secret changed" by comparing
fingerprints, without decrypting anything and without an unkeyed hash that could be brute
forced from a leaked database. A third key MACs saved plans (`plan --out`). All are derived
(HKDF, distinct ``info``) from one master secret:

- ``COCKPIT_SECRET_KEY`` from the environment (any string of at least 32 characters);
- else, on the embedded SQLite default, a key file ``<database>.key`` created once beside the
  database with mode 0600 and reused;
- on PostgreSQL the variable is required: a key file on one replica would not be on the others.

Nothing here logs, prints or reprs a secret or a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as random_source
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cockpit.store.engine import is_sqlite, sqlite_path

SECRET_KEY_VARIABLE = "COCKPIT_SECRET_KEY"
MIN_SECRET_LENGTH = 32
KEY_FILE_SUFFIX = ".key"

_SALT = b"cockpit/secrets"
_ENCRYPTION_INFO = b"cockpit/fernet/v1"
_FINGERPRINT_INFO = b"cockpit/fingerprint/v1"
_PLAN_MAC_INFO = b"cockpit/saved-plan-mac/v1"
_GENERATE_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"


class SecretKeyError(Exception):
    """The master secret is missing, unusable, or does not match what was stored."""


class SecretBox:
    """Encrypts, decrypts and fingerprints secret values with keys derived from one secret.

    `source` says where the master secret came from (the variable's name or the key file's
    path), never what it is.
    """

    __slots__ = ("_fernet", "_fingerprint_key", "_plan_mac_key", "source")

    def __init__(self, master_secret: str, *, source: str = "the given secret") -> None:
        if len(master_secret) < MIN_SECRET_LENGTH:
            raise SecretKeyError(
                f"{source} is too short: use at least {MIN_SECRET_LENGTH} characters "
                f"({_GENERATE_HINT})"
            )
        material = master_secret.encode("utf-8")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(material, _ENCRYPTION_INFO)))
        self._fingerprint_key = _derive(material, _FINGERPRINT_INFO)
        self._plan_mac_key = _derive(material, _PLAN_MAC_INFO)
        self.source = source

    @classmethod
    def from_environment(
        cls, database_url: str, environ: Mapping[str, str] | None = None
    ) -> SecretBox:
        """The box for `database_url`: ``COCKPIT_SECRET_KEY``, else the SQLite key file.

        Raises SecretKeyError for a PostgreSQL URL without the variable, naming it.
        """
        environ = os.environ if environ is None else environ
        configured = (environ.get(SECRET_KEY_VARIABLE) or "").strip()
        if configured:
            return cls(configured, source=SECRET_KEY_VARIABLE)
        if is_sqlite(database_url):
            database_file = sqlite_path(database_url)
            if database_file is None:
                # An in-memory database dies with the process, and so may its key.
                return cls(_new_master_secret(), source="a key for this in-memory database")
            key_file = Path(f"{database_file}{KEY_FILE_SUFFIX}")
            return cls(load_or_create_key_file(key_file), source=f"key file {key_file}")
        raise SecretKeyError(
            f"{SECRET_KEY_VARIABLE} is not set; it is required with PostgreSQL to encrypt "
            f"stored secrets. Set it to the same random string of at least "
            f"{MIN_SECRET_LENGTH} characters on every machine that runs cockpit "
            f"({_GENERATE_HINT})"
        )

    def encrypt(self, plaintext: str) -> str:
        """A Fernet token (URL-safe text) for `plaintext`; different on every call."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError):
            raise SecretKeyError(
                f"a stored secret cannot be decrypted with {self.source}: it was encrypted "
                f"with another key (was {SECRET_KEY_VARIABLE} changed?)"
            ) from None

    def encrypt_json(self, value: Mapping[str, Any]) -> str:
        """Encrypt a dict of secrets (e.g. a connection's ``secret``) as one token."""
        return self.encrypt(canonical_json(value))

    def decrypt_json(self, token: str) -> dict[str, Any]:
        decoded = json.loads(self.decrypt(token))
        if not isinstance(decoded, dict):
            raise SecretKeyError("a stored secret was expected to be a JSON object")
        return decoded

    def fingerprint(self, value: str | Mapping[str, Any]) -> str:
        """HMAC-SHA256 (hex) of `value`'s canonical JSON: equal values, equal fingerprints.

        Dicts are serialised with sorted keys, so key order does not matter; a string and a
        dict never collide because both are JSON-encoded.
        """
        message = canonical_json(value).encode("utf-8")
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).hexdigest()

    def plan_mac(self, message: bytes) -> str:
        """HMAC-SHA256 (hex) of a saved plan's canonical bytes, with a key of its own: a MAC
        must not share a key with the fingerprints, or a fingerprint could pass for a MAC."""
        return hmac.new(self._plan_mac_key, message, hashlib.sha256).hexdigest()

    def plan_key_id(self) -> str:
        """A short public name of the plan MAC key, so a plan made with another master secret
        is told apart from an edited one; it is itself an HMAC output and reveals nothing."""
        return hmac.new(self._plan_mac_key, b"cockpit/saved-plan-key-id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SecretBox(source={self.source!r}, keys=<hidden>)"

    def __reduce__(self) -> Any:
        raise TypeError("SecretBox holds keys and cannot be pickled")


def canonical_json(value: Any) -> str:
    """The one JSON spelling of `value` (sorted keys, no spaces) that fingerprints hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_or_create_key_file(path: Path) -> str:
    """Read the master secret from `path`, creating the file first when it does not exist.

    Creation is atomic: the secret is written to a private temporary file (O_EXCL, 0600) and
    published with a hard link, which fails if the key file appeared meanwhile; then the
    winner's key is read. Two processes starting together therefore agree on one key.
    """
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    if not path.parent.is_dir():
        raise SecretKeyError(
            f"cannot create the key file {path}: directory {path.parent} does not exist"
        )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{random_source.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(_new_master_secret() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first; its key is the key
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(
            f"key file {path} is readable by other users (mode {mode:04o}); "
            f"run: chmod 600 {path}"
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretKeyError(
            f"key file {path} holds fewer than {MIN_SECRET_LENGTH} characters; restore it "
            f"from a backup (secrets stored with it cannot be decrypted without it)"
        )
    return secret


def _new_master_secret() -> str:
    return random_source.token_urlsafe(48)


def _derive(material: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(material)
