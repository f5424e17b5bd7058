"""``workbench modules test-capabilities``: each right allowed or denied as the policy says.

It builds a throw-away workspace with bait in it (a secret outside every grant,
symlinks that leave the grant, a private folder inside it, a host ``tmp/`` that the
guest's ``/tmp`` must not be), then runs one probe per row.  The probes open paths
the way a C program's libc does (``probes.guest_read``/``guest_write``), so the
rows hold whatever preopens the sandbox adds.  A row passes when the probe was
allowed or denied as expected *and* nothing leaked: a denied read printed no
secret, a denied write left no file on the host.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .. import probes
from ..errors import SandboxError
from ..runtime import RunResult, Sandbox
from .report import Report

__all__ = ["run_capabilities", "CapabilityCase", "CASES", "make_workspace"]

#: the variable the env:inherit row exposes (set only for the suite's duration)
INHERIT_VARIABLE = "WORKBENCH_VALIDATION_INHERITED"
SECRET = "TOP-SECRET"


@dataclass(frozen=True)
class CapabilityCase:
    """One probe under one policy: ``expect`` is ``allowed`` or ``denied``; ``extra`` checks
    what the guest saw or left behind (given the result and the workspace)."""

    name: str
    capabilities: tuple[str, ...]
    source: Callable[[], str]
    expect: str
    extra: Callable[[RunResult, Path], bool] | None = None
    lang: str = "wat"
    shown: str | None = None  # the expected column, when "allowed" alone says too little

    @property
    def expected(self) -> str:
        return self.shown or self.expect


def make_workspace(root: Path) -> None:
    """The bait: see the module docstring."""
    (root / "docs" / "private").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_text("public notes\n")
    (root / "docs" / "private" / "key.txt").write_text(f"{SECRET} key\n")
    (root / "secret.txt").write_text(f"{SECRET}\n")
    os.symlink("../secret.txt", root / "docs" / "escape")
    os.symlink(str(root / "secret.txt"), root / "docs" / "abs-escape")
    os.symlink("readme.txt", root / "docs" / "inside")
    os.symlink("private", root / "docs" / "to-private")  # inside the grant, into its carve-out
    (root / "out").mkdir()
    (root / "out" / "existing.txt").write_text("already here\n")
    (root / "data" / "x").mkdir(parents=True)
    (root / "data" / "x" / "a.json").write_text('{"a": 1}\n')
    (root / "data" / "b.txt").write_text("not json\n")
    (root / "tmp").mkdir()


def _no_secret(result: RunResult, root: Path) -> bool:
    return SECRET not in result.stdout


def _prints(text: str) -> Callable[[RunResult, Path], bool]:
    return lambda result, root: text in result.stdout


def _host_file(relative: str, exists: bool) -> Callable[[RunResult, Path], bool]:
    return lambda result, root: (root / relative).exists() == exists


def _environ(expected: Sequence[str]) -> Callable[[RunResult, Path], bool]:
    return lambda result, root: result.stdout.splitlines() == list(expected)


READ_DOCS = ("filesystem:read:/docs",)

CASES: tuple[CapabilityCase, ...] = (
    CapabilityCase("read-granted", READ_DOCS, lambda: probes.guest_read("/docs/readme.txt"), "allowed",
                   _prints("public notes")),
    CapabilityCase("read-no-grant", (), lambda: probes.guest_read("/docs/readme.txt"), "denied"),
    CapabilityCase("read-outside-grant", READ_DOCS, lambda: probes.guest_read("/secret.txt"), "denied", _no_secret),
    CapabilityCase("dotdot-escape", READ_DOCS, lambda: probes.guest_read("/docs/../secret.txt"), "denied", _no_secret),
    CapabilityCase("symlink-inside", READ_DOCS, lambda: probes.guest_read("/docs/inside"), "allowed",
                   _prints("public notes")),
    CapabilityCase("symlink-escape", READ_DOCS, lambda: probes.guest_read("/docs/escape"), "denied", _no_secret),
    CapabilityCase("symlink-absolute", READ_DOCS, lambda: probes.guest_read("/docs/abs-escape"), "denied",
                   _no_secret),
    CapabilityCase("write-read-only", READ_DOCS, lambda: probes.guest_write("/docs/new.txt"), "denied",
                   _host_file("docs/new.txt", False)),
    CapabilityCase("write-granted", ("filesystem:write:/out",), lambda: probes.guest_write("/out/new.txt"),
                   "allowed", _host_file("out/new.txt", True)),
    CapabilityCase("write-grant-reads", ("filesystem:write:/out",), lambda: probes.guest_read("/out/existing.txt"),
                   "allowed", _prints("already here")),
    CapabilityCase("write-outside-grant", ("filesystem:write:/out",), lambda: probes.guest_write("/docs/new.txt"),
                   "denied", _host_file("docs/new.txt", False)),
    CapabilityCase("tmp-private", ("filesystem:write:/tmp",), lambda: probes.guest_write("/tmp/scratch.txt"),
                   "allowed", _host_file("tmp/scratch.txt", False)),
    CapabilityCase("tmp-no-grant", (), lambda: probes.guest_write("/tmp/scratch.txt"), "denied",
                   _host_file("tmp/scratch.txt", False)),
    CapabilityCase("deny-carve-out", ("filesystem:read:/docs", "!filesystem:read:/docs/private"),
                   lambda: probes.guest_read("/docs/private/key.txt"), "denied", _no_secret),
    CapabilityCase("deny-leaves-rest", ("filesystem:read:/docs", "!filesystem:read:/docs/private"),
                   lambda: probes.guest_read("/docs/readme.txt"), "allowed", _prints("public notes")),
    CapabilityCase("carve-out-via-link", ("filesystem:read:/docs", "!filesystem:read:/docs/private"),
                   lambda: probes.guest_read("/docs/to-private/key.txt"), "denied", _no_secret),
    CapabilityCase("carve-out-link-dotdot", ("filesystem:read:/docs", "!filesystem:read:/docs/private"),
                   lambda: probes.guest_read("/docs/to-private/../private/key.txt"), "denied", _no_secret),
    CapabilityCase("single-file", ("filesystem:read:/docs/readme.txt",), lambda: probes.guest_read("/docs/readme.txt"),
                   "allowed", _prints("public notes")),
    CapabilityCase("single-file-sibling", ("filesystem:read:/docs/readme.txt",),
                   lambda: probes.guest_read("/docs/private/key.txt"), "denied", _no_secret),
    CapabilityCase("deny-glob-above", ("filesystem:read:/docs", "!filesystem:read:/**/*.txt"),
                   lambda: probes.guest_read("/docs/readme.txt"), "denied", _prints("error:")),
    CapabilityCase("glob-match", ("filesystem:read:/data/**/*.json",), lambda: probes.guest_read("/data/x/a.json"),
                   "allowed", _prints('"a": 1')),
    CapabilityCase("glob-miss", ("filesystem:read:/data/**/*.json",), lambda: probes.guest_read("/data/b.txt"),
                   "denied", _prints("error:")),
    CapabilityCase("env-none", (), probes.print_environ, "allowed", _environ([]), shown="sees no variable"),
    CapabilityCase("env-set", ("env:set:MODE=sandbox",), probes.print_environ, "allowed",
                   _environ(["MODE=sandbox"]), shown="sees only MODE"),
    CapabilityCase("env-inherit", (f"env:inherit:{INHERIT_VARIABLE}",), probes.print_environ, "allowed",
                   _environ([f"{INHERIT_VARIABLE}=inherited"]), shown="sees only that one"),
)


def _outcome(result: RunResult) -> str:
    """``allowed`` or ``denied``, read from the probe's own report (exit code and first line)."""
    if result.fault is not None or result.exit_code is None:
        return f"broken ({result.outcome})"
    first = (result.stdout.strip().splitlines() or [""])[0]
    if result.exit_code == 1 and first.startswith("error:"):
        return "denied"
    return "allowed" if result.exit_code == 0 else f"exit {result.exit_code}"


def _measured(result: RunResult, outcome: str) -> str:
    first = (result.stdout.strip().splitlines() or [""])[0]
    if outcome == "denied":
        errno = probes.errno_name(int(first.rsplit(" ", 1)[-1]))
        events = [v for v in result.violations if v.kind == "filesystem"]
        return f"denied ({errno}{', ' + events[0].decision + ' event' if events else ', no event'})"
    if first.startswith("ok:"):
        return f"allowed: {first[3:].strip()[:30] or 'ok'}"
    if outcome == "allowed":  # the environment probes print what they see
        names = [line.split("=", 1)[0] for line in result.stdout.splitlines()]
        return f"sees {', '.join(names)[:40] or 'no variable'}"
    return f"{outcome}: {first[:30] or 'no output'}"


def run_case(case: CapabilityCase, root: Path) -> tuple[str, bool]:
    """Run one case in ``root``; returns (what happened, as expected)."""
    try:
        result = Sandbox(case.capabilities, root=root).run(case.source(), lang=case.lang, name=case.name)
    except SandboxError as exc:
        return f"refused: {exc.message}", False
    outcome = _outcome(result)
    passed = outcome == case.expect and (case.extra is None or case.extra(result, root))
    return _measured(result, outcome), passed


def run_capabilities(cases: Sequence[CapabilityCase] = CASES) -> Report:
    """Every capability case in a fresh workspace."""
    report = Report("workbench modules test-capabilities: each right allowed or denied as it should be")
    previous = os.environ.get(INHERIT_VARIABLE)
    os.environ[INHERIT_VARIABLE] = "inherited"
    try:
        with tempfile.TemporaryDirectory(prefix="workbench-capabilities-") as tmp:
            for case in cases:
                root = Path(tmp) / case.name
                root.mkdir()
                make_workspace(root)
                measured, passed = run_case(case, root)
                report.add(case.name, " ".join(case.capabilities) or "(none)", case.expected, measured, passed)
    finally:
        if previous is None:
            os.environ.pop(INHERIT_VARIABLE, None)
        else:
            os.environ[INHERIT_VARIABLE] = previous
    return report
