"""Scopes as the config names them: `account`, `pool`, `org:O`, `team:O/T`, `user:E`, `agent:A`.

Stored and compared as (type, key) pairs; e-mail keys are lower-cased, so a user is one user
however the file spells the address.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

SCOPE_TYPES = ("account", "org", "team", "user", "agent", "pool")


class Scope(NamedTuple):
    type: str
    key: str
    """Org name, `org/team`, e-mail or agent name; empty for `account` and `pool`."""

    def __str__(self) -> str:
        return self.type if not self.key else f"{self.type}:{self.key}"


@lru_cache(maxsize=1 << 17)
def parse_scope(text: str) -> Scope:
    """Parse a scope the schema pass has already checked for form (cached: a large tenant
    names the same scopes in many grants, and validate, expand and policy all parse them)."""
    if text in ("account", "pool"):
        return Scope(text, "")
    kind, _, key = text.partition(":")
    return Scope(kind, key.lower() if kind == "user" else key)
