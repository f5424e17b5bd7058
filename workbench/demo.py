"""``workbench demo``: the main job on embedded defaults.

It builds a throw-away workspace (a granted ``docs/`` folder, a secret outside it
and a symlink inside it that points at the secret), runs a handful of bundled
probe modules that each try one thing, and prints what each tried and what the
sandbox decided.  Every row also states what *should* happen, and the demo exits
non-zero if any row disagrees, so it doubles as a smoke test of the install.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from . import probes
from .runtime import RunResult, Sandbox

__all__ = ["DemoCase", "DEMO_CASES", "run_demo"]


@dataclass(frozen=True)
class DemoCase:
    name: str
    tried: str
    capabilities: tuple[str, ...]
    source: str
    expect: str  # "allowed" or the violation/denial we expect to see
    check: Callable[[RunResult], bool]


def _denied(result: RunResult) -> bool:
    return result.exit_code == 1 and result.stdout.startswith("error:")


def _violation(kind: str) -> Callable[[RunResult], bool]:
    return lambda result: any(v.kind == kind for v in result.violations)


DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase("allowed-read", "read /docs/readme.txt", ("filesystem:read:/docs",),
             probes.read_file("readme.txt"), "allowed", lambda r: r.ok and "ok:" in r.stdout),
    DemoCase("read-outside", "read /docs/../secret.txt", ("filesystem:read:/docs",),
             probes.read_file("../secret.txt"), "denied", _denied),
    DemoCase("symlink-escape", "read /docs/escape → ../secret.txt", ("filesystem:read:/docs",),
             probes.read_file("escape"), "denied", _denied),
    DemoCase("write-readonly", "write /docs/new.txt", ("filesystem:read:/docs",),
             probes.write_file("new.txt"), "denied", _denied),
    DemoCase("memory-bomb", "grow memory without end", ("memory:limit:10MB",),
             probes.memory_bomb(), "memory violation", _violation("memory")),
    DemoCase("infinite-loop", "spin forever", ("time:limit:1s",),
             probes.infinite_loop(), "stopped by time limit", _violation("time")),
    DemoCase("output-flood", "print 50 MB", ("output:limit:1MB",),
             probes.output_flood(), "output cut at cap", _violation("output")),
)


def _decision(result: RunResult) -> str:
    """The outcome (:meth:`RunResult.classify`, as every view words it) and what the guest was told."""
    outcome = result.classify()
    if outcome.kind in ("violation", "stopped", "cancelled", "audit-failed"):
        v = result.violations[0]
        return f"{v.decision}: {v.message}"
    if outcome.kind == "fault":
        return f"{outcome.label}: {result.fault.message if result.fault else ''}"
    line = (result.stdout.strip().splitlines() or [""])[0]
    if line.startswith("error:"):
        number = int(line.rsplit(" ", 1)[-1])
        return f"deny: {probes.errno_name(number)} from WASI"
    return f"allow: {line[:40]}" if line else f"exit {result.exit_code}"


def _workspace(base: Path) -> None:
    (base / "docs").mkdir()
    (base / "docs" / "readme.txt").write_text("public notes\n")
    (base / "secret.txt").write_text("the secret outside the grant\n")
    os.symlink("../secret.txt", base / "docs" / "escape")


def run_demo(out: TextIO) -> int:
    """Run every demo case, print the table to ``out``; 0 when every row went as expected."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="workbench-demo-") as tmp:
        workspace = Path(tmp)
        _workspace(workspace)
        out.write(f"workspace: {workspace}  (docs/readme.txt, secret.txt, docs/escape -> ../secret.txt)\n\n")
        for case in DEMO_CASES:
            result = Sandbox(case.capabilities, root=workspace).run(case.source, lang="wat", name=case.name)
            passed = case.check(result)
            rows.append((case.name, case.tried, " ".join(case.capabilities), case.expect, "yes" if passed else "NO",
                         f"{result.usage.wall_seconds:.2f}s", _decision(result)))
    # the decision goes last and is never cut: it is what the reader came for
    header = ("module", "tried", "capabilities", "expected", "as expected", "wall", "sandbox decided")
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        out.write("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    failed = [row[0] for row in rows if row[4] != "yes"]
    out.write("\n" + ("every attempt was decided as expected\n" if not failed else f"UNEXPECTED: {', '.join(failed)}\n"))
    return 0 if not failed else 1
