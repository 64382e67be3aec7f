"""Ledger rows on their way to the database through Redis, and their encoding.

Calls held on leases are spooled and absorbed by their own server (`cockpit.budgets.spool`);
a call reserved alone in Redis counters has its row pushed onto a Redis list by the settling
script, and `RedisLedgerWriter` moves those rows to the database in batches, skipping rows whose
`request_id` is already there, so a retried batch never counts twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from cockpit.store.inserts import skipping_existing
from cockpit.store.tables import usage_ledger
from cockpit.store.engine import write_transaction

log = logging.getLogger(__name__)

CLOSE_ATTEMPTS = 10
"""Tries at shutdown before queued rows are given up (and named in the log)."""
LEDGER_PREFIX = "cockpit:ledger:"
"""+ the database's namespace (`ledger_namespace`), then `queue` (the Redis list of ledger rows
not yet in the database), `claimed:<writer>` (the rows a writer took from the queue and is
writing) or `alive:<writer>` (present while that writer lives; its claimed rows go back when
it is gone)."""


def ledger_namespace(engine: Engine) -> str:
    """The part of the ledger's Redis keys that names the database the rows belong in, so that
    deployments (or test runs) sharing one Redis never write each other's rows: the database's
    URL without its password, hashed. Replicas of one deployment name the same URL."""
    url = engine.url.set(password=None).render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def ledger_queue(namespace: str) -> str:
    return f"{LEDGER_PREFIX}{namespace}:queue"
LEASE_SECONDS = 30
UUIDS = ("id", "account_id")
DECIMALS = ("raw_cost", "credit_factor", "credits")


def encode_row(row: Any) -> str:
    """A ledger row as JSON (ids, amounts and times as strings), for the Redis queue."""
    return json.dumps({key: (value if key == "metadata" or value is None or isinstance(value, (int, float, bool)) and not isinstance(value, Decimal) else str(value) if not isinstance(value, dt.datetime) else value.isoformat()) for key, value in row.items()}, separators=(",", ":"))


def decode_row(text: str | bytes) -> dict[str, Any]:
    row = json.loads(text)
    for key in UUIDS:
        if row.get(key) is not None:
            row[key] = uuid.UUID(row[key])
    for key in DECIMALS:
        if row.get(key) is not None:
            row[key] = Decimal(row[key])
    if row.get("created_at") is not None:
        row["created_at"] = dt.datetime.fromisoformat(row["created_at"])
    return row


_CLAIM = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
  redis.call('SADD', KEYS[3], KEYS[2])
end
return items
"""
"""Move a batch from the queue onto this writer's claimed list, and name that list in the
registry of claims (where other writers look for the claims of writers that died)."""

_RETURN = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local items = redis.call('LRANGE', KEYS[2], 0, -1)
if #items > 0 then redis.call('RPUSH', KEYS[1], unpack(items)) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[4], KEYS[2])
return #items
"""
"""Give the claimed rows of a writer that is gone (no lease key) back to the queue."""


class RedisLedgerWriter:
    """The ledger writer of servers whose counters are in Redis: rows wait in a Redis list
    (pushed by the settling script itself, or by `record`), and every server moves them to the
    database in batches. A writer claims a batch atomically (onto its own claimed list), writes
    it, then drops the claim; the claimed rows of a writer that died (its lease key expired) go
    back to the queue and are written by another, and `request_id` keeps a row from being
    counted twice. So no row is lost to a killed server, and none waits in its memory.

    Writers find each other's claims in a registry (a set), never by scanning Redis's keys: the
    database holds a guard key per call absorbed for two days (`APPLIED_SECONDS`), millions on a
    busy gateway, and a SCAN of them five times a second took a tenth of the server's
    interpreter at a few hundred calls a second. Claims made before the registry existed are
    found by one SCAN when a writer starts."""

    def __init__(self, engine: Engine, client: Any, interval: float = 0.2, batch: int = 500) -> None:
        self.engine = engine
        self.client = client
        self.interval = interval
        self.batch = batch
        self.writer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        namespace = ledger_namespace(engine)
        self.queue = ledger_queue(namespace)
        self._claim_prefix = f"{LEDGER_PREFIX}{namespace}:claimed:"
        self._lease_prefix = f"{LEDGER_PREFIX}{namespace}:alive:"
        self._claimed = self._claim_prefix + self.writer_id
        self._lease = self._lease_prefix + self.writer_id
        self._claims = f"{LEDGER_PREFIX}{namespace}:claims"
        """The registry: the names of the claimed lists of every writer."""
        self._claim = client.register_script(_CLAIM)
        self._return = client.register_script(_RETURN)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="cockpit-ledger-redis", daemon=True)
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        """Queue a row that settles no hold (a call without budget limits)."""
        self.client.rpush(self.queue, encode_row(row))

    @property
    def written(self) -> int:
        return self._written

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and this writer holds no claim; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.client.llen(self.queue) and not self.client.exists(self._claimed):
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._drain(until_empty=True)
            self.client.delete(self._lease)
        except Exception as exc:  # the rows stay queued in Redis for another server
            log.error("usage ledger: rows left queued in Redis at shutdown: %s", type(exc).__name__)

    def _run(self) -> None:
        try:
            self._register_unlisted()
        except Exception as exc:  # found by the next writer that starts
            log.error("usage ledger: could not look for claims made before the registry: %s", type(exc).__name__)
        while not self._stop.is_set():
            try:
                self._drain()
                self._recover()
            except Exception as exc:  # Redis or the database hiccuped: the rows wait in Redis
                log.error("usage ledger: could not move rows from Redis, will retry: %s", type(exc).__name__)
                self._stop.wait(min(5.0, self.interval * 5))
                continue
            self._stop.wait(self.interval)

    def _drain(self, until_empty: bool = False) -> None:
        self.client.set(self._lease, "1", ex=LEASE_SECONDS)
        while True:
            items = self.client.lrange(self._claimed, 0, -1) or self._claim(keys=[self.queue, self._claimed, self._claims], args=[self.batch])
            if not items:
                return
            rows = [decode_row(item) for item in items]
            with write_transaction(self.engine) as connection:
                connection.execute(skipping_existing(connection, usage_ledger, ("request_id",)), rows)
            self.client.delete(self._claimed)
            with self._idle:
                self._written += len(rows)
                self._idle.notify_all()
            if not until_empty and len(items) < self.batch:
                return

    def _register_unlisted(self) -> None:
        """Once, at start: put the claimed lists that writers older than the registry left into
        it (the one SCAN of the keyspace a writer makes)."""
        found = [key for key in self.client.scan_iter(f"{self._claim_prefix}*", count=1000)]
        if found:
            self.client.sadd(self._claims, *found)

    def _recover(self) -> None:
        """Give the claimed rows of writers that are gone back to the queue."""
        for key in self.client.smembers(self._claims):
            name = key.decode() if isinstance(key, bytes) else key
            writer = name[len(self._claim_prefix):]
            if writer != self.writer_id:
                returned = self._return(keys=[self.queue, name, self._lease_prefix + writer, self._claims])
                if returned:
                    log.warning("usage ledger: %d row(s) claimed by a writer that is gone were queued again", returned)
