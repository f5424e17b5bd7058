"""Calls on descriptors, judged by the rules of the path each descriptor was opened for.

Wrapped only in runs with fine rules (:class:`~workbench.runtime.guard_wasm.GuardLayout`):
``fd_filestat_set_times``, ``fd_filestat_set_size``, ``fd_allocate``, ``fd_write``, ``fd_pwrite``
and ``fd_readdir`` are refused (and recorded) when the descriptor's path may not be changed or
listed; ``fd_close`` and ``fd_renumber`` keep the descriptor table true.  ``poll_oneoff`` is here
too: a sleep is cut at the run's deadline, which an epoch check cannot interrupt.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

from .fdtable import FdEntry
from .guard_abi import FdClose, FdReaddir, FdRenumber, PollOneoff
from .guard_core import ACTIONS, EACCES, GuardCore, Pending, Refusal
from .guard_decisions import Verdict
from .errnos import WASI

EFBIG = WASI["EFBIG"]

__all__ = ["DescriptorCalls"]


class DescriptorCalls(GuardCore):
    """Handlers for the descriptor calls (each takes the raw argument array)."""

    def _renumber(self, a: FdRenumber) -> int:
        self.pending = Pending("fd_renumber", "", None, False, None, "", "allow", {"from": a.fd, "to": a.to})
        return 0

    def _poll(self, a: PollOneoff) -> int:
        self._clamp_sleep(a.subscriptions, a.n_subscriptions)
        self.pending = Pending("poll_oneoff", "", None, False, None, "", "allow", {})
        return 0

    def _fd_judged(self, fd: int, write: bool, directory: bool) -> tuple[FdEntry, Verdict] | None:
        entry = self.fds.get(fd)
        if entry is None or not entry.mount.fine or self.mode == "audit":
            return None
        return entry, self.decisions.decide(entry.path, write, directory and entry.directory, entry.mount)

    def _fd_refuse(self, entry: FdEntry, verdict: Verdict, fd: int) -> int:
        action = ACTIONS[self._fn]
        reason = f"descriptor {fd} was opened for {entry.path}: {verdict.reason}"
        return self._refuse(action, entry.path, Refusal(EACCES, reason, entry.path, verdict.capability), {"fd": fd})

    def _fd_change(self, a: Any) -> int:
        fd = a.fd
        entry = self.fds.get(fd)
        if entry is not None and entry.mount.device is not None:  # a node's size and times are the device's
            return self._device_refuse(entry, fd, f"{entry.path} is a device node: its size and times cannot be set")
        judged = self._fd_judged(fd, True, False)
        if judged is None:
            return 0
        entry, verdict = judged
        if not verdict.allowed:
            return self._fd_refuse(entry, verdict, fd)
        self.emit("filesystem", ACTIONS[self._fn], "allow", target=entry.path, resolved=entry.path,
                  capability=verdict.capability, reason=verdict.reason, detail={"fd": fd})
        return 0

    def _fd_write(self, a: Any) -> int:
        fd = a.fd
        entry = self.fds.get(fd)
        if entry is None:
            return 0
        if entry.mount.device is not None:
            return self._device_write(entry, a)
        if not entry.mount.fine or entry.may_write or self.mode == "audit":
            return 0
        judged = self._fd_judged(fd, True, False)
        assert judged is not None
        if judged[1].allowed:
            return 0
        return self._fd_refuse(entry, judged[1], fd)

    def _device_write(self, entry: FdEntry, a: Any) -> int:
        """A write into a device node: only at the end (``fd_write``), at most the request cap in all."""
        if self._fn == "fd_pwrite":
            return self._device_refuse(entry, a.fd, f"{entry.path} is a device node: write the request in order "
                                                    "(fd_write), not at an offset")
        count, iovs = a.iovs_len, a.iovs
        if count < 0 or count > 1024 or iovs < 0:
            return 0  # the real call reports EFAULT/EINVAL
        base, size = self._base(iovs + 8 * count)
        if iovs + 8 * count > size:
            return 0
        adding = sum(ctypes.c_uint32.from_address(base + iovs + 8 * i + 4).value for i in range(count))
        why = entry.mount.device.written(entry.path, adding)
        if why is None:
            return 0
        return self._device_refuse(entry, a.fd, why, EFBIG)

    def _device_refuse(self, entry: FdEntry, fd: int, why: str, errno: int = EACCES) -> int:
        return self._refuse(ACTIONS[self._fn], entry.path, Refusal(errno, why, entry.path), {"fd": fd})

    def _fd_readdir(self, a: FdReaddir) -> int:
        fd = a.fd
        judged = self._fd_judged(fd, False, True)
        if judged is None or judged[1].allowed:
            return 0
        return self._fd_refuse(judged[0], judged[1], fd)

    def _fd_close(self, a: FdClose) -> int:
        self.fds.closed(a.fd)
        return 0

    def _clamp_sleep(self, subscriptions: int, count: int) -> None:
        """Cut every clock timeout of a ``poll_oneoff`` at the run's deadline.

        A guest blocked in a host call cannot be interrupted by an epoch check, so a
        ``sleep(60)`` under ``time:limit:1s`` would outlast its limit; with its timeout
        cut it wakes at the deadline and the next epoch check stops it.
        """
        deadline = self.deadline()
        if deadline is None or self.memory is None or count <= 0:
            return
        remaining = max(int((deadline - time.monotonic()) * 1e9), 0)
        base, size = self._base(subscriptions + 48 * count)
        if subscriptions < 0 or count > size // 48 or subscriptions + 48 * count > size:
            return  # the real call reports EFAULT
        for index in range(count):
            sub = base + subscriptions + 48 * index  # subscription: userdata u64, tag u8 @8, clock @16
            if ctypes.c_uint8.from_address(sub + 8).value != 0:
                continue  # an fd subscription: stdin is never blocking here, sockets are never granted
            clock_id = ctypes.c_uint32.from_address(sub + 16).value
            timeout = ctypes.c_uint64.from_address(sub + 24)
            if ctypes.c_uint16.from_address(sub + 40).value & 1:  # absolute time on that clock
                now = time.time_ns() if clock_id == 0 else time.monotonic_ns() - self.clock_base_ns
                timeout.value = min(timeout.value, now + remaining)
            else:
                timeout.value = min(timeout.value, remaining)
