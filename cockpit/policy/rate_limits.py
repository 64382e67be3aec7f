"""Effective rate limits: every limit on a caller's chain, each with the counter it counts on.

Rate limits do not override one another as grants do: every limit on the chain must pass
(account, the user's orgs, their teams, the user, the agent), so a call is counted on each. A
limit with `per_user` counts each user of its scope on a counter of their own; a limit with a
`model` counts only calls to that model. The counter key names what is counted, never a row
id, so replicas (and the database and Redis stores) agree on it without a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from cockpit.config.scopes import Scope
from cockpit.policy.graph import AccountGraph
from cockpit.policy.provenance import Source, source_of

PER_USER = "user"
"""The `per` key part of a limit counted per user (`cockpit.resources.kinds.rate_limits`)."""



@dataclass(frozen=True)
class EffectiveRateLimit:
    """One limit the caller's call must pass."""

    scope: Scope
    per_user: bool
    model: str | None
    """Only calls to this model count; None: every call."""
    rpm: int | None
    tpm: int | None
    key: str
    """The counter this call counts on (`counter_key`)."""
    source: Source

    @property
    def why(self) -> str:
        """For people: `team:research/ml limits its gpt-4o calls to 120 requests a minute`."""
        rates = " and ".join(
            f"{value:,} {unit} a minute"
            for value, unit in ((self.rpm, "requests"), (self.tpm, "tokens"))
            if value is not None
        )
        whose = "each user's" if self.per_user else "its"
        calls = f"{self.model} calls" if self.model else "calls"
        return f"{self.scope} limits {whose} {calls} to {rates}"

    @property
    def label(self) -> str:
        """How a refusal names the limit: `team:research/ml (gpt-4o)`, `account (per user)`."""
        details = [d for d in (self.model, "per user" if self.per_user else None) if d]
        return f"{self.scope}" + (f" ({', '.join(details)})" if details else "")


def counter_key(account: str, domain: str, scope: Scope, model: str | None, user: str | None) -> str:
    """`acme:copilot:team:research%2Fml:gpt-4o` (`*` for every model, then `user:EMAIL` when
    counted per user). Each part is percent-encoded, so no name can run into the next."""
    parts = [account, domain, scope.type, scope.key, model or "*"]
    if user is not None:
        parts += ["user", user]
    return ":".join(quote(part, safe="@.-_*") for part in parts)


def effective_rate_limits(
    graph: AccountGraph, domain: str, user: str, agent: str | None, model: str | None
) -> list[EffectiveRateLimit]:
    """The limits a call of `user` (through `agent`, if any) to `model` in `domain` must pass,
    most specific scope first (agent, user, teams, orgs, account). `model=None` lists every
    limit on the chain, whichever model it is for (what `explain` and the read API show)."""
    by_scope = graph.rate_limits.get(domain, {})
    if not by_scope:
        return []
    email = user.lower()
    scopes: list[Scope] = []
    if agent is not None and domain == "copilot":
        scopes.append(Scope("agent", agent))
    for _, level in graph.directory(domain).chain(email):
        scopes.extend(level)
    result = []
    for scope in scopes:
        for limit in sorted(by_scope.get(scope, ()), key=lambda r: r.key):
            _, _, _, limit_model, per = limit.key
            if limit_model and model is not None and limit_model != model:
                continue
            per_user = per == PER_USER
            key = counter_key(graph.name, domain, scope, limit_model or None, email if per_user else None)
            detail = " ".join(f"{name} {limit.fields[name]}" for name in ("rpm", "tpm") if limit.fields.get(name) is not None)
            result.append(
                EffectiveRateLimit(
                    scope, per_user, limit_model or None, limit.fields.get("rpm"), limit.fields.get("tpm"),
                    key, source_of(limit, str(scope), detail),
                )
            )
    return result

