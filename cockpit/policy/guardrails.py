"""Effective guardrails: the union over agent → user → teams → orgs →
account, de-duplicated by preset, each with the levels that brought it.

A preset with `domain: console` applies to console traffic and resolves scopes in the console
directory; every other preset applies to copilot and resolves in the copilot directory. Only
copilot presets reach agents (an agent's own guardrails and assignments to `agent:NAME`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.policy.graph import DOMAINS, AccountGraph, Level
from cockpit.policy.provenance import Source, source_of
from cockpit.config.scopes import Scope
from cockpit.resources.state import Resource


@dataclass(frozen=True)
class EffectiveGuardrail:
    code: str
    name: str
    domain: str
    levels: tuple[str, ...]
    """The scopes that brought the preset, most specific first: `agent:helpdesk`, `user:…`,
    `team:…`, `org:…`, `account`."""
    sources: tuple[Source, ...]
    why: str
    preset: Resource | None = None
    """The preset itself (config, name), for callers that enforce it."""


def preset_domain(preset: Resource | None) -> str:
    return "console" if preset is not None and preset.fields.get("domain") == "console" else "copilot"


def effective_guardrails(
    graph: AccountGraph, user: str, agent: str | None = None, domain: str | None = None
) -> tuple[EffectiveGuardrail, ...]:
    """The presets that apply to `user` (talking to `agent`, if given), in `domain` or both;
    sorted by domain, then code."""
    found: dict[tuple[str, str], dict[str, list[Source]]] = {}
    for current in DOMAINS if domain is None else (domain,):
        levels: list[Level] = list(graph.directory(current).chain(user))
        if agent is not None and current == "copilot":
            levels.insert(0, ("agent", (Scope("agent", agent),)))
            for code, record in sorted(graph.agent_guardrails.get(agent, {}).items()):
                if preset_domain(graph.presets.get(code)) == current:
                    _bring(found, current, code, f"agent:{agent}", source_of(record, f"agent:{agent}", "guardrail"))
        for _, scopes in levels:
            for scope in scopes:
                for code, assignment in sorted(graph.assignments.get(scope, {}).items()):
                    if preset_domain(graph.presets.get(code)) == current:
                        _bring(found, current, code, str(scope), source_of(assignment, str(scope), code))
    result = []
    for (current, code), by_level in sorted(found.items()):
        preset = graph.presets.get(code)
        sources = tuple(s for level in by_level.values() for s in level)
        levels_text = ", ".join(by_level)
        result.append(
            EffectiveGuardrail(
                code,
                str(preset.fields.get("name") or code) if preset else code,
                current,
                tuple(by_level),
                sources,
                f"{code} applies through {levels_text}",
                preset,
            )
        )
    return tuple(result)


def _bring(found: dict, domain: str, code: str, level: str, source: Source) -> None:
    found.setdefault((domain, code), {}).setdefault(level, []).append(source)
