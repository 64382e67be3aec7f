"""The caller's rate limits on the gateway's hot path: which counters a call counts on, and how
a refusal is told.

Most tenants declare no limits, so the common case must cost nothing: the counters of a
(domain, user, agent, model) are computed once per account snapshot (`snapshot.memo`, as the
budget's `limits_for`), and a call with none makes no I/O and no thread hop at all.
"""

from __future__ import annotations

from cockpit.budgets.rates import RateCounter, RateRefusal
from cockpit.policy.rate_limits import effective_rate_limits
from cockpit.proxy.errors import ProxyError
from cockpit.runtime.snapshots import AccountSnapshot


def counters_for(snapshot: AccountSnapshot, domain: str, user: str, agent: str | None, model: str) -> tuple[RateCounter, ...]:
    """The counters a call of `user` (through `agent`) to `model` must pass, most specific
    first (the first refused names the reason)."""
    key = ("rates", domain, user, agent, model)
    found = snapshot.memo.get(key)
    if found is None:
        found = snapshot.memo[key] = tuple(RateCounter.of(limit) for limit in effective_rate_limits(snapshot.graph, domain, user, agent, model))
    return found


def rate_limited(refusal: RateRefusal) -> ProxyError:
    """The 429 of a call over a limit, in OpenAI's shape (`type` is `requests` or `tokens`, as
    OpenAI's own), with `Retry-After` and the `x-ratelimit-*` headers."""
    error = refusal.body()["error"]
    return ProxyError(429, error["message"], "rate_limit_exceeded", type=error["type"], headers=refusal.headers())
