"""The read API's routers, one module per area, listed explicitly (no package scanning)."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from cockpit.server.routes import core

    return [core.router]
