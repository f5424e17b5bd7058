"""Secrets the guest never sees (issue 12, point 1): a grant's ``;secret=NAME`` value goes into
requests to that grant's hosts only, and appears in no event, audit record, response or repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.network_helpers import ask, body, service
from workbench import Sandbox
from workbench.audit.log import AuditLog
from workbench.errors import EscalationError, PolicyError
from workbench.network import Secrets, placeholder
from workbench.policy import Policy

VALUE = "sk-live-7f3a9c2e11d04b"
KEY = placeholder("API_KEY")


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


def _echo(request: Request) -> Response:
    """Echo every header back, in a header and in the body (a server that reflects credentials)."""
    seen = {name: value for name, value in request.headers.items()}
    return Response(json.dumps(seen), headers={"X-Echo": request.headers.get("Authorization", "")})


def test_the_secret_is_sent_to_its_grant_and_never_shown(httpserver: HTTPServer, tmp_path: Path) -> None:
    port = httpserver.port
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    log = AuditLog(tmp_path / "audit.jsonl")
    svc, rec = service([f"network:http:localhost:{port};secret=API_KEY"], secrets={"API_KEY": VALUE})
    answer = ask(svc, f"http://localhost:{port}/echo", headers={"Authorization": f"Bearer {KEY}"})
    request, _response = httpserver.log[0]
    assert request.headers["Authorization"] == f"Bearer {VALUE}"  # the server got the value
    # the guest gets the placeholder back wherever the server reflected the value
    assert answer["ok"] and json.loads(body(answer))["Authorization"] == f"Bearer {KEY}"
    assert answer["headers"]["x-echo"] == f"Bearer {KEY}"
    assert VALUE not in json.dumps(answer)
    assert rec.events[0].detail["substituted"] == ["API_KEY"]
    for event in rec.events:
        log(event)
    log.close()
    everywhere = (repr(rec.events) + json.dumps([e.to_dict() for e in rec.events]) + repr(svc)
                  + (tmp_path / "audit.jsonl").read_text())
    assert VALUE not in everywhere and "API_KEY" in everywhere


def test_a_reflected_placeholder_goes_to_another_granted_host_literally(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    svc, rec = service([f"network:http:localhost:{port};secret=API_KEY", f"network:http:127.0.0.1:{port}"],
                       secrets={"API_KEY": VALUE})
    answer = ask(svc, f"http://127.0.0.1:{port}/echo", headers={"Authorization": f"Bearer {KEY}", "X-Key": KEY})
    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}" and request.headers["X-Key"] == KEY
    assert answer["ok"] and "substituted" not in rec.events[0].detail


def test_a_redirect_from_the_secret_host_does_not_carry_the_value(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/go").respond_with_data("", status=307,
                                                       headers={"Location": f"http://127.0.0.1:{port}/echo"})
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    svc, rec = service([f"network:http:localhost:{port};secret=API_KEY", f"network:http:127.0.0.1:{port}"],
                       secrets={"API_KEY": VALUE})
    answer = ask(svc, f"http://localhost:{port}/go", headers={"X-Key": KEY})
    first, _ = httpserver.log[0]
    second, _ = httpserver.log[1]
    assert first.headers["X-Key"] == VALUE and second.headers["X-Key"] == KEY
    assert answer["ok"] and [e.detail.get("substituted") for e in rec.events] == [["API_KEY"], None]


def test_a_wildcard_grant_with_a_secret_sends_it_to_its_hosts_only(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    svc, _ = service([f"network:http:localhost:{port}", f"network:http:127.0.0.1:{port};secret=API_KEY"],
                     secrets={"API_KEY": VALUE})
    ask(svc, f"http://localhost:{port}/echo", headers={"X-Key": KEY})
    ask(svc, f"http://127.0.0.1:{port}/echo", headers={"X-Key": KEY})
    assert [r.headers["X-Key"] for r, _ in httpserver.log] == [KEY, VALUE]


def test_the_value_comes_from_the_host_environment(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = httpserver.port
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    monkeypatch.setenv("WB_TEST_TOKEN", VALUE)
    svc, _ = service([f"network:http:localhost:{port};secret=WB_TEST_TOKEN"])
    ask(svc, f"http://localhost:{port}/echo", headers={"X-Key": placeholder("WB_TEST_TOKEN")})
    assert httpserver.log[0][0].headers["X-Key"] == VALUE


def test_a_missing_secret_is_a_denial_that_says_how_to_set_it(httpserver: HTTPServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WB_UNSET_SECRET", raising=False)
    svc, rec = service([f"network:http:localhost:{httpserver.port};secret=WB_UNSET_SECRET"])
    answer = ask(svc, f"http://localhost:{httpserver.port}/", headers={"X-Key": placeholder("WB_UNSET_SECRET")})
    assert answer["error"] == "denied" and "secret 'WB_UNSET_SECRET' is not set" in answer["reason"]
    assert rec.events[-1].decision == "deny" and httpserver.log == []


def test_a_secret_that_cannot_be_a_header_is_refused_without_showing_it(httpserver: HTTPServer) -> None:
    bad = "line1\r\nX-Injected: yes"
    svc, rec = service([f"network:http:localhost:{httpserver.port};secret=K"], secrets={"K": bad})
    answer = ask(svc, f"http://localhost:{httpserver.port}/", headers={"X-Key": placeholder("K")})
    assert answer["error"] == "denied" and "cannot carry" in answer["reason"]
    assert "line1" not in json.dumps(answer) + repr(rec.events) and httpserver.log == []


def test_the_value_is_scrubbed_from_a_cut_response_even_across_the_cut(httpserver: HTTPServer) -> None:
    from workbench.network import NetworkLimits

    port = httpserver.port
    httpserver.expect_request("/leak").respond_with_data("a" * 990 + VALUE + "b" * 100)
    svc, _ = service([f"network:http:localhost:{port};secret=API_KEY"], secrets={"API_KEY": VALUE},
                     limits=NetworkLimits(max_response_bytes=1000))
    answer = ask(svc, f"http://localhost:{port}/leak")
    got = body(answer).decode()
    assert answer["truncated"] and len(got) == 1000 and VALUE[:10] not in got
    assert got.startswith("a" * 990 + "{{secret")


def test_secrets_show_names_never_values() -> None:
    secrets = Secrets({"API_KEY": VALUE})
    assert VALUE not in repr(secrets) and "API_KEY" in repr(secrets)
    sandbox = Sandbox(secrets={"API_KEY": VALUE})
    assert VALUE not in repr(sandbox.secrets) and VALUE not in repr(vars(sandbox))
    with pytest.raises(PolicyError, match="not a valid name"):
        Secrets({"bad name": "x"})
    with pytest.raises(PolicyError, match="must be text"):
        Sandbox(secrets={"K": 5})  # type: ignore[dict-item]


def test_a_called_module_cannot_claim_a_secret_its_caller_lacks() -> None:
    caller = Policy.parse(["network:https:api.example.com"])
    with pytest.raises(EscalationError):
        caller.attenuate(Policy.parse(["network:https:api.example.com;secret=AWS_SECRET_ACCESS_KEY"]))
    holder = Policy.parse(["network:https:*.example.com;secret=API_KEY"])
    child = holder.attenuate(Policy.parse(["network:https:api.example.com;secret=API_KEY"]))
    assert "network:https:api.example.com;secret=API_KEY" in child
    with pytest.raises(EscalationError):
        holder.attenuate(Policy.parse(["network:https:api.example.com;secret=OTHER"]))
    assert holder.attenuate(Policy.parse(["network:https:api.example.com"])).to_strings() == [
        "network:https:api.example.com"]


def test_a_value_echoed_into_a_redirect_travels_on_as_the_placeholder(httpserver: HTTPServer) -> None:
    """The secret's own host redirects to another granted host with the value in the URL (an echo
    of the header): the next hop gets the placeholder, the guest's final URL and the events too."""
    port = httpserver.port

    def echo_into_location(request: Request) -> Response:
        key = request.headers.get("X-Key", "")
        return Response("", status=302, headers={"Location": f"http://127.0.0.1:{port}/land?k={key}"})

    httpserver.expect_request("/go").respond_with_handler(echo_into_location)
    httpserver.expect_request("/land").respond_with_data("landed")
    svc, rec = service([f"network:http:localhost:{port};secret=API_KEY", f"network:http:127.0.0.1:{port}"],
                       secrets={"API_KEY": VALUE})
    answer = ask(svc, f"http://localhost:{port}/go", headers={"X-Key": KEY})
    second, _ = httpserver.log[1]
    assert VALUE not in second.url and second.args["k"] == KEY
    assert answer["ok"] and VALUE not in json.dumps(answer) and VALUE not in repr(rec.events)
