"""Secret scan (hardening): canaries in every secret, then look for them everywhere.

Every secret field of the config language (found through the registry's `secret_fields`, so a
secret field added later is exercised or this test says which one is not) gets its own canary
value, supplied through `${file:…}` and through `${env:…}` (one of them from `.env`), and so do
the environment-level secrets: `COCKPIT_SECRET_KEY`, `COCKPIT_MASTER_KEY` (and
`LITELLM_MASTER_KEY`), `ZITADEL_MGMT_API_TOKEN`, `ZITADEL_CLIENT_SECRET`, `OPENOBSERVE_PASSWORD`, the password of the
PostgreSQL URL, the virtual keys `cockpit keys create` prints, the access token the fake Zitadel
issues to cockpit and the Zitadel JWTs used against the API. Then, on SQLite and PostgreSQL:

- validate (text, JSON), plan (text, JSON, markdown, saved `--out` file), apply, a second plan
  and apply (of the saved plan) after every secret changed — the plan must show each change as
  sensitive —, export (every file written), explain (database, `--config`; text, JSON),
  `zitadel status` (token and client credentials), `keys create|list|revoke`, `db upgrade`;
- the error paths that quote settings: a literal secret in every secret field, a wrong
  Zitadel token and client secret, a wrong OpenObserve password, a short or different
  `COCKPIT_SECRET_KEY`, an unreachable database URL with a password;
- stdout and stderr of every command, every Python log record (DEBUG, with its extra
  attributes), warnings and whatever reached file descriptors 1 and 2;
- every row of every table (all columns as text; the encrypted columns must hold ciphertext,
  and decrypting them must give the canaries back, which proves the scan is not vacuous), and on
  SQLite the database files' raw bytes;
- every request the fake Zitadel and the fake OpenObserve received, method, path, query, headers
  and body. The `Authorization` header is the one place a credential belongs: it must be exactly
  `Bearer <ZITADEL_MGMT_API_TOKEN>` or `Bearer <token issued by the fake>` on Zitadel's APIs,
  `Basic base64(<ZITADEL_CLIENT_ID>:<ZITADEL_CLIENT_SECRET>)` on `POST /oauth/v2/token`, absent on
  the public OIDC documents, and `Basic base64(<OPENOBSERVE_USER>:<OPENOBSERVE_PASSWORD>)` on
  OpenObserve; it is checked for that and then left out of the scan;
- every GET route of `cockpit serve` (the app its factory builds, and a real `cockpit serve`
  process for its own logs) with the master key, virtual keys, a Zitadel JWT and no credential:
  status, headers and body.

A canary is looked for case-insensitively as text, and as base64 (standard and URL-safe, every
alignment) and hex, so a secret encoded into a header or a log is found too. A hit names the
output, the line and the canary.

Reuse (e.g. for the LLM proxy): the `canaries` fixture, `Canaries`, `find_canaries`,
`assert_no_canary(text, where, canaries)`, `write_canary_tenant` (examples/acme with a canary in
every secret field) and `RecordingZitadel` / `RecordingOpenObserve`.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from cockpit.cli import main, serve_app
from cockpit.config.secrets import secret_fields
from cockpit.config.registry import build_registry
from cockpit.store.engine import create_engine_for, is_sqlite, sqlite_path
from cockpit.store.secrets import SecretBox
from fakes.openobserve import FakeOpenObserve
from fakes.zitadel import FakeZitadel
from harness.cockpit import EXAMPLES
from harness.tenants import parameter_values, route_requests, tenant_rows

PROJECT = "301234567890123456"  # examples/acme's zitadel.project_id
ORG = "301234567890120001"  # and its organization_id
ZITADEL_CLIENT_ID = "cockpit-secret-scan@cockpit"
OPENOBSERVE_USER = "scan@example.com"


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


class Scan:
    """Collects every output of a run, then reports every hit at once."""

    def __init__(self, canaries: Canaries) -> None:
        self.canaries = canaries
        self.outputs: list[tuple[str, str, frozenset[str]]] = []

    def add(self, where: str, text: str | bytes, *, allow: Iterable[str] = ()) -> None:
        self.outputs.append((where, _as_text(text), frozenset(allow)))

    def hits(self) -> list[str]:
        """Each output is searched only when the canary is somewhere in all of them together
        (thousands of outputs; a few needles each)."""
        groups: dict[frozenset[str], list[tuple[str, str]]] = {}
        for where, text, allow in self.outputs:
            groups.setdefault(allow, []).append((where, text))
        found: list[str] = []
        for allow, outputs in groups.items():
            together = "\x00".join(text for _, text in outputs)
            lowered = together.lower()
            present = {
                label: value
                for label, value in self.canaries.values.items()
                if label not in allow
                and any(needle in (together if case_sensitive else lowered) for _, needle, case_sensitive in canary_forms(value))
            }
            if present:
                for where, text in outputs:
                    found += find_canaries(text, where, present)
        return found

    def dump(self, directory: Path) -> None:
        """Every output into `directory`, one file each, to read what the scan looked at."""
        directory.mkdir(parents=True, exist_ok=True)
        for number, (where, text, _) in enumerate(self.outputs, 1):
            (directory / f"{number:05d}.txt").write_text(f"{where}\n\n{text}", encoding="utf-8", errors="replace")

    def check(self) -> None:
        if os.environ.get("SECRET_SCAN_DUMP"):
            self.dump(Path(os.environ["SECRET_SCAN_DUMP"]) / uuid.uuid4().hex[:8])
        found = self.hits()
        if not found:
            return
        summary: dict[str, dict[str, int]] = {}
        for hit in found:
            where, _, rest = hit.partition(": line ")
            label = re.search(r"canary '([^']*)'", rest)
            kind = re.sub(r"\b(row|request|run) \d+:?", r"\1 N", where)[:100]
            summary.setdefault(label.group(1) if label else "?", {}).setdefault(kind, 0)
            summary[label.group(1) if label else "?"][kind] += 1
        lines = [f"{len(found)} secret leak(s) in {len(self.outputs)} outputs. By canary and kind of output:"]
        for label, kinds in sorted(summary.items()):
            lines += [f"  {label}:"] + [f"    {count:5d} × {kind}" for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1])]
        lines += ["First hits:"] + found[:60]
        pytest.fail("\n".join(lines), pytrace=False)


def test_the_scanner_finds_a_canary_in_every_form(canaries: Canaries) -> None:
    secret = canaries.new("model api key")
    other = canaries.new("unused")
    user_pass = base64.b64encode(f"user:{secret}".encode()).decode()
    for text, form in [
        (f"line one\nkey={secret.upper()}\n", "text"),
        (json.dumps({"k": secret}), "text"),
        (f"Authorization: Basic {user_pass}", "base64"),
        (f"x{base64.urlsafe_b64encode(('ab' + secret).encode()).decode()}", "base64"),
        (secret.encode().hex().upper(), "hex"),
        (secret.encode(), "text"),
    ]:
        hits = find_canaries(text, "probe", canaries)
        assert hits and all("'model api key'" in h and f"({form}" in h for h in hits), (text, hits)
    assert find_canaries(f"a\nb {secret}", "probe", canaries)[0].startswith("probe: line 2: canary 'model api key'")
    assert find_canaries(secret, "probe", canaries, allow=["model api key"]) == []
    assert find_canaries(secret[:-1] + "-" + other[:5], "probe", canaries) == []
    with pytest.raises(AssertionError, match="probe: line 1: canary 'unused'"):
        assert_no_canary(f"{other}", "probe", canaries)
    scan = Scan(canaries)
    scan.add("clean", "nothing here")
    scan.add("leaky", f"x\n{secret}")
    scan.add("allowed", secret, allow=["model api key"])
    assert scan.hits() == [f"leaky: line 2: canary 'model api key' (text): {secret!r}"]


# -- a tenant with a canary in every secret field ------------------------------------------------


@dataclass
class SecretField:
    """One secret field of one document, and where its value comes from."""

    label: str  # e.g. "Model/gpt-4o/litellm.api_key"
    kind: str
    name: str  # the document's natural key, e.g. "acme/github"
    pattern: str  # the registry's pattern it matches, e.g. "secret.*"
    file: Path  # the YAML file that declares it
    path: tuple[str, ...]
    via: str  # "file" or "env"
    target: str  # the secret file (absolute) or the variable's name

    @property
    def reference(self) -> str:
        if self.via == "env":
            return f"${{env:{self.target}}}"
        return f"${{file:{os.path.relpath(self.target, self.file.parent)}}}"


@dataclass
class CanaryTenant:
    root: Path
    fields: list[SecretField]
    environ: dict[str, str] = field(default_factory=dict)
    """The variables the `${env:…}` references need (name → canary)."""

    def fill(self, canaries: Canaries, generation: str) -> dict[str, str]:
        """Give every field a new canary (`<label>#<generation>`): write the files, return (and
        remember) the variables. Call again with another generation to change every secret."""
        self.environ = {}
        for secret in self.fields:
            value = canaries.new(f"{secret.label}#{generation}")
            if secret.via == "file":
                Path(secret.target).write_text(value + "\n", encoding="utf-8")
            else:
                self.environ[secret.target] = value
        return dict(self.environ)

    def current(self, canaries: Canaries, generation: str) -> dict[str, str]:
        """label → the canary of `generation`."""
        return {s.label: canaries[f"{s.label}#{generation}"] for s in self.fields}


def _extra_key(pattern_segment: str) -> str:
    """A new key that a wildcard segment (`*`, `*secret*`) matches."""
    key = f"scan_extra_{pattern_segment.replace('*', '')}_ref".replace("__", "_")
    assert fnmatchcase(key, pattern_segment), (key, pattern_segment)
    return key


def write_canary_tenant(tenant: Path, canaries: Canaries, *, zitadel_issuer: str | None = None) -> CanaryTenant:
    """examples/acme in `tenant` (emptied first) with every secret field rewritten to a reference
    of its own, alternately `${file:…}` and `${env:…}`; a field matched by a wildcard pattern
    gets a sibling of the other kind, so every pattern is exercised both ways. The original
    secret files stay, unreferenced, holding canaries too. Fills generation "v1".

    Fails naming any secret field pattern of the registry that acme does not let it exercise
    both ways (a new secret field: add it to examples/acme)."""
    shutil.rmtree(tenant, ignore_errors=True)
    shutil.copytree(EXAMPLES / "acme", tenant)
    secrets_dir = tenant / "secrets"
    for original in sorted(secrets_dir.iterdir()):
        original.write_text(canaries.new(f"unreferenced/{original.name}") + "\n")
    registry = build_registry()
    fields: list[SecretField] = []
    turn: dict[tuple[str, str], int] = {}

    def declare(kind: str, name: str, pattern: str, file: Path, path: tuple[str, ...], via: str) -> SecretField:
        label = f"{kind}/{name}/{'.'.join(str(part) for part in path)}"
        slug = _slug(label)
        target = f"SCAN_{slug.upper().replace('-', '_')}" if via == "env" else str(secrets_dir / f"scan-{slug}")
        secret = SecretField(label, kind, name, pattern, file, path, via, target)
        fields.append(secret)
        return secret

    for file in sorted(tenant.rglob("*.y*ml")):
        documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        changed = False
        for document in documents:
            if not isinstance(document, dict):
                continue
            if document.get("kind") == "Account" and zitadel_issuer and document.get("zitadel"):
                document["zitadel"]["issuer"] = zitadel_issuer
                changed = True
            descriptor = registry.get(str(document.get("kind")))
            if descriptor is None or not descriptor.secret_fields:
                continue
            name = _name(descriptor, document)
            for pattern in descriptor.secret_fields:
                parts = tuple(pattern.split("."))
                matches = [path for path, value in _matches(document, parts, ()) if value]
                for index, path in enumerate(matches):
                    key = (descriptor.kind, pattern)
                    via = "file" if turn.get(key, 0) % 2 == 0 else "env"
                    turn[key] = turn.get(key, 0) + 1
                    _set(document, path, declare(descriptor.kind, name, pattern, file, path, via).reference)
                    changed = True
                    if index == 0 and "*" in parts[-1]:
                        sibling = (*path[:-1], _extra_key(parts[-1]))
                        other = "env" if via == "file" else "file"
                        _set(document, sibling, declare(descriptor.kind, name, pattern, file, sibling, other).reference)
        if changed:
            file.write_text(yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True), encoding="utf-8")

    covered = {(f.kind, f.pattern, f.via) for f in fields}
    missing = [
        f"{d.kind}.{pattern} via {via}"
        for d in registry
        for pattern in d.secret_fields
        for via in ("file", "env")
        if (d.kind, pattern, via) not in covered
    ]
    assert not missing, f"secret fields examples/acme does not exercise (add them there): {missing}"
    result = CanaryTenant(tenant, fields)
    result.fill(canaries, "v1")
    return result


def _name(descriptor: Any, document: Mapping[str, Any]) -> str:
    return "/".join(str(part) for part in descriptor.key_of(document))


def _matches(node: Any, parts: tuple[str, ...], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    # `cockpit.config.secrets.secret_fields` needs a descriptor; the same walk, per pattern.
    if not parts:
        yield path, node
        return
    if isinstance(node, list) and parts[0] == "*":  # `deployments.*.litellm.api_key`
        for index, value in enumerate(node):
            yield from _matches(value, parts[1:], (*path, index))
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(key, str) and fnmatchcase(key.lower(), parts[0]):
                yield from _matches(value, parts[1:], (*path, key))


def _set(document: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def test_secret_field_walk_agrees_with_the_config_module() -> None:
    """`_matches` is `cockpit.config.secrets.secret_fields` per pattern: same fields found."""
    registry = build_registry()
    for file in sorted((EXAMPLES / "acme").rglob("*.yaml")):
        for document in yaml.safe_load_all(file.read_text()):
            descriptor = registry.get(str((document or {}).get("kind")))
            if descriptor is None:
                continue
            ours = [p for pattern in descriptor.secret_fields for p, _ in _matches(document, tuple(pattern.split(".")), ())]
            assert sorted(ours) == sorted(p for p, _ in secret_fields(descriptor, document))


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
    from harness.cockpit import Cockpit

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


# -- fakes that record every request in full ------------------------------------------------------


@dataclass
class Exchange:
    service: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int | None = None
    response_body: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return values[-1] if values else None

    def describe(self) -> str:
        return f"{self.service} {self.method} {self.path}{'?' + self.query if self.query else ''}"


async def _recorded(service: str, app: Any, log: list[Exchange], scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await app(scope, receive, send)
        return
    exchange = Exchange(
        service,
        scope["method"],
        scope["path"],
        bytes(scope.get("query_string", b"")).decode("latin-1"),
        [(bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1")) for k, v in scope["headers"]],
        b"",
    )

    async def receive_and_keep() -> Any:
        message = await receive()
        exchange.body += message.get("body", b"")
        return message

    async def send_and_keep(message: Any) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
        elif message["type"] == "http.response.body":
            exchange.response_body += message.get("body", b"")
        await send(message)

    try:
        await app(scope, receive_and_keep, send_and_keep)
    finally:
        log.append(exchange)


class RecordingZitadel(FakeZitadel):
    """The fake Zitadel, keeping every request (headers, body) and response body."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.exchanges: list[Exchange] = []

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        await _recorded("zitadel", super().app, self.exchanges, scope, receive, send)


class RecordingOpenObserve(FakeOpenObserve):
    """The fake OpenObserve, keeping every request (headers, body) and response body."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.exchanges: list[Exchange] = []

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        await _recorded("openobserve", super().app, self.exchanges, scope, receive, send)


def _basic(user: str, password: str, *, form_encoded: bool = False) -> str:
    """An HTTP basic Authorization value; OAuth2's client_secret_basic form-encodes both parts."""
    from urllib.parse import quote

    if form_encoded:
        user, password = quote(user, safe=""), quote(password, safe="")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- running the CLI --------------------------------------------------------------------------


class Cli:
    """The CLI in-process; every run's stdout and stderr go to the scan."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.runs = 0

    def __call__(self, *args: str, expect: int | tuple[int, ...] | None = 0, prints_key: str | None = None) -> Any:
        """Run `cockpit ARGS`; `prints_key` labels the virtual key the command prints on stdout
        (it becomes a canary, allowed there and nowhere else)."""
        result = CliRunner().invoke(main, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        self.runs += 1
        where = f"run {self.runs}: cockpit {' '.join(args)}"
        if prints_key is not None:
            key = self.scan.canaries.add(prints_key, result.stdout.strip())
            assert result.stdout == key + "\n" and len(key) >= 32, f"{where}: stdout is not the key alone"
        self.scan.add(f"{where} [stdout]", result.stdout, allow=[prints_key] if prints_key else ())
        self.scan.add(f"{where} [stderr]", result.stderr)
        if expect is not None:
            expected = (expect,) if isinstance(expect, int) else expect
            assert result.exit_code in expected, f"{where}: exit {result.exit_code}\n{result.output[-3000:]}"
        return result


# -- the database ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


def dump_database(url: str) -> dict[str, list[dict[str, str]]]:
    """Every row of every table the database has (not only the ones the code knows), every
    column as text."""
    engine = create_engine_for(url)
    try:
        tables = sa.inspect(engine).get_table_names()
        dump: dict[str, list[dict[str, str]]] = {}
        with engine.connect() as connection:
            preparer = engine.dialect.identifier_preparer
            for table in sorted(tables):
                rows = connection.execute(sa.text(f"SELECT * FROM {preparer.quote(table)}")).mappings().all()
                dump[table] = [{column: _text(value) for column, value in row.items()} for row in rows]
        return dump
    finally:
        engine.dispose()


def decrypted_secrets(dump: Mapping[str, list[dict[str, str]]], box: SecretBox) -> list[str]:
    """The plaintexts of every `*_encrypted` column (which must hold ciphertext)."""
    plaintexts = []
    for table, rows in dump.items():
        for row in rows:
            for column, value in row.items():
                if column.endswith("_encrypted") and value:
                    plaintexts.append(box.decrypt(value))
    return plaintexts


# -- the run ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_serve_process(cwd: Path, use: Any, *, start_timeout: float = 180.0) -> bytes:
    """Start `cockpit serve` (a real uvicorn, access log on) with this environment, call
    `use(httpx.Client)` once it answers, stop it; its stdout and stderr together."""
    port = _free_port()
    log_path = cwd / f"serve-{port}.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-c", "from cockpit.cli import main; main()", "serve", "--port", str(port)],
            cwd=cwd, env=dict(os.environ), stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + start_timeout  # the proxy warms litellm at start-up
            while True:
                assert server.poll() is None, f"cockpit serve exited: {log_path.read_text()[-3000:]}"
                try:
                    httpx.get(f"{base}/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"cockpit serve did not answer: {log_path.read_text()[-3000:]}"
                    time.sleep(0.1)
            with httpx.Client(base_url=base, timeout=30) as http:
                use(http)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return log_path.read_bytes()


def _check_fake_authorization(zitadel: RecordingZitadel, openobserve: RecordingOpenObserve, canaries: Canaries) -> list[str]:
    """Check the Authorization header of every request the fakes got (the one place a
    credential belongs) and return the issued Zitadel access tokens."""
    issued: list[str] = []
    for exchange in zitadel.exchanges:
        if exchange.method == "POST" and exchange.path == "/oauth/v2/token" and exchange.status == 200:
            issued.append(json.loads(exchange.response_body)["access_token"])
    allowed_bearers = {f"Bearer {canaries['env/ZITADEL_MGMT_API_TOKEN']}"} | {f"Bearer {t}" for t in issued}
    wrong_pat = canaries.values.get("env/ZITADEL_MGMT_API_TOKEN (wrong)")
    if wrong_pat:
        allowed_bearers.add(f"Bearer {wrong_pat}")
    basics = {_basic(ZITADEL_CLIENT_ID, canaries["env/ZITADEL_CLIENT_SECRET"], form_encoded=True)}
    wrong_secret = canaries.values.get("env/ZITADEL_CLIENT_SECRET (wrong)")
    if wrong_secret:
        basics.add(_basic(ZITADEL_CLIENT_ID, wrong_secret, form_encoded=True))
    problems = []
    for exchange in zitadel.exchanges:
        authorization = exchange.header("authorization")
        if exchange.path in ("/.well-known/openid-configuration", "/oauth/v2/keys"):
            ok = authorization is None
        elif exchange.path == "/oauth/v2/token":
            ok = authorization in basics
        else:
            ok = authorization in allowed_bearers
        if not ok:
            problems.append(f"{exchange.describe()}: unexpected Authorization header {authorization!r}")
    basic = {_basic(OPENOBSERVE_USER, canaries["env/OPENOBSERVE_PASSWORD"])}
    wrong = canaries.values.get("env/OPENOBSERVE_PASSWORD (wrong)")
    if wrong:
        basic.add(_basic(OPENOBSERVE_USER, wrong))
    for exchange in openobserve.exchanges:
        if exchange.header("authorization") not in basic:
            problems.append(f"{exchange.describe()}: unexpected Authorization header {exchange.header('authorization')!r}")
    assert not problems, "\n".join(problems)
    return issued


def _scan_exchanges(scan: Scan, fake: RecordingZitadel | RecordingOpenObserve) -> None:
    for number, exchange in enumerate(fake.exchanges, 1):
        where = f"request {number} to {exchange.describe()}"
        scan.add(f"{where} [path and query]", f"{exchange.path}?{exchange.query}")
        scan.add(f"{where} [headers but Authorization]", "\n".join(f"{k}: {v}" for k, v in exchange.headers if k != "authorization"))
        scan.add(f"{where} [body]", exchange.body)


def _log_record_text(record: logging.LogRecord) -> str:
    standard = set(vars(logging.makeLogRecord({})))
    parts = [f"{record.name} {record.levelname} {record.getMessage()}"]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    parts += [f"{key}={value!r}" for key, value in vars(record).items() if key not in standard and key != "message"]
    return "\n".join(parts)


def test_no_secret_appears_anywhere(
    migrated_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
    canaries: Canaries,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless told: INFO logs every statement with its
    # parameters, as echo=True does (DEBUG would add every result row: the dump has those).
    caplog.set_level(logging.INFO, logger="sqlalchemy")
    scan = Scan(canaries)
    cli = Cli(scan)
    monkeypatch.chdir(tmp_path)
    for variable in list(os.environ):
        if variable.startswith(("ZITADEL_", "OPENOBSERVE_", "COCKPIT_", "LITELLM_")) or variable == "DATABASE_URL":
            monkeypatch.delenv(variable)

    # Environment-level secrets.
    secret_key = canaries.new("env/COCKPIT_SECRET_KEY")
    master_key = canaries.new("env/COCKPIT_MASTER_KEY")
    pat = canaries.new("env/ZITADEL_MGMT_API_TOKEN")
    client_secret = canaries.new("env/ZITADEL_CLIENT_SECRET")
    openobserve_password = canaries.new("env/OPENOBSERVE_PASSWORD")
    database_url = migrated_url
    if not is_sqlite(migrated_url):
        # Trust authentication never asks for it, so a canary password still connects.
        database_url = make_url(migrated_url).set(password=canaries.new("env/DATABASE_URL password")).render_as_string(hide_password=False)

    with RecordingZitadel(org_id=ORG) as zitadel, RecordingOpenObserve(user=OPENOBSERVE_USER, password=openobserve_password) as openobserve:
        zitadel.add_project(PROJECT, ORG)
        zitadel.add_pat(pat)
        zitadel.add_service_account(ZITADEL_CLIENT_ID, client_secret)
        from test_zitadel_apply import seed_users

        seed_users(zitadel)
        tenant = write_canary_tenant(tmp_path / "tenant", canaries, zitadel_issuer=zitadel.url)
        environment = {
            "DATABASE_URL": database_url,
            "COCKPIT_SECRET_KEY": secret_key,
            "COCKPIT_MASTER_KEY": master_key,
            "LITELLM_MASTER_KEY": canaries.new("env/LITELLM_MASTER_KEY (the old name, unused here)"),
            "ZITADEL_ISSUER_URL": zitadel.url,
            "ZITADEL_MGMT_API_TOKEN": pat,
            "ZITADEL_CLIENT_ID": ZITADEL_CLIENT_ID,
            "ZITADEL_CLIENT_SECRET": client_secret,
            "OPENOBSERVE_URL": openobserve.url,
            "OPENOBSERVE_USER": OPENOBSERVE_USER,
            "OPENOBSERVE_PASSWORD": openobserve_password,
            "OPENOBSERVE_ORG": "default",
            "OPENOBSERVE_STREAM": "cockpit_audit",
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)

        def set_tenant_environment(variables: dict[str, str]) -> None:
            # The first variable comes from `.env` in the working directory, the rest from the
            # environment, so both sources of `${env:…}` are exercised.
            first, *rest = sorted(variables)
            (tmp_path / ".env").write_text(f"{first}={variables[first]}\n")
            monkeypatch.delenv(first, raising=False)
            for name in rest:
                monkeypatch.setenv(name, variables[name])

        set_tenant_environment(tenant.environ)
        path = str(tenant.root)

        # -- generation 1: validate, plan in every format, apply ----------------------------
        cli("db", "upgrade")
        cli("validate", path)
        cli("validate", path, "--format", "json")
        cli("plan", path)
        cli("plan", path, "--format", "json")
        cli("plan", path, "--format", "markdown")
        saved = tmp_path / "plan-v1.json"
        cli("plan", path, "--out", str(saved), "--detailed-exitcode", expect=2)
        scan.add(f"saved plan {saved.name}", saved.read_text())
        applied = cli("apply", path, "--auto-approve")
        assert "Re-plan: no changes." in applied.stderr, applied.output[-2000:]
        assert openobserve.records("default", "cockpit_audit"), "no audit event was shipped to OpenObserve"
        assert zitadel.grants(PROJECT), "the Zitadel phase did not run"
        cli("plan", path, "--detailed-exitcode", expect=0)

        # Virtual keys: printed once, alone, on stdout; the only place they may be.
        cli("keys", "create", "--account", "acme", "--user", "ines.garcia@acme.com", prints_key="virtual key (account admin)")
        cli("keys", "create", "--account", "acme", "--user", "alice.nguyen@acme.com", "--domain", "copilot", prints_key="virtual key (copilot user)")
        admin_key, user_key = canaries["virtual key (account admin)"], canaries["virtual key (copilot user)"]
        cli("keys", "list", "--account", "acme")
        cli("keys", "list", "--account", "acme", "--json")

        cli("explain", "user", "ines.garcia@acme.com", "--account", "acme")
        cli("explain", "user", "ines.garcia@acme.com", "--account", "acme", "--json")
        cli("explain", "user", "ines.garcia@acme.com", "--account", "acme", "--config", path, "--json")
        status = cli("zitadel", "status")
        assert "acme: ok" in status.stdout, status.output
        export_v1 = tmp_path / "export-v1"
        cli("export", "--account", "acme", "--out", str(export_v1))
        v1 = tenant.current(canaries, "v1")

        # -- generation 2: every secret changes; Zitadel through client credentials -----------
        tenant.fill(canaries, "v2")
        set_tenant_environment(tenant.environ)
        monkeypatch.delenv("ZITADEL_MGMT_API_TOKEN")
        cli("validate", path)
        zitadel.fail_next(2, status=503)  # the retries log what failed
        text_plan = cli("plan", path, "--detailed-exitcode", expect=2)
        json_plan = json.loads(cli("plan", path, "--format", "json").stdout)
        cli("plan", path, "--format", "markdown")
        saved = tmp_path / "plan-v2.json"
        cli("plan", path, "--out", str(saved))
        scan.add(f"saved plan {saved.name}", saved.read_text())
        sensitive = [c for c in json_plan["changes"] if c["action"] == "update" and any(d.get("sensitive") for d in c["diff"])]
        # one resource per document with secrets, and one per deployment of a model that lists them
        secret_resources = {(s.kind, s.name, s.path[:2] if s.path[0] == "deployments" else ()) for s in tenant.fields}
        assert len(sensitive) == len(secret_resources), (
            f"expected one sensitive update per resource with secrets ({sorted(secret_resources)}), got "
            f"{[(c['kind'], c['key']) for c in sensitive]}"
        )
        assert text_plan.stdout.count("(sensitive, changed)") >= len(secret_resources), text_plan.stdout
        applied = cli("apply", str(saved))
        assert "Re-plan: no changes." in applied.stderr, applied.output[-2000:]
        cli("plan", path, "--detailed-exitcode", expect=0)
        assert any(e.path == "/oauth/v2/token" and e.status == 200 for e in zitadel.exchanges), "client credentials were not used"
        status = cli("zitadel", "status", "--account", "acme")
        assert "acme: ok" in status.stdout, status.output
        export_v2 = tmp_path / "export-v2"
        cli("export", "--account", "acme", "--out", str(export_v2))
        cli("explain", "user", "ines.garcia@acme.com", "--account", "acme", "--domain", "copilot")
        v2 = tenant.current(canaries, "v2")

        # -- the read API: every GET route, every kind of credential --------------------------
        engine = create_engine_for(database_url)
        rows = tenant_rows(engine, "acme")
        engine.dispose()
        jwt = canaries.add(
            "Zitadel JWT (account admin)",
            zitadel.sign_token({"sub": "u-ines", "email": "ines.garcia@acme.com", "alchemi:account_id": "acme", "urn:zitadel:iam:org:project:roles": {"acme_account_admin": {}}}),
        )
        now = int(time.time())
        expired_jwt = canaries.add("Zitadel JWT (expired)", zitadel.sign_token({"sub": "u-ines", "alchemi:account_id": "acme", "roles": ["super_admin"], "iat": now - 7200, "exp": now - 3600}))
        head, claims, signature = jwt.split(".")
        forged = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        forged["roles"] = ["super_admin"]
        tampered_jwt = canaries.add(
            "Zitadel JWT (tampered)",
            f"{head}.{base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b'=').decode()}.{signature}",
        )
        credentials = {
            "master key + X-Account-Id acme": {"Authorization": f"Bearer {master_key}", "X-Account-Id": "acme"},
            "virtual key (account admin)": {"Authorization": f"Bearer {admin_key}"},
            "Zitadel JWT (account admin)": {"Authorization": f"Bearer {jwt}"},
            "no credential": {},
            "master key, no account": {"Authorization": f"Bearer {master_key}"},
            "virtual key (copilot user)": {"Authorization": f"Bearer {user_key}"},
            "virtual key in x-litellm-api-key": {"x-litellm-api-key": user_key},
            "virtual key in cookie": {"Cookie": f"token={admin_key}"},
            "unknown bearer": {"Authorization": f"Bearer {canaries.new('unknown bearer token')}"},
            "expired Zitadel JWT": {"Authorization": f"Bearer {expired_jwt}"},
            "tampered Zitadel JWT": {"Authorization": f"Bearer {tampered_jwt}"},
        }
        full_sweep = list(credentials)[:4]  # one of each kind on every request; the others on
        # the routes without path parameters (what a user's own views answer)
        app = serve_app()
        requests = [("/openapi.json", "/openapi.json", {}), ("/docs", "/docs", {}), ("/redoc", "/redoc", {})]
        requests += list(route_requests(app.openapi(), parameter_values(rows, "acme"), str(rows.account_id)))

        def sweep(get: Any, label: str, callers: list[str]) -> dict[str, int]:
            answered: dict[str, int] = {}
            for caller in callers:
                for route, url, query in requests:
                    if caller not in full_sweep and route != url:
                        continue
                    response = get(url, params=query, headers=credentials[caller])
                    answered[caller] = answered.get(caller, 0) + (response.status_code == 200)
                    where = f"{label}: GET {url}{'?' + str(httpx.QueryParams(query)) if query else ''} as {caller} -> {response.status_code}"
                    scan.add(f"{where} [headers]", "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
                    scan.add(f"{where} [body]", response.content)
            return answered

        with TestClient(app) as client:
            answered = sweep(client.get, "API", list(credentials))
        assert answered["master key + X-Account-Id acme"] >= len(requests) // 2, answered
        assert answered["virtual key (account admin)"] >= 10 and answered["Zitadel JWT (account admin)"] >= 10, answered
        assert answered["virtual key (copilot user)"] >= 3, answered

        if not is_sqlite(database_url):
            # A real `cockpit serve` process, for what uvicorn and the app print and log (once,
            # on PostgreSQL, whose URL carries a password; the app is the same on SQLite).
            served = run_serve_process(tmp_path, lambda http: sweep(http.get, "cockpit serve", full_sweep))
            scan.add("cockpit serve process [stdout and stderr]", served)
            assert b"GET /v1/me/context" in served, served[-2000:]

        listed = json.loads(cli("keys", "list", "--account", "acme", "--json").stdout)
        cli("keys", "revoke", next(k["id"] for k in listed if k["user"] == "ines.garcia@acme.com"), "--account", "acme")
        cli("keys", "revoke", user_key, "--account", "acme")  # by the key itself
        cli("keys", "revoke", admin_key + "x", "--account", "acme", expect=1)  # a mistyped key
        cli("keys", "list", "--account", "acme")

        # -- error paths that quote settings ---------------------------------------------------
        wrong_pat = canaries.new("env/ZITADEL_MGMT_API_TOKEN (wrong)")
        monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", wrong_pat)
        cli("zitadel", "status", expect=1)
        cli("plan", path, expect=(0, 1))
        monkeypatch.delenv("ZITADEL_MGMT_API_TOKEN")
        monkeypatch.setenv("ZITADEL_CLIENT_SECRET", canaries.new("env/ZITADEL_CLIENT_SECRET (wrong)"))
        cli("zitadel", "status", expect=1)
        cli("plan", path, expect=(0, 1))
        monkeypatch.setenv("ZITADEL_CLIENT_SECRET", client_secret)

        # OpenObserve refuses the password: the apply still succeeds and says so.
        monkeypatch.setenv("OPENOBSERVE_PASSWORD", canaries.new("env/OPENOBSERVE_PASSWORD (wrong)"))
        userinfo = canaries.new("env/OPENOBSERVE_URL userinfo password")
        monkeypatch.setenv("OPENOBSERVE_URL", openobserve.url.replace("://", f"://scan:{userinfo}@"))
        account_file = tenant.root / "account.yaml"
        account_file.write_text(account_file.read_text().replace("ACME Corporation, all business units", "ACME Corporation (scanned)"))
        refused = cli("apply", path, "--auto-approve", "--skip-zitadel")
        assert "OpenObserve" in refused.stderr and "401" in refused.stderr, refused.stderr
        monkeypatch.setenv("OPENOBSERVE_PASSWORD", openobserve_password)
        monkeypatch.setenv("OPENOBSERVE_URL", openobserve.url)

        monkeypatch.setenv("COCKPIT_SECRET_KEY", canaries.new("env/COCKPIT_SECRET_KEY (short)", max_length=24))
        cli("plan", path, "--skip-zitadel", expect=1)
        monkeypatch.setenv("COCKPIT_SECRET_KEY", canaries.new("env/COCKPIT_SECRET_KEY (another)"))
        cli("plan", path, "--skip-zitadel", expect=(0, 1))
        cli("export", "--account", "acme", "--out", str(tmp_path / "export-other-key"), expect=(0, 1))
        monkeypatch.setenv("COCKPIT_SECRET_KEY", secret_key)

        monkeypatch.setenv("DATABASE_URL", f"postgresql://cockpit:{canaries.new('env/DATABASE_URL password (unreachable)')}@127.0.0.1:1/cockpit")
        cli("plan", path, expect=1)
        cli("db", "upgrade", expect=1)
        cli("keys", "list", "--account", "acme", expect=1)
        monkeypatch.setenv("DATABASE_URL", database_url)

        # A literal secret in every secret field: an error that never repeats the value.
        literal = tmp_path / "literal"
        shutil.copytree(tenant.root, literal)
        for secret in tenant.fields:
            file = literal / secret.file.relative_to(tenant.root)
            documents = list(yaml.safe_load_all(file.read_text()))
            descriptor = build_registry().get(secret.kind)
            for document in documents:
                if isinstance(document, dict) and document.get("kind") == secret.kind and _name(descriptor, document) == secret.name:
                    _set(document, secret.path, canaries.new(f"literal/{secret.label}"))
            file.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        invalid = cli("validate", str(literal), expect=1)
        assert invalid.output.count("takes a reference, not a literal secret") == len(tenant.fields), invalid.output
        cli("validate", str(literal), "--format", "json", expect=1)
        cli("plan", str(literal), expect=1)
        cli("explain", "user", "ines.garcia@acme.com", "--account", "acme", "--config", str(literal), expect=(0, 1))

        # -- what the fakes received ------------------------------------------------------------
        issued = _check_fake_authorization(zitadel, openobserve, canaries)
        for number, token in enumerate(issued, 1):
            canaries.add(f"Zitadel access token issued to cockpit #{number}", token)
        _scan_exchanges(scan, zitadel)
        _scan_exchanges(scan, openobserve)
        assert any(e.status == 401 for e in openobserve.exchanges), "the wrong OpenObserve password was not tried"

    # -- files written ------------------------------------------------------------------------
    for directory in (export_v1, export_v2):
        written = sorted(p for p in directory.rglob("*") if p.is_file())
        assert written, f"export wrote nothing to {directory}"
        for file in written:
            scan.add(f"exported file {file.relative_to(tmp_path)}", file.read_bytes())

    # -- the database ---------------------------------------------------------------------------
    dump = dump_database(database_url)
    for table, table_rows in dump.items():
        for number, row in enumerate(table_rows, 1):
            scan.add(f"table {table} row {number}", json.dumps(row, ensure_ascii=False, indent=0))
    assert dump.get("audit_events"), "no audit rows"
    plaintexts = "\n".join(decrypted_secrets(dump, SecretBox(secret_key, source="COCKPIT_SECRET_KEY")))
    missing = [label for label, value in v2.items() if value not in plaintexts]
    assert not missing, f"the encrypted columns do not hold these current secrets (is the scan looking at the right place?): {missing}"
    assert not any(value in plaintexts for value in v1.values()), "old secrets are still stored"
    if is_sqlite(database_url):
        database_file = sqlite_path(database_url)
        for found in sorted(database_file.parent.glob(database_file.name + "*")):  # -wal, the gateway's spool
            for file in sorted(found.rglob("*")) if found.is_dir() else [found]:
                scan.add(f"SQLite file {file.relative_to(database_file.parent)} (raw bytes)", file.read_bytes().decode("latin-1"))

    # -- logs, warnings, file descriptors -------------------------------------------------------
    for record in caplog.records:
        scan.add(f"log record {record.name}:{record.lineno} ({record.levelname})", _log_record_text(record))
    assert caplog.records, "no log record was captured at all"
    for number, warning in enumerate(recwarn.list, 1):
        scan.add(f"warning {number} ({warning.category.__name__} at {warning.filename}:{warning.lineno})", str(warning.message))
    out, err = capfd.readouterr()
    scan.add("file descriptor 1 (stdout)", out)
    scan.add("file descriptor 2 (stderr)", err)

    scan.check()
