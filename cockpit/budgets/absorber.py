"""The absorber: a process of its own that folds a server's spooled calls into the ledger and
the counters.

Absorbing a batch is pure Python and database work (decoding rows, a COPY or executemany, the
counters' UPDATEs or a Redis script): 8 to 17 ms of CPU for a few hundred calls. Run in a thread
of the serving process, it held the GIL while requests waited for it, and a request that came
in during an absorb took that long more: the whole of the gateway's p99 at concurrency 1. In a
process of its own, at a lower CPU priority (`NICE`), the operating system runs it when the
server has nothing to do, or preempts it when a request comes in.

The server (`Absorber`, used from one thread of the server) starts the process and sends it, over
its stdin, the spool lines of a batch and the leases to give back; the process answers on its
stdout with what the database refused and what to log. Frames are a 4-byte length and a pickle
(the two ends are one program). The spool stays the record: a call is absorbed when the answer
says so, and a batch whose answer never came (the process died) is sent again; absorbing is
idempotent. The process dies with its server (`PR_SET_PDEATHSIG` on Linux, else at the end of
its stdin), so a killed server's half-done absorb is rolled back, not finished behind the back
of the server that replays its spool.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from sqlalchemy.exc import DataError, IntegrityError

from cockpit.budgets.counters import Counters, Release, Settled
from cockpit.budgets.spool import decode, encode, orphans, read_calls
from cockpit.store.tables import usage_ledger

log = logging.getLogger(__name__)

NICE = 10
"""How much lower the absorber's CPU priority is than its server's."""
ABSORB_BATCH = 1000
"""Calls per absorbing transaction."""
FRAME = struct.Struct("!I")


class AbsorberFailed(Exception):
    """The batch was not absorbed (the database or Redis is out of reach, or the process died):
    the calls stay spooled and are sent again."""


@dataclass
class Outcome:
    """What an absorb did that the server must know: the spool lines of calls the database
    refused even as plain rows (to set aside), how many rows it charged as plain rows, the
    files of dead servers it absorbed, and its log records (logged by the server)."""

    refused: list[bytes] = field(default_factory=list)
    plain: int = 0
    files: list[tuple[str, int]] = field(default_factory=list)
    logs: list[tuple[str, int, str]] = field(default_factory=list)
    error: str | None = None


# -- the server's side -------------------------------------------------------------------------


class Absorber:
    """The server's handle on its absorbing process; every method blocks, so call them from
    one thread (the proxy's absorbing thread), never from the event loop."""

    def __init__(self, database_url: str, environ: Mapping[str, str], spool: Path) -> None:
        self._setup = {"url": database_url, "environ": dict(environ), "spool": str(spool)}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (again, after it died)."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "cockpit.budgets.absorber"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        try:
            _send(self._process.stdin, self._setup)
        except OSError:
            self.close()
            raise AbsorberFailed("the absorbing process ended as it started") from None
        ready = self._receive()  # connected to the database, or why not
        if ready.error is not None:
            self.close()
            raise AbsorberFailed(ready.error)

    def absorb(self, lines: Sequence[bytes | Settled], releases: Sequence[Release]) -> Outcome:
        """Absorb calls (their spool lines, or the call itself when it could not be encoded)
        and give back `releases`; raises AbsorberFailed when it did not."""
        return self._ask(("absorb", list(lines), list(releases)))

    def orphans(self) -> Outcome:
        """Absorb the spool files of servers that died, each to its end, and delete them."""
        return self._ask(("orphans",))

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()  # the process ends at the end of its input
            process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        process.stdout.close()

    def _ask(self, message: tuple[Any, ...]) -> Outcome:
        if self._process is None or self._process.poll() is not None:
            if self._process is not None:
                log.error("the absorbing process ended (exit code %s); starting another", self._process.returncode)
                self.close()
            self.start()
        assert self._process is not None
        try:
            _send(self._process.stdin, message)
        except OSError:
            self.close()
            raise AbsorberFailed("the absorbing process is gone") from None
        outcome = self._receive()
        if outcome.error is not None:
            raise AbsorberFailed(outcome.error)
        return outcome

    def _receive(self) -> Outcome:
        assert self._process is not None
        found = _receive(self._process.stdout)
        if found is None:
            self.close()
            raise AbsorberFailed("the absorbing process is gone")
        return found


def _send(stream: IO[bytes] | None, message: Any) -> None:
    assert stream is not None
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes] | None) -> Any:
    assert stream is not None
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


# -- the absorbing process's side -------------------------------------------------------------


class Absorbing:
    """Absorbs batches into `counters`, so that one row the database refuses cannot block the
    calls after it: the batch is halved down to the calls it refuses, each charged with a plain
    row instead (`plain_row`), and returned to be set aside only when even that is refused. When
    the batch's first and last calls are both refused even as plain rows, the fault is the
    schema's or this server's (a migration not run yet), not the rows': the batch raises and
    stays spooled, like a lost connection."""

    def __init__(self, counters: Counters, spool: Path) -> None:
        self.counters = counters
        self.spool = spool

    def batch(self, calls: Sequence[Settled], releases: Sequence[Release], outcome: Outcome) -> None:
        outcome.refused += [encode(call) for call in self._batch(calls, releases, top=True, outcome=outcome)]

    def orphans(self, outcome: Outcome) -> None:
        """Each file is absorbed to its end and deleted while this process holds its lock."""
        for path, fd in orphans(self.spool):
            try:
                calls = read_calls(fd)
                for start in range(0, len(calls), ABSORB_BATCH):
                    self.batch(calls[start:start + ABSORB_BATCH], (), outcome)
                path.unlink(missing_ok=True)
                outcome.files.append((path.name, len(calls)))
            except Exception as exc:  # left for the next sweep
                outcome.logs.append((log.name, logging.ERROR, f"usage ledger: could not absorb the spool {path.name}: {type(exc).__name__}"))
            finally:
                os.close(fd)

    def _batch(self, batch: Sequence[Settled], releases: Sequence[Release], top: bool, outcome: Outcome) -> list[Settled]:
        try:
            self.counters.absorb(batch, releases)
            return []
        except (DataError, IntegrityError) as exc:
            if not batch:
                raise
            refusal = exc
        if len(batch) == 1:
            if self._refused_plain(batch[0], releases, outcome):
                if releases:
                    self.counters.absorb((), releases)
                return list(batch)
            return []
        if top:  # first and last alone: both refused even as plain rows is no row's fault
            first = self._refused_alone(batch[0], outcome)
            last = self._refused_alone(batch[-1], outcome)
            if first and last:
                raise refusal
            refused = [call for call, bad in ((batch[0], first), (batch[-1], last)) if bad]
            return refused + (self._batch(batch[1:-1], releases, False, outcome) if len(batch) > 2 or releases else [])
        half = len(batch) // 2
        return self._batch(batch[:half], releases, False, outcome) + self._batch(batch[half:], (), False, outcome)

    def _refused_alone(self, call: Settled, outcome: Outcome) -> bool:
        """Absorb `call` on its own, else with a plain row; True when both are refused."""
        try:
            self.counters.absorb([call], ())
            return False
        except (DataError, IntegrityError):
            return self._refused_plain(call, (), outcome)

    def _refused_plain(self, call: Settled, releases: Sequence[Release], outcome: Outcome) -> bool:
        """Absorb `call` with a plain row; True when the database refuses that too."""
        plain = Settled(plain_row(call.row), call.window_start, call.leases)
        try:
            self.counters.absorb([plain], releases)
        except (DataError, IntegrityError):
            return True
        outcome.plain += 1
        outcome.logs.append((log.name, logging.ERROR, f"usage ledger: the database refused the row of call {call.row.get('request_id')}; it was charged with a plain row (names cut to their columns, no metadata)"))
        return False


def plain_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ledger row the database refused, as plain as it can be and still charge the call:
    its ids, amounts and time as they were, every name cut to its column, the metadata only
    saying so."""
    plain = dict(row)
    for column in usage_ledger.columns:
        length = getattr(column.type, "length", None)
        if length and isinstance(plain.get(column.name), str):
            plain[column.name] = plain[column.name][:length]
    plain["metadata"] = {"plain_row": "the database refused this call's ledger row; amounts and ids are as charged"}
    return plain


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its server dies (a `kill -9` included)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> int:
    _die_with_parent()
    try:
        os.nice(NICE)
    except OSError:
        pass
    channel_in = os.fdopen(os.dup(0), "rb")
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to the server's stderr, never into the channel
    setup = _receive(channel_in)
    if setup is None:
        return 0
    from cockpit.budgets.counters import counters_from_environment
    from cockpit.store.engine import create_engine_for

    try:
        engine = create_engine_for(setup["url"])
        absorbing = Absorbing(counters_from_environment(engine, setup["environ"]), Path(setup["spool"]))
    except Exception as exc:
        _send(channel_out, Outcome(error=f"cannot start: {type(exc).__name__}"))
        return 1
    _send(channel_out, Outcome())
    while (message := _receive(channel_in)) is not None:
        outcome = Outcome()
        try:
            if message[0] == "absorb":
                calls = [decode(item) if isinstance(item, bytes) else item for item in message[1]]
                absorbing.batch(calls, message[2], outcome)
            elif message[0] == "orphans":
                absorbing.orphans(outcome)
        except Exception as exc:  # the server keeps the calls spooled and sends them again
            outcome = Outcome(error=type(exc).__name__, logs=outcome.logs)
        _send(channel_out, outcome)
    absorbing.counters.close()
    engine.dispose()
    return 0


if __name__ == "__main__":
    from cockpit.budgets.absorber import main as run  # the module's own classes, not __main__'s: they are pickled

    sys.exit(run())
