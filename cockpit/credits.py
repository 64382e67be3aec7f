"""Budget arithmetic (allocations, overrides, capacity) in hundredths of a credit, so sums are exact."""

from __future__ import annotations

from typing import Hashable, Iterable, TypeVar

K = TypeVar("K", bound=Hashable)


def to_cents(credits: float) -> int:
    return round(credits * 100)


def is_whole_cents(credits: float) -> bool:
    return abs(credits * 100 - round(credits * 100)) < 1e-6


def format_credits(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def split_equally(total_cents: int, scopes: Iterable[K], sort_key=str) -> dict[K, int]:
    """Equal shares that sum to the total exactly: the remainder cents go to the first scopes in
    sorted order, one each."""
    ordered = sorted(scopes, key=sort_key)
    if not ordered:
        return {}
    share, remainder = divmod(total_cents, len(ordered))
    return {scope: share + (1 if i < remainder else 0) for i, scope in enumerate(ordered)}


def format_number(value: float | int, places: int | None = None) -> str:
    """A number as every command prints it: thousands separated; credits (`places` 2, as
    their columns store them) to the hundredth, as validate and explain print them; others
    without a trailing `.0`."""
    if places == 2:
        return f"{value:,.2f}"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,}"
