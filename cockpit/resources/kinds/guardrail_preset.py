"""GuardrailPreset: a set of patterns, assigned to scopes (and agents, through Agent)."""

from __future__ import annotations

from cockpit.config import models
from cockpit.config.registry import GUARDRAIL_PRESET
from cockpit.resources.builder import Builder, scope_key
from cockpit.resources.documents import AccountResources, Document, header, protect, put, scopes
from cockpit.resources.index import AccountGraph, scope_at
from cockpit.resources.kind import Kind
from cockpit.resources.rows import SCOPE, ParentRef, ResourceType
from cockpit.resources.state import Resource

TYPES = (
    ResourceType("guardrail_preset", kind="GuardrailPreset", table="guardrail_presets", key_columns=("code",), fields=("name", "domain", "description", "config"), protectable=True, audit_domain="copilot", label="guardrail preset"),
    ResourceType("guardrail_pattern", kind="GuardrailPreset", table="guardrail_patterns", key_columns=("name",), parents=(ParentRef("preset_id", "guardrail_preset"),), fields=("regex", "type", "enabled", "action"), audit_domain="copilot", label="guardrail pattern"),
    ResourceType("guardrail_assignment", kind="GuardrailPreset", table="guardrail_assignments", key_columns=SCOPE, parents=(ParentRef("preset_id", "guardrail_preset"),), audit_domain="copilot", label="guardrail assignment"),
)


def expand(b: Builder, p: models.GuardrailPreset) -> None:
    b.add("guardrail_preset", (p.code,), protect=p.protect, name=p.name, domain=p.domain, description=p.description, config=p.config)
    for i, pattern in enumerate(p.patterns):
        b.add("guardrail_pattern", (p.code, pattern.name), ("patterns", i), regex=pattern.regex, type=pattern.type, enabled=pattern.enabled, action=pattern.action)
    for i, scope in enumerate(p.assign):
        b.add("guardrail_assignment", (p.code, *scope_key(scope)), ("assign", i))


def export(res: AccountResources) -> dict[str, list[Document]]:
    return {f"guardrails/{d['code']}.yaml": [d] for d in preset_documents(res)}


def preset_documents(res: AccountResources) -> list[Document]:
    documents = []
    for preset in res.of("guardrail_preset"):
        code = preset.key[0]
        document = header("GuardrailPreset", res.account)
        document["code"] = code
        protect(document, preset)
        document["name"] = preset.fields["name"]
        put(document, models.GuardrailPreset, "domain", preset.fields["domain"])
        put(document, models.GuardrailPreset, "description", preset.fields["description"])
        put(document, models.GuardrailPreset, "config", preset.fields["config"] or {})
        patterns = []
        for pattern in res.children("guardrail_pattern", (code,)):
            entry = {"name": pattern.key[1], "regex": pattern.fields["regex"]}
            for name in ("type", "enabled", "action"):
                put(entry, models.Pattern, name, pattern.fields[name])
            patterns.append(entry)
        put(document, models.GuardrailPreset, "patterns", patterns)
        put(document, models.GuardrailPreset, "assign", scopes(res.children("guardrail_assignment", (code,))))
        documents.append(document)
    return documents


def _index_preset(g: AccountGraph, r: Resource) -> None:
    g.presets[r.key[0]] = r


def _index_assignment(g: AccountGraph, r: Resource) -> None:
    g.assignments[scope_at(r, 1)][r.key[0]] = r


KIND = Kind(
    GUARDRAIL_PRESET,
    TYPES,
    expand=expand,
    export=export,
    index={"guardrail_preset": _index_preset, "guardrail_assignment": _index_assignment},
)
