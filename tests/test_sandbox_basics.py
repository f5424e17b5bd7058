"""Core runs: output, args, stdin, env, events, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import probes
from workbench.events import Event, Sample
from workbench.policy import Limits
from workbench.runtime import DEFAULT_LIMITS, Sandbox


def test_wat_module_writes_to_stdout() -> None:
    result = Sandbox().run(probes.hello("hello, sandbox\n"), lang="wat")
    assert result.stdout == "hello, sandbox\n"
    assert result.stderr == ""
    assert result.exit_code == 0
    assert result.ok
    assert result.violations == []


def test_stderr_is_captured_separately() -> None:
    result = Sandbox().run(probes.hello("to stderr\n", stream=2))
    assert result.stderr == "to stderr\n"
    assert result.stdout == ""


def test_language_is_detected_from_text_bytes_and_path(tmp_path: Path) -> None:
    import wasmtime

    text = probes.hello("detected\n")
    path = tmp_path / "m.wat"
    path.write_text(text)
    binary = tmp_path / "m.wasm"
    binary.write_bytes(wasmtime.wat2wasm(text))
    for source in (text, wasmtime.wat2wasm(text), path, binary):
        assert Sandbox().run(source).stdout == "detected\n"


def test_args_reach_the_guest() -> None:
    result = Sandbox().run(probes.print_args(), args=["one", "two words"], name="echo")
    assert result.stdout.splitlines() == ["echo", "one", "two words"]


def test_stdin_reaches_the_guest() -> None:
    result = Sandbox().run(probes.echo_stdin(), stdin="line 1\nline 2\n")
    assert result.stdout == "line 1\nline 2\n"


def test_guest_sees_only_granted_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "do-not-leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert Sandbox().run(probes.print_environ()).stdout == ""
    policy = ["env:set:MODE=sandbox", "env:inherit:LANG"]
    seen = Sandbox(policy).run(probes.print_environ()).stdout.splitlines()
    assert sorted(seen) == ["LANG=C.UTF-8", "MODE=sandbox"]
    explicit = Sandbox().run(probes.print_environ(), env={"EXTRA": "1"}).stdout.splitlines()
    assert explicit == ["EXTRA=1"]


def test_events_reach_subscribers_and_result() -> None:
    sandbox = Sandbox(["time:limit:5s"])
    received: list[Event] = []
    samples: list[Sample] = []
    unsubscribe = sandbox.subscribe(lambda item: (received if isinstance(item, Event) else samples).append(item))
    result = sandbox.run(probes.hello())
    assert samples and samples[-1].run_id == result.run_id  # at least the final reading
    assert [e.action for e in received] == [e.action for e in result.events]
    assert received[0].category == "lifecycle" and received[0].action == "start"
    assert received[-1].action == "exit" and received[-1].detail["exit_code"] == 0
    assert all(e.run_id == result.run_id and e.module_sha256 == result.module_sha256 for e in received)
    unsubscribe()
    sandbox.run(probes.hello())
    assert len(received) == len(result.events)


def test_a_broken_subscriber_does_not_break_the_run_and_is_reported() -> None:
    from workbench.errors import SubscriberWarning

    sandbox = Sandbox()

    def broken(item: object) -> None:
        raise RuntimeError("view bug")

    sandbox.subscribe(broken)
    with pytest.warns(SubscriberWarning, match="broken failed .*RuntimeError: view bug"):
        result = sandbox.run(probes.hello())
    assert result.ok  # a view's bug is told, and the run goes on
    [failure] = result.subscriber_failures
    assert (failure.critical, failure.error) == (False, "RuntimeError: view bug")
    assert failure.count >= len(result.events) and isinstance(failure.exception, RuntimeError)
    assert result.audit_failure is None


def test_safe_defaults_apply_without_limits() -> None:
    sandbox = Sandbox()
    assert sandbox.limits.wall_seconds == DEFAULT_LIMITS.wall_seconds
    assert sandbox.limits.memory_bytes == DEFAULT_LIMITS.memory_bytes
    assert sandbox.limits.output_bytes == DEFAULT_LIMITS.output_bytes
    quick = Sandbox(defaults=Limits(wall_seconds=0.3))
    result = quick.run(probes.infinite_loop())
    assert [v.kind for v in result.violations] == ["time"]
    assert result.violations[0].capability == "time:limit:300ms"  # the default, written as a policy would be


def test_policy_limit_overrides_default() -> None:
    sandbox = Sandbox(["memory:limit:1MB"])
    assert sandbox.limits.memory_bytes == 1_000_000
    assert sandbox.limits.wall_seconds == DEFAULT_LIMITS.wall_seconds


def test_result_text_is_stable() -> None:
    first = repr(Sandbox().run(probes.hello(), name="hello"))
    second = repr(Sandbox().run(probes.hello(), name="hello"))
    assert first == second
    assert "hello: ok" in first


def test_json_form_holds_everything() -> None:
    import json

    result = Sandbox(["memory:limit:1MB"]).run(probes.memory_bomb(), name="bomb")
    data = json.loads(result.to_json())
    assert data["ok"] is False
    assert data["violations"][0]["kind"] == "memory"
    assert data["usage"]["memory_peak_bytes"] == result.usage.memory_peak_bytes
    assert len(data["events"]) == len(result.events)


def test_the_same_text_runs_again_without_preparing_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox keeps WAT/wasm text ready: a second run of it skips detection, compile-cache
    lookup and checks, and still runs in a fresh store with its own output and events."""
    sandbox = Sandbox()
    calls: list[object] = []
    prepare = sandbox._prepare
    monkeypatch.setattr(sandbox, "_prepare", lambda *a, **k: calls.append(a[0]) or prepare(*a, **k))
    first = sandbox.run(probes.hello("one\n"))
    again = sandbox.run(probes.hello("one\n"))  # equal text, another str object
    other = sandbox.run(probes.hello("two\n"))
    assert len(calls) == 2  # "one" once, "two" once
    assert (first.stdout, again.stdout, other.stdout) == ("one\n", "one\n", "two\n")
    assert first.run_id != again.run_id and [e.action for e in again.events] == [e.action for e in first.events]
    sandbox.run(probes.hello("one\n"), entry="_start", name="renamed")  # another name: prepared anew
    assert len(calls) == 3


def test_python_and_file_sources_are_prepared_every_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sandbox = Sandbox()
    calls: list[object] = []
    prepare = sandbox._prepare
    monkeypatch.setattr(sandbox, "_prepare", lambda *a, **k: calls.append(a[0]) or prepare(*a, **k))
    path = tmp_path / "hello.wat"
    path.write_text(probes.hello("from the file\n"))
    assert sandbox.run(path).stdout == "from the file\n"
    path.write_text(probes.hello("edited\n"))
    assert sandbox.run(path).stdout == "edited\n"  # a file is read again: it may have changed
    assert len(calls) == 2
    for _ in range(2):  # a Python program carries its inputs and interpreter settings
        assert sandbox.run("print('py')", lang="python").stdout == "py\n"
    assert len(calls) == 4


def test_a_prepared_module_still_checks_each_calling_threads_stack() -> None:
    """The native-stack check belongs to the thread, not the module: a module first run on the main
    thread must still be refused on a thread whose stack cannot hold its wasm stack."""
    import threading

    from workbench.errors import PolicyError
    from workbench.runtime.engine import native_stack_bytes

    measured: list[int] = []
    outcome: list[object] = []
    prepared = threading.Event()
    box: list[Sandbox] = []

    def small_thread() -> None:
        measured.append(native_stack_bytes())  # the real size: glibc may reuse a larger cached stack
        prepared.wait(30)
        try:
            box[0].run(probes.hello())
        except PolicyError as exc:
            outcome.append(exc)

    old = threading.stack_size(256 * 2**10)
    try:
        worker = threading.Thread(target=small_thread)
        worker.start()
    finally:
        threading.stack_size(old)
    while not measured:
        threading.Event().wait(0.01)
    # a wasm stack as large as the worker's whole native stack: fine on the main thread, not on the worker
    box.append(Sandbox([f"stack:limit:{measured[0]}B"]))
    assert box[0].run(probes.hello()).ok  # prepared (and kept) on the main thread
    prepared.set()
    worker.join(30)
    assert len(outcome) == 1 and "native stack" in str(outcome[0])
