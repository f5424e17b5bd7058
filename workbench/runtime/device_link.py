"""The device's one-call exchange: a request in the path of a ``readlink``, its answer in the link text.

Why: the file protocol (``device.py``) costs a guest six WASI calls per request (open to write,
write, close, open to read, read, close), about six denied opens; a CPython guest cannot import
host functions (``host_imports.py``), and ``path_readlink`` is the only preview-1 call that takes
a caller's string in and fills a caller's buffer out.  So ``workbench_guest`` asks
``os.readlink("/dev/workbench/<node>/x-<token>")``, where the token is the JSON request in
URL-safe base64 (no ``/``, no NUL, no ``.`` first: the guard's path rules stay as they are).
The guard hands such a path to :func:`answer`, which serves it with the very function the file
protocol uses (:func:`device.serve`: same service, checks, caps and records), and the guard writes
the answer into the guest's buffer.

An answer larger than the guest's buffer is never cut: it is kept as the node's content (a later
``open(node, "rb").read()`` returns it whole, with no second request) and the guest gets
:func:`more`, a short JSON note saying so.  Requests too long for a path stay on the file
protocol: the helper decides (:data:`MAX_TOKEN_CHARS`), the guard's own 4096-byte path cap
refuses and records anything longer.
"""

from __future__ import annotations

import binascii
import json

from .device import Device, error_response, serve

__all__ = ["PREFIX", "MAX_TOKEN_CHARS", "exchange_of", "answer", "more", "shown", "cut_in"]

#: what starts the last name of an exchange path (``http/x-eyJ...``): any other name below a node
#: is not an exchange, and is judged (and refused) as today
PREFIX = "x-"
#: the longest token the guest helper puts in a path (longer requests use the file protocol):
#: with ``call/<64-character name>/x-`` in front it stays well below the guard's 4096-byte path cap
MAX_TOKEN_CHARS = 3072
_SHOWN = 48
_STANDARD = bytes.maketrans(b"-_+/", b"+/-_")  # URL-safe to standard base64 (a '+' or '/' becomes invalid)


def exchange_of(device: Device, path: str) -> tuple[str, str] | None:
    """(node path, token) when ``path`` names an exchange (``<node>/x-<token>`` below the device
    folder), else None.  Whether that node exists and takes requests is the guard's next question:
    a refusal then names the node, as a refused open of it would."""
    node, _, name = path.rpartition("/")
    if not name.startswith(PREFIX) or not node.startswith(device.guest):
        return None
    return node, name[len(PREFIX):]


def answer(device: Device, node_path: str, token: str) -> bytes:
    """The node's answer to the request in ``token``; a token that is not URL-safe base64 is refused
    here, with an ``invalid`` answer recorded as the node's service records its own refusals (its
    ``refuse(error, reason)``: ``network``/``request``, ``module``/``call`` and the call tree) or, for a
    service without one, as a ``deny`` in the node's category; everything else is the service's to
    judge, exactly as through the file protocol.  Never raises."""
    node, service = device.nodes[node_path], device.services[node_path]
    try:
        request = binascii.a2b_base64(token.encode("ascii").translate(_STANDARD), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        reason = f"the request in a readlink of {node_path} is not URL-safe base64 ({exc})"
        refuse = getattr(service, "refuse", None)  # recorded as the service records its own refusals
        if refuse is not None:
            try:
                answered = refuse("invalid", reason)
                if isinstance(answered, bytes):
                    return answered
            except Exception:  # a service's defect: recorded by the device below
                pass
        device.emit(node.category, "request", "deny", target=node_path, capability=node.capability,
                    reason=reason, detail={"request_bytes": len(token), "exchange": "readlink"})
        return error_response("invalid", reason)
    return serve(node, service, request, False, device.emit, node_path)


def more(node_path: str, size: int, room: int) -> bytes:
    """The note a guest gets instead of an answer that does not fit its buffer (kept in the node)."""
    return json.dumps({"ok": False, "error": "more", "bytes": size, "read": node_path,
                       "reason": f"the answer ({size:,} bytes) is larger than the readlink buffer ({room:,} "
                                 f"bytes); read it from {node_path}"}).encode()


def shown(raw: str) -> str:
    """A readlink's path as a record names it: every ``x-`` name in it cut short (a token is the
    request, recorded by the service), wherever it stands (``x-.../``, ``x-.../.``, ``x-.../..``) and
    whether or not the path reached a node, so a record stays readable and never holds a whole request."""
    if PREFIX not in raw:
        return raw
    return "/".join(_cut(name) for name in raw.split("/"))


def cut_in(text: str, raw: str) -> str:
    """``text`` (a reason, a resolved path) with each long ``x-`` name of the path ``raw`` cut as :func:`shown` cuts it."""
    for name in {n for n in raw.split("/") if _cut(n) != n}:
        text = text.replace(name, _cut(name))
    return text


def _cut(name: str) -> str:
    if not name.startswith(PREFIX) or len(name) <= len(PREFIX) + _SHOWN:
        return name
    return f"{name[: len(PREFIX) + _SHOWN]}...({len(name) - len(PREFIX)} characters)"
