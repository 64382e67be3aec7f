"""The Redis ledger queue belongs to one database: deployments (or test runs) sharing a Redis
server never write each other's ledger rows."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from cockpit.budgets.ledger import RedisLedgerWriter, ledger_namespace
from cockpit.store.engine import create_engine_for
from cockpit.store.migrate import upgrade
from harness.redis_db import REDIS_URL


def row(account_id: uuid.UUID) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "account_id": account_id, "domain": "copilot", "org_key": None, "team_key": None,
        "user_email": "a@example.com", "agent_name": None, "model_name": "m", "connection_name": None,
        "guardrail_code": None, "raw_cost": Decimal("0.01"), "credit_factor": Decimal(1), "credits": Decimal("0.01"),
        "request_id": f"ck-{uuid.uuid4().hex}", "metadata": {}, "created_at": dt.datetime.now(dt.timezone.utc),
    }


def test_two_databases_sharing_redis_keep_their_own_rows(tmp_path: Path) -> None:
    import redis
    client = redis.Redis.from_url(REDIS_URL)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("one", "two")]
    engines = [create_engine_for(url) for url in urls]
    for url in urls:
        upgrade(url)
    assert ledger_namespace(engines[0]) != ledger_namespace(engines[1])
    assert ledger_namespace(engines[0]) == ledger_namespace(create_engine_for(urls[0]))  # replicas agree
    writers = [RedisLedgerWriter(engine, client) for engine in engines]
    try:
        accounts = [uuid.uuid4(), uuid.uuid4()]
        for writer, account in zip(writers, accounts):
            for _ in range(3):
                writer.record(row(account))
        for writer in writers:
            assert writer.flush()
    finally:
        for writer in writers:
            writer.close()
    for engine, account in zip(engines, accounts):
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT account_id FROM usage_ledger")).scalars().all()
        assert len(found) == 3 and {uuid.UUID(str(value)) for value in found} == {account}
        engine.dispose()
