"""module:call: a guest calls a catalog module through the host, with attenuated rights.

The callee runs in a fresh sandbox with what its manifest asks for ∩ its caller's rights; every
call and its outcome is recorded with the caller chain; budgets are the caller's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workbench import Policy, Sandbox
from workbench.audit import AuditLog
from workbench.errors import EscalationError
from workbench.modules import MAX_CALL_DEPTH


def module(folder: Path, name: str, source: str, *, language: str = "python", caps: tuple[str, ...] = ()) -> None:
    """A catalog module of the test's own (the user's catalog folder)."""
    where = folder / name
    where.mkdir(parents=True)
    ext = {"python": "py", "wat": "wat"}[language]
    (where / f"main.{ext}").write_text(source)
    (where / "manifest.toml").write_text(
        f'name = "{name}"\nlanguage = "{language}"\ndescription = "test module {name}"\n'
        f"capabilities = {json.dumps(list(caps))}\nexports = []\n[inputs]\n[outputs]\n")


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir()
    monkeypatch.setenv("WORKBENCH_EXTENSIONS", str(folder))
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "data" / "secret").mkdir(parents=True)
    (base / "data" / "a.csv").write_text("name,text\nx,hello world\ny,hello there\n")
    (base / "data" / "secret" / "s.csv").write_text("k\nTOPSECRET\n")
    return base


CALL = "import workbench_guest\n"


def call_events(result: Any, action: str = "call") -> list[Any]:
    return [e for e in result.events if e.category == "module" and e.action == action]


def test_without_module_call_parser_a_guest_cannot_call_parser(root: Path) -> None:
    code = CALL + ("try:\n    workbench_guest.call('parser', {'text': 'a'})\n"
                   "except PermissionError as exc:\n    print('denied:', exc)\n")
    result = Sandbox(["module:call:wordcount", "filesystem:read:/data"], root=root).run(code, "python")
    assert result.stdout.startswith("denied:"), result.stdout + result.stderr
    refused = [e for e in result.events if e.decision == "deny"]
    assert any(e.category == "module" and e.target == "parser" for e in refused)
    assert any(e.category == "filesystem" and e.resolved == "/dev/workbench/call/parser" for e in refused)
    assert result.calls == ()


def test_a_deny_rule_on_the_module_is_a_denied_call(root: Path) -> None:
    code = CALL + "try:\n    workbench_guest.call('wordcount', {'text': 'a'})\nexcept PermissionError as e:\n    print(e)"
    result = Sandbox(["module:call:wordcount", "!module:call:wordcount"], root=root).run(code, "python")
    assert "denied" in result.stdout or "Permission denied" in result.stdout, result.stdout + result.stderr


def test_parser_cannot_read_a_folder_its_caller_cannot_read(root: Path) -> None:
    policy = ["module:call:parser", "filesystem:read:/data", "!filesystem:read:/data/secret"]
    code = CALL + ("print(workbench_guest.call('parser', {'path': '/data/a.csv'})['count'])\n"
                   "try:\n    workbench_guest.call('parser', {'path': '/data/secret/s.csv'})\n"
                   "except OSError as exc:\n    print('refused:', exc)\n")
    result = Sandbox(policy, root=root).run(code, "python")
    lines = result.stdout.splitlines()
    assert lines[0] == "2" and lines[1].startswith("refused:"), result.stdout + result.stderr
    assert "TOPSECRET" not in result.stdout
    callee_denials = [e for e in result.events if e.module == "parser" and e.decision == "deny"]
    assert callee_denials == []  # the callee's events are its own run's, on the bus: checked via the audit log below
    assert [c.ok for c in result.calls] == [True, False]


def test_a_callee_asking_for_more_than_its_caller_holds_is_an_escalation(root: Path, catalog: Path) -> None:
    module(catalog, "greedy", "result = 1", caps=("filesystem:write:/data",))
    code = CALL + "try:\n    workbench_guest.call('greedy', {})\nexcept PermissionError as exc:\n    print(exc)\n"
    result = Sandbox(["module:call:greedy", "filesystem:read:/data"], root=root).run(code, "python")
    assert "filesystem:write:/data" in result.stdout, result.stdout + result.stderr
    (event,) = call_events(result)
    assert event.decision == "deny" and event.detail["error"] == "escalation"
    with pytest.raises(EscalationError):
        Sandbox(["filesystem:read:/data"], root=root).run_module("greedy", {})


def test_a_chain_shows_attenuation_at_each_step_with_the_caller_chain(root: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "audit.jsonl"
    policy = ["module:call:pipeline", "module:call:parser", "module:call:wordcount",
              "filesystem:read:/data", "!filesystem:read:/data/secret", "env:set:MODE=x", "memory:limit:200MiB"]
    code = CALL + "print(workbench_guest.call('pipeline', {'path': '/data/a.csv'}))"
    result = Sandbox(policy, root=root, audit=AuditLog(log_path)).run(code, "python", name="top")
    assert result.ok and "'words': 6" in result.stdout, result.stdout + result.stderr
    assert result.call_tree() == "top\n  └─ pipeline: ok\n    └─ parser: ok\n    └─ wordcount: ok"
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    calls = {tuple(r["caller_chain"]): r for r in records if r["category"] == "module" and r["action"] == "call"}
    assert set(calls) == {("top", "pipeline"), ("top", "pipeline", "parser"), ("top", "pipeline", "wordcount")}
    granted = {chain: set(Policy.parse(r["detail"]["policy"]).to_strings()) for chain, r in calls.items()}
    # each step holds no more than its caller: the env grant never travels, the deny always does
    for chain, caps in granted.items():
        assert "env:set:MODE=x" not in caps and "!filesystem:read:/data/secret" in caps, (chain, caps)
        assert "memory:limit:200MiB" in caps
    assert "module:call:parser" in granted[("top", "pipeline")]
    assert not any(c.startswith("module:call") for c in granted[("top", "pipeline", "parser")])
    assert not any(c.startswith("filesystem:read:/data") and not c.startswith("!")
                   for c in granted[("top", "pipeline", "wordcount")])  # wordcount asked for no files
    # the callees' own events carry the chain too
    chains = {tuple(r["caller_chain"]) for r in records if r["module"] == "parser"}
    assert ("top", "pipeline", "parser") in chains


def test_the_callee_time_counts_against_the_callers_time_limit(catalog: Path) -> None:
    module(catalog, "spin", '(module (func (export "_start") (loop (br 0))))', language="wat")
    code = CALL + "try:\n    workbench_guest.call('spin', {})\nexcept OSError as exc:\n    print('callee:', exc)\n" \
                  "while True:\n    pass\n"
    result = Sandbox(["module:call:spin", "time:limit:1s"]).run(code, "python")
    (call,) = call_events(result)
    budget = Policy.parse(call.detail["policy"]).limits.wall_seconds
    assert budget is not None and budget <= 1.0
    assert result.outcome.startswith("stopped (time)"), result
    (record,) = result.calls
    assert not record.ok


def test_a_callee_trap_does_not_kill_its_caller(catalog: Path) -> None:
    module(catalog, "crash", '(module (func (export "_start") unreachable))', language="wat")
    code = CALL + "try:\n    workbench_guest.call('crash', {})\nexcept OSError as exc:\n    print('callee failed:', exc)\n" \
                  "print('caller still running')"
    result = Sandbox(["module:call:crash"]).run(code, "python")
    assert result.ok, result
    assert "callee failed: call crash: trap" in result.stdout and "caller still running" in result.stdout
    (ret,) = call_events(result, "return")
    assert ret.detail["ok"] is False and ret.detail["error"] == "trap"


def test_calls_may_not_cycle(catalog: Path) -> None:
    body = CALL + "try:\n    result = workbench_guest.call({other!r}, {{}})\nexcept PermissionError as exc:\n    result = str(exc)\n"
    module(catalog, "ping", body.format(other="pong"), caps=("module:call:ping", "module:call:pong"))
    module(catalog, "pong", body.format(other="ping"), caps=("module:call:ping", "module:call:pong"))
    result = Sandbox(["module:call:ping", "module:call:pong"]).run_module("ping", {})
    assert "already in the chain" in str(result.value), result
    assert result.call_tree().splitlines()[1:] == ["  └─ pong: ok, 1 refusal", "    └─ ping: cycle: ping → pong → ping: ping is "
                                                   "already in the chain; calls may not cycle"]


def test_call_depth_is_limited(catalog: Path) -> None:
    names = [f"d{i}" for i in range(MAX_CALL_DEPTH + 2)]
    for here, nxt in zip(names, names[1:] + [None]):
        if nxt is None:
            module(catalog, here, "result = 'bottom'")
            continue
        module(catalog, here, CALL + f"try:\n    result = workbench_guest.call({nxt!r}, {{}})\n"
                                     "except PermissionError as exc:\n    result = 'refused: ' + str(exc)\n",
               caps=tuple(f"module:call:{n}" for n in names))
    result = Sandbox([f"module:call:{n}" for n in names]).run_module("d0", {})
    assert str(result.value).startswith("refused:") and f"at most {MAX_CALL_DEPTH}" in str(result.value), result


def test_data_moves_as_copies_and_results_come_back(root: Path) -> None:
    result = Sandbox(["module:call:wordcount"]).run(
        CALL + "payload = {'text': 'b a b'}\nanswer = workbench_guest.call('wordcount', payload)\n"
               "print(answer['words'], payload)", "python")
    assert result.stdout.strip() == "3 {'text': 'b a b'}"


def test_the_callee_fuel_is_charged_to_the_caller() -> None:
    code = CALL + "for _ in range(N):\n    workbench_guest.call('wordcount', {'text': 'a b'})\n"
    sandbox = Sandbox(["module:call:wordcount", "fuel:limit:20000000000"])
    alone = sandbox.run(code.replace("N", "0"), "python")
    calling = sandbox.run(code.replace("N", "2"), "python")
    assert alone.ok and calling.ok, calling.stderr
    budgets = [Policy.parse(e.detail["policy"]).limits.fuel for e in call_events(calling)]
    spent = [e.detail["fuel_used"] for e in call_events(calling, "return")]
    assert all(s > 0 for s in spent) and budgets[0] > budgets[1]  # the second callee gets what is left
    assert budgets[0] - budgets[1] >= spent[0]
    assert alone.usage.fuel_used is not None and calling.usage.fuel_used is not None
    assert calling.usage.fuel_used - alone.usage.fuel_used >= sum(spent)


def test_the_callee_memory_is_capped_by_the_callers(catalog: Path) -> None:
    module(catalog, "hungry", "result = len(bytearray(48 * 2**20))", caps=("memory:limit:1GiB",))
    code = CALL + "try:\n    print(workbench_guest.call('hungry', {}))\nexcept OSError as exc:\n    print('refused:', exc)\n"
    result = Sandbox(["module:call:hungry", "memory:limit:32MiB"]).run(code, "python")
    (call,) = call_events(result)
    assert Policy.parse(call.detail["policy"]).limits.memory_bytes == 32 * 2**20
    assert result.stdout.startswith("refused:") and "MemoryError" in result.stdout, result.stdout + result.stderr


def test_cancelling_the_caller_stops_its_callee(catalog: Path) -> None:
    import threading

    module(catalog, "spin", '(module (func (export "_start") (loop (br 0))))', language="wat")
    sandbox = Sandbox(["module:call:spin", "time:limit:60s"])
    started = threading.Event()
    sandbox.subscribe(lambda item: started.set() if getattr(item, "action", None) == "call" else None)
    box: list[Any] = []
    runner = threading.Thread(target=lambda: box.append(sandbox.run(
        CALL + "try:\n    workbench_guest.call('spin', {})\nexcept OSError as exc:\n    print('callee:', exc)\n",
        "python")))
    runner.start()
    assert started.wait(60)
    assert sandbox.cancel("enough") >= 1  # the caller, and its callee if it has begun (else it stops at once)
    runner.join(50)  # far below the 60 s the callee would otherwise spin
    assert not runner.is_alive()
    (result,) = box
    assert "callee: call spin: stopped" in result.stdout or result.outcome.startswith("stopped"), result
