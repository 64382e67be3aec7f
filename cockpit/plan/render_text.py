"""The human plan, like Terraform's: access impact first, then deletes, then creates and
updates with field-level diffs, then a count per action and kind. Colour only on a TTY."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable

from cockpit.plan.model import Action, Plan, ResourceChange
from cockpit.policy.impact import AccessChange
from cockpit.resources.types import types_by_name

_COLOURS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DELETE: "red"}


def render_text(plan: Plan, colour: bool = False) -> str:
    paint: Callable[[str, str], str] = _painter(colour)
    lines: list[str] = []
    for warning in plan.warnings:
        lines.append(paint(f"warning: {warning}", "yellow"))
    if plan.zitadel.note:
        lines.append(f"note: {plan.zitadel.note}")
    for warning in plan.zitadel.warnings:
        lines.append(paint(f"warning: {warning}", "yellow"))
    if not plan.has_changes:
        lines.append("No changes. The database matches the configuration.")
        return "\n".join(lines) + "\n"
    if plan.access_impact:
        lines.append(paint("Access impact:", "bold"))
        lines.extend(_impact_lines(plan.access_impact, paint))
        lines.append("")
    deletes = [c for c in plan.changes if c.action is Action.DELETE]
    others = [c for c in plan.changes if c.action is not Action.DELETE]
    if deletes:
        lines.append(paint(f"Deletes ({len(deletes)}):", "bold"))
        for change in deletes:
            lines.extend(_change_lines(change, paint))
        lines.append("")
    if others:
        lines.append(paint(f"Creates and updates ({len(others)}):", "bold"))
        for change in others:
            lines.extend(_change_lines(change, paint))
        lines.append("")
    lines.extend(zitadel_lines(plan, paint))
    lines.extend(summary_lines(plan))
    return "\n".join(lines) + "\n"


def zitadel_lines(plan: Plan, paint: Callable[[str, str], str]) -> list[str]:
    if not plan.zitadel.changes:
        return []
    lines = [paint(f"Zitadel ({len(plan.zitadel.changes)}):", "bold")]
    for change in plan.zitadel.changes:
        colour = "red" if change.revokes else "green" if change.action.glyph == "+" else "yellow"
        what = change.action.value.replace("_", " ")
        detail = f"{_value(change.before)} → {_value(change.after)}" if change.before is not None and change.after is not None else _value(change.after if change.after is not None else change.before)
        lines.append(paint(f"  {change.action.glyph} {change.account}: {what} {change.subject} (project {change.project_id}): {detail}", colour))
    lines.append("")
    return lines


def summary_lines(plan: Plan) -> list[str]:
    counts = Counter(c.action for c in plan.changes)
    lines = [
        f"Plan: {counts[Action.CREATE]} to create, {counts[Action.UPDATE]} to update, "
        f"{counts[Action.DELETE]} to delete."
    ]
    for action in Action:
        per_kind = Counter(types_by_name()[c.type].display for c in plan.changes if c.action is action)
        if per_kind:
            parts = ", ".join(f"{n} {kind}" for kind, n in sorted(per_kind.items()))
            lines.append(f"  {action.value}: {parts}")
    if plan.zitadel.changes:
        per_action = Counter(c.action.value.replace("_", " ") for c in plan.zitadel.changes)
        lines.append("  zitadel: " + ", ".join(f"{n} {a}" for a, n in sorted(per_action.items())))
    revocations = len(plan.revocations) + len(plan.zitadel_revocations)
    if revocations:
        lines.append(f"  revokes access: {revocations}")
    return lines


def _impact_lines(impact: tuple[AccessChange, ...], paint: Callable[[str, str], str]) -> list[str]:
    lines = []
    for item in impact:
        where = f"{item.account} ({item.domain})"
        if item.gains is None:
            text = f"  ~ {where}: {item.subject} {item.what} {item.name}: {_value(item.before)} → {_value(item.after)}"
            lines.append(paint(text, "yellow"))
        else:
            verb = "gains" if item.gains else "loses"
            glyph = "+" if item.gains else "-"
            lines.append(paint(f"  {glyph} {where}: {item.subject} {verb} {item.what} {item.name}", "green" if item.gains else "red"))
    return lines


def _change_lines(change: ResourceChange, paint: Callable[[str, str], str]) -> list[str]:
    name = types_by_name()[change.type].display
    where = f"{change.account}/" if change.account and change.type != "account" else ""
    head = f"  {change.action.glyph} {name} {where}{change.label}"
    if change.origin:
        head += f"    ({change.origin})"
    lines = [paint(head, _COLOURS[change.action])]
    if change.reason:
        lines.append(f"      # {change.reason}")
    if change.action is Action.UPDATE:
        for field_change in change.field_changes:
            lines.append(f"      {field_change.dotted}: {_value(field_change.before)} → {_value(field_change.after)}")
    elif change.action is Action.CREATE:
        for key, value in (change.after or {}).items():
            if value not in (None, {}, [], ""):
                lines.append(f"      {key} = {_value(value)}")
        if change.secret_fingerprint:
            lines.append("      secret = (sensitive)")
    return lines


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and value.startswith("(sensitive"):
        return value
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 200 else text[:197] + "..."


def _painter(colour: bool) -> Callable[[str, str], str]:
    if not colour:
        return lambda text, _style: text
    import click

    def paint(text: str, style: str) -> str:
        if style == "bold":
            return click.style(text, bold=True)
        return click.style(text, fg=style)

    return paint
