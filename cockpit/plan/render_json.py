"""The public JSON plan (`plan --format json`): what tools and reviewers read.

Its own versioned structure, not a dump of the classes: `format_version` "1.1" (a minor bump
adds fields consumers may ignore, a major bump breaks), enums as lower-case strings, changes
sorted as the plan runs them. README documents it. The saved plan file of `plan --out` is
built on it and read back by `cockpit.plan.saved`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cockpit.plan.model import FieldChange, Plan, ResourceChange
from cockpit.policy.impact import AccessChange

FORMAT_VERSION = "1.1"


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


def _impact(item: AccessChange) -> dict[str, Any]:
    change = "gain" if item.gains else "lose" if item.gains is False else "change"
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
