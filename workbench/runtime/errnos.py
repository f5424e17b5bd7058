"""WASI preview 1 errno numbers: their names, and the host's errnos translated to them.

Why here: the guard answers some calls itself (it performs a guest's ``mkdir`` or
``rename`` on the host, atomically, instead of letting wasmtime resolve the path
again), so a host ``OSError`` must reach the guest as the errno WASI would have
returned, and records name errnos (``EACCES``), not numbers.
"""

from __future__ import annotations

import errno as _host

__all__ = ["WASI_ERRNO_NAMES", "WASI", "wasi_errno", "errno_name"]

#: every WASI preview 1 errno, in numbering order (``success`` is 0)
WASI_ERRNO_NAMES: tuple[str, ...] = (
    "SUCCESS", "E2BIG", "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EAGAIN", "EALREADY",
    "EBADF", "EBADMSG", "EBUSY", "ECANCELED", "ECHILD", "ECONNABORTED", "ECONNREFUSED", "ECONNRESET",
    "EDEADLK", "EDESTADDRREQ", "EDOM", "EDQUOT", "EEXIST", "EFAULT", "EFBIG", "EHOSTUNREACH", "EIDRM",
    "EILSEQ", "EINPROGRESS", "EINTR", "EINVAL", "EIO", "EISCONN", "EISDIR", "ELOOP", "EMFILE", "EMLINK",
    "EMSGSIZE", "EMULTIHOP", "ENAMETOOLONG", "ENETDOWN", "ENETRESET", "ENETUNREACH", "ENFILE", "ENOBUFS",
    "ENODEV", "ENOENT", "ENOEXEC", "ENOLCK", "ENOLINK", "ENOMEM", "ENOMSG", "ENOPROTOOPT", "ENOSPC",
    "ENOSYS", "ENOTCONN", "ENOTDIR", "ENOTEMPTY", "ENOTRECOVERABLE", "ENOTSOCK", "ENOTSUP", "ENOTTY",
    "ENXIO", "EOVERFLOW", "EOWNERDEAD", "EPERM", "EPIPE", "EPROTO", "EPROTONOSUPPORT", "EPROTOTYPE",
    "ERANGE", "EROFS", "ESPIPE", "ESRCH", "ESTALE", "ETIMEDOUT", "ETXTBSY", "EXDEV", "ENOTCAPABLE",
)
#: WASI errno numbers by name (``WASI["EACCES"] == 2``)
WASI: dict[str, int] = {name: number for number, name in enumerate(WASI_ERRNO_NAMES)}

_HOST_TO_WASI = {
    number: WASI[name]
    for number, name in _host.errorcode.items()
    if name in WASI
}
_HOST_TO_WASI.setdefault(getattr(_host, "EOPNOTSUPP", -1), WASI["ENOTSUP"])
_HOST_TO_WASI.setdefault(getattr(_host, "EWOULDBLOCK", -1), WASI["EAGAIN"])


def wasi_errno(host_errno: int | None) -> int:
    """The WASI errno for a host ``errno`` (``EIO`` for one WASI has no name for)."""
    if host_errno is None:
        return WASI["EIO"]
    return _HOST_TO_WASI.get(host_errno, WASI["EIO"])


def errno_name(number: int) -> str:
    """``EACCES`` for 2; ``errno N`` for a number outside WASI's list."""
    if 0 <= number < len(WASI_ERRNO_NAMES):
        return WASI_ERRNO_NAMES[number]
    return f"errno {number}"
