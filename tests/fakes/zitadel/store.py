"""The in-memory state: immutable records, a command side and a lagging query side (§6).

Every write is a list of ops `(table, key, record-or-None)` pushed as one event with a sequence
number. The command side applies it at once (writes and unique constraints always see
everything); the query side (the "projections" that searches read) applies it only when the
configured lag lets it through: a search does not see the last `writes` events, or events
younger than `seconds` on the fake's clock, or (both set) events that are both. Seeding helpers
bypass the lag: what a test sets up is visible everywhere at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class Clock:
    """Wall time plus an offset that tests can advance (token expiry, timestamps, lag)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class IdGenerator:
    """18-digit, time-ordered decimal ids, as Zitadel's (snowflake-like) ids look."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            candidate = int(self._clock() * 1000) * 100_000
            self._last = max(self._last + 1, candidate)
            return str(self._last)


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """The ObjectDetails of a record: last sequence, creation and change time; `order` is the
    sequence of the creating event (a stable creation order for listings)."""

    sequence: int
    created: float
    changed: float
    order: int

    def changed_at(self, sequence: int, now: float) -> Meta:
        return Meta(sequence, self.created, now, self.order)

    @staticmethod
    def new(sequence: int, now: float) -> Meta:
        return Meta(sequence, now, now, sequence)


@dataclass(frozen=True)
class Org:
    id: str
    name: str
    domain: str
    meta: Meta


@dataclass(frozen=True)
class Project:
    id: str
    org_id: str
    name: str
    role_assertion: bool
    meta: Meta


@dataclass(frozen=True)
class Role:
    project_id: str
    key: str
    display_name: str
    group: str
    org_id: str  # the project's org: the role's resource owner
    meta: Meta


@dataclass(frozen=True)
class User:
    id: str
    org_id: str
    username: str
    email: str
    first_name: str
    last_name: str
    display_name: str
    machine: bool
    state: str
    login_names: list[str]  # `username`, or `username@<org domain>` when it has no "@"
    meta: Meta

    @property
    def user_type(self) -> str:
        return "TYPE_MACHINE" if self.machine else "TYPE_HUMAN"


@dataclass(frozen=True)
class Grant:
    id: str
    org_id: str  # the granting org: the grant's resource owner
    user_id: str
    project_id: str
    role_keys: tuple[str, ...]
    state: str
    meta: Meta


def role_key(project_id: str, key: str) -> tuple[str, str]:
    """Roles are stored under the lower-cased key: the unique constraint is case-insensitive."""
    return (project_id, key.lower())


# -- tables and the event log -------------------------------------------------------------------

Op = tuple[str, Any, Any]  # (table, key, record or None to delete)


@dataclass
class Tables:
    orgs: dict[str, Org] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    roles: dict[tuple[str, str], Role] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)

    def apply(self, ops: Iterable[Op]) -> None:
        for table, key, record in ops:
            rows: dict[Any, Any] = getattr(self, table)
            if record is None:
                rows.pop(key, None)
            else:
                rows[key] = record

    def project_roles(self, project_id: str) -> list[Role]:
        """A project's roles in creation order."""
        roles = [role for role in self.roles.values() if role.project_id == project_id]
        return sorted(roles, key=lambda role: role.meta.order)


@dataclass
class _Event:
    sequence: int
    at: float
    ops: list[Op]


class EventLog:
    """Command side, query side and the pending events in between. Callers hold `lock`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.command = Tables()
        self.query = Tables()
        self.sequence = 0
        self.processed_sequence = 0
        self.processed_at = clock()
        self._pending: deque[_Event] = deque()
        self._lag_writes: int | None = 0
        self._lag_seconds: float | None = None

    @property
    def next_sequence(self) -> int:
        """The sequence the next push or seed will get (callers hold `lock`)."""
        return self.sequence + 1

    def push(self, ops: list[Op]) -> int:
        """Commit one event; returns its sequence."""
        with self.lock:
            self.sequence += 1
            self.command.apply(ops)
            self._pending.append(_Event(self.sequence, self.clock(), ops))
            self._project()
            return self.sequence

    def seed(self, ops: list[Op]) -> int:
        """Apply to both sides at once (test set-up, not subject to lag)."""
        with self.lock:
            self.sequence += 1
            self.command.apply(ops)
            self.query.apply(ops)
            if not self._pending:
                self.processed_sequence = self.sequence
                self.processed_at = self.clock()
            return self.sequence

    def view(self) -> Tables:
        """The query side, brought as far as the lag allows."""
        with self.lock:
            self._project()
            return self.query

    def set_lag(self, writes: int | None, seconds: float | None) -> None:
        with self.lock:
            if writes is None and seconds is None:
                writes = 0
            self._lag_writes, self._lag_seconds = writes, seconds
            self._project()

    def catch_up(self) -> None:
        """Apply every pending event to the query side now (the lag setting stays)."""
        with self.lock:
            while self._pending:
                self._apply_oldest()

    @property
    def pending(self) -> int:
        with self.lock:
            return len(self._pending)

    def _project(self) -> None:
        while self._pending and not self._hidden(self._pending[0]):
            self._apply_oldest()

    def _hidden(self, event: _Event) -> bool:
        writes, seconds = self._lag_writes, self._lag_seconds
        among_last = True if writes is None else len(self._pending) <= writes
        too_young = True if seconds is None else self.clock() - event.at < seconds
        return among_last and too_young

    def _apply_oldest(self) -> None:
        event = self._pending.popleft()
        self.query.apply(event.ops)
        self.processed_sequence = event.sequence
        self.processed_at = self.clock()
