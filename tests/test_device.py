"""The device folder /dev/workbench: visible only with a grant, answered by the guard, refusing every trick.

Each refusal is asserted twice: the guest got an error, and the run recorded it (a deny event).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import workbench.runtime.device as device_module
from workbench import Sandbox
from workbench.runtime.device import MAX_REQUEST_BYTES


class Echo:
    """A test service: answers with what it got (and counts its requests)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    def handle(self, request: bytes) -> bytes:
        self.requests.append(request)
        return json.dumps({"ok": True, "echo": request.decode("utf-8", "replace")}).encode()


class Broken:
    def handle(self, request: bytes) -> bytes:
        raise RuntimeError("the service fell over")


class Huge:
    def handle(self, request: bytes) -> bytes:
        return b"x" * (device_module.MAX_RESPONSE_BYTES + 1)


def denied(result: Any, needle: str) -> list[Any]:
    """The deny events whose target or resolved path contains ``needle``."""
    return [e for e in result.events if e.decision == "deny" and needle in f"{e.target} {e.resolved}"]


PROBE = r'''
import os, json
def attempt(name, action):
    try:
        print(name, "GOT", repr(action())[:80])
    except OSError as exc:
        print(name, "refused", exc.errno)
def read(path):
    with open(path, "rb") as f:
        return f.read()
'''


@pytest.mark.parametrize("path", ["/dev", "/dev/workbench", "/dev/workbench/call"])
def test_without_a_grant_the_device_cannot_be_listed(path: str) -> None:
    result = Sandbox([]).run(PROBE + f"attempt('list', lambda: os.listdir({path!r}))", "python")
    assert "list refused" in result.stdout, result.stdout + result.stderr
    assert denied(result, path.lstrip("/")), result.events


@pytest.mark.parametrize("node", ["http", "call/parser", "workbench_guest.py", "../workbench/http"])
def test_without_a_grant_no_node_can_be_opened(node: str) -> None:
    result = Sandbox(["filesystem:write:/tmp"]).run(
        PROBE + f"attempt('open', lambda: read('/dev/workbench/{node}'))\n"
                f"attempt('write', lambda: open('/dev/workbench/{node}', 'wb').write(b'{{}}'))", "python")
    assert "open refused" in result.stdout and "write refused" in result.stdout, result.stdout + result.stderr
    assert len(denied(result, "workbench")) >= 2


def test_without_a_grant_python_cannot_import_the_helpers() -> None:
    result = Sandbox([]).run("import workbench_guest", "python")
    assert result.exit_code == 1 and "needs a device grant" in result.stderr
    assert denied(result, "workbench_guest.py")


def test_a_node_answers_a_request_from_python() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(
        "import os, workbench_guest\n"
        "print(sorted(os.listdir('/dev/workbench')))\n"
        "print(workbench_guest.exchange('echo', {'n': 1})['echo'])\n", "python")
    assert result.ok, result.stderr
    assert result.stdout.splitlines() == ["['echo', 'workbench_guest.py']", '{"n": 1}']
    assert echo.requests == [b'{"n": 1}']
    assert [e.action for e in result.events if e.category == "device"] == ["request"]


def test_reading_a_node_without_a_request_does_not_call_the_service() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(
        "print(open('/dev/workbench/echo').read())", "python")
    assert json.loads(result.stdout)["error"] == "invalid" and echo.requests == []


TRICKS = {
    "dotdot": "attempt('x', lambda: read('/dev/workbench/../workbench/echo'))",
    "new-node": "attempt('x', lambda: open('/dev/workbench/extra', 'wb'))",
    "mkdir": "attempt('x', lambda: os.mkdir('/dev/workbench/d'))",
    "unlink": "attempt('x', lambda: os.unlink('/dev/workbench/echo'))",
    "rename-node": "attempt('x', lambda: os.rename('/dev/workbench/echo', '/dev/workbench/e2'))",
    "rename-into": "open('/tmp/f', 'w').close(); attempt('x', lambda: os.rename('/tmp/f', '/dev/workbench/echo'))",
    "hardlink-out": "attempt('x', lambda: os.link('/dev/workbench/echo', '/tmp/h'))",
    "hardlink-in": "open('/tmp/f', 'w').close(); attempt('x', lambda: os.link('/tmp/f', '/dev/workbench/f'))",
    "symlink-in-device": "attempt('x', lambda: os.symlink('/tmp', '/dev/workbench/l'))",
    "relative-symlink-from-tmp": "attempt('x', lambda: (os.symlink('../dev/workbench/echo', '/tmp/l'), read('/tmp/l')))",
    "absolute-symlink-from-tmp": "attempt('x', lambda: (os.symlink('/dev/workbench/echo', '/tmp/l'), read('/tmp/l')))",
    "helper-write": "attempt('x', lambda: open('/dev/workbench/workbench_guest.py', 'wb'))",
    "truncate-node": "f = open('/dev/workbench/echo', 'r+b'); attempt('x', lambda: f.truncate(10**9))",
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_path_tricks_on_the_device_are_refused_and_recorded(trick: str) -> None:
    echo = Echo()
    sandbox = Sandbox(["filesystem:write:/tmp"], services={"echo": echo})
    result = sandbox.run(PROBE + TRICKS[trick], "python")
    assert "x refused" in result.stdout, result.stdout + result.stderr
    assert [e for e in result.events if e.decision == "deny"], result.events
    assert echo.requests == []


def test_a_symlink_the_host_left_in_a_writable_mount_does_not_lead_into_the_device(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "rel").symlink_to("../dev/workbench/echo")
    (tmp_path / "w" / "abs").symlink_to("/dev/workbench/echo")
    echo = Echo()
    result = Sandbox(["filesystem:write:/w"], root=tmp_path, services={"echo": echo}).run(
        PROBE + "attempt('rel', lambda: read('/w/rel'))\nattempt('abs', lambda: read('/w/abs'))\n"
                "attempt('write', lambda: open('/w/rel', 'wb').write(b'{}'))", "python")
    assert result.stdout.split("\n")[:3] == ["rel refused 2", "abs refused 2", "write refused 2"] or \
        all(" refused " in line for line in result.stdout.splitlines()), result.stdout + result.stderr
    assert len(denied(result, "/w/")) >= 3 and echo.requests == []


def test_kill_mode_ends_the_run_at_a_device_refusal() -> None:
    result = Sandbox([], services={"echo": Echo()}, on_violation="kill").run(
        "open('/dev/workbench/extra', 'wb')\nprint('still running')", "python")
    assert "still running" not in result.stdout and result.violations


def test_a_request_larger_than_the_cap_fails_the_write_and_is_recorded() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(
        PROBE + f"f = open('/dev/workbench/echo', 'wb', buffering=0)\n"
                f"attempt('first', lambda: f.write(b'a' * {MAX_REQUEST_BYTES}))\n"
                f"attempt('more', lambda: f.write(b'a'))\n", "python")
    assert "first GOT" in result.stdout and "more refused 22" in result.stdout, result.stdout + result.stderr
    assert any("at most" in (e.reason or "") for e in denied(result, "echo"))
    assert echo.requests == []


def test_pwrite_into_a_node_is_refused() -> None:
    result = Sandbox([], services={"echo": Echo()}).run(
        PROBE + "fd = os.open('/dev/workbench/echo', os.O_WRONLY)\n"
                "attempt('pwrite', lambda: os.pwrite(fd, b'x', 10**9))", "python")
    assert "pwrite refused" in result.stdout and denied(result, "echo")


def test_a_request_grown_past_the_cap_on_the_host_gets_an_error_response(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "MAX_REQUEST_BYTES", 64)  # the host reads at most this much
    echo = Echo()
    device = device_module.Device(device_module.host_nodes({"echo": echo}), None, lambda *a, **k: None)
    try:
        (Path(device.host) / "echo").write_bytes(b"{" + b" " * 100 + b"}")
        device.opened("/dev/workbench/echo", True)
        device.opened("/dev/workbench/echo", False)
        answer = json.loads((Path(device.host) / "echo").read_bytes())
    finally:
        device.close()
    assert answer["error"] == "too_large" and echo.requests == []


@pytest.mark.parametrize("service, error", [(Broken(), "invalid"), (Huge(), "too_large")])
def test_a_failing_service_gives_an_error_response_and_a_record(service: Any, error: str) -> None:
    result = Sandbox([], services={"svc": service}).run(
        "import workbench_guest\nprint(workbench_guest.exchange('svc', {})['error'])\nprint('still running')", "python")
    assert result.stdout.splitlines() == [error, "still running"], result.stderr
    assert denied(result, "svc")


@pytest.mark.parametrize("payload", [b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", b"\"x\"" * 10])
def test_malformed_call_requests_get_an_error_response_and_a_record(payload: bytes) -> None:
    result = Sandbox(["module:call:wordcount"]).run(
        f"open('/dev/workbench/call/wordcount', 'wb').write({payload!r})\n"
        "print(open('/dev/workbench/call/wordcount').read())", "python")
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and answer["error"] == "invalid", answer
    assert [e for e in result.events if e.category == "module" and e.decision == "deny"]


@pytest.mark.parametrize("name", ["http", "call", "Bad", "a/b", "", "workbench_guest.py"])
def test_service_names_are_checked(name: str) -> None:
    from workbench.errors import SandboxError

    with pytest.raises(SandboxError):
        Sandbox([], services={name: Echo()})


def wat_exchange(node: str, request: str) -> str:
    """A WAT guest that writes ``request`` to /dev/workbench/<node> (fd 3: no other grant) and prints the answer."""
    escaped = request.replace("\\", "\\\\").replace('"', '\\"')
    return f"""(module
 (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
 (memory (export "memory") 1)
 (data (i32.const 1024) "{node}")
 (data (i32.const 2048) "{escaped}")
 (func $node (param $oflags i32) (param $rights i64) (result i32)
   (if (call $open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const {len(node)})
                   (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 16))
     (then unreachable))
   (i32.load (i32.const 16)))
 (func (export "_start") (local $fd i32)
   (local.set $fd (call $node (i32.const 8) (i64.const 64)))
   (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const {len(request.encode())}))
   (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
   (drop (call $close (local.get $fd)))
   (local.set $fd (call $node (i32.const 0) (i64.const 2)))
   (i32.store (i32.const 0) (i32.const 4096)) (i32.store (i32.const 4) (i32.const 4096))
   (drop (call $read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
   (i32.store (i32.const 4) (i32.load (i32.const 8)))
   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def test_a_wat_guest_uses_the_channel() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(wat_exchange("echo", '{"from": "wat"}'), "wat")
    assert result.ok, result
    assert json.loads(result.stdout)["echo"] == '{"from": "wat"}'


def test_a_wat_guest_calls_a_catalog_module() -> None:
    result = Sandbox(["module:call:wordcount"]).run(
        wat_exchange("call/wordcount", '{"payload": {"text": "to be or not to be"}}'), "wat")
    answer = json.loads(result.stdout)
    assert answer["ok"] and answer["result"]["words"] == 6 and answer["result"]["top"][0] == ["to", 2]


C_GUEST = r'''
#include <stdio.h>
#include "workbench.h"
int main(void) {
    char out[4096];
    long n = wb_call("wordcount", "{\"text\": \"a b a\"}", out, sizeof out);
    if (n < 0) { perror("wb_call"); return 1; }
    puts(out);
    n = wb_exchange("call/parser", "{}", 2, out, sizeof out);
    if (n < 0) { perror("parser"); return 2; }
    return 0;
}
'''


def test_a_c_guest_uses_the_channel_through_workbench_h() -> None:
    pytest.importorskip("ziglang")
    result = Sandbox(["module:call:wordcount"]).run(C_GUEST, "c")
    assert result.exit_code == 2, result  # the second call has no grant: open() fails
    answer = json.loads(result.stdout)
    assert answer["ok"] and answer["result"]["words"] == 3
    assert "parser" in result.stderr and denied(result, "call/parser")
