"""The device folder ``/dev/workbench``: the host's services, reached through the filesystem.

Why a folder: WASI preview 1 has no sockets and no calls between modules, and a CPython guest
cannot import host functions, but every guest can open, write and read files, and every path
call already passes through the guard.  So a service is a *node* (Plan 9's ``/net``):

1. the guest opens the node for writing and writes one JSON request (``O_TRUNC``), closes it;
2. the guest opens the node for reading: at that ``path_open``, before the real call, the
   guard reads the request (a capped copy), hands it to the service's ``handle(bytes) -> bytes``
   and writes the (capped) response into the node; the guest then reads it like a file.

A guest may also make a request in one call, a ``readlink`` of ``<node>/x-<token>``, answered
through the same :func:`serve` (``device_link.py``; the Python helper does so).

The nodes are real files in a private folder made for the run and preopened at
``/dev/workbench`` only when a grant (``network:...``, ``module:call:NAME``) or the host
(``Sandbox(services=...)``) gives the run a node; without one the folder does not exist, and a
guest that looks for it reaches the empty ``/`` and is denied and recorded like any ungranted
path.  Inside the folder the guard decides every call itself (:meth:`Device.judge`): the nodes
may be read and written, the folders listed, nothing else; no name may be created, changed or
removed.  The guard also caps what a guest writes into a node (:meth:`Device.written`), so a
request can never fill the host's disk.  A service never raises into wasmtime: a failure of
its own becomes a JSON error response and a record.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from ..policy.decision import AccessDecision
from .guard_decisions import Verdict

__all__ = [
    "DEVICE_PATH", "HELPER_NODE", "MAX_REQUEST_BYTES", "MAX_RESPONSE_BYTES", "Service", "NodeSpec", "Device",
    "error_response", "serve", "close_services",
]

DEVICE_PATH = "/dev/workbench"
#: the Python guest's helper module, a read-only node (``import workbench_guest`` reads it)
HELPER_NODE = "workbench_guest.py"
#: the largest request a guest may write into a node (more fails the write with EFBIG)
MAX_REQUEST_BYTES = 1 << 20
#: the largest response the device hands back (a larger one is replaced by a ``too_large`` error)
MAX_RESPONSE_BYTES = 16 << 20
_NO_REQUEST = b'{"ok": false, "error": "invalid", "reason": "no request yet: write a JSON request to this node, ' \
              b'close it, then open it for reading"}'


class Service(Protocol):
    """What a node serves: one request in, one response out, as bytes (UTF-8 JSON by convention).
    It must not raise for anything a guest sends; the device turns an exception into an error."""

    def handle(self, request: bytes) -> bytes: ...


def error_response(error: str, reason: str) -> bytes:
    """The JSON error every service and the device itself answer with."""
    return json.dumps({"ok": False, "error": error, "reason": reason}).encode()


@dataclass(frozen=True)
class NodeSpec:
    """One node of the device, as planned: its name below ``/dev/workbench`` (``http``,
    ``call/parser``), the rule that grants it (capability text, or None when the host gave it),
    the event category its requests are recorded under, and either a service factory
    (called once per run with the run) or fixed read-only content."""

    name: str
    capability: str | None
    category: str
    make: Callable[[Any], Service] | None = None
    content: bytes | None = None


class Device:
    """The device folder of one run: its private host folder, its nodes and their services."""

    def __init__(self, nodes: tuple[NodeSpec, ...], run: Any, emit: Callable[..., Any], guest: str = DEVICE_PATH,
                 service: Callable[[NodeSpec], Service] | None = None):
        """``service``: where a node's service comes from (the run's, shared with its host imports:
        ``host_imports.py``), which then also closes them; by default each is made here."""
        self.guest = guest
        self.emit = emit
        self._owns = service is None
        self.host = tempfile.mkdtemp(prefix="workbench-dev-", dir=_memory_folder())
        self.nodes: dict[str, NodeSpec] = {}
        self.services: dict[str, Service] = {}
        self.folders = {guest}
        self.pending: set[str] = set()  # nodes written to since their last answer
        #: each node's (fixed) allow verdict, made once: parsing its rule at every open cost a third
        #: of a request through the device (benchmarks/bench_network_device.py)
        self._verdicts: dict[str, Verdict] = {}
        try:
            for node in nodes:
                path = f"{guest}/{node.name}"
                parent = os.path.dirname(node.name)
                if parent:
                    os.makedirs(os.path.join(self.host, parent), exist_ok=True)
                    self.folders.add(f"{guest}/{parent}")
                with open(os.path.join(self.host, node.name), "wb") as out:
                    out.write(node.content if node.content is not None else _NO_REQUEST)
                if node.content is not None:
                    os.chmod(os.path.join(self.host, node.name), 0o444)
                self.nodes[path] = node
                rule = node.capability
                reason = f"{path} is a device node granted by {rule!r}" if rule else f"{path} is a node the host serves"
                self._verdicts[path] = Verdict.of(AccessDecision(True, None, reason)) if rule is None \
                    else _verdict(rule, reason)
                if node.make is not None:
                    self.services[path] = node.make(run) if service is None else service(node)
            self.fd = os.open(self.host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except BaseException:
            shutil.rmtree(self.host, ignore_errors=True)
            raise

    def close(self) -> None:
        if self._owns:
            close_services(self.services.values())
        try:
            os.close(self.fd)
        except OSError:
            pass
        shutil.rmtree(self.host, ignore_errors=True)

    # -- the guard's questions ------------------------------------------------------------------
    def judge(self, path: str, write: bool, action: str) -> tuple[Verdict | None, str]:
        """The device's decision on one call: (a verdict, "") when allowed, (None, reason) when not.
        Only listing the folders and opening, reading, writing and describing nodes are allowed."""
        node = self.nodes.get(path)
        if node is not None:
            if action not in ("open", "stat", "readlink"):
                return None, f"{path} is a node of {self.guest}: its name cannot be changed, linked or removed"
            if write and node.make is None:
                return None, f"{path} is read-only"
            return self._verdicts[path], ""
        if path in self.folders:
            if write or action not in ("open", "stat"):
                return None, f"{path} is the device folder: nothing in it can be created, changed or removed"
            return Verdict.plain(True, f"{path}: listing the device folder"), ""
        if path.startswith(f"{self.guest}/call/"):
            name = path[len(self.guest) + 6:]
            reason = f"no module:call grant covers {name!r}: {path} is not a node of this run"
            self.emit("module", "call", "deny", target=name, resolved=path, reason=reason)
            return None, reason
        return None, f"{path} is not a node of {self.guest} (its nodes: {', '.join(sorted(self.nodes)) or 'none'})"

    def opened(self, path: str, write: bool) -> None:
        """A node was opened: for writing, a request follows; for reading, answer it now."""
        if path not in self.services:
            return
        if write:
            self.pending.add(path)
        elif path in self.pending:
            self.pending.discard(path)
            self._answer(path)

    def written(self, path: str, adding: int) -> str | None:
        """May ``adding`` more bytes be written into node ``path``?  None, or why not."""
        node = self.nodes.get(path)
        if node is None or node.make is None:
            return f"{path} is not a node that takes requests"
        try:
            size = os.stat(node.name, dir_fd=self.fd, follow_symlinks=False).st_size
        except OSError:
            size = 0
        if size + adding > MAX_REQUEST_BYTES:
            return (f"a request to {path} may hold at most {MAX_REQUEST_BYTES:,} bytes "
                    f"({size:,} written, {adding:,} more asked)")
        return None

    def keep(self, path: str, data: bytes) -> None:
        """Make ``data`` node ``path``'s content, to be read as it is: the answer of a readlink
        exchange (``device_link.py``) too large for the guest's buffer, fetched whole by reading
        the node (no second request is made; a request written but not yet answered is dropped)."""
        self.pending.discard(path)
        self._write(self.nodes[path].name, data)

    # -- one exchange -------------------------------------------------------------------------
    def _answer(self, path: str) -> None:
        node = self.nodes[path]
        request, too_large = self._read(node.name)
        self._write(node.name, serve(node, self.services[path], request, too_large, self.emit, path))

    def _read(self, name: str) -> tuple[bytes, bool]:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return b"", False
        try:
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_REQUEST_BYTES:
                chunk = os.read(fd, MAX_REQUEST_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        return data[:MAX_REQUEST_BYTES], len(data) > MAX_REQUEST_BYTES

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def serve(node: NodeSpec, service: Service, request: bytes, too_large: bool, emit: Callable[..., Any],
          target: str) -> bytes:
    """One request to one response, with the device's caps and records; shared by the nodes and the
    direct host imports (``host_imports.py``), so both paths check and record the same.

    ``too_large``: the guest offered more than :data:`MAX_REQUEST_BYTES` (``request`` holds at most
    that); ``target``: what the records name (the node's path, or the import).  Never raises."""
    detail: dict[str, Any] = {"request_bytes": len(request)}
    if too_large:
        emit(node.category, "request", "deny", target=target, capability=node.capability,
             reason=f"request larger than {MAX_REQUEST_BYTES:,} bytes; refused", detail=detail)
        return error_response("too_large", f"the request is larger than {MAX_REQUEST_BYTES:,} bytes")
    try:
        response = service.handle(request)
        if not isinstance(response, (bytes, bytearray)):
            raise TypeError(f"the service answered {type(response).__name__}, not bytes")
        response = bytes(response)
    except Exception as exc:  # never into wasmtime: the guest gets an error, the record says why
        reason = f"the service behind {target} failed: {type(exc).__name__}: {exc}"
        response = error_response("invalid", reason)
        emit(node.category, "request", "deny", target=target, capability=node.capability, reason=reason,
             detail=detail)
    if len(response) > MAX_RESPONSE_BYTES:
        reason = f"the response ({len(response):,} bytes) is larger than {MAX_RESPONSE_BYTES:,} bytes"
        emit(node.category, "request", "deny", target=target, capability=node.capability,
             reason=reason + "; replaced by an error", detail=detail)
        response = error_response("too_large", reason)
    if node.category == "device":  # a host service records nothing itself: the device does
        emit("device", "request", "allow", target=target, reason="answered by the host's service",
             detail={**detail, "response_bytes": len(response)})
    return response


def close_services(services: Any) -> None:
    """Close each service that has a ``close`` (a failure there is the service's own)."""
    for service in services:
        closing = getattr(service, "close", None)
        if closing is not None:
            try:
                closing()
            except Exception:
                pass


def _memory_folder() -> str | None:
    """``/dev/shm`` when it is a folder this process may write to, else None (the default temp folder).

    Why: every request rewrites its node from the start (``O_TRUNC``), and ext4 flushes a file
    truncated and written again when it is closed; in memory a denied request cost 262 us against
    582 us in ``/tmp`` on ext4 (benchmarks/bench_network_device.py).  The folder is made 0700 either way.
    """
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK) else None


def _verdict(rule: str, reason: str) -> Verdict:
    from ..policy import Capability

    return Verdict.of(AccessDecision(True, Capability.parse(rule), reason))


def host_nodes(services: Mapping[str, Service]) -> tuple[NodeSpec, ...]:
    """Nodes for services the host hands a sandbox (``Sandbox(services=...)``)."""
    return tuple(NodeSpec(name, None, "device", make=_fixed(service)) for name, service in services.items())


def _fixed(service: Service) -> Callable[[Any], Service]:
    def make(run: Any) -> Service:
        return service

    return make
