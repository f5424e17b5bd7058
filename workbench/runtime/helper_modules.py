"""The sandbox's own small helper modules (the guard's forwarder and guard), compiled once per machine.

Each guest that touches the filesystem or clocks runs behind two helper modules made from
WAT text (:mod:`.guard_wasm`).  Compiling them costs ~30-50 ms, which every new process
paid before its first guarded run.  They are kept in the compile cache's folder, under
the same trust rules (:mod:`.private_files`), keyed by the text's sha256 and the engine
settings that change native code; a damaged or stale artifact is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib

import wasmtime

from .cache import default_cache_dir
from .engine import EngineHandle
from .private_files import read_identified, write_identified

__all__ = ["helper_module"]


def helper_module(handle: EngineHandle, wat: str) -> wasmtime.Module:
    """``wat`` compiled on ``handle``'s engine: from the cache's folder, else compiled and kept there."""
    directory = default_cache_dir()
    key = f"helper-1|{hashlib.sha256(wat.encode()).hexdigest()}|{handle.settings.artifact_fingerprint()}"
    name = f"helper-{hashlib.sha256(key.encode()).hexdigest()[:24]}"
    path, record = directory / f"{name}.cwasm", directory / f"{name}.cwasm-meta"
    if path.is_file() and read_identified(directory, record, key, (path,)) is not None:
        try:
            return wasmtime.Module.deserialize_file(handle.engine, str(path))
        except Exception:
            path.unlink(missing_ok=True)  # e.g. another wasmtime's artifact: rebuilt below
    module = wasmtime.Module(handle.engine, wat)
    write_identified(directory, record, key, {path: module.serialize()})
    return module
