"""Who an effective question is about, from the old API's parameters, and its answer as JSON.

The old system answered for the chain of ids the caller passed (`org_id`, `team_id`,
`user_id`) and never looked up membership. Here a user is named by id or e-mail (`user_id`
or `email`) and their teams and orgs come from the directory, so the answer is what they
really get. Without a user, the caller's `team_id`/`org_id` still form a chain (a team brings
its org), answered by the same policy functions over a directory whose chain is fixed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException

from cockpit.policy.graph import ACCOUNT, AccountGraph, Directory, Level
from cockpit.policy.provenance import Source
from cockpit.config.scopes import Scope
from cockpit.runtime.snapshots import AccountSnapshot


@dataclass(frozen=True)
class Subject:
    """A user (whose membership the directory expands), or a fixed chain of team and org."""

    domain: str
    user: str | None = None
    team: str | None = None
    org: str | None = None
    agent: str | None = None

    @property
    def name(self) -> str:
        """What the policy functions call the user: the e-mail, or `''` for a fixed chain."""
        return self.user or ""


def subject(
    snapshot: AccountSnapshot,
    domain: str,
    *,
    user_id: str | None = None,
    email: str | None = None,
    team_id: str | None = None,
    org_id: str | None = None,
    agent_id: str | None = None,
) -> Subject:
    """Resolve the parameters (row ids or natural keys) in the domain's directory; 404 in the
    old words (`copilot user not found`) for what this account does not have."""
    user = None
    for value in (user_id, email):
        if value:
            found = snapshot.find(domain, "user", value).key
            if user is not None and found != user:
                raise HTTPException(400, "user_id and email name different users")
            user = found
    team = snapshot.find(domain, "team", team_id).key if team_id else None
    org = snapshot.find(domain, "org", org_id).key if org_id else None
    agent = snapshot.find(domain, "agent", agent_id).key if agent_id else None
    return Subject(domain, user, team, org, agent)


@dataclass
class FixedChain(Directory):
    """A directory whose chain is given, for questions about a team or org rather than a user."""

    levels: tuple[Level, ...] = ()

    def chain(self, email: str) -> tuple[Level, ...]:
        return self.levels

    def member_scopes(self, email: str) -> frozenset[Scope]:
        return frozenset(s for name, scopes in self.levels if name != "account" for s in scopes)

    def teams_of(self, email: str) -> tuple[str, ...]:
        return tuple(s.key for name, scopes in self.levels if name == "team" for s in scopes)

    def orgs_of(self, email: str) -> tuple[str, ...]:
        return tuple(s.key for name, scopes in self.levels if name == "org" for s in scopes)


def graph_for(snapshot: AccountSnapshot, who: Subject) -> AccountGraph:
    """The account's graph, with the domain's directory replaced by a fixed chain when the
    subject is not a user."""
    if who.user is not None:
        return snapshot.graph
    directory = snapshot.graph.directory(who.domain)
    org = who.org or (who.team.partition("/")[0] if who.team else None)
    levels: list[Level] = []
    if who.team:
        levels.append(("team", (Scope("team", who.team),)))
    if org:
        levels.append(("org", (Scope("org", org),)))
    levels.append(("account", (ACCOUNT,)))
    fixed = FixedChain(**{f.name: getattr(directory, f.name) for f in dataclasses.fields(Directory)}, levels=tuple(levels))
    return dataclasses.replace(snapshot.graph, directories={**snapshot.graph.directories, who.domain: fixed})


def resolution_order(snapshot: AccountSnapshot, graph: AccountGraph, who: Subject) -> list[dict[str, Any]]:
    """The chain the answer walked, most specific first, as `{scope_type, scope_id, …}`."""
    order = []
    if who.agent:
        order.append(snapshot.scope_fields("copilot", Scope("agent", who.agent)))
    for _, scopes in graph.directory(who.domain).chain(who.name):
        order.extend(snapshot.scope_fields(who.domain, s) for s in scopes)
    return order


def subject_fields(snapshot: AccountSnapshot, who: Subject) -> dict[str, Any]:
    """Who the answer is for: the user's id and e-mail, or the team/org of a fixed chain."""
    fields: dict[str, Any] = {}
    if who.user is not None:
        fields["user_id"] = snapshot.scope_id(who.domain, Scope("user", who.user))
        fields["email"] = who.user
    else:
        if who.team:
            fields["team_id"] = snapshot.scope_id(who.domain, Scope("team", who.team))
        if who.org:
            fields["org_id"] = snapshot.scope_id(who.domain, Scope("org", who.org))
    if who.agent:
        fields["agent_id"] = snapshot.scope_id("copilot", Scope("agent", who.agent))
    return fields


def parse_scope(text: str) -> Scope:
    if text in ("account", "pool"):
        return Scope(text, "")
    kind, _, key = text.partition(":")
    return Scope(kind, key)


def source_fields(snapshot: AccountSnapshot, domain: str, source: Source) -> dict[str, Any]:
    """One piece of provenance: what decided (type, row id), at which scope, saying what."""
    return {
        "type": source.type,
        "id": snapshot.row_id(source.type, tuple(source.key)) if source.type != "account" else str(snapshot.account_id),
        **snapshot.scope_fields(domain, parse_scope(source.scope)),
        "detail": source.detail,
        "origin": source.origin,
    }
