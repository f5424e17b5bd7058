"""What a run produced: :class:`RunResult`, its :class:`Usage` and any :class:`Fault`."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SuggestionWarning
from ..events import Event, Sample, SubscriberFailure, Violation
from ..policy import Limits, Policy
from .call_record import CallRecord, render_calls
from .mounts import Mount
from .outcome import Outcome, classify
from .render import result_html, result_text
from .sizes import human_size

if TYPE_CHECKING:  # a result is made by a run, which has a plan; nothing here needs the class
    from .plan import RunPlan

__all__ = ["RunResult", "Usage", "Fault", "PolicySuggestion", "human_size"]


@dataclass(frozen=True)
class Usage:
    """Resources a run used.  ``memory_peak_bytes`` is the guest's linear memory
    (which never shrinks, so its final size is its peak)."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    memory_peak_bytes: int = 0
    memory_limit_bytes: int | None = None
    fuel_used: int | None = None
    output_bytes: int = 0
    output_dropped_bytes: int = 0
    throttled_seconds: float = 0.0
    cpu_share_limit: float | None = None

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second over the run (1.0 = one full core)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass(frozen=True)
class Fault:
    """A trap that is the guest's own bug, not a policy decision (unreachable, out of bounds, ...),
    or (``trapped=False``, kind ``exception``) the uncaught exception a Python guest reported.

    ``source``: ``(line number, text)`` of the guest's source around ``line``, the innermost
    frame in the guest's own code (C, Python), when known.  ``hint``: what to do about it, when the
    sandbox knows; ``detail``: wasmtime's own text, when ``message`` retells it (for forensics)."""

    kind: str
    message: str
    backtrace: tuple[str, ...] = ()
    source: tuple[tuple[int, str], ...] = ()
    line: int = 0
    trapped: bool = True
    hint: str = ""
    detail: str = ""

    def __str__(self) -> str:
        trace = "".join(f"\n    at {frame}" for frame in self.backtrace)
        return f"{self.kind}: {self.message}{trace}"


@dataclass(frozen=True)
class PolicySuggestion:
    """Learn mode's answer: ``policy`` grants what the run used; ``omitted`` lists guest paths it
    used that no capability can name exactly (they are not granted)."""

    policy: Policy
    omitted: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """The outcome of one :meth:`Sandbox.run`.

    ``ok`` is true only when the module exited with code 0, with no violation, no
    fault, and an audit log (if any) that recorded everything.  ``events`` is the
    whole event stream of the run; ``violations`` are derived from it, so the two
    never disagree.  ``subscriber_failures`` lists every subscriber that raised
    during the run; ``audit_failure`` is the first failure of a critical one (the
    audit log), which stopped the run.
    """

    run_id: str
    module: str
    module_sha256: str
    exit_code: int | None
    stdout: str
    stderr: str
    events: tuple[Event, ...]
    usage: Usage
    mounts: tuple[Mount, ...]
    policy: Policy
    fault: Fault | None = None
    value: Any = None
    samples: tuple[Sample, ...] = field(default=(), repr=False)
    stdout_bytes: bytes = field(default=b"", repr=False)
    stderr_bytes: bytes = field(default=b"", repr=False)
    subscriber_failures: tuple[SubscriberFailure, ...] = ()
    plan: RunPlan | None = field(default=None, repr=False, compare=False)
    #: debugging, each only when asked for (``Sandbox.run(trace=, keep_memory=, profile=)``): the recorded
    #: calls (read as ``trace``), a read-only MemorySnapshot, a Profile
    call_log: Any = field(default=None, repr=False, compare=False)
    memory: Any = field(default=None, repr=False, compare=False)
    profile: Any = field(default=None, repr=False, compare=False)
    #: the module calls this run made (each with its own calls below it): a tree, see call_tree()
    calls: tuple[CallRecord, ...] = field(default=(), repr=False)
    #: figures the guest drew (matplotlib, scientific runtime), as PNG bytes, checked and capped (runtime/figures.py)
    figures: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def limits(self) -> Limits | None:
        """The limits the run ran under (the policy's, with the sandbox's defaults filled in)."""
        return None if self.plan is None else self.plan.limits

    def call_tree(self) -> str:
        """The module calls this run made, as an indented tree (``parser: ok``, ``wordcount: denied: ...``)."""
        return render_calls(self.module, self.calls)

    @property
    def trace(self) -> Any:
        """The call trace (``Sandbox.run(trace=True)``): a pandas DataFrame, one row per WASI call in
        order, decoded on first use; None when the run was not traced."""
        return None if self.call_log is None else self.call_log.frame

    @property
    def violations(self) -> list[Violation]:
        return [Violation.from_event(e) for e in self.events if e.is_violation]

    @property
    def audit_failure(self) -> SubscriberFailure | None:
        """Why the audit log (a critical subscriber) stopped recording, which stopped the run; or None."""
        return next((f for f in self.subscriber_failures if f.critical), None)

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and self.fault is None and self.audit_failure is None
                and not any(e.is_violation for e in self.events))

    def classify(self) -> Outcome:
        """How the run ended (:func:`~workbench.runtime.outcome.classify`, the one place that decides)."""
        return classify(self.events, exit_code=self.exit_code,
                        fault_kind=None if self.fault is None or not self.fault.trapped else self.fault.kind,
                        audit_failed=self.audit_failure is not None)

    @property
    def outcome(self) -> str:
        """:meth:`classify`'s label: ``ok``, ``exit N``, ``violation``, ``stopped (time)``,
        ``stopped: interrupted by the user``, ``fault (unreachable)``; learn mode says so."""
        return self.classify().label

    def suggestion(self) -> PolicySuggestion:
        """The smallest policy that grants what this run used, and the paths it could not name.

        Meant for learn mode (``on_violation="audit"``): every file the module opened,
        created or changed successfully becomes a grant on exactly that path
        (``filesystem:write:`` when it wrote, else ``filesystem:read:``); folders opened
        only to walk through them, and attempts that failed (a probe for a missing
        config file), grant nothing.  The run's other capabilities (limits, env, ...)
        are kept.  Run the module again under this policy with ``on_violation="deny"``.

        Guest paths are data, never grammar: a name the capability grammar cannot state
        literally (glob characters, ``;``, spaces, commas, control characters) would become a
        glob, a parameter such as ``;host=``, or an error, so it is left out and listed in
        ``omitted`` instead.
        """
        from ..policy.filesystem import literal_grant

        base = Policy.parse(self.policy)  # a Policy is taken as it is
        keep = [str(c) for c in base.capabilities if c.domain != "filesystem"]
        reads: set[str] = set()
        writes: set[str] = set()
        for event in self.events:
            if (
                event.category != "filesystem"
                or event.action == "mount"
                or event.decision not in ("allow", "audit")
                or event.errno != 0
                or not event.resolved
                or event.resolved == "/"
            ):
                continue
            if event.detail.get("rights") == "write":
                writes.add(event.resolved)
            elif event.action != "open" or not int(event.detail.get("oflags", 0)) & 2:  # not a folder walk
                reads.add(event.resolved)
        grants = []
        omitted = []
        for path, action in [(p, "write") for p in sorted(writes)] + [(p, "read") for p in sorted(reads - writes)]:
            grant = literal_grant(action, path)
            if grant is None:
                omitted.append(path)
            else:
                grants.append(grant)
        return PolicySuggestion(Policy.parse([*keep, *grants]), tuple(omitted))

    def suggested_policy(self) -> Policy:
        """:meth:`suggestion`'s policy; warns (:class:`~workbench.errors.SuggestionWarning`) when
        paths were left out because no capability names them exactly."""
        suggestion = self.suggestion()
        if suggestion.omitted:
            warnings.warn(
                f"suggested policy: {len(suggestion.omitted)} path(s) left out, since no capability names them "
                f"exactly: {', '.join(repr(p) for p in suggestion.omitted)}",
                SuggestionWarning,
                stacklevel=2,
            )
        return suggestion.policy

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, what ``workbench run --json`` prints."""
        return {
            "run_id": self.run_id,
            "module": self.module,
            "module_sha256": self.module_sha256,
            "ok": self.ok,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "policy": str(self.policy),
            "limits": None if self.plan is None else {k: v for k, v in vars(self.plan.limits).items() if v is not None},
            "mounts": [asdict(m) for m in self.mounts],
            "usage": asdict(self.usage),
            "fault": None if self.fault is None else asdict(self.fault),
            "violations": [
                {"kind": v.kind, "capability": v.capability, "target": v.target, "resolved": v.resolved,
                 "message": v.message, "decision": v.decision}
                for v in self.violations
            ],
            "events": [e.to_dict() for e in self.events],
            "value": self.value,
            **({"calls": [asdict(c) for c in self.calls]} if self.calls else {}),
            **({"figures": [{"format": "png", "bytes": len(f)} for f in self.figures]} if self.figures else {}),
            "audit_failure": None if self.audit_failure is None else str(self.audit_failure),
            "subscriber_failures": [
                {"subscriber": f.subscriber, "critical": f.critical, "error": f.error, "count": f.count}
                for f in self.subscriber_failures
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str, **kwargs)

    def __repr__(self) -> str:
        return result_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Stable ``text/plain`` and rich ``text/html`` (:mod:`.render`): what notebooks show."""
        return {"text/plain": result_text(self), "text/html": result_html(self)}
