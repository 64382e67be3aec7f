"""The pull-request comment: order, budget, secrets and escaping, on plans built by hand."""

from __future__ import annotations

import json
import re

from cockpit.plan.model import SENSITIVE, SENSITIVE_CHANGED, Action, FieldChange, Plan, ResourceChange
from cockpit.policy.impact import AccessChange
from cockpit.plan.render_markdown import LIMIT, VALUE_WIDTH, render_markdown


def create(type_: str, account: str | None, *key: str, **after: object) -> ResourceChange:
    return ResourceChange(Action.CREATE, type_, account, key, None, after)


def update(type_: str, account: str | None, key: tuple[str, ...], *fields: FieldChange, **extra: object) -> ResourceChange:
    return ResourceChange(Action.UPDATE, type_, account, key, {}, {}, field_changes=fields, **extra)  # type: ignore[arg-type]


def delete(type_: str, account: str | None, *key: str, protect: bool = False, reason: str | None = None) -> ResourceChange:
    return ResourceChange(Action.DELETE, type_, account, key, {"x": 1}, None, protect=protect, reason=reason)


def mixed_plan() -> Plan:
    return Plan(
        workspace="prod",
        changes=(
            create("agent", "acme", "helper", description="Helps"),
            update("agent", "acme", ("writer",), FieldChange(("definition", "model"), "gpt-4", "gpt-5")),
            create("model_grant", "beta", "copilot", "gpt-5", "org", "research", access="allow"),
            delete("connection", "acme", "jira", protect=True, reason="no longer in the config"),
            delete("agent", "beta", "old"),
        ),
        access_impact=(
            AccessChange("beta", "copilot", "org:research", "model", "gpt-5", True),
            AccessChange("acme", "copilot", "user:alice@acme.com", "connection", "jira", False),
            AccessChange("acme", "billing", "org:research", "budget", "monthly", None, 100, 250),
        ),
        warnings=("grant of gpt-3 to org:legacy is void under the model policy",),
    )


# --- A small GFM reader: enough to check that a row has the cells it should -------------------


def row_cells(row: str) -> list[str]:
    """Cells of a table row as GFM splits them: a pipe right after a backslash is content."""
    assert row.startswith("|") and row.endswith("|"), row
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def code_text(span: str) -> str:
    """The text of one code span, asserting nothing inside it can close it early."""
    match = re.fullmatch(r"(`+)(.*)\1", span, re.S)
    assert match, span
    fence, content = match.groups()
    assert len(fence) not in {len(run) for run in re.findall(r"`+", content)}, span
    if content.startswith(" ") and content.endswith(" ") and content.strip():
        content = content[1:-1]
    return content


def tables(text: str) -> list[list[list[str]]]:
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(row_cells(line))
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


# --- Tests ---------------------------------------------------------------------------------------


def test_empty_plan_says_no_changes() -> None:
    text = render_markdown(Plan(workspace="prod", changes=()))
    assert text.splitlines()[0] == "## Cockpit plan for `prod`: ✅ no changes"
    assert "The database matches the configuration." in text
    assert "|" not in text and "<details" not in text and "Deletes" not in text
    assert "Full plan" not in text and "omitted" not in text.lower()


def test_empty_plan_names_the_full_plan_when_saved() -> None:
    text = render_markdown(Plan(workspace="prod", changes=()), full_plan="plan.json")
    assert text.rstrip().endswith("Full plan: `plan.json`")


def test_mixed_plan_puts_access_impact_first_then_deletes_then_the_rest() -> None:
    text = render_markdown(mixed_plan())
    title = text.splitlines()[0]
    assert "`prod`" in title and "⚠️" in title and "5 changes" in title and "deletes or revokes access" in title

    access = text.index("### 🔐 Access impact")
    deletes = text.index("### 🗑️ Deletes (2)")
    rest = text.index("### ✏️ Updates and creates")
    assert text.index("| Resource |") < access < deletes < rest
    assert text.index("🔴 1 person **loses** connection `jira` · `acme` (copilot)") < text.index("🟢 1 person gains model `gpt-5` · `beta` (copilot)")
    assert "<details><summary>1 person</summary>\n\n  `alice@acme.com`\n\n  </details>" in text
    assert "💰 `org:research` budget `monthly`: `100.00` → `250.00`" in text
    for created in ("**agent** `helper`", "**model grant** `copilot/gpt-5/org/research`"):
        assert deletes < text.index(created)
    assert "**connection** `jira` in `acme` — 🔒 **protected** — _no longer in the config_" in text
    assert "**agent** `old` in `beta`\n" in text
    assert text.index("<b>acme</b> · 1 to update, 1 to create") < text.index("<b>beta</b> · 1 to create")
    assert "| `definition.model` | `\"gpt-4\"` | `\"gpt-5\"` |" in text
    assert text.index("### ⚠️ Warnings (1)") > rest


def test_summary_counts_per_action_and_type_and_revocations() -> None:
    text = render_markdown(mixed_plan())
    summary = tables(text)[0]
    assert summary[0] == ["Resource", "➕ Create", "✏️ Update", "🗑️ Delete"]
    rows = {row[0]: row[1:] for row in summary[2:]}
    assert rows["model grant"] == ["1", "·", "·"]
    assert rows["agent"] == ["1", "1", "1"]
    assert rows["connection"] == ["·", "·", "1"]
    assert rows["**Total**"] == ["**2**", "**1**", "**2**"]
    assert "**Access revoked:** 1 · granted: 1 · budgets changed: 1" in text


def test_plan_without_deletes_has_a_plain_verdict() -> None:
    plan = Plan(workspace="prod", changes=(create("agent", "acme", "helper"),))
    text = render_markdown(plan)
    assert text.splitlines()[0] == "## Cockpit plan for `prod`: 📝 1 change"
    assert "Deletes" not in text and "⚠️" not in text


def test_output_is_deterministic_and_has_no_colour() -> None:
    assert render_markdown(mixed_plan(), "plan.json") == render_markdown(mixed_plan(), "plan.json")
    assert "\x1b" not in render_markdown(mixed_plan())


def big_plan(n: int = 50_000) -> Plan:
    changes = []
    for i in range(10):
        changes.append(delete("agent", f"tenant-{i:02}", f"retired-{i}", protect=i == 0))
    accounts = [f"tenant-{i:02}" for i in range(20)]
    while len(changes) < n:
        i = len(changes)
        account = accounts[i % len(accounts)]
        if i % 3:
            changes.append(create("copilot_user", account, f"user{i}@example.com", display_name=f"User {i}", status="active"))
        else:
            changes.append(update("copilot_team", account, ("research", f"team-{i}"), FieldChange(("description",), "old", "new " * 50)))
    impact = tuple(AccessChange("tenant-00", "copilot", f"user:u{i}@example.com", "model", "gpt-5", False) for i in range(30))
    return Plan(workspace="prod", changes=tuple(changes), access_impact=impact)


def shown_changes(text: str) -> int:
    return text.count("\n- ➕ ") + text.count("\n**✏️ ") + text.count("\n- 🗑️ ")


def test_fifty_thousand_changes_stay_under_the_limit_and_say_what_was_cut() -> None:
    plan = big_plan()
    text = render_markdown(plan, full_plan="plan.json")
    assert len(text) < LIMIT
    assert text.rstrip().endswith("Full plan: `plan.json`")

    omitted = 50_000 - shown_changes(text)
    assert omitted > 40_000
    assert f"Omitted: {omitted:,} of 50,000 changes." in text
    assert f"> ⚠️ **Shortened to fit a comment:** {50_000 - omitted:,} of 50,000 changes are shown" in text

    # Priority: every delete and every access change is shown, and every account gets a share.
    assert text.count("\n- 🗑️ ") == 10 and "🔒 **protected**" in text
    assert text.count("30 people **lose** model `gpt-5`") == 1
    assert all(f"`u{i}@example.com`" in text for i in range(30))
    for i in range(20):
        assert f"<summary><b>tenant-{i:02}</b>" in text
    assert len(re.findall(r"\n_… and [\d,]+ more in this account, not shown here\._\n", text)) == 20


def test_a_cut_plan_without_a_saved_file_points_to_the_json_plan() -> None:
    text = render_markdown(big_plan(5_000))
    assert len(text) < LIMIT
    assert "Run `cockpit plan --json` for the full plan." in text
    assert "Full plan:" not in text


def test_huge_access_impact_and_deletes_still_fit_and_share_the_budget() -> None:
    deletes = tuple(delete("agent", "acme", f"agent-{i}") for i in range(2_000))
    impact = tuple(AccessChange("acme", "copilot", f"user:u{i}@example.com", "agent", f"agent-{i}", False) for i in range(100_000))
    text = render_markdown(Plan(workspace="prod", changes=deletes, access_impact=impact), full_plan="out/plan.json")
    assert len(text) < LIMIT
    assert "### 🗑️ Deletes (2,000)" in text and text.count("\n- 🗑️ ") > 100
    shown = text.count("**loses** agent")
    assert shown > 100
    assert f"{100_000 - shown:,} of 100,000 access changes" in text
    assert text.rstrip().endswith("Full plan: `out/plan.json`")


def test_long_values_are_cut_and_long_field_lists_counted() -> None:
    fields = tuple(FieldChange(("config", f"k{i}"), i, i + 1) for i in range(100))
    plan = Plan(
        workspace="prod",
        changes=(
            update("agent", "acme", ("a",), FieldChange(("definition",), {"prompt": "x" * 10_000}, {"prompt": "y"})),
            update("agent", "acme", ("b",), *fields),
        ),
    )
    text = render_markdown(plan, full_plan="plan.json")
    assert "x" * 200 not in text
    row = next(r for t in tables(text) for r in t if r[0] == "`definition`")
    assert len(code_text(row[1])) == VALUE_WIDTH and code_text(row[1]).endswith("…")
    assert "_… 60 more fields_" in text
    assert "60 field diffs within changes that are shown" in text


def test_sensitive_values_never_show_beyond_the_placeholders() -> None:
    secret_update = update(
        "connection", "acme", ("jira",),
        FieldChange(("secret",), "hunter2-old", "hunter2-new", sensitive=True),
        FieldChange(("config", "client_secret"), {"v": "s3cr3t"}, "s3cr3t-2", sensitive=True),
        FieldChange(("description",), "a", "b"),
    )
    secret_create = ResourceChange(
        Action.CREATE, "model", None, ("gpt-5",), None, {"description": "x"},
        secret_fingerprint="fp-0123456789abcdef", secret_base="base-feedface",
    )
    plan = Plan(workspace="prod", changes=(secret_update, secret_create))
    text = render_markdown(plan)
    for leaked in ("hunter2", "s3cr3t", "fp-0123456789abcdef", "base-feedface"):
        assert leaked not in text
    assert "| `secret` | (sensitive) | (sensitive, changed) |" in text
    assert "| `config.client_secret` | (sensitive) | (sensitive, changed) |" in text
    assert "  - secret: (sensitive)" in text
    assert set(re.findall(r"\(sensitive[^)]*\)", text)) == {SENSITIVE, SENSITIVE_CHANGED}


def test_pipes_and_backticks_in_values_do_not_break_the_layout() -> None:
    before = "a | b `c` ``d`` \\| e"
    after = {"k|ey": "`x`|``y```"}
    plan = Plan(
        workspace="pr|od`",
        changes=(
            update("agent", "acme", ("we|ird`name",), FieldChange(("config", "a|b`c"), before, after)),
            create("agent", "acme", "``tick", description="|`|"),
        ),
        access_impact=(AccessChange("acme", "copilot", "user:`x|y`@acme.com", "agent", "we|ird", False),),
    )
    text = render_markdown(plan)
    diff = next(t for t in tables(text) if t[0] == ["Field", "Before", "After"])
    assert [len(row) for row in diff] == [3, 3, 3]
    path, old, new = diff[2]
    assert code_text(path) == "config.a|b`c"
    assert json.loads(code_text(old)) == before
    assert json.loads(code_text(new)) == after
    for summary_row in tables(text)[0]:
        assert len(summary_row) == 4

    lines = text.splitlines()
    loses = next(i for i, line in enumerate(lines) if "**loses**" in line)
    name = re.match(r"- 🔴 1 person \*\*loses\*\* agent (`+.*?`+) · ", lines[loses])
    assert name and code_text(name.group(1)) == "we|ird"
    assert lines[loses + 1:loses + 3] == ["  <details><summary>1 person</summary>", ""]
    assert code_text(lines[loses + 3].strip()) == "`x|y`@acme.com"
    title = re.match(r"## Cockpit plan for (`+.*`+): ", text.splitlines()[0])
    assert title and code_text(title.group(1)) == "pr|od`"
    created = next(line for line in text.splitlines() if line.startswith("  - `description`"))
    assert json.loads(code_text(created.split(": ", 1)[1])) == "|`|"


def test_reasons_and_warnings_are_escaped_prose() -> None:
    plan = Plan(
        workspace="prod",
        changes=(delete("agent", "acme", "x", reason="gone | *really*\n# gone"),),
        warnings=("<script> `x` [link](http://a)",),
    )
    text = render_markdown(plan)
    assert "_gone \\| \\*really\\* \\# gone_" in text
    assert "- \\<script\\> \\`x\\` \\[link\\]\\(http://a\\)" in text


def test_the_limit_holds_for_oversized_names_paths_items_and_warnings() -> None:
    long = "n" * 5_000
    huge_create = create("agent", long, long, **{f"{long}{i}": {"v": long} for i in range(60)})
    plan = Plan(
        workspace=long,
        changes=(huge_create, *(create("copilot_user", f"{long}{i}", f"u{i}") for i in range(300))),
        access_impact=tuple(AccessChange(long, "copilot", long, "model", long, False) for i in range(50)),
        warnings=tuple(long * 2 for _ in range(1_000)),
    )
    for full_plan in (None, "artifacts/" + "p" * 3_000 + "`.json"):
        text = render_markdown(plan, full_plan=full_plan)
        assert len(text) < LIMIT
        assert "This comment was cut" in text


def test_a_multi_line_string_shows_its_changed_lines_in_a_fence_it_cannot_close() -> None:
    before = "Be kind.\nAnswer briefly.\n```\ncode\n```\nSign as Bot."
    after = "Be kind.\nAnswer in full.\n```\ncode\n```\nSign as Bot."
    plan = Plan(workspace="prod", changes=(update("agent", "acme", ("a",), FieldChange(("definition", "system_prompt"), before, after)),))
    text = render_markdown(plan)
    assert "| `definition.system_prompt` | *(lines below)* | *(lines below)* |" in text
    block = text.split("````diff\n", 1)[1].split("\n````\n", 1)[0]
    assert block.splitlines() == ["  Be kind.", "- Answer briefly.", "+ Answer in full.", "  ```", "  code"]
    assert json.dumps(before)[1:-1] not in text  # no escaped whole strings


def test_numbers_print_as_every_command_prints_them() -> None:
    plan = Plan(workspace="prod", changes=(
        update("budget_allocation", "acme", ("q1", "org", "sales"), FieldChange(("credits",), 9000.0, 9500.0)),
        update("agent", "acme", ("a",), FieldChange(("config", "size"), 1024, 2048)),
    ))
    text = render_markdown(plan)
    assert "| `credits` | `9,000.00` | `9,500.00` |" in text
    assert "| `config.size` | `1,024` | `2,048` |" in text


def test_a_group_of_thousands_lists_some_and_counts_the_rest() -> None:
    impact = tuple(AccessChange("acme", "copilot", f"user:u{i:05}@example.com", "model", "gpt-5", False) for i in range(5_000))
    text = render_markdown(Plan(workspace="prod", changes=(delete("model_grant", "acme", "copilot", "gpt-5", "account", ""),), access_impact=impact))
    assert len(text) < LIMIT
    assert "- 🔴 5,000 people **lose** model `gpt-5` · `acme` (copilot)" in text
    assert "`u00000@example.com`" in text and "_and 4,800 more: the JSON plan lists them all_" in text
    assert "access changes" not in text.split("---")[-1]  # nothing of the access impact was cut
