"""Secret scan (hardening): canary secrets, and a scanner that finds them in any output.

Reuse: the `canaries` fixture, `Canaries`, `find_canaries`, `assert_no_canary(text, where,
canaries)`.
"""

from __future__ import annotations

import base64
import functools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

# -- canaries and the scanner (reusable) -------------------------------------------------------


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


class Canaries:
    """Secret values to look for, by label. Values are `canary-<label>-<uuid4 hex>`: letters,
    digits and `-` only, so JSON, YAML and URL encoding leave them as they are."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def new(self, label: str, *, max_length: int | None = None) -> str:
        value = f"canary-{_slug(label)}-{uuid.uuid4().hex}"
        if max_length is not None and len(value) > max_length:
            value = f"canary-{uuid.uuid4().hex}"[:max_length]
        return self.add(label, value)

    def add(self, label: str, value: str) -> str:
        """Look for `value` too (a key or token made elsewhere); returns it."""
        if label in self.values and self.values[label] != value:
            raise ValueError(f"canary {label!r} is already another value")
        self.values[label] = value
        return value

    def __getitem__(self, label: str) -> str:
        return self.values[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@functools.lru_cache(maxsize=4096)
def canary_forms(value: str) -> tuple[tuple[str, str, bool], ...]:
    """(form, needle, case_sensitive) under which `value` is looked for: the text itself, its
    hex, and its base64 and URL-safe base64 at each of the three alignments it can have inside
    a longer encoded string (only whole 3-byte groups, which encode the same wherever they are)."""
    raw = value.encode("utf-8")
    forms = [("text", value.lower(), False), ("hex", raw.hex(), False)]
    for offset in range(3):
        chunk = raw[offset:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 12:
            forms.append((f"base64+{offset}", base64.b64encode(chunk).decode(), True))
            urlsafe = base64.urlsafe_b64encode(chunk).decode()
            if urlsafe != forms[-1][1]:
                forms.append((f"base64url+{offset}", urlsafe, True))
    return tuple(forms)


def _as_text(text: str | bytes) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def find_canaries(
    text: str | bytes, where: str, canaries: Canaries | Mapping[str, str], *, allow: Iterable[str] = ()
) -> list[str]:
    """Every canary in `text` (except the labels in `allow`): one line per hit naming `where`,
    the line number, the canary's label and form, and the line itself (shortened)."""
    text = _as_text(text)
    values = canaries.values if isinstance(canaries, Canaries) else dict(canaries)
    allowed = set(allow)
    lowered = text.lower()
    hits: list[str] = []
    for label, value in values.items():
        if label in allowed or not value:
            continue
        for form, needle, case_sensitive in canary_forms(value):
            haystack = text if case_sensitive else lowered
            if needle not in haystack:
                continue
            for number, line in enumerate(haystack.splitlines() or [haystack], 1):
                if needle in line:
                    original = text.splitlines()[number - 1] if text.splitlines() else text
                    start = max(0, line.index(needle) - 80)
                    excerpt = original[start : start + 240]
                    hits.append(f"{where}: line {number}: canary {label!r} ({form}): {excerpt!r}")
            break  # one form per canary is enough to report
    return hits


def assert_no_canary(
    text: str | bytes, where: str, canaries: Canaries | Mapping[str, str], *, allow: Iterable[str] = ()
) -> None:
    """Fail, saying where (output, line, canary), if any canary not in `allow` is in `text`."""
    hits = find_canaries(text, where, canaries, allow=allow)
    assert not hits, "secret leaked:\n" + "\n".join(hits)


@pytest.fixture
def canaries() -> Canaries:
    return Canaries()


TWO_ACCOUNTS = """\
apiVersion: cockpit/v1
kind: Account
name: acme
email_domain: acme.com
admins: [{email: admin@acme.com, role: account_admin}]
---
apiVersion: cockpit/v1
kind: Account
name: globex
email_domain: globex.test
admins: [{email: hank@globex.test, role: account_admin}]
"""


def test_revoking_a_key_that_does_not_match_never_repeats_it(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canaries: Canaries) -> None:
    """`cockpit keys revoke KEY` with a mistyped key, or another account's, used to answer
    "account 'acme' has no key 'ck-…the whole key…'" on stderr (into CI logs)."""
    from test_plan_apply import Cockpit

    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    cockpit.write(TWO_ACCOUNTS)
    assert cockpit.apply().exit_code == 0
    key = canaries.add("acme key", cockpit.run("keys", "create", "--account", "acme", "--user", "admin@acme.com").stdout.strip())
    for attempt in (key + "x", key[:-1], key):
        refused = cockpit.run("keys", "revoke", attempt, "--account", "globex")
        assert refused.exit_code == 1 and "has no key that matches the key given" in refused.stderr, refused.output
        assert_no_canary(refused.output, f"keys revoke <{len(attempt)} characters> --account globex", {"acme key": key[:-1]})
    missing = cockpit.run("keys", "revoke", "ck-nothing", "--account", "acme")
    assert missing.exit_code == 1 and "has no key 'ck-nothing'" in missing.stderr  # a prefix is no secret
    assert cockpit.run("keys", "revoke", key, "--account", "acme").exit_code == 0
