"""The guard's side of the device's one-call exchange: a ``path_readlink`` on ``/dev/workbench/<node>/x-...``.

Why here and not in wasmtime: the path names no file; the guard itself answers the call
(``HANDLED``), with the node's answer from :mod:`device_link` written into the guest's buffer.
The buffer is checked before the request is served, so a guest that hands a buffer outside its
memory gets ``EFAULT`` (recorded) and no request is made.  An exchange answered is recorded by
its service alone (``network``/``request``, ``module``/``call``, ``device``/``request``), as a
request through a host import is: a second, ``filesystem`` record per request cost a guest about a
tenth of its request (benchmarks/bench_network_python.py), and the trace still shows the
``path_readlink``.  An exchange that fails after it was served (its answer could not be handed
over) is recorded as a ``filesystem``/``readlink`` event naming the node, the token cut short.
"""

from __future__ import annotations

from typing import Any

from .device_link import answer, more, shown
from .errnos import WASI
from .guard_abi import PathReadlink
from .guard_core import EACCES, EFAULT, GuardCore, Refusal, Target
from .guard_wasm import HANDLED

__all__ = ["ExchangeCalls"]

ERANGE, EIO = WASI["ERANGE"], WASI["EIO"]


class ExchangeCalls(GuardCore):
    """``path_readlink`` exchanges with the device's nodes."""

    def _exchange(self, target: Target, node_path: str, token: str, a: PathReadlink, detail: dict[str, Any]) -> int:
        device = target.mount.device
        raw = target.raw  # cut short by shown() only when recorded
        target.close()
        verdict, why = device.judge(node_path, False, "readlink")  # records a call/NAME not granted
        if verdict is None or node_path not in device.services:
            why = why or f"{node_path} takes no requests (it is read-only)"
            return self._refuse("readlink", shown(raw), Refusal(EACCES, why, node_path), detail)
        room = a.buf_len
        _, size = self._base(max(a.buf + max(room, 0), a.size_out + 4))
        if room < 0 or a.buf < 0 or a.size_out < 0 or a.buf + room > size or a.size_out + 4 > size:
            reason = f"the readlink buffer of an exchange with {node_path} lies outside the guest's memory; not served"
            return self._refuse("readlink", shown(raw), Refusal(EFAULT, reason, node_path), detail)
        reply = answer(device, node_path, token)
        data: bytes | None = reply
        errno = 0
        if len(reply) > room:
            try:
                device.keep(node_path, reply)
                data = more(node_path, len(reply), room)
            except OSError:
                data, errno = None, EIO
            if data is not None and len(data) > room:
                data, errno = None, ERANGE
        size_bytes = len(data).to_bytes(4, "little") if data is not None else b""
        if data is not None and not (self._write(a.buf, data) and self._write(a.size_out, size_bytes)):
            data, errno = None, EFAULT
        if not errno:  # recorded by the service, as a request through a host import is
            return HANDLED
        detail.update(exchange="readlink", request_chars=len(token), answer_bytes=len(reply),
                      kept=len(reply) > room and errno != EIO)
        self.emit("filesystem", "readlink", "audit" if self.mode == "audit" else "allow", target=shown(raw),
                  resolved=node_path, capability=verdict.capability, reason=verdict.reason, errno=errno, detail=detail)
        return HANDLED | errno
