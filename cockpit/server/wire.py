"""Rows as the API shows them, all in this one module: a generic shape derived from each
resource type's declared columns (`cockpit.resources.types`), the per-type differences of the
old API's wire shape declared in `WIRES`, and the few shapes that are not one resource row.

The generic shape of a resource row is `id`, `account_id`, the parents' id columns, the key
columns, the fields, then `created_at` and `updated_at`. A scope (`scope_type`, `scope_key`)
is shown as `scope_type`, `scope_id` (the old API's row id), `scope_key` and `scope`. Ids are
strings, times ISO 8601, numbers floats, booleans booleans and a JSON column that is empty
reads `{}`. A new resource type's rows serialize in that shape without any code here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, Callable, Mapping

import sqlalchemy as sa

from cockpit.resources.types import ResourceType, types_by_name
from cockpit.store.tables import metadata

SECRET_MASK = "••••••••"
"""What a secret SSO setting reads as: eight bullets, whatever its length."""
MASKED = {"masked": True}
"""What a connection's secrets read as, always."""

ScopeFields = Callable[[str, str], dict[str, Any]]
"""(scope_type, scope_key) → the four scope fields, over the account's snapshot."""


def plain(value: Any) -> Any:
    """A database value as JSON: ids as strings, timestamps in ISO 8601, numbers as floats."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_json(row: Any) -> dict[str, Any]:
    """A row whose SELECT already names the wire fields, each value made plain."""
    return {key: plain(value) for key, value in row._mapping.items()}


def mask_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """SSO settings with every `*secret*` key that has a value shown as bullets."""
    return {
        key: SECRET_MASK if "secret" in key.lower() and value else value
        for key, value in (settings or {}).items()
    }


@dataclass(frozen=True)
class Wire:
    """How a resource type's rows differ from the generic shape."""

    columns: tuple[str, ...] | None = None
    """The columns after `id` and `account_id`, in wire order; None: parents' id columns,
    key columns, fields."""
    rename: Mapping[str, str] = field(default_factory=dict)
    """Column → wire name."""
    computed: Callable[[Any], Mapping[str, Any]] | None = None
    """Values derived from the row, by column name (placed where `columns` names them)."""
    timestamps: tuple[str, ...] = ("created_at", "updated_at")


def _team_key(row: Any) -> Mapping[str, Any]:
    return {"key": f"{row.org_name}/{row.name}"}


_TEAM = Wire(columns=("org_id", "org_name", "name", "key", "description"), computed=_team_key)
_USER = Wire(columns=("identity_user_id", "email", "display_name", "status"))

WIRES: Mapping[str, Wire] = {
    "account_admin": Wire(rename={"email": "user_email"}),
    "account_sso": Wire(
        rename={"provider": "sso_provider", "settings": "sso_settings"},
        computed=lambda row: {"settings": mask_settings(row.settings)},
    ),
    "console_team": _TEAM,
    "copilot_team": _TEAM,
    "console_user": _USER,
    "copilot_user": _USER,
    "model_grant": Wire(rename={"access": "access_mode"}),
    "feature_entitlement": Wire(rename={"feature": "feature_code", "config": "config_json"}),
    "guardrail_preset": Wire(columns=("code", "name", "description", "domain", "config"), rename={"config": "preset_json"}),
    "guardrail_pattern": Wire(
        columns=("code", "preset_id", "name", "regex", "type", "action", "enabled", "is_system"),
        rename={"code": "guard_type", "name": "pattern_name", "regex": "pattern_regex", "type": "pattern_type"},
        computed=lambda row: {"is_system": False},
    ),
    "agent": Wire(
        columns=("name", "description", "definition", "mandatory_guardrail_preset_ids", "mandatory_guardrail_codes"),
        rename={"definition": "definition_json"},
    ),
    "agent_grant": Wire(columns=("agent_id", "scope_type"), timestamps=("created_at",)),
    "connection": Wire(
        columns=("type", "name", "description", "credential_visibility", "allow_user_self_manage", "config", "secret_json"),
        rename={"type": "connection_type", "config": "config_json"},
        computed=lambda row: {"secret_json": dict(MASKED)},
    ),
    "connection_grant": Wire(columns=("connection_id", "scope_type", "can_manage"), timestamps=("created_at",)),
    "marketplace_listing": Wire(
        columns=("entity_type", "entity_id", "entity_name", "title", "description", "published", "featured", "verified", "pricing_model", "version", "author"),
        rename={"published": "is_published", "featured": "is_featured", "verified": "is_verified"},
    ),
    "marketplace_grant": Wire(columns=("listing_id", "scope_type"), rename={"listing_id": "marketplace_id"}, timestamps=("updated_at", "created_at")),
}
"""Where the old API's shape of a type's rows differs from the generic one."""


@cache
def _column_kinds(table_name: str) -> Mapping[str, str]:
    """Column → `bool` or `json` for the columns whose values the wire normalises."""
    kinds = {}
    for column in metadata.tables[table_name].c:
        if isinstance(column.type, sa.Boolean):
            kinds[column.name] = "bool"
        elif isinstance(column.type, sa.JSON):
            kinds[column.name] = "json"
    return kinds


def _columns(resource_type: ResourceType, wire: Wire) -> tuple[str, ...]:
    if wire.columns is not None:
        return wire.columns
    return (*(p.column for p in resource_type.parents), *resource_type.key_columns, *resource_type.fields)


def resource_json(
    type_name: str, row: Any, scope: ScopeFields | None = None, values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One row of a resource type as the API shows it. `scope` gives a scope's fields (the
    row ids come from the account's snapshot); `values` are what the row cannot know (a
    grant's account id, an agent's presets, a listing's entity id), by column name."""
    resource_type = types_by_name()[type_name]
    wire = WIRES.get(type_name, Wire())
    kinds = _column_kinds(resource_type.table)
    given = {**(wire.computed(row) if wire.computed else {}), **(values or {})}

    def value(column: str) -> Any:
        if column in given:
            return given[column]
        found = getattr(row, column)
        kind = kinds.get(column)
        if kind == "bool":
            return bool(found)
        if kind == "json":
            return found or {}
        return plain(found)

    shown: dict[str, Any] = {"id": value("id")}
    if resource_type.account_scoped:
        shown["account_id"] = value("account_id")
    for column in _columns(resource_type, wire):
        if column == "scope_key":
            continue
        if column == "scope_type":
            if scope is None:
                raise TypeError(f"{type_name} rows name a scope: resource_json needs `scope`")
            shown.update(scope(row.scope_type, row.scope_key))
            continue
        shown[wire.rename.get(column, column)] = value(column)
    for column in wire.timestamps:
        shown[column] = value(column)
    return shown


# -- shapes that are not one resource row ----------------------------------------------------------

def console_model_policy(row: Any) -> dict[str, list[str]]:
    policy = (row.model_policy or {}).get("console") or {}
    return {"allow_models": list(policy.get("allow") or []), "deny_models": list(policy.get("deny") or [])}


def feature_pack(row: Any) -> dict[str, Any]:
    pack = row.feature_pack or {}
    return {"features": list(pack.get("features") or []), "config": dict(pack.get("config") or {})}


def account_fields(row: Any) -> dict[str, Any]:
    """An account in the old API's names (`account_id`, `account_name`, `domain` for the
    e-mail domain), the new fields beside them."""
    return {
        "account_id": str(row.id),
        "account_name": row.name,
        "account_alias": row.alias,
        "description": row.description,
        "domain": row.email_domain,
        "email_domain": row.email_domain,
        "status": row.status,
        "workspace": row.workspace,
        "metadata": {
            "feature_pack": feature_pack(row),
            "console_model_policy": console_model_policy(row),
            "zitadel": dict(row.zitadel or {}),
        },
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }


def account_bundle(row: Any, admins: list[Any], sso: Any | None) -> dict[str, Any]:
    """An account with its admins, SSO (masked), allocation and policies."""
    return {
        **account_fields(row),
        "admins": [resource_json("account_admin", a) for a in admins],
        "sso_config": resource_json("account_sso", sso) if sso is not None else None,
        "allocation": {
            "monthly_credits": plain(row.monthly_credits),
            "overflow_limit": plain(row.overflow_limit),
            "credit_factor": plain(row.credit_factor),
            "effective_from": plain(row.created_at),
            "updated_at": plain(row.updated_at),
        },
        "feature_pack": feature_pack(row),
        "console_model_policy": console_model_policy(row),
        "model_policy": dict(row.model_policy or {}),
        "zitadel_config": dict(row.zitadel or {}),
    }


def catalog_model(row: Any, deployments: list[Any] = ()) -> dict[str, Any]:
    """A catalog model: prices per million tokens as the config writes them; the upstream keys
    are never shown, not even their references."""
    litellm = {k: v for k, v in (row.litellm or {}).items() if k != "api_key"}
    return {
        "model_id": plain(row.id),
        "model_name": row.name,
        "display_name": row.name,
        "description": row.description,
        "deployment_name": litellm.get("model"),
        "litellm_params": litellm,
        "input_cost_per_million": plain(row.input_per_million),
        "output_cost_per_million": plain(row.output_per_million),
        "cached_input_cost_per_million": plain(row.cached_input_per_million),
        "deployments": [
            {
                "name": d.name,
                "litellm_params": {k: v for k, v in (d.litellm or {}).items() if k != "api_key"},
                "weight": d.weight,
                "rpm": d.rpm,
                "tpm": d.tpm,
            }
            for d in deployments
        ],
        "fallbacks": list(row.fallbacks or []),
        "timeout_seconds": row.timeout_seconds,
        "workspace": row.workspace,
        "is_active": True,
        "created_at": plain(row.created_at),
        "updated_at": plain(row.updated_at),
    }
