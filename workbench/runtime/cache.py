"""The compile cache: compiled modules serialised to disk, and kept in memory.

Key: ``sha256(wasm bytes)`` + the wasmtime version + the engine configuration
that changes the native code (:meth:`EngineSettings.artifact_fingerprint`), because a
serialized module loads only into an engine with the same settings (design.md §5).  Modules
kept in memory are keyed by the whole engine (:meth:`EngineSettings.fingerprint`): a live
module belongs to the engine that made it.  A second run of the same module,
even in a new process, then deserialises (milliseconds) instead of compiling
(seconds for a large module).

A module with large data is compiled without its active data, which becomes an image
mapped copy-on-write into each instance (:mod:`.data_image`); the image is kept beside
the artifact (``.image``, empty when nothing was lifted), and an artifact whose image
is missing is treated as a miss: it must never run without its data.  A module with a
table that may grow past the sandbox's table cap is compiled with its ``table.grow``
instructions instrumented, so a refusal is seen (:mod:`.table_watch`).

Trust: ``Module.deserialize_file`` runs native code from the file, so the cache
folder must be writable by this user only.  It is created with mode 0700, files
are written atomically (temp file + rename) and a folder that others can write to
is refused rather than used (:mod:`.private_files`).  Beside each artifact, a checked
record (``.meta``) holds the size, times and inode of the artifact and its image as
written: an artifact that no longer matches (truncated, resized, replaced) is deleted
and recompiled, never deserialised.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import wasmtime

from . import data_image, table_watch
from .compiler import CompileBounds, compile_module
from .engine import STORE_CAPS, EngineHandle
from .private_files import ensure_private_dir, read_identified, write_identified

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
        """The artifact's name on disk: the same for engines that differ only at run time."""
        return f"{wasm_sha256}-{_settings_digest(handle.settings.artifact_fingerprint())}"

    def _memory_key(self, wasm_sha256: str, handle: EngineHandle) -> str:
        return f"{wasm_sha256}-{_settings_digest(handle.settings.fingerprint())}"

    def get(
        self,
        wasm: Callable[[], bytes],
        wasm_sha256: str,
        handle: EngineHandle,
        *,
        check: Callable[[bytes], None] | None = None,
        bounds: CompileBounds | None = None,
    ) -> wasmtime.Module:
        """The compiled module on ``handle``'s engine: memory, then disk, then compile.

        ``wasm`` returns the module's bytes; it is called only on a miss (a large
        interpreter need not be read from disk when its compiled form is cached).
        ``check`` sees the bytes before they are compiled and may raise: a module that
        will be refused then costs no compile.  ``bounds``: what the compile may take, when not the
        defaults (:data:`~.compiler.COMPILE_BOUNDS`): a pinned interpreter larger than any guest's module.
        """
        key, memory_key = self.key(wasm_sha256, handle), self._memory_key(wasm_sha256, handle)
        with self._lock:
            module = self._memory.get(memory_key)
            if module is not None:
                self._memory.move_to_end(memory_key)
                self.hits += 1
                return module
        loaded = self._load(key, handle)
        if loaded is None:
            raw = wasm()
            if check is not None:
                check(raw)
            lifted, image_bytes = data_image.lift(table_watch.instrument(raw, STORE_CAPS.table_elements))
            module = compile_module(handle, lifted, bounds)  # bounded; may raise, the caller explains the error
            image = data_image.DataImage(image_bytes) if image_bytes is not None else None
            self.compiles += 1
            self._store(key, module, image_bytes or b"")
        else:
            module, image = loaded
            self.disk_hits += 1
        data_image.attach(module, image)
        with self._lock:
            self._memory[memory_key] = module
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)
        return module

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.cwasm"

    def _image_path(self, key: str) -> Path:
        return self.directory / f"{key}.image"

    def _meta_path(self, key: str) -> Path:
        return self.directory / f"{key}.meta"

    def _ensure_private_dir(self) -> bool:
        return ensure_private_dir(self.directory)

    def _load(self, key: str, handle: EngineHandle) -> tuple[wasmtime.Module, data_image.DataImage | None] | None:
        path, image_path = self._path(key), self._image_path(key)
        if not path.is_file() or not self._ensure_private_dir():
            return None
        # the artifact and its image as this cache wrote them (size, times, inode): a truncated,
        # resized or replaced file is never deserialised (and no 60 MB is hashed per process)
        if read_identified(self.directory, self._meta_path(key), key, (image_path, path)) is None:
            return None
        try:
            image_bytes = image_path.read_bytes()
            module = wasmtime.Module.deserialize_file(handle.engine, str(path))
        except Exception:
            # stale or damaged artifact (e.g. written by another wasmtime): drop and recompile
            for stale in (path, image_path, self._meta_path(key)):
                stale.unlink(missing_ok=True)
            return None
        return module, (data_image.DataImage(image_bytes) if image_bytes else None)

    def _store(self, key: str, module: wasmtime.Module, image: bytes) -> None:
        # the image first, the record last: an artifact is never used without both
        write_identified(self.directory, self._meta_path(key), key,
                         {self._image_path(key): image, self._path(key): module.serialize()})
