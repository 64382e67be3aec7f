"""Whether a process of this host still exists, told by its pid."""

from __future__ import annotations

import os


def is_gone(pid: int) -> bool:
    """True when no process has `pid` now (signal 0 probes without signalling). Another
    user's process exists; a pid reused since counts as alive: callers take "gone" as proof."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
