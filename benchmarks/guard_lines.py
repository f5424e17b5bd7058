"""Deterministic companion to bench_guard.py: Python line events the guard executes per guarded open.

CPU-time medians on a shared machine move by more than a few lines of Python cost; a line count does
not move at all.  Give the tree to measure (default: this checkout), e.g. an export of main::

    git archive main | tar -x -C /tmp/main
    .venv/bin/python benchmarks/guard_lines.py /tmp/main
    .venv/bin/python benchmarks/guard_lines.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

TREE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TREE))
sys.path.insert(0, str(TREE / "benchmarks"))

import bench_guard  # noqa: E402
import workbench  # noqa: E402
from workbench.runtime import Sandbox  # noqa: E402

GUARD_FILES = ("/runtime/guard", "/runtime/device", "/runtime/fdtable")


def main() -> None:
    assert str(TREE) in workbench.__file__, workbench.__file__
    root = Path(tempfile.mkdtemp(prefix="guard-lines-"))
    bench_guard.make_files(root)
    lines = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if any(part in frame.f_code.co_filename for part in GUARD_FILES):
            if event == "line":
                lines[0] += 1
            return tracer
        return None

    for name, policy in bench_guard.POLICIES.items():
        sandbox = Sandbox(policy, root=root)
        sandbox.run(bench_guard.OPENER)  # warm
        lines[0] = 0
        sys.settrace(tracer)
        threading.settrace(tracer)
        try:
            result = sandbox.run(bench_guard.OPENER)
        finally:
            sys.settrace(None)
            threading.settrace(None)
        assert result.ok, result
        print(f"{name:9}: {lines[0] / bench_guard.FILES:.1f} guard lines per open+read+close ({TREE})")


if __name__ == "__main__":
    main()
