"""``workbench modules test-violations``: each way a guest misbehaves is caught and classified.

Every row runs one probe that breaks one rule and checks how the run ended: a
*violation* (an event with decision ``deny`` or ``kill``, of the right kind, naming
the capability that set the limit), a *fault* (a trap that is the guest's own bug,
of the right trap kind, with no violation), or a plain exit code.  A row also fails
when the run ended some other way, or with a violation that has no message.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import probes
from ..policy import Capability
from ..runtime import RunResult, Sandbox
from ..runtime.engine import STORE_CAPS
from .report import Report

__all__ = ["run_violations", "ViolationCase", "CASES"]

_EXIT_3 = """(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (memory (export "memory") 1) (func (export "_start") (call $exit (i32.const 3))))"""


@dataclass(frozen=True)
class ViolationCase:
    """One misbehaving probe and how its run must end.

    ``expect`` is ``kind/decision`` for a violation (``memory/deny``), ``fault:kind`` for
    a trap (``fault:unreachable``), ``exit:N`` for an exit code, or ``ok``.
    ``capability`` is the rule the violation must name (None: not checked).
    ``cancel_after`` cancels the run from another thread after that many seconds.
    """

    name: str
    capabilities: tuple[str, ...]
    source: Callable[[], str]
    expect: str
    capability: str | None = None
    on_violation: str = "deny"
    cancel_after: float | None = None


CASES: tuple[ViolationCase, ...] = (
    ViolationCase("memory-grow", ("memory:limit:2MB",), probes.memory_bomb, "memory/deny", "memory:limit:2MB"),
    ViolationCase("memory-initial", ("memory:limit:1MB",),
                  lambda: '(module (memory (export "memory") 100) (func (export "_start")))',
                  "memory/kill", "memory:limit:1MB"),
    ViolationCase("table-initial", (), lambda: probes.big_table(STORE_CAPS.table_elements + 1), "memory/kill"),
    ViolationCase("table-count", (), lambda: probes.many_tables(STORE_CAPS.tables + 1), "memory/kill"),
    ViolationCase("wall-time", ("time:limit:0.2s",), probes.infinite_loop, "time/kill", "time:limit:0.2s"),
    ViolationCase("cpu-budget", ("cpu:limit:0.2s",), probes.infinite_loop, "cpu/kill", "cpu:limit:0.2s"),
    ViolationCase("fuel", ("fuel:limit:1e5",), probes.fuel_loop, "fuel/kill", "fuel:limit:1e5"),
    ViolationCase("output", ("output:limit:10KB",), lambda: probes.output_flood(10**6), "output/deny",
                  "output:limit:10KB"),
    ViolationCase("output-kill", ("output:limit:10KB",), lambda: probes.output_flood(10**9), "output/kill",
                  "output:limit:10KB", on_violation="kill"),
    ViolationCase("stack", ("stack:limit:64KiB",), probes.deep_recursion, "stack/kill", "stack:limit:64KiB"),
    ViolationCase("stack-default", (), probes.deep_recursion, "stack/kill", "stack:limit:512KiB"),
    ViolationCase("filesystem", ("filesystem:read:/docs",), lambda: probes.guest_read("/secret.txt"),
                  "filesystem/deny"),
    ViolationCase("filesystem-kill", ("filesystem:read:/docs",), lambda: probes.guest_read("/secret.txt"),
                  "filesystem/kill", on_violation="kill"),
    ViolationCase("cancel", ("time:limit:10s",), probes.infinite_loop, "lifecycle/kill", cancel_after=0.05),
    ViolationCase("cpu-share-is-no-violation", ("cpu:limit:50%",), lambda: probes.fibonacci(25), "ok"),
    ViolationCase("fault-unreachable", (), probes.unreachable, "fault:unreachable"),
    ViolationCase("fault-out-of-bounds", (), probes.out_of_bounds, "fault:memory_out_of_bounds"),
    ViolationCase("fault-divide-by-zero", (), probes.divide_by_zero, "fault:integer_division_by_zero"),
    ViolationCase("fault-bad-signature", (), probes.bad_indirect_call, "fault:bad_signature"),
    ViolationCase("exit-code", (), lambda: _EXIT_3, "exit:3"),
    ViolationCase("clean", (), probes.hello, "ok"),
)


def classify(result: RunResult) -> str:
    """How a run ended, in the ``expect`` vocabulary of :class:`ViolationCase` (``Outcome.code``)."""
    return result.classify().code


def run_case(case: ViolationCase, root: Path) -> tuple[str, bool]:
    """Run one case; returns (what happened, as expected)."""
    sandbox = Sandbox(case.capabilities, root=root, on_violation=case.on_violation)  # type: ignore[arg-type]
    timer = None
    if case.cancel_after is not None:
        timer = threading.Timer(case.cancel_after, sandbox.cancel, args=("cancelled by the validation suite",))
        timer.start()
    try:
        result = sandbox.run(case.source(), lang="wat", name=case.name)
    finally:
        if timer is not None:
            timer.cancel()
    got = classify(result)
    passed = got == case.expect
    detail = ""
    if result.violations:
        first = result.violations[0]
        rule_named = case.capability is None or first.capability == str(Capability.parse(case.capability))
        passed = passed and bool(first.message) and rule_named
        rule = f" [{first.capability}]" if first.capability else ""
        detail = f"{rule} {first.message}"
    elif result.fault is not None:
        detail = f" at {result.fault.backtrace[0]}" if result.fault.backtrace else ""
    return f"{got}{detail}", passed


def run_violations(cases: Sequence[ViolationCase] = CASES) -> Report:
    """Every violation case, in a workspace with a granted ``docs/`` and a secret outside it."""
    report = Report("workbench modules test-violations: each violation caught and classified")
    with tempfile.TemporaryDirectory(prefix="workbench-violations-") as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        (root / "secret.txt").write_text("TOP-SECRET\n")
        for case in cases:
            expected = case.expect + (f" [{case.capability}]" if case.capability else "")
            measured, passed = run_case(case, root)
            report.add(case.name, " ".join(case.capabilities) or "(defaults)", expected, measured, passed)
    return report
