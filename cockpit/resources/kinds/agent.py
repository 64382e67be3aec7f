"""Agent: a copilot agent, the guardrail presets it runs under and who may use it."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import AGENT
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, protect, put, scopes
from cockpit.resources.index import AccountGraph, scope_at
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ParentRef, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType("agent", kind="Agent", table="agents", key_columns=("name",), fields=("description", "definition"), protectable=True, audit_domain="copilot"),
    ResourceType("agent_guardrail", kind="Agent", table="agent_guardrails", parents=(ParentRef("agent_id", "agent"), ParentRef("preset_id", "guardrail_preset")), audit_domain="copilot", label="agent guardrail"),
    ResourceType("agent_grant", kind="Agent", table="agent_grants", key_columns=SCOPE, parents=(ParentRef("agent_id", "agent"),), audit_domain="copilot", label="agent grant"),
)


def expand(b: Builder, a: models.Agent) -> None:
    b.add("agent", (a.name,), protect=a.protect, description=a.description, definition=a.definition)
    for i, code in enumerate(a.guardrails):
        b.add("agent_guardrail", (a.name, code), ("guardrails", i))
    for i, scope in enumerate(a.grants):
        b.add("agent_grant", (a.name, *scope_key(scope)), ("grants", i))


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {f"agents/{d['name']}.yaml": [d] for d in agent_documents(res)}


def agent_documents(res: AccountResources) -> list[Document]:
    documents = []
    for agent in res.of("agent"):
        name = agent.key[0]
        document = header("Agent", res.account)
        document["name"] = name
        protect(document, agent)
        put(document, models.Agent, "description", agent.fields["description"])
        put(document, models.Agent, "definition", agent.fields["definition"] or {})
        document["guardrails"] = [g.key[1] for g in res.children("agent_guardrail", (name,))]
        put(document, models.Agent, "grants", scopes(res.children("agent_grant", (name,))))
        documents.append(document)
    return documents


def _index_agent(g: AccountGraph, r: Resource) -> None:
    g.agents[r.key[0]] = r


def _index_guardrail(g: AccountGraph, r: Resource) -> None:
    g.agent_guardrails[r.key[0]][r.key[1]] = r


def _index_grant(g: AccountGraph, r: Resource) -> None:
    g.agent_grants[scope_at(r, 1)][r.key[0]] = r


KIND = Kind(
    AGENT,
    TYPES,
    expand=expand,
    export=export,
    index={"agent": _index_agent, "agent_guardrail": _index_guardrail, "agent_grant": _index_grant},
)
