"""The proxy's long-lived parts in one app: catalog, counters, ledger writer, and the steps
of a call that do not depend on HTTP (who may, how much to hold, what to charge, what to log).

Made on first use or at start-up (`start`, which also imports and warms litellm before the
server reports ready, and absorbs what killed servers left in the spool); `close` at graceful
shutdown absorbs this server's spool and gives its leases back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from cockpit.budgets.absorber import ABSORB_BATCH, Absorber, AbsorberFailed, Outcome
from cockpit.budgets.counters import (
    Counters,
    Limit,
    RedisCounters,
    Refusal,
    Reservation,
    Settled,
    ceiling_credits,
    counters_from_environment,
    credits,
    hold_seconds,
)
from cockpit.budgets.leases import Hold, Leases
from cockpit.budgets.ledger import RedisLedgerWriter, ledger_namespace
from cockpit.budgets.rates import Admission, RateCounter, RateLimiter, rates_from_environment
from cockpit.budgets.spool import Spool, decode, set_aside, spool_dir
from cockpit.budgets.usage import UTC, iso
from cockpit.memory import freeze_survivors
from cockpit.observe import metrics
from cockpit.policy.model_access import allowed_models
from cockpit.proxy.errors import ProxyError
from cockpit.proxy.http1 import Client
from cockpit.proxy.rates import rate_limited
from cockpit.proxy.routing import Router
from cockpit.runtime.context import RequestContext
from cockpit.runtime.snapshots import AccountSnapshot
from cockpit.store.secrets import SecretBox
from cockpit.store.tables import DOMAINS

log = logging.getLogger(__name__)

SWEEP_SECONDS = 10.0
"""How often, at most, expired holds and spools (of servers that died) are looked for."""
ABSORB_SECONDS = 0.5
"""How often the calls settled against leases go from the spool into the ledger and counters.
Each absorb is one transaction whose fixed cost (a few milliseconds of CPU on SQLite) is shared
by the calls of its batch; the charges are durable in the spool meanwhile, and the leases keep
the limits exact, so only the ledger's readers (usage reports) see the delay."""


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    domain: str
    user: str
    agent: str | None


def credential_of(context: RequestContext) -> uuid.UUID:
    """The account behind the credential: 401 without one, 403 when no person of an account
    stands behind it (the master key, a token without an account)."""
    if context.auth_provider is None:
        raise ProxyError(401, "Missing or invalid credential: send `Authorization: Bearer <key>` with a Cockpit virtual key or a Zitadel token.", "invalid_api_key")
    if context.account_id is None or not context.user_email:
        raise ProxyError(403, "The proxy serves the people of an account: use a virtual key issued to a user (`cockpit keys create`) or a Zitadel token of one.", "no_account_user")
    return context.account_id


def caller_of(snapshot: AccountSnapshot, context: RequestContext, domain_header: str | None) -> Caller:
    """The person behind the credential and the domain the call is for.

    The domain is the key's, else the `X-Cockpit-Domain` header, else the first directory the
    user is in (copilot first). Whichever it is, the caller must belong to it: be in that
    domain's directory, or be an admin of the account. So a header cannot move a copilot user
    out of copilot's budgets and guardrails into a domain they are not part of. A suspended
    account, or a user suspended in the directory of the domain, is refused.
    """
    user = (context.user_email or "").lower()
    graph = snapshot.graph
    if graph.fields.get("status") == "suspended":
        raise ProxyError(403, f"Account `{snapshot.name}` is suspended; its users are not served until an administrator reactivates it.", "account_suspended")
    requested = context.key_domain or (domain_header or "").strip().lower() or None
    if requested is not None and requested not in DOMAINS:
        raise ProxyError(400, f"Unknown domain `{requested}` in X-Cockpit-Domain; use console or copilot.", "invalid_domain")
    memberships = {domain: graph.directory(domain).users.get(user) for domain in ("copilot", "console")}
    admin = snapshot.resource("account_admin", (user,)) is not None
    domain = requested or next((d for d, member in memberships.items() if member is not None), "copilot")
    member = memberships.get(domain)
    if member is None and not admin:
        raise ProxyError(403, f"{user} is not in the {domain} directory of account `{snapshot.name}`, so the gateway does not serve them in {domain}.", "domain_not_allowed")
    if member is not None and member.fields.get("status") == "suspended":
        raise ProxyError(403, f"{user} is suspended in the {domain} directory of account `{snapshot.name}`; an administrator must reactivate them.", "user_suspended")
    if context.product_domains and domain not in context.product_domains and "all" not in context.product_domains:
        raise ProxyError(403, f"This credential does not serve the {domain} domain.", "domain_not_allowed")
    return Caller(snapshot.account_id, domain, user, context.agent_name)


def allowed_for(snapshot: AccountSnapshot, caller: Caller) -> frozenset[str]:
    key = ("models", caller.domain, caller.user)
    found = snapshot.memo.get(key)
    if found is None:
        found = snapshot.memo[key] = allowed_models(snapshot.graph, caller.domain, caller.user)
    return found


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
        hold = hold_seconds(environ)
        self.renew_seconds = hold / 4  # a hold is renewed several times before it could expire
        self.sweep_seconds = min(SWEEP_SECONDS, hold / 2)
        self.leases = Leases(self.counters, Spool(spool_dir(engine, environ)))
        self.ledger: RedisLedgerWriter | None = RedisLedgerWriter(engine, self.counters.client) if isinstance(self.counters, RedisCounters) else None
        """Moves the rows that Redis settlements queued (calls reserved alone) to the database."""
        self.http = Client()
        """The one client of every direct upstream call (its connections are kept alive)."""
        self.rates: RateLimiter = rates_from_environment(engine, environ, ledger_namespace(engine))
        """Requests and tokens per minute, shared by replicas (Redis, else the database)."""
        self.router = Router()
        """This process's cooldowns and per-deployment minute counters."""
        self.open: dict[uuid.UUID, Reservation] = {}
        """This server's holds whose calls are still running (renewed until settled)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._absorbing = asyncio.Lock()
        self.absorber = Absorber(engine.url.render_as_string(hide_password=False), environ, self.leases.spool.directory)
        """The process that absorbs (`cockpit.budgets.absorber`): its CPU is not this one's."""
        self._absorber = concurrent.futures.ThreadPoolExecutor(1, "cockpit-absorb")
        """The one thread that talks to the absorber: absorbs never overlap, and never wait for
        request work in the shared thread pool."""

    async def start(self) -> None:
        from cockpit.proxy.llm import warm_up

        self._loop = asyncio.get_running_loop()
        absorber = self._in_absorber(self.absorber.start)  # its imports meanwhile, in its own process
        await warm_up()
        try:
            await run_in_threadpool(self.catalog.refresh)
        except Exception as exc:  # requests retry the load; the read API must come up regardless
            log.error("model catalog not loaded at start-up: %s", type(exc).__name__)
        try:
            await absorber
        except AbsorberFailed as exc:  # absorbing retries it; calls are spooled meanwhile
            log.error("the absorbing process did not start: %s", exc)
        await self._absorb_orphans()
        freeze_survivors()  # litellm, the catalog: a full collection never walks them while serving
        self._tasks = [asyncio.create_task(task) for task in (self._sweep(), self._renew(), self._absorb_loop())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        absorbed = await self.absorb(ending=True)
        await self._in_absorber(self.absorber.close)
        self._absorber.shutdown(wait=False)
        self.leases.spool.close(absorbed and not self.leases.pending())
        if self.ledger is not None:
            await run_in_threadpool(self.ledger.close)
        self.counters.close()
        self.rates.close()
        await self.http.aclose()

    async def absorb(self, ending: bool = False) -> bool:
        """Move what was settled against leases into the ledger and the counters, and give back
        the credit of idle leases (of all of them when `ending`); False when it failed (the
        calls stay spooled and are tried again)."""
        async with self._absorbing:
            spooled = self.leases.spooled()
            releases = self.leases.ending() if ending else self.leases.idle() + self.leases.drained()
            if not spooled and not releases:
                return True
            try:
                for start in range(0, max(len(spooled), 1), ABSORB_BATCH):
                    batch = spooled[start:start + ABSORB_BATCH]
                    self._report(await self._in_absorber(self.absorber.absorb, [line for _call, line in batch], releases if start == 0 else ()))
                    self.leases.absorbed([call for call, _line in batch])
            except AbsorberFailed as exc:  # the calls stay in the spool; unreturned credit expires
                log.error("usage ledger: could not absorb %d settled call(s), will retry: %s", len(spooled), exc)
                metrics.record_ledger_write_failure()
                return False
            finally:
                metrics.set_spool_depth(len(self.leases.pending()))
            return True

    def _report(self, outcome: Outcome) -> None:
        """Log what the absorber did and count its failures; calls the database refused even as
        plain rows leave the ledger's way, written to the spool directory's refused file for an
        operator (the error's kind is logged, not the row)."""
        for logger, level, message in outcome.logs:
            logging.getLogger(logger).log(level, "%s", message)
        for _plain in range(outcome.plain):
            metrics.record_ledger_write_failure()
        for name, count in outcome.files:
            if count:
                log.warning("usage ledger: absorbed %d call(s) a stopped server had spooled in %s", count, name)
        if not outcome.refused:
            return
        path = set_aside(self.leases.spool.directory, outcome.refused)
        for _line in outcome.refused:
            metrics.record_ledger_write_failure()
        ids = [str(decode(line).row.get("request_id")) for line in outcome.refused[:10]]
        log.error(
            "usage ledger: the database refused %d call(s) even as plain rows (request ids %s); they are set aside in %s and are not charged",
            len(outcome.refused), ", ".join(ids), path,
        )

    def _in_absorber(self, function: Any, *args: Any) -> asyncio.Future[Any]:
        """`function` run in the absorbing thread, started now."""
        return asyncio.get_running_loop().run_in_executor(self._absorber, function, *args)

    async def _absorb_loop(self) -> None:
        while True:
            await asyncio.sleep(ABSORB_SECONDS)
            await self.absorb()

    async def _absorb_orphans(self) -> None:
        """Absorb the spools of servers that died (killed before they absorbed their calls).
        The absorber goes on to the end of each file even when the sweep is cancelled (the
        server stops): it holds the file's lock until then."""
        try:
            self._report(await asyncio.shield(self._in_absorber(self.absorber.orphans)))
        except AbsorberFailed as exc:  # left for the next sweep
            log.error("usage ledger: could not absorb the spools of stopped servers: %s", exc)

    def flush(self, timeout: float = 10.0) -> bool:
        """From another thread: absorb now and give every lease back (the counters then show
        what was used and what calls in flight hold, nothing more), and wait until Redis's
        queued rows are written. Serving goes on: the next call leases anew."""
        assert self._loop is not None, "the proxy has not started"
        deadline = time.monotonic() + timeout
        while True:  # calls still settling give back to ended leases: absorb until none holds
            if not asyncio.run_coroutine_threadsafe(self.absorb(ending=True), self._loop).result(timeout):
                return False
            if not self.leases.reservations():
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return self.ledger.flush(timeout) if self.ledger is not None else True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            await self._absorb_orphans()  # first: a dead server's spent credit leaves its leases before they are released
            try:
                released = await run_in_threadpool(self.counters.release_expired)
                if released:
                    log.warning("released %d budget reservation(s) left by requests that never settled", released)
            except Exception as exc:  # the sweeper must outlive a database or Redis hiccup
                log.error("could not release expired budget reservations: %s", type(exc).__name__)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            leases = self.leases.reservations()
            try:
                found = await run_in_threadpool(self.counters.renew, [*self.open.values(), *leases])
            except Exception as exc:  # a hold not renewed in time is released: the call still settles
                log.error("could not renew budget reservations: %s", type(exc).__name__)
                continue
            lost = {lease.id for lease in leases} - found
            if lost:  # released while this server could not renew them: hold nothing more on them
                log.error("%d budget lease(s) expired before this server could renew them; new calls lease anew", len(lost))
                self.leases.forget(lost)

    async def catalog_for(self, snapshot: AccountSnapshot):
        version = snapshot.version[1]
        if self.catalog.needs(version):
            return await run_in_threadpool(self.catalog.refresh, version)
        return self.catalog.current

    async def admit(self, counters: tuple[RateCounter, ...], tokens_bound: int) -> Admission | None:
        """Count the call on every rate limit of its chain and reserve its token bound; 429
        naming the first limit without room. No limits: None, with no I/O and no thread hop."""
        if not counters:
            return None
        try:
            found = await asyncio.to_thread(self.rates.admit, counters, tokens_bound)
        except Exception as exc:
            log.error("rate-limit counters unavailable: %s", type(exc).__name__)
            raise ProxyError(503, "Rate limits cannot be checked right now (the counter store is unavailable); retry later.", "rate_store_unavailable") from None
        if isinstance(found, Admission):
            return found
        raise rate_limited(found)

    async def settle_rate(self, admission: Admission | None, tokens: int) -> None:
        """Replace the call's reserved token bound by the tokens it used (0: it failed unbilled).
        A failure is logged: the counters then over-count until the minute ends, never under."""
        if admission is None:
            return
        try:
            await asyncio.to_thread(self.rates.settle, admission, tokens)
        except Exception as exc:
            log.error("could not settle rate-limit tokens: %s", type(exc).__name__)

    async def reserve(self, account_id: uuid.UUID, window: Any, limits: tuple[Limit, ...], amount: Decimal, seed: Any) -> Hold | Reservation | None:
        """Hold the call's maximum cost on every limit of its chain: on this server's leases
        when they cover it (no I/O), else through the counters; 429 when a limit has no room."""
        if not limits:
            return None
        amount = ceiling_credits(amount)
        hold = self.leases.take(account_id, window, limits, amount)
        if hold is not None:
            metrics.reservation_opened()
            return hold
        try:
            found = await self.leases.acquire(account_id, window, limits, amount, seed)
        except Exception as exc:
            log.error("budget counters unavailable: %s", type(exc).__name__)
            raise ProxyError(503, "Budgets cannot be checked right now (the counter store is unavailable); retry later.", "budget_store_unavailable") from None
        if isinstance(found, Refusal):
            raise refusal_error(found, window.start, amount)
        if isinstance(found, Reservation):
            self.open[found.id] = found
        metrics.reservation_opened()
        return found

    async def settle(self, reservation: Hold | Reservation | None, charged: Decimal, row: dict[str, Any] | None = None) -> None:
        """Charge the call and record its ledger row: on leases, spooled (durable at once,
        absorbed in a batch); a call reserved alone, with the counters in one step (the row in
        the same transaction, or queued in Redis by the same script); without limits, spooled."""
        if reservation is not None:
            metrics.reservation_closed()
        if isinstance(reservation, Hold):
            self.leases.settle(reservation, charged, row)
            return
        if reservation is None:
            if row is not None:
                self.leases.record(row)
            return
        self.open.pop(reservation.id, None)
        try:
            await run_in_threadpool(self.counters.settle, reservation, charged, row)
        except Exception as exc:
            # The counters are out of reach: spool the call against its reservation, so that
            # absorbing it charges the counters (and moves the cost out of the hold if it still
            # stands); the rest of the hold is released when it expires.
            log.error("could not settle budget reservation %s: %s; the call is spooled", reservation.id, type(exc).__name__)
            if row is not None:
                self.leases.spool_call(Settled(row, reservation.window.start, tuple((scope, reservation.id, reservation.token) for scope in reservation.scopes)))


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
    request_id: str, guardrail_code: str | None, metadata: dict[str, Any], row_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    raw_cost = credits(raw_cost)  # litellm's float, at the ledger's precision; credits follow from it
    return {
        "id": row_id or uuid.uuid4(),
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
