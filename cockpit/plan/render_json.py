"""The public JSON plan (`plan --format json`): what tools and reviewers read.

Its own versioned structure, not a dump of the classes: `format_version` "1.2" (a minor bump
adds fields consumers may ignore, a major bump breaks; 1.2 added `access_by_cause`), enums as
lower-case strings, changes sorted as the plan runs them. README documents it. The saved plan file of `plan --out` is
built on it and read back by `cockpit.plan.saved`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cockpit.plan.model import AccessCause, AccessGroup, FieldChange, Plan, ResourceChange
from cockpit.policy.impact import AccessChange

FORMAT_VERSION = "1.2"


def render_json(plan: Plan) -> dict[str, Any]:
    counts = Counter(c.action.value for c in plan.changes)
    per_kind: dict[str, dict[str, int]] = {}
    for change in plan.changes:
        per_kind.setdefault(change.action.value, {}).setdefault(change.type, 0)
        per_kind[change.action.value][change.type] += 1
    return {
        "format_version": FORMAT_VERSION,
        "plan_id": plan.plan_id,
        "created_at": plan.created_at,
        "workspace": plan.workspace,
        "config_path": plan.config_path,
        "summary": {
            "create": counts["create"],
            "update": counts["update"],
            "delete": counts["delete"],
            "revoke": len(plan.revocations) + len(plan.zitadel_revocations),
            "zitadel": len(plan.zitadel.changes),
            "by_kind": per_kind,
            "has_changes": plan.has_changes,
            "has_deletes": plan.has_deletes,
        },
        "access_impact": [_impact(a) for a in plan.access_impact],
        "access_by_cause": [_group(g) for g in plan.access_groups],
        "changes": [_change(c) for c in plan.changes],
        "zitadel": {
            "changes": [c.as_dict() for c in plan.zitadel.changes],
            "warnings": list(plan.zitadel.warnings),
            "note": plan.zitadel.note,
        },
        "warnings": list(plan.warnings),
        "fingerprints": {**plan.fingerprints, **plan.zitadel.fingerprints},
    }


def _change(change: ResourceChange) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "kind": change.kind,
        "type": change.type,
        "account": change.account,
        "key": list(change.key),
        "before": change.before,
        "after": change.after,
        "diff": [_field(f) for f in change.field_changes],
        "protect": change.protect,
        "origin": change.origin,
        "reason": change.reason,
        "sensitive": {"fingerprint": change.secret_fingerprint, "base": change.secret_base}
        if change.secret_fingerprint or change.secret_base
        else None,
    }


def _field(field: FieldChange) -> dict[str, Any]:
    return {"path": list(field.path), "before": field.before, "after": field.after, "sensitive": field.sensitive}


def _group(group: AccessGroup) -> dict[str, Any]:
    return {
        "account": group.account,
        "domain": group.domain,
        "what": group.what,
        "name": group.name,
        "change": change_word(group.gains),
        "causes": [_cause(c) for c in group.causes],
        "count": len(group.changes),
        "subjects": list(group.subjects),
    }


def _cause(cause: AccessCause) -> dict[str, Any]:
    return {"action": cause.action.value, "type": cause.type, "account": cause.account, "key": list(cause.key), "origin": cause.origin}


def change_word(gains: bool | None) -> str:
    return "gain" if gains else "lose" if gains is False else "change"


def _impact(item: AccessChange) -> dict[str, Any]:
    change = change_word(item.gains)
    return {
        "account": item.account,
        "domain": item.domain,
        "subject": item.subject,
        "what": item.what,
        "name": item.name,
        "change": change,
        "before": item.before,
        "after": item.after,
    }
