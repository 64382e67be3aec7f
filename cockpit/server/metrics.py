"""`GET /metrics`: who may scrape, and the budget families computed at scrape time.

The families recorded as requests run are in `cockpit.observe.metrics`. Budgets are read from
the database when scraped, so every replica reports the same numbers and an alert at 80% of a
scope's allocation is one PromQL expression:
`cockpit_budget_used_credits / cockpit_budget_limit_credits > 0.8`.

Labels: `account` (its name), `plan`, `scope` as the config writes it (`account`, `pool`,
`org:research`, `team:research/ml`), except users: an e-mail address never becomes a label, so a
user scope is `user:` and the first 12 hex digits of a keyed hash of the address
(HMAC-SHA256 under the server's secret key: stable for a user, not reversible by hashing a
list of addresses). Without a secret key, user scopes are left out.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections import defaultdict
from decimal import Decimal
from typing import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Engine

from cockpit.budgets.usage import UTC, cycle_window, ledger_scopes
from cockpit.config.scopes import Scope
from cockpit.runtime.context import EMPTY, SCOPE_KEY, RequestContext
from cockpit.store.queries.budget_metrics import active_limits, window_usage
from cockpit.store.secrets import SecretBox

TOKEN_VARIABLE = "COCKPIT_METRICS_TOKEN"
MASTER_KEY_PROVIDER = "litellm_master_key"


def scrape_refusal(context: RequestContext, token: str | None, environ: Mapping[str, str]) -> tuple[int, str] | None:
    """None when the caller may scrape (the master key, or `COCKPIT_METRICS_TOKEN` as a bearer
    token); else the status and why: 401 without a credential, 403 with another one. The
    metrics name accounts and models, so nobody else reads them."""
    if context.auth_provider == MASTER_KEY_PROVIDER:
        return None
    expected = (environ.get(TOKEN_VARIABLE) or "").strip()
    if token and expected and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        return None
    if not token:
        return 401, "Metrics need a credential: send `Authorization: Bearer` with the master key or COCKPIT_METRICS_TOKEN."
    return 403, "Metrics are served to the master key and COCKPIT_METRICS_TOKEN only."


def context_of(scope: Mapping[str, object]) -> RequestContext:
    found = scope.get(SCOPE_KEY, EMPTY)
    return found if isinstance(found, RequestContext) else EMPTY


def user_label(box: SecretBox | None) -> Callable[[str], str | None]:
    """How a user scope is labelled: a keyed hash of the address, or None (left out)."""
    if box is None:
        return lambda email: None
    return lambda email: "user:" + box.fingerprint({"metrics_user": email.lower()})[:12]


class BudgetCollector:
    """`cockpit_budget_used_credits` and `cockpit_budget_limit_credits` per scope of each
    active plan, read when scraped."""

    def __init__(self, engine: Engine, box: SecretBox | None, now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)) -> None:
        self.engine = engine
        self.label_user = user_label(box)
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        help_used = "Credits used in the current cycle window of the account's active budget plan, per allocated scope (account: every domain; pool: copilot usage of scopes without an allocation)."
        help_limit = "The scope's effective allocation in the active plan (its override when it has one; account: monthly_credits)."
        used_family = GaugeMetricFamily("cockpit_budget_used_credits", help_used, labels=("account", "plan", "scope"))
        limit_family = GaugeMetricFamily("cockpit_budget_limit_credits", help_limit, labels=("account", "plan", "scope"))
        for (account, plan, scope), (used, limit) in sorted(self.read().items()):
            used_family.add_metric((account, plan, scope), used)
            limit_family.add_metric((account, plan, scope), limit)
        yield used_family
        yield limit_family

    def read(self) -> dict[tuple[str, str, str], tuple[float, float]]:
        """(account, plan, scope label) → (used, limit) for every allocated scope."""
        now = self.now()
        with self.engine.connect() as connection:
            limits = active_limits(connection)
            usage = window_usage(connection, cycle_window("monthly", now).start, cycle_window("quarterly", now).start, now)
        allocated: dict[str, dict[Scope, Decimal]] = defaultdict(dict)
        plans: dict[str, str] = {}
        for row in limits:
            plans[row.account] = row.plan
            allocated[row.account][Scope("account", "")] = Decimal(row.monthly_credits or 0)
            if row.scope_type is not None:
                key = row.scope_key.lower() if row.scope_type == "user" else row.scope_key
                allocated[row.account][Scope(row.scope_type, key)] = Decimal(row.credits or 0)
        used: dict[str, dict[Scope, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for row in usage:
            amount = Decimal(row.credits or 0)
            spent = used[row.account]
            spent[Scope("account", "")] += amount
            if row.domain != "copilot":
                continue
            scopes = ledger_scopes(row.org_key, row.team_key, row.user_email)
            for scope in scopes:
                spent[scope] += amount
            if not any(scope in allocated[row.account] for scope in scopes):
                spent[Scope("pool", "")] += amount
        found: dict[tuple[str, str, str], tuple[float, float]] = {}
        for account, scopes in allocated.items():
            for scope, limit in scopes.items():
                label = self.label_user(scope.key) if scope.type == "user" else scope.type if scope.type in ("account", "pool") else str(scope)
                if label is not None:
                    found[(account, plans[account], label)] = (float(used[account][scope]), float(limit))
        return found
