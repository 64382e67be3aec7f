"""Multi-line strings (system prompts, descriptions) diffed line by line for people: a
one-word change in a long prompt reads as one changed line, not as two whole escaped strings."""

from __future__ import annotations

import difflib
from typing import Any

CONTEXT_LINES = 2


def is_multiline(before: Any, after: Any) -> bool:
    """Both sides are text (or absent) and at least one spans several lines."""
    texts = [v for v in (before, after) if v is not None]
    return bool(texts) and all(isinstance(v, str) for v in texts) and any("\n" in v for v in texts)


def line_diff(before: str | None, after: str | None) -> list[str]:
    """The changed lines with CONTEXT_LINES around them: `- old`, `+ new`, `  same`, and `…`
    between hunks (a unified diff without its headers)."""
    old = (before or "").splitlines()
    new = (after or "").splitlines()
    lines: list[str] = []
    for line in difflib.unified_diff(old, new, lineterm="", n=CONTEXT_LINES):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if lines:
                lines.append("…")
            continue
        lines.append(f"{line[:1] or ' '} {line[1:]}".rstrip())
    return lines
