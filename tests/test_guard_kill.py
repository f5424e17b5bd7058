"""Every way the filesystem layer refuses a call obeys the violation mode, and its host work is bounded.

``kill`` ends the run at the first violation, whichever layer refused it: the policy, the guard's
own resolution (an escape, an absolute symlink, a path too long, bytes that are not a path),
wasmtime's WASI behind the guard (cap-std), a file that changed between check and open, or the
guard failing closed on its own error.  Refusals that are not violations (a missing file, the
interpreter's own look-ups) never stop a run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench import Sandbox
from workbench.runtime import RunResult
from workbench.runtime import guard as guard_module

from helpers import errno_of


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def open_probe(path: bytes, dirfd: int = 3, lookup: int = 1, oflags: int = 0, rights: int = 2) -> str:
    """path_open(dirfd, path) with exactly these bytes, then print 'still running' (or errno N and exit 1)."""
    return f"""(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 16)
 (data (i32.const 4096) "{_wat_bytes(path)}")
 (data (i32.const 64) "still running\\0a")
 (func (export "_start") (local $e i32)
   (local.set $e (call $open (i32.const {dirfd}) (i32.const {lookup}) (i32.const 4096) (i32.const {len(path)})
                  (i32.const {oflags}) (i64.const {rights}) (i64.const 0) (i32.const 0) (i32.const 16)))
   (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 14))
   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "docs" / "private").mkdir(parents=True)
    (base / "docs" / "a.txt").write_text("public")
    (base / "docs" / "private" / "k.txt").write_text("PRIVATE")
    (base / "secret.txt").write_text("SECRET")
    os.symlink("../secret.txt", base / "docs" / "escape")  # leaves the mount: cap-std refuses it
    os.symlink(str(base / "secret.txt"), base / "docs" / "absolute")
    os.symlink("private/k.txt", base / "docs" / "into-private")
    return base


PLAIN = ["filesystem:read:/docs"]
CARVED = ["filesystem:read:/docs", "!filesystem:read:/docs/private"]


def killed(result: RunResult) -> bool:
    return result.outcome == "stopped (filesystem)" and "still running" not in result.stdout


REFUSALS = [
    pytest.param(CARVED, b"private/k.txt", id="policy-deny"),
    pytest.param(CARVED, b"into-private", id="symlink-into-a-carve-out"),
    pytest.param(CARVED, b"../secret.txt", id="dotdot-escape-fine-mount"),
    pytest.param(PLAIN, b"../secret.txt", id="dotdot-escape-plain-mount"),
    pytest.param(CARVED, b"absolute", id="absolute-symlink-fine-mount"),
    pytest.param(PLAIN, b"escape", id="cap-std-refuses-a-symlink-out"),
    pytest.param(PLAIN, b"/etc/passwd", id="absolute-path"),
    pytest.param(CARVED, b"a" * 5000, id="path-too-long"),
    pytest.param(CARVED, b"a.txt\x00x", id="embedded-nul"),
    pytest.param(CARVED, b"\xff\xfe", id="invalid-utf8"),
]


@pytest.mark.parametrize(("policy", "path"), REFUSALS)
def test_kill_mode_stops_the_run_at_every_refusal(root: Path, policy: list[str], path: bytes) -> None:
    result = Sandbox(policy, root=root, on_violation="kill").run(open_probe(path))
    assert killed(result), (result.outcome, result.stdout, [str(v) for v in result.violations])
    assert [v.decision for v in result.violations][:1] == ["kill"]


@pytest.mark.parametrize(("policy", "path"), REFUSALS)
def test_deny_mode_refuses_records_and_goes_on(root: Path, policy: list[str], path: bytes) -> None:
    result = Sandbox(policy, root=root).run(open_probe(path))
    assert "still running" in result.stdout
    assert result.violations and all(v.decision == "deny" for v in result.violations)


def test_a_descriptor_that_is_not_a_folder_of_the_guest_is_refused_and_kills(root: Path) -> None:
    result = Sandbox(CARVED, root=root, on_violation="kill").run(open_probe(b"a.txt", dirfd=77))
    assert killed(result)


def test_the_guard_fails_closed_and_kills_on_its_own_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the guard")

    monkeypatch.setattr(guard_module.Guard, "_judge", broken)
    denied = Sandbox(CARVED, root=root).run(open_probe(b"a.txt"))
    assert "still running" in denied.stdout and denied.violations
    assert "guard error" in denied.violations[0].message
    assert killed(Sandbox(CARVED, root=root, on_violation="kill").run(open_probe(b"a.txt")))


def test_a_folder_swapped_for_a_symlink_between_check_and_open_is_revoked_and_kills(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race, made deterministic: right after the guard checked ``sub/x.txt``, the host turns
    ``sub`` into a symlink to the carve-out, so wasmtime would open ``private/x.txt``."""
    real = guard_module.Guard._prepare_open

    def setup() -> None:
        docs = root / "docs"
        for path in (docs / "sub", docs / "sub-old"):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                for child in path.iterdir():
                    child.unlink()
                path.rmdir()
        (docs / "sub").mkdir()
        (docs / "sub" / "x.txt").write_text("public")
        (docs / "private" / "x.txt").write_text("PRIVATE")

    def swap_after_check(self: guard_module.Guard, walked: object, oflags: int, write: bool) -> int:
        code = real(self, walked, oflags, write)
        os.rename(root / "docs" / "sub", root / "docs" / "sub-old")
        os.symlink("private", root / "docs" / "sub")
        return code

    monkeypatch.setattr(guard_module.Guard, "_prepare_open", swap_after_check)
    setup()
    revoked = Sandbox(CARVED, root=root).run(open_probe(b"sub/x.txt"))
    assert revoked.violations and "changed on the host" in revoked.violations[0].message
    assert "still running" in revoked.stdout
    setup()
    assert killed(Sandbox(CARVED, root=root, on_violation="kill").run(open_probe(b"sub/x.txt")))


@pytest.mark.parametrize("mode", ["deny", "kill"])
def test_refusals_that_are_not_violations_never_stop_a_run(root: Path, mode: str) -> None:
    result = Sandbox(CARVED, root=root, on_violation=mode).run(open_probe(b"missing.txt"))
    assert "still running" in result.stdout and result.violations == []
    nested = Sandbox(CARVED, root=root, on_violation=mode).run(open_probe(b"no/such/folder/f.txt"))
    assert "still running" in nested.stdout and nested.violations == []


def test_a_long_path_is_refused_without_reading_it(root: Path) -> None:
    """400 kB of path: refused at once (ENAMETOOLONG), recorded, and the host never walks it."""
    huge = b"a/" * 200_000
    result = Sandbox(CARVED, root=root).run(open_probe(huge))
    assert "still running" in result.stdout
    (violation,) = result.violations
    assert violation.event is not None and violation.event.errno == 37  # ENAMETOOLONG
    assert violation.target == "<unreadable>" or len(violation.target or "") < 5000


def test_symlink_loops_end_in_eloop(root: Path) -> None:
    os.symlink("loop2", root / "docs" / "loop1")
    os.symlink("loop1", root / "docs" / "loop2")
    result = Sandbox(CARVED, root=root).run(open_probe(b"loop1"))
    assert "still running" in result.stdout
    assert [e.errno for e in result.events if e.action == "open"] == [32]  # ELOOP


def test_python_reads_through_a_fine_mount_and_its_errno_names(root: Path) -> None:
    result = Sandbox(CARVED, root=root).run(
        "import os\nprint(open('/docs/a.txt').read())\ntry:\n    open('/docs/private/k.txt')\nexcept OSError as e:\n"
        "    print(e.errno)\n", lang="python")
    assert result.stdout == "public\n2\n"
    assert errno_of(Sandbox(CARVED, root=root).run(_read("private/k.txt"))) == 2


def _read(path: str) -> str:
    from workbench import probes

    return probes.read_file(path)


def test_a_folder_swapped_between_check_and_open_is_revoked_even_by_one_name(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder the guest opens may be kept and used later, so even one name is verified: right
    after the check, the host moves another folder (one inside the carve-out's reach) in its place."""
    real = guard_module.Guard._prepare_open
    docs = root / "docs"
    (docs / "pub").mkdir()
    (docs / "private" / "inner").mkdir()

    def swap_after_check(self: guard_module.Guard, walked: object, oflags: int, write: bool) -> int:
        code = real(self, walked, oflags, write)
        os.rename(docs / "pub", docs / "pub-old")
        os.rename(docs / "private" / "inner", docs / "pub")
        return code

    monkeypatch.setattr(guard_module.Guard, "_prepare_open", swap_after_check)
    result = Sandbox(CARVED, root=root).run(open_probe(b"pub", oflags=2))  # O_DIRECTORY
    assert result.violations and "changed on the host" in result.violations[0].message


def test_a_guard_whose_error_path_fails_too_stops_the_guest_never_the_host(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing may escape a C callback: ctypes would hand wasmtime garbage (seen: a segfault).
    When even the guard's fail-closed path raises, the guest is stopped with a fault."""
    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the guard")

    monkeypatch.setattr(guard_module.Guard, "check", broken)
    monkeypatch.setattr(guard_module.Guard, "_arm_kill", broken)  # the fail-closed path itself fails
    result = Sandbox(CARVED, root=root).run(open_probe(b"a.txt"))
    assert "still running" not in result.stdout
    assert result.fault is not None and "workbench guard failed" in result.fault.message


@pytest.mark.parametrize("policy", [PLAIN, CARVED], ids=["folder", "carve-out"])
def test_a_guest_cannot_exhaust_the_hosts_descriptors(root: Path, policy: list[str]) -> None:
    """Every guest descriptor is a host one, and the host's limit is shared by everything in the
    process: a guest may hold MAX_DESCRIPTORS at once; the next open is refused and recorded."""
    from workbench.runtime.guard import MAX_DESCRIPTORS

    code = (
        "import os\nfds = []\ntry:\n    while len(fds) < 5000:\n        fds.append(os.open('/docs/a.txt', os.O_RDONLY))\n"
        "except OSError as exc:\n    print(len(fds), exc.errno)\nos.close(fds.pop())\n"
        "fds.append(os.open('/docs/a.txt', os.O_RDONLY))\nprint('reopened')\n"
    )
    before = len(os.listdir("/proc/self/fd"))
    result = Sandbox(policy, root=root).run(code, lang="python")
    held, errno = map(int, result.stdout.split()[:2])
    assert MAX_DESCRIPTORS - 8 <= held <= MAX_DESCRIPTORS and errno == 33  # EMFILE
    assert "reopened" in result.stdout  # closing one makes room again
    (violation,) = [v for v in result.violations if "descriptors" in v.message]
    assert violation.event is not None and violation.event.errno == 33
    assert len(os.listdir("/proc/self/fd")) <= before + 16  # nothing left open after the run
    assert killed(Sandbox(policy, root=root, on_violation="kill").run(code.replace("print('reopened')", "")))
