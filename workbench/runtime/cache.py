"""The compile cache: compiled modules serialised to disk, and kept in memory.

Key: ``sha256(wasm bytes)`` + the wasmtime version + the engine configuration
(:meth:`EngineSettings.fingerprint`), because a serialized module loads only into
an engine with the same settings (design.md §5).  A second run of the same module,
even in a new process, then deserialises (milliseconds) instead of compiling
(seconds for a large module).

Trust: ``Module.deserialize_file`` runs native code from the file, so the cache
folder must be writable by this user only.  It is created with mode 0700, files
are written atomically (temp file + rename) and a folder that others can write to
is refused rather than used.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import wasmtime

from .compiler import compile_module
from .engine import EngineHandle

__all__ = ["CompileCache", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$WORKBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/sandbox-workbench``, else ``~/.cache/sandbox-workbench``."""
    explicit = os.environ.get("WORKBENCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sandbox-workbench"


@functools.lru_cache(maxsize=64)
def _settings_digest(fingerprint: str) -> str:
    """A short, file-name-safe digest of an engine fingerprint (few distinct ones per process)."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


class CompileCache:
    """Compiled modules by (wasm sha256, engine fingerprint): an in-memory LRU over a disk folder.

    ``hits``, ``disk_hits`` and ``compiles`` count what happened, for tests and benchmarks.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, memory_items: int = 64) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.memory_items = memory_items
        self._memory: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.disk_hits = 0
        self.compiles = 0

    def key(self, wasm_sha256: str, handle: EngineHandle) -> str:
        return f"{wasm_sha256}-{_settings_digest(handle.settings.fingerprint())}"

    def get(self, wasm: Callable[[], bytes], wasm_sha256: str, handle: EngineHandle) -> wasmtime.Module:
        """The compiled module on ``handle``'s engine: memory, then disk, then compile.

        ``wasm`` returns the module's bytes; it is called only on a miss (a large
        interpreter need not be read from disk when its compiled form is cached).
        """
        key = self.key(wasm_sha256, handle)
        with self._lock:
            module = self._memory.get(key)
            if module is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return module
        module = self._load(key, handle)
        if module is None:
            module = compile_module(handle, wasm())  # bounded; may raise, the caller explains the error
            self.compiles += 1
            self._store(key, module)
        else:
            self.disk_hits += 1
        with self._lock:
            self._memory[key] = module
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)
        return module

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.cwasm"

    def _ensure_private_dir(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            info = self.directory.stat()
        except OSError:
            return False
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_uid != os.getuid():
            return False  # someone else could plant native code here: do not use it
        return True

    def _load(self, key: str, handle: EngineHandle) -> wasmtime.Module | None:
        path = self._path(key)
        if not path.is_file() or not self._ensure_private_dir():
            return None
        try:
            return wasmtime.Module.deserialize_file(handle.engine, str(path))
        except Exception:
            # stale or damaged artifact (e.g. written by another wasmtime): drop and recompile
            path.unlink(missing_ok=True)
            return None

    def _store(self, key: str, module: wasmtime.Module) -> None:
        if not self._ensure_private_dir():
            return
        try:
            data = module.serialize()
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".cwasm")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self._path(key))
        except OSError:
            pass  # a read-only or full disk only costs a recompile next time
