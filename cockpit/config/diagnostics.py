"""Located problems: the one user-facing error type of the config pipeline.

Every problem in a tenant repo is reported as `FILE:LINE:COL: error: MESSAGE`; the message says
what is wrong and what to do. Messages about secret fields never contain the value.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Location:
    """A 1-based position in a source file."""

    file: str
    line: int = 1
    column: int = 1

    def __str__(self) -> str:
        """`file:line:column`; just `file` for problems of a whole path (line 0)."""
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file


@dataclass(frozen=True, order=True)
class Diagnostic:
    location: Location
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self.location), "severity": self.severity, "message": self.message}


class Diagnostics:
    """Collects every problem of a run, so one run reports them all."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []

    def error(self, location: Location, message: str) -> None:
        self._items.append(Diagnostic(location, "error", one_line(message)))

    def warning(self, location: Location, message: str) -> None:
        self._items.append(Diagnostic(location, "warning", one_line(message)))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self._items.extend(items)

    def has_errors_since(self, start: int) -> bool:
        """Whether an error was reported after the first `start` problems."""
        return any(d.severity == "error" for d in self._items[start:])

    def first_error_since(self, start: int) -> Location:
        return next(d.location for d in self._items[start:] if d.severity == "error")

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self._items)

    def count(self, severity: Severity) -> int:
        return sum(1 for d in self._items if d.severity == severity)

    def sorted(self) -> list[Diagnostic]:
        return sorted(set(self._items), key=_sort_key)

    def __len__(self) -> int:
        return len(self._items)


# Line breaks (as str.splitlines sees them) and other control characters, shown escaped, so a
# message that quotes a user's value stays one located line.
_ESCAPES = {
    c: repr(chr(c))[1:-1]
    for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
}


def one_line(message: str) -> str:
    return message.translate(_ESCAPES)


def _sort_key(d: Diagnostic) -> tuple[object, ...]:
    return (d.location.file, d.location.line, d.location.column, d.severity, d.message)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest candidate, or an empty string."""
    pool = candidates if isinstance(candidates, (list, tuple, set, frozenset)) else list(candidates)
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f"; did you mean '{matches[0]}'?" if matches else ""


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
