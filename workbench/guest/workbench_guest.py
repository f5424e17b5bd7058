"""workbench_guest: a guest's way to the host's services (runs *inside* the sandboxed CPython).

The sandbox serves this file read-only at ``/dev/workbench/workbench_guest.py`` when a grant
gives the run a device node; ``import workbench_guest`` then loads it.  Each service is a
node: write a JSON request into it, open it again and read the JSON response.

- ``http_get(url) -> bytes``: the body of a GET (``network:`` grants);
- ``request(method, url, headers=None, body=None) -> Response``;
- ``call(name, payload) -> payload``: run catalog module ``name`` (``module:call:NAME``);
- ``exchange(node, request) -> dict``: any node, raw.

A denial raises ``PermissionError`` with the host's reason; other failures ``OSError``.
"""

import base64
import json

DEVICE = "/dev/workbench"
__all__ = ["Response", "http_get", "request", "call", "exchange", "DEVICE"]


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
    path = f"{DEVICE}/{node}"
    data = json.dumps(message).encode("utf-8")
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
    message = {"method": method, "url": url, "headers": dict(headers or {})}
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        message["body_base64"] = base64.b64encode(bytes(body)).decode("ascii")
    return Response(_checked(exchange("http", message), f"{method} {url}"))


def http_get(url):
    """The body of ``GET url``."""
    return request("GET", url).body


def call(name, payload=None, export=None):
    """Run catalog module ``name`` with ``payload`` (JSON data); returns its result."""
    message = {"payload": payload}
    if export is not None:
        message["export"] = export
    return _checked(exchange(f"call/{name}", message), f"call {name}").get("result")
