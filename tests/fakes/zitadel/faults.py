"""Fault injection: scripted and random failures, lost responses, concurrent-write conflicts.

Two kinds of failure:

* **before**: the request is answered with an error before anything is read or written, so a
  failed call changed nothing (`fail_next`, `fail_ratio`);
* **lost response**: a request that *wrote* is committed, then answered with an error as if the
  response was lost on the way back (`fail_next(..., after_commit=True)`,
  `fail_ratio(..., lost_response_ratio=q)`); retries then meet the 409/404 of their own effect.

All switches are thread-safe; `path_prefix` limits a switch to matching paths.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    status: int
    retry_after: float | None = None


@dataclass(frozen=True)
class _Scripted:
    failure: Failure | None  # None: let one request through (the `after` of fail_next)
    path_prefix: str | None


@dataclass(frozen=True)
class _Ratio:
    probability: float
    statuses: tuple[int, ...]
    lost_probability: float
    lost_status: int
    retry_after: float | None
    path_prefix: str | None


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._before: deque[_Scripted] = deque()
        self._after_commit: deque[_Scripted] = deque()
        self._ratio: _Ratio | None = None
        self._random = random.Random()
        self._in_flight: dict[str, int] = {}
        self.conflict_on_concurrent_writes = False

    # -- configuration --------------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int = 503,
        retry_after: float | None = None,
        *,
        after: int = 0,
        after_commit: bool = False,
        path_prefix: str | None = None,
    ) -> None:
        failure = Failure(status, retry_after)
        queue = self._after_commit if after_commit else self._before
        with self._lock:
            queue.extend([_Scripted(None, path_prefix)] * after)
            queue.extend([_Scripted(failure, path_prefix)] * count)

    def fail_ratio(
        self,
        probability: float,
        statuses: Sequence[int] = (429, 503, 500),
        seed: int | None = None,
        *,
        lost_response_ratio: float = 0.0,
        lost_status: int = 503,
        retry_after: float | None = None,
        path_prefix: str | None = None,
    ) -> None:
        if not 0 <= probability <= 1 or not 0 <= lost_response_ratio <= 1:
            raise ValueError("probabilities must lie in [0, 1]")
        if probability and not statuses:
            raise ValueError("statuses must not be empty")
        with self._lock:
            self._random = random.Random(seed)
            self._ratio = (
                _Ratio(
                    probability,
                    tuple(statuses),
                    lost_response_ratio,
                    lost_status,
                    retry_after,
                    path_prefix,
                )
                if probability or lost_response_ratio
                else None
            )

    def reset(self) -> None:
        with self._lock:
            self._before.clear()
            self._after_commit.clear()
            self._ratio = None
            self.conflict_on_concurrent_writes = False

    # -- decisions ------------------------------------------------------------------------------

    def before(self, path: str) -> tuple[Failure | None, bool]:
        """(failure to answer now, whether a write by this request should lose its response)."""
        with self._lock:
            scripted = self._pop(self._before, path)
            if scripted is not None:
                return scripted, False
            ratio = self._ratio
            if ratio is None or not _matches(ratio.path_prefix, path):
                return None, False
            draw = self._random.random()
            if draw < ratio.probability:
                status = ratio.statuses[self._random.randrange(len(ratio.statuses))]
                return Failure(status, ratio.retry_after), False
            return None, draw < ratio.probability + ratio.lost_probability

    def after_commit(self, path: str, lose_by_ratio: bool) -> Failure | None:
        """Called only for requests that committed a write."""
        with self._lock:
            scripted = self._pop(self._after_commit, path)
            if scripted is not None:
                return scripted
            if lose_by_ratio and self._ratio is not None:
                return Failure(self._ratio.lost_status, self._ratio.retry_after)
            return None

    @staticmethod
    def _pop(queue: deque[_Scripted], path: str) -> Failure | None:
        for index, entry in enumerate(queue):
            if _matches(entry.path_prefix, path):
                del queue[index]
                return entry.failure
        return None

    # -- concurrent writes to one aggregate (§6.5) --------------------------------------------------

    def enter_write(self, aggregate: str | None) -> bool:
        """Register an in-flight write; True if another write to the same aggregate is in flight
        and the switch is on (the request should then fail like an eventstore push conflict)."""
        if aggregate is None:
            return False
        with self._lock:
            self._in_flight[aggregate] = self._in_flight.get(aggregate, 0) + 1
            return self.conflict_on_concurrent_writes and self._in_flight[aggregate] > 1

    def leave_write(self, aggregate: str | None) -> None:
        if aggregate is None:
            return
        with self._lock:
            self._in_flight[aggregate] -= 1
            if not self._in_flight[aggregate]:
                del self._in_flight[aggregate]


def _matches(prefix: str | None, path: str) -> bool:
    return prefix is None or path.startswith(prefix)
