"""What a new process no longer redoes for Python guests, and why what it reuses can be trusted.

- the interpreter's identity record: a second process neither reads nor patches the 26 MB file,
  and a file that changed (even with its modification time set back) is read and checked again;
- the pre-initialised snapshot on disk: loaded, not built, by a new process; a damaged or
  altered one is rebuilt, never run; one taken with an environment is never written;
- compiled artifacts (the compile cache's, the guard helpers'): truncated, resized, rewritten in
  place or made by another wasmtime, each is detected and recompiled, never run;
- each run maps the snapshot copy-on-write: nothing a run writes reaches the snapshot or the next run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from workbench import CompileCache, ModuleError, Sandbox, probes
from workbench.languages import pyruntime
from workbench.languages import python as pyadapter
from workbench.languages.pycache import derived_text
from workbench.languages.pyruntime import PINNED_SHA256, Interpreter
from workbench.languages.pysnapshot import Snapshot, SnapshotBuilder
from workbench.runtime.engine import EngineSettings, engine_for
from workbench.runtime.helper_modules import helper_module
from workbench.runtime.private_files import identity, read_checked, write_checked, write_identified


def _set_back(path: Path, like: os.stat_result) -> None:
    os.utime(path, ns=(like.st_atime_ns, like.st_mtime_ns))


# -- the interpreter's identity record ------------------------------------------------------------

@pytest.fixture
def interpreter_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the pinned interpreter, and a private folder for the records."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "python.wasm"
    shutil.copyfile(pyruntime.interpreter().path, copy)
    return copy


def test_a_second_interpreter_object_reads_nothing(interpreter_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Interpreter(interpreter_copy, PINNED_SHA256)
    assert first.verified_now
    reads: list[Path] = []
    real = Path.read_bytes

    def watched(self: Path) -> bytes:
        reads.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", watched)
    second = Interpreter(interpreter_copy, PINNED_SHA256)  # what a new process does
    assert not second.verified_now and interpreter_copy not in reads
    assert (second.sha256, second.size, second.layout.stack_pointer_global, second.layout.start_flag_address) == (
        first.sha256, first.size, first.layout.stack_pointer_global, first.layout.start_flag_address)
    assert second.sha256 == pyruntime.interpreter().sha256  # the same compiled artifact


def test_a_touched_interpreter_is_read_and_hashed_again(interpreter_copy: Path) -> None:
    Interpreter(interpreter_copy, PINNED_SHA256)
    info = interpreter_copy.stat()
    os.utime(interpreter_copy, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert Interpreter(interpreter_copy, PINNED_SHA256).verified_now


def test_an_interpreter_altered_with_its_time_set_back_is_refused(interpreter_copy: Path) -> None:
    Interpreter(interpreter_copy, PINNED_SHA256)
    info = interpreter_copy.stat()
    with open(interpreter_copy, "r+b") as handle:  # same size, same inode, one byte changed
        handle.seek(info.st_size // 2)
        byte = handle.read(1)
        handle.seek(info.st_size // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    _set_back(interpreter_copy, info)  # the change time cannot be set back
    with pytest.raises(ModuleError, match="does not match its pinned sha256"):
        Interpreter(interpreter_copy, PINNED_SHA256)


def test_an_altered_identity_record_is_not_trusted(interpreter_copy: Path, tmp_path: Path) -> None:
    Interpreter(interpreter_copy, PINNED_SHA256)
    (record,) = (tmp_path / "cache").glob("python-*.identity")
    data = bytearray(record.read_bytes())
    data[data.rindex(b'"module_sha256": "') + 18] ^= 1  # point it at another artifact
    record.write_bytes(bytes(data))
    again = Interpreter(interpreter_copy, PINNED_SHA256)
    assert again.verified_now and again.sha256 == pyruntime.interpreter().sha256


def test_the_bytes_compiled_on_a_miss_are_checked_against_the_pin(interpreter_copy: Path) -> None:
    interp = Interpreter(interpreter_copy, PINNED_SHA256)
    with open(interpreter_copy, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0\0\0\0")
    with pytest.raises(ModuleError, match="does not match its pinned sha256"):
        interp.module_bytes()


# -- the snapshot on disk --------------------------------------------------------------------------

@pytest.fixture
def fresh_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Snapshots recorded in a private folder; each call of the result is a new process's builder."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "records"))
    interp = pyruntime.interpreter()
    template = pyadapter.snapshot_builder()
    assert template is not None, "the pinned interpreter supports the fast path"
    saved = dict(pyadapter._builders)

    def new() -> SnapshotBuilder:
        builder = SnapshotBuilder(template.boot_argv, template.start_flag)
        pyadapter._builders[interp.sha256] = builder
        return builder

    yield new
    pyadapter._builders.clear()
    pyadapter._builders.update(saved)


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(cache=CompileCache())


def _snapshot_file(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "records").glob("python-*.snapshot")
    return path


def test_a_new_process_loads_the_snapshot_instead_of_building_it(fresh_builder: Any, box: Sandbox, tmp_path: Path) -> None:
    first = fresh_builder()
    assert box.run("print(6 * 7)", lang="python").stdout == "42\n"
    assert (first.builds, first.loads) == (1, 0)
    second = fresh_builder()
    assert box.run("import sys; print(sys.argv[0], 6 * 7)", lang="python").stdout == "-c 42\n"
    assert (second.builds, second.loads) == (0, 1)


@pytest.mark.parametrize("damage", ["truncated", "grown", "rewritten-in-place", "record-gone"])
def test_a_damaged_snapshot_is_rebuilt_never_run(fresh_builder: Any, box: Sandbox, tmp_path: Path, damage: str) -> None:
    fresh_builder()
    box.run(f"pass  # {damage}", lang="python")  # new text: a new Program, whose hook uses the new builder
    path = _snapshot_file(tmp_path)
    info = path.stat()
    if damage == "truncated":
        os.truncate(path, info.st_size - 65536)
    elif damage == "grown":
        with open(path, "ab") as handle:
            handle.write(bytes(65536))
    elif damage == "rewritten-in-place":  # what a run would see: a planted interpreter state
        with open(path, "r+b") as handle:
            handle.write(b"\xff" * 4096)
        _set_back(path, info)
    else:
        path.with_suffix(".snapshot-meta").unlink()
    builder = fresh_builder()
    assert box.run(f"print('intact')  # {damage}", lang="python").stdout == "intact\n"
    assert (builder.builds, builder.loads) == (1, 0)
    assert _snapshot_file(tmp_path).read_bytes()[:4096] != b"\xff" * 4096


def test_a_snapshot_with_an_environment_is_never_written(fresh_builder: Any, tmp_path: Path) -> None:
    builder = fresh_builder()
    secret = "sk-live-4f1d9c0a7e"
    box = Sandbox([f"env:set:API_KEY={secret}"], cache=CompileCache())
    assert box.run("import os; print(os.environ['API_KEY'])", lang="python").stdout == f"{secret}\n"
    assert builder.builds == 1
    for path in (tmp_path / "records").rglob("*"):
        assert secret.encode() not in path.read_bytes(), path
    assert list((tmp_path / "records").glob("python-*.snapshot")) == []


def test_what_a_run_writes_reaches_neither_the_snapshot_nor_the_next_run(box: Sandbox) -> None:
    planter = (
        "import sys, json, os\n"
        "blob = bytearray(b'\\xee' * (8 << 20))\n"  # dirty pages well past the snapshot's
        "json.dumps = None; sys.modules['os'].sep = '!'; sys.path.insert(0, '/planted')\n"
        "import builtins; builtins.print = lambda *a, **k: sys.stdout.write('hijacked\\n')\n"
        "print('x')\n"
    )
    assert box.run(planter, lang="python").stdout == "hijacked\n"
    checker = "import json, os, sys; print(json.dumps([os.sep, '/planted' in sys.path]))"
    assert box.run(checker, lang="python").stdout == '["/", false]\n'
    builder = pyadapter.snapshot_builder()
    assert builder is not None
    for snapshot in list(builder._items.values()):
        if isinstance(snapshot, Snapshot):  # the shared image still holds exactly the snapshot
            image = snapshot.image()
            mapped = os.pread(image._memfd(), snapshot.memory_size, 0)  # type: ignore[attr-defined]
            assert mapped == snapshot.memory
            assert b"\xee" * 4096 not in mapped


# -- compiled artifacts -----------------------------------------------------------------------------

def _artifact(directory: Path) -> Path:
    (path,) = directory.glob("*.cwasm")
    return path


@pytest.mark.parametrize("damage", ["truncated", "grown", "rewritten-in-place", "other-wasmtime", "record-gone"])
def test_a_damaged_or_stale_artifact_is_recompiled_never_run(tmp_path: Path, damage: str) -> None:
    directory = tmp_path / "cache"
    assert Sandbox(cache=CompileCache(directory)).run(probes.hello("first\n")).stdout == "first\n"
    path = _artifact(directory)
    info, data = path.stat(), path.read_bytes()
    if damage == "truncated":
        os.truncate(path, len(data) // 2)
    elif damage == "grown":
        with open(path, "ab") as handle:
            handle.write(b"\0" * 64)
    elif damage == "rewritten-in-place":
        with open(path, "r+b") as handle:
            handle.seek(len(data) // 2)
            handle.write(b"\xcc" * 64)  # int3 over the code: never to be run
        _set_back(path, info)
    elif damage == "other-wasmtime":  # passes the cheap check, as if written by wasmtime 49
        assert b"\x0250\x18x86_64" in data or b"\x0250\x19aarch64" in data
        stale = data.replace(b"\x0250\x18", b"\x0249\x18").replace(b"\x0250\x19", b"\x0249\x19")
        key = path.stem
        image = directory / f"{key}.image"
        write_identified(directory, directory / f"{key}.meta", key, {image: image.read_bytes(), path: stale})
    else:
        path.with_suffix(".meta").unlink()
    fresh = CompileCache(directory)
    assert Sandbox(cache=fresh).run(probes.hello("again\n")).stdout == "again\n"
    assert (fresh.compiles, fresh.disk_hits) == (1, 0)
    again = CompileCache(directory)  # and the rebuilt one is used from then on
    Sandbox(cache=again).run(probes.hello("again\n"))
    assert (again.compiles, again.disk_hits) == (0, 1)


def test_the_guard_helpers_are_compiled_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    handle = engine_for(EngineSettings())
    wat = '(module (func (export "f") (result i32) i32.const 7))'
    helper_module(handle, wat)
    (artifact,) = tmp_path.glob("helper-*.cwasm")
    written = identity(artifact)
    helper_module(handle, wat)  # a new process's first guarded run: loaded, not compiled and written again
    assert identity(artifact) == written
    os.truncate(artifact, artifact.stat().st_size // 2)
    module = helper_module(handle, wat)
    assert identity(artifact) != written and artifact.stat().st_size == written[0]
    assert [e.name for e in module.exports] == ["f"]


# -- the checked records ----------------------------------------------------------------------------

def test_a_checked_record_is_read_only_whole_and_for_its_own_key(tmp_path: Path) -> None:
    path = tmp_path / "r.bin"
    assert write_checked(tmp_path, path, "key-a", b"payload" * 100)
    assert read_checked(tmp_path, path, "key-a") == b"payload" * 100
    assert read_checked(tmp_path, path, "key-b") is None and not path.exists()  # another key's: deleted
    for cut in (1, 10, 350):
        write_checked(tmp_path, path, "key-a", b"payload" * 100)
        os.truncate(path, path.stat().st_size - cut)
        assert read_checked(tmp_path, path, "key-a") is None
    write_checked(tmp_path, path, "key-a", b"payload" * 100)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert read_checked(tmp_path, path, "key-a") is None


def test_records_in_a_folder_others_can_write_are_neither_written_nor_read(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    assert write_checked(shared, shared / "r.bin", "k", b"x")
    os.chmod(shared, 0o777)
    assert read_checked(shared, shared / "r.bin", "k") is None
    assert not write_checked(shared, shared / "s.bin", "k", b"x") and not (shared / "s.bin").exists()


def test_derived_text_is_kept_by_the_text_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path))
    calls: list[str] = []

    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert derived_text("t", "abc", upper) == "ABC" and derived_text("t", "abc", upper) == "ABC"
    assert derived_text("t", "abd", upper) == "ABD"
    assert calls == ["abc", "abd"]
