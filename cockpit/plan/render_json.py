"""The machine plan format (`--format json`, and the saved plan of `plan --out`).

Its own versioned structure, not a dump of the classes: `format_version` "1.1" (a minor bump
adds fields consumers may ignore, a major bump breaks), enums as lower-case strings, changes
sorted as the plan runs them. README documents it. `load_plan` reads it back for `apply FILE`.

1.1 added `integrity` to the saved plan (cockpit/plan/integrity.py): its MAC, which `apply FILE`
requires, so a 1.0 file (no MAC) is refused there although its fields still read.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from cockpit.plan.model import Action, FieldChange, Plan, ResourceChange
from cockpit.policy.impact import AccessChange
from cockpit.zitadel.desired import ZitadelChange, ZitadelPlan

FORMAT_VERSION = "1.1"


class PlanFormatError(Exception):
    """A saved plan that this version cannot read."""


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


def load_plan(document: Mapping[str, Any]) -> Plan:
    version = str(document.get("format_version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise PlanFormatError(
            f"saved plan has format_version {version or '(none)'}; this cockpit reads "
            f"{FORMAT_VERSION.split('.')[0]}.x — make the plan again with this version"
        )
    try:
        changes = tuple(
            ResourceChange(
                Action(c["action"]), c["type"], c["account"], tuple(c["key"]), c["before"], c["after"],
                field_changes=tuple(FieldChange(tuple(f["path"]), f["before"], f["after"], f["sensitive"]) for f in c["diff"]),
                protect=c["protect"], origin=c["origin"], reason=c["reason"],
                secret_fingerprint=(c["sensitive"] or {}).get("fingerprint"),
                secret_base=(c["sensitive"] or {}).get("base"),
            )
            for c in document["changes"]
        )
        impact = tuple(
            AccessChange(a["account"], a["domain"], a["subject"], a["what"], a["name"],
                         {"gain": True, "lose": False}.get(a["change"]), a["before"], a["after"])
            for a in document["access_impact"]
        )
        zitadel_doc = document.get("zitadel") or {}
        fingerprints = document["fingerprints"]
        zitadel = ZitadelPlan(
            changes=tuple(ZitadelChange.from_dict(c) for c in zitadel_doc.get("changes", [])),
            warnings=tuple(zitadel_doc.get("warnings", [])),
            fingerprints={k: v for k, v in fingerprints.items() if k.startswith("zitadel:")},
            note=zitadel_doc.get("note"),
        )
        return Plan(
            workspace=document["workspace"],
            zitadel=zitadel,
            changes=changes,
            access_impact=impact,
            fingerprints={k: v for k, v in fingerprints.items() if not k.startswith("zitadel:")},
            warnings=tuple(document["warnings"]),
            plan_id=document["plan_id"],
            created_at=document["created_at"],
            config_path=document["config_path"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFormatError(f"saved plan is damaged or not a cockpit plan ({exc!r})") from None
