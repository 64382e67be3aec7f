"""What a resource type is: one table's rows, their natural key, fields and secret.

A resource type maps one table: its natural key is the keys of its parents (foreign-key columns)
followed by its own key columns; its fields are columns compared one by one. The types
themselves are declared by their kinds (`cockpit.resources.kinds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cockpit.config.secrets import fields_matching

AUDIT_DOMAINS = ("iam", "billing", "console", "copilot")
SCOPE = ("scope_type", "scope_key")
"""The key columns of everything granted, assigned or allocated to a scope."""


@dataclass(frozen=True)
class ParentRef:
    column: str
    """The foreign-key column of this type's table, e.g. `team_id`."""
    type: str
    """The parent resource type, e.g. `copilot_team`."""


@dataclass(frozen=True)
class ResourceType:
    name: str
    kind: str
    """The config kind that declares it."""
    table: str
    key_columns: tuple[str, ...] = ()
    """Own key columns, after the parents' keys."""
    parents: tuple[ParentRef, ...] = ()
    fields: tuple[str, ...] = ()
    account_scoped: bool = True
    """Has an `account_id` column (all but the account itself and the global model catalog)."""
    secret: str | None = None
    """Secret group: the table has `<secret>_encrypted` and `<secret>_fingerprint` columns."""
    secret_source: Mapping[str, str] = field(default_factory=dict)
    """Field → the document path it copies, for the fields holding the secret's references
    (e.g. `secret_refs` ← `secret`); the kind's `secret_fields` say which keys below are secret."""
    secret_paths: tuple[str, ...] = ()
    """Dotted patterns of the secret's references in the fields, derived from the kind's
    `secret_fields` through `secret_source` when the registry is built."""
    protectable: bool = False
    scales: Mapping[str, int] = field(default_factory=dict)
    """Decimal places of numeric fields, as the columns store them."""
    audit_domain: str | None = None
    """iam, billing, console or copilot; None: the resource's `domain` key column decides."""
    label: str = ""
    """How the plan names the type to people, e.g. "copilot team"."""

    @property
    def display(self) -> str:
        return self.label or self.name.replace("_", " ")

    def secret_refs(self, fields: Mapping[str, Any]) -> dict[str, str]:
        """The `${env:…}`/`${file:…}` references of the secret in `fields`, by field name."""
        return {
            path[-1]: value
            for path, value in fields_matching(fields, self.secret_paths)
            if isinstance(value, str) and value
        }
