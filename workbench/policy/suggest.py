"""Nearest-word suggestions and the one way this package words a grammar error.

Why one helper: every "unknown X" error should read the same
(``unknown capability domain 'filesytem' in 'filesytem:read:/docs' — did you mean
'filesystem'?``) and carry the same structured data (``text``, ``part``,
``suggestion``), so the CLI, notebooks and tests can rely on it.
"""

from __future__ import annotations

import difflib
from typing import Iterable

from workbench.errors import CapabilityError

__all__ = ["nearest", "grammar_error", "quote"]

_QUOTE_MAX = 200


def quote(value: str) -> str:
    """Single-quote ``value`` for a message (``repr`` would switch quote styles).

    Characters that do not print (controls, U+2028, lone surrogates, ...) are written
    as escapes, and a very long value is shortened in the middle, so a message stays
    one readable line whatever the input held.
    """
    if len(value) > _QUOTE_MAX:
        value = f"{value[:_QUOTE_MAX - 30]}...({len(value):,} characters)...{value[-10:]}"
    if not value.isprintable():
        value = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in value)
    return f"'{value}'"


def nearest(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The closest valid word to ``word`` (case-insensitive), or None.

    Case-insensitive because ``mb`` for ``MB`` or ``Filesystem`` for
    ``filesystem`` are the commonest slips; the suggestion keeps the valid
    spelling.
    """
    by_lower: dict[str, str] = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def grammar_error(
    message: str,
    *,
    text: str | None,
    part: str | None = None,
    suggestion: str | None = None,
    hint: str | None = None,
) -> CapabilityError:
    """Build (not raise) a :class:`CapabilityError` worded the house way.

    ``message`` names the problem; `` in '<text>'`` and `` — did you mean
    '<suggestion>'?`` are appended when known, so callers never hand-format them.
    """
    full = message
    if text is not None and text != part:
        full += f" in {quote(text)}"
    if suggestion is not None:
        full += f" — did you mean {quote(suggestion)}?"
    return CapabilityError(full, text=text, part=part, suggestion=suggestion, hint=hint)
