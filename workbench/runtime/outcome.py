"""How a run ended, decided in one place: :func:`classify` gives an :class:`Outcome`.

Every view asks this one function (``RunResult.outcome``, its text and HTML, the CLI,
the demo's table, the validation suites, the notebook), so no two of them can word or
rank the same run differently.  The order, and why:

1. the audit log failed: the run was stopped for it, whatever else happened;
2. a stop (``kill``): a limit reached (``stopped (time)``), a violation under
   ``on_violation="kill"``, or a cancel: a cancelled run says who stopped it
   (``stopped: interrupted by the user``), not a category name;
3. a fault: the guest's own bug (a trap);
4. a violation refused (``deny``) and the run went on;
5. the exit code.

Learn mode (``on_violation="audit"``) is said as such: its run is never plain ``ok``,
since everything it did was allowed on purpose (``ok · learn mode: 3 refusals recorded``).

``code`` is the compact form the validation suites compare against
(``filesystem/deny``, ``fault:unreachable``, ``exit:1``, ``ok``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from ..events import Event

__all__ = ["Outcome", "classify", "is_learned"]

Kind = Literal["ok", "exit", "violation", "stopped", "cancelled", "fault", "audit-failed"]


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``kind`` for code, ``label`` for people, ``code`` for test tables."""

    kind: Kind
    label: str
    code: str
    learn_mode: bool = False
    recorded: int = 0  # learn mode: accesses a deny policy would have refused

    @property
    def failed(self) -> bool:
        return self.kind != "ok"

    def __str__(self) -> str:
        return self.label


#: categories whose ``audit`` decision means only "written down", never learn mode: a trap (the guest's
#: own fault), the interpreter's housekeeping look-ups, the audit log's own notes
_RECORD_ONLY = ("trap", "runtime", "lifecycle")


def is_learned(event: Event) -> bool:
    """A learn-mode record: allowed and recorded, refused under a deny policy."""
    return event.decision == "audit" and event.category not in _RECORD_ONLY


def _count(event: Event) -> int:
    repeated = event.detail.get("repeated", event.detail.get("dropped"))
    return repeated if isinstance(repeated, int) and repeated > 0 else 1


def classify(events: Iterable[Event], *, exit_code: int | None, fault_kind: str | None = None,
             audit_failed: bool = False, learn_mode: bool | None = None) -> Outcome:
    """The one classification of a run from its events, exit code, fault and audit state.

    ``learn_mode`` None: read from the run's start record when it says, else inferred from
    ``audit`` decisions."""
    events = list(events)
    violations = [e for e in events if e.is_violation]
    recorded = sum(_count(e) for e in events if is_learned(e))
    if learn_mode is None:
        start = next((e for e in events if e.category == "lifecycle" and e.action == "start"), None)
        said = start.detail.get("on_violation") if start is not None else None
        learn_mode = said == "audit" if isinstance(said, str) else recorded > 0
    first = violations[0] if violations else None
    if first is not None:
        code = f"{first.category}/{first.decision}"
    elif fault_kind is not None:
        code = f"fault:{fault_kind}"
    else:
        code = "ok" if exit_code == 0 else f"exit:{exit_code}"
    stops = [e for e in violations if e.decision == "kill"]
    kind: Kind
    if audit_failed:
        kind, label = "audit-failed", "stopped (audit log failed)"
    elif stops and stops[0].category == "lifecycle" and stops[0].action == "cancel":
        kind, label = "cancelled", f"stopped: {stops[0].reason or 'cancelled'}"
    elif stops:
        kind, label = "stopped", f"stopped ({stops[0].category})"
    elif fault_kind is not None:
        kind, label = "fault", f"fault ({fault_kind})"
    elif violations:
        kind, label = "violation", "violation"
    elif exit_code == 0:
        kind, label = "ok", "ok"
    else:
        kind, label = "exit", f"exit {exit_code}"
    if learn_mode:
        label += f" · learn mode: {recorded} refusal{'s' if recorded != 1 else ''} recorded, none enforced"
    return Outcome(kind=kind, label=label, code=code, learn_mode=learn_mode, recorded=recorded)
