"""Attacks on a saved plan (`plan --out plan.json`, then `apply plan.json`): an edited plan is
refused before anything is written, naming what failed to verify.

Each variant edits the file the way someone with write access to a CI artifact would: redirect a
model's `api_base`, add an admin, change one character, drop the MAC, replace it with a plain
SHA-256, or swap in a plan made with another secret key. The database is compared before and
after: a refused plan leaves every table as it was (no rows, no audit event, no apply run).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.store.secrets import canonical_json
from harness.cockpit import BASE, Cockpit, snapshot

WITH_BASE = BASE.replace(
    'api_key: "${env:TEST_OPENAI_KEY}"',
    'api_key: "${env:TEST_OPENAI_KEY}", api_base: "https://api.openai.com/v1"',
)
# The plan under attack: an update, so the database already holds what a tampered plan would change.
NEXT = WITH_BASE.replace("display_name: Alice", "display_name: Alicia").replace(
    "input_per_million: 2.5", "input_per_million: 3"
)
ATTACKER = "https://attacker.example/v1"


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    cockpit.write(WITH_BASE)
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output
    cockpit.write(NEXT)
    saved = cockpit.plan("--out", "plan.json")
    assert saved.exit_code == 2, saved.output
    return cockpit


def plan_file(cockpit: Cockpit) -> Path:
    return cockpit.root / "plan.json"


def read(cockpit: Cockpit) -> dict[str, Any]:
    return json.loads(plan_file(cockpit).read_text())


def write(cockpit: Cockpit, document: dict[str, Any]) -> None:
    plan_file(cockpit).write_text(json.dumps(document, indent=1))


def change_of(document: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in document["changes"] if c["type"] == type_)


def redirect_api_base(document: dict[str, Any]) -> None:
    change_of(document, "model")["after"]["litellm"]["api_base"] = ATTACKER


def add_admin(document: dict[str, Any]) -> None:
    document["changes"].append({
        "action": "create", "kind": "Account", "type": "account_admin", "account": "acme",
        "key": ["mallory@evil.example"], "before": None, "after": {"role": "account_admin"},
        "diff": [], "protect": False, "origin": "tenant/tenant.yaml:7:10", "reason": None, "sensitive": None,
    })
    document["summary"]["create"] += 1


def plain_sha256(document: dict[str, Any]) -> None:
    """Edit, then "re-sign" with an unkeyed hash: what anyone could compute."""
    redirect_api_base(document)
    document["integrity"]["mac"] = hashlib.sha256(canonical_json({k: v for k, v in document.items() if k != "integrity"}).encode()).hexdigest()


def resign_digests(document: dict[str, Any]) -> None:
    """Edit, then recompute the section digests so they match; only the MAC is left as it was."""
    redirect_api_base(document)
    sections = document["integrity"]["sections"]
    sections["changes"] = hashlib.sha256(canonical_json(document["changes"]).encode()).hexdigest()
    document["integrity"]["changes"] = [hashlib.sha256(canonical_json(c).encode()).hexdigest()[:16] for c in document["changes"]]


def remove_mac(document: dict[str, Any]) -> None:
    del document["integrity"]


def remove_mac_and_edit(document: dict[str, Any]) -> None:
    redirect_api_base(document)
    del document["integrity"]


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "api_base": (redirect_api_base, r"modified after it was saved \(changed: changes; edited changes: #\d+ model::gpt-4o\)"),
    "admin": (add_admin, r"modified after it was saved \(changed: changes, summary; edited changes: #\d+ account_admin:acme:mallory@evil.example \(added\)\)"),
    "plain-sha256": (plain_sha256, r"MAC does not verify"),
    "resigned-digests": (resign_digests, r"MAC does not verify"),
    "no-mac": (remove_mac, r"has no MAC"),
    "no-mac-edited": (remove_mac_and_edit, r"has no MAC"),
}


def refused(cockpit: Cockpit, pattern: str) -> str:
    before = snapshot(cockpit.url)
    result = cockpit.run("apply", "plan.json")
    assert result.exit_code == 1, result.output
    assert re.search(pattern, result.output), result.output
    assert "refusing to apply" in result.output and "Traceback" not in result.output
    assert snapshot(cockpit.url) == before, "a refused plan wrote to the database"
    assert "attacker" not in result.output and "canary" not in result.output
    return result.output


@pytest.mark.parametrize("name", TAMPERINGS)
def test_tampered_saved_plan_is_refused_before_writing(cockpit: Cockpit, name: str) -> None:
    tamper, pattern = TAMPERINGS[name]
    document = read(cockpit)
    tamper(document)
    write(cockpit, document)
    refused(cockpit, pattern)


def test_one_character_changed_is_refused(cockpit: Cockpit) -> None:
    text = plan_file(cockpit).read_text()
    assert text.count('"Alicia"') >= 1
    plan_file(cockpit).write_text(text.replace('"Alicia"', '"Alicib"'))
    refused(cockpit, r"modified after it was saved \(changed: changes; edited changes: #\d+ copilot_user:acme:alice@acme.com\)")


def test_plan_made_with_another_secret_key_is_refused(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_SECRET_KEY", "another-secret-key-abcdefghijklmnopqrstuvwxyz")
    assert cockpit.plan("--out", "plan.json").exit_code == 2
    monkeypatch.setenv("COCKPIT_SECRET_KEY", "test-secret-key-0123456789abcdef0123456789")
    output = refused(cockpit, r"made with another secret key than COCKPIT_SECRET_KEY")
    assert "another-secret-key" not in output


def test_untampered_plan_still_applies(cockpit: Cockpit) -> None:
    """The MAC survives the file as written (indentation, key order, floats, non-ASCII)."""
    document = read(cockpit)
    assert document["format_version"] == "1.2"
    assert set(document["integrity"]) == {"algorithm", "key_id", "sections", "changes", "mac"}
    assert set(document["integrity"]["sections"]) == set(document) - {"integrity"}
    # Re-serialised with other whitespace and key order, the content is the same: it applies.
    plan_file(cockpit).write_text(json.dumps(dict(reversed(list(document.items()))), indent=4))
    applied = cockpit.run("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert cockpit.scalar("SELECT display_name FROM copilot_users WHERE email = 'alice@acme.com'") == "Alicia"


def test_unsigned_json_output_is_not_appliable(cockpit: Cockpit) -> None:
    """`plan --format json` prints an unsigned plan: applying it is refused, saying how to save one."""
    printed = cockpit.plan("--format", "json")
    plan_file(cockpit).write_text(printed.stdout)
    refused(cockpit, r"has no MAC.*cockpit plan PATH --out FILE")
