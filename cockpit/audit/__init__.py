"""Audit events beyond the database: shipping copies to OpenObserve for search and alerting."""

from cockpit.audit.openobserve import (
    OpenObserveConfigError,
    OpenObserveSettings,
    ShipResult,
    ship,
)

__all__ = ["OpenObserveConfigError", "OpenObserveSettings", "ShipResult", "ship"]
