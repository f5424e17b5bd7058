"""The calls that change names, performed by the guard itself in mounts with fine rules.

``mkdir``, ``rmdir``, ``unlink``, ``rename``, ``link``, ``symlink``, ``readlink`` and ``utimes``
by path: in a fine mount the guard resolves the path (:mod:`hostwalk`), judges the object it
reached and acts on exactly that object with ``*at()`` calls on the folder descriptor it holds,
so nothing is resolved twice.  Elsewhere it judges the path and lets wasmtime's WASI perform
the call.  Two rules live here: a rename may not lift a rule from what it moves
(:meth:`NameCalls._check_move`), and a guest may plant only symlinks that stay inside their
mount and lead where it may read (:meth:`NameCalls._check_link_text`).
"""

from __future__ import annotations

import os
import posixpath
import stat as st
import time
from typing import Any, Callable

from ..policy import paths as guest_paths
from .guard_abi import (
    PathCreateDirectory,
    PathFilestatSetTimes,
    PathLink,
    PathReadlink,
    PathRemoveDirectory,
    PathRename,
    PathSymlink,
    PathUnlinkFile,
)
from .errnos import WASI
from .device_link import PREFIX, cut_in, exchange_of, shown
from .guard_core import EACCES, EEXIST, EINVAL, ENOENT, EPERM, Pending, Refusal, Target
from .guard_decisions import Verdict, inside
from .guard_exchange import ExchangeCalls
from .guard_wasm import HANDLED
from .hostwalk import Walk

__all__ = ["NameCalls"]

_FOLLOW = 1
_ATIM, _ATIM_NOW, _MTIM, _MTIM_NOW = 1, 2, 4, 8
#: a WASI timestamp is a u64 of ns; os.utime takes an i64, so a later one is the latest it can set
#: (year 2262; file systems clamp earlier still, as they do for wasmtime's own call)
_MAX_NS = (1 << 63) - 1


class NameCalls(ExchangeCalls):
    """Handlers for the name-changing WASI calls (each takes the raw argument array)."""

    def _name_call(self, a: Any, action: str, directory: bool, op: Callable[[Walk], None]) -> int:
        """mkdir, rmdir, unlink: one path, no follow; performed by the guard in fine mounts."""
        dirfd, ptr, length = a.dirfd, a.path, a.path_len
        detail: dict[str, Any] = {"rights": "write"}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
        except Refusal as refusal:
            return self._refuse(action, self._raw_of(ptr, length), refusal, detail)
        try:
            verdict = self._judge(target, True, directory, action)
        except Refusal as refusal:
            target.close()
            return self._refuse(action, target.raw, refusal, self._links(detail, target))
        walked = target.walk
        if walked is not None and target.mount.fine:
            if not walked.name:
                target.close()
                self._record(action, target, verdict, EEXIST if action == "mkdir" else WASI["EBUSY"], detail)
                return HANDLED | (EEXIST if action == "mkdir" else WASI["EBUSY"])
            return self._perform(action, target, verdict, self._links(detail, target), lambda: op(walked))
        self.pending = Pending(self._fn, target.raw, target.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", self._links(detail, target), target)
        return 0

    def _mkdir(self, a: PathCreateDirectory) -> int:
        return self._name_call(a, "mkdir", True, lambda w: os.mkdir(w.name, 0o777, dir_fd=w.parent_fd))

    def _rmdir(self, a: PathRemoveDirectory) -> int:
        return self._name_call(a, "rmdir", True, lambda w: os.rmdir(w.name, dir_fd=w.parent_fd))

    def _unlink(self, a: PathUnlinkFile) -> int:
        def unlink(w: Walk) -> None:
            if w.stat is not None and st.S_ISDIR(w.stat.st_mode):
                raise IsADirectoryError(21, "is a folder")
            os.unlink(w.name, dir_fd=w.parent_fd)

        return self._name_call(a, "unlink", False, unlink)

    def _two(self, action: str, first: tuple[int, int, int, bool], second: tuple[int, int, int],
             detail: dict[str, Any]) -> tuple[Target, Target, Verdict] | int:
        """Both names of a rename or link: resolved (both walked when either lies in a fine mount,
        so the guard can act on both objects), and each writable."""
        entries = (self.fds.get(first[0]), self.fds.get(second[0]))
        fine = any(e is not None and e.mount.fine for e in entries)
        try:
            old = self._target(first[0], first[1], first[2], follow=first[3], name_op=True, walk_always=fine)
        except Refusal as refusal:
            return self._refuse(action, self._raw_of(first[1], first[2]), refusal, detail)
        try:
            new = self._target(second[0], second[1], second[2], follow=False, name_op=True, walk_always=fine)
        except Refusal as refusal:
            old.close()
            return self._refuse(action, self._raw_of(second[1], second[2]), refusal, detail)
        detail["to"] = new.resolved
        try:
            verdict = self._judge(old, True, False, action)
            self._judge(new, True, False, action)
        except Refusal as refusal:
            old.close()
            new.close()
            return self._refuse(action, old.raw, refusal, self._links(detail, old, new))
        return old, new, verdict

    def _rename(self, a: PathRename) -> int:
        detail: dict[str, Any] = {"rights": "write"}
        both = self._two("rename", (a.old_fd, a.old_path, a.old_len, False), (a.new_fd, a.new_path, a.new_len), detail)
        if isinstance(both, int):
            return both
        old, new, verdict = both
        if self._fine(old, new) or old.mount.fine or new.mount.fine:
            try:
                self._check_move(old, new)
            except Refusal as refusal:
                old.close()
                new.close()
                return self._refuse("rename", old.raw, refusal, self._links(detail, old, new))
            if old.walk is not None and new.walk is not None and old.walk.name and new.walk.name:
                ow, nw = old.walk, new.walk
                code = self._perform("rename", old, verdict, self._links(detail, old, new), lambda: os.rename(
                    ow.name, nw.name, src_dir_fd=ow.parent_fd, dst_dir_fd=nw.parent_fd))
                new.close()
                if code == HANDLED:
                    self.fds.renamed(old.resolved, new.resolved)
                return code
            old.close()
            new.close()
            return self._refuse("rename", old.raw, Refusal(WASI["EBUSY"], "a folder cannot be renamed through '.' or '..'",
                                                            old.resolved, violation=False), detail)
        self.pending = Pending("path_rename", old.raw, old.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, old, new)
        return 0

    def _check_move(self, old: Target, new: Target) -> None:
        """A folder may move only if the guest may rename everything it holds.

        Rules are about paths, so renaming an ancestor of a carve-out (``/work/sub`` above
        ``!filesystem:read:/work/sub/private``) would lift it, and renaming an ancestor of a file
        a deny glob protects would change that file's name.  When any rule could tell paths
        below either place apart, every entry now inside the folder must be writable where it
        is (at most 4096 entries are checked; more is refused).  Where it lands is judged as
        the new name itself."""
        walked = old.walk
        if walked is None or walked.stat is None or not st.S_ISDIR(walked.stat.st_mode) or self.mode == "audit":
            return
        if not self.decisions.rules_below(old.resolved) and not self.decisions.rules_below(new.resolved):
            return
        assert walked.parent_fd is not None
        budget = [4096]

        def compare(fd: int, rel: str) -> None:
            for name in os.listdir(fd):
                budget[0] -= 1
                if budget[0] < 0:
                    raise Refusal(EACCES, f"{old.resolved} holds too many entries to prove that moving it keeps "
                                           "every rule in force", old.resolved)
                sub = f"{rel}/{name}"
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                is_dir = st.S_ISDIR(info.st_mode)
                # moving the folder renames this entry: the guest must be allowed to rename it
                # where it is (a rule it cannot lift, like a deny glob, still protects its name)
                here = self.decisions.decide(old.resolved + sub, True, is_dir)
                if not here.allowed:
                    raise Refusal(EACCES, f"moving {old.resolved} to {new.resolved} would rename "
                                           f"{old.resolved + sub}, which {here.capability or 'no grant'} keeps "
                                           "from being changed", old.resolved, here.capability)
                if is_dir:
                    child = _list_folder(name, fd, info)
                    try:
                        compare(child, sub)
                    finally:
                        os.close(child)

        for write in (False, True):
            before = self.decisions.decide(old.resolved, write, True)
            after = self.decisions.decide(new.resolved, write, True)
            if after.allowed and not before.allowed:
                raise Refusal(EACCES, f"moving {old.resolved} to {new.resolved} would lift a rule from it",
                               old.resolved, before.capability)
        for deny in self.policy.denies:
            if deny.domain == "filesystem" and deny.scope and not guest_paths.is_glob(deny.scope) and inside(deny.scope, old.resolved):
                raise Refusal(EACCES, f"{old.resolved} holds the carve-out {deny}; moving it would lift it",
                               old.resolved, str(deny))
        try:
            folder = _list_folder(walked.name, walked.parent_fd, walked.stat)
        except OSError as exc:
            raise Refusal(EACCES, f"{old.resolved} changed while the guard checked its contents ({exc})",
                           old.resolved) from None
        try:
            compare(folder, "")
        except OSError as exc:
            raise Refusal(EACCES, f"{old.resolved} changed while the guard checked its contents ({exc})",
                           old.resolved) from None
        finally:
            os.close(folder)

    def _link(self, a: PathLink) -> int:
        detail: dict[str, Any] = {"rights": "write"}
        follow = bool(a.old_flags & _FOLLOW)
        both = self._two("link", (a.old_fd, a.old_path, a.old_len, follow), (a.new_fd, a.new_path, a.new_len), detail)
        if isinstance(both, int):
            return both
        old, new, verdict = both
        if old.walk is not None and new.walk is not None and (old.mount.fine or new.mount.fine):
            ow, nw = old.walk, new.walk
            if not ow.name or ow.stat is None or st.S_ISDIR(ow.stat.st_mode):
                old.close()
                new.close()
                errno = ENOENT if ow.stat is None else EPERM
                self._record("link", old, verdict, errno, detail)
                return HANDLED | errno
            code = self._perform("link", old, verdict, self._links(detail, old, new), lambda: os.link(
                ow.name, nw.name, src_dir_fd=ow.parent_fd, dst_dir_fd=nw.parent_fd, follow_symlinks=False))
            new.close()
            return code
        self.pending = Pending("path_link", old.raw, old.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, old, new)
        return 0

    def _symlink(self, a: PathSymlink) -> int:
        text_ptr, text_len, dirfd, ptr, length = a.text, a.text_len, a.dirfd, a.path, a.path_len
        text = self._raw_of(text_ptr, text_len)
        detail: dict[str, Any] = {"rights": "write", "link_text": text}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
        except Refusal as refusal:
            return self._refuse("symlink", self._raw_of(ptr, length), refusal, detail)
        try:
            verdict = self._judge(target, True, False, "symlink")
            self._check_link_text(target, text)
        except Refusal as refusal:
            target.close()
            return self._refuse("symlink", target.raw, refusal, self._links(detail, target))
        walked = target.walk
        if walked is not None and target.mount.fine and walked.name:
            return self._perform("symlink", target, verdict, detail,
                                 lambda: os.symlink(text, walked.name, dir_fd=walked.parent_fd))
        self.pending = Pending("path_symlink", target.raw, target.resolved, True, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, target)
        return 0

    def _check_link_text(self, target: Target, text: str) -> None:
        """A guest may plant only symlinks that lead where it may read, inside the mount."""
        if text == "<unreadable>" or not text:
            raise Refusal(EINVAL, "the symlink's text is not valid UTF-8 or is empty", target.resolved)
        if self.mode == "audit":
            return  # learn mode allows and records; mount planning never follows a link out of the root
        if text.startswith("/"):
            raise Refusal(EACCES, f"a symlink to the absolute path {text} would lead outside the sandbox's "
                                   "folders (only relative links are followed)", target.resolved)
        lands = _lands(posixpath.dirname(target.resolved), text, target.mount.guest)
        if lands is None:
            raise Refusal(EACCES, f"a symlink to {text} would climb out of the mount {target.mount.guest}",
                           target.resolved)
        verdict = self.decisions.decide(lands, False, False)
        if not verdict.allowed and not self.decisions.decide(lands, False, True).allowed:
            raise Refusal(EACCES, f"a symlink to {text} would lead to {lands}, which this run may not read: "
                                   f"{verdict.reason}", target.resolved, verdict.capability)

    def _readlink(self, a: PathReadlink) -> int:
        dirfd, ptr, length, buf, buf_len, size_ptr = a.dirfd, a.path, a.path_len, a.buf, a.buf_len, a.size_out
        detail: dict[str, Any] = {"rights": "read"}
        try:
            target = self._target(dirfd, ptr, length, follow=False, name_op=True)
            exchange = exchange_of(target.mount.device, target.resolved) if target.mount.device is not None else None
            if exchange is not None:  # a request to a device node, answered in the link text (device_link.py)
                return self._exchange(target, exchange[0], exchange[1], a, detail)
            verdict = self._judge(target, False, False, "readlink")
        except Refusal as refusal:  # a token is cut short in the record, wherever the path led (device_link.shown)
            raw = self._raw_of(ptr, length)
            if PREFIX in raw:
                refusal.reason = cut_in(refusal.reason, raw)
                refusal.resolved = cut_in(refusal.resolved, raw) if refusal.resolved is not None else None
            return self._refuse("readlink", shown(raw), refusal, detail)
        walked = target.walk
        if walked is not None and target.mount.fine:
            def read() -> None:
                if not walked.name or walked.stat is None:
                    raise OSError(22 if walked.stat is not None else 2, "not a symlink")
                data = os.readlink(walked.name, dir_fd=walked.parent_fd).encode("utf-8", "surrogateescape")
                data = data[: max(buf_len, 0)]
                if not (self._write(buf, data) and self._write(size_ptr, len(data).to_bytes(4, "little"))):
                    raise OSError(14, "bad address")
            return self._perform("readlink", target, verdict, detail, read)
        self.pending = Pending("path_readlink", target.raw, target.resolved, False, verdict.capability, verdict.reason,
                                "audit" if self.mode == "audit" else "allow", detail, target)
        return 0

    def _set_times(self, a: PathFilestatSetTimes) -> int:
        dirfd, flags, ptr, length = a.dirfd, a.flags, a.path, a.path_len
        atim, mtim, fst = a.atim, a.mtim, a.fst_flags
        detail: dict[str, Any] = {"rights": "write"}
        try:
            target, verdict = self._judged(dirfd, ptr, length, follow=bool(flags & _FOLLOW), write=True, action="utimes")
        except Refusal as refusal:
            return self._refuse("utimes", self._raw_of(ptr, length), refusal, detail)
        walked = target.walk
        if walked is not None and target.mount.fine:
            def touch() -> None:
                if walked.stat is None:
                    raise FileNotFoundError(2, "missing")
                times = _new_times(walked.stat, atim, mtim, fst)
                if walked.name:
                    os.utime(walked.name, ns=times, dir_fd=walked.parent_fd, follow_symlinks=False)
                else:
                    os.utime(f"/proc/self/fd/{walked.folder_fd}", ns=times)
            return self._perform("utimes", target, verdict, self._links(detail, target), touch)
        self.pending = Pending("path_filestat_set_times", target.raw, target.resolved, True, verdict.capability,
                                verdict.reason, "audit" if self.mode == "audit" else "allow", detail, target)
        return 0


def _lands(folder: str, text: str, mount: str) -> str | None:
    """Where the relative link text ``text`` in ``folder`` leads, read as text (the walk decides for real
    when the link is followed); None when its ``..`` climb above the mount."""
    parts = [p for p in folder.split("/") if p]
    floor = len([p for p in mount.split("/") if p])
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(parts) <= floor:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def _list_folder(name: str, dir_fd: int, expected: os.stat_result) -> int:
    """A readable descriptor of the folder ``name`` (never through a symlink), proven to be ``expected``."""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (expected.st_dev, expected.st_ino):
        os.close(fd)
        raise OSError(0, "changed while it was being checked")
    return fd


def _new_times(current: os.stat_result, atim: int, mtim: int, flags: int) -> tuple[int, int]:
    """(atime, mtime) in ns for ``path_filestat_set_times``'s ``fst_flags``."""
    if (flags & _ATIM and flags & _ATIM_NOW) or (flags & _MTIM and flags & _MTIM_NOW):
        raise OSError(22, "invalid flags")
    now = time.time_ns()
    access = min(atim, _MAX_NS) if flags & _ATIM else now if flags & _ATIM_NOW else current.st_atime_ns
    modify = min(mtim, _MAX_NS) if flags & _MTIM else now if flags & _MTIM_NOW else current.st_mtime_ns
    return access, modify
