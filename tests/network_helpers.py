"""Shared pieces of the network tests: an event recorder, a request helper, a resolver spy."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from workbench.events import Event
from workbench.network import NetworkLimits, NetworkService
from workbench.policy import Policy


@dataclass
class Recorder:
    """An ``emit`` that keeps real :class:`Event` objects, as a run's would."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, category: str, action: str, decision: str = "allow", **fields: Any) -> Event:
        event = Event(run_id="test", category=category, action=action, decision=decision, **fields)  # type: ignore[arg-type]
        self.events.append(event)
        return event


def service(caps: list[str], *, secrets: dict[str, str] | None = None, limits: NetworkLimits | None = None,
            ) -> tuple[NetworkService, Recorder]:
    recorder = Recorder()
    return NetworkService(Policy.parse(caps), recorder, secrets=secrets, limits=limits), recorder


def ask(svc: NetworkService, url: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    answer = json.loads(svc.handle(json.dumps({"method": method, "url": url, **extra}).encode()))
    assert isinstance(answer, dict)
    return answer


def body(answer: dict[str, Any]) -> bytes:
    return base64.b64decode(answer["body_base64"])


def hostile_dns(monkeypatch: Any, answers: dict[str, list[str]]) -> list[str]:
    """Make ``socket.getaddrinfo`` answer ``answers`` for those names (as a hostile DNS server
    would); returns the list of names looked up, in order."""
    asked: list[str] = []
    real: Callable[..., Any] = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host in answers:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port, 0, 0) if ":" in a else (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked
