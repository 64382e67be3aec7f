"""Budget leases: calls held and settled in a server's memory, never past a limit.

The counters' own steps (acquire, absorb, release of an expired lease) on SQLite, PostgreSQL
and Redis; then real `cockpit serve` processes: two replicas spending one budget through
leases, and a replica killed with `kill -9` whose spooled charges and leased credit come back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import socket
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa

from cockpit.budgets.counters import Grant, Limit, RedisCounters, Refusal, Reservation, Settled, SqlCounters, counters_from_environment, share_of
from cockpit.budgets.leases import Hold, Leases
from cockpit.budgets.spool import Spool, read_calls
from cockpit.budgets.usage import UTC, Window
from cockpit.store.engine import create_engine_for
from cockpit.store.tables import usage_ledger
from fakes.openai import FakeOpenAI
from harness.cockpit import Cockpit
from harness.proxy import InProcessServer, ServeProcess, chat_many, counters, issue_key, ledger_rows, tenant
from harness.redis_db import REDIS_URL

WINDOW = Window(dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC))


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, migrated_url: str) -> Iterator[SqlCounters | RedisCounters]:
    engine = create_engine_for(migrated_url)
    counters = counters_from_environment(engine, {"REDIS_URL": REDIS_URL if request.param == "redis" else ""})
    yield counters
    counters.close()
    engine.dispose()


def nothing_used(scopes):
    return {}


def row(account_id: uuid.UUID, credits: Decimal) -> dict:
    return {
        "id": uuid.uuid4(), "account_id": account_id, "domain": "copilot", "org_key": None, "team_key": None,
        "user_email": "bob@acme.com", "agent_name": None, "model_name": "chat", "connection_name": None,
        "guardrail_code": None, "raw_cost": credits, "credit_factor": Decimal(1), "credits": credits,
        "request_id": f"ck-{uuid.uuid4().hex}", "metadata": {}, "created_at": dt.datetime.now(UTC),
    }


def ledger_credits(engine: sa.Engine, account_id: uuid.UUID) -> Decimal:
    with engine.connect() as connection:
        found = connection.execute(sa.select(sa.func.coalesce(sa.func.sum(usage_ledger.c.credits), 0)).where(usage_ledger.c.account_id == account_id)).scalar()
    return Decimal(str(found))


def test_a_lease_is_a_share_of_what_is_free_and_near_the_limit_calls_are_held_alone(store, tmp_path: Path) -> None:
    account = uuid.uuid4()
    limits = [Limit("team:research/ml", Decimal(160)), Limit("account", Decimal(1600))]
    granted = store.acquire(account, WINDOW, limits, Decimal(2), [], nothing_used)
    assert isinstance(granted, Grant)
    assert {scope: share for scope, (_lease, share) in granted.leases.items()} == {"team:research/ml": Decimal(10), "account": Decimal(100)}
    assert store.used(account, WINDOW, ["team:research/ml", "account"]) == {"team:research/ml": (Decimal(0), Decimal(10)), "account": (Decimal(0), Decimal(100))}
    # A request a sixteenth of the team's free credit does not cover is reserved alone.
    alone = store.acquire(account, WINDOW, limits, Decimal(9.5), [], nothing_used)
    assert isinstance(alone, Reservation) and alone.amount == Decimal("9.5")
    refused = store.acquire(account, WINDOW, limits, Decimal(141), [], nothing_used)
    assert isinstance(refused, Refusal) and refused.scope == "team:research/ml"
    assert share_of(Decimal(150)) == Decimal("9.375")


def test_absorbing_twice_counts_each_call_once_and_moves_its_cost_out_of_the_lease(store, migrated_url: str, tmp_path: Path) -> None:
    engine = create_engine_for(migrated_url)
    account = uuid.uuid4()
    limits = [Limit("team:research/ml", Decimal(160))]
    leases = Leases(store, Spool(tmp_path / "spool"))

    async def spend() -> None:
        for cost in (Decimal("1.5"), Decimal("2"), Decimal("0.25")):
            hold = leases.take(account, WINDOW, limits, Decimal(2)) or await leases.acquire(account, WINDOW, limits, Decimal(2), nothing_used)
            assert isinstance(hold, Hold)
            leases.settle(hold, cost, row(account, cost))

    asyncio.run(spend())
    calls = leases.pending()
    assert len(calls) == 3 and len(read_calls(os.open(leases.spool.path, os.O_RDONLY))) == 3
    store.absorb(calls)
    store.absorb(calls)  # a batch retried, or a spool replayed after a kill: nothing twice
    leases.absorbed(calls)
    assert ledger_credits(engine, account) == Decimal("3.75")
    used, reserved = store.used(account, WINDOW, ["team:research/ml"])["team:research/ml"]
    assert used == Decimal("3.75") and reserved == Decimal(10) - Decimal("3.75")
    store.absorb([], leases.ending())
    assert store.used(account, WINDOW, ["team:research/ml"])["team:research/ml"] == (Decimal("3.75"), Decimal(0))
    engine.dispose()


def test_a_dead_servers_lease_gives_back_its_hold_and_its_spool_still_charges(store, migrated_url: str, tmp_path: Path) -> None:
    """The order a replica's death plays out in does not matter: the lease expiring before or
    after its spool is absorbed, the counters end at exactly what was spent."""
    engine = create_engine_for(migrated_url)
    limits = [Limit("account", Decimal(1600))]
    for expire_first in (True, False):
        account = uuid.uuid4()
        leases = Leases(store, Spool(tmp_path / f"spool-{expire_first}"))

        async def spend() -> None:
            hold = await leases.acquire(account, WINDOW, limits, Decimal(4), nothing_used)
            leases.settle(hold, Decimal(3), row(account, Decimal(3)))
            leases.take(account, WINDOW, limits, Decimal(4))  # in flight when the server dies

        asyncio.run(spend())
        spooled = read_calls(os.open(leases.spool.path, os.O_RDONLY))
        later = dt.datetime.now(UTC) + dt.timedelta(hours=1)
        if expire_first:
            assert store.release_expired(later) >= 1  # other tests' holds in this Redis may go too
            store.absorb(spooled)
        else:
            store.absorb(spooled)
            assert store.release_expired(later) >= 1  # other tests' holds in this Redis may go too
        assert store.used(account, WINDOW, ["account"])["account"] == (Decimal(3), Decimal(0))
        assert ledger_credits(engine, account) == Decimal(3)
    engine.dispose()


def test_threads_racing_for_leases_never_pass_the_limit(store, migrated_url: str, tmp_path: Path) -> None:
    """Four servers' worth of leases (each its own `Leases`) spending one scope at once: the
    counters' check covers every lease, so the sum of what they charge stays within it."""
    account = uuid.uuid4()
    limits = [Limit("team:research/ml", Decimal(100))]
    servers = [Leases(store, Spool(tmp_path / f"spool-{i}")) for i in range(4)]

    async def server(leases: Leases) -> int:
        admitted = 0
        for _ in range(40):
            found = leases.take(account, WINDOW, limits, Decimal(1)) or await leases.acquire(account, WINDOW, limits, Decimal(1), nothing_used)
            if isinstance(found, Refusal):
                continue
            admitted += 1
            if isinstance(found, Hold):
                leases.settle(found, Decimal(1), row(account, Decimal(1)))
            else:
                store.settle(found, Decimal(1), row(account, Decimal(1)))
            await asyncio.sleep(0)
        return admitted

    async def all_servers() -> list[int]:
        return await asyncio.gather(*(server(leases) for leases in servers))

    admitted = sum(asyncio.run(all_servers()))
    for leases in servers:
        store.absorb(leases.pending(), leases.ending())
    used, reserved = store.used(account, WINDOW, ["team:research/ml"])["team:research/ml"]
    assert used == Decimal(admitted) <= Decimal(100) and reserved == 0
    assert admitted >= 96, admitted  # what leases strand near the limit is less than a call each


def test_a_lease_the_counters_gave_back_holds_no_more_calls(store, tmp_path: Path) -> None:
    """A server that could not renew its lease in time (the store was out of reach) learns at
    its next renewal that the counters released it, and stops holding calls on it: they would
    spend credit the counters gave to others."""
    account = uuid.uuid4()
    limits = [Limit("account", Decimal(1600))]
    leases = Leases(store, Spool(tmp_path / "spool"))
    hold = asyncio.run(leases.acquire(account, WINDOW, limits, Decimal(1), nothing_used))
    assert isinstance(hold, Hold) and leases.take(account, WINDOW, limits, Decimal(1)) is not None
    store.release_expired(dt.datetime.now(UTC) + dt.timedelta(hours=1))
    lost = {lease.id for lease in leases.reservations()} - store.renew(leases.reservations())
    assert lost == {hold.leases[0].reservation.id}
    leases.forget(lost)
    assert leases.take(account, WINDOW, limits, Decimal(1)) is None


def test_a_lease_granted_under_another_limit_holds_no_more_calls(store, tmp_path: Path) -> None:
    """After an apply lowers a limit, calls are not held on leases granted under the old one."""
    account = uuid.uuid4()
    leases = Leases(store, Spool(tmp_path / "spool"))
    assert isinstance(asyncio.run(leases.acquire(account, WINDOW, [Limit("account", Decimal(1600))], Decimal(1), nothing_used)), Hold)
    assert leases.take(account, WINDOW, [Limit("account", Decimal(1600))], Decimal(1)) is not None
    assert leases.take(account, WINDOW, [Limit("account", Decimal(160))], Decimal(1)) is None


def test_absorbing_does_not_recreate_a_counter_redis_lost(migrated_url: str, tmp_path: Path) -> None:
    """A counter Redis lost is seeded again from the ledger; absorbing must not recreate it
    holding only the batch's costs (the scope would then be spendable anew)."""
    engine = create_engine_for(migrated_url)
    counters = RedisCounters(REDIS_URL, 60, f"test-{uuid.uuid4().hex[:8]}", engine)
    try:
        account = uuid.uuid4()
        limits = [Limit("account", Decimal(1600))]
        leases = Leases(counters, Spool(tmp_path / "spool"))
        hold = asyncio.run(leases.acquire(account, WINDOW, limits, Decimal(2), nothing_used))
        leases.settle(hold, Decimal(2), row(account, Decimal(2)))
        counters.client.delete(counters._key(account, WINDOW))  # Redis lost the window's counters
        counters.absorb(leases.pending())
        assert counters.used(account, WINDOW, ["account"]) == {}
        seeded = counters.acquire(account, WINDOW, limits, Decimal(1), [], lambda scopes: {"account": ledger_credits(engine, account)})
        assert isinstance(seeded, Grant)
        assert counters.used(account, WINDOW, ["account"])["account"][0] == Decimal(2)  # from the ledger
    finally:
        counters.close()
        engine.dispose()


# -- real servers ----------------------------------------------------------------------------

ROOMY = ("{scope: team:research/ml, credits: 25}", "{scope: team:research/ml, credits: 100}")
"""Bob's team gets 100 credits: a sixteenth of that covers a call (2.5 credits), so the first
calls are held on leases and the last ones alone."""


def applied_roomy(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> str:
    """The roomy tenant applied to a fresh PostgreSQL database (and an empty Redis when the
    counters live there); bob's key."""
    from cockpit.store.migrate import upgrade

    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    upgrade(url)
    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    runner = Cockpit(url, tmp_path, monkeypatch)
    runner.write(tenant(upstream.url).replace(*ROOMY))
    assert runner.apply().exit_code == 0
    return issue_key(url, "bob@acme.com")


def ledger_credits_at(url: str) -> Decimal:
    return sum((Decimal(str(row.credits)) for row in ledger_rows(url)), Decimal(0))



def redis_counters(account_scope: str) -> dict[str, tuple[Decimal, Decimal]]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    found: dict[str, tuple[Decimal, Decimal]] = {}
    for key in client.scan_iter("cockpit:budget:*"):
        if key.count(b":") != 3:
            continue
        fields = client.hgetall(key)
        for field, value in fields.items():
            kind, _, scope = field.decode().partition(":")
            if scope == account_scope and kind in ("u", "r"):
                used, reserved = found.get(scope, (Decimal(0), Decimal(0)))
                amount = Decimal(int(value)) / Decimal(10) ** 8
                found[scope] = (used + amount, reserved) if kind == "u" else (used, reserved + amount)
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["database", "redis"])
def test_two_servers_spending_through_leases_never_pass_the_budget(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> None:
    bob = applied_roomy(postgres_database_url, tmp_path, monkeypatch, upstream, redis_url)
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": redis_url}
    upstream.delay = 0.02
    with ServeProcess(environ, tmp_path) as one, ServeProcess(environ, tmp_path) as two:
        first = asyncio.run(chat_many([one.url, two.url], bob, 8, max_tokens=2))
        assert first == [200] * 8
        # Leases are out: the counters hold more than the calls in flight (none).
        held = redis_counters("team:research/ml") if redis_url else counters(postgres_database_url)
        assert held["team:research/ml"][1] > 0, held
        statuses = asyncio.run(chat_many([one.url, two.url], bob, 60, max_tokens=2))
    admitted = 8 + statuses.count(200)
    assert set(statuses) <= {200, 429}
    rows_credits = ledger_credits_at(postgres_database_url)
    assert rows_credits == Decimal("2.5") * admitted <= Decimal(100)
    assert admitted >= 38, admitted  # at most one call's worth stranded per server near the end
    final = redis_counters("team:research/ml") if redis_url else counters(postgres_database_url)
    assert final["team:research/ml"] == (rows_credits.normalize(), Decimal(0)), final



@pytest.mark.postgres
@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["database", "redis"])
def test_a_killed_server_loses_no_leased_charge_and_its_leases_come_back(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> None:
    bob = applied_roomy(postgres_database_url, tmp_path, monkeypatch, upstream, redis_url)
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": redis_url, "COCKPIT_BUDGET_HOLD_SECONDS": "3", "COCKPIT_SPOOL_DIR": str(tmp_path / "spool")}
    with ServeProcess(environ, tmp_path) as first:
        assert asyncio.run(chat_many([first.url], bob, 6, max_tokens=2)) == [200] * 6
        first.process.send_signal(signal.SIGKILL)  # at once: before its spool is absorbed, or as it is
        first.process.wait(10)
    assert list((tmp_path / "spool").glob("*.spool")), "the killed server's spool is on disk"
    with ServeProcess(environ, tmp_path) as second:
        deadline = time.monotonic() + 30
        while ledger_credits_at(postgres_database_url) != Decimal(15):
            assert time.monotonic() < deadline, "the killed server's spooled charges were lost"
            time.sleep(0.2)
        assert not list((tmp_path / "spool").glob("*.spool"))[1:], "the dead server's spool was absorbed and removed"
        # Its leases expire (3 s) and are given back: bob's team can spend the rest, 85 credits.
        deadline = time.monotonic() + 20
        while True:
            answer = httpx.post(f"{second.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"}, json={"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 68}, timeout=30)
            if answer.status_code == 200:
                break
            assert time.monotonic() < deadline, f"the killed server's leases were never given back: {answer.text}"
            time.sleep(0.5)
    # Six calls cut at two words, then the whole answer of five words, at 1.25 credits a word.
    assert ledger_credits_at(postgres_database_url) == Decimal("21.25")
    final = redis_counters("team:research/ml") if redis_url else counters(postgres_database_url)
    assert final["team:research/ml"] == (Decimal("21.25"), Decimal(0)), final


def stream_and_kill_on_done(base: str, key: str, pid: int) -> str:
    """One streamed call over a bare socket, and `kill -9` of the server the moment `[DONE]`
    arrives (a few microseconds later: no HTTP client in between); the call's request id."""
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "stream"}], "max_tokens": 2, "stream": True}).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    received = b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head.encode() + body)
        while b"data: [DONE]" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"the stream ended without [DONE]: {received!r}"
            received += chunk
        os.kill(pid, signal.SIGKILL)
    found = re.search(rb"(?im)^x-request-id: *(\S+)\r$", received)
    assert found, received
    return found.group(1).decode()


@pytest.mark.postgres
@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["database", "redis"])
def test_a_stream_whose_client_saw_it_complete_is_charged_though_the_server_is_killed_at_once(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> None:
    """The relay spools a stream's charge before it sends the last events: `kill -9` the moment
    a client reads `[DONE]`, and its call is in the ledger once another server has started."""
    bob = applied_roomy(postgres_database_url, tmp_path, monkeypatch, upstream, redis_url)
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": redis_url, "COCKPIT_BUDGET_HOLD_SECONDS": "3", "COCKPIT_SPOOL_DIR": str(tmp_path / "spool")}
    with ServeProcess(environ, tmp_path) as first:
        done = stream_and_kill_on_done(first.url, bob, first.process.pid)
        first.process.wait(10)
    with ServeProcess(environ, tmp_path):
        deadline = time.monotonic() + 30
        while done not in {row.request_id for row in ledger_rows(postgres_database_url)}:
            assert time.monotonic() < deadline, f"the completed stream {done} was not charged"
            time.sleep(0.2)


def test_a_row_the_database_refuses_is_set_aside_and_absorbing_goes_on(cockpit: Cockpit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> None:
    """One call whose ledger row the database cannot take must not block every call after it:
    found by halving the batch and charged with a plain row (a name too long for its column),
    or, when even that is refused (a domain the CHECK refuses), set aside in `refused.jsonl`;
    the rest absorbed — from a dead server's spool and from the live one."""
    from cockpit.budgets.spool import REFUSED, encode

    monkeypatch.setenv("FAKE_OPENAI_KEY", upstream.api_key)
    cockpit.write(tenant(upstream.url))
    assert cockpit.apply().exit_code == 0
    bob = issue_key(cockpit.url, "bob@acme.com")
    spool = tmp_path / "spool"
    spool.mkdir()
    account = uuid.uuid4()
    good, poisoned, later = row(account, Decimal(1)), {**row(account, Decimal(2)), "domain": "nowhere"}, row(account, Decimal(3))
    too_long = {**row(account, Decimal(5)), "agent_name": "a" * 300}  # PostgreSQL refuses it; its plain row fits
    (spool / "4242-deadbeef.spool").write_bytes(b"".join(encode(Settled(found, WINDOW.start, ())) for found in (good, poisoned, too_long, later)))
    with InProcessServer(cockpit.url, {"COCKPIT_SPOOL_DIR": str(spool)}) as server:
        proxy = server.app.state.proxy
        live_poison = {**row(account, Decimal(4)), "domain": "nowhere"}

        async def record() -> None:
            proxy.leases.record(live_poison)

        asyncio.run_coroutine_threadsafe(record(), proxy._loop).result(10)
        answer = httpx.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {bob}"}, json={"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}, timeout=30)
        assert answer.status_code == 200, answer.text
        server.flush()
    rows = {found.request_id: found for found in ledger_rows(cockpit.url)}
    in_ledger = set(rows)
    assert {good["request_id"], later["request_id"], too_long["request_id"], answer.headers["x-request-id"]} <= in_ledger
    assert Decimal(str(rows[too_long["request_id"]].credits)) == Decimal(5), "charged in full, as a plain row where refused"
    assert not {poisoned["request_id"], live_poison["request_id"]} & in_ledger
    set_aside = (spool / REFUSED).read_text()
    assert poisoned["request_id"] in set_aside and live_poison["request_id"] in set_aside and good["request_id"] not in set_aside
    assert not (spool / "4242-deadbeef.spool").exists(), "the dead server's spool was absorbed"


def running(pid: int) -> bool:
    """`pid` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def absorbers_of(pid: int) -> list[int]:
    """The absorbing processes `pid` started (`cockpit.budgets.absorber`), alive or not reaped."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z" and b"cockpit.budgets.absorber" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("redis_url", ["", REDIS_URL], ids=["database", "redis"])
def test_the_absorbing_process_comes_back_when_killed_and_dies_with_its_server(postgres_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI, redis_url: str) -> None:
    """Absorbing runs in a process of its own: killed alone, the server starts another and no
    charge is lost; the server killed, it goes too (a half-done absorb is rolled back rather
    than finished beside the server that replays the dead one's spool)."""
    bob = applied_roomy(postgres_database_url, tmp_path, monkeypatch, upstream, redis_url)
    environ = {**os.environ, "DATABASE_URL": postgres_database_url, "REDIS_URL": redis_url, "COCKPIT_SPOOL_DIR": str(tmp_path / "spool")}
    with ServeProcess(environ, tmp_path) as server:
        [absorber] = absorbers_of(server.process.pid)
        os.kill(absorber, signal.SIGKILL)
        assert asyncio.run(chat_many([server.url], bob, 4, max_tokens=2)) == [200] * 4
        deadline = time.monotonic() + 30
        while ledger_credits_at(postgres_database_url) != Decimal(10):
            assert time.monotonic() < deadline, "calls settled after the absorber was killed were never absorbed"
            time.sleep(0.2)
        [again] = absorbers_of(server.process.pid)
        assert again != absorber
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 10
        while running(again):
            assert time.monotonic() < deadline, "the absorbing process outlived its server"
            time.sleep(0.05)
