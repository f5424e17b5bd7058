"""Direct host imports for WAT and C guests: ``workbench::http_request`` and ``workbench::call``.

Why, beside the device folder (:mod:`.device`): through the folder a request is six WASI calls
(open to write, write, close, open to read, read, close), two of them guarded opens, and two file
rewrites; a denied request cost 10-20x a denied guarded ``open``.  A guest that can import host
functions (WAT, C; the CPython guest cannot) makes **one** host call instead.  Nothing else
changes, because it is the same path:

- **the same services**: one per node and run, shared with the device (``_Run.service_for``), so
  the per-run request cap counts both ways in; and the same :func:`.device.serve` (request and
  response caps, a failing service turned into an error response, the records);
- **the same grants**: ``http_request`` is linked only when the run has the ``http`` node (a
  ``network:`` grant), ``call`` only when it has a ``call/NAME`` node (a ``module:call:`` grant),
  and ``call`` serves only the names granted (another is a ``module``/``call`` deny, as the
  device's ``judge`` records it).  A module importing one without its grant is refused before it
  runs (:func:`refuse_ungranted`: a :class:`LinkError` and a deny record); no stub is linked, so
  the import cannot be reached at all;
- **the guest's buffers** are bounds-checked against its exported memory before anything is
  read or sent, as unsigned 32-bit values (a "negative" pointer is a huge one, and refused).

The ABI (every value an ``i32``; pointers and lengths are offsets into the exported ``memory``)::

    http_request(req_ptr, req_len, resp_ptr, resp_cap) -> n
    call(name_ptr, name_len, req_ptr, req_len, resp_ptr, resp_cap) -> n

Requests and responses are the device's JSON (docs/decisions.md).  ``n >= 0``: the response has
``n`` bytes; the first ``min(n, resp_cap)`` are written at ``resp_ptr`` (``n > resp_cap`` means it
was cut, as with ``snprintf``).  ``n < 0`` is ``-errno`` (WASI numbering) and nothing was sent:
``-21`` (EFAULT) for a buffer outside the guest's memory, or no exported memory.  Such a refusal
is recorded; in kill mode it ends the run.
"""

from __future__ import annotations

import ctypes
import itertools
import uuid
from typing import Any, Iterable

import wasmtime

from .._wasmtime_ffi import WASMTIME_EXTERN_MEMORY, ffi, store_context
from ..errors import LinkError
from ..events import Event
from . import rawlink
from .deadline import KILL_PREFIX
from .device import MAX_REQUEST_BYTES, NodeSpec, error_response, serve

__all__ = ["HOST_MODULE", "HOST_SIGNATURES", "HostCalls", "host_imports_of", "refuse_ungranted", "instantiate_plain"]

HOST_MODULE = "workbench"
#: each import's core wasm type, as :data:`.wasi.WASI_SIGNATURES` writes them
HOST_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "http_request": (("i32",) * 4, ("i32",)),
    "call": (("i32",) * 6, ("i32",)),
}
_IDS = {name: number for number, name in enumerate(HOST_SIGNATURES)}
_HTTP, _CALL = _IDS["http_request"], _IDS["call"]
EFAULT, EIO = 21, 29
#: the longest module name ``call`` reads (names come from capabilities, which are far shorter)
MAX_NAME_BYTES = 128
_U32 = 0xFFFF_FFFF


def host_imports_of(module: wasmtime.Module) -> tuple[str, ...]:
    """The ``workbench`` functions ``module`` imports (its imports were checked: only known ones)."""
    return tuple(imp.name or "" for imp in module.imports if imp.module == HOST_MODULE)


def _grant_missing(nodes: Iterable[NodeSpec], name: str) -> str | None:
    names = [node.name for node in nodes]
    if name == "http_request":
        return None if "http" in names else "network: grant (e.g. network:http:localhost)"
    return None if any(n.startswith("call/") for n in names) else "module:call:NAME grant (e.g. module:call:parser)"


def refuse_ungranted(device: tuple[NodeSpec, ...], names: tuple[str, ...], bus: Any, module: str,
                     sha256: str | None, chain: tuple[str, ...] = ()) -> None:
    """Raise :class:`LinkError` (after a deny record per import) when ``names`` holds an import the
    run's grants do not give; the guest never starts."""
    missing = [(name, need) for name in names if (need := _grant_missing(device, name)) is not None]
    if not missing:
        return
    run_id = uuid.uuid4().hex
    for name, need in missing:
        bus.publish(Event(run_id=run_id, category="network" if name == "http_request" else "module",
                          action="import", decision="deny", target=f"{HOST_MODULE}::{name}", module=module,
                          module_sha256=sha256, caller_chain=chain,
                          reason=f"the module imports {HOST_MODULE}::{name}, which only a {need} gives"))
    shown = ", ".join(f"{HOST_MODULE}::{name}" for name, _ in missing)
    raise LinkError(f"module imports {shown}, which this sandbox's policy does not grant",
                    imports=[f"{HOST_MODULE}::{name}" for name, _ in missing],
                    hint="add " + " and ".join(f"a {need}" for _, need in missing) +
                    ", or remove the import (the refusal is recorded)")


# -- the raw callback: one C function, the run's HostCalls found through the env pointer --------
_hosts: dict[int, "HostCalls"] = {}
_numbers = itertools.count(1)
_NO_FINALIZER = ctypes.cast(None, ctypes.CFUNCTYPE(None, ctypes.c_void_p))  # type: ignore[arg-type]
_func_types: dict[tuple[str, int], wasmtime.FuncType] = {}  # by engine: see guard_link._func_types


def _trap(message: str) -> int:
    data = message.encode()
    return ctypes.cast(ffi.wasmtime_trap_new(data, len(data)), ctypes.c_void_p).value or 0


@ffi.wasmtime_func_unchecked_callback_t
def _on_import(env, caller, args, nargs):  # type: ignore[no-untyped-def]
    try:  # nothing may escape a C callback: the guest is stopped instead
        key = env or 0
        host = _hosts.get(key >> 8)
        if host is None:
            return _trap(f"{KILL_PREFIX}gone")
        if host.watch.check():  # a guest looping on host calls stops at its next call
            return _trap(f"{KILL_PREFIX}stop")
        result = host.serve(key & 0xFF, caller, args)
        if host.killed:
            return _trap(f"{KILL_PREFIX}guard")  # recorded (a kill) before the trap
        if host.watch.check():  # a call (a callee's run) may have used up the caller's time
            return _trap(f"{KILL_PREFIX}stop")
        args[0].i32 = result
        return 0
    except BaseException as exc:
        return _trap(f"workbench host import failed: {exc!r}")


class HostCalls:
    """One run's host imports: the raw functions it links and what they serve."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.emit = run.emit
        self.watch = run.watch
        self.kills = run.plan.on_violation.kills
        self.nodes = {node.name: node for node in run.plan.device}
        self.killed = False
        self.number = next(_numbers)
        self._memory: Any = None  # the guest's memory export (a wasmtime_extern_t), found at the first call
        _hosts[self.number] = self

    def close(self) -> None:
        _hosts.pop(self.number, None)

    def extern(self, store: wasmtime.Store, name: str) -> Any:
        """The raw host function for import ``name``, as an extern for an import slot."""
        key = (name, ctypes.addressof(store.engine.ptr().contents))
        ty = _func_types.get(key)
        if ty is None:
            params, results = HOST_SIGNATURES[name]
            ty = _func_types[key] = wasmtime.FuncType([wasmtime.ValType.i32() for _ in params],
                                                      [wasmtime.ValType.i32() for _ in results])
        func = ffi.wasmtime_func_t()
        ffi.wasmtime_func_new_unchecked(store_context(store), ty.ptr(), _on_import,
                                        ctypes.c_void_p((self.number << 8) | _IDS[name]), _NO_FINALIZER,
                                        ctypes.byref(func))
        return rawlink.func_extern(func)

    # -- one call -------------------------------------------------------------------------------
    def serve(self, fn: int, caller: Any, args: Any) -> int:
        """Serve one call; returns the response's length, or ``-errno`` (recorded) when nothing was sent."""
        values = [args[i].i32 & _U32 for i in range(4 if fn == _HTTP else 6)]
        label = f"{HOST_MODULE}::{'http_request' if fn == _HTTP else 'call'}"
        category, action = ("network", "request") if fn == _HTTP else ("module", "call")
        try:
            view = self._view(caller)
            buffers = {"request": values[-4:-2], "response": values[-2:]}
            if fn == _CALL:
                buffers = {"name": values[:2], **buffers}
            for what, (ptr, length) in buffers.items():
                if view is None or ptr + length > view[1]:
                    where = "the module exports no memory" if view is None else f"its memory holds {view[1]:,} bytes"
                    return self._refuse(label, category, action, EFAULT,
                                        f"{label}: the {what} buffer [{ptr:#x}, +{length:,}) lies outside the "
                                        f"guest's memory ({where}); nothing was sent")
            base = view[0]  # type: ignore[index]
            if fn == _CALL:
                node, response = self._callee(base, *values[:2])
            else:
                node, response = self.nodes["http"], None
            if response is None:
                assert node is not None
                ptr, length = values[-4:-2]
                request = ctypes.string_at(base + ptr, min(length, MAX_REQUEST_BYTES + 1)) if length else b""
                target = label if fn == _HTTP else f"{label} {node.name[5:]}"
                response = serve(node, self.run.service_for(node), request[:MAX_REQUEST_BYTES],
                                 length > MAX_REQUEST_BYTES, self.emit, target)
            return self._hand_back(caller, response, *values[-2:])
        except Exception as exc:  # a defect of ours: fail closed, recorded, never into wasmtime
            return self._refuse(label, category, action, EIO, f"{label} failed in the host: {exc!r}")

    def _callee(self, base: int, ptr: int, length: int) -> tuple[NodeSpec | None, bytes | None]:
        """The ``call/NAME`` node the guest names, or (None, an error response already recorded)."""
        raw = ctypes.string_at(base + ptr, min(length, MAX_NAME_BYTES + 1)) if length else b""
        try:
            name = raw.decode("utf-8") if length <= MAX_NAME_BYTES else None
        except UnicodeDecodeError:
            name = None
        if name is None or not name:
            reason = (f"the module name must be 1 to {MAX_NAME_BYTES} bytes of UTF-8 "
                      f"({length:,} bytes given{', not UTF-8' if length <= MAX_NAME_BYTES else ''})")
            self.emit("module", "call", "deny", target=raw[:64].decode("utf-8", "replace") or None,
                      resolved=f"{HOST_MODULE}::call", reason=reason, detail={"error": "invalid"})
            return None, error_response("invalid", reason)
        node = self.nodes.get(f"call/{name}")
        if node is None or node.make is None:
            reason = f"no module:call grant covers {name!r}"
            self.emit("module", "call", "deny", target=name, resolved=f"{HOST_MODULE}::call", reason=reason,
                      detail={"error": "denied"})
            return None, error_response("denied", reason)
        return node, None

    def _hand_back(self, caller: Any, response: bytes, ptr: int, cap: int) -> int:
        view = self._view(caller)  # again: a memory only grows, but read it after the service ran
        written = min(len(response), cap)
        if view is None or ptr + written > view[1]:  # pragma: no cover - checked before the call
            raise RuntimeError("the response buffer left the guest's memory")
        if written:
            ctypes.memmove(view[0] + ptr, response, written)
        return len(response)

    def _view(self, caller: Any) -> tuple[int, int] | None:
        """(address, size) of the calling guest's exported memory, or None when it exports none."""
        context = ffi.wasmtime_caller_context(caller)
        if self._memory is None:
            item = ffi.wasmtime_extern_t()
            found = ffi.wasmtime_caller_export_get(caller, b"memory", 6, ctypes.byref(item))
            kind: Any = item.kind  # ctypes reads the field as an int
            if not found or kind != WASMTIME_EXTERN_MEMORY.value:
                return None
            self._memory = item
        raw = ctypes.byref(self._memory.of.memory)
        size = ffi.wasmtime_memory_data_size(context, raw)
        return (ctypes.addressof(ffi.wasmtime_memory_data(context, raw).contents) if size else 0), size

    def _refuse(self, label: str, category: str, action: str, errno: int, reason: str) -> int:
        decision = "kill" if self.kills else "deny"
        self.emit(category, action, decision, target=label, reason=reason, errno=errno, detail={"import": label})
        if self.kills:
            self.killed = True
            self.watch.stop("guard", reason)
        return -errno


def instantiate_plain(store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module, host: HostCalls,
                      tracer: Any = None) -> rawlink.Exports:
    """Instantiate a guest that has no guard plan but imports host functions (WASI from ``linker``);
    ``tracer``: a :class:`~.trace.Tracer` whose layer goes between the guest and its WASI imports."""
    imports = module.imports
    externs = (ffi.wasmtime_extern_t * len(imports))()
    for slot, imp in enumerate(imports):
        if imp.module == HOST_MODULE:
            externs[slot] = host.extern(store, imp.name or "")
        else:
            rawlink.linker_get(linker, store, imp.module.encode(), (imp.name or "").encode(), externs[slot])
    if tracer is not None:
        tracer.wrap(store, externs)
    exports = rawlink.Exports(store, rawlink.instantiate(store, module, externs), module)
    if tracer is not None:
        tracer.attach(store, linker, exports.get("memory"))
    return exports
