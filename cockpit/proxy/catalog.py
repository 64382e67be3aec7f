"""The model catalog the proxy routes to, rebuilt when an apply changes it.

Every `Model` change writes an audit event without an account, so the newest such event is
the catalog's version (`cockpit.runtime.snapshots.read_version`, second half). Each account
snapshot carries the version it saw; when a request brings a newer one than the catalog was
read at, the deployments are read again from the `models` table (in a worker thread, once,
while other requests keep the old ones). An apply thus reaches every replica within the snapshot
TTL, without a restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cockpit.proxy.llm import CatalogModel, Deployment, catalog_model, deployment
from cockpit.proxy.upstream import Direct
from cockpit.store.secrets import SecretBox, SecretKeyError
from cockpit.store.tables import audit_events, models

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    version: Any
    models: dict[str, CatalogModel] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    direct: dict[str, Direct] = field(default_factory=dict)
    """The models whose upstream is called without litellm (`Direct.of`)."""


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
        with self.engine.connect() as connection, connection.begin():
            version = connection.execute(sa.select(sa.func.max(audit_events.c.created_at)).where(audit_events.c.account_id.is_(None))).scalar()
            rows = connection.execute(
                sa.select(models.c.name, models.c.litellm, models.c.api_key_encrypted, models.c.input_per_million, models.c.output_per_million, models.c.cached_input_per_million).order_by(models.c.name)
            ).all()
        deployments = []
        for row in rows:
            params = dict(row.litellm or {})
            try:
                api_key = self.box.decrypt_json(row.api_key_encrypted).get("api_key") if row.api_key_encrypted else None
            except SecretKeyError as exc:
                log.error("model %s is not served: %s", row.name, exc)
                continue
            deployments.append((catalog_model(row.name, params, row.input_per_million, row.output_per_million, row.cached_input_per_million), params, api_key))
        targets = {model.name: deployment(model, params, api_key) for model, params, api_key in deployments}
        direct = {name: route for name, target in targets.items() if (route := Direct.of(target)) is not None}
        return Catalog(version, {model.name: model for model, _, _ in deployments}, targets, direct)
