"""workbench_guest: a guest's way to the host's services (runs *inside* the sandboxed CPython).

The sandbox serves this file read-only at ``/dev/workbench/workbench_guest.py`` when a grant
gives the run a device node; ``import workbench_guest`` then loads it.  Each service is a
node.  A request goes in one WASI call: ``os.readlink("/dev/workbench/<node>/x-<token>")``, the
token being the JSON request in URL-safe base64; the host answers with the JSON response as the
link text (runtime/device_link.py).  Why: a denied request then costs about what a denied
``open`` does, where the file protocol takes six calls.  A request too long for a path (a big
body) uses the file protocol: write the JSON request into the node, open it again and read the
response; an answer too big for readlink's buffer is kept in the node and read from there.

- ``http_get(url) -> bytes``: the body of a GET (``network:`` grants);
- ``request(method, url, headers=None, body=None) -> Response``;
- ``call(name, payload) -> payload``: run catalog module ``name`` (``module:call:NAME``);
- ``exchange(node, request) -> dict``: any node, raw.

A denial raises ``PermissionError`` with the host's reason; other failures ``OSError``.
"""

import base64
import json
import os
from binascii import b2a_base64 as _b2a
from json.encoder import encode_basestring_ascii as _quoted

DEVICE = "/dev/workbench"
#: the start of an exchange's name, and the longest token put in a path (runtime/device_link.py)
_PREFIX = "/x-"
_MAX_TOKEN = 3072
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # json's C scanner
__all__ = ["Response", "http_get", "request", "call", "exchange", "exchange_by_file", "DEVICE"]


class Response:
    """An HTTP response: ``status``, ``headers`` (a dict), ``body`` (bytes), ``truncated``, ``url``."""

    def __init__(self, answer):
        self.status = answer.get("status")
        self.headers = dict(answer.get("headers") or {})
        self.body = base64.b64decode(answer.get("body_base64") or "")
        self.truncated = bool(answer.get("truncated"))
        self.url = answer.get("url")

    def text(self, encoding="utf-8"):
        return self.body.decode(encoding, errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {len(self.body)} bytes>"


def exchange(node, message):
    """Send one JSON request to ``/dev/workbench/<node>`` and return the decoded JSON answer."""
    return _send(node, json.dumps(message))


def _send(node, text):
    """One request (its JSON text) to a node: in one readlink when it fits in a path, else by file."""
    path = f"{DEVICE}/{node}"
    data = text.encode("utf-8")
    token = _b2a(data, newline=False).translate(_URLSAFE)  # base64.urlsafe_b64encode, two calls fewer
    if len(token) > _MAX_TOKEN:
        return exchange_by_file(path, data)
    try:  # a str path: the answer comes back as str, which is read without guessing its encoding
        answer = _loads(os.readlink(f"{path}{_PREFIX}{token.decode('ascii')}"))
    except OSError as exc:  # named by the node, not by the request's token
        raise type(exc)(exc.errno, exc.strerror, path) from None
    if isinstance(answer, dict) and answer.get("error") == "more" and answer.get("read") == path:
        with open(path, "rb") as kept:  # too big for readlink's buffer: kept whole in the node
            return json.loads(kept.read())
    return answer


def _loads(text):
    """``json.loads(text)`` for the host's answers, three Python calls fewer: json's C scanner
    reads the object; anything else (trailing text, an error) goes through json.loads for its message."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


def exchange_by_file(path, data):
    """The file protocol: write the request into the node, open it again, read the answer."""
    with open(path, "wb") as out:
        out.write(data)
    with open(path, "rb") as answer:
        return json.loads(answer.read())


def _checked(answer, what):
    if not isinstance(answer, dict):
        raise OSError(f"{what}: the host answered {answer!r}")
    if answer.get("ok"):
        return answer
    error, reason = answer.get("error"), answer.get("reason") or ""
    if error in ("denied", "escalation", "cycle", "depth"):
        raise PermissionError(f"{what}: {reason}")
    raise OSError(f"{what}: {error}: {reason}")


def request(method, url, headers=None, body=None):
    """One HTTP(S) request through the host (``network:`` grants); returns a :class:`Response`."""
    if body is None and not headers and isinstance(method, str) and isinstance(url, str):
        # the common request, its JSON made by hand: json.dumps costs a guest more than the host call
        text = f'{{"method": {_quoted(method)}, "url": {_quoted(url)}, "headers": {{}}}}'
    else:
        message = {"method": method, "url": url, "headers": dict(headers or {})}
        if body is not None:
            if isinstance(body, str):
                body = body.encode("utf-8")
            message["body_base64"] = base64.b64encode(bytes(body)).decode("ascii")
        text = json.dumps(message)
    return Response(_checked(_send("http", text), f"{method} {url}"))


def http_get(url):
    """The body of ``GET url``."""
    return request("GET", url).body


def call(name, payload=None, export=None):
    """Run catalog module ``name`` with ``payload`` (JSON data); returns its result."""
    message = {"payload": payload}
    if export is not None:
        message["export"] = export
    return _checked(exchange(f"call/{name}", message), f"call {name}").get("result")
