"""Zitadel in plan and apply, against the fake Zitadel on loopback and real databases."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fakes.zitadel import FakeZitadel
from harness.cockpit import EXAMPLES, SECRET_KEY, Cockpit

PROJECT = "301234567890123456"
ORG = "301234567890120001"
PAT = "pat-for-cockpit-tests-0123456789"


def acme_people() -> set[str]:
    emails = set()
    for path in (EXAMPLES / "acme").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Directory":
                emails |= {u["email"].lower() for u in document.get("users", [])}
            if document and document.get("kind") == "Account":
                emails |= {a["email"].lower() for a in document.get("admins", [])}
    return emails


@pytest.fixture
def fake() -> FakeZitadel:
    with FakeZitadel(org_id=ORG) as server:
        server.add_project(PROJECT, ORG)
        server.add_pat(PAT)
        yield server


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeZitadel) -> Cockpit:
    runner = Cockpit(migrated_url, tmp_path, monkeypatch)
    shutil.rmtree(runner.tenant)
    shutil.copytree(EXAMPLES / "acme", runner.tenant)
    account = runner.tenant / "account.yaml"
    account.write_text(re.sub(r"issuer: \"?https://id\.acme\.com\"?", f"issuer: {fake.url}", account.read_text()))
    monkeypatch.setenv("ZITADEL_ISSUER_URL", fake.url)
    monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", PAT)
    return runner


def seed_users(fake: FakeZitadel, skip: set[str] = frozenset()) -> dict[str, str]:
    """Every acme person becomes a Zitadel user; those in `zitadel.users` keep their ids."""
    account = yaml.safe_load((EXAMPLES / "acme" / "account.yaml").read_text())
    known = {k.lower(): str(v) for k, v in account["zitadel"].get("users", {}).items()}
    return {email: fake.add_user(email, user_id=known.get(email), org_id=ORG) for email in sorted(acme_people() - skip)}


def test_acme_with_zitadel_applies_and_replans_empty(cockpit: Cockpit, fake: FakeZitadel) -> None:
    missing = "zoe.wagner@acme.com" if "zoe.wagner@acme.com" in acme_people() else sorted(acme_people())[-1]
    users = seed_users(fake, skip={missing})
    plan = cockpit.plan("--json")
    assert plan.exit_code == 2, plan.output
    document = json.loads(plan.stdout)
    actions = {c["action"] for c in document["zitadel"]["changes"]}
    assert actions == {"add_role", "add_grant"}
    assert any(missing in w for w in document["zitadel"]["warnings"])
    applied = cockpit.apply()
    assert applied.exit_code == 0, applied.output
    assert "Re-plan: no changes." in applied.output
    roles = {r["key"] for r in fake.roles(PROJECT)}
    assert roles == {"acme_account_admin", "acme_console_org_admin", "acme_console_team_admin", "acme_copilot_org_admin", "acme_copilot_team_admin", "acme_end_user"} or roles >= {"acme_end_user"}
    grants = fake.grants(PROJECT)
    assert len(grants) == len(users) == len({g["userId"] for g in grants})
    assert cockpit.plan().exit_code == 0

    # Remove a person from the config: their grant is revoked (exit 3, needs --allow-delete).
    gone = next(e for e in sorted(users) if e.startswith("a") and "admin" not in e)
    for path in (cockpit.tenant / "directory").glob("*.yaml"):
        text = path.read_text()
        text = re.sub(rf"^.*{re.escape(gone)}.*\n", "", text, flags=re.M)
        path.write_text(text)
    revoke = cockpit.plan("--json")
    if revoke.exit_code == 1:
        pytest.skip(f"removing {gone} leaves dangling references in acme: {revoke.output[:200]}")
    zitadel = json.loads(revoke.stdout)["zitadel"]["changes"]
    assert any(c["action"] == "revoke_grant" and c["subject"] == gone for c in zitadel)
    assert revoke.exit_code == 3
    assert cockpit.apply().exit_code == 1
    assert cockpit.apply("--allow-delete").exit_code == 0
    assert users[gone] not in {g["userId"] for g in fake.grants(PROJECT)}


def test_converges_with_one_call_in_five_failing(cockpit: Cockpit, fake: FakeZitadel) -> None:
    seed_users(fake)
    fake.fail_ratio(0.2, statuses=(429, 500, 503, 504), seed=7, lost_response_ratio=0.05)
    outcomes = [cockpit.apply()]
    while outcomes[-1].exit_code != 0 and len(outcomes) < 4:
        outcomes.append(cockpit.apply())
    assert outcomes[-1].exit_code == 0, [o.output[-600:] for o in outcomes]
    failed = sum(1 for r in fake.requests if r[2] >= 429)
    print(f"converged after {len(outcomes)} apply run(s); {failed} of {len(fake.requests)} requests failed")
    fake.fail_ratio(0)
    grants = fake.grants(PROJECT)
    assert len(grants) == len({g["userId"] for g in grants}) == len(acme_people())
    assert cockpit.plan().exit_code == 0


def test_plan_says_once_when_zitadel_is_not_configured(cockpit: Cockpit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZITADEL_ISSUER_URL")
    monkeypatch.delenv("ZITADEL_MGMT_API_TOKEN")
    result = cockpit.plan()
    assert result.exit_code == 2
    assert result.output.count("Zitadel is not configured") == 1


def test_unreachable_zitadel_is_a_clear_error(cockpit: Cockpit, fake: FakeZitadel) -> None:
    fake.stop()
    result = cockpit.plan()
    assert result.exit_code == 1
    assert "--skip-zitadel" in result.output and "Traceback" not in result.output
    assert cockpit.plan("--skip-zitadel").exit_code == 2


@pytest.mark.postgres
def test_killed_apply_is_finished_by_the_next(postgres_database_url: str, tmp_path: Path, fake: FakeZitadel, monkeypatch: pytest.MonkeyPatch) -> None:
    from cockpit.store.migrate import upgrade

    upgrade(postgres_database_url)
    runner = Cockpit(postgres_database_url, tmp_path, monkeypatch)
    shutil.rmtree(runner.tenant)
    shutil.copytree(EXAMPLES / "acme", runner.tenant)
    account = runner.tenant / "account.yaml"
    account.write_text(re.sub(r"issuer: \"?https://id\.acme\.com\"?", f"issuer: {fake.url}", account.read_text()))
    seed_users(fake)
    monkeypatch.setenv("ZITADEL_ISSUER_URL", fake.url)
    monkeypatch.setenv("ZITADEL_MGMT_API_TOKEN", PAT)
    fake.delay = 0.05
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "COCKPIT_SECRET_KEY": SECRET_KEY, "ZITADEL_ISSUER_URL": fake.url, "ZITADEL_MGMT_API_TOKEN": PAT}
    process = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "apply", str(runner.tenant), "--auto-approve"], env=environ, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(fake.grants(PROJECT)) < 5:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(fake.grants(PROJECT))
    assert 5 <= done_before < len(acme_people()), "the kill must land inside the Zitadel phase"
    assert runner.scalar("SELECT count(*) FROM apply_journal WHERE status = 'pending'") > 0
    fake.delay = 0
    finished = runner.apply()
    assert finished.exit_code == 0, finished.output
    assert "left by an earlier apply" in finished.output
    assert runner.scalar("SELECT count(*) FROM apply_journal WHERE status <> 'done'") == 0
    grants = fake.grants(PROJECT)
    assert len(grants) == len({g["userId"] for g in grants}) == len(acme_people())
    assert runner.plan().exit_code == 0


def test_reading_2000_people_takes_few_requests(tmp_path: Path, fake: FakeZitadel) -> None:
    """Roles and grants of an account with 2,000 users: pages of 1,000, users in batches."""
    from cockpit.zitadel.desired import ProjectTarget
    from cockpit.zitadel import ZitadelSettings
    from cockpit.zitadel.reader import read_zitadel

    emails = [f"user{i:04d}@acme.com" for i in range(2000)]
    fake.add_role(PROJECT, "acme_end_user", "End User", "common")
    for email in emails:
        fake.add_grant(fake.add_user(email, org_id=ORG), PROJECT, ["acme_end_user"], org_id=ORG)
    target = ProjectTarget("acme", PROJECT, ORG, None, "acme_", {}, {})
    settings = ZitadelSettings.from_environment({"ZITADEL_ISSUER_URL": fake.url, "ZITADEL_MGMT_API_TOKEN": PAT})
    before = len(fake.requests)
    with settings.client(org_id=ORG) as client:
        actual = read_zitadel(client, target, emails)
    requests = fake.requests[before:]
    grant_and_role_calls = [r for r in requests if "/grants/_search" in r[1] or "/roles/_search" in r[1]]
    user_calls = [r for r in requests if r[1].endswith("/users/_search") or r[1].startswith("/v2/users")]
    print(f"2,000 people: {len(grant_and_role_calls)} grant/role requests, {len(user_calls)} user-search requests, {len(requests)} in all")
    assert len(actual.user_ids) == 2000 and len(actual.grants) == 2000
    assert len(grant_and_role_calls) <= 10


def test_saved_plan_is_stale_when_zitadel_moved(cockpit: Cockpit, fake: FakeZitadel) -> None:
    import httpx

    seed_users(fake)
    assert cockpit.apply().exit_code == 0
    account = cockpit.tenant / "account.yaml"
    account.write_text(account.read_text().replace("alias: ACME Corp", "alias: ACME Corporation", 1))
    saved = cockpit.plan("--out", "plan.json")
    assert saved.exit_code == 2, saved.output
    victim = fake.grants(PROJECT)[0]
    # Someone changes one of our people's grants in Zitadel after the plan was made.
    httpx.put(
        f"{fake.url}/management/v1/users/{victim['userId']}/grants/{victim['id']}",
        json={"roleKeys": sorted(set(victim["roleKeys"]) ^ {"acme_account_admin"})},
        headers={"Authorization": f"Bearer {PAT}", "x-zitadel-orgid": ORG},
    ).raise_for_status()
    result = cockpit.run("apply", "plan.json")
    assert result.exit_code == 1, result.output
    assert "Zitadel of account acme changed since the plan" in result.output
    assert cockpit.scalar("SELECT alias FROM accounts WHERE name = 'acme'") == "ACME Corp"
