"""The kind registry checks itself when it is built; one walk shows every kind through every stage.

A new kind that misses a piece (an expander, an exporter, a resource type, a column) does not
build: the checks below are the registry's own, each shown refusing one broken declaration.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cockpit.config.registry import AGENT, CONNECTION, Descriptor, RegistryError, build_registry
from cockpit.config.validate import validate_path
from cockpit.resources.builder import Builder
from cockpit.resources.kind import Kind, KindRegistry
from cockpit.resources.kinds import KINDS, kind_registry
from cockpit.resources.rows import ParentRef, ResourceType
from cockpit.resources.types import resource_types
from cockpit.store.tables import metadata

from harness.cockpit import BASE, Cockpit


def _with(name: str, **changes) -> list[Kind]:
    """The kinds of cockpit/v1 with one of them changed."""
    return [replace(k, **changes) if k.name == name else k for k in KINDS]


def test_the_registry_builds_and_matches_the_tables() -> None:
    registry = kind_registry()
    assert [k.name for k in registry] == build_registry().kinds()
    registry.check_tables(metadata.tables)


def test_a_kind_without_an_exporter_does_not_build() -> None:
    with pytest.raises(RegistryError, match="'Agent' has no exporter"):
        KindRegistry(_with("Agent", export=None), build_registry())


def test_a_kind_without_an_expander_does_not_build() -> None:
    with pytest.raises(RegistryError, match="'Connection' has no expander"):
        KindRegistry(_with("Connection", expand=None), build_registry())


def test_every_kind_of_the_language_needs_a_declaration() -> None:
    with pytest.raises(RegistryError, match=r"\['BudgetPlan'\] of the config language have no declaration"):
        KindRegistry([k for k in KINDS if k.name != "BudgetPlan"], build_registry())
    with pytest.raises(RegistryError, match="declared twice"):
        KindRegistry([*KINDS, KINDS[0]], build_registry())
    stranger = Descriptor("Agent", AGENT.model, AGENT.key_fields)
    with pytest.raises(RegistryError, match="not the config language's Agent"):
        KindRegistry(_with("Agent", descriptor=stranger), build_registry())


def test_a_resource_type_belongs_to_the_kind_that_declares_it() -> None:
    agent = kind_registry().get("Agent")
    stray = ResourceType("agent_note", kind="Connection", table="agent_notes")
    with pytest.raises(RegistryError, match="says kind 'Connection' but is declared by 'Agent'"):
        KindRegistry(_with("Agent", types=(*agent.types, stray)), build_registry())
    with pytest.raises(RegistryError, match="'agent' is declared twice"):
        KindRegistry(_with("Agent", types=(*agent.types, agent.types[0])), build_registry())
    orphan = ResourceType("agent_note", kind="Agent", table="agent_notes", parents=(ParentRef("x_id", "budget_plan"),))
    with pytest.raises(RegistryError, match="parent 'budget_plan' must be declared first"):
        KindRegistry(_with("Agent", types=(*agent.types, orphan)), build_registry())
    with pytest.raises(RegistryError, match="indexes or serializes unknown type 'connection'"):
        KindRegistry(_with("Agent", index={**agent.index, "connection": agent.index["agent"]}), build_registry())


def test_secret_locations_are_stated_once_and_must_reach_a_secret_column() -> None:
    connection = kind_registry().get("Connection")
    by_name = {t.name: t for t in resource_types()}
    assert by_name["connection"].secret_refs({"secret_refs": {"token": "${env:T}"}}) == {"token": "${env:T}"}
    assert by_name["account_sso"].secret_refs({"settings": {"client_secret": "${env:S}", "id": "x"}}) == {"client_secret": "${env:S}"}
    unsourced = tuple(replace(t, secret_source={}) if t.secret else t for t in connection.types)
    with pytest.raises(RegistryError, match="none of Connection's secret_fields"):
        KindRegistry(_with("Connection", types=unsourced), build_registry())
    no_group = tuple(replace(t, secret=None) if t.secret else t for t in connection.types)
    with pytest.raises(RegistryError, match="has a secret_source but no secret group"):
        KindRegistry(_with("Connection", types=no_group), build_registry())
    assert CONNECTION.secret_fields == ("secret.*",)


def test_a_missing_column_is_a_registry_error() -> None:
    agent = kind_registry().get("Agent")
    widened = tuple(replace(t, fields=(*t.fields, "colour")) if t.name == "agent" else t for t in agent.types)
    with pytest.raises(RegistryError, match=r"columns \['colour'\] not in table agents"):
        KindRegistry(_with("Agent", types=widened), build_registry()).check_tables(metadata.tables)


def test_an_expander_may_only_make_its_own_kinds_types(tmp_path: Path) -> None:
    (tmp_path / "tenant.yaml").write_text(BASE)
    declared = validate_path(tmp_path).tenant.of("Agent")[0]
    builder = Builder(declared, "acme", lambda *a: None, AGENT, kind_registry().types_of("Agent"))
    with pytest.raises(RegistryError, match="the expander of Agent made a 'connection'"):
        builder.add("connection", ("github",))


@pytest.fixture
def cockpit(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cockpit:
    return Cockpit(migrated_url, tmp_path, monkeypatch)


def test_every_kind_plans_applies_exports_and_renders(cockpit: Cockpit) -> None:
    kinds_in_base = {d["kind"] for d in yaml.safe_load_all(BASE)}
    assert kinds_in_base == set(build_registry().kinds())
    cockpit.write(BASE)
    plan = json.loads(cockpit.plan("--json").stdout)
    planned_types = {c["type"] for c in plan["changes"]}
    assert {t.kind for t in resource_types() if t.name in planned_types} == kinds_in_base
    text = cockpit.plan().stdout
    markdown = cockpit.plan("--markdown").stdout
    for resource_type in resource_types():
        if resource_type.name in planned_types:
            assert resource_type.display in text
            assert resource_type.display in markdown
    assert cockpit.apply().exit_code == 0
    for resource_type in resource_types():
        if resource_type.name in planned_types:
            assert cockpit.scalar(f"SELECT count(*) FROM {resource_type.table}") > 0, resource_type.table
    assert cockpit.run("export", "--account", "acme", "--out", "exported").exit_code == 0
    (cockpit.root / "exported" / "connections" / "github.key").write_text((cockpit.tenant / "github.key").read_text())
    assert cockpit.run("plan", "exported", "--detailed-exitcode").exit_code == 0
