"""The host side of a guest's HTTP request, against a real server on 127.0.0.1 (workbench/network).

Issue 12, "Must hold / Network": a granted host and port works; another port, another host, an
ungranted scheme and an IP alias of a granted name are denied and recorded; a redirect to an
ungranted host is denied; a response over the cap is cut and recorded; no grant, no network.
Plus the rules behind them: the host's own resolution and the re-check of every address
(hostile DNS answers simulated with a patched ``getaddrinfo``), the pin (one lookup per hop,
the connection goes to the checked address), the default refusal of private addresses.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.network_helpers import ask, body, hostile_dns, service
from workbench.errors import PolicyError
from workbench.network import NetworkLimits, visible
from workbench.policy import Policy


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


def test_a_granted_host_and_port_works_and_is_recorded(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/hello", headers={"Host": f"localhost:{port}"}).respond_with_data(
        "hi there", headers={"X-Test": "1"})
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, f"http://localhost:{port}/hello")
    assert answer["ok"] is True and answer["status"] == 200 and body(answer) == b"hi there"
    assert answer["headers"]["x-test"] == "1" and answer["truncated"] is False
    assert answer["url"] == f"http://localhost:{port}/hello"
    [event] = rec.events
    assert (event.category, event.action, event.decision) == ("network", "request", "allow")
    assert event.target == f"http://localhost:{port}/hello" and event.resolved == "127.0.0.1"
    assert event.capability == f"network:http:localhost:{port}"
    assert event.detail["status"] == 200 and event.detail["bytes_in"] == 8 and event.detail["bytes_out"] == 0
    assert event.detail["ms"] >= 0 and event.detail["truncated"] is False


def test_post_with_a_body_and_headers(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/p", method="POST", data=b"\x00\x01binary",
                              headers={"X-Thing": "yes"}).respond_with_data("ok", status=201)
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, f"http://localhost:{port}/p", "POST", headers={"X-Thing": "yes"}, body_base64="AAFiaW5hcnk=")
    assert answer["status"] == 201 and body(answer) == b"ok"
    assert rec.events[0].detail["bytes_out"] == 8


def _denied(answer: dict[str, Any], rec: Any, fragment: str) -> None:
    assert answer["ok"] is False and answer["error"] == "denied", answer
    assert fragment in answer["reason"], answer["reason"]
    assert rec.events[-1].decision == "deny" and rec.events[-1].category == "network"
    assert fragment in (rec.events[-1].reason or "")


@pytest.mark.parametrize("url, fragment", [
    ("http://localhost:{other}/", "no network grant covers 'http://localhost:{other}'"),
    ("http://example.com:{port}/", "no network grant covers 'http://example.com:{port}'"),
    ("https://localhost:{port}/", "no network grant covers 'https://localhost:{port}'"),
    ("ftp://localhost:{port}/", "scheme 'ftp' is not supported"),
    ("http://127.0.0.1:{port}/", "no network grant covers 'http://127.0.0.1:{port}'"),
    ("http://[::1]:{port}/", "no network grant covers 'http://[::1]:{port}'"),
    ("http://[::ffff:127.0.0.1]:{port}/", "no network grant covers 'http://[::ffff:7f00:1]:{port}'"),
])
def test_other_ports_hosts_schemes_and_ip_aliases_are_denied(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, url: str, fragment: str
) -> None:
    port = httpserver.port
    asked = hostile_dns(monkeypatch, {})
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, url.format(port=port, other=port + 1))
    _denied(answer, rec, fragment.format(port=port, other=port + 1))
    assert asked == [] and httpserver.log == []  # decided before any lookup or connection


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001"])
def test_numeric_aliases_of_loopback_are_refused(httpserver: HTTPServer, host: str) -> None:
    svc, rec = service([f"network:http:localhost:{httpserver.port}", "network:http:*"])
    answer = ask(svc, f"http://{host}:{httpserver.port}/")
    assert answer["error"] == "invalid" and "four decimal numbers" in answer["reason"]
    assert rec.events[-1].decision == "deny" and httpserver.log == []


def test_localhost_with_a_trailing_dot_is_the_name_localhost(httpserver: HTTPServer) -> None:
    """Decision (docs/decisions.md): ``localhost.`` is the absolute form of the same name, as in
    grants; it is allowed exactly when ``localhost`` is, and under a wildcard its loopback
    address is refused like any other."""
    httpserver.expect_request("/").respond_with_data("ok")
    port = httpserver.port
    svc, _ = service([f"network:http:localhost:{port}"])
    assert ask(svc, f"http://LOCALHOST.:{port}/")["ok"] is True
    svc, rec = service([f"network:http:*:{port}"])
    _denied(ask(svc, f"http://localhost.:{port}/"), rec, "a loopback address, is refused unless a grant names it")


def test_a_wildcard_never_opens_loopback_or_private_addresses(httpserver: HTTPServer) -> None:
    port = httpserver.port
    svc, rec = service(["network:http:*"])
    for url in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/",
                "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://100.100.100.200/",
                "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/"):
        _denied(ask(svc, url), rec, "is refused unless a grant names it")
    assert httpserver.log == []


def test_a_grant_naming_the_address_opens_it(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("by address")
    port = httpserver.port
    svc, rec = service([f"network:http:127.0.0.1:{port}"])
    answer = ask(svc, f"http://127.0.0.1:{port}/")
    assert answer["ok"] and body(answer) == b"by address" and rec.events[0].resolved == "127.0.0.1"
    # and a name granted as a name is not a grant for the address, nor the other way round
    _denied(ask(svc, f"http://localhost:{port}/"), rec, "no network grant covers")


@pytest.mark.parametrize("answers, why", [
    (["169.254.169.254"], "cloud metadata"),
    (["10.0.0.7"], "private"),
    (["127.0.0.1"], "loopback"),
    (["93.184.215.14", "192.168.1.1"], "private"),  # one bad answer among good ones spoils the name
    (["::ffff:169.254.169.254"], "cloud metadata (inside an IPv6 address)"),
    (["fe80::1"], "link-local"),
    (["100.64.1.1"], "shared (CGNAT)"),
])
@pytest.mark.parametrize("grant", ["network:http:api.example.com", "network:http:*.example.com", "network:http:*"])
def test_dns_answers_pointing_at_special_ranges_are_refused(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, answers: list[str], why: str, grant: str
) -> None:
    asked = hostile_dns(monkeypatch, {"api.example.com": answers})
    svc, rec = service([grant])
    answer = ask(svc, "http://api.example.com/")
    _denied(answer, rec, f"a {why} address, is refused unless a grant names it")
    assert "'api.example.com' resolves to" in answer["reason"]
    assert asked == ["api.example.com"]
    assert rec.events[-1].capability == grant and rec.events[-1].resolved is not None


def test_a_deny_rule_on_an_address_refuses_names_that_resolve_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    hostile_dns(monkeypatch, {"api.example.com": ["93.184.215.14"]})
    svc, rec = service(["network:http:*.example.com", "!network:http:93.184.215.14"])
    _denied(ask(svc, "http://api.example.com/"), rec, "which is denied by '!network:http:93.184.215.14'")
    assert rec.events[-1].capability == "!network:http:93.184.215.14"


def test_deny_rules_win_over_grants(httpserver: HTTPServer) -> None:
    port = httpserver.port
    svc, rec = service([f"network:http:localhost:{port}", "!network:http:localhost"])
    _denied(ask(svc, f"http://localhost:{port}/"), rec, "denied by '!network:http:localhost'")


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer for the name is checked (loopback, named by the grant);
    any later answer would point at the metadata service.  The name is looked up once; the
    connection is made to the checked address by number (the standard library's
    ``create_connection`` passes the numeric literal through ``getaddrinfo``, which never asks
    DNS for it), and the server still sees the name in its Host header."""
    port = httpserver.port
    httpserver.expect_request("/", headers={"Host": f"localhost:{port}"}).respond_with_data("pinned")
    real = socket.getaddrinfo
    calls: list[str] = []

    def rebinding(host: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        if host == "localhost":
            address = "127.0.0.1" if calls.count("localhost") == 1 else "169.254.169.254"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, p))]
        return real(host, p, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, f"http://localhost:{port}/")
    assert answer["ok"] is True and body(answer) == b"pinned", answer
    assert calls.count("localhost") == 1 and set(calls) <= {"localhost", "127.0.0.1"}, calls
    assert rec.events[0].resolved == "127.0.0.1" and len(httpserver.log) == 1


def test_a_later_hostile_answer_is_refused(monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/").respond_with_data("ok")
    seq = iter(["127.0.0.1", "169.254.169.254"])
    real = socket.getaddrinfo

    def flipping(host: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return real(host, p, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(seq), p))]

    monkeypatch.setattr(socket, "getaddrinfo", flipping)
    svc, rec = service([f"network:http:localhost:{port}"])
    assert ask(svc, f"http://localhost:{port}/")["ok"] is True
    _denied(ask(svc, f"http://localhost:{port}/"), rec, "169.254.169.254, a cloud metadata address")


def test_a_redirect_is_followed_hop_by_hop_and_each_hop_is_checked(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/start").respond_with_data("", status=302, headers={"Location": "/next"})
    httpserver.expect_request("/next").respond_with_data("", status=301,
                                                         headers={"Location": f"http://localhost:{port}/end"})
    httpserver.expect_request("/end").respond_with_data("arrived")
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, f"http://localhost:{port}/start")
    assert answer["ok"] and body(answer) == b"arrived" and answer["url"] == f"http://localhost:{port}/end"
    assert [(e.target, e.detail["status"], e.detail["hop"]) for e in rec.events] == [
        (f"http://localhost:{port}/start", 302, 0), (f"http://localhost:{port}/next", 301, 1),
        (f"http://localhost:{port}/end", 200, 2)]


@pytest.mark.parametrize("location, fragment", [
    ("http://example.com/", "no network grant covers 'http://example.com:80'"),
    ("http://localhost:{other}/", "no network grant covers 'http://localhost:{other}'"),
    ("http://127.0.0.1:{port}/", "no network grant covers 'http://127.0.0.1:{port}'"),
    ("http://169.254.169.254/latest/meta-data/", "no network grant covers"),
    ("https://localhost:{port}/", "no network grant covers 'https://localhost:{port}'"),
])
def test_a_redirect_to_an_ungranted_place_is_denied(httpserver: HTTPServer, location: str, fragment: str) -> None:
    port = httpserver.port
    httpserver.expect_request("/r").respond_with_data(
        "", status=307, headers={"Location": location.format(port=port, other=port + 1)})
    svc, rec = service([f"network:http:localhost:{port}"])
    answer = ask(svc, f"http://localhost:{port}/r")
    _denied(answer, rec, fragment.format(port=port, other=port + 1))
    assert [e.decision for e in rec.events] == ["allow", "deny"] and rec.events[1].detail["hop"] == 1


def test_a_redirect_to_a_special_address_under_a_wildcard_is_denied(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = httpserver.port
    hostile_dns(monkeypatch, {"api.example.com": ["169.254.169.254"]})
    httpserver.expect_request("/r").respond_with_data("", status=302,
                                                      headers={"Location": "http://api.example.com/"})
    svc, rec = service([f"network:http:localhost:{port}", "network:http:*.example.com"])
    _denied(ask(svc, f"http://localhost:{port}/r"), rec, "169.254.169.254, a cloud metadata address")


def test_redirect_hops_are_capped(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    svc, rec = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_redirects=3))
    answer = ask(svc, f"http://localhost:{httpserver.port}/loop")
    assert answer["error"] == "limit" and "more than 3 redirects" in answer["reason"]
    assert [e.decision for e in rec.events] == ["allow"] * 4 + ["deny"]


def test_303_turns_a_post_into_a_get_without_its_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/form", method="POST").respond_with_data("", status=303,
                                                                        headers={"Location": "/done"})
    httpserver.expect_request("/done", method="GET", data=b"").respond_with_data("got")
    svc, _ = service([f"network:http:localhost:{httpserver.port}"])
    answer = ask(svc, f"http://localhost:{httpserver.port}/form", "POST", body="x=1",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer["ok"] and body(answer) == b"got"


def test_a_response_over_the_cap_is_cut_flagged_and_recorded(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 50_000)
    svc, rec = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_response_bytes=1000))
    answer = ask(svc, f"http://localhost:{httpserver.port}/big")
    assert answer["ok"] and answer["truncated"] is True and body(answer) == b"x" * 1000
    [event] = rec.events
    assert event.detail["truncated"] is True and event.detail["bytes_in"] == 1000
    assert "response cut at 1,000 bytes" in (event.reason or "")


def test_a_response_at_the_cap_is_whole(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/exact").respond_with_data(b"y" * 1000)
    svc, _ = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_response_bytes=1000))
    answer = ask(svc, f"http://localhost:{httpserver.port}/exact")
    assert answer["truncated"] is False and len(body(answer)) == 1000


def test_a_gzip_response_is_passed_raw_not_inflated(httpserver: HTTPServer) -> None:
    import gzip

    bomb = gzip.compress(b"\x00" * 5_000_000)
    httpserver.expect_request("/z").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    svc, _ = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_response_bytes=100_000))
    answer = ask(svc, f"http://localhost:{httpserver.port}/z", headers={"Accept-Encoding": "gzip"})
    assert answer["ok"] and body(answer) == bomb and answer["truncated"] is False


def test_no_grant_means_no_network(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = hostile_dns(monkeypatch, {})
    assert visible(Policy.parse([])) is False
    assert visible(Policy.parse(["filesystem:read:/docs", "!network:http:localhost"])) is False
    assert visible(Policy.parse([f"network:http:localhost:{httpserver.port}"])) is True
    svc, rec = service([])
    for url in (f"http://localhost:{httpserver.port}/", f"http://127.0.0.1:{httpserver.port}/", "https://example.com/"):
        _denied(ask(svc, url), rec, "no network grant covers")
    assert asked == [] and httpserver.log == []


def test_the_request_count_is_capped_per_service(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    svc, rec = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_requests=2))
    url = f"http://localhost:{httpserver.port}/"
    assert ask(svc, url)["ok"] and ask(svc, url)["ok"]
    answer = ask(svc, url)
    assert answer["error"] == "limit" and "2 requests" in answer["reason"]
    assert rec.events[-1].decision == "deny" and len(httpserver.log) == 2


def test_a_body_over_the_cap_is_refused(httpserver: HTTPServer) -> None:
    svc, rec = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(max_request_bytes=100))
    answer = ask(svc, f"http://localhost:{httpserver.port}/", "POST", body="z" * 101)
    assert answer["error"] == "too_large" and rec.events[-1].decision == "deny" and httpserver.log == []


def test_timeouts_are_always_on(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    svc, rec = service([f"network:http:localhost:{httpserver.port}"], limits=NetworkLimits(read_seconds=0.2))
    began = time.monotonic()
    answer = ask(svc, f"http://localhost:{httpserver.port}/slow")
    assert answer["error"] == "timeout" and "did not answer in time" in answer["reason"]
    assert time.monotonic() - began < 1.4
    assert rec.events[-1].detail["error"] == "timeout"


def test_a_closed_port_is_unreachable(httpserver: HTTPServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    svc, rec = service([f"network:http:127.0.0.1:{closed}"])
    answer = ask(svc, f"http://127.0.0.1:{closed}/")
    assert answer["error"] == "unreachable" and "could not be reached" in answer["reason"]
    assert rec.events[-1].detail["error"] == "unreachable"


def test_an_unknown_name_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def nxdomain(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    svc, rec = service(["network:https:*.example.com"])
    answer = ask(svc, "https://nope.example.com/")
    assert answer["error"] == "unreachable" and "could not be resolved" in answer["reason"]


def test_a_hanging_lookup_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2)
        raise socket.gaierror(socket.EAI_AGAIN, "slow")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    svc, _ = service(["network:https:*.example.com"], limits=NetworkLimits(connect_seconds=0.1))
    answer = ask(svc, "https://slow.example.com/")
    assert answer["error"] == "timeout" and "took more than" in answer["reason"]


def test_the_guest_may_not_set_host_or_connection_headers(httpserver: HTTPServer) -> None:
    svc, rec = service([f"network:http:localhost:{httpserver.port}"])
    url = f"http://localhost:{httpserver.port}/"
    for headers, fragment in [
        ({"Host": "evil.com"}, "set by the host"),
        ({"host": "evil.com"}, "set by the host"),
        ({"Transfer-Encoding": "chunked"}, "set by the host"),
        ({"Content-Length": "0"}, "set by the host"),
        ({"Connection": "upgrade"}, "set by the host"),
        ({"X-A": "1\r\nHost: evil.com"}, "no line breaks"),
        ({"X-A": "caf\u00e9"}, "printable ASCII"),
        ({"X-A\r\nHost": "evil"}, "not a valid token"),
        ({"Bad Name": "x"}, "not a valid token"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
        ({f"X-{i}": "v" for i in range(65)}, "65 headers"),
    ]:
        answer = ask(svc, url, headers=headers)
        assert answer["error"] == "invalid" and fragment in answer["reason"], (headers, answer)
        assert rec.events[-1].decision == "deny"
    assert httpserver.log == []


@pytest.mark.parametrize("raw, fragment", [
    (b"not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b'{"method": "GET", "url": "http://localhost/\xed\xa0\x80"}', "not valid UTF-8"),
    (b'{"method": "GET", "url": "http://a.example/", "headers": {"X-A": "\xc3\x28"}}', "not valid UTF-8"),
    (b'{"method": "GET", "url": "http://a.example/", "headers": {"X-A": "\\udc80"}}', "printable ASCII"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"method": "GET", "url": "http://a.example/", "url": "http://b.example/"}', "given twice"),
    (b'{"method": "GET", "url": "http://a.example/", "verb": 1}', "unknown key 'verb'"),
    (b'{"method": "get", "url": "http://a.example/"}', "write 'GET'"),
    (b'{"method": "TRACE", "url": "http://a.example/"}', "not accepted"),
    (b'{"method": "CONNECT", "url": "http://a.example/"}', "not accepted"),
    (b'{"method": 1, "url": "http://a.example/"}', "'method' must be text"),
    (b'{"method": "GET", "url": 7}', "'url' must be text"),
    (b'{"method": "GET", "url": "http://a.example/", "headers": {"A": 1}}', "'headers' must be"),
    (b'{"method": "GET", "url": "http://a.example/", "headers": []}', "'headers' must be"),
    (b'{"method": "GET", "url": "http://a.example/", "body": "a", "body_base64": "YQ=="}', "not both"),
    (b'{"method": "GET", "url": "http://a.example/", "body_base64": "***"}', "not valid base64"),
    (b'{"method": "GET", "url": "http://a.example/", "body": "\\ud800"}', "lone surrogate"),
    (b'{"method": "GET", "url": "http://a.example/", "body": 5}', "'body' must be text"),
    (b'{"method": "GET", "url": "http://a.example/\\u0000"}', "only printable ASCII"),
    (b'{"method": "GET", "url": "http://a.example/", "n": ' + b"9" * 5000 + b"}", "not valid JSON"),
])
def test_malformed_requests_are_invalid_and_recorded(raw: bytes, fragment: str) -> None:
    svc, rec = service(["network:http:*"])
    answer = json.loads(svc.handle(raw))
    assert answer["ok"] is False and answer["error"] == "invalid" and fragment in answer["reason"], answer
    assert rec.events[-1].decision == "deny" and rec.events[-1].detail["error"] == "invalid"


def test_a_huge_request_is_refused_before_it_is_parsed() -> None:
    svc, rec = service(["network:http:*"], limits=NetworkLimits(max_request_bytes=1000))
    answer = json.loads(svc.handle(b"{" + b" " * 10_000_000))
    assert answer["error"] == "invalid" and "the most is" in answer["reason"]
    assert len(rec.events) == 1


def test_non_bytes_requests_are_invalid() -> None:
    svc, rec = service(["network:http:*"])
    for value in ("text", None, 3):
        answer = json.loads(svc.handle(value))  # type: ignore[arg-type]
        assert answer["error"] == "invalid"
    assert len(rec.events) == 3


def test_limits_must_be_positive_and_finite() -> None:
    for bad in ({"max_requests": 0}, {"total_seconds": float("inf")}, {"read_seconds": float("nan")},
                {"max_redirects": True}, {"max_response_bytes": -1}):
        with pytest.raises(PolicyError, match="positive"):
            NetworkLimits(**bad)  # type: ignore[arg-type]


_odd = st.text(alphabet=st.sampled_from(list("htps:/[]@\\.%?#0123456789abcx-_*: \r\n\x00é{}")), max_size=30)
_envelopes = st.fixed_dictionaries(
    {"method": st.sampled_from(["GET", "POST", "get", "TRACE", 1, None]),
     "url": st.one_of(_odd.map(lambda t: "http://" + t), _odd, st.integers())},
    optional={"headers": st.dictionaries(_odd, st.one_of(_odd, st.integers()), max_size=3),
              "body": st.one_of(_odd, st.integers()), "body_base64": _odd, "extra": st.none()},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_envelopes.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200)))
def test_handle_never_raises_and_records_every_request(monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    """Whatever the guest sends: one JSON answer, one event, and without a grant for its host no
    lookup and no connection (``network:http:granted.example`` covers nothing generated here)."""
    monkeypatch.setattr(socket, "getaddrinfo", _no_lookups)
    svc, rec = service(["network:http:granted.example"])
    answer = json.loads(svc.handle(raw))
    assert answer["ok"] is False and answer["error"] in ("invalid", "denied") and answer["reason"]
    assert len(rec.events) == 1 and rec.events[0].decision == "deny"
    assert rec.events[0].detail["error"] == answer["error"]


def _no_lookups(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a lookup was made: {args}")


def test_the_contract_the_device_folder_relies_on() -> None:
    """The names and signature docs/decisions.md promises to the guest side (issue 12, calls)."""
    import inspect

    import workbench.network as network

    assert set(network.__all__) == {"NetworkService", "NetworkLimits", "Secrets", "METHODS", "placeholder", "visible"}
    params = inspect.signature(network.NetworkService).parameters
    assert list(params) == ["policy", "emit", "secrets", "limits", "clock"]
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in ("secrets", "limits", "clock"))
    assert network.placeholder("API_KEY") == "{{secret:API_KEY}}"


def test_the_injected_clock_times_the_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")
    ticks = iter(range(1000))
    svc, rec = service([f"network:http:localhost:{httpserver.port}"])
    svc.clock = lambda: float(next(ticks))
    assert ask(svc, f"http://localhost:{httpserver.port}/")["ok"]
    assert rec.events[0].detail["ms"] > 0 and rec.events[0].detail["ms"] % 1000 == 0


def test_a_secret_grant_round_trips_through_its_canonical_text() -> None:
    from workbench.policy.capability import Capability

    cap = Capability.parse("network:https:API.Example.com:443;secret=API_KEY")
    assert str(cap) == "network:https:api.example.com:443;secret=API_KEY" and Capability.parse(str(cap)) == cap
    assert cap.param("secret") == "API_KEY"


def test_a_url_asked_again_is_decided_and_recorded_the_same_and_the_memo_is_bounded() -> None:
    """The service keeps parsed URLs and decided targets for its run (service.py ``_KEPT``): the same
    answer and record each time, a refused URL is not kept, and at most 256 of each are kept."""
    svc, recorder = service(["network:http:localhost"])
    answers = [ask(svc, "http://not-granted.example/") for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and answers[0]["error"] == "denied"
    first, *rest = [{**vars(e), "ts": 0} for e in recorder.events]
    assert all(other == first for other in rest) and len(rest) == 2
    assert ask(svc, "http://bad host/")["error"] == "invalid"
    assert "http://bad host/" not in svc._targets
    limits = NetworkLimits(max_requests=1000)
    many, _ = service(["network:http:localhost"], limits=limits)
    for i in range(300):
        ask(many, f"http://host{i}.example/")
    assert len(many._targets) == 256 and len(many._verdicts) == 256
    assert ask(many, "http://host299.example/")["error"] == "denied"
