"""One walk over the registry: every kind validates, expands, plans, applies, exports and renders.

A new kind that misses a step (an expander, a resource type, an exporter, a table) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cockpit.export.documents import EXPORTED_TYPES
from cockpit.config.registry import build_registry
from cockpit.resources.desired import EXPANDERS
from cockpit.resources.types import resource_types
from cockpit.store.tables import metadata

from harness.cockpit import BASE, Cockpit


def test_every_kind_has_each_stage() -> None:
    kinds = set(build_registry().kinds())
    assert set(EXPANDERS) == kinds
    assert {t.kind for t in resource_types()} == kinds
    assert set(EXPORTED_TYPES) == {t.name for t in resource_types()}
    for resource_type in resource_types():
        table = metadata.tables[resource_type.table]
        for column in (*resource_type.key_columns, *resource_type.fields, *(p.column for p in resource_type.parents)):
            assert column in table.c, f"{resource_type.name}: {column} not in {table.name}"


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
