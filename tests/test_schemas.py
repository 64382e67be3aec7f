"""The committed JSON Schemas are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cockpit.cli import main
from cockpit.config.schema import render_schema, schema_file_name
from cockpit.config.registry import Descriptor, Registry, RegistryError, build_registry
from cockpit.config import models

import pytest

SCHEMAS = Path(__file__).parent.parent / "schemas"


def test_committed_schemas_match_the_models() -> None:
    registry = build_registry()
    for descriptor in registry:
        committed = SCHEMAS / schema_file_name(descriptor.kind)
        assert committed.exists(), f"run `cockpit schema export` to create {committed.name}"
        assert committed.read_text() == render_schema(descriptor), (
            f"{committed.name} drifted from the models; run `cockpit schema export`"
        )
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(
        schema_file_name(d.kind) for d in registry
    )


def test_schema_export_writes_every_kind(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schema", "export", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert len(list(tmp_path.glob("*.schema.json"))) == len(build_registry())


def test_registry_orders_parents_first() -> None:
    kinds = build_registry().kinds()
    for descriptor in build_registry():
        for dependency in descriptor.depends_on:
            assert kinds.index(dependency) < kinds.index(descriptor.kind)


def test_registry_refuses_duplicates_cycles_and_unknown_dependencies() -> None:
    a = Descriptor("A", models.Account, ("name",), ("B",))
    b = Descriptor("B", models.Model, ("name",), ("A",))
    with pytest.raises(RegistryError, match="twice"):
        Registry([a, a])
    with pytest.raises(RegistryError, match="cycle"):
        Registry([a, b])
    with pytest.raises(RegistryError, match="unknown kind"):
        Registry([a])
    with pytest.raises(RegistryError, match="no natural key"):
        Registry([Descriptor("C", models.Model, ())])
