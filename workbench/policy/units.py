"""Sizes, durations, percentages and counts as people write them, as exact numbers.

Why exact: a limit is a promise, and ``100MB`` (10^8 bytes) and ``100MiB``
(104 857 600 bytes) differ by almost 5 %.  Parsing goes through
:class:`decimal.Decimal`, so ``1.5GB`` is exactly 1 500 000 000 bytes and a
value that is not a whole number of bytes is an error instead of a rounding.

The ``format_*`` functions give the canonical spelling used in capability
strings: the largest unit in which the value is a whole number, so equal
values always print the same and ``parse(format(x)) == x``.

Every value is bounded, because a limit is read by people and anything past the
bounds is a typo or an attack on the parser: at most :data:`MAX_DIGITS` digits,
sizes up to :data:`MAX_SIZE`, durations up to :data:`MAX_SECONDS` (a year), counts up
to :data:`MAX_COUNT`.  Arithmetic runs in a context precise enough to stay exact for
every number that passes (Decimal's default rounds to 28 digits).
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation

from workbench.policy.suggest import grammar_error, nearest, quote

__all__ = [
    "SIZE_UNITS",
    "DURATION_UNITS",
    "parse_size",
    "format_size",
    "parse_duration",
    "format_duration",
    "MAX_SIZE",
    "MAX_SECONDS",
    "MAX_COUNT",
    "MAX_DIGITS",
]

#: bytes per unit; decimal (KB = 10^3) and binary (KiB = 2^10) units, case as written
SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 10**3,
    "kB": 10**3,  # the SI spelling of kilo
    "KiB": 2**10,
    "MB": 10**6,
    "MiB": 2**20,
    "GB": 10**9,
    "GiB": 2**30,
    "TB": 10**12,
    "TiB": 2**40,
}
#: seconds per unit; a bare number means seconds
DURATION_UNITS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "min": Decimal(60),
    "h": Decimal(3600),
}
_SIZE_SUGGESTIONS = [unit for unit in SIZE_UNITS if unit != "kB"]
_SIZE_CANONICAL = sorted(((factor, unit) for unit, factor in SIZE_UNITS.items() if unit != "kB"), reverse=True)
_DURATION_CANONICAL = [("h", Decimal(3600)), ("min", Decimal(60)), ("s", Decimal(1)), ("ms", Decimal("0.001"))]

# ASCII only: ``\s`` would otherwise take U+2028 or U+3000 for a space, ``[0-9]`` is explicit anyway
_NUMBER_UNIT = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>\S*)", re.ASCII)
_COUNT = re.compile(r"[0-9](?:_?[0-9])*(?:\.[0-9](?:_?[0-9])*)?(?:[eE]\+?[0-9]{1,4})?", re.ASCII)
#: fuel is a u64 in wasmtime
MAX_COUNT = 2**64 - 1
#: the largest size: 2^60 bytes (1 EiB), more than any machine has, and within the
#: signed 64-bit fields of wasmtime's C API with room to spare
MAX_SIZE = 2**60
#: the longest duration: a year (and far below ``threading.TIMEOUT_MAX``)
MAX_SECONDS = Decimal(365 * 24 * 3600)
#: digits a number may have, its fraction included
MAX_DIGITS = 30
#: exact for products and quotients of numbers of MAX_DIGITS digits and every unit factor
_EXACT = Context(prec=100)


def plain(number: Decimal) -> str:
    """``Decimal`` without exponent or trailing zeros (``100``, ``12.5``)."""
    return format(_EXACT.normalize(number), "f")


def _split(value: str, *, kind: str, example: str, context: str | None) -> tuple[Decimal, str]:
    """Split ``"1.5 GB"`` into ``(Decimal('1.5'), 'GB')``; the unit may be empty."""
    stripped = value.strip(" ")
    if stripped.startswith("-"):
        raise grammar_error(f"{kind} {quote(value)} must not be negative", text=context or value, part=value)
    match = _NUMBER_UNIT.fullmatch(stripped)
    if match is None:
        raise grammar_error(
            f"{kind} {quote(value)} is not a number with a unit",
            text=context or value,
            part=value,
            hint=f"write it like {quote(example)}",
        )
    number = match["number"]
    if len(number) - ("." in number) > MAX_DIGITS:
        raise grammar_error(
            f"{kind} {quote(value)} has more than {MAX_DIGITS} digits",
            text=context or value,
            part=value,
            hint=f"write it like {quote(example)}",
        )
    return Decimal(number), match["unit"]


def _too_large_size(value: str, context: str | None) -> Exception:
    return grammar_error(
        f"size {quote(value)} is too large (the most is {format_size(MAX_SIZE)}, 2^60 bytes)",
        text=context or value,
        part=value,
    )


def _too_long(value: str, context: str | None) -> Exception:
    return grammar_error(
        f"duration {quote(value)} is too long (the most is {format_duration(MAX_SECONDS)}, a year)",
        text=context or value,
        part=value,
    )


def _unknown_unit(unit: str, choices: list[str], *, kind: str, context: str | None, value: str) -> Exception:
    return grammar_error(
        f"unknown {kind} unit {quote(unit)}",
        text=context or value,
        part=unit,
        suggestion=nearest(unit, choices, cutoff=0.5),
        hint=f"valid units: {', '.join(choices)}",
    )


def size_bytes(value: str | int, *, context: str | None = None) -> int:
    """Bytes in ``value``; ``context`` is the capability the value came from (for errors)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise grammar_error(f"a size must be text or an int, not {type(value).__name__}", text=context)
    if isinstance(value, int):
        if value < 0:
            raise grammar_error("a size must not be negative", text=context)
        if value > MAX_SIZE:
            raise grammar_error(f"a size of more than {format_size(MAX_SIZE)} (2^60 bytes)", text=context)
        return value
    number, unit = _split(value, kind="size", example="100MB", context=context)
    factor = SIZE_UNITS.get(unit or "B")
    if factor is None:
        raise _unknown_unit(unit, _SIZE_SUGGESTIONS, kind="size", context=context, value=value)
    total = _EXACT.multiply(number, Decimal(factor))
    if total > MAX_SIZE:
        raise _too_large_size(value, context)
    if total != total.to_integral_value():
        raise grammar_error(
            f"size {quote(value)} is not a whole number of bytes",
            text=context or value,
            part=value,
            hint="use a smaller unit",
        )
    return int(total)


def parse_size(value: str | int) -> int:
    """Exact bytes in a size such as ``100MB`` (10^8), ``100MiB`` (2^20·100), ``1.5GB`` or ``512``.

    Units: B, KB (kB), KiB, MB, MiB, GB, GiB, TB, TiB; a bare number is bytes.
    Raises :class:`~workbench.errors.CapabilityError` (a ``ValueError``) naming
    the bad part, with the nearest valid unit as ``suggestion``.
    """
    return size_bytes(value)


def format_size(size: int) -> str:
    """Canonical spelling of ``size`` bytes: the largest unit giving a whole number.

    ``100_000_000 -> '100MB'``, ``1_048_576 -> '1MiB'``, ``1536 -> '1536B'``.
    Always exact, so ``parse_size(format_size(n)) == n``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be a non-negative int, not {size!r}")
    for factor, unit in _SIZE_CANONICAL:
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def duration_seconds(value: str | int | float, *, context: str | None = None) -> Decimal:
    """Exact seconds in ``value`` as a ``Decimal``; ``context`` is for error messages."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise grammar_error(f"a duration must be text or a number, not {type(value).__name__}", text=context)
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            raise grammar_error(f"duration {value} is not a finite number", text=context, part=str(value))
        if value < 0:
            raise grammar_error("a duration must not be negative", text=context)
        if value > MAX_SECONDS:  # before str(): a huge int has more digits than str() will write
            raise grammar_error(f"a duration of more than {format_duration(MAX_SECONDS)} (a year)", text=context)
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    number, unit = _split(value, kind="duration", example="2s", context=context)
    factor = DURATION_UNITS.get(unit or "s")
    if factor is None:
        raise _unknown_unit(unit, list(DURATION_UNITS), kind="duration", context=context, value=value)
    seconds = _EXACT.multiply(number, factor)
    if seconds > MAX_SECONDS:
        raise _too_long(value, context)
    return seconds


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration such as ``2s``, ``500ms``, ``1.5m``, ``2min``, ``1h`` or ``3`` (seconds).

    Raises :class:`~workbench.errors.CapabilityError` naming the bad part, with
    the nearest valid unit as ``suggestion``.
    """
    return float(duration_seconds(value))


def format_duration(seconds: float | int | Decimal) -> str:
    """Canonical spelling of a duration: the largest unit (h, min, s, ms) giving a whole number.

    ``120 -> '2min'``, ``90 -> '90s'``, ``2.5 -> '2500ms'``; a value that is a whole number
    in no unit is written in the unit that spells it exactly with the fewest digits
    (``0.0005 -> '0.5ms'``, ``1.5s -> '1500ms'``).
    """
    exact = seconds if isinstance(seconds, Decimal) else Decimal(str(seconds))
    if not exact.is_finite() or exact < 0:
        raise ValueError(f"duration must be a finite non-negative number, not {seconds!r}")
    if exact == 0:
        return "0s"
    spellings = []
    for unit, factor in _DURATION_CANONICAL:
        count = _EXACT.divide(exact, factor)
        if count == count.to_integral_value():
            return f"{plain(count)}{unit}"
        if _EXACT.multiply(count, factor) == exact:  # a finite decimal in this unit
            spellings.append(f"{plain(count)}{unit}")
    # no whole number: the exact spelling with the fewest digits, so that the canonical text of
    # a duration that parsed (at most MAX_DIGITS digits in its own unit) parses again
    return min(spellings, key=lambda text: sum(ch.isdigit() for ch in text))


def percent(value: str, *, context: str | None = None) -> Decimal:
    """The number in ``'50%'`` as a ``Decimal`` (``50``)."""
    number, unit = _split(value, kind="percentage", example="50%", context=context)
    if unit != "%":
        raise grammar_error(f"{quote(value)} is not a percentage", text=context or value, part=value)
    return number


def share(value: str, *, context: str | None = None) -> Decimal:
    """The fraction of one in ``'50%'`` (``Decimal('0.5')``), exactly."""
    return _EXACT.divide(percent(value, context=context), Decimal(100))


def count(value: str, *, context: str | None = None) -> int:
    """A positive whole count such as ``1000``, ``1_000_000`` or ``1e9`` (fuel)."""
    stripped = value.strip(" ")
    try:
        if _COUNT.fullmatch(stripped) is None:
            raise InvalidOperation
        if sum(ch.isdigit() for ch in stripped.partition("e")[0].partition("E")[0]) > MAX_DIGITS:
            raise grammar_error(
                f"{quote(value)} has more than {MAX_DIGITS} digits",
                text=context or value,
                part=value,
                hint="write it like '1000000', '1_000_000' or '1e9'",
            )
        number = Decimal(stripped.replace("_", ""))
    except InvalidOperation:
        raise grammar_error(
            f"{quote(value)} is not a whole number",
            text=context or value,
            part=value,
            hint="write it like '1000000', '1_000_000' or '1e9'",
        ) from None
    if number > MAX_COUNT:
        raise grammar_error(
            f"{quote(value)} is too large (the most is {MAX_COUNT})", text=context or value, part=value
        )
    if number != number.to_integral_value():
        raise grammar_error(
            f"{quote(value)} is not a whole number", text=context or value, part=value, hint="fuel counts instructions"
        )
    if number <= 0:
        raise grammar_error(f"{quote(value)} must be positive", text=context or value, part=value)
    return int(number)
