"""The human plan, like Terraform's: access impact first, then deletes, then creates and
updates with field-level diffs, then a count per action and kind. Colour only on a TTY."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable

from cockpit.credits import format_number
from cockpit.plan.model import AccessCause, AccessGroup, Action, Plan, ResourceChange, access_groups_of
from cockpit.plan.text_diff import is_multiline, line_diff
from cockpit.resources.types import types_by_name

SHOWN_PEOPLE = 5
"""People named per access line; the JSON plan lists them all."""

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
        if plan.origins:
            lines.append(f"({len(plan.origins)} resource(s) are declared at a new place in their files; apply records where.)")
        return "\n".join(lines) + "\n"
    if plan.access_impact:
        lines.append(paint("Access impact, by the change that causes it:", "bold"))
        lines.extend(impact_lines(access_groups_of(plan), paint))
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


def impact_lines(groups: tuple[AccessGroup, ...], paint: Callable[[str, str], str]) -> list[str]:
    """Each cause (the planned changes, with where they are declared), then what it does to
    whom: `16 people lose model gpt-4o (copilot): …`."""
    lines: list[str] = []
    previous: tuple[AccessCause, ...] | None = None
    for group in groups:
        if group.causes != previous or not lines:
            previous = group.causes
            if group.causes:
                lines.extend(paint(_cause_line(c), _COLOURS[c.action]) for c in group.causes)
            else:
                lines.append("  (no single change of this plan: the account or its directory as a whole)")
        colour = "green" if group.gains else "red" if group.gains is False else "yellow"
        lines.extend(paint(f"      {line}", colour) for line in effect_lines(group))
    return lines


def _cause_line(cause: AccessCause) -> str:
    name = types_by_name()[cause.type].display
    where = f"{cause.account}/" if cause.account and cause.type != "account" else ""
    origin = f"    ({cause.origin})" if cause.origin else ""
    return f"  {cause.action.glyph} {name} {where}{cause.label}{origin}"


def effect_lines(group: AccessGroup) -> list[str]:
    """What a group's changes do, for people (text): a count and the first few names."""
    if group.gains is None:
        return [
            f"{c.subject} {c.what} {c.name}: {_amount(c.before)} → {_amount(c.after)}" for c in group.changes
        ]
    count = len(group.changes)
    verb = ("gain" if group.gains else "lose") + ("s" if count == 1 else "")
    people = [s.removeprefix("user:") for s in group.subjects]
    shown = ", ".join(people[:SHOWN_PEOPLE]) + (f" and {count - SHOWN_PEOPLE} more" if count > SHOWN_PEOPLE else "")
    who = "1 person" if count == 1 else f"{count:,} people"
    return [f"{who} {verb} {group.what} {group.name} ({group.domain}): {shown}"]


def _amount(credits: float | None) -> str:
    return "(none)" if credits is None else format_number(credits, 2)


def _change_lines(change: ResourceChange, paint: Callable[[str, str], str]) -> list[str]:
    name = types_by_name()[change.type].display
    where = f"{change.account}/" if change.account and change.type != "account" else ""
    head = f"  {change.action.glyph} {name} {where}{change.label}"
    if change.origin:
        head += f"    ({change.origin})"
    lines = [paint(head, _COLOURS[change.action])]
    if change.reason:
        lines.append(f"      # {change.reason}")
    scales = types_by_name()[change.type].scales
    if change.action is Action.UPDATE:
        for field_change in change.field_changes:
            before, after = field_change.before, field_change.after
            if not field_change.sensitive and is_multiline(before, after):
                lines.append(f"      {field_change.dotted}:")
                lines.extend(f"        {line}" for line in line_diff(before, after))
                continue
            places = scales.get(str(field_change.path[0])) if len(field_change.path) == 1 else None
            lines.append(f"      {field_change.dotted}: {_value(before, places)} → {_value(after, places)}")
    elif change.action is Action.CREATE:
        for key, value in (change.after or {}).items():
            if value not in (None, {}, [], ""):
                lines.append(f"      {key} = {_value(value, scales.get(key))}")
        if change.secret_fingerprint:
            lines.append("      secret = (sensitive)")
    return lines


def _value(value: Any, places: int | None = None) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str) and value.startswith("(sensitive"):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value, places)
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
