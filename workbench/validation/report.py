"""Rows of expected-versus-measured and the table the validation commands print.

Why a row carries its own verdict: each check knows its tolerance (a memory cap hit
at 95-100% of its limit, a CPU share within 5% of its target, an exact fuel count),
so the table can say which row failed and why, and the command's exit code is
simply "did every row pass".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Row", "Report", "within"]


@dataclass(frozen=True)
class Row:
    """One check: what was tried, what should happen, what did, and whether that is close enough.

    - ``check``: a short name (``memory-cap-MB``)
    - ``capabilities``: the policy of the run(s), as the user would write it
    - ``expected``: the rule with its tolerance (``peak 95-100% of the cap``)
    - ``measured``: what happened (``99.6% (9.96 MB of 10 MB)``)
    - ``passed``: measured is within the tolerance
    """

    check: str
    capabilities: str
    expected: str
    measured: str
    passed: bool


def within(measured: float, target: float, tolerance: float) -> bool:
    """``measured`` is within ``tolerance`` (relative, 0.05 = 5%) of ``target``."""
    return abs(measured - target) <= tolerance * abs(target)


@dataclass
class Report:
    """The rows of one suite, printed as a table; ``exit_code`` is 0 only if every row passed."""

    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, check: str, capabilities: str, expected: str, measured: str, passed: bool) -> Row:
        row = Row(check, capabilities, expected, measured, bool(passed))
        self.rows.append(row)
        return row

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if not row.passed]

    @property
    def exit_code(self) -> int:
        return 0 if self.rows and not self.failed else 1

    def print(self, out: TextIO, max_width: int = 70) -> None:
        header = ("check", "capabilities", "expected", "measured", "ok")
        cells = [header] + [
            (r.check, r.capabilities, r.expected, r.measured, "yes" if r.passed else "NO") for r in self.rows
        ]
        widths = [min(max(len(row[i]) for row in cells), max_width) for i in range(len(header))]
        out.write(f"{self.title}\n\n")
        for row in (header, tuple("-" * w for w in widths), *cells[1:]):
            line = "  ".join(_clip(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row))
            out.write(line.rstrip() + "\n")
        if not self.rows:
            out.write("\nno checks ran\n")
        elif self.failed:
            names = ", ".join(r.check for r in self.failed)
            out.write(f"\n{len(self.failed)} of {len(self.rows)} checks outside tolerance: {names}\n")
        else:
            out.write(f"\nall {len(self.rows)} checks within tolerance\n")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
