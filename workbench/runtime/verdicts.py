"""What a run's ending means: violations (limits) versus faults (the guest's own bugs).

Pure translation from what wasmtime reported (a trap, its code, its message) and
what the run measured into :class:`~workbench.events.Event` objects, so the rules
that name a violation live in one place.  Each takes the run's :class:`~.context.RunContext`
(its plan, its record, its stop); the rule a violation names is the one that set the limit
(:meth:`~.plan.RunPlan.rule_for`).
"""

from __future__ import annotations

import time

from ..languages.messages import clean_wasmtime_message, root_cause
from ..policy import format_size
from .context import RunContext
from .deadline import KILL_PREFIX
from .engine import STORE_CAPS, store_cap_refusal
from .linear_memory import Refusal
from .result import Fault, human_size
from .traps import backtrace_of
from .wasi_traps import wasi_argument_trap

__all__ = [
    "classify_trap",
    "report_memory_refusal",
    "report_table_refusal",
    "report_output_cap",
    "report_overrun",
    "seconds",
    "PAGE",
]

PAGE = 65536


def seconds(value: float) -> str:
    return f"{value:g}s"


def classify_trap(
    run: RunContext,
    exc: BaseException,
    during_instantiate: bool,
    *,
    cpu_used: float = 0.0,
    memory_refusal: Refusal | None = None,
    stack_bytes: int | None = None,
) -> Fault | None:
    """Turn a trap into a violation event (a limit) or a :class:`Fault` (the guest's bug).

    Limits that stop a run (time, CPU, fuel, stack, a memory or table cap at instantiation)
    become ``kill`` events; stops that already recorded their own event (the guard, the
    output cap) add nothing; anything else is the guest's own fault, kept with its backtrace.
    ``cpu_used``: CPU seconds the guest used; ``memory_refusal``: the last grow refused;
    ``stack_bytes``: the engine's wasm stack, when it is not the policy's (an interpreter's own).
    """
    text = clean_wasmtime_message(str(exc))
    plan = run.plan
    limits = plan.limits
    if KILL_PREFIX in text:
        if f"{KILL_PREFIX}guard" in text:
            return None  # the guard recorded the kill (with its rule) before trapping
        kind = run.watch.stop_kind or "cancel"
        if kind == "time":
            wall = time.monotonic() - run.started
            run.emit(
                "time",
                "deadline",
                "kill",
                capability=plan.rule_for("wall_seconds"),
                reason=f"wall-clock limit of {seconds(limits.wall_seconds or 0)} reached",
                detail={"limit_seconds": limits.wall_seconds, "wall_seconds": round(wall, 6)},
            )
        elif kind == "cpu":
            budget = limits.cpu_seconds or 0
            run.emit(
                "cpu",
                "budget",
                "kill",
                capability=plan.rule_for("cpu_seconds"),
                reason=f"CPU-time budget of {seconds(budget)} used up",
                detail={"limit_seconds": budget, "cpu_seconds": round(cpu_used, 6)},
            )
        elif kind == "cancel":
            run.emit("lifecycle", "cancel", "kill", reason=run.watch.stop_reason or "run cancelled")
        # output (and later guard) stops already emitted their event when they asked to stop
        return None
    code = getattr(exc, "trap_code", None)
    code_name = code.name if code is not None else None
    if code_name == "OUT_OF_FUEL":
        run.emit(
            "fuel",
            "exhausted",
            "kill",
            capability=plan.rule_for("fuel"),
            reason=f"instruction budget of {limits.fuel:,} fuel used up",
            detail={"limit": limits.fuel},
        )
        return None
    if code_name == "STACK_OVERFLOW":
        own = stack_bytes is not None and stack_bytes != limits.stack_bytes  # the runtime's stack, not a rule's
        run.emit(
            "stack",
            "overflow",
            "kill",
            capability=None if own else plan.rule_for("stack_bytes"),
            reason=(
                f"call stack exceeded {format_size((stack_bytes if own else limits.stack_bytes) or 0)} (runaway "
                "recursion?); " + ("the language runtime's own stack" if own else
                                   "if the depth is legitimate, grant a larger stack:limit")
            ),
            detail={"backtrace": list(backtrace_of(text)[:5])},
        )
        return None
    cause = root_cause(text)
    if during_instantiate and "exceeds memory limits" in cause:
        cap = limits.memory_bytes or 0
        requested = memory_refusal.requested_bytes if memory_refusal is not None else None
        asked = f" of {human_size(requested)}" if requested is not None else ""
        run.emit(
            "memory",
            "instantiate",
            "kill",
            capability=plan.rule_for("memory_bytes"),
            reason=f"the module's initial memory{asked} does not fit the cap of {human_size(cap)}",
            detail={"limit_bytes": cap, "requested_bytes": requested, "current_bytes": 0, "cause": cause},
        )
        return None
    refusal = store_cap_refusal(cause) if during_instantiate else None
    if refusal is not None:  # a table or instance count over the sandbox's caps
        run.emit("memory", "instantiate", "kill", reason=refusal, detail={"cause": cause})
        return None
    kind = code_name.lower() if code_name else "trap"
    trace = backtrace_of(text)
    located = next((frame for frame in trace if frame.endswith(")") and " (" in frame), None)
    if located is not None:  # a module with debug info (C built with -g): say where, e.g. f (prog.c:12:5)
        cause = f"{cause} in {located}"
    odd = wasi_argument_trap(text, cause) if kind == "trap" else None
    if odd is not None:  # a WASI call's argument outside its type: told in our words, wasmtime's kept
        said = " | ".join(line.strip() for line in text.split("Caused by:", 1)[-1].strip().splitlines())
        fault = Fault(kind=kind, message=odd.message, backtrace=trace, hint=odd.hint, detail=said)
        detail = {"backtrace": list(trace[:10]), "invalid_argument": odd.call or "wasi", "wasmtime": said}
        run.emit("trap", kind, "audit", reason=odd.message, detail=detail)
        return fault
    fault = Fault(kind=kind, message=cause, backtrace=trace)
    run.emit("trap", kind, "audit", reason=cause, detail={"backtrace": list(fault.backtrace[:10])})
    return fault


def report_memory_refusal(run: RunContext, refusal: Refusal) -> None:
    """Record one refused ``memory.grow`` (a :class:`~.linear_memory.Refusal`) as a violation.

    Called by the sandbox's memory creator on the guest's thread, inside the grow: the
    guest's ``memory.grow`` returns -1 (its allocator sees NULL, Python raises
    ``MemoryError``) and the run goes on, unless ``on_violation="kill"``, which stops it
    at the next epoch check.
    """
    cap = refusal.limit_bytes
    requested, current = refusal.requested_bytes, refusal.current_bytes
    if refusal.reason == "cap":
        reason = (
            f"memory.grow refused: asked for {human_size(requested)} of linear memory "
            f"(+{human_size(requested - current)} on {human_size(current)}), over the cap of {human_size(cap or 0)}"
        )
    else:
        reason = f"memory.grow refused: the host could not provide {human_size(requested)} of linear memory"
    run.emit(
        "memory",
        "grow",
        run.refusal,
        capability=run.plan.rule_for("memory_bytes") if cap is not None else None,
        target=f"{human_size(requested)} of linear memory (had {human_size(current)})",
        reason=reason,
        detail={"requested_bytes": requested, "current_bytes": current, "limit_bytes": cap, "refused_by": refusal.reason},
    )
    run.refused("memory", reason)


def report_table_refusal(run: RunContext, table: int, requested: int, current: int, maximum: int | None) -> None:
    """Record a ``table.grow`` refused by the sandbox's table cap (instrumented modules: table_watch.py).

    A request past the table's own declared maximum is the module's rule (wasm semantics),
    not the sandbox's refusal, and is not recorded.
    """
    if maximum is not None and requested > maximum:
        return
    cap = STORE_CAPS.table_elements
    if requested <= cap:
        return  # refused for another reason (the host could not allocate): not the cap
    reason = (
        f"table.grow refused: asked for {requested:,} elements in table {table} (+{requested - current:,} on "
        f"{current:,}), over the sandbox's cap of {cap:,} elements per table (workbench.runtime.engine.STORE_CAPS)"
    )
    run.emit(
        "memory",
        "table.grow",
        run.refusal,
        target=f"{requested:,} elements in table {table} (had {current:,})",
        reason=reason,
        detail={"requested_elements": requested, "current_elements": current, "limit_elements": cap, "table": table},
    )
    run.refused("memory", reason)


def report_output_cap(run: RunContext, stream: str, attempted: int) -> None:
    """Record the write that met the output cap (the rest of the output is cut, the guest's
    write fails with EFBIG); kill mode stops the run."""
    cap = run.plan.limits.output_bytes or 0
    run.emit(
        "output",
        "write",
        run.refusal,
        target=stream,
        capability=run.plan.rule_for("output_bytes"),
        reason=f"output cap of {human_size(cap)} reached on {stream}; the rest is cut",
        detail={"cap_bytes": cap, "write_bytes": attempted},
    )
    run.refused("output", "output cap reached")


def report_overrun(run: RunContext, wall: float) -> None:
    """Record a run that went well past its deadline without being stopped.

    The guard cuts sleeps at the deadline and the epoch check stops running code, so
    this is the backstop for a host call that still outlasted the limit.
    """
    limit = run.plan.limits.wall_seconds
    if limit is not None and wall > limit * 1.2 and not any(e.category == "time" for e in run.events):  # a host call outlasted the deadline (the guard cuts sleeps; this is the backstop)
        run.emit(
            "time",
            "deadline",
            "deny",
            capability=run.plan.rule_for("wall_seconds"),
            reason=f"the run went past its wall-clock limit of {seconds(limit)} inside a host call",
            detail={"limit_seconds": limit, "wall_seconds": round(wall, 6)},
        )
