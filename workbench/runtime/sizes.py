"""Sizes for people: one spelling everywhere a size is shown (results, gauges, reasons)."""

from __future__ import annotations

__all__ = ["human_size"]


def human_size(n: int | None) -> str:
    """Sizes for people (3 significant digits); capability strings use format_size.

    Binary units for whole mebibytes (a 256 MiB cap reads "256 MiB", not "268 MB"),
    decimal units otherwise."""
    if n is None:
        return "-"
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**30} GiB" if n % 2**30 == 0 else f"{n // 2**20} MiB"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
