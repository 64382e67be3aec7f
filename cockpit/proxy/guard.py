"""Guardrail patterns run on what goes to the model and what comes back.

The caller's effective presets (`cockpit.policy.guardrails`) bring their enabled patterns:
`block` refuses the request (400, naming preset and pattern, never the matched text),
`detect` lets it through and records the hit on the ledger row, and `allow` exempts a match:
a block or detect match whose text an allow pattern of any effective preset also matches
counts as no match (e.g. an allow pattern for a documented test card number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from cockpit.policy.guardrails import effective_guardrails
from cockpit.server.snapshots import AccountSnapshot


@dataclass(frozen=True)
class Hit:
    preset: str
    pattern: str
    action: str
    """`block` or `detect`."""
    where: str = "request"
    """`request` or `response`."""

    def as_dict(self) -> dict[str, str]:
        return {"preset": self.preset, "pattern": self.pattern, "action": self.action, "where": self.where}


@dataclass(frozen=True)
class Rule:
    preset: str
    pattern: str
    action: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Screen:
    """The compiled patterns of one caller; blocks are tried before detects."""

    rules: tuple[Rule, ...]
    allows: tuple[re.Pattern[str], ...]

    def scan(self, texts: Iterable[str], where: str = "request") -> tuple[Hit, ...]:
        if not self.rules:
            return ()
        hits: dict[tuple[str, str], Hit] = {}
        for text in texts:
            for rule in self.rules:
                if (rule.preset, rule.pattern) in hits:
                    continue
                for match in rule.regex.finditer(text):
                    if not any(allow.search(match.group(0)) for allow in self.allows):
                        hits[(rule.preset, rule.pattern)] = Hit(rule.preset, rule.pattern, rule.action, where)
                        break
        return tuple(hits.values())


NO_SCREEN = Screen((), ())


def patterns_by_preset(snapshot: AccountSnapshot) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    found: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for resource in snapshot.state.of_type("guardrail_pattern", snapshot.name):
        code, name = resource.key[0], resource.key[-1]
        found.setdefault(code, []).append((name, resource.fields))
    return found


def screen_for(snapshot: AccountSnapshot, domain: str, user: str, agent: str | None) -> Screen:
    """The caller's screen, built once per snapshot and caller."""
    memo = snapshot.memo
    key = ("screen", domain, user, agent)
    found = memo.get(key)
    if found is None:
        if "patterns" not in memo:
            memo["patterns"] = patterns_by_preset(snapshot)
        found = memo[key] = _compile(memo["patterns"], effective_guardrails(snapshot.graph, user, agent, domain))
    return found


def _compile(patterns: Mapping[str, list[tuple[str, Mapping[str, Any]]]], presets: Iterable[Any]) -> Screen:
    rules: list[Rule] = []
    allows: list[re.Pattern[str]] = []
    for preset in presets:
        for name, fields in sorted(patterns.get(preset.code, ())):
            if fields.get("enabled") is False:
                continue
            regex = re.compile(str(fields.get("regex")))
            action = str(fields.get("type") or "detect")
            if action == "allow":
                allows.append(regex)
            else:
                rules.append(Rule(preset.code, name, action, regex))
    rules.sort(key=lambda rule: rule.action != "block")
    return Screen(tuple(rules), tuple(allows)) if rules else NO_SCREEN


def message_texts(messages: Any) -> list[str]:
    """The text of OpenAI chat messages: string contents and the text parts of part lists."""
    texts = []
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return texts
