"""A module call as a run reports it: :class:`CallRecord`, a tree (a callee's own calls below it),
and its one rendering, walked once (:func:`call_walk`) for the text and the HTML alike."""

from __future__ import annotations

import html
from dataclasses import dataclass

__all__ = ["CallRecord", "render_calls", "call_walk", "calls_text", "calls_html", "SHOWN_CALLS"]

#: most calls a summary lists (a guest may call in a loop); the rest are counted on one line
SHOWN_CALLS = 40


@dataclass(frozen=True)
class CallRecord:
    """One ``module:call`` a guest made: whom it called, the caller chain, how it ended.

    - ``module``: the callee; ``chain``: the callers from the outermost, then the callee;
    - ``ok``: the callee ran and exited 0; ``error``: ``denied``, ``escalation``, ``cycle``,
      ``depth``, ``invalid``, ``too_large``, ``trap``, ``failed`` ... or None;
    - ``reason``: why it ended as it did; ``wall_seconds``: the callee's run, charged to the caller;
    - ``calls``: the callee's own calls."""

    module: str
    chain: tuple[str, ...]
    ok: bool
    error: str | None = None
    reason: str = ""
    wall_seconds: float = 0.0
    calls: tuple[CallRecord, ...] = ()

    @property
    def outcome(self) -> str:
        """How the call ended, stable (no times): ``ok``, ``ok, 1 refusal``, ``denied: <reason>``."""
        if self.ok:
            return "ok" + (f", {self.reason[len('exited 0 ('):-1]}" if self.reason.startswith("exited 0 (") else "")
        return f"{self.error}: {self.reason}"

    def lines(self, depth: int = 0) -> list[str]:
        """This call and those below it, as text lines indented from ``depth``."""
        return calls_text((self,), depth, limit=None)


def call_walk(calls: tuple[CallRecord, ...], depth: int = 1, limit: int | None = SHOWN_CALLS,
              ) -> tuple[list[tuple[int, CallRecord]], int]:
    """The calls in reading order (each caller before its callees) as (depth, record), at most
    ``limit`` of them, and how many more there are."""
    shown: list[tuple[int, CallRecord]] = []
    hidden = 0
    stack = [(depth, call) for call in reversed(calls)]
    while stack:
        level, call = stack.pop()
        if limit is not None and len(shown) >= limit:
            hidden += 1
        else:
            shown.append((level, call))
        stack.extend((level + 1, sub) for sub in reversed(call.calls))
    return shown, hidden


def _more(hidden: int) -> str:
    return f"… {hidden} more call{'s' if hidden != 1 else ''}"


def calls_text(calls: tuple[CallRecord, ...], depth: int = 1, limit: int | None = SHOWN_CALLS) -> list[str]:
    """The calls as text lines: ``└─ parser: ok``, two spaces deeper per level."""
    shown, hidden = call_walk(calls, depth, limit)
    lines = [f"{'  ' * level}└─ {call.module}: {call.outcome}" for level, call in shown]
    if hidden:
        lines.append(f"{'  ' * depth}{_more(hidden)}")
    return lines


def calls_html(calls: tuple[CallRecord, ...], limit: int | None = SHOWN_CALLS) -> str:
    """The same walk as :func:`calls_text`, as nested lists (a failed call in red)."""
    shown, hidden = call_walk(calls, 1, limit)
    parts: list[str] = []
    open_lists = 0
    for level, call in shown:
        if level > open_lists:  # a callee of the previous call (the walk goes one level at a time)
            parts.append("<ul class='workbench-calls' style='margin:0;padding-left:1.2em;list-style:none'>")
            open_lists = level
        else:
            parts.append("</li>")
            while open_lists > level:
                parts.append("</ul></li>")
                open_lists -= 1
        colour = "#2e7d32" if call.ok else "#c62828"
        parts.append(f"<li>└─ <b>{html.escape(call.module)}</b>: "
                     f"<span style='color:{colour}'>{html.escape(call.outcome)}</span>")
    while open_lists > 0:
        parts.append("</li></ul>")
        open_lists -= 1
    if hidden:
        parts.append(f"<div style='color:#555'>{html.escape(_more(hidden))}</div>")
    return "".join(parts)


def render_calls(caller: str, calls: tuple[CallRecord, ...]) -> str:
    """The call tree as text (stable: no times), the caller at the top; every call listed."""
    return "\n".join([caller, *calls_text(calls, limit=None)])
