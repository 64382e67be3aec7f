"""Old names → config names: the config language's `Name` is lower-case letters, digits, `.`,
`_` and `-`; the old systems stored free text and did not keep names unique. Every rename is
returned so the importer can state it in the report."""

from __future__ import annotations

import re

from cockpit.config.types import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_RUN = re.compile(r"[^a-z0-9_.-]+")


def slug(text: str | None, fallback: str = "unnamed") -> str:
    """A valid config name close to `text`: lower-cased, other characters as `-`."""
    name = _RUN.sub("-", (text or "").strip().lower()).strip("-._")[:63].rstrip("-._")
    return name if name and _NAME.match(name) else fallback


def is_name(text: str | None) -> bool:
    return bool(text) and _NAME.match(text) is not None


class UniqueNames:
    """Hands out distinct names within one namespace (agents of an account, …): the first
    holder of a name keeps it, later ones get `-2`, `-3`, …"""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def claim(self, wanted: str) -> str:
        name, n = wanted, 1
        while name in self.taken:
            n += 1
            suffix = f"-{n}"
            name = wanted[: 63 - len(suffix)] + suffix
        self.taken.add(name)
        return name
