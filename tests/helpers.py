"""Helpers shared by the filesystem and guard tests: reading a probe's verdict."""

from __future__ import annotations

from workbench.runtime import RunResult

# WASI errnos a refused access may carry: EACCES, EBADF, ELOOP (no-follow on a symlink), ENOENT, EPERM, EROFS, ENOTCAPABLE
REFUSED = {2, 8, 32, 44, 63, 69, 76}


def errno_of(result: RunResult) -> int:
    line = result.stdout.strip()
    assert line.startswith("error: errno "), f"expected a refusal, got {result.stdout!r}"
    return int(line.rsplit(" ", 1)[1])


def assert_refused(result: RunResult, *secrets: str) -> None:
    assert result.exit_code == 1
    assert errno_of(result) in REFUSED
    for secret in secrets:
        assert secret not in result.stdout
