"""The API's routers, one module per area, listed explicitly (no package scanning); the
proxy's routes come from `cockpit.proxy.routes`."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from cockpit.proxy import routes as proxy
    from cockpit.server.routes import accounts, agents, audit, budgets, catalog, connections, core, directory, features, guardrails, health, marketplace, models, rate_limits

    return [
        core.router, health.router, accounts.router, directory.router, agents.router, connections.router,
        guardrails.router, models.router, rate_limits.router, features.router, marketplace.router,
        budgets.router, audit.router, catalog.router, proxy.router,
    ]
