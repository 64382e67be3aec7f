"""The usage ledger's writer: rows are queued by requests and written in batches.

Counters are settled at once (`cockpit.budgets.counters`); the ledger row, which reports and
renewals read, may follow a fraction of a second later. A background thread writes what is
queued every `interval` seconds (or sooner when `batch` rows wait) in one INSERT, and skips
rows whose `request_id` is already there, so a retried batch never counts twice. A failed
write keeps its rows and tries again; `close()` (the server's graceful shutdown) writes
everything still queued before it returns, so nothing is lost on a clean stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cockpit.store.inserts import insert_new
from cockpit.store.tables import usage_ledger

log = logging.getLogger(__name__)

CLOSE_ATTEMPTS = 10
"""Tries at shutdown before queued rows are given up (and named in the log)."""


class LedgerWriter:
    def __init__(self, engine: Engine, interval: float = 0.2, batch: int = 500) -> None:
        self.engine = engine
        self.interval = interval
        self.batch = batch
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pending: list[dict[str, Any]] = []
        self._idle = threading.Condition()
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="cockpit-ledger", daemon=True)
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        """Queue one ledger row (never blocks on the database)."""
        self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        target = self._written + self._queue.qsize() + len(self._pending)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    @property
    def written(self) -> int:
        return self._written

    def _run(self) -> None:
        closing = False
        failures = 0
        while not closing or self._pending:
            deadline = time.monotonic() + self.interval
            while len(self._pending) < self.batch and not closing:
                try:
                    row = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if row is None:
                    closing = True
                else:
                    self._pending.append(row)
            if self._pending and not self._write(self._pending):
                failures += 1
                if not (closing and failures >= CLOSE_ATTEMPTS):
                    time.sleep(min(5.0, self.interval * 5))
                    continue
                log.error("usage ledger: %d row(s) could not be written before shutdown: %s", len(self._pending), ", ".join(str(r.get("request_id")) for r in self._pending[:20]))
            failures = 0
            with self._idle:
                self._written += len(self._pending)
                self._pending = []
                self._idle.notify_all()

    def _write(self, rows: list[dict[str, Any]]) -> bool:
        try:
            with self.engine.begin() as connection:
                connection.execute(insert_new(connection, usage_ledger, rows, ("request_id",)))
            return True
        except SQLAlchemyError as exc:
            log.error("usage ledger: could not write %d row(s), will retry: %s", len(rows), type(exc).__name__)
            return False
