"""The Zitadel section of a plan: per account with a `zitadel.project_id`, the roles and grants
to change, and a fingerprint of what Zitadel held when the plan was made.

An account the config dropped keeps its Zitadel grants (it is suspended, not deleted). Applying
a saved plan reads Zitadel again (`zitadel_fingerprints`) and refuses the plan if it moved.
"""

from __future__ import annotations

from typing import Mapping

from cockpit.plan.draft import PlanDraft, PlanFailed, PlanSources
from cockpit.resources.state import State
from cockpit.zitadel import ZitadelError, ZitadelSettings
from cockpit.zitadel.desired import (
    ActualZitadel,
    DesiredZitadel,
    ReservedRoleKey,
    ZitadelPlan,
    compare_zitadel,
    desired_zitadel,
    ordered,
    people,
    platform_role_keys,
)
from cockpit.zitadel.reader import read_zitadel


def compare_zitadel_section(sources: PlanSources, draft: PlanDraft) -> None:
    """The comparator of Zitadel: its roles and grants, or a note saying why they are left out."""
    draft.zitadel = plan_zitadel(sources.desired, sources.actual, sources.environ, skip=sources.skip_zitadel)


def plan_zitadel(desired: State, actual: State, environ: Mapping[str, str], *, skip: bool = False) -> ZitadelPlan:
    """Roles and grants to change per account, read from Zitadel; raises PlanFailed when
    Zitadel cannot be read or a change would touch a platform role."""
    wanted = _desired_accounts(desired)
    if not wanted:
        return ZitadelPlan()
    if skip:
        return ZitadelPlan(note="Zitadel skipped (--skip-zitadel): its roles and grants are not in this plan")
    settings = _settings(environ)
    if settings is None:
        return ZitadelPlan(note=(
            f"Zitadel is not configured, so {len(wanted)} account(s) with a zitadel.project_id were "
            "planned for the database only; set ZITADEL_ISSUER_URL and ZITADEL_MGMT_API_TOKEN (or "
            "ZITADEL_CLIENT_ID and ZITADEL_CLIENT_SECRET) to include Zitadel"
        ))
    changes, warnings, prints = [], [], {}
    for account, account_wanted in wanted.items():
        former = _former_people(actual, account_wanted)
        current = _read(settings, account_wanted, former)
        try:
            account_changes, account_warnings = compare_zitadel(account_wanted, current, former, platform_role_keys(environ))
        except ReservedRoleKey as exc:  # validation was bypassed: refuse, never plan the step
            raise PlanFailed([f"error: {exc}"]) from None
        changes.extend(account_changes)
        warnings.extend(account_warnings)
        prints[fingerprint_key(account)] = current.fingerprint()
    return ZitadelPlan(tuple(ordered(tuple(changes))), tuple(warnings), prints)


def zitadel_fingerprints(desired: State, actual: State, environ: Mapping[str, str]) -> dict[str, str]:
    """What Zitadel holds now, as the fingerprints `plan_zitadel` records (nothing when Zitadel
    is not configured): the same reads, without comparing or planning anything."""
    wanted = _desired_accounts(desired)
    settings = _settings(environ) if wanted else None
    if settings is None:
        return {}
    return {
        fingerprint_key(account): _read(settings, account_wanted, _former_people(actual, account_wanted)).fingerprint()
        for account, account_wanted in wanted.items()
    }


def fingerprint_key(account: str) -> str:
    """The key of an account's Zitadel fingerprint, beside the database's in the JSON plan."""
    return f"zitadel:{account}"


def _desired_accounts(desired: State) -> dict[str, DesiredZitadel]:
    """The accounts with a `zitadel.project_id`, in name order, and what Zitadel should hold."""
    wanted = {}
    for account in sorted(desired.accounts()):
        account_wanted = desired_zitadel(desired, account)
        if account_wanted is not None:
            wanted[account] = account_wanted
    return wanted


def _settings(environ: Mapping[str, str]) -> ZitadelSettings | None:
    try:
        return ZitadelSettings.from_environment(environ)
    except ZitadelError as exc:
        raise PlanFailed([f"error: {exc}"]) from None


def _former_people(actual: State, wanted: DesiredZitadel) -> set[str]:
    """The account's people the database knows: one the config removed loses its roles."""
    return set(people(actual, wanted.target.account, wanted.target))


def _read(settings: ZitadelSettings, wanted: DesiredZitadel, former: set[str]) -> ActualZitadel:
    target = wanted.target
    try:
        with settings.client(account_issuer=target.issuer, org_id=target.organization_id) as client:
            return read_zitadel(client, target, set(wanted.grants) | former)
    except ZitadelError as exc:
        raise PlanFailed([f"error: Zitadel, account '{target.account}': {exc}; fix it, or plan the database alone with --skip-zitadel"]) from None
