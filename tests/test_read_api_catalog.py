"""GET /v1/super/models: the catalog for super admins only, without upstream keys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cockpit.server.app import create_app
from cockpit.store.engine import create_engine_for
from harness.cockpit import EXAMPLES, Cockpit


@pytest.fixture
def client(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cockpit = Cockpit(migrated_url, tmp_path, monkeypatch)
    shutil.rmtree(cockpit.tenant)
    shutil.copytree(EXAMPLES / "acme", cockpit.tenant)
    assert cockpit.apply().exit_code == 0
    engine = create_engine_for(migrated_url)
    yield TestClient(create_app(engine, {"COCKPIT_MASTER_KEY": "mk"}))
    engine.dispose()


def test_super_admin_lists_the_catalog_without_keys(client: TestClient) -> None:
    answer = client.get("/v1/super/models", headers={"Authorization": "Bearer mk"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 5 and len(body["items"]) == 5
    assert {m["model_name"] for m in body["items"]} >= {"gpt-4o", "gpt-4o-mini"}
    assert "api_key" not in answer.text and "secrets/" not in answer.text
    pair = next(m for m in body["items"] if m["model_name"] == "gpt-4.1")
    assert [(d["name"], d["weight"], d["rpm"], d["litellm_params"]["model"]) for d in pair["deployments"]] == [
        ("eu", 3, 600, "azure/acme-gpt41-weu"), ("us", 1, None, "openai/gpt-4.1"),
    ]
    assert (pair["fallbacks"], pair["timeout_seconds"], pair["deployment_name"]) == (["gpt-4o-mini"], 60, None)
    assert client.get("/v1/super/models?limit=1", headers={"Authorization": "Bearer mk"}).json()["total"] == 5


def test_others_are_refused(client: TestClient) -> None:
    assert client.get("/v1/super/models").json() == {"detail": "Super admin access required"}
    assert client.get("/v1/super/models", headers={"Authorization": "Bearer nope"}).status_code == 403
