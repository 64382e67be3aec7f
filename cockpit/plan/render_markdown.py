"""The plan as a pull-request comment (`--format markdown`).

Order of importance is order on the page: a title with the verdict, a count table, then access
impact, deletes, and per-account updates and creates with field-level diffs; warnings last.

GitHub refuses comments over 65,536 characters, and a plan can be far larger, so this renderer
alone keeps a budget (LIMIT). The title and the count table always print. Access impact and
deletes share the budget first; the accounts and the warnings share what is left. Within a tier,
small sections print whole before a large one is cut, so one huge account does not hide the
others. Whatever is cut is counted in a note at the end that says where the full plan is.

Every value is inline code, escaped so it can neither end its code span nor split a table row;
sensitive fields show only the placeholders of `model.py`. No colour, no clock: the same plan
always gives the same comment.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable, Iterator

from cockpit.zitadel.desired import ZitadelChange
from cockpit.credits import format_number
from cockpit.plan.model import (
    SENSITIVE, SENSITIVE_CHANGED, AccessCause, AccessGroup, Action, FieldChange, Plan, ResourceChange,
    access_groups_of,
)
from cockpit.plan.text_diff import is_multiline, line_diff
from cockpit.resources.types import resource_types, types_by_name

LIMIT = 65_000
"""The whole comment stays strictly under this many characters (GitHub's cap is 65,536)."""
VALUE_WIDTH = 120
"""A JSON-encoded value longer than this is cut, with an ellipsis."""
TEXT_WIDTH = 400
"""Reasons, warnings, names: longer prose is cut, with an ellipsis."""
FIELD_ROWS = 40
"""Field rows shown per change; the rest are counted."""
PEOPLE_LISTED = 200
"""People listed under one access change's <details>; a larger group says how many more (so
one group of thousands cannot take the whole comment)."""
OPEN_BELOW = 25
"""Account sections start expanded when the plan has at most this many creates and updates."""

_ICONS = {Action.CREATE: "➕", Action.UPDATE: "✏️", Action.DELETE: "🗑️"}


def render_markdown(plan: Plan, full_plan: str | None = None) -> str:
    """The comment for `plan`; `full_plan` is where the saved JSON plan is (e.g. a CI artifact)."""
    title = _title(plan)
    summary = _summary(plan)
    first = [s for s in (_access_section(plan), _deletes_section(plan), _zitadel_section(plan)) if s.count]
    accounts = _account_sections(plan)
    warnings = [s for s in (_warnings_section(plan),) if s.count]

    most = _Cut(changes=10**12, access=10**12, warnings=10**12, fields=10**12)
    reserved = len(_banner(plan, _Cut(fields=1))) + len(_closing(plan, most, full_plan))
    budget = LIMIT - 1 - len(title) - len(summary) - len(_ACCOUNTS_HEADING) - reserved

    cut = _Cut()
    first_text = "".join(_spend(first, budget, cut))
    rest = _spend(accounts + warnings, budget - len(first_text), cut)
    accounts_text = "".join(rest[: len(accounts)])
    if accounts_text:
        accounts_text = _ACCOUNTS_HEADING + accounts_text
    body = first_text + accounts_text + "".join(rest[len(accounts):])
    if plan.zitadel.note:
        body = f"_{_text(plan.zitadel.note)}_\n\n" + body
    if not plan.has_changes and not plan.access_impact:
        body = "The database matches the configuration.\n\n" + body
    text = title + _banner(plan, cut) + summary + body + _closing(plan, cut, full_plan)
    return text.rstrip("\n") + "\n"


# --- Title, summary and closing note ------------------------------------------------------------


def _title(plan: Plan) -> str:
    return f"## Cockpit plan for {_code(_shorten(plan.workspace, 80))}: {_verdict(plan)}\n\n"


def _verdict(plan: Plan) -> str:
    if not plan.has_changes and not plan.access_impact:
        return "✅ no changes"
    changes = _count(len(plan.changes) + len(plan.zitadel.changes), "change")
    if not plan.has_deletes:
        return f"📝 {changes}"
    parts = []
    if plan.deletes:
        parts.append(_count(len(plan.deletes), "delete"))
    if plan.revocations or plan.zitadel_revocations:
        parts.append(_count(len(plan.revocations) + len(plan.zitadel_revocations), "access revocation"))
    return f"⚠️ {changes}, deletes or revokes access ({', '.join(parts)})"


def _summary(plan: Plan) -> str:
    if not plan.has_changes and not plan.access_impact:
        return ""
    counts = Counter((c.type, c.action) for c in plan.changes)
    order = {t.name: i for i, t in enumerate(resource_types())}
    types = sorted({c.type for c in plan.changes}, key=lambda t: (order.get(t, len(order)), t))
    lines = ["| Resource | ➕ Create | ✏️ Update | 🗑️ Delete |", "|:--|--:|--:|--:|"]
    for name in types:
        cells = [_number(counts[(name, action)]) for action in Action]
        lines.append(f"| {_text(_display(name))} | " + " | ".join(cells) + " |")
    totals = Counter(c.action for c in plan.changes)
    lines.append("| **Total** | " + " | ".join(f"**{totals[a]:,}**" for a in Action) + " |")
    impact = Counter(a.gains for a in plan.access_impact)
    access = f"**Access revoked:** {impact[False]:,}"
    if impact[True]:
        access += f" · granted: {impact[True]:,}"
    amounts = Counter(a.what == "budget" for a in plan.access_impact if a.gains is None)
    if amounts[True]:
        access += f" · budgets changed: {amounts[True]:,}"
    if amounts[False]:
        access += f" · rate limits and routing changed: {amounts[False]:,}"
    return "\n".join(lines) + "\n\n" + access + "\n\n"


def _number(n: int) -> str:
    return f"{n:,}" if n else "·"


@dataclass
class _Cut:
    """What the budget left out."""

    changes: int = 0
    access: int = 0
    warnings: int = 0
    fields: int = 0
    """Field rows left out of changes that are shown."""

    @property
    def any(self) -> bool:
        return bool(self.changes or self.access or self.warnings or self.fields)


def _banner(plan: Plan, cut: _Cut) -> str:
    if not cut.any:
        return ""
    shown = len(plan.changes) - min(cut.changes, len(plan.changes))
    return (
        f"> ⚠️ **Shortened to fit a comment:** {shown:,} of {len(plan.changes):,} changes are shown "
        "here. The note at the end says what was left out and where the full plan is.\n\n"
    )


def _closing(plan: Plan, cut: _Cut, full_plan: str | None) -> str:
    where = f"Full plan: {_code(full_plan)}" if full_plan else ""
    if not cut.any:
        return f"---\n\n{where}\n" if where else ""
    parts = []
    if cut.changes:
        parts.append(f"{cut.changes:,} of {len(plan.changes):,} changes")
    if cut.access:
        parts.append(f"{cut.access:,} of {len(plan.access_impact):,} access changes")
    if cut.fields:
        parts.append(f"{_count(cut.fields, 'field diff')} within changes that are shown")
    if cut.warnings:
        parts.append(f"{cut.warnings:,} of {len(plan.warnings):,} warnings")
    where = where or "Run `cockpit plan --json` for the full plan."
    return (
        "---\n\n"
        f"⚠️ **This comment was cut to stay under {LIMIT:,} characters.** "
        f"Omitted: {'; '.join(parts)}.\n\n{where}\n"
    )


# --- Sections and the budget --------------------------------------------------------------------


@dataclass
class _Item:
    text: str
    fields_cut: int = 0
    weight: int = 1
    """How many of the section's counted things it shows (an access group: its people)."""


class _Section:
    """A heading, items and a closing; it renders as many leading items as its share allows.

    Only the first LIMIT characters' worth of items are ever rendered (no share can be larger),
    so a plan of a million changes costs no more to print than one of a few thousand.
    """

    def __init__(
        self, kind: str, head: str, tail: str, noun: str, items: Iterable[_Item], count: int, where: str = ""
    ) -> None:
        self.kind = kind  # change, access or warning: what an item left out counts as
        self.head, self.tail, self.noun, self.where = head, tail, noun, where
        self.count = count
        self.items: list[_Item] = []
        rendered = 0
        for item in items:
            if rendered > LIMIT:
                break
            self.items.append(item)
            rendered += len(item.text)
        self.rendered = rendered

    def size(self) -> int:
        """At least the whole section's length, or more than LIMIT."""
        return len(self.head) + self.rendered + len(self.tail)

    def more(self, left_out: int, shown: int) -> str:
        if shown:
            return f"\n_… and {left_out:,} more{self.where}, not shown here._\n"
        return f"\n_{_count(left_out, self.noun)}{self.where}, not shown here._\n"

    def fit(self, allowance: int, cut: _Cut) -> str:
        """As many leading items as fit in `allowance`, then a line counting the rest."""
        shown: list[_Item] = []
        if self.size() <= allowance and sum(i.weight for i in self.items) == self.count:
            shown = self.items
        else:
            worst = max(len(self.more(self.count, 1)), len(self.more(self.count, 0)))
            room = allowance - len(self.head) - len(self.tail) - worst
            if room < 0:
                self._count_cut(cut, [])
                return ""
            for item in self.items:
                if len(item.text) > room:
                    break
                shown.append(item)
                room -= len(item.text)
        self._count_cut(cut, shown)
        left_out = self.count - sum(i.weight for i in shown)
        more = self.more(left_out, len(shown)) if left_out else ""
        return self.head + "".join(i.text for i in shown) + more + self.tail

    def _count_cut(self, cut: _Cut, shown: list[_Item]) -> None:
        left_out = self.count - sum(i.weight for i in shown)
        if self.kind == "change":
            cut.changes += left_out
        elif self.kind == "access":
            cut.access += left_out
        else:
            cut.warnings += left_out
        cut.fields += sum(i.fields_cut for i in shown)


def _spend(sections: list[_Section], budget: int, cut: _Cut) -> list[str]:
    """Render each section within a fair share of `budget`; what one leaves unused goes on."""
    shares = _shares([s.size() for s in sections], max(budget, 0))
    texts, carry = [], 0
    for section, share in zip(sections, shares):
        text = section.fit(share + carry, cut)
        carry += share - len(text)
        texts.append(text)
    return texts


def _shares(needs: list[int], budget: int) -> list[int]:
    """Water-filling: the smallest needs are met in full, the rest split what remains evenly."""
    shares = [0] * len(needs)
    left = budget
    order = sorted(range(len(needs)), key=lambda i: (needs[i], i))
    for position, index in enumerate(order):
        shares[index] = min(needs[index], left // (len(needs) - position))
        left -= shares[index]
    return shares


_ACCOUNTS_HEADING = "### ✏️ Updates and creates\n\n"


def _access_section(plan: Plan) -> _Section:
    """Each cause (the planned changes, with where they are declared), then per kind of access
    the people it reaches, counted, listed in full under a <details>. One item per group; a
    cause heads the first of its groups (items print in order, so a cut never orphans one)."""
    head = f"### 🔐 Access impact ({len(plan.access_impact):,}), by the change that causes it\n\n"

    def items() -> Iterator[_Item]:
        previous: tuple[AccessCause, ...] | None = None
        for group in access_groups_of(plan):
            text = ""
            if group.causes != previous:
                text = "\n" if previous is not None else ""
                previous = group.causes
                text += "".join(_cause_line(c) for c in group.causes) if group.causes else "**No single change of this plan** (the account or its directory as a whole)  \n"
                text += "\n"
            yield _Item(text + _effect(group), weight=len(group.changes))

    return _Section("access", head, "\n", "access change", items(), len(plan.access_impact))


def _cause_line(cause: AccessCause) -> str:
    where = f" in {_code(_shorten(cause.account))}" if cause.account and cause.type != "account" else ""
    origin = f" · {_code(_shorten(cause.origin))}" if cause.origin else ""
    return f"{_ICONS[cause.action]} **{_text(_display(cause.type))}** {_code(_shorten(cause.label))}{where}{origin}  \n"


def _effect(group: AccessGroup) -> str:
    where = f"{_code(_shorten(group.account))} ({_text(group.domain)})"
    if group.gains is None:
        return "".join(
            f"- 💰 {_code(_shorten(c.subject))} {_text(c.what)} {_code(_shorten(c.name))}: "
            f"{_credits(c.before)} → {_credits(c.after)} · {where}\n"
            for c in group.changes
        )
    count = len(group.changes)
    who = "1 person" if count == 1 else f"{count:,} people"
    verb = ("gain" if group.gains else "lose") + ("s" if count == 1 else "")
    icon, verb = ("🟢", verb) if group.gains else ("🔴", f"**{verb}**")
    line = f"- {icon} {who} {verb} {_text(group.what)} {_code(_shorten(group.name))} · {where}\n"
    listed = group.subjects[:PEOPLE_LISTED]
    people = ", ".join(_code(_shorten(s.removeprefix("user:"), 100)) for s in listed)
    if count > len(listed):
        people += f" _and {count - len(listed):,} more: the JSON plan lists them all_"
    return line + f"  <details><summary>{who}</summary>\n\n  {people}\n\n  </details>\n"


def _credits(value: float | None) -> str:
    return "*(none)*" if value is None else _code(format_number(value, 2))


def _deletes_section(plan: Plan) -> _Section:
    deletes = plan.deletes
    head = f"### 🗑️ Deletes ({len(deletes):,})\n\n"
    return _Section("change", head, "\n", "delete", (_Item(_delete_line(c)) for c in deletes), len(deletes))


def _delete_line(change: ResourceChange) -> str:
    text = f"- 🗑️ **{_text(_display(change.type))}** {_code(_shorten(change.label))}{_where(change)}{_origin(change)}"
    if change.protect:
        text += " — 🔒 **protected**"
    if change.reason:
        text += f" — _{_text(change.reason)}_"
    return text + "\n"


def _where(change: ResourceChange) -> str:
    if change.account is None:
        return " (global)"
    if change.type == "account":
        return ""
    return f" in {_code(_shorten(change.account))}"


def _account_sections(plan: Plan) -> list[_Section]:
    """One collapsible block per account (global resources first): updates, then creates.

    Updates come first because they change what is live; a create's effect on people already
    shows under access impact.
    """
    by_account: dict[str | None, list[ResourceChange]] = {}
    for change in plan.changes:
        if change.action is not Action.DELETE:
            by_account.setdefault(change.account, []).append(change)
    total = sum(len(changes) for changes in by_account.values())
    sections = []
    for account in sorted(by_account, key=lambda a: (a is not None, a or "")):
        changes = by_account[account]
        updates = [c for c in changes if c.action is Action.UPDATE]
        creates = [c for c in changes if c.action is Action.CREATE]
        name = "global (model catalog)" if account is None else html.escape(_shorten(account, 100))
        counts = ", ".join(
            part for part in (
                f"{len(updates):,} to update" if updates else "",
                f"{len(creates):,} to create" if creates else "",
            ) if part
        )
        opened = " open" if total <= OPEN_BELOW else ""
        head = f"<details{opened}><summary><b>{name}</b> · {counts}</summary>\n\n"
        items = chain(map(_update_item, updates), map(_create_item, creates))
        tail = "\n</details>\n\n"
        sections.append(_Section("change", head, tail, "change", items, len(changes), where=" in this account"))
    return sections


def _update_item(change: ResourceChange) -> _Item:
    head = f"**{_ICONS[change.action]} {_text(_display(change.type))}** {_code(_shorten(change.label))}"
    head += _origin(change) + (f" — _{_text(change.reason)}_" if change.reason else "") + "\n\n"
    if not change.field_changes:
        return _Item(head)
    rows = ["| Field | Before | After |", "|:--|:--|:--|"]
    diffs = []
    scales = types_by_name()[change.type].scales if change.type in types_by_name() else {}
    for field_change in change.field_changes[:FIELD_ROWS]:
        if not field_change.sensitive and is_multiline(field_change.before, field_change.after):
            rows.append(f"| {_code(_shorten(field_change.dotted), cell=True)} | *(lines below)* | *(lines below)* |")
            diffs.append(_line_diff_block(field_change))
            continue
        places = scales.get(str(field_change.path[0])) if len(field_change.path) == 1 else None
        before, after = _field_values(field_change, places)
        rows.append(f"| {_code(_shorten(field_change.dotted), cell=True)} | {before} | {after} |")
    left_out = max(len(change.field_changes) - FIELD_ROWS, 0)
    if left_out:
        rows.append(f"| _… {_count(left_out, 'more field')}_ | | |")
    return _Item(head + "\n".join(rows) + "\n\n" + "".join(diffs), fields_cut=left_out)


def _line_diff_block(change: FieldChange) -> str:
    """A multi-line string's changed lines as a fenced `diff` block, under its field's name;
    the fence is longer than any run of backticks inside, so the text cannot close it."""
    lines = [line[:VALUE_WIDTH * 4] for line in line_diff(change.before, change.after)]
    body = "\n".join(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line) for line in lines)
    fence = "`" * max(3, max((len(run) for run in _BACKTICKS.findall(body)), default=0) + 1)
    return f"{_code(_shorten(change.dotted))}:\n\n{fence}diff\n{body}\n{fence}\n\n"


def _field_values(change: FieldChange, places: int | None = None) -> tuple[str, str]:
    """Sensitive fields show the placeholders whatever the plan holds; absence stays visible."""
    if change.sensitive:
        before = "*(none)*" if change.before is None else SENSITIVE
        after = "*(none)*" if change.after is None else SENSITIVE_CHANGED
        return before, after
    return _value(change.before, cell=True, places=places), _value(change.after, cell=True, places=places)


def _create_item(change: ResourceChange) -> _Item:
    head = f"- {_ICONS[change.action]} **{_text(_display(change.type))}** {_code(_shorten(change.label))}"
    lines = [head + _origin(change) + (f" — _{_text(change.reason)}_" if change.reason else "")]
    values = [(k, v) for k, v in (change.after or {}).items() if v not in (None, {}, [], "")]
    scales = types_by_name()[change.type].scales if change.type in types_by_name() else {}
    for key, value in values[:FIELD_ROWS]:
        lines.append(f"  - {_code(_shorten(str(key)))}: {_value(value, places=scales.get(key))}")
    if change.secret_fingerprint:
        lines.append(f"  - secret: {SENSITIVE}")
    left_out = max(len(values) - FIELD_ROWS, 0)
    if left_out:
        lines.append(f"  - _… {_count(left_out, 'more field')}_")
    return _Item("\n".join(lines) + "\n", fields_cut=left_out)


def _origin(change: ResourceChange) -> str:
    return f" · {_code(_shorten(change.origin))}" if change.origin else ""


def _zitadel_section(plan: Plan) -> _Section:
    """Roles and grants in Zitadel; revocations first."""
    changes = sorted(plan.zitadel.changes, key=lambda c: not c.revokes)
    head = f"### 🪪 Zitadel ({len(changes):,})\n\n"
    return _Section("change", head, "\n", "Zitadel change", (_Item(_zitadel_line(c)) for c in changes), len(changes))


def _zitadel_line(change: ZitadelChange) -> str:
    icon = "🔴" if change.revokes else "➕" if change.action.glyph == "+" else "✏️"
    what = _text(change.action.value.replace("_", " "))
    values = f": {_value(change.before)} → {_value(change.after)}" if change.before is not None and change.after is not None else f": {_value(change.after if change.after is not None else change.before)}"
    return f"- {icon} {what} {_code(_shorten(change.subject))} in {_code(_shorten(change.account))} (project {_code(change.project_id)}){values}\n"


def _warnings_section(plan: Plan) -> _Section:
    warnings = (*plan.warnings, *plan.zitadel.warnings)
    head = f"### ⚠️ Warnings ({len(warnings):,})\n\n"
    items = (_Item(f"- {_text(w)}\n") for w in warnings)
    return _Section("warning", head, "\n", "warning", items, len(warnings))


# --- Escaping -------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BACKTICKS = re.compile(r"`+")
_PUNCTUATION = re.compile(r"([\\`*_\[\]{}()<>#+\-.!|~&])")


def _value(value: Any, cell: bool = False, places: int | None = None) -> str:
    """A value as inline code, JSON-encoded and cut to VALUE_WIDTH (numbers as every command
    prints them); placeholders stay plain."""
    if value is None:
        return "*(none)*"
    if isinstance(value, str) and value in (SENSITIVE, SENSITIVE_CHANGED):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _code(format_number(value, places), cell=cell)
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return _code(_shorten(text, VALUE_WIDTH), cell=cell)


def _code(text: str, cell: bool = False) -> str:
    """`text` as a code span that no backtick inside can close early.

    The fence is one backtick longer than the longest run inside, padded with a space when the
    text touches it. In a table cell every pipe is escaped: GFM splits cells before it parses code
    spans, and takes a pipe right after a backslash as part of the cell.
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1) if "`" in text else "`"
    if text.startswith("`") or text.endswith("`") or (text[:1] == " " and text[-1:] == " " and text.strip()):
        text = f" {text} "
    if not text:
        text = " "
    if cell:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def _text(text: str) -> str:
    """Prose (reasons, warnings, names) with Markdown punctuation escaped, on one line.

    A backslash-escaped pipe is literal both in and out of tables, so one escape serves both.
    """
    text = " ".join(_shorten(text, TEXT_WIDTH).split())
    return _PUNCTUATION.sub(r"\\\1", text)


def _shorten(text: str, width: int = TEXT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _display(type_name: str) -> str:
    resource_type = types_by_name().get(type_name)
    return resource_type.display if resource_type else type_name.replace("_", " ")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
