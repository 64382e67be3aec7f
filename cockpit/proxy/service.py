"""The proxy's long-lived parts in one app: catalog, counters, ledger writer, and the steps
of a call that do not depend on HTTP (who may, how much to hold, what to charge, what to log).

Made on first use or at start-up (`start`, which also imports and warms litellm before the
server reports ready); `close` at graceful shutdown writes the ledger rows still queued.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from cockpit.budgets.counters import Counters, Limit, Refusal, Reservation, ceiling_credits, counters_from_environment, credits
from cockpit.budgets.ledger import LedgerWriter
from cockpit.budgets.usage import UTC, iso
from cockpit.policy.model_access import allowed_models
from cockpit.proxy.errors import ProxyError
from cockpit.server.context import RequestContext
from cockpit.server.snapshots import AccountSnapshot
from cockpit.store.secrets import SecretBox
from cockpit.store.tables import DOMAINS

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
MESSAGE_OVERHEAD_TOKENS = 8
"""Added per message to the prompt estimate (role and separators)."""


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    domain: str
    user: str
    agent: str | None


def caller_of(context: RequestContext, domain_header: str | None) -> Caller:
    """The person behind the credential, and the domain the call is for: the key's domain,
    else the `X-Cockpit-Domain` header, else copilot."""
    if context.auth_provider is None:
        raise ProxyError(401, "Missing or invalid credential: send `Authorization: Bearer <key>` with a Cockpit virtual key or a Zitadel token.", "invalid_api_key")
    if context.account_id is None or not context.user_email:
        raise ProxyError(403, "The proxy serves the people of an account: use a virtual key issued to a user (`cockpit keys create`) or a Zitadel token of one.", "no_account_user")
    domain = context.key_domain or (domain_header or "").strip().lower() or "copilot"
    if domain not in DOMAINS:
        raise ProxyError(400, f"Unknown domain `{domain}` in X-Cockpit-Domain; use console or copilot.", "invalid_domain")
    if context.product_domains and domain not in context.product_domains and "all" not in context.product_domains:
        raise ProxyError(403, f"This credential does not serve the {domain} domain.", "domain_not_allowed")
    return Caller(context.account_id, domain, context.user_email.lower(), context.agent_name)


def allowed_for(snapshot: AccountSnapshot, caller: Caller) -> frozenset[str]:
    key = ("models", caller.domain, caller.user)
    found = snapshot.memo.get(key)
    if found is None:
        found = snapshot.memo[key] = allowed_models(snapshot.graph, caller.domain, caller.user)
    return found


def prompt_estimate(texts: list[str], messages: int) -> int:
    """An upper bound of the prompt's tokens: a token is at least one byte of text."""
    return sum(len(text.encode("utf-8")) for text in texts) + MESSAGE_OVERHEAD_TOKENS * messages


def max_output_tokens(body: Mapping[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ProxyError(400, f"`{name}` must be at least 1.", "invalid_value", param=name)
            return value
    return default


def refusal_error(refusal: Refusal, window_start: dt.datetime, amount: Decimal) -> ProxyError:
    used = refusal.used + refusal.reserved
    if refusal.left <= 0:
        why = f"no credit left: {used:.2f} of {refusal.limit:.2f} credits used or held"
    else:
        why = f"{refusal.left:.4f} credits left, and this request may cost up to {amount:.4f}"
    return ProxyError(
        429,
        f"Credit budget of {refusal.scope} exhausted in the cycle that began {iso(window_start)}: {why}. "
        "Lower max_tokens, ask an administrator to raise the allocation, or wait for the next cycle.",
        "insufficient_quota",
    )


class Proxy:
    def __init__(self, engine: Engine, box: SecretBox, environ: Mapping[str, str]) -> None:
        from cockpit.proxy.catalog import CatalogCache

        self.engine = engine
        self.catalog = CatalogCache(engine, box)
        self.counters: Counters = counters_from_environment(engine, environ)
        self.ledger = LedgerWriter(engine)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from cockpit.proxy.llm import warm_up

        await warm_up()
        try:
            await run_in_threadpool(self.catalog.refresh)
        except Exception as exc:  # requests retry the load; the read API must come up regardless
            log.error("model catalog not loaded at start-up: %s", type(exc).__name__)
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await run_in_threadpool(self.ledger.close)
        self.counters.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                released = await run_in_threadpool(self.counters.release_expired)
                if released:
                    log.warning("released %d budget reservation(s) left by requests that never settled", released)
            except Exception as exc:  # the sweeper must outlive a database or Redis hiccup
                log.error("could not release expired budget reservations: %s", type(exc).__name__)

    async def catalog_for(self, snapshot: AccountSnapshot):
        version = snapshot.version[1]
        if self.catalog.needs(version):
            return await run_in_threadpool(self.catalog.refresh, version)
        return self.catalog.current

    async def reserve(self, account_id: uuid.UUID, window: Any, limits: tuple[Limit, ...], amount: Decimal, seed: Any) -> Reservation | None:
        if not limits:
            return None
        try:
            found = await run_in_threadpool(self.counters.reserve, account_id, window, limits, ceiling_credits(amount), seed)
        except Exception as exc:
            log.error("budget counters unavailable: %s", type(exc).__name__)
            raise ProxyError(503, "Budgets cannot be checked right now (the counter store is unavailable); retry later.", "budget_store_unavailable") from None
        if isinstance(found, Refusal):
            raise refusal_error(found, window.start, amount)
        return found

    async def settle(self, reservation: Reservation | None, charged: Decimal) -> None:
        if reservation is None:
            return
        try:
            await run_in_threadpool(self.counters.settle, reservation, charged)
        except Exception as exc:  # the hold expires and is released by the sweeper
            log.error("could not settle budget reservation %s: %s", reservation.id, type(exc).__name__)

    def record(self, row: dict[str, Any]) -> None:
        self.ledger.record(row)


async def start_proxy(engine: Engine, box: SecretBox | None, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy, started; None (logged, and told to callers as 503) when it cannot run here.
    The read API never depends on it: a missing secret key must not take the whole app down."""
    from cockpit.store.secrets import SecretKeyError

    try:
        box = box or SecretBox.from_environment(engine.url.render_as_string(hide_password=False), environ)
    except SecretKeyError as exc:
        log.error("LLM proxy disabled: %s", exc)
        return None
    proxy = Proxy(engine, box, environ)
    await proxy.start()
    return proxy


def ledger_row(
    *, caller: Caller, attribution: Any, model: str, raw_cost: Decimal, factor: Decimal, started: dt.datetime,
    request_id: str, guardrail_code: str | None, metadata: dict[str, Any],
) -> dict[str, Any]:
    raw_cost = credits(raw_cost)  # litellm's float, at the ledger's precision; credits follow from it
    return {
        "id": uuid.uuid4(),
        "account_id": caller.account_id,
        "domain": caller.domain,
        "org_key": attribution.org,
        "team_key": attribution.team,
        "user_email": caller.user,
        "agent_name": caller.agent,
        "model_name": model,
        "connection_name": None,
        "guardrail_code": guardrail_code,
        "raw_cost": raw_cost,
        "credit_factor": factor,
        "credits": credits(raw_cost * factor),
        "request_id": request_id,
        "metadata": metadata,
        "created_at": started,
    }


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def credit_factor(snapshot: AccountSnapshot) -> Decimal:
    """credits = raw cost × this (the account's `allocation.credit_factor`)."""
    return Decimal(str(snapshot.graph.fields.get("credit_factor") or 1))
