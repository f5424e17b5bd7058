"""End to end: a Python guest's requests through ``/dev/workbench/http`` reach
:class:`workbench.network.NetworkService` (issue 12, "Must hold / Network", from inside a guest).

The device folder is built on branch wt-calls; this file runs once that branch is merged with
wt-net (it was run on a merge of both, see the report), and is skipped on wt-net alone.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

pytest.importorskip("workbench.runtime.device", reason="the device folder (branch wt-calls) is not merged here")

from workbench import Sandbox  # noqa: E402
from workbench.errors import UnenforcedCapabilityWarning  # noqa: E402

GUEST = r'''
import workbench_guest
def attempt(name, action):
    try:
        print(name, "GOT", action())
    except PermissionError as exc:
        print(name, "DENIED", exc)
    except OSError as exc:
        print(name, "FAILED", exc)
'''


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


def _network(result: Any) -> list[Any]:
    return [e for e in result.events if e.category == "network" and e.action == "request"]


def test_a_guest_reaches_a_granted_host_and_nothing_else(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/hello").respond_with_data("hi from the host")
    httpserver.expect_request("/away").respond_with_data("", status=302, headers={"Location": "http://example.com/"})
    code = GUEST + f'''
attempt("granted", lambda: workbench_guest.http_get("http://localhost:{port}/hello").decode())
attempt("other port", lambda: workbench_guest.http_get("http://localhost:{port + 1}/"))
attempt("alias", lambda: workbench_guest.http_get("http://127.0.0.1:{port}/hello"))
attempt("numeric", lambda: workbench_guest.http_get("http://2130706433:{port}/hello"))
attempt("scheme", lambda: workbench_guest.http_get("https://localhost:{port}/hello"))
attempt("redirect", lambda: workbench_guest.http_get("http://localhost:{port}/away"))
'''
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnenforcedCapabilityWarning)  # network is enforced now: no warning
        result = Sandbox([f"network:http:localhost:{port}"]).run(code, "python")
    out = result.stdout
    assert "granted GOT hi from the host" in out, out + result.stderr
    for name in ("other port", "alias", "scheme", "redirect"):
        assert f"{name} DENIED" in out, (name, out)
    assert "numeric FAILED" in out and "four decimal numbers" in out
    events = _network(result)
    assert [e.decision for e in events] == ["allow", "deny", "deny", "deny", "deny", "allow", "deny"], events
    assert events[0].resolved == "127.0.0.1" and events[0].detail["status"] == 200
    assert len(httpserver.log) == 2  # the granted request and the redirect's first hop


def test_a_guest_without_a_grant_has_no_network(httpserver: HTTPServer) -> None:
    code = GUEST + f'attempt("any", lambda: workbench_guest.http_get("http://localhost:{httpserver.port}/"))'
    result = Sandbox([]).run(code, "python")
    assert "any GOT" not in result.stdout and not _network(result) and httpserver.log == []
