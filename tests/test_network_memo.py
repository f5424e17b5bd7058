"""The network service's per-run memo of parsed URLs and decided targets (service.py ``_KEPT``), attacked:
whatever URLs a guest asks, in whatever order and spelling, each answer and record equals the one a
fresh service (nothing kept) gives, so a kept verdict never lets through what a fresh decision refuses;
the address is checked again at every request (a name that resolves elsewhere later is refused)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.network_helpers import ask, service
from workbench.network import NetworkLimits

GRANTS = ["network:http:*.example", "network:https:a.example:8443", "network:http:10.0.0.7"]
#: every name resolves to an address the service refuses before it connects (nothing leaves the host)
DNS = {"a.example": ["169.254.169.254"], "b.example": ["10.0.0.1"], "c.example": ["127.0.0.1"]}
SPELLINGS = st.sampled_from([
    "http://a.example/", "HTTP://A.EXAMPLE/", "http://a.example./", "http://a.example:80/", "https://a.example:8443/x",
    "https://a.example/", "http://b.example/p?q=1", "http://b.example/p?q=1#frag", "http://c.example/",
    "http://user@a.example/", "http://10.0.0.7/", "http://10.0.0.07/", "http://0x0a.0.0.7/", "http://[::1]/",
    "http://nowhere.test/", "ftp://a.example/", "http://a.example:99999/", "http://a.example%2f/",
    "http://xn--nxasmq6b.example/", "http://a.example/ /", "",
])


def _dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def _plain(events: list[Any]) -> list[dict[str, Any]]:
    return [{**vars(e), "ts": 0, "detail": {k: v for k, v in e.detail.items() if k != "ms"}} for e in events]


@given(urls=st.lists(SPELLINGS, min_size=1, max_size=12))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_kept_verdict_answers_and_records_as_a_fresh_decision(monkeypatch: pytest.MonkeyPatch, urls: list[str]) -> None:
    _dns(monkeypatch, DNS)
    kept, kept_record = service(GRANTS, limits=NetworkLimits(max_requests=1000))
    for url in urls:
        fresh, fresh_record = service(GRANTS)  # the oracle: nothing parsed or decided before
        assert ask(kept, url) == ask(fresh, url), url
        assert _plain(kept_record.events[-len(fresh_record.events):]) == _plain(fresh_record.events), url
        assert all(e.decision != "allow" or e.detail.get("status") is None for e in kept_record.events)
    assert len(kept._targets) <= 256 and len(kept._verdicts) <= 256


def test_a_kept_verdict_does_not_keep_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict is on the name; the address it resolves to is checked again at each request."""
    svc, record = service(["network:http:*.example", "network:http:10.0.0.1"])
    answers: dict[str, list[str]] = {"a.example": ["10.0.0.1"]}
    _dns(monkeypatch, answers)
    first = ask(svc, "http://a.example:9/")
    assert "a private address" in first["reason"] or first["error"] in ("unreachable", "timeout")
    answers["a.example"] = ["169.254.169.254"]  # the same URL, now resolving to the metadata address
    second = ask(svc, "http://a.example:9/")
    assert second["error"] == "denied" and "169.254.169.254" in second["reason"]
    assert "http://a.example:9/" in svc._targets  # it was the kept target that was checked again
