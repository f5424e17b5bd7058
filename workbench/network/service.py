"""The host side of a guest's HTTP request: :class:`NetworkService` (JSON in, JSON out).

One service per run.  :meth:`NetworkService.handle` takes the guest's request bytes and returns
the response bytes (the contract is in :mod:`workbench.network`); it never raises for anything
the guest sends.  Per request: read the JSON (:mod:`.envelope`), parse the URL
(:mod:`.urls`), check the headers (:mod:`.headers`); then hop by hop: decide the URL against
the grants (:mod:`.rules`), resolve the name once and check every address, put the grant's
secrets in, exchange with a checked address (:mod:`.transport`), record the hop
(:mod:`.records`), and follow a redirect only through the same checks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Mapping

from workbench.network.addresses import Address
from workbench.network.envelope import Ask, EnvelopeError, read_request
from workbench.network.headers import HeaderError, sanitize
from workbench.network.limits import NetworkLimits
from workbench.network.records import Emit, record, shown
from workbench.network.resolve import ResolveError, resolve
from workbench.network.rules import Allowed, check_address, decide, literal
from workbench.network.secrets import SecretError, Secrets
from workbench.network.urls import Target, UrlError, parse_url
from workbench.policy import Policy
from workbench.policy.capability import Capability

if TYPE_CHECKING:
    from workbench.network.transport import Reply

__all__ = ["NetworkService", "visible"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: headers that stay with their origin: not carried to another host by a redirect
_ORIGIN_BOUND = frozenset({"authorization", "cookie"})


def visible(policy: Policy) -> bool:
    """Does ``policy`` grant any network access at all (else the guest sees no network device)?"""
    return any(cap.domain == "network" for cap in policy.grants)


class _Failure(Exception):
    """A request that ends without a response: the error kind, the reason and the rule."""

    def __init__(self, kind: str, reason: str, rule: Capability | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.rule = rule


_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
#: how many parsed URLs and decided targets a service keeps (each): a run's loops ask few distinct URLs
_KEPT = 256


def _answer(value: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode("ascii")


class NetworkService:
    """Performs a run's HTTP(S) requests under ``policy``'s ``network:`` grants.

    - ``policy``: the run's :class:`Policy`
    - ``emit``: where each request's event goes (``RunContext.emit``)
    - ``secrets``: a mapping of secret values (``Sandbox(secrets=...)``) or :class:`Secrets`;
      names not in it are looked up in the host environment
    - ``limits``: :class:`NetworkLimits` (default: its defaults)
    - ``clock``: monotonic seconds (default ``time.monotonic``), for the total time and the records
    """

    def __init__(
        self,
        policy: Policy,
        emit: Emit,
        *,
        secrets: Secrets | Mapping[str, str] | None = None,
        limits: NetworkLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy
        self.emit = emit
        self.limits = limits if limits is not None else NetworkLimits()
        self.clock = clock if clock is not None else time.monotonic
        self._secrets = Secrets.of(secrets)
        names = {c.param("secret") for c in policy.grants if c.domain == "network"}
        self._names = frozenset(n for n in names if n is not None)
        self._count = 0
        self._lock = threading.Lock()
        #: URLs parsed and targets decided in this run, kept (at most _KEPT of each): a guest that asks
        #: the same URL again, as loops do, skips both; they depend only on the text and the policy,
        #: which a run never changes (about a quarter of a denied request's host time: bench_network_python.py)
        self._targets: dict[str, Target] = {}
        self._verdicts: dict[Target, Allowed | tuple[str, Capability | None]] = {}

    def __repr__(self) -> str:
        return f"NetworkService({self.policy!r}, requests={self._count}, secrets={sorted(self._names)!r})"

    @property
    def requests(self) -> int:
        """How many requests this service has handled (the per-run cap counts these)."""
        return self._count

    # -- the contract ------------------------------------------------------------------------
    def handle(self, request: bytes) -> bytes:
        """One guest request (UTF-8 JSON) to one response (UTF-8 JSON); never raises for guest input."""
        values = self._secrets.values(self._names) if self._names else []
        over = self._counted(values)
        if over is not None:
            return over
        try:
            ask = read_request(request, self.limits)
        except EnvelopeError as exc:
            return self._refuse(values, "invalid", str(exc), shown(exc.url), None, {"method": shown(exc.method, 16)})
        try:
            return self._perform(ask, values)
        except _Failure as failure:  # recorded where it happened
            return _answer({"ok": False, "error": failure.kind, "reason": Secrets.scrub(failure.reason, values)})
        except Exception as exc:  # a defect of ours must not unwind into the guest's host call
            reason = f"the host failed on this request ({type(exc).__name__}: {exc})"
            return self._refuse(values, "unreachable", reason, shown(ask.url), None, {"method": ask.method})

    def refuse(self, kind: str, reason: str) -> bytes:
        """A request the device refused before it reached :meth:`handle` (a readlink token that is not
        base64: ``runtime/device_link.py``): counted against the run's cap and answered and recorded as
        a request this service refused, as the same bad request written into the node would be."""
        values = self._secrets.values(self._names) if self._names else []
        over = self._counted(values)
        return over if over is not None else self._refuse(values, kind, reason, None, None, {})

    def _counted(self, values: list[tuple[str, str]]) -> bytes | None:
        """Count one request against the run's cap: None, or the ``limit`` answer (recorded) past it."""
        with self._lock:
            self._count += 1
            over = self._count > self.limits.max_requests
        if not over:
            return None
        return self._refuse(values, "limit", f"this run made its {self.limits.max_requests} requests "
                            "(the most a run may make); make fewer requests", None, None, {})

    # -- steps -------------------------------------------------------------------------------
    def _refuse(
        self,
        values: list[tuple[str, str]],
        kind: str,
        reason: str,
        target: str | None,
        rule: Capability | None,
        detail: dict[str, Any],
    ) -> bytes:
        self._fail(values, kind, reason, target, rule, detail)
        return _answer({"ok": False, "error": kind, "reason": Secrets.scrub(reason, values)})

    def _fail(self, values: list[tuple[str, str]], kind: str, reason: str, target: str | None,
              rule: Capability | None, detail: dict[str, Any], *, decision: str = "deny",
              resolved: str | None = None) -> _Failure:
        """Record the end of a request; the caller raises what this returns (answered in :meth:`handle`)."""
        record(self.emit, values, decision=decision, target=target, resolved=resolved, rule=rule, reason=reason,
               detail={**detail, "error": kind})
        return _Failure(kind, reason, rule)

    def _perform(self, ask: Ask, values: list[tuple[str, str]]) -> bytes:
        base = {"method": ask.method}
        try:
            target = self._parse(ask.url)
        except UrlError as exc:
            raise self._fail(values, "invalid", str(exc), shown(ask.url), None, base) from None
        try:
            headers = sanitize(ask.headers, self.limits)
        except HeaderError as exc:
            raise self._fail(values, "invalid", str(exc), target.url, None, base) from None
        if len(ask.body) > self.limits.max_request_bytes:
            raise self._fail(values, "too_large", f"the body is {len(ask.body):,} bytes (the most is "
                             f"{self.limits.max_request_bytes:,}); send less", target.url, None, base)
        started = self.clock()
        deadline = started + self.limits.total_seconds
        method, body = ask.method, ask.body
        for hop in range(self.limits.max_redirects + 1):
            reply, allowed, address = self._hop(target, method, headers, body, values, hop, deadline)
            location = dict(reply.headers).get("location")
            if reply.status not in _REDIRECTS or location is None:
                return self._reply(target, reply, values)
            # a value a server put into a Location travels on as its placeholder, never to the next host
            following = self._redirect(target, Secrets.scrub(location, values), values, hop, method, allowed.rule)
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                body = b""
                headers = tuple((n, v) for n, v in headers if n.lower() != "content-type")
            if (following.scheme, following.host, following.port) != (target.scheme, target.host, target.port):
                headers = tuple((n, v) for n, v in headers if n.lower() not in _ORIGIN_BOUND)
            target = following
        raise self._fail(values, "limit", f"more than {self.limits.max_redirects} redirects; "
                         "ask for the final URL directly", target.url, None, {"method": method})

    def _parse(self, url: str) -> Target:
        """``parse_url(url)``, kept for the run (a refused URL raises each time, and is not kept)."""
        target = self._targets.get(url)
        if target is None:
            target = parse_url(url)
            if len(self._targets) < _KEPT:
                self._targets[url] = target
        return target

    def _redirect(self, target: Target, location: str, values: list[tuple[str, str]], hop: int,
                  method: str, rule: Capability) -> Target:
        try:
            return parse_url(urllib.parse.urljoin(target.url, location))
        except (UrlError, ValueError) as exc:
            raise self._fail(values, "invalid", f"{target.url} redirected to a URL that is refused: {exc}",
                             shown(location), rule, {"method": method, "hop": hop + 1}) from None

    def _hop(
        self, target: Target, method: str, headers: tuple[tuple[str, str], ...], body: bytes,
        values: list[tuple[str, str]], hop: int, deadline: float,
    ) -> tuple[Reply, Allowed, Address]:
        detail: dict[str, Any] = {"method": method, "hop": hop}
        verdict = self._verdicts.get(target)
        if verdict is None:
            verdict = decide(self.policy, target)
            if len(self._verdicts) < _KEPT:
                self._verdicts[target] = verdict
        if not isinstance(verdict, Allowed):
            raise self._fail(values, "denied", verdict[0], target.url, verdict[1], detail)
        rule = verdict.rule
        addresses = self._addresses(target, rule, values, detail, deadline)
        sent: list[tuple[str, str]] = []
        used: set[str] = set()
        try:
            for name, value in headers:
                value, names = self._secrets.substitute(value, verdict.secrets)
                sent.append((name, value))
                used |= names
        except SecretError as exc:
            raise self._fail(values, "denied", str(exc), target.url, rule, detail) from None
        if used:
            detail["substituted"] = sorted(used)
        import httpx  # noqa: PLC0415 - only an allowed request loads httpx (~70 ms); denials stay cheap

        from workbench.network.transport import TotalTimeout, exchange  # noqa: PLC0415
        began = self.clock()
        last: Exception | None = None
        for address in addresses:
            where = literal(address)
            try:
                reply = exchange(target, address, method, tuple(sent), body, self.limits,
                                 extra=max((len(v) for _, v in values), default=0), deadline=deadline,
                                 clock=self.clock)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except (httpx.TimeoutException, TotalTimeout):
                raise self._fail(values, "timeout", self._late(target), target.url, rule,
                                 {**detail, "ms": self._ms(began)}, decision="allow", resolved=where) from None
            except httpx.LocalProtocolError as exc:
                raise self._fail(values, "invalid", f"the request could not be sent: {exc}", target.url, rule,
                                 detail, resolved=where) from None
            except httpx.HTTPError as exc:
                raise self._fail(values, "unreachable", f"{target.url} failed: {type(exc).__name__}: {exc}",
                                 target.url, rule, {**detail, "ms": self._ms(began)}, decision="allow",
                                 resolved=where) from None
            truncated = reply.more or len(reply.body) > self.limits.max_response_bytes
            event = {**detail, "status": reply.status, "bytes_out": len(body),
                     "bytes_in": min(len(reply.body), self.limits.max_response_bytes),
                     "ms": self._ms(began), "truncated": truncated}
            reason = (f"response cut at {self.limits.max_response_bytes:,} bytes (the cap)" if truncated else None)
            record(self.emit, values, decision="allow", target=target.url, resolved=where, rule=rule,
                   reason=reason, detail=event)
            return reply, verdict, address
        reason = f"{target.url} could not be reached ({type(last).__name__}: {last})"
        if last is not None and "CERTIFICATE_VERIFY_FAILED" in str(last):
            reason = f"{target.url}: its TLS certificate could not be verified ({last})"
        raise self._fail(values, "unreachable", reason, target.url, rule, {**detail, "ms": self._ms(began)},
                         decision="allow", resolved=",".join(literal(a) for a in addresses))

    def _addresses(self, target: Target, rule: Capability, values: list[tuple[str, str]],
                   detail: dict[str, Any], deadline: float) -> list[Address]:
        if target.address is not None:
            addresses = [target.address]
        else:
            try:
                addresses = resolve(target.host, target.port, min(self.limits.connect_seconds,
                                                                  max(deadline - self.clock(), 0.001)))
            except ResolveError as exc:
                kind = "timeout" if exc.timeout else "unreachable"
                raise self._fail(values, kind, str(exc), target.url, rule, detail, decision="allow") from None
        for address in addresses:
            refused = check_address(self.policy, target, rule, address)
            if refused is not None:
                raise self._fail(values, "denied", refused[0], target.url, refused[1], detail,
                                 resolved=literal(address))
        return addresses

    def _late(self, target: Target) -> str:
        return (f"{target.url} did not answer in time (connect {self.limits.connect_seconds:g} s, "
                f"read {self.limits.read_seconds:g} s, total {self.limits.total_seconds:g} s)")

    def _ms(self, began: float) -> float:
        return round((self.clock() - began) * 1000, 3)

    def _reply(self, target: Target, reply: Reply, values: list[tuple[str, str]]) -> bytes:
        body = Secrets.scrub_bytes(reply.body, values)[: self.limits.max_response_bytes]
        headers = {name: Secrets.scrub(value, values) for name, value in reply.headers}
        truncated = reply.more or len(reply.body) > self.limits.max_response_bytes
        return _answer({
            "ok": True,
            "status": reply.status,
            "headers": headers,
            "body_base64": base64.b64encode(body).decode("ascii"),
            "truncated": truncated,
            "url": Secrets.scrub(target.url, values),
        })
