"""The saved plan file (`plan --out FILE`, read by `apply FILE`): its format, MAC and reading back.

The file is the public JSON plan (`cockpit.plan.render_json`) with the saved file's own
`format_version`, a `config` section and an `integrity` block. Its format_version is "1.2" (a
minor bump adds fields a reader may ignore, a major bump breaks); 1.1 added `integrity`, which
`apply FILE` requires, so a 1.0 file (no MAC) is refused although its fields still read; 1.2
added `config`: the YAML files the plan was made from (`{"base", "commit", "files": [{"path",
"sha256", "text"}]}`), so apply verifies what it wrote against the reviewed config even when
the directory has moved on since; and `origins` (`[[type, account, key, "file:line:column"]]`),
where apply records resources declared at a new place. The MAC covers them like every other
section.

A saved plan is reviewed, then applied without asking; whoever can edit the file between the
two (a CI artifact, a shared directory) could otherwise redirect a model's `api_base` or add an
admin, and the database would take it. So the saved document carries an `integrity` block:

    "integrity": {"algorithm": "HMAC-SHA256", "key_id": "…",
                  "sections": {"changes": "sha256…", "summary": "sha256…", …},
                  "changes": ["sha256[:16]…", …],
                  "mac": "hmac…"}

`sections` holds a SHA-256 of every other top-level field's canonical JSON, `changes` a short
digest per planned change (only to name which resource was edited), and `mac` an HMAC-SHA256,
keyed from the secret key (its own derived key), over the canonical JSON of the block without
`mac`. The MAC covers the section digests, and they cover the whole document, so any edit is
refused; the digests then name what was edited. `key_id` names the key, so a plan made with
another `COCKPIT_SECRET_KEY` is told apart from an edited one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Mapping

from cockpit.config.snapshot import ConfigSnapshot
from cockpit.plan.model import AccessCause, AccessGroup, Action, FieldChange, Plan, ResourceChange
from cockpit.plan.render_json import render_json
from cockpit.policy.impact import AccessChange
from cockpit.store.secrets import SecretBox, canonical_json
from cockpit.zitadel.desired import ZitadelChange, ZitadelPlan

FORMAT_VERSION = "1.2"
"""The saved file's format, which `load_plan` checks (its major part)."""

ALGORITHM = "HMAC-SHA256"
INTEGRITY_FIELD = "integrity"
_CHANGE_DIGEST_LENGTH = 16
_SHOWN_LIMIT = 5


class SavedPlanError(Exception):
    """A saved plan that cannot be applied: unreadable, not verified, or of another format."""


class PlanIntegrityError(SavedPlanError):
    """A saved plan that does not verify: its MAC is missing, from another key, or wrong."""


class PlanFormatError(SavedPlanError):
    """A saved plan that this version cannot read."""


def seal(document: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """`document` (plain JSON data, as it will be read back) with its integrity block added."""
    content = {k: v for k, v in document.items() if k != INTEGRITY_FIELD}
    block: dict[str, Any] = {
        "algorithm": ALGORITHM,
        "key_id": box.plan_key_id(),
        "sections": _section_digests(content),
        "changes": _change_digests(content.get("changes")),
    }
    block["mac"] = box.plan_mac(_encoded(block))
    return {**content, INTEGRITY_FIELD: block}


def verify(document: Mapping[str, Any], box: SecretBox) -> None:
    """Raise PlanIntegrityError naming what failed, unless `document` is as it was saved."""
    block = document.get(INTEGRITY_FIELD)
    if not isinstance(block, Mapping) or not isinstance(block.get("mac"), str):
        raise PlanIntegrityError(
            "the saved plan has no MAC: it was not written by `cockpit plan --out` of this "
            "version, or its integrity block was removed; make the plan again with "
            "`cockpit plan PATH --out FILE`"
        )
    if block.get("algorithm") != ALGORITHM:
        raise PlanIntegrityError(
            f"the saved plan's MAC uses algorithm {str(block.get('algorithm'))[:40]!r}, not "
            f"{ALGORITHM}; make the plan again with `cockpit plan PATH --out FILE`"
        )
    if block.get("key_id") != box.plan_key_id():
        raise PlanIntegrityError(
            f"the saved plan was made with another secret key than {box.source} (or its "
            "key_id was edited); apply it where it was planned, or plan again here"
        )
    unsigned = {k: v for k, v in block.items() if k != "mac"}
    if not hmac.compare_digest(box.plan_mac(_encoded(unsigned)), block["mac"]):
        raise PlanIntegrityError(
            "the saved plan's MAC does not verify: its integrity block was edited; do not "
            "apply it — make the plan again and review it"
        )
    content = {k: v for k, v in document.items() if k != INTEGRITY_FIELD}
    edited = _edited_parts(content, unsigned)
    if edited:
        raise PlanIntegrityError(
            "the saved plan was modified after it was saved (" + "; ".join(edited) + "); "
            "do not apply it — make the plan again and review it"
        )


def _edited_parts(content: Mapping[str, Any], block: Mapping[str, Any]) -> list[str]:
    """What differs from the signed digests, for people: sections, then changed resources."""
    signed = block.get("sections")
    signed = signed if isinstance(signed, Mapping) else {}
    now = _section_digests(content)
    parts = []
    added = sorted(set(now) - set(signed))
    removed = sorted(set(signed) - set(now))
    changed = sorted(k for k in set(now) & set(signed) if not hmac.compare_digest(str(signed[k]), now[k]))
    if changed:
        parts.append("changed: " + ", ".join(changed))
    if added:
        parts.append("added: " + ", ".join(added))
    if removed:
        parts.append("removed: " + ", ".join(removed))
    if "changes" in changed:
        resources = _edited_changes(content.get("changes"), block.get("changes"))
        if resources:
            parts.append("edited changes: " + ", ".join(resources))
    return parts


def _edited_changes(changes: Any, signed: Any) -> list[str]:
    now = _change_digests(changes)
    signed = signed if isinstance(signed, list) else []
    items = changes if isinstance(changes, list) else []
    named = []
    for index in range(max(len(now), len(signed))):
        if index < len(now) and index < len(signed) and now[index] == signed[index]:
            continue
        if index >= len(now):
            named.append(f"#{index + 1} removed")
        else:
            suffix = " (added)" if index >= len(signed) else ""
            named.append(f"#{index + 1} {_address(items[index])}{suffix}")
    if len(named) > _SHOWN_LIMIT:
        named = [*named[:_SHOWN_LIMIT], f"{len(named) - _SHOWN_LIMIT} more"]
    return named


def _address(change: Any) -> str:
    """`type:account:key` of a planned change, shortened; what the stale-plan message names."""
    if not isinstance(change, Mapping):
        return "(not a change)"
    key = change.get("key")
    key_text = "/".join(str(k) for k in key) if isinstance(key, list) else str(key)
    return f"{change.get('type')}:{change.get('account') or ''}:{key_text}"[:120]


def _section_digests(content: Mapping[str, Any]) -> dict[str, str]:
    return {str(name): hashlib.sha256(_encoded(value)).hexdigest() for name, value in content.items()}


def _change_digests(changes: Any) -> list[str]:
    if not isinstance(changes, list):
        return []
    return [hashlib.sha256(_encoded(c)).hexdigest()[:_CHANGE_DIGEST_LENGTH] for c in changes]


def _encoded(value: Any) -> bytes:
    # surrogatepass: a JSON "\ud800" escape parses to a lone surrogate, which must still hash
    return canonical_json(value).encode("utf-8", "surrogatepass")


def write_saved_plan(plan: Plan, path: Path, box: SecretBox) -> None:
    """Write `plan` to `path` with its MAC, made over the data as it will be read back."""
    document = json.loads(json.dumps(render_json(plan), default=str))
    document["format_version"] = FORMAT_VERSION
    if plan.config is not None:
        document["config"] = plan.config.as_dict()
    document["origins"] = [[t, account, list(key), origin] for (t, account, key), origin in plan.origins.items()]
    path.write_text(json.dumps(seal(document, box), indent=1) + "\n", encoding="utf-8")


def read_saved_plan(path: Path, box: SecretBox) -> Plan:
    """The plan saved in `path`, once its MAC verifies with `box`; raises SavedPlanError
    naming the file and what failed (unreadable, missing MAC, another key, sections edited)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SavedPlanError(f"{path}: not a saved plan ({exc})") from None
    except OSError as exc:
        raise SavedPlanError(f"{path}: cannot read the saved plan ({exc.strerror})") from None
    if not isinstance(document, dict):
        raise SavedPlanError(f"{path}: not a saved plan (a JSON object was expected)")
    try:
        verify(document, box)
    except PlanIntegrityError as exc:
        raise PlanIntegrityError(f"{path}: refusing to apply: {exc}") from None
    try:
        return load_plan(document)
    except PlanFormatError as exc:
        raise PlanFormatError(f"{path}: {exc}") from None


def load_plan(document: Mapping[str, Any]) -> Plan:
    """The plan of a saved document (after `verify`): the inverse of `render_json`."""
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
        by_subject = {(a.account, a.domain, a.what, a.name, a.gains, a.subject): a for a in impact}
        groups = tuple(
            AccessGroup(
                g["account"], g["domain"], g["what"], g["name"], {"gain": True, "lose": False}.get(g["change"]),
                tuple(AccessCause(Action(c["action"]), c["type"], c["account"], tuple(c["key"]), c["origin"]) for c in g["causes"]),
                tuple(by_subject[(g["account"], g["domain"], g["what"], g["name"], {"gain": True, "lose": False}.get(g["change"]), s)] for s in g["subjects"]),
            )
            for g in document.get("access_by_cause", [])
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
            access_groups=groups,
            fingerprints={k: v for k, v in fingerprints.items() if not k.startswith("zitadel:")},
            warnings=tuple(document["warnings"]),
            plan_id=document["plan_id"],
            created_at=document["created_at"],
            config_path=document["config_path"],
            config=ConfigSnapshot.from_dict(document["config"]) if document.get("config") else None,
            origins={(t, account, tuple(key)): str(origin) for t, account, key, origin in document.get("origins", [])},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFormatError(f"saved plan is damaged or not a cockpit plan ({exc!r})") from None
