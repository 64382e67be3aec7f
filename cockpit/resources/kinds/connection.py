"""Connection: a tool connection (OpenAPI, MCP, Composio), its secret and who may use it."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import CONNECTION
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, protect, put, scope_sort, scope_text
from cockpit.resources.index import AccountGraph, scope_at
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ParentRef, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType(
        "connection",
        kind="Connection",
        table="connections",
        key_columns=("name",),
        fields=("type", "description", "credential_visibility", "allow_user_self_manage", "config", "secret_refs"),
        secret="secret",
        secret_source={"secret_refs": "secret"},
        protectable=True,
        audit_domain="copilot",
    ),
    ResourceType("connection_grant", kind="Connection", table="connection_grants", key_columns=SCOPE, parents=(ParentRef("connection_id", "connection"),), fields=("can_manage",), audit_domain="copilot", label="connection grant"),
)


def expand(b: Builder, c: models.Connection) -> None:
    b.add(
        "connection", (c.name,), protect=c.protect, type=c.type, description=c.description,
        credential_visibility=c.credential_visibility, allow_user_self_manage=c.allow_user_self_manage,
        config=c.config, secret_refs=dict(c.secret),
    )
    for i, grant in enumerate(c.grants):
        b.add("connection_grant", (c.name, *scope_key(grant.scope)), ("grants", i), can_manage=grant.can_manage)


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {f"connections/{d['name']}.yaml": [d] for d in connection_documents(res)}


def connection_documents(res: AccountResources) -> list[Document]:
    documents = []
    for connection in res.of("connection"):
        name, fields = connection.key[0], connection.fields
        document = header("Connection", res.account)
        document["name"] = name
        protect(document, connection)
        document["type"] = fields["type"]
        for field_name in ("description", "credential_visibility", "allow_user_self_manage"):
            put(document, models.Connection, field_name, fields[field_name])
        put(document, models.Connection, "config", fields["config"] or {})
        put(document, models.Connection, "secret", dict(fields["secret_refs"] or {}))
        grants = []
        for grant in sorted(res.children("connection_grant", (name,)), key=lambda g: scope_sort(*g.key[-2:])):
            entry = {"scope": scope_text(*grant.key[-2:])}
            put(entry, models.ConnectionGrant, "can_manage", grant.fields["can_manage"])
            grants.append(entry)
        put(document, models.Connection, "grants", grants)
        documents.append(document)
    return documents


def _index_connection(g: AccountGraph, r: Resource) -> None:
    g.connections[r.key[0]] = r


def _index_grant(g: AccountGraph, r: Resource) -> None:
    g.connection_grants[scope_at(r, 1)][r.key[0]] = r


KIND = Kind(
    CONNECTION,
    TYPES,
    expand=expand,
    export=export,
    index={"connection": _index_connection, "connection_grant": _index_grant},
)
