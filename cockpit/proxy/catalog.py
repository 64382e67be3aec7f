"""The model catalog the proxy routes to, rebuilt when an apply changes it.

Every `Model` change writes an audit event without an account, so the newest such event is
the catalog's version (`cockpit.runtime.snapshots.read_version`, second half). Each account
snapshot carries the version it saw; when a request brings a newer one than the catalog was
read at, the models, their deployments and fallbacks are read again (`models`,
`model_deployments`: one query each, in a worker thread, once, while other requests keep the
old ones). An apply thus reaches every replica within the snapshot
TTL, without a restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.proxy import routing
from cockpit.proxy.llm import CatalogModel, Deployment, catalog_model, deployment
from cockpit.proxy.routing import Route, route_of
from cockpit.proxy.upstream import Direct
from cockpit.store.secrets import SecretBox, SecretKeyError
from cockpit.store.tables import audit_events, model_deployments, models

log = logging.getLogger(__name__)

DeploymentId = tuple[str, str]
"""(catalog model, deployment name): `cockpit.proxy.routing.Deployment.id`."""


@dataclass(frozen=True)
class Catalog:
    version: Any
    models: dict[str, CatalogModel] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    """How each model is served: its deployments, fallbacks and attempt timeout (the router's)."""
    deployments: dict[DeploymentId, Deployment] = field(default_factory=dict)
    """Each deployment's litellm keywords, its decrypted key included."""
    direct: dict[DeploymentId, Direct] = field(default_factory=dict)
    """The deployments whose upstream is called without litellm (`Direct.of`)."""

    def direct_for(self, target: routing.Deployment, wire: str) -> Direct | None:
        """The deployment's direct route when its upstream speaks `wire` (the endpoint's API);
        None: litellm translates."""
        found = self.direct.get(target.id)
        return found if found is not None and found.wire == wire else None


def _newer(candidate: Any, than: Any) -> bool:
    if candidate is None:
        return False
    return than is None or candidate > than


class CatalogCache:
    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box
        self.current = Catalog(version=None)
        self._lock = threading.Lock()
        self._loaded = False

    def needs(self, version: Any) -> bool:
        """Whether `version` (from an account snapshot) is newer than what is built."""
        return not self._loaded or _newer(version, self.current.version)

    def refresh(self, version: Any = None) -> Catalog:
        """Rebuild from the database unless another thread already did for `version`."""
        with self._lock:
            if self._loaded and not _newer(version, self.current.version):
                return self.current
            self.current = self._load()
            self._loaded = True
            return self.current

    def _load(self) -> Catalog:
        """The whole catalog in three queries (version, models, deployments), whatever its size."""
        d = model_deployments.c
        with self.engine.connect() as connection, connection.begin():
            version = connection.execute(sa.select(sa.func.max(audit_events.c.created_at)).where(audit_events.c.account_id.is_(None))).scalar()
            rows = connection.execute(
                sa.select(
                    models.c.id, models.c.name, models.c.litellm, models.c.api_key_encrypted, models.c.input_per_million,
                    models.c.output_per_million, models.c.cached_input_per_million, models.c.fallbacks, models.c.timeout_seconds,
                ).order_by(models.c.name)
            ).all()
            listed = connection.execute(sa.select(d.model_id, d.name, d.litellm, d.api_key_encrypted, d.weight, d.rpm, d.tpm).order_by(d.model_id, d.name)).all()
        by_model: dict[Any, list[Any]] = {}
        for row in listed:
            by_model.setdefault(row.model_id, []).append(row)
        catalog = Catalog(version)
        for row in rows:
            try:
                self._add(catalog, row, by_model.get(row.id, []))
            except SecretKeyError as exc:
                log.error("model %s is not served: %s", row.name, exc)
        return catalog

    def _add(self, catalog: Catalog, row: Any, listed: list[Any]) -> None:
        """One model into `catalog`: its route, and per deployment its litellm keywords (with the
        model's `timeout_seconds`, which bounds each attempt) and its direct route if any."""
        keys = {item.name: self._api_key(item.api_key_encrypted) for item in listed} if listed else {routing.SHORTHAND: self._api_key(row.api_key_encrypted)}
        declared = [{"name": item.name, "litellm": item.litellm, "weight": item.weight, "rpm": item.rpm, "tpm": item.tpm} for item in listed]
        route = route_of(row.name, row.litellm, declared, tuple(row.fallbacks or ()), row.timeout_seconds)
        model = catalog_model(row.name, route.deployments[0].params, row.input_per_million, row.output_per_million, row.cached_input_per_million)
        catalog.models[row.name] = model
        catalog.routes[row.name] = route
        for target in route.deployments:
            params = dict(target.params)
            if route.timeout_seconds:
                params["timeout"] = route.timeout_seconds
            built = catalog.deployments[target.id] = deployment(model, params, keys.get(target.name))
            if (direct := Direct.of(built)) is not None:
                catalog.direct[target.id] = direct

    def _api_key(self, encrypted: str | None) -> str | None:
        return self.box.decrypt_json(encrypted).get("api_key") if encrypted else None
