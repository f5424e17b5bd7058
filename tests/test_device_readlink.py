"""The device's one-call exchange (runtime/device_link.py): a request in a readlink path, its answer
in the link text; the same service, checks and records as the file protocol; hostile input refused
and recorded; no grant, no device."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from workbench import Sandbox
from workbench.guest import workbench_guest
from workbench.runtime import device_link
from workbench.runtime.errnos import WASI


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


class Echo:
    """A host service answering ``{"echo": <the request as text>, "pad": "x" * pad}``."""

    def __init__(self, pad: int = 0) -> None:
        self.pad = pad
        self.requests: list[bytes] = []

    def handle(self, request: bytes) -> bytes:
        self.requests.append(request)
        return json.dumps({"echo": request.decode("utf-8", "replace"), "pad": "x" * self.pad}).encode()


def node_events(result: Any, node: str = "/dev/workbench/http") -> list[Any]:
    return [e for e in result.events if e.category == "filesystem" and e.resolved == node]


def test_the_helper_and_the_host_agree_on_the_exchange() -> None:
    assert workbench_guest._PREFIX == "/" + device_link.PREFIX
    assert workbench_guest._MAX_TOKEN == device_link.MAX_TOKEN_CHARS
    # the longest node name a grant gives (call/ + 64 characters) with the longest token stays below the guard's cap
    assert len("call/" + "n" * 64 + "/" + device_link.PREFIX) + device_link.MAX_TOKEN_CHARS < 4096


def test_a_granted_request_takes_one_readlink(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hello").respond_with_data("hello guest")
    code = (f"import workbench_guest\nr = workbench_guest.request('GET', 'http://localhost:{httpserver.port}/hello')\n"
            "print(r.status, r.body.decode(), type(r).__name__)")
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "200 hello guest Response"
    assert not node_events(result)  # no open of the node: the request went through path_readlink
    allowed = [e for e in result.events if e.category == "network" and e.decision == "allow"]
    assert len(allowed) == 1 and allowed[0].target == f"http://localhost:{httpserver.port}/hello"


def test_a_denied_request_raises_and_is_recorded_as_through_the_file_protocol() -> None:
    code = '''
import workbench_guest
reasons = []
for limit in (workbench_guest._MAX_TOKEN, -1):  # the one call, then the file protocol
    workbench_guest._MAX_TOKEN = limit
    try:
        workbench_guest.request("GET", "http://not-granted.example/")
    except PermissionError as exc:
        reasons.append(str(exc))
print(len(reasons), reasons[0] == reasons[1])
print(reasons[0])
'''
    result = Sandbox(["network:http:localhost"]).run(code, "python")
    assert result.exit_code == 0, result
    first, second = result.stdout.splitlines()[:2]
    assert first == "2 True"
    assert "no network grant covers" in second and "network:http:not-granted.example" in second
    one, other = [e for e in result.events if e.category == "network"]
    assert {**vars(one), "ts": 0} == {**vars(other), "ts": 0}
    assert one.decision == "deny" and one.detail["error"] == "denied"
    # the file protocol opened the node twice; the one call did not open it at all
    assert [e.action for e in node_events(result)] == ["open", "open"]


def test_a_big_answer_comes_back_whole(httpserver: HTTPServer) -> None:
    payload = bytes(range(256)) * 40  # 10 KiB: its JSON answer does not fit readlink's 4 KiB buffer
    httpserver.expect_request("/big").respond_with_data(payload)
    code = (f"import workbench_guest, hashlib\nr = workbench_guest.request('GET', 'http://localhost:{httpserver.port}/big')\n"
            "print(len(r.body), hashlib.sha256(r.body).hexdigest())")
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.split() == [str(len(payload)), hashlib.sha256(payload).hexdigest()]
    assert len(httpserver.log) == 1  # fetched from the node, not asked again
    assert [(e.action, e.detail["rights"]) for e in node_events(result)] == [("open", "read")]


def test_a_big_request_body_falls_back_to_the_file_protocol(httpserver: HTTPServer) -> None:
    body = b"b" * 8000
    httpserver.expect_request("/post", method="POST", data=body).respond_with_json({"seen": len(body)})
    code = (f"import workbench_guest\nr = workbench_guest.request('POST', 'http://localhost:{httpserver.port}/post', "
            f"body=b'b' * {len(body)})\nprint(r.status, r.json())")
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "200 {'seen': 8000}"
    assert [e.detail["rights"] for e in node_events(result)] == ["write", "read"]


def test_a_small_request_body_still_takes_one_readlink(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/post", method="POST", data=b"s" * 1000).respond_with_data("got it")
    code = (f"import workbench_guest\nr = workbench_guest.request('POST', 'http://localhost:{httpserver.port}/post', "
            "body='s' * 1000, headers={'Content-Type': 'text/plain'})\nprint(r.status, r.text())")
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "200 got it"
    assert not node_events(result)


HOSTILE = '''
import os, errno
for name in NAMES:
    try:
        print("answer", os.readlink(b"/dev/workbench/" + name).decode())
    except OSError as exc:
        print("errno", errno.errorcode[exc.errno])
'''


def token(data: bytes) -> bytes:
    return b"x-" + base64.urlsafe_b64encode(data)


@pytest.mark.parametrize("name, error", [
    (b"http/x-!!!!", "not URL-safe base64"),
    (b"http/x-abc", "not URL-safe base64"),  # bad padding
    (b"http/" + token(b"\xff\xfe{"), "invalid"),  # not UTF-8: the service says so
    (b"http/" + token(b'{"method": "GET", "url": '), "invalid"),  # not JSON
    (b"http/" + token(b'["not", "an", "object"]'), "invalid"),
])
def test_a_hostile_token_gets_an_invalid_answer_and_a_record(name: bytes, error: str) -> None:
    result = Sandbox(["network:http:localhost"]).run(f"NAMES = [{name!r}]\n" + HOSTILE, "python")
    assert result.exit_code == 0, result
    answer = json.loads(result.stdout.split(" ", 1)[1])
    assert answer["ok"] is False and answer["error"] == "invalid"
    denials = [e for e in result.events if e.category == "network" and e.decision == "deny"]
    assert len(denials) == 1
    assert error in (denials[0].reason or "") + denials[0].detail.get("error", "")


def test_an_over_long_token_is_refused_and_recorded() -> None:
    name = b"http/x-" + b"A" * 5000
    result = Sandbox(["network:http:localhost"]).run(f"NAMES = [{name!r}]\n" + HOSTILE, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "errno ENAMETOOLONG"
    refused, = [e for e in result.events if e.action == "readlink" and e.decision == "deny"]
    assert "longer than 4096" in (refused.reason or "")
    assert not [e for e in result.events if e.category == "network"]


def test_nodes_that_do_not_exist_and_plain_names_are_refused_and_recorded() -> None:
    names = [b"nope/" + token(b"{}"), b"workbench_guest.py/" + token(b"{}"), b"http/other", b"call/none/" + token(b"{}")]
    result = Sandbox(["network:http:localhost"]).run(f"NAMES = {names!r}\n" + HOSTILE, "python")
    assert result.exit_code == 0, result
    assert result.stdout.split() == ["errno", "EACCES"] * 4
    refused = [e for e in result.events if e.action == "readlink" and e.decision == "deny"]
    assert [e.resolved for e in refused] == ["/dev/workbench/nope", "/dev/workbench/workbench_guest.py",
                                             "/dev/workbench/http/other", "/dev/workbench/call/none"]
    assert ["not a node" in (e.reason or "") for e in refused] == [True, False, True, True]
    assert "takes no requests" in (refused[1].reason or "")
    assert [(e.category, e.decision, e.target) for e in result.events if e.category == "module"] == \
        [("module", "deny", "none")]  # as an open of call/none is recorded
    assert not [e for e in result.events if e.category == "network"]


def test_without_a_grant_there_is_no_device_to_ask() -> None:
    names = [b"http/" + token(b'{"method": "GET", "url": "http://localhost/"}')]
    result = Sandbox(["filesystem:read:/docs"]).run(f"NAMES = {names!r}\n" + HOSTILE, "python")
    assert result.stdout.split() == ["errno", "EACCES"]
    refused, = [e for e in result.events if e.action == "readlink"]
    assert refused.decision == "deny" and refused.category == "filesystem"
    assert refused.resolved is not None and refused.resolved.startswith("/dev/workbench/http/x-")
    assert not [e for e in result.events if e.category in ("network", "device")]


def wat_readlink(path: bytes, buf: int, room: int) -> str:
    """A WAT guest: path_readlink on the device (fd 3, no other grant); prints the text, or exits with the errno."""
    return f"""(module
 (import "wasi_snapshot_preview1" "path_readlink" (func $readlink (param i32 i32 i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (memory (export "memory") 1)
 (data (i32.const 1024) "{path.decode()}")
 (func (export "_start") (local $e i32)
   (local.set $e (call $readlink (i32.const 3) (i32.const 1024) (i32.const {len(path)}) (i32.const {buf})
                                 (i32.const {room}) (i32.const 16)))
   (if (local.get $e) (then (call $exit (local.get $e))))
   (i32.store (i32.const 0) (i32.const {buf})) (i32.store (i32.const 4) (i32.load (i32.const 16)))
   (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def test_a_buffer_outside_memory_is_refused_before_the_request_is_served() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(wat_readlink(b"echo/" + token(b"{}"), 65000, 4096), "wat")
    assert result.exit_code == WASI["EFAULT"]
    assert echo.requests == []
    refused, = [e for e in result.events if e.action == "readlink"]
    assert refused.decision == "deny" and "outside the guest's memory" in (refused.reason or "")


def test_an_answer_larger_than_the_buffer_is_kept_in_the_node_not_cut() -> None:
    echo = Echo(pad=300)
    sandbox = Sandbox([], services={"echo": echo})
    result = sandbox.run(wat_readlink(b"echo/" + token(b'{"a": 1}'), 8192, 250), "wat")
    assert result.exit_code == 0, result
    note = json.loads(result.stdout)
    assert note["error"] == "more" and note["read"] == "/dev/workbench/echo" and note["bytes"] > 250
    too_small = sandbox.run(wat_readlink(b"echo/" + token(b'{"a": 1}'), 8192, 10), "wat")
    assert too_small.exit_code == WASI["ERANGE"]
    failed, = [e for e in too_small.events if e.action == "readlink"]
    assert failed.errno == WASI["ERANGE"] and failed.detail["kept"] is True


def test_the_python_helper_reads_a_kept_answer_from_the_node() -> None:
    echo = Echo(pad=6000)
    code = "import workbench_guest\nanswer = workbench_guest.exchange('echo', {'n': 1})\nprint(len(answer['pad']), answer['echo'])"
    result = Sandbox([], services={"echo": echo}).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == '6000 {"n": 1}'
    assert echo.requests == [b'{"n": 1}']
    device = [e for e in result.events if e.category == "device"]
    assert [e.decision for e in device] == ["allow"]


def test_a_module_call_through_the_one_call_exchange() -> None:
    code = "import workbench_guest\nprint(workbench_guest.call('wordcount', {'text': 'to be or not to be'})['words'])"
    result = Sandbox(["module:call:wordcount"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "6"
    assert not node_events(result, "/dev/workbench/call/wordcount")


def test_the_run_request_cap_counts_both_ways_in() -> None:
    code = '''
import workbench_guest
kinds = []
for i in range(101):
    workbench_guest._MAX_TOKEN = 3072 if i % 2 else -1  # one call and the file protocol, in turn
    try:
        workbench_guest.request("GET", "http://not-granted.example/")
    except PermissionError:
        kinds.append("denied")
    except OSError as exc:
        kinds.append(str(exc).split(": ")[1])
print(kinds.count("denied"), kinds[-1])
'''
    result = Sandbox(["network:http:localhost"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "100 limit"


def test_a_refused_exchange_names_the_node_not_the_token() -> None:
    code = '''
import workbench_guest
try:
    workbench_guest.call("nope", {"text": "x"})
except PermissionError as exc:
    print(exc.filename, "x-" in str(exc))
'''
    result = Sandbox(["module:call:wordcount"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "/dev/workbench/call/nope False"
    assert [(e.category, e.decision, e.target) for e in result.events if e.category == "module"] == \
        [("module", "deny", "nope")]


def test_exchange_still_sends_any_json_value() -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(
        "import workbench_guest\nprint(workbench_guest.exchange('echo', 'text')['echo'])", "python")
    assert result.exit_code == 0, result
    assert echo.requests == [b'"text"']


# -- a token is cut short in every record, whatever shape its path takes (review of the exchange) ----------
_LONG = b"x-" + b"A" * 3000


@given(st.lists(st.one_of(st.sampled_from(["", ".", "..", "echo", "x-", "x-e30="]),
                          st.text(alphabet="x-AZaz09_=.", min_size=0, max_size=200)), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_shown_cuts_every_exchange_name_and_nothing_else(names: list[str]) -> None:
    raw = "/".join(names)
    out = device_link.shown(raw).split("/")
    assert len(out) == len(names)  # no name added, lost or merged
    keep = len(device_link.PREFIX) + 48
    for before, after in zip(names, out):
        if before.startswith("x-") and len(before) > keep:  # the oracle: cut to 50 characters, its length said
            assert after == f"{before[:keep]}...({len(before) - 2} characters)"
        else:
            assert after == before
    assert device_link.cut_in(f"'/dev/workbench/{raw}' and {raw}", raw) == f"'/dev/workbench/{'/'.join(out)}' and {'/'.join(out)}"


@pytest.mark.parametrize("path, errno", [
    (b"nope/" + _LONG, "EACCES"),                 # no such node
    (b"nope/" + _LONG + b"/", "EACCES"),          # a trailing '/': the last name is empty
    (b"nope/" + _LONG + b"/.", "EACCES"),         # ... or '.'
    (b"workbench_guest.py/" + _LONG + b"//", "EACCES"),
    (b"../workbench/echo/" + _LONG, "ENOTCAPABLE"),  # '..' out of the preopen: refused before the exchange
    (b"echo/../echo/" + _LONG, "ENOTDIR"),       # a climb: walked, the node is no folder
    (b"x/../echo/" + _LONG, "EACCES"),            # a climb through a missing name
])
def test_a_refused_exchange_never_records_its_whole_token(path: bytes, errno: str) -> None:
    echo = Echo()
    for mode in ("deny", "kill"):
        result = Sandbox([], services={"echo": echo}, on_violation=mode).run(wat_readlink(path, 8192, 4096), "wat")
        readlinks = [e for e in result.events if e.action == "readlink"]
        assert len(readlinks) == 1, readlinks  # recorded once
        assert readlinks[0].errno == WASI[errno]
        for event in result.events:  # the path fields cut to 50; a reason quoting a path keeps its own (shorter) cut
            assert "A" * 49 not in f"{event.target}{event.resolved}" and "A" * 200 not in json.dumps(vars(event), default=str)
        if mode == "kill" and readlinks[0].decision == "kill":
            assert result.exit_code is None and "A" * 200 not in str(result.violations)
    assert echo.requests == []


def test_an_exchange_that_fails_after_it_was_served_cuts_its_token_whatever_the_path() -> None:
    echo = Echo(pad=10)
    token = b"x-" + base64.urlsafe_b64encode(b'{"pad": "' + b"y" * 2000 + b'"}')
    result = Sandbox([], services={"echo": echo}).run(wat_readlink(b"echo/" + token + b"/.", 8192, 0), "wat")
    assert result.exit_code == WASI["ERANGE"]
    failed, = [e for e in result.events if e.action == "readlink"]
    assert failed.resolved == "/dev/workbench/echo" and "characters)" in (failed.target or "")
    assert token[:200].decode() not in json.dumps(vars(failed), default=str)


@pytest.mark.parametrize("grants, node, record", [
    (["module:call:wordcount"], b"call/wordcount", ("module", "call", "wordcount")),
    (["network:http:localhost"], b"http", ("network", "request", None)),
    ([], b"echo", ("device", "request", "/dev/workbench/echo")),
])
def test_a_token_that_is_not_base64_is_recorded_as_the_service_records_its_own_refusals(
        grants: list[str], node: bytes, record: tuple[str, str, str | None]) -> None:
    """A bad token to a call node was a ``module``/``request`` record (an action the module category
    never uses) and missing from the call tree; now each service records it as its own ``invalid``."""
    result = Sandbox(grants, services={"echo": Echo()}).run(wat_readlink(node + b"/x-!!", 8192, 4096), "wat")
    assert result.exit_code == 0, result
    answer = json.loads(result.stdout)
    assert answer["error"] == "invalid" and "not URL-safe base64" in answer["reason"]
    denied = [e for e in result.events if e.decision == "deny"]
    assert [(e.category, e.action, e.target) for e in denied] == [record]
    assert "not URL-safe base64" in (denied[0].reason or "")
    if record[0] == "module":
        call, = result.calls
        assert (call.module, call.ok, call.error) == ("wordcount", False, "invalid")


def test_bad_tokens_count_against_the_run_request_cap() -> None:
    """As the same bad request written into the node would: past the cap the answer is ``limit``."""
    code = '''
import os, json
errors = [json.loads(os.readlink("/dev/workbench/http/x-!!"))["error"] for _ in range(101)]
print(errors.count("invalid"), errors[-1])
'''
    result = Sandbox(["network:http:localhost"]).run(code, "python")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == "100 limit"


_TOKEN = token(b'{"a": 1}').decode()


@given(st.lists(st.sampled_from([".", "..", "", "echo", "nope", "workbench_guest.py", _TOKEN, "x-!!", "x-"]),
                min_size=1, max_size=5))
@settings(max_examples=40, deadline=None)
def test_a_path_reaches_the_exchange_only_as_its_plain_form(names: list[str]) -> None:
    """Odd spellings (``./``, ``//``, a trailing ``/`` or ``/.``) of ``echo/x-<token>`` are that request,
    served once; anything with ``..``, an absolute path or another node is never served.  The oracle
    is posixpath alone: the service is asked iff the path has no ``..``, is relative, and is
    ``echo/<token>`` once normalised."""
    import posixpath

    path = "/".join(names)
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(wat_readlink(path.encode(), 8192, 4096), "wat")
    expected = bool(path) and not path.startswith("/") and ".." not in names \
        and posixpath.normpath(path) == f"echo/{_TOKEN}"
    assert echo.requests == ([b'{"a": 1}'] if expected else []), (path, result.events)
    assert result.exit_code is not None  # an errno or success: never a trap, never a crash
    if expected:
        assert result.exit_code == 0 and json.loads(result.stdout)["echo"] == '{"a": 1}'


def test_a_symlink_or_a_side_door_never_reaches_the_device() -> None:
    code = f'''
import os, errno
def attempt(f, *a):
    try:
        return repr(f(*a))[:20]
    except OSError as exc:
        return errno.errorcode[exc.errno]
for n, target in enumerate(["../dev/workbench/echo", "../dev/workbench", "/dev/workbench/echo"]):
    print(attempt(os.symlink, target, f"/tmp/l{{n}}"), attempt(os.readlink, f"/tmp/l{{n}}/{_TOKEN}"),
          attempt(os.readlink, f"/tmp/l{{n}}/echo/{_TOKEN}"))
print(attempt(os.readlink, "/tmp/../dev/workbench/echo/{_TOKEN}"))
'''
    echo = Echo()
    result = Sandbox(["filesystem:write:/tmp"], services={"echo": echo}).run(code, "python")
    assert result.exit_code == 0, result
    lines = result.stdout.split("\n")
    assert all(line.split() == ["EACCES", "ENOENT", "ENOENT"] for line in lines[:3]), result.stdout
    assert lines[3] == "ENOTCAPABLE"  # /dev/workbench is reached through its own preopen, not through /tmp's
    assert echo.requests == []


def _wat_call(path: bytes, buf: int, room: int, size_out: int, grow: int = 0) -> str:
    """A WAT guest making one readlink with any arguments (after growing its memory by ``grow`` pages)."""
    return wat_readlink(path, buf, room).replace("(i32.const 16)))", f"(i32.const {size_out})))").replace(
        "(i32.load (i32.const 16))", f"(i32.load (i32.const {size_out}))").replace(
        "(func (export \"_start\") (local $e i32)", f"(func (export \"_start\") (local $e i32) (drop (memory.grow (i32.const {grow})))")


@pytest.mark.parametrize("buf, room, size_out, grow, served, errno", [
    (-8, 4096, 16, 0, False, "EFAULT"),             # a pointer >= 2**31 (negative as an i32)
    (8192, -1, 16, 0, False, "EFAULT"),             # a length >= 2**31
    (8192, 4096, -4, 0, False, "EFAULT"),           # the size word >= 2**31
    (8192, 4096, 65533, 0, False, "EFAULT"),        # the size word across the end of memory
    (8192, 4096, 65532, 0, True, None),             # ... and exactly at its end
    (65536 - 100, 100, 16, 0, True, None),          # the buffer exactly at the end
    (65536 - 99, 100, 16, 0, False, "EFAULT"),      # one byte past it
    (65536, 0, 16, 0, True, "ERANGE"),              # a zero-length buffer at the end: served, kept, ERANGE
    (8192, 4096, 8194, 0, True, None),              # the size word inside the buffer: the guest's own muddle
    (2 * 65536 - 100, 100, 16, 1, True, None),      # memory grown before the call
    (2 * 65536 - 99, 100, 16, 1, False, "EFAULT"),
])
def test_buffer_and_size_arguments_of_any_shape(buf: int, room: int, size_out: int, grow: int, served: bool,
                                                errno: str | None) -> None:
    echo = Echo()
    result = Sandbox([], services={"echo": echo}).run(
        _wat_call(b"echo/" + token(b'{"a": 1}'), buf, room, size_out, grow), "wat")
    assert echo.requests == ([b'{"a": 1}'] if served else [])
    assert result.exit_code == (WASI[errno] if errno else 0), result
    readlinks = [e for e in result.events if e.action == "readlink"]
    assert len(readlinks) == (1 if errno else 0)  # a refusal or a failure after serving: recorded once
    if errno == "EFAULT":
        assert readlinks[0].decision == "deny" and readlinks[0].resolved == "/dev/workbench/echo"


@pytest.mark.parametrize("path, buf, errno", [
    (b"nope/" + token(b"{}"), 8192, "EACCES"),
    (b"workbench_guest.py/" + token(b"{}"), 8192, "EACCES"),
    (b"echo/" + token(b"{}"), 65000, "EFAULT"),
])
def test_every_exchange_refusal_kills_in_kill_mode_and_is_denied_in_learn_mode(path: bytes, buf: int, errno: str) -> None:
    """As every other guard refusal below the device (the device decides in every mode)."""
    echo = Echo()
    killed = Sandbox([], services={"echo": echo}, on_violation="kill").run(wat_readlink(path, buf, 4096), "wat")
    assert killed.exit_code is None
    refused, = [e for e in killed.events if e.action == "readlink"]
    assert refused.decision == "kill" and refused.errno == WASI[errno]
    code = f"import os\ntry:\n    os.readlink('/dev/workbench/{path.decode()}')\nexcept OSError as exc:\n    print(exc.errno)"
    if buf == 8192:  # CPython's own buffer is always inside memory
        learn = Sandbox([], services={"echo": echo}, on_violation="audit").run(code, "python")
        assert learn.stdout.strip() == str(WASI[errno]), learn
        assert [e.decision for e in learn.events if e.action == "readlink"] == ["deny"]
    assert echo.requests == []


def test_the_trace_shows_an_exchange_as_a_readlink_of_the_node() -> None:
    sandbox = Sandbox([], services={"echo": Echo()})
    served = sandbox.run(wat_readlink(b"echo/" + _TOKEN.encode(), 8192, 4096), "wat", trace=True).trace
    row = served[served.call == "path_readlink"].iloc[0]
    assert row.path == f"/dev/workbench/echo/{_TOKEN}" and row.fd_path == "/dev/workbench"
    assert row.result == 0 and row.bytes == len(json.dumps({"echo": '{"a": 1}', "pad": ""}))
    refused = sandbox.run(wat_readlink(b"nope/" + token(b"{}"), 8192, 4096), "wat", trace=True).trace
    row = refused[refused.call == "path_readlink"].iloc[0]
    assert row.errno == "EACCES" and row.decision == "deny"
