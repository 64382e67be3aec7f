"""Whether this server should get traffic (`GET /health/readiness`): each condition checked
now, each failure named in the answer, none of them quoting a URL, a password or a key.

Ready when the database answers, its schema is at the revision this Cockpit ships, the proxy
runs with its model catalog loaded (a catalog that failed to load at start-up, e.g. because
the migration had not run yet, is loaded here once the schema is current), and Redis answers
when `REDIS_URL` is set. The checks block, so the route runs them in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy.engine import Engine

from cockpit.store.engine import DatabaseNotConnected
from cockpit.store.migrate import SchemaNotCurrent, require_current

REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)
    """Condition → "ok" or why it is not met."""

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not ready",
            "not_ready": [name for name, value in self.checks.items() if value != "ok"],
            "checks": self.checks,
        }


def check_readiness(engine: Engine, proxy: Any, environ: Mapping[str, str], redis_client: Any = None) -> Readiness:
    found = Readiness()
    found.checks["database"] = found.checks["schema"] = "ok"
    try:
        require_current(engine)
    except DatabaseNotConnected as exc:
        found.checks["database"] = str(exc)
        found.checks["schema"] = "unknown: the database is not reachable"
    except SchemaNotCurrent as exc:
        found.checks["schema"] = str(exc)
    except Exception as exc:  # a driver error the connection helper does not translate
        found.checks["database"] = f"Database not usable: {type(exc).__name__}"
        found.checks["schema"] = "unknown: the database is not usable"
    found.checks["catalog"] = _catalog(proxy, schema_ok=found.checks["schema"] == "ok")
    if (environ.get("REDIS_URL") or "").strip():
        found.checks["redis"] = _redis(redis_client)
    return found


def _catalog(proxy: Any, schema_ok: bool) -> str:
    if proxy is None:
        return "the LLM proxy is not running (the server log says why, e.g. no COCKPIT_SECRET_KEY)"
    if not proxy.catalog.needs(None):  # loaded at least once
        return "ok"
    if not schema_ok:
        return "not loaded: waiting for the database schema"
    try:
        proxy.catalog.refresh()
    except Exception as exc:
        return f"not loaded: {type(exc).__name__}"
    return "ok"


def redis_client_for(environ: Mapping[str, str]) -> Any:
    """A client for `REDIS_URL` with short timeouts, for the readiness check only."""
    url = (environ.get("REDIS_URL") or "").strip()
    if not url:
        return None
    import redis

    try:
        return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    except ValueError:  # not a redis:// URL; the check says so
        return None


def _redis(client: Any) -> str:
    if client is None:
        return "REDIS_URL is not usable"
    try:
        client.ping()
    except Exception as exc:
        return f"Redis not reachable: {type(exc).__name__}"
    return "ok"
