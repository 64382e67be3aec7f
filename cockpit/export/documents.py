"""State → config documents: the exporters are declared with their kinds
(`cockpit.resources.kinds`, each the inverse of that kind's expander) over the helpers of
`cockpit.resources.documents`; this module names what the export engine writes back."""

from __future__ import annotations

from cockpit.resources.documents import AccountResources, Document
from cockpit.resources.kinds import kind_registry
from cockpit.resources.kinds.directory import DEFAULT_GLOBAL_DESCRIPTION

__all__ = ["AccountResources", "DEFAULT_GLOBAL_DESCRIPTION", "Document", "EXPORTED_TYPES"]

EXPORTED_TYPES = frozenset(
    t.name for kind in kind_registry() if kind.export is not None for t in kind.types
)
"""Every resource type the export writes back: the types of every kind (each has an exporter,
or the registry does not build)."""
