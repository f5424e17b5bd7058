"""``lang="python"``: Python source run by CPython for WASI, under the sandbox like any module.

The interpreter is one big module shared by every run (:mod:`.pyruntime`); the
user's code, file name and inputs travel in its argv to a small driver
(:mod:`.guest_driver`) that runs the code as ``__main__``.  Conventions a guest relies on:

- ``inputs``: a global dict holding ``Sandbox.run(..., inputs={...})`` (JSON values);
- ``result``: assign a JSON-serialisable value to this global to hand it back as
  ``RunResult.value``;
- ``sys.argv`` is ``["-c", *args]`` for text (``[file name, *args]`` for a path),
  ``os.environ`` holds what the policy grants, stdin is the run's stdin.

With the fast path on (the default for the pinned build), a run starts from a
pre-initialised interpreter (:mod:`.pysnapshot`), in a fresh instance all the same.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import marshal
import math
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import ModuleError
from .messages import source_text
from .guest_driver import RESULT_MARKER, SNAPSHOT_MARKER
from .program import Program, SystemMount
from .protocol import LineProtocol
from .progress import compile_progress
from .pycache import derived_text
from .pyruntime import STDLIB_GUEST_PATH, Interpreter, current_settings, interpreter
from .pysnapshot import SnapshotBuilder, make_enter

__all__ = ["prepare", "encode_inputs", "read_value", "result_protocol", "STUB", "BOOT_STUB"]

#: flags for every run: ``-I`` isolates the interpreter from PYTHON* variables a policy may grant
FLAGS = ("-I",)
#: argv[0]: where the build's own prefix is (its embedded /usr/local), so start-up finds its stdlib
#: there instead of probing the guest's root (``/pyvenv.cfg``, ``/lib/python312.zip``...), which the
#: guard would record as denied reads that the user's code never made
EXECUTABLE = "/usr/local/bin/python3.12"

# The -c program: load the driver (unless a pre-initialised interpreter holds it already), run it.
_LOAD = (
    "import sys\n"
    "m = sys.modules.get('__workbench__')\n"
    "if m is None:\n"
    "    m = sys.modules['__workbench__'] = type(sys)('__workbench__')\n"
    "    exec(sys.argv[1], m.__dict__)\n"  # not compile(): see guest_driver.run_code
)
STUB = _LOAD + "m.main()\n"
# The snapshot's -c program: load the driver, do once what every run would pay for, then pause
# in a clock_time_get call, where the host copies the interpreter (see pysnapshot).
BOOT_STUB = _LOAD + (
    "import atexit, json, linecache, marshal, os, time, traceback\n"
    "compile('pass', '<string>', 'exec')  # the first compile() costs ~5 ms of one-time set-up\n"
    "json.loads(json.dumps({'warm': [1, 2.5, 'é']}))\n"
    "try:\n"
    "    raise ValueError('warm-up')\n"
    "except ValueError as e:\n"
    "    traceback.format_exception(type(e), e, e.__traceback__)\n"
    "m.quiet_stdlib_sources()\n"
    f"sys.stdout.write({SNAPSHOT_MARKER!r}); sys.stdout.flush()\n"
    "time.time()  # the host snapshots here and stops this instance\n"
    "raise SystemExit('workbench: the interpreter snapshot was not taken')\n"
)

_MARKER = RESULT_MARKER.encode()


@functools.lru_cache(maxsize=1)
def _driver_source() -> str:
    """The guest driver without docstrings: a cold start compiles every line at -O0 (~1 ms per 20).

    Stripping them costs ~20 ms of ``ast`` work, so the result is kept beside the compile
    cache, keyed by the driver's own text (:func:`.pycache.derived_text`)."""
    raw = resources.files(__package__).joinpath("guest_driver.py").read_text(encoding="utf-8")
    return derived_text("driver-without-docstrings-1", raw, _strip_docstrings)


def _strip_docstrings(text: str) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def _first_unserialisable(value: Any, where: str) -> str | None:
    """Where in ``value`` the first thing JSON cannot carry is (``inputs['a'][2]``), with its type."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot carry"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} of type {type(key).__name__} (JSON keys are strings)"
            found = _first_unserialisable(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _first_unserialisable(item, f"{where}[{index}]")
            if found:
                return found
        return None
    return f"{where} is a {type(value).__name__}, which JSON cannot carry"


def encode_inputs(inputs: Mapping[str, Any] | None) -> str:
    """``inputs`` as JSON text, or a :class:`ModuleError` saying which value cannot be sent.

    Strict on purpose: only what round-trips unchanged (str keys, finite floats, lists,
    dicts, str, int, bool, None), so the guest sees exactly what the caller passed.
    """
    if inputs is None:
        return "{}"
    if not isinstance(inputs, Mapping):
        raise ModuleError(f"inputs must be a dict of names to JSON values, not {type(inputs).__name__}",
                          hint="pass inputs={'name': value, ...}")
    problem = _first_unserialisable(inputs, "inputs")
    if problem:
        raise ModuleError(f"cannot send inputs to the guest: {problem}",
                          hint="convert it first (e.g. list(...), str(...), .tolist(), .isoformat())")
    return json.dumps(inputs, ensure_ascii=False, allow_nan=False)


def result_protocol() -> LineProtocol:
    """The filter for the driver's hand-back line (one per run; see :mod:`.protocol`)."""
    return LineProtocol(_MARKER)


def read_value(stdout: bytes) -> tuple[bytes, Any]:
    """Split the driver's result line off stdout: ``(user's stdout, value or None)``.

    The same filter as the live stream, so ``RunResult.stdout`` is exactly what was
    streamed.  A hand-back line cut short (by the output cap) is hidden all the same,
    and its value is None: nothing is invented.
    """
    protocol = result_protocol()
    user = protocol.feed(stdout) + protocol.finish()
    if protocol.last is None:
        return user, None
    try:
        return user, json.loads(protocol.last)
    except ValueError:
        return user, None


class _ProgressOnMiss:
    """Shows compile progress only when the compile cache really misses.

    ``Program.wasm`` is called only on a miss; ``Program.compiling`` wraps the whole
    lookup.  So the display starts in ``wasm()`` and ends when ``compiling`` exits.
    """

    def __init__(self, interp: Interpreter) -> None:
        self.interp = interp
        self._local = threading.local()

    def wasm(self) -> bytes:
        data = self.interp.module_bytes()
        if getattr(self._local, "armed", False) and getattr(self._local, "display", None) is None:
            label = f"compiling the CPython interpreter ({self.interp.size / 1e6:.0f} MB)"
            display = compile_progress(label, self.interp.size)
            display.__enter__()
            self._local.display = display
        return data

    @contextlib.contextmanager
    def compiling(self) -> Iterator[None]:
        self._local.armed = True
        try:
            yield
        finally:
            self._local.armed = False
            display = getattr(self._local, "display", None)
            self._local.display = None
            if display is not None:
                display.__exit__(None, None, None)


_builders: dict[str, SnapshotBuilder] = {}
_progress: dict[str, _ProgressOnMiss] = {}
_lock = threading.Lock()


def _helpers(interp: Interpreter) -> tuple[_ProgressOnMiss, SnapshotBuilder | None]:
    with _lock:
        progress = _progress.setdefault(interp.sha256, _ProgressOnMiss(interp))
        builder = None
        if interp.fast_path_ready:
            builder = _builders.get(interp.sha256)
            if builder is None:
                boot_argv = [EXECUTABLE, *FLAGS, "-c", BOOT_STUB, _driver_source()]
                builder = _builders[interp.sha256] = SnapshotBuilder(boot_argv, interp.layout.start_flag_address or 0)
        return progress, builder


def snapshot_builder() -> SnapshotBuilder | None:
    """The fast path's snapshot builder for the current interpreter (None when unsupported); for tests."""
    return _helpers(interpreter())[1]


def prepare(content: str | bytes, name: str, *, path: Path | None = None, inputs_json: str = "{}") -> Program:
    """The :class:`Program` that runs ``content`` as Python (``inputs_json`` from :func:`encode_inputs`)."""
    content = source_text(content, "Python")
    settings = current_settings()
    interp = interpreter(settings)
    progress, builder = _helpers(interp)
    file_name = path.name if path is not None else None
    payload = {  # marshal: the guest decodes it without importing anything (json would cost ~24 ms)
        "code": content,
        "filename": file_name or "<string>",
        "argv0": file_name or "-c",
        "file": file_name,
        "inputs": json.loads(inputs_json),
    }
    mounts: tuple[SystemMount, ...] = ()
    if settings.stdlib is not None:
        mounts = (SystemMount(STDLIB_GUEST_PATH, str(settings.stdlib), "Python standard library"),)
    enter = make_enter(interp.sha256, builder) if (builder is not None and settings.snapshot) else None
    return Program(
        lang="python",
        name=name,
        sha256=interp.sha256,
        wasm=progress.wasm,
        argv=(EXECUTABLE, *FLAGS, "-c", STUB, _driver_source(), marshal.dumps(payload, 4).hex()),
        system_mounts=mounts,
        read_value=read_value,
        stdout_filter=result_protocol,
        enter=enter,
        compiling=progress.compiling,
        # the interpreter's own look-ups: the source it runs (a SyntaxError quotes its line by reading the
        # "file", <string> or the script's name, from the guest's cwd /) and its stdlib's build paths
        housekeeping=("/" + (file_name or "<string>"), *interp.source_prefixes),
    )
