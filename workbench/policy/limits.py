"""Resource ceilings: :class:`Limits`, and how limit capabilities map onto it.

Why a separate value type: the runtime, the CLI and ``Sandbox(limits=...)``
all need ceilings as numbers, combined field by field (a called module runs
under the tighter of its own and its caller's limits; a sandbox fills what a
policy leaves open with defaults), without re-reading capability strings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from workbench.errors import PolicyError
from workbench.policy import units
from workbench.policy.capability import Capability

__all__ = ["Limits", "limit_field", "limit_value", "limit_sources", "FIELD_DOMAINS"]

_INT_FIELDS = ("memory_bytes", "fuel", "output_bytes", "stack_bytes")
_SIZE_FIELDS = {"memory": "memory_bytes", "output": "output_bytes", "stack": "stack_bytes"}
#: the most each field may be: the bounds the capability grammar keeps to (units.MAX_*)
_MAXIMA: dict[str, int | float] = {
    "memory_bytes": units.MAX_SIZE,
    "output_bytes": units.MAX_SIZE,
    "stack_bytes": units.MAX_SIZE,
    "fuel": units.MAX_COUNT,
    "cpu_share": 1.0,
    "cpu_seconds": float(units.MAX_SECONDS),
    "wall_seconds": float(units.MAX_SECONDS),
}


@dataclass(frozen=True)
class Limits:
    """Ceilings for one run; every field is optional and None means "not set".

    Every value is finite and within the bounds a capability may state (``units.MAX_*``).

    - ``memory_bytes``: linear memory cap, in bytes
    - ``cpu_share``: share of one core over the run, in (0, 1]
    - ``cpu_seconds``: CPU-time budget
    - ``wall_seconds``: wall-clock deadline
    - ``fuel``: instruction budget (deterministic)
    - ``output_bytes``: stdout+stderr cap
    - ``stack_bytes``: wasm stack cap
    """

    memory_bytes: int | None = None
    cpu_share: float | None = None
    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    fuel: int | None = None
    output_bytes: int | None = None
    stack_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PolicyError(f"Limits.{field.name} must be a number, not {value!r}")
            if field.name in _INT_FIELDS and not isinstance(value, int):
                raise PolicyError(f"Limits.{field.name} must be a whole number, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise PolicyError(f"Limits.{field.name} must be finite, got {value!r}", hint="leave it None for no limit")
            if value < 0:
                raise PolicyError(f"Limits.{field.name} must not be negative, got {value!r}")
            if value > _MAXIMA[field.name]:
                raise PolicyError(
                    f"Limits.{field.name} must be at most {_MAXIMA[field.name]!r}, got {value!r}",
                    hint="leave it None for no limit",
                )
        if self.cpu_share is not None and not 0 < self.cpu_share <= 1:
            raise PolicyError(
                f"Limits.cpu_share must be in (0, 1], got {self.cpu_share!r}", hint="0.5 is half of one core"
            )

    def min(self, other: Limits) -> Limits:
        """Field-wise the tighter of ``self`` and ``other`` (None is no limit, so the other wins)."""
        merged = {}
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            merged[field.name] = theirs if mine is None else mine if theirs is None else min(mine, theirs)
        return Limits(**merged)

    def with_defaults(self, defaults: Limits) -> Limits:
        """``self`` with every unset field taken from ``defaults`` (set fields are kept, even if larger)."""
        return Limits(
            **{
                field.name: getattr(defaults, field.name)
                if getattr(self, field.name) is None
                else getattr(self, field.name)
                for field in dataclasses.fields(self)
            }
        )

    @classmethod
    def from_capabilities(cls, capabilities: Iterable[Capability]) -> Limits:
        """The ceilings stated by limit capabilities; the smaller wins when one is stated twice."""
        values: dict[str, int | float] = {}
        for field, (value, _) in _tightest(capabilities).items():
            values[field] = int(value) if field in _INT_FIELDS else float(value)
        return cls(**values)  # type: ignore[arg-type]


#: the capability domain that sets each :class:`Limits` field (``cpu`` sets two)
FIELD_DOMAINS: dict[str, str] = {
    "memory_bytes": "memory",
    "output_bytes": "output",
    "stack_bytes": "stack",
    "cpu_share": "cpu",
    "cpu_seconds": "cpu",
    "wall_seconds": "time",
    "fuel": "fuel",
}


def _tightest(capabilities: Iterable[Capability]) -> dict[str, tuple[Decimal, Capability]]:
    best: dict[str, tuple[Decimal, Capability]] = {}
    for cap in capabilities:
        if not cap.is_limit:
            continue
        field, value = limit_field(cap), limit_value(cap)
        if field not in best or value < best[field][0]:
            best[field] = (value, cap)
    return best


def limit_sources(capabilities: Iterable[Capability]) -> dict[str, Capability]:
    """The rule that set each :class:`Limits` field: the tightest limit capability for it.

    ``Limits`` keeps numbers only; a violation must name the rule it broke, and under
    ``cpu:limit:10% cpu:limit:200ms`` that is a different rule for the share and the budget."""
    return {field: cap for field, (_, cap) in _tightest(capabilities).items()}


def limit_field(cap: Capability) -> str:
    """The :class:`Limits` field a limit capability sets (``cpu:limit`` sets one of two)."""
    if cap.domain in _SIZE_FIELDS:
        return _SIZE_FIELDS[cap.domain]
    if cap.domain == "cpu":
        return "cpu_share" if (cap.scope or "").endswith("%") else "cpu_seconds"
    if cap.domain == "time":
        return "wall_seconds"
    if cap.domain == "fuel":
        return "fuel"
    raise ValueError(f"{cap} is not a limit")


def limit_value(cap: Capability) -> Decimal:
    """The exact value of a limit capability, in the unit of its :class:`Limits` field."""
    field = limit_field(cap)
    scope = cap.scope or ""
    if field == "cpu_share":
        return units.share(scope)
    if field in ("cpu_seconds", "wall_seconds"):
        return units.duration_seconds(scope)
    if field == "fuel":
        return Decimal(units.count(scope))
    return Decimal(units.size_bytes(scope))
