"""The spool: an append-only file of the calls a server settled, kept until they are absorbed.

A call settled against a lease (`cockpit.budgets.leases`) is charged in memory; its ledger row
and the leases it was held on are appended here, one line of JSON, before its answer ends.
`os.write` to a file opened with O_APPEND puts the line in the operating system's page cache
at once, so the charge survives the server being killed (`kill -9`, a crash, an OOM kill) even
though the counters and the ledger learn of it a fraction of a second later, when the server
hands its spool's new lines to its absorbing process (`cockpit.budgets.absorber`) in a batch.
Each server process writes its own file and holds an exclusive `flock` on it while it lives; any
server's absorber that finds a spool file nobody holds (its writer died) absorbs it and deletes
it. Absorbing is idempotent (`Counters.absorb`), so a file replayed after
a partial absorb counts each call once.

The spool lives in `COCKPIT_SPOOL_DIR`, else beside an SQLite database file (`<db>.spool/`),
else in the temp directory, under a name derived from the database URL. It must survive the
process, not the machine: in a container, mount a volume (an `emptyDir` in Kubernetes) there.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import orjson
from sqlalchemy.engine import Engine

from cockpit.budgets.counters import Settled
from cockpit.budgets.ledger import decode_row, ledger_namespace

log = logging.getLogger(__name__)

ROTATE_BYTES = 4 << 20
ROTATE_SECONDS = 86400.0
"""A spool file whose calls are all absorbed is replaced by a new one past this size or age."""
SUFFIX = ".spool"
REFUSED = "refused.jsonl"
"""Where the calls go whose ledger rows the database refused (never a spool: not replayed)."""


def spool_dir(engine: Engine, environ: Mapping[str, str]) -> Path:
    configured = (environ.get("COCKPIT_SPOOL_DIR") or "").strip()
    if configured:
        return Path(configured)
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        return Path(database).resolve().with_name(Path(database).name + ".spool")
    return Path(tempfile.gettempdir()) / "cockpit-spool" / ledger_namespace(engine)


def encode(call: Settled) -> bytes:
    """One spool line."""
    return orjson.dumps(
        {"row": call.row, "window": call.window_start, "leases": [[scope, str(lease_id), token] for scope, lease_id, token in call.leases]},
        default=_plain,
    ) + b"\n"


def decode(line: bytes) -> Settled:
    data = orjson.loads(line)
    return Settled(
        decode_row(orjson.dumps(data["row"])),
        dt.datetime.fromisoformat(data["window"]),
        tuple((scope, uuid.UUID(lease_id), token) for scope, lease_id, token in data["leases"]),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


class Spool:
    """This process's spool file: `append` on the hot path, `rotate` when absorbed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path: Path | None = None
        self._fd = -1
        self._size = 0
        self._open()

    def _open(self) -> None:
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        opening = self.directory / f"{name}.opening"  # not a spool until locked: `orphans` skips it
        fd = os.open(opening, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process lives
        path = opening.with_suffix(SUFFIX)
        os.rename(opening, path)
        self.path, self._fd, self._size, self._opened = path, fd, 0, time.monotonic()

    def append(self, call: Settled) -> bytes:
        """Write one settled call where a killed process cannot lose it; its line."""
        line = encode(call)
        self._size += len(line)
        _write(self._fd, line)
        return line

    def rotate(self) -> None:
        """Start a new file once everything in the current one is absorbed and it is large or
        a day old (a dead server's spool is replayed whole: this bounds what is replayed)."""
        if self._size < ROTATE_BYTES and time.monotonic() - self._opened < ROTATE_SECONDS:
            return
        old_fd, old_path = self._fd, self.path
        self._open()
        os.close(old_fd)
        if old_path is not None:
            old_path.unlink(missing_ok=True)

    def close(self, absorbed: bool) -> None:
        """Stop writing; the file goes when everything in it was absorbed, else it stays for the
        next server to absorb."""
        if self._fd < 0:
            return
        if absorbed and self.path is not None:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1


def set_aside(directory: Path, lines: Sequence[bytes]) -> Path:
    """Append the spool lines of calls the database refused to `refused.jsonl` in `directory`
    (an operator can read, fix and replay them); its path."""
    path = directory / REFUSED
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for line in lines:
            _write(fd, line)
    finally:
        os.close(fd)
    return path


def orphans(directory: Path) -> Iterator[tuple[Path, int]]:
    """Spool files whose writer is gone, each locked for the caller (close the descriptor):
    a living server holds its own file's lock, so it is never one of them."""
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its writer lives
            os.close(fd)
            continue
        yield path, fd


def _write(fd: int, line: bytes) -> None:
    """All of `line`: a regular file takes it whole, but a short write must not merge two lines."""
    view = memoryview(line)
    while view:
        view = view[os.write(fd, view):]


def read_calls(fd: int) -> list[Settled]:
    """Every whole line of a spool file (a line cut by a crash mid-write is not a call)."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    calls = []
    for line in b"".join(chunks).split(b"\n"):
        if not line:
            continue
        try:
            calls.append(decode(line))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("spool: a line that is not a settled call was skipped: %s", type(exc).__name__)
    return calls
