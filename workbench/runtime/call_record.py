"""A module call as a run reports it: :class:`CallRecord`, a tree (a callee's own calls below it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CallRecord", "render_calls"]


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

    def lines(self, depth: int = 0) -> list[str]:
        outcome = ("ok" + (f", {self.reason[len('exited 0 ('):-1]}" if self.reason.startswith("exited 0 (") else "")
                   if self.ok else f"{self.error}: {self.reason}")
        own = [f"{'  ' * depth}└─ {self.module}: {outcome}"]
        for call in self.calls:
            own.extend(call.lines(depth + 1))
        return own


def render_calls(caller: str, calls: tuple[CallRecord, ...]) -> str:
    """The call tree as text (stable: no times), the caller at the top."""
    lines = [caller]
    for call in calls:
        lines.extend(call.lines(1))
    return "\n".join(lines)
