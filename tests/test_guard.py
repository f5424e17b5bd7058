"""The WASI guard: fine-grained rules enforced per call, every attempt recorded,
kill and learn modes, coarse clocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench import probes
from workbench.runtime import RunResult, Sandbox

from helpers import assert_refused


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "a.json").write_text('{"a": 1}')
    (root / "data" / "sub" / "b.json").write_text('{"b": 2}')
    (root / "data" / "notes.txt").write_text("not json")
    (root / "docs" / "private").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("doc a")
    (root / "docs" / "b.txt").write_text("doc b")
    (root / "docs" / "private" / "key").write_text("PRIVATE-KEY")
    os.symlink("private/key", root / "docs" / "shortcut")
    (root / "out").mkdir()
    return root


def fs_events(result: RunResult, action: str = "open") -> list[tuple[str, str | None, str, int | None]]:
    return [(e.decision, e.resolved, e.capability or "", e.errno)
            for e in result.events if e.category == "filesystem" and e.action == action]


def test_glob_grant_allows_only_matching_files(data: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/data/**/*.json"], root=data)
    assert sandbox.run(probes.read_file("a.json")).stdout == 'ok: {"a": 1}\n'
    assert sandbox.run(probes.read_file("sub/b.json")).stdout == 'ok: {"b": 2}\n'
    refused = sandbox.run(probes.read_file("notes.txt"))
    assert_refused(refused, "not json")
    assert fs_events(refused) == [("deny", "/data/notes.txt", "", 2)]


def test_deny_carve_out_inside_a_grant(data: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs", "!filesystem:read:/docs/private"], root=data)
    assert sandbox.run(probes.read_file("a.txt")).stdout == "ok: doc a\n"
    refused = sandbox.run(probes.read_file("private/key"))
    assert_refused(refused, "PRIVATE-KEY")
    assert fs_events(refused) == [("deny", "/docs/private/key", "!filesystem:read:/docs/private", 2)]


def test_symlink_into_a_carve_out_is_denied(data: Path) -> None:
    """/docs/shortcut -> private/key stays inside the preopen, so cap-std would follow it:
    the guard resolves it and applies the carve-out to where it leads."""
    sandbox = Sandbox(["filesystem:read:/docs", "!filesystem:read:/docs/private"], root=data)
    refused = sandbox.run(probes.read_file("shortcut"))
    assert_refused(refused, "PRIVATE-KEY")
    assert "symlink to /docs/private/key" in refused.violations[0].message


def test_single_file_grant(data: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs/a.txt"], root=data)
    assert sandbox.mounts[0].guest_path == "/docs" and sandbox.mounts[0].fine
    assert sandbox.run(probes.read_file("a.txt")).stdout == "ok: doc a\n"
    assert_refused(sandbox.run(probes.read_file("b.txt")), "doc b")


def test_every_attempt_is_recorded_allow_and_deny(data: Path) -> None:
    sandbox = Sandbox(["filesystem:read:/docs"], root=data)
    allowed = sandbox.run(probes.read_file("a.txt"))
    assert fs_events(allowed) == [("allow", "/docs/a.txt", "filesystem:read:/docs", 0)]
    event = [e for e in allowed.events if e.action == "open"][0]
    assert event.target == "a.txt" and event.detail["rights"] == "read"
    write = sandbox.run(probes.write_file("new.txt"))
    assert fs_events(write) == [("deny", "/docs/new.txt", "filesystem:read:/docs", 2)]
    assert "not writable" in write.violations[0].message or "read" in write.violations[0].message


@pytest.mark.parametrize(
    "source, resolved",
    [
        (probes.read_file("../secret.txt"), "/secret.txt"),
        (probes.read_file("/etc/passwd"), "/etc/passwd"),
        (probes.read_file("escape"), "/docs/escape"),
    ],
)
def test_core_escape_attempts_appear_as_denies(workspace: Path, source: str, resolved: str) -> None:
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(source)
    denies = [e for e in result.events if e.category == "filesystem" and e.decision == "deny"]
    # a symlink leaving the grant: the policy allows the name, cap-std refuses to follow it,
    # and the guard records that refusal as a deny with its errno
    assert [(e.resolved, bool(e.reason), e.errno != 0) for e in denies] == [(resolved, True, True)]


def test_kill_mode_ends_the_run_at_the_first_violation(data: Path) -> None:
    two_reads = probes.read_file("private/key")
    result = Sandbox(["filesystem:read:/docs", "!filesystem:read:/docs/private"], root=data,
                     on_violation="kill").run(two_reads)
    assert result.exit_code is None and result.stdout == ""  # never got to print the refusal
    assert [(v.kind, v.decision, v.capability) for v in result.violations] == [
        ("filesystem", "kill", "!filesystem:read:/docs/private")
    ]
    assert result.fault is None


def test_guest_cannot_link_a_read_only_file_into_a_writable_folder(data: Path) -> None:
    """A hard link shares the file: linking /docs/a.txt into /out would let the guest write it."""
    sandbox = Sandbox(["filesystem:read:/docs", "filesystem:write:/out"], root=data)
    result = sandbox.run(probes.link_file("a.txt", "a-copy", dirfd=3, new_dirfd=4))
    assert_refused(result)
    assert not (data / "out" / "a-copy").exists()
    assert (data / "docs" / "a.txt").read_text() == "doc a"


def test_learn_mode_suggests_a_minimal_policy_that_then_works(data: Path) -> None:
    # a module that reads /docs/a.txt and writes /tmp/out, through the preopens libc would pick:
    # learn mode mounts the workspace at / (fd 3) and the private scratch at /tmp (fd 4)
    learn = Sandbox(["time:limit:5s"], root=data, on_violation="audit")
    read_run = learn.run(probes.read_file("docs/a.txt"))
    write_run = learn.run(probes.write_file("out", "result\n", dirfd=4))
    assert read_run.ok and write_run.ok and not read_run.violations
    suggested_read = read_run.suggested_policy()
    suggested_write = write_run.suggested_policy()
    assert suggested_read.to_strings() == ["filesystem:read:/docs/a.txt", "time:limit:5s"]
    assert suggested_write.to_strings() == ["filesystem:write:/tmp/out", "time:limit:5s"]
    # under deny, the suggested policy is enough ...
    strict = Sandbox(suggested_read, root=data)
    assert strict.run(probes.read_file("a.txt")).stdout == "ok: doc a\n"
    assert Sandbox(suggested_write, root=data).run(probes.write_file("out", "result\n")).ok
    # ... and grants nothing else
    assert_refused(strict.run(probes.read_file("b.txt")), "doc b")
    assert_refused(Sandbox(suggested_write, root=data).run(probes.write_file("other", "x")))


def test_learn_mode_records_every_access_as_audit(data: Path) -> None:
    result = Sandbox(root=data, on_violation="audit").run(probes.read_file("docs/private/key"))
    assert result.ok
    assert fs_events(result) == [("audit", "/docs/private/key", "", 0)]


CLOCK_PROBE = """(module
 (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1)
 (func (export "_start") (local $i i32) (local $t i64) (local $mod i64)
   ;; 2000 readings of the monotonic clock; OR together their remainders modulo 1 ms
   (loop $l
     (drop (call $now (i32.const 1) (i64.const 1) (i32.const 0)))
     (local.set $mod (i64.or (local.get $mod) (i64.rem_u (i64.load (i32.const 0)) (i64.const 1000000))))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br_if $l (i32.lt_u (local.get $i) (i32.const 2000))))
   (i64.store (i32.const 100) (local.get $mod))
   (i32.store (i32.const 8) (i32.const 100)) (i32.store (i32.const 12) (i32.const 8))
   (drop (call $w (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))))"""


def sub_millisecond_bits(result: RunResult) -> int:
    return int.from_bytes(result.stdout_bytes, "little")


def test_clocks_are_coarse_without_clock_precise() -> None:
    coarse = Sandbox().run(CLOCK_PROBE)
    assert sub_millisecond_bits(coarse) == 0  # every reading is a whole millisecond
    precise = Sandbox(["clock:precise"]).run(CLOCK_PROBE)
    assert sub_millisecond_bits(precise) != 0


def test_raw_linking_reports_errors_as_wasmtime_does() -> None:
    """The guard links its instances through the C API (runtime/rawlink.py); its failures must
    still be wasmtime's exceptions, which the run classifies, never a crash or a silent null."""
    import wasmtime

    from workbench.runtime import rawlink
    from workbench.runtime.engine import EngineSettings, engine_for

    handle = engine_for(EngineSettings())
    store = wasmtime.Store(handle.engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_epoch_deadline(1 << 40)
    slot = wasmtime._bindings.wasmtime_extern_t()
    with pytest.raises(wasmtime.WasmtimeError, match="no wasi_snapshot_preview1::no_such_call"):
        rawlink.linker_get(handle.linker, store, b"wasi_snapshot_preview1", b"no_such_call", slot)
    trapping = wasmtime.Module(handle.engine, '(module (func $boom unreachable) (start $boom))')
    with pytest.raises(wasmtime.Trap, match="unreachable"):
        rawlink.instantiate(store, trapping, ())
    needs_import = wasmtime.Module(handle.engine, '(module (import "env" "f" (func)))')
    with pytest.raises(wasmtime.WasmtimeError):
        rawlink.instantiate(store, needs_import, ())  # wrong number of imports: an error, not a crash
    instance = rawlink.instantiate(store, wasmtime.Module(handle.engine, '(module (memory (export "m") 1))'), ())
    with pytest.raises(wasmtime.WasmtimeError, match="exports no 'missing'"):
        rawlink.export_get(store, instance, b"missing", slot)


GROWN_PATHS = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "private/key")
  (data (i32.const 200) "a.txt")
  (func (export "_start")
    ;; a first call at a low address: the guard now knows a memory of one page
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 11)
                      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (drop (memory.grow (i32.const 1)))
    ;; the same two names again, copied into the new page
    (memory.copy (i32.const 70000) (i32.const 200) (i32.const 5))
    (memory.copy (i32.const 70100) (i32.const 100) (i32.const 11))
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 70000) (i32.const 5)
                      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 70100) (i32.const 11)
                      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))))"""


def test_paths_in_memory_the_guest_grew_during_the_run_are_read_and_judged(data: Path) -> None:
    """The guard keeps its view of the guest's memory between calls (the base never moves);
    a path past the size it saw last must make it look again, not refuse or misread."""
    sandbox = Sandbox(["filesystem:read:/docs", "!filesystem:read:/docs/private"], root=data)
    result = sandbox.run(GROWN_PATHS, lang="wat")
    assert result.exit_code == 0, result
    assert fs_events(result) == [
        ("deny", "/docs/private/key", "!filesystem:read:/docs/private", 2),
        ("allow", "/docs/a.txt", "filesystem:read:/docs", 0),
        ("deny", "/docs/private/key", "!filesystem:read:/docs/private", 2),
    ]
