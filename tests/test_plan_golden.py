"""Golden test of the public plan output: `cockpit plan --format json|text|markdown`.

Pins what `cockpit plan` prints for a realistic tenant, so that a restructuring (such as moving
the saved-plan file format away from the public JSON plan) can prove it changes nothing.

Three scenarios, all through the real CLI (CliRunner) on a SQLite file under tmp_path:

- ``acme_create``: examples/acme planned against an empty, migrated database (all creates);
- ``acme_edit``: acme applied, then edited (a model grant removed, a display name changed, a
  budget allocation changed, a user removed from a team) and planned again: deletes, a
  revocation, updates with diffs, access impact "lose" and a budget "change";
- ``acme_access``: acme applied, then an org grant removed and one word of a multi-line system
  prompt changed: the access impact grouped under the removed grant (with the file:line the
  apply recorded), the people counted and listed, and the prompt's line diff.

Each plan is rendered as JSON, text (no colour: CliRunner's stdout is not a terminal) and
markdown, normalised by `normalise_json` / `normalise_text` (only what varies between runs),
and compared exactly with ``tests/golden/plan_<scenario>.{json,txt,md}``. JSON goldens keep
the order the CLI prints, of keys and of lists.

Regenerate after an intended change, and review the diff before committing it:

    COCKPIT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_plan_golden.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cockpit.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("COCKPIT_UPDATE_GOLDEN", "").strip() not in ("", "0")
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
FORMATS = {"json": "json", "text": "txt", "markdown": "md"}

# The second scenario's edits to the applied acme tenant: (file, old text, new text).
EDITS = [
    # remove a grant (copilot: the data team lead's gpt-4o exception) -> delete + revocation
    ("access/models.yaml",
     "  - {model: gpt-4o, scope: user:hiro.tanaka@acme.com}"
     "             # data team lead exception\n",
     ""),
    # change a display name -> update with a diff
    ("directory/copilot.yaml", "display_name: Bob Schmidt}", "display_name: Bob Schmidt-Meyer}"),
    # change a budget allocation -> update, access impact "change"
    ("budgets/fy26-q1.yaml", "{scope: org:sales, credits: 9000, overflow_cap: 500}",
     "{scope: org:sales, credits: 8500, overflow_cap: 500}"),
    # remove a user from a team (chen.wei leaves research/ml) -> delete of a team member
    ("directory/copilot.yaml",
     "          - {user: chen.wei@acme.com}          # also in sales/solutions\n", ""),
]

# The third scenario's edits: an org grant removed (16 people lose a model: the access impact
# grouped under the grant, with where it was declared) and one word of a multi-line prompt.
ACCESS_EDITS = [
    ("access/models.yaml", "  - {model: gpt-4o, scope: org:engineering}\n  - {model: gpt-4.1, scope: org:research}\n  # teams", "  - {model: gpt-4.1, scope: org:research}\n  # teams"),
    ("agents/code-reviewer.yaml", "Point out bugs, missing tests", "Point out bugs, flaky tests"),
]

_UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
)
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
)


# -- normalisation: only what legitimately varies between runs ------------------------------

def normalise_text(text: str, root: Path) -> str:
    """Replace what differs from run to run in any rendering, and nothing else:

    - the run's tmp directory (absolute config path, secret bases) -> ``<tmp>``;
    - UUIDs (plan ids, database ids) -> ``<uuid>``;
    - ISO timestamps (created_at) -> ``<timestamp>``.

    Dates without a time (e.g. an Azure ``api_version: 2024-10-21``) are config and stay."""
    text = text.replace(str(root.resolve()), "<tmp>").replace(str(root), "<tmp>")
    text = _UUID.sub("<uuid>", text)
    return _TIMESTAMP.sub("<timestamp>", text)


def normalise_json(document: dict[str, Any], root: Path) -> dict[str, Any]:
    """The JSON plan with its per-run fields replaced by placeholders, in the CLI's key order:

    - ``plan_id`` -> ``<plan-id>``, ``created_at`` -> ``<created-at>``;
    - ``config_path`` -> ``<tmp>/tenant`` (and the tmp directory anywhere else, e.g.
      ``sensitive.base``), UUIDs and timestamps in any string, as in `normalise_text`;
    - the values of ``fingerprints`` (database-state hashes) -> ``<fingerprint>``; their keys
      (which accounts, ``*catalog*``, ``zitadel:…``) stay.

    The secrets' ``sensitive.fingerprint`` stays: it is an HMAC under the fixed test key of
    the example's fixed secret files, so it is the same on every run."""
    document = dict(document)
    document["plan_id"] = "<plan-id>"
    document["created_at"] = "<created-at>"
    document["fingerprints"] = {key: "<fingerprint>" for key in document["fingerprints"]}

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return normalise_text(value, root)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            return {walk(key): walk(item) for key, item in value.items()}
        return value

    return walk(document)


# -- driving the CLI --------------------------------------------------------------------------

class Tenant:
    """A copy of examples/acme at ``<root>/tenant``, planned from ``<root>`` (so origins read
    ``tenant/…``) against a SQLite file at ``<root>/cockpit.db``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "tenant"
        shutil.copytree(EXAMPLES / "acme", self.path)

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(main, list(args))
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def plan(self, output_format: str, expected_exit: int) -> str:
        result = self.run("plan", str(self.path), "--detailed-exitcode", "--format", output_format)
        assert result.exit_code == expected_exit, result.output
        return result.stdout

    def edit(self, name: str, old: str, new: str) -> None:
        file = self.path / name
        text = file.read_text()
        assert text.count(old) == 1, f"{name}: {old!r} should occur once"
        file.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A clean environment for the module: only the variables the plan needs, none of the
    caller's ZITADEL_/COCKPIT_/LITELLM_/DATABASE_ settings (Zitadel is deliberately not
    configured, so its note is part of the golden)."""
    root = tmp_path_factory.mktemp("golden")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("ZITADEL_", "COCKPIT_", "LITELLM_", "DATABASE_")):
                patch.delenv(name)
        patch.delenv("NO_COLOR", raising=False)
        patch.setenv("COCKPIT_SECRET_KEY", SECRET_KEY)
        yield root


def _scenario_root(environment: Path, name: str, patch: pytest.MonkeyPatch) -> Tenant:
    root = environment / name
    root.mkdir()
    patch.chdir(root)
    patch.setenv("DATABASE_URL", f"sqlite:///{root / 'cockpit.db'}")
    tenant = Tenant(root)
    migrated = tenant.run("db", "upgrade")
    assert migrated.exit_code == 0, migrated.output
    return tenant


def _all_formats(tenant: Tenant, expected_exit: int) -> dict[str, str]:
    outputs = {fmt: tenant.plan(fmt, expected_exit) for fmt in FORMATS}
    document = normalise_json(json.loads(outputs["json"]), tenant.root)
    outputs["json"] = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    outputs["text"] = normalise_text(outputs["text"], tenant.root)
    outputs["markdown"] = normalise_text(outputs["markdown"], tenant.root)
    return outputs


@pytest.fixture(scope="module")
def plans(environment: Path) -> dict[str, dict[str, str]]:
    """scenario -> format -> normalised output."""
    result = {}
    with pytest.MonkeyPatch.context() as patch:
        tenant = _scenario_root(environment, "acme_create", patch)
        result["acme_create"] = _all_formats(tenant, expected_exit=2)

        tenant = _scenario_root(environment, "acme_edit", patch)
        applied = tenant.run("apply", str(tenant.path), "--auto-approve")
        assert applied.exit_code == 0, applied.output
        assert "Re-plan: no changes." in applied.output
        for name, old, new in EDITS:
            tenant.edit(name, old, new)
        result["acme_edit"] = _all_formats(tenant, expected_exit=3)

        tenant = _scenario_root(environment, "acme_access", patch)
        applied = tenant.run("apply", str(tenant.path), "--auto-approve")
        assert applied.exit_code == 0, applied.output
        for name, old, new in ACCESS_EDITS:
            tenant.edit(name, old, new)
        result["acme_access"] = _all_formats(tenant, expected_exit=3)
    return result


# -- the comparison ---------------------------------------------------------------------------

def _compare(actual: str, golden: Path, max_lines: int = 300) -> None:
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"{golden} is missing; create it with COCKPIT_UPDATE_GOLDEN=1", pytrace=False)
    expected = golden.read_text(encoding="utf-8")
    if actual == expected:
        return
    diff = list(difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True),
        fromfile=f"{golden.name} (golden)", tofile=f"{golden.name} (this run)",
    ))
    shown = "".join(diff[:max_lines])
    if len(diff) > max_lines:
        shown += f"\n… {len(diff) - max_lines} more diff lines\n"
    pytest.fail(
        f"the plan output differs from {golden}:\n{shown}\n"
        "If the change is intended, regenerate with "
        "COCKPIT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_plan_golden.py and review the diff.",
        pytrace=False,
    )


@pytest.mark.parametrize("output_format", list(FORMATS))
@pytest.mark.parametrize("scenario", ["acme_create", "acme_edit", "acme_access"])
def test_plan_matches_golden(
    plans: dict[str, dict[str, str]], scenario: str, output_format: str
) -> None:
    _compare(plans[scenario][output_format], GOLDEN / f"plan_{scenario}.{FORMATS[output_format]}")


def test_edit_scenario_exercises_what_it_claims(
    plans: dict[str, dict[str, str]], environment: Path
) -> None:
    """Guard against goldens that quietly stopped covering deletes, revocations and updates."""
    document = json.loads(plans["acme_edit"]["json"])
    summary = document["summary"]
    assert summary["delete"] >= 2 and summary["update"] >= 2 and summary["revoke"] >= 1, summary
    changes = {(c["action"], c["type"]) for c in document["changes"]}
    for expected in (("delete", "model_grant"), ("delete", "copilot_team_member"),
                     ("update", "copilot_user"), ("update", "budget_allocation")):
        assert expected in changes, expected
    assert {"lose", "change"} <= {i["change"] for i in document["access_impact"]}
    removed = json.loads(plans["acme_access"]["json"])["access_by_cause"]
    grant = [g for g in removed if [c["key"] for c in g["causes"]] == [["copilot", "gpt-4o", "org", "engineering"]]]
    assert len(grant) == 1 and grant[0]["change"] == "lose" and grant[0]["count"] == len(grant[0]["subjects"]) >= 10
    assert grant[0]["causes"][0]["origin"] == "tenant/access/models.yaml:15:5"  # recorded by the apply
    assert "        - You review pull requests. Point out bugs, missing tests" in plans["acme_access"]["text"]
    assert "```diff\n- You review pull requests. Point out bugs, missing tests" in plans["acme_access"]["markdown"]
    fingerprints = document["fingerprints"]
    assert fingerprints and all(value == "<fingerprint>" for value in fingerprints.values())
    for scenario in plans.values():
        for output in scenario.values():
            assert str(environment) not in output and str(environment.resolve()) not in output


def test_readme_shows_a_real_access_impact_excerpt(plans: dict[str, dict[str, str]]) -> None:
    """README's plan section quotes the acme_access plan as the CLI prints it."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("    Access impact, by the change that causes it:\n")
    excerpt = [line[4:] for line in readme[start:readme.index("\n\n", readme.index("    Creates and updates", start))].splitlines()]
    printed = plans["acme_access"]["text"].splitlines()
    at = printed.index(excerpt[0])
    assert printed[at:at + len(excerpt)] == excerpt
