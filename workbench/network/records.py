"""How a request becomes an event: :func:`record` (category ``network``, action ``request``).

One event per hop, allowed or not, so a redirect chain reads as its hops.  ``target`` is the
URL as checked (canonical; a malformed one as the guest wrote it, cut to 300 characters),
``resolved`` the address connected to, ``capability`` the rule that decided, ``reason`` the
sentence for a denial or failure; ``detail`` holds the method, status, bytes out and in, the
time in milliseconds, ``truncated``, the hop and the error kind.  Never a secret's value: the
text passes :meth:`Secrets.scrub`, and ``detail`` lists only the *names* of secrets substituted.
"""

from __future__ import annotations

from typing import Any, Protocol

from workbench.events import Event
from workbench.network.secrets import Secrets
from workbench.policy.capability import Capability

__all__ = ["Emit", "record", "shown"]


class Emit(Protocol):
    """Record one event of the run (what ``RunContext.emit`` is; the run adds its id and module)."""

    def __call__(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event: ...


def shown(text: object, limit: int = 300) -> str | None:
    """A guest's text as it may be recorded: cut to ``limit`` characters, control characters escaped."""
    if not isinstance(text, str):
        return None
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


def record(
    emit: Emit,
    values: list[tuple[str, str]],
    *,
    decision: str,
    target: str | None,
    detail: dict[str, Any],
    resolved: str | None = None,
    rule: Capability | None = None,
    reason: str | None = None,
) -> Event:
    """Emit one ``network``/``request`` event, with every secret value in its text replaced."""
    return emit(
        "network",
        "request",
        decision,
        target=Secrets.scrub(target, values) if target is not None else None,
        resolved=resolved,
        capability=str(rule) if rule is not None else None,
        reason=Secrets.scrub(reason, values) if reason is not None else None,
        detail=detail,
    )
