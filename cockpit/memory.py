"""Bulk work without the cyclic garbage collector.

Loading a tenant and reading an account keep millions of small acyclic objects alive (YAML
nodes, marks, models, resources); the cyclic collector would rescan them all again and again
(4x slower on a 100,000-grant tenant). Reference counting still frees everything, and the
collector runs again when the block ends.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_survivors() -> None:
    """Take what is alive now out of the cyclic collector's sight, for good.

    A server holds a few million long-lived objects (litellm's modules, the model catalog,
    account snapshots: a 20,000-person graph alone is some 200,000); every full collection
    would walk them all again, 100 to 300 ms in the middle of someone's request. Freezing
    moves them to the permanent generation, after one collection so no garbage is frozen with
    it; the first freeze pays that walk once, later ones only walk what is new. Reference
    counting still frees what dies later (snapshots and the catalog hold no cycles).
    """
    gc.collect()
    gc.freeze()
