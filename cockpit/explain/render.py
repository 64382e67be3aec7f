"""The explain report as text for people: one section per kind, one line per answer, its why
indented beneath when it does not fit beside."""

from __future__ import annotations

from typing import Any

from cockpit.credits import format_credits, to_cents


def _credits(value: float | None) -> str:
    return "-" if value is None else format_credits(to_cents(value))


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    """(mark, name, why) rows, names aligned."""
    if not rows:
        return ["  (none)"]
    width = max(len(name) for _, name, _ in rows)
    mark_width = max(len(mark) for mark, _, _ in rows)
    lines = []
    for mark, name, why in rows:
        prefix = f"  {mark:<{mark_width}} " if mark_width else "  "
        lines.append(f"{prefix}{name:<{width}}  {why}".rstrip())
    return lines


def render_report(report: dict[str, Any]) -> str:
    source = report["source"]
    where = f"the config at {source['config']}" if source["kind"] == "config" else f"the database (workspace {source['workspace']})"
    lines = [f"{report['user']} in account {report['account']}, from {where}"]
    if report.get("admin_role"):
        lines.append(f"  account admin: {report['admin_role']}")
    for domain, membership in report["directory"].items():
        if not membership["member"]:
            lines.append(f"  {domain}: not in the directory (only account-level grants reach them)")
            continue
        name = f" ({membership['display_name']})" if membership.get("display_name") else ""
        teams = ", ".join(membership["teams"]) or "none"
        orgs = ", ".join(membership["orgs"]) or "none"
        lines.append(f"  {domain}{name}: teams {teams}; orgs {orgs}")

    for domain, models in report["models"].items():
        lines += ["", f"Models ({domain})"]
        lines += _table([("allow" if m["allowed"] else "deny", m["model"], m["why"]) for m in models])

    if "agents" in report:
        lines += ["", "Agents (copilot)"]
        lines += _table([("", a["name"], a["why"]) for a in report["agents"]])
        lines += ["", "Connections (copilot)"]
        lines += _table([("", c["name"] + (" [can manage]" if c.get("can_manage") else ""), c["why"]) for c in report["connections"]])
        lines += ["", "Marketplace (copilot)"]
        lines += _table([("", m["listing"], m["why"]) for m in report["marketplace"]])

    lines += ["", "Guardrails"]
    lines += _table([(g["domain"], f"{g['code']} ({g['name']})" if g["name"] != g["code"] else g["code"], "via " + ", ".join(g["levels"]) + _origins(g["sources"])) for g in report["guardrails"]])

    for domain, limits in report.get("rate_limits", {}).items():
        lines += ["", f"Rate limits ({domain}): every one must pass"]
        lines += _table([("", r["scope"] + (f" ({r['model']})" if r["model"] else "") + (" per user" if r["per_user"] else ""), r["why"] + _origins(r["sources"])) for r in limits])

    for domain, features in report["features"].items():
        lines += ["", f"Features ({domain})"]
        lines += _table([("on" if f["enabled"] else "off", f["feature"], f["why"]) for f in features])

    if "budget" in report:
        lines += ["", *_budget(report["budget"], source["kind"])]
    return "\n".join(lines) + "\n"


def _origins(sources: list[dict[str, Any]]) -> str:
    found = [s["origin"] for s in sources if s.get("origin")]
    return f" ({'; '.join(found)})" if found else ""


def _budget(budget: dict[str, Any], kind: str) -> list[str]:
    if budget["plan"] is None:
        return ["Budget (copilot)", f"  {budget['why']}"]
    window = budget["window"]
    span = f", window {window['start']} to {window['end']}" if window else ""
    usage = "used: none yet (config not applied)" if kind == "config" else "used: the usage ledger in this window"
    lines = [f"Budget (copilot): plan {budget['plan']}, {budget['cycle']}{span}; {usage}"]
    rows = []
    for level in budget["chain"]:
        cap = f" + overflow {_credits(level['overflow_cap'])}" if level["overflow_cap"] else ""
        rows.append(
            (level["scope"], f"{_credits(level['credits'])}{cap}; used {_credits(level['used'])}; remaining {_credits(level['remaining'])}", level["why"] + _origins(level["sources"]))
        )
    width = max(len(scope) for scope, _, _ in rows)
    for scope, figures, why in rows:
        lines.append(f"  {scope:<{width}}  {figures}")
        lines.append(f"  {'':<{width}}    {why}")
    lines.append(f"  {budget['why']}")
    return lines
