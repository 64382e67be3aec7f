"""The old system's effective-access algorithms (console-cockpit, "Control Plane v1"), kept only
to compare with Cockpit's: what a user got there, computed the way it computed it.

All of them take the ids the caller passes — user, team, org — and never look membership up;
the account level is always added. For a user in several teams the old answer therefore depends
on which team the caller named: `contexts` lists one context per team membership (a user in no
team has the context of the user alone).

- model access: the first level of user → team → org → account with any grant row for the model
  decides; within it any deny wins; no row anywhere is deny; the account's console model policy
  is not consulted;
- features: the first level with an entitlement row wins (enabled and config as stored); no row
  is off; the feature pack is not consulted;
- guardrails: the additive union of the assignments at each level (duplicates kept);
- marketplace discover: published listings with no grants are seen by everyone, others when a
  grant names one of the passed scopes;
- agents and connections: the grants were stored only; a grant on one of the passed scopes is
  read as use, the same matching as discover.

Rows are the old tables' rows as dicts, with their (type, id) scope already mapped to the
config's scope string under `scope` (`user:alice@acme.com`, `team:research/ml`, `account`): the
mapping is one to one, so the algorithms decide as they did on ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
ACCOUNT = "account"


@dataclass(frozen=True)
class Context:
    """The ids one old API call passed: the user, and optionally a team and its org."""

    user: str
    team: str | None = None
    org: str | None = None

    def chain(self) -> list[str]:
        """Most specific first, only the supplied ids, then the account."""
        return [s for s in (self.user, self.team, self.org) if s] + [ACCOUNT]

    def subject(self) -> set[str]:
        return {s for s in (self.user, self.team, self.org) if s}

    def __str__(self) -> str:
        return f"with {self.team} passed" if self.team else "with no team passed"


@dataclass
class OldAccount:
    """One account's rows, as the algorithms need them."""

    model_grants: list[Row] = field(default_factory=list)
    entitlements: list[Row] = field(default_factory=list)
    assignments: list[Row] = field(default_factory=list)
    """Guardrail assignments joined with their preset's `code`."""
    agent_grants: list[Row] = field(default_factory=list)
    connection_grants: list[Row] = field(default_factory=list)
    listings: list[Row] = field(default_factory=list)
    listing_grants: list[Row] = field(default_factory=list)
    memberships: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """domain → e-mail → the team scopes of the user's memberships."""

    def contexts(self, domain: str, email: str) -> list[Context]:
        """One context per team membership (each team with its org), else the user alone."""
        user = f"user:{email}"
        teams = self.memberships.get(domain, {}).get(email, [])
        if not teams:
            return [Context(user)]
        return [Context(user, t, "org:" + t[len("team:"):].split("/")[0]) for t in sorted(set(teams))]


def _scope(row: Row) -> str:
    return str(row["scope"])


def _newest_first(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.get("created_at") or "", r.get("id") or ""), reverse=True)


def model_allowed(account: OldAccount, domain: str, model: str, context: Context) -> tuple[bool, str | None]:
    """§10: (allowed, the deciding level or None)."""
    rows = [r for r in account.model_grants if r["domain"] == domain and r["model_name"] == model]
    for level in context.chain():
        at_level = [r for r in rows if _scope(r) == level]
        if at_level:
            if any(r.get("access_mode") == "deny" for r in at_level):
                return False, level
            return _newest_first(at_level)[0].get("access_mode", "allow") == "allow", level
    return False, None


def allowed_models(account: OldAccount, domain: str, context: Context) -> frozenset[str]:
    names = {r["model_name"] for r in account.model_grants if r["domain"] == domain}
    return frozenset(m for m in names if model_allowed(account, domain, m, context)[0])


def feature_enabled(account: OldAccount, domain: str, feature: str, context: Context) -> bool:
    """§11: the first level with a row wins; no row is off."""
    rows = [r for r in account.entitlements if r["domain"] == domain and r["feature_code"] == feature]
    for level in context.chain():
        for row in rows:
            if _scope(row) == level:
                return bool(row.get("enabled", True))
    return False


def enabled_features(account: OldAccount, domain: str, context: Context) -> frozenset[str]:
    names = {r["feature_code"] for r in account.entitlements if r["domain"] == domain}
    return frozenset(f for f in names if feature_enabled(account, domain, f, context))


def guardrails(account: OldAccount, context: Context) -> list[str]:
    """§9.4: preset codes over the chain, additive, duplicates kept (no agent passed)."""
    chain = context.chain()
    found = []
    for level in chain:
        found += [r["code"] for r in _newest_first(account.assignments) if _scope(r) == level]
    return found


def _granted(grants: Iterable[Row], owner: str, context: Context) -> set[str]:
    subject = context.subject()
    return {str(g[owner]) for g in grants if _scope(g) in subject}


def agents(account: OldAccount, context: Context) -> frozenset[str]:
    return frozenset(_granted(account.agent_grants, "agent_id", context))


def connections(account: OldAccount, context: Context) -> frozenset[str]:
    return frozenset(_granted(account.connection_grants, "connection_id", context))


def discover(account: OldAccount, context: Context) -> frozenset[str]:
    """§12: the listings (`agent:NAME`, …) the context can discover."""
    granted: dict[str, set[str]] = {}
    for grant in account.listing_grants:
        granted.setdefault(str(grant["marketplace_id"]), set()).add(_scope(grant))
    subject = context.subject()
    seen = set()
    for listing in account.listings:
        if not listing.get("is_published", True):
            continue
        scopes = granted.get(str(listing["id"]))
        if not scopes or scopes & subject:
            seen.add(str(listing["id"]))
    return frozenset(seen)
