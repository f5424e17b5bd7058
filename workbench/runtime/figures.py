"""Figures a guest hands back (matplotlib, scientific runtime): checked, capped, kept as PNG bytes.

The channel is the guest's stdout, so it is already under ``output:limit`` (a figure line the
cap cut is never seen whole, and is dropped); nothing goes through a host path, granted or not.
The guest driver draws each open pyplot figure into memory and writes it as one base64 line
after a marker; the language's filter keeps those lines out of every view
(:mod:`workbench.languages.scipython`).  Here each one must also be:

- valid base64 of a whole PNG (its 8-byte signature, its IEND end): the guest controls these
  bytes, so a line it forged is dropped, never shown as an image of something else;
- at most :data:`MAX_FIGURE_BYTES`, and at most :data:`MAX_FIGURES` figures and
  :data:`MAX_TOTAL_BYTES` in all per run.

Every figure dropped is recorded, one ``output``/``figure`` event each (``deny``, with why).
"""

from __future__ import annotations

import base64
import binascii

from ..languages import Program
from .context import RunContext

__all__ = ["take_figures", "MAX_FIGURES", "MAX_FIGURE_BYTES", "MAX_TOTAL_BYTES", "PNG_SIGNATURE"]

MAX_FIGURES = 16
MAX_FIGURE_BYTES = 5 * 10**6
MAX_TOTAL_BYTES = 20 * 10**6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: a PNG's last chunk: IEND, empty, with its CRC
PNG_END = b"IEND\xaeB`\x82"


def _check(payload: bytes, kept: int, total: int) -> tuple[bytes | None, str]:
    if kept >= MAX_FIGURES:
        return None, f"more than {MAX_FIGURES} figures in one run"
    try:
        data = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None, "not base64 (a figure line the guest wrote itself, or one the output cap cut)"
    if not data.startswith(PNG_SIGNATURE):
        return None, "not a PNG image"
    if not data.endswith(PNG_END):
        return None, "a PNG cut short (no IEND chunk)"
    if len(data) > MAX_FIGURE_BYTES:
        return None, f"{len(data):,} bytes, over the {MAX_FIGURE_BYTES:,} a figure may have"
    if total + len(data) > MAX_TOTAL_BYTES:
        return None, f"the run's figures would pass {MAX_TOTAL_BYTES:,} bytes"
    return data, ""


def take_figures(program: Program, stdout: bytes, run: RunContext) -> tuple[bytes, tuple[bytes, ...]]:
    """``stdout`` without its figure lines, and the figures that pass the checks (PNG bytes)."""
    if program.read_figures is None:
        return stdout, ()
    rest, payloads = program.read_figures(stdout)
    figures: list[bytes] = []
    total = 0
    for index, payload in enumerate(payloads):
        data, why = _check(payload, len(figures), total)
        if data is None:
            run.emit("output", "figure", "deny", target=f"figure {index + 1}", reason=f"figure dropped: {why}",
                     detail={"payload_bytes": len(payload)})
            continue
        figures.append(data)
        total += len(data)
    return rest, tuple(figures)
