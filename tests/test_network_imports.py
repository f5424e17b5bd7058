"""The direct host imports ``workbench::http_request`` and ``workbench::call`` (issue 12: "Direct wasm
imports for WAT and C"), against a real HTTP server on 127.0.0.1.

They are a second way in to the same services as ``/dev/workbench``: the same checks and records
(compared event by event with the device's), linked only under their grant (refused and recorded
otherwise), and every pointer and length the guest hands over is checked against its memory.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from workbench import Sandbox
from workbench.audit import AuditLog
from workbench.errors import LinkError
from workbench.network import placeholder
from workbench.runtime.device import MAX_REQUEST_BYTES

EFAULT = 21
REQ, RESP = 1024, 32768  # where the guests below keep a request and their response buffer
IMPORTS = {
    "http_request": '(import "workbench" "http_request" (func $http (param i32 i32 i32 i32) (result i32)))',
    "call": '(import "workbench" "call" (func $call (param i32 i32 i32 i32 i32 i32) (result i32)))',
}
EXPORTS = {
    "http_request": '(func (export "http") (param i32 i32 i32 i32) (result i32)\n'
                    '   (call $http (local.get 0) (local.get 1) (local.get 2) (local.get 3)))',
    "call": '(func (export "call") (param i32 i32 i32 i32 i32 i32) (result i32)\n'
            '   (call $call (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5)))',
}


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


def data(address: int, raw: bytes) -> str:
    """A data segment holding ``raw`` (every byte escaped, so any bytes fit)."""
    escaped = "".join("\\%02x" % b for b in raw)
    return f'(data (i32.const {address}) "{escaped}")'


def guest(*imports: str, pages: int = 1, memory: bool = True, segments: str = "") -> str:
    """A WAT module that exports each import as a function of the same type (called from a live instance)."""
    exported = '(export "memory")' if memory else ""
    return (f"(module\n {' '.join(IMPORTS[i] for i in imports)}\n"
            f" (memory {exported} {pages})\n {segments}\n"
            f" {' '.join(EXPORTS[i] for i in imports)})")


def request(url: str, **extra: Any) -> bytes:
    return json.dumps({"method": "GET", "url": url, **extra}).encode()


def answer(handle: Any, n: int) -> dict[str, Any]:
    assert n >= 0, n
    parsed = json.loads(handle.memory.read(RESP, n))
    assert isinstance(parsed, dict)
    return parsed


def network(events: Any) -> list[Any]:
    return [e for e in events if e.category == "network" and e.action == "request"]


def fetch(policy: list[str], *bodies: bytes, **options: Any) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """Each request made by a WAT guest through ``workbench::http_request``: the answers and the events."""
    segments = " ".join(data(REQ + 4096 * i, body) for i, body in enumerate(bodies))
    with Sandbox(policy, **options).instantiate(guest("http_request", pages=2, segments=segments), "wat") as handle:
        answers = [answer(handle, handle.call("http", REQ + 4096 * i, len(body), RESP, 32768))
                   for i, body in enumerate(bodies)]
        return answers, handle.events


# -- the network, in one host call ------------------------------------------------------------------
def test_a_granted_host_answers_in_one_host_call(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hello").respond_with_data("hi from the host")
    (got,), events = fetch([f"network:http:localhost:{httpserver.port}"],
                           request(f"http://localhost:{httpserver.port}/hello"))
    assert got["ok"] and got["status"] == 200 and got["body_base64"] == "aGkgZnJvbSB0aGUgaG9zdA=="
    (event,) = network(events)
    assert event.decision == "allow" and event.resolved == "127.0.0.1" and event.detail["status"] == 200


DEVICE_GUEST = '''
import json, workbench_guest
for url in URLS:
    try:
        workbench_guest.http_get(url)
    except OSError:
        pass
'''


def _comparable(event: Any) -> tuple[Any, ...]:
    detail = {k: v for k, v in event.detail.items() if k != "ms"}
    return (event.category, event.action, event.decision, event.target, event.resolved, event.capability,
            event.reason, event.errno, tuple(sorted(detail.items())))


def test_the_import_decides_and_records_exactly_as_the_device_does(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/hello").respond_with_data("hi")
    httpserver.expect_request("/away").respond_with_data("", status=302, headers={"Location": "http://example.com/"})
    urls = [f"http://localhost:{port}/hello", f"http://localhost:{port + 1}/", f"http://127.0.0.1:{port}/hello",
            f"https://localhost:{port}/hello", f"http://localhost:{port}/away", f"http://2130706433:{port}/"]
    policy = [f"network:http:localhost:{port}"]
    answers, events = fetch(policy, *(request(url) for url in urls))
    device = Sandbox(policy).run(f"URLS = {urls!r}\n" + DEVICE_GUEST, "python")
    assert device.exit_code == 0, device.stderr
    assert [_comparable(e) for e in network(events)] == [_comparable(e) for e in network(device.events)]
    assert [a["ok"] for a in answers] == [True, False, False, False, False, False]
    assert [a.get("error") for a in answers[1:]] == ["denied", "denied", "denied", "denied", "invalid"]
    assert len(httpserver.log) == 2 * 2  # per way in: the granted request and the redirect's first hop


def test_a_secret_reaches_its_host_only_and_the_guest_sees_its_placeholder(httpserver: HTTPServer) -> None:
    port, value = httpserver.port, "s3cr3t-v4lue"

    def echo(req: Request) -> Response:
        return Response("got " + req.headers.get("Authorization", "-"))

    httpserver.expect_request("/echo").respond_with_handler(echo)
    header = {"Authorization": placeholder("API_KEY")}
    answers, events = fetch([f"network:http:localhost:{port};secret=API_KEY", f"network:http:127.0.0.1:{port}"],
                            request(f"http://localhost:{port}/echo", headers=header),
                            request(f"http://127.0.0.1:{port}/echo", headers=header),  # reflected elsewhere
                            secrets={"API_KEY": value})
    bodies = [base64.b64decode(a["body_base64"]).decode() for a in answers]
    assert bodies == ["got " + placeholder("API_KEY")] * 2  # the value scrubbed from what the guest reads
    sent = [req.headers["Authorization"] for req, _ in httpserver.log]
    assert sent == [value, placeholder("API_KEY")]  # the other host gets the placeholder, never the value
    assert value not in repr(events) and network(events)[0].detail["substituted"] == ["API_KEY"]


def test_the_requests_cap_counts_both_ways_in() -> None:
    """One network service per run, behind the node and the import: 100 requests in all, then "limit"."""
    body = request("http://not-granted.example/")
    wat = f"""(module
 {IMPORTS["http_request"]}
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
 (memory (export "memory") 2)
 {data(512, b"http")} {data(REQ, body)}
 (func $node (param $oflags i32) (param $rights i64) (result i32)
   (drop (call $open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 4)
                     (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 16)))
   (i32.load (i32.const 16)))
 (func (export "_start") (local $i i32) (local $fd i32)
   (block $done (loop $l
     (br_if $done (i32.ge_u (local.get $i) (i32.const 100)))
     (drop (call $http (i32.const {REQ}) (i32.const {len(body)}) (i32.const {RESP}) (i32.const 4096)))
     (local.set $i (i32.add (local.get $i) (i32.const 1)))
     (br $l)))
   (local.set $fd (call $node (i32.const 8) (i64.const 64)))
   (i32.store (i32.const 0) (i32.const {REQ})) (i32.store (i32.const 4) (i32.const {len(body)}))
   (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
   (drop (call $close (local.get $fd)))
   (local.set $fd (call $node (i32.const 0) (i64.const 2)))
   (i32.store (i32.const 0) (i32.const {RESP})) (i32.store (i32.const 4) (i32.const 4096))
   (drop (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
   (i32.store (i32.const 4) (i32.load (i32.const 8)))
   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    result = Sandbox(["network:http:localhost"]).run(wat, "wat")
    reply = json.loads(result.stdout)
    assert reply["error"] == "limit" and "100 requests" in reply["reason"], result


# -- linked only under a grant ---------------------------------------------------------------------
@pytest.mark.parametrize("imports, policy, missing", [
    (("http_request",), [], "network: grant"),
    (("http_request",), ["module:call:wordcount"], "network: grant"),
    (("call",), ["network:http:localhost"], "module:call:NAME grant"),
    (("http_request", "call"), ["filesystem:read:/"], "network: grant"),
])
def test_an_import_without_its_grant_is_refused_before_the_guest_runs_and_recorded(
        tmp_path: Path, httpserver: HTTPServer, imports: tuple[str, ...], policy: list[str], missing: str) -> None:
    wat = guest(*imports).replace("(memory", '(func (export "_start")) (memory')
    log = AuditLog(tmp_path / "audit.jsonl")
    sandbox = Sandbox(policy, root=tmp_path, audit=log)
    with pytest.raises(LinkError) as caught:
        sandbox.run(wat, "wat")
    assert missing in str(caught.value) and "hint:" in str(caught.value)
    with pytest.raises(LinkError):
        sandbox.instantiate(wat, "wat")  # a live instance too
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [r for r in records if r["action"] == "import"]
    assert refused and all(r["decision"] == "deny" and r["target"].startswith("workbench::") for r in refused)
    assert not any(r["action"] == "start" for r in records)  # the guest never started
    assert httpserver.log == []


@pytest.mark.parametrize("line, message", [
    ('(import "workbench" "http_request" (func (param i32) (result i32)))', "wrong signature"),
    ('(import "workbench" "secret" (func (result i32)))', "workbench::secret"),
    ('(import "workbench" "memory" (memory 1))', "workbench::memory"),
])
def test_other_workbench_imports_and_wrong_signatures_are_link_errors(line: str, message: str) -> None:
    with pytest.raises(LinkError, match=message):
        Sandbox(["network:http:localhost"]).run(f'(module {line} (memory (export "memory") 1) (func (export "_start")))')


# -- adversarial buffers -----------------------------------------------------------------------------
PAGE = 65536


@pytest.mark.parametrize("args", [
    (PAGE, 10, RESP, 100),                # the request starts at the end of memory
    (PAGE - 5, 10, RESP, 100),            # and runs past it
    (REQ, 0xFFFF_FFFF, RESP, 100),        # a huge length
    (-1, 10, RESP, 100),                  # a "negative" pointer (0xffffffff unsigned)
    (0xFFFF_FFF0, 0x20, RESP, 100),       # a sum that wraps in 32 bits
    (REQ, 20, PAGE - 10, 100),            # the response buffer runs past the end
    (REQ, 20, -100, 200),                 # a response buffer that wraps
    (REQ, 20, RESP, -1),                  # a response capacity of 4 GiB
])
def test_buffers_outside_the_guests_memory_are_refused_recorded_and_send_nothing(
        httpserver: HTTPServer, args: tuple[int, ...]) -> None:
    body = request(f"http://localhost:{httpserver.port}/")
    policy = [f"network:http:localhost:{httpserver.port}"]
    with Sandbox(policy).instantiate(guest("http_request", segments=data(REQ, body)), "wat") as handle:
        before = handle.memory.tobytes()
        assert handle.call("http", *args) == -EFAULT
        assert handle.memory.tobytes() == before  # nothing written anywhere
        (refused,) = network(handle.events)
        assert refused.decision == "deny" and refused.errno == EFAULT and "outside the guest's memory" in refused.reason
        ok = handle.call("http", REQ, len(body), RESP, 4096)  # the guest goes on, and can still ask properly
    assert ok > 0 and len(httpserver.log) == 1


def test_a_module_that_exports_no_memory_gets_efault() -> None:
    with Sandbox(["network:http:localhost"]).instantiate(guest("http_request", memory=False), "wat") as handle:
        assert handle.call("http", 0, 0, 0, 0) == -EFAULT
        assert "exports no memory" in network(handle.events)[0].reason


@pytest.mark.parametrize("body, reason", [
    (b'{"method": "GET", "url": "http://localhost/\xff\xfe"}', "UTF-8"),
    (b'{"method": "GET", "url": ', "JSON"),
    (b"", "JSON"),
    (b"[1, 2]", "object"),
])
def test_invalid_utf8_and_json_are_answered_with_an_error_and_recorded(body: bytes, reason: str) -> None:
    (got,), events = fetch(["network:http:localhost"], body)
    assert got["ok"] is False and got["error"] == "invalid" and reason in got["reason"], got
    (event,) = network(events)
    assert event.decision == "deny" and event.detail["error"] == "invalid"


def test_a_request_over_the_cap_is_refused_without_being_read_whole() -> None:
    size = MAX_REQUEST_BYTES + 1
    wat = guest("http_request", pages=size // PAGE + 2)
    with Sandbox(["network:http:localhost"]).instantiate(wat, "wat") as handle:
        n = handle.call("http", 0, size, size, 4096)
        got = json.loads(handle.memory.read(size, n))
        assert got["error"] == "too_large"
        (event,) = network(handle.events)
        assert event.decision == "deny" and "larger than" in event.reason


def test_a_small_response_buffer_gets_the_start_and_the_full_length() -> None:
    body = request("http://not-granted.example/")
    with Sandbox(["network:http:localhost"]).instantiate(guest("http_request", segments=data(REQ, body)), "wat") as h:
        full = h.call("http", REQ, len(body), RESP, 4096)
        cut = h.call("http", REQ, len(body), RESP + 8192, 10)
        memory = h.memory
    assert cut == full > 10
    assert memory.read(RESP + 8192, 10) == memory.read(RESP, 10) and memory.read(RESP + 8202, 4) == b"\0" * 4


def test_in_kill_mode_a_bad_pointer_ends_the_run() -> None:
    wat = f"""(module {IMPORTS["http_request"]}
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (memory (export "memory") 1) {data(100, b"still running")}
 (func (export "_start")
   (drop (call $http (i32.const -1) (i32.const 10) (i32.const 0) (i32.const 0)))
   (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 13))
   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    assert "still running" in Sandbox(["network:http:localhost"]).run(wat).stdout  # deny mode goes on
    result = Sandbox(["network:http:localhost"], on_violation="kill").run(wat)
    assert "still running" not in result.stdout and result.outcome.startswith("stopped"), result
    assert [v.decision for v in result.violations] == ["kill"]


def test_a_traced_run_links_the_import_behind_the_trace_and_the_guard(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/t").respond_with_data("traced")
    body = request(f"http://localhost:{httpserver.port}/t")
    plain = guest("http_request", segments=data(REQ, body)).replace(
        '(func (export "http")', f'(func (export "_start") (drop (call $http (i32.const {REQ}) (i32.const {len(body)}) '
        f'(i32.const {RESP}) (i32.const 4096)))) (func (export "http")')
    guarded = plain.replace("(memory", '(import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 '
                                       'i64 i64 i32 i32) (result i32))) (memory')
    for source in (plain, guarded):
        result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(source, "wat", trace=True)
        assert result.ok and [e.decision for e in network(result.events)] == ["allow"], result
    assert len(httpserver.log) == 2


# -- module calls ------------------------------------------------------------------------------------
def test_a_wat_guest_calls_a_granted_module_and_only_that_one() -> None:
    payload = b'{"payload": {"text": "to be or not to be"}}'
    names = {2048: b"wordcount", 2100: b"parser", 2200: b"\xff\xfe", 2300: b"x" * 200}
    segments = data(REQ, payload) + " " + " ".join(data(at, name) for at, name in names.items())
    sandbox = Sandbox(["module:call:wordcount", "time:limit:5m"])  # a cold machine compiles the callee's interpreter
    with sandbox.instantiate(guest("call", segments=segments), "wat") as handle:
        replies = [answer(handle, handle.call("call", at, len(name), REQ, len(payload), RESP, 8192))
                   for at, name in names.items()]
        assert handle.call("call", 2048, 9, REQ, len(payload), PAGE, 10) == -EFAULT
        events = [e for e in handle.events if e.category == "module"]
    assert replies[0]["ok"] and replies[0]["result"]["words"] == 6
    assert [r.get("error") for r in replies] == [None, "denied", "invalid", "invalid"]
    assert [(e.action, e.decision, e.target) for e in events] == [
        ("call", "allow", "wordcount"), ("return", "allow", "wordcount"), ("call", "deny", "parser"),
        ("call", "deny", "\ufffd\ufffd"), ("call", "deny", "x" * 64), ("call", "deny", "workbench::call")]
    assert len(events[0].caller_chain) == 2 and events[0].caller_chain[-1] == "wordcount"


C_GUEST = r'''
#include <stdio.h>
#include "workbench.h"
int main(void) {
    char out[4096], small[8];
    if (wb_http_get_direct("http://localhost:PORT/c", out, sizeof out) < 0) { perror("get"); return 1; }
    puts(out);
    if (wb_call_direct("wordcount", "{\"text\": \"a b a\"}", out, sizeof out) < 0) { perror("call"); return 1; }
    puts(out);
    long n = wb_call_direct("parser", "{}", out, sizeof out);
    puts(out);
    n = wb_http_get_direct("http://localhost:PORT/c", small, sizeof small);
    printf("%ld %zu\n", n, strlen(small));
    return 0;
}
'''


def test_a_c_guest_uses_the_imports_through_workbench_h(httpserver: HTTPServer) -> None:
    pytest.importorskip("ziglang")
    httpserver.expect_request("/c").respond_with_data("from c")
    source = C_GUEST.replace("PORT", str(httpserver.port))
    # a callee's first run on a cold machine compiles the interpreter inside the caller's time: a long limit
    policy = [f"network:http:localhost:{httpserver.port}", "module:call:wordcount", "time:limit:5m"]
    result = Sandbox(policy).run(source, "c")
    assert result.exit_code == 0, result.stderr
    got, called, refused, cut = result.stdout.splitlines()
    assert json.loads(got)["status"] == 200 and base64.b64decode(json.loads(got)["body_base64"]) == b"from c"
    assert json.loads(called)["result"]["words"] == 3
    assert json.loads(refused)["error"] == "denied"
    full, kept = map(int, cut.split())
    assert full == len(got) and kept == 7  # the full length back, 7 bytes and a NUL in the buffer
    with pytest.raises(LinkError, match="module:call"):
        Sandbox(policy[:1]).run(source, "c")  # wb_call_direct imports workbench::call: no grant, no run
