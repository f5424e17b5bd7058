"""The scientific Python runtime under the sandbox's own policy, guard, limits and audit log.

Marked ``scientific``: these need the runtime installed (``make test-scientific`` installs it
once, then runs them); ``make test`` leaves them out and never downloads or compiles it.  Each
guarantee checked here is one the default Python guest already keeps (test_lang_python.py,
test_sandbox_*.py): nothing about the sandbox is weaker for this runtime.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from workbench import AuditLog, Sandbox
from workbench.cli import main
from workbench.runtimes.store import require

pytestmark = pytest.mark.scientific

SCI = {"lang": "python", "runtime": "scientific"}


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    require("scientific")  # a clear error (with the install command) rather than many failures


def denied(result: Any, category: str) -> list[Any]:
    return [v for v in result.violations if v.kind == category]


def test_print_exit_code_inputs_and_result() -> None:
    result = Sandbox().run("import sys\nprint('hi', inputs['n'])\nresult = {'twice': inputs['n'] * 2}\nsys.exit(3)",
                           inputs={"n": 21}, **SCI)
    assert (result.stdout, result.exit_code, result.value) == ("hi 21\n", 3, {"twice": 42})
    assert result.violations == [] and (result.fault is None or not result.fault.trapped)
    ok = Sandbox().run("import sys; print(sys.version_info[:2], sys.argv)", **SCI)
    assert ok.ok and ok.stdout == "(3, 15) ['-c']\n" and ok.stderr == ""


def test_numpy_computation() -> None:
    code = ("import numpy as np\n"
            "a = np.arange(12, dtype=np.float64).reshape(3, 4)\n"
            "result = {'sum': float(a.sum()), 'col_means': a.mean(axis=0).tolist(), 'det': round(float(np.linalg.det(np.eye(3) * 2)), 6)}")
    result = Sandbox().run(code, **SCI)
    assert result.ok, result.stderr
    assert result.value == {"sum": 66.0, "col_means": [4.0, 5.0, 6.0, 7.0], "det": 8.0}


def test_pandas_computation_on_a_granted_csv(workspace: Path) -> None:
    (workspace / "docs" / "sales.csv").write_text("region,amount\nnorth,10\nsouth,5\nnorth,7\n")
    code = ("import pandas as pd\n"
            "df = pd.read_csv('/docs/sales.csv')\n"
            "result = df.groupby('region')['amount'].sum().to_dict()\n"
            "print(len(df))")
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(code, **SCI)
    assert result.ok, result.stderr
    assert (result.stdout, result.value) == ("3\n", {"north": 17, "south": 5})
    assert result.violations == []


def test_a_read_outside_the_grant_is_denied_and_recorded(workspace: Path, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    code = ("print(open('/docs/readme.txt').read().strip())\n"
            "try:\n    open('/secret.txt').read()\nexcept OSError as e:\n    print('refused', type(e).__name__)\n"
            "try:\n    open('/usr/local/lib/python315.zip', 'ab')\nexcept OSError as e:\n    print('read-only', type(e).__name__)")
    result = Sandbox(["filesystem:read:/docs"], root=workspace, audit=audit).run(code, **SCI)
    assert result.stdout == "public notes\nrefused PermissionError\nread-only OSError\n"
    assert "TOP-SECRET" not in result.stdout + result.stderr
    files = denied(result, "filesystem")
    assert [(v.where, v.capability) for v in files if v.where == "/secret.txt"] == [("/secret.txt", None)]
    assert any(v.where == "/usr/local/lib/python315.zip" for v in files)  # the runtime's files: never written
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    refused = [r for r in records if r["decision"] == "deny" and r["resolved"] == "/secret.txt"]
    assert len(refused) == 1 and refused[0]["category"] == "filesystem" and refused[0]["run_id"] == result.run_id
    assert AuditLog(tmp_path / "audit.jsonl").verify().ok
    start = next(r for r in records if r["action"] == "start")
    assert start["detail"]["source"]["lang"] == "python"


def test_the_host_door_is_refused_and_recorded(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    code = "import _host\nprint(_host.call(b'{\"ask\": \"anything\"}'))"
    result = Sandbox(audit=audit).run(code, **SCI)
    [door] = denied(result, "module")
    assert door.event is not None and (door.event.action, door.target) == ("host-call", "host::call")
    assert door.event.detail == {"request_bytes": 19}
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["action"] for r in records if r["category"] == "module"] == ["host-call"]
    killed = Sandbox(on_violation="kill").run(code + "\nprint('after')", **SCI)
    assert "after" not in killed.stdout and denied(killed, "module")[0].decision == "kill"


def test_memory_limit_is_enforced_and_recorded() -> None:
    code = "import numpy as np\na = np.ones(50_000_000)\nprint(a.sum())"
    result = Sandbox(["memory:limit:100MiB"]).run(code, **SCI)
    assert result.exit_code == 1 and "MemoryError" in result.stderr  # numpy's _ArrayMemoryError
    grows = denied(result, "memory")
    assert grows and all(v.capability == "memory:limit:100MiB" for v in grows)
    assert result.usage.memory_peak_bytes <= 100 * 2**20 < grows[0].event.detail["requested_bytes"]


def test_time_limit_is_enforced_and_recorded() -> None:
    result = Sandbox(["time:limit:1s"]).run("while True:\n    pass", **SCI)
    [deadline] = denied(result, "time")
    assert deadline.decision == "kill" and deadline.capability == "time:limit:1s"
    assert result.exit_code is None and 1.0 <= result.usage.wall_seconds < 10


def test_an_exception_is_the_guests_traceback_and_a_trap_is_a_fault() -> None:
    result = Sandbox().run("x = 1\ny = x / 0\n", **SCI)
    assert result.exit_code == 1 and result.violations == []
    assert "Traceback (most recent call last)" in result.stderr and "ZeroDivisionError: division by zero" in result.stderr
    assert 'File "<string>", line 2, in <module>' in result.stderr
    trap = Sandbox().run("import os\nprint('before', flush=True)\nos.abort()", **SCI)
    assert trap.stdout == "before\n" and trap.fault is not None and trap.fault.trapped
    assert "unreachable" in str(trap.fault) and trap.exit_code is None


def test_the_output_cap_cuts_and_records() -> None:
    result = Sandbox(["output:limit:1KB"]).run("print('x' * 5000)\nprint('y' * 5000)", **SCI)
    assert result.stdout == "x" * 1000 and result.usage.output_dropped_bytes > 0
    [cap] = denied(result, "output")
    assert cap.capability == "output:limit:1KB"


def test_cli_and_magic_take_the_runtime(workspace: Path, capfd: pytest.CaptureFixture[str]) -> None:
    script = workspace / "stats.py"
    script.write_text("import statistics, numpy\nprint(statistics.mean([1, 2, 3]), numpy.__name__)\n")
    assert main(["run", str(script), "--runtime", "scientific"]) == 0
    assert capfd.readouterr().out == "2 numpy\n"
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    old = os.getcwd()
    os.chdir(workspace)
    try:
        shell.run_line_magic("load_ext", "workbench")
        shell.run_cell_magic("sandbox", "--runtime scientific -q -o res", "import pandas\nprint(pandas.__name__)")
        result = shell.user_ns["res"]
        assert result.stdout == "pandas\n" and result.ok
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        InteractiveShell.clear_instance()
        os.chdir(old)


def test_runs_are_fresh_instances_and_the_default_guest_is_unaffected() -> None:
    sandbox = Sandbox()
    first = sandbox.run("import builtins\nbuiltins.LEFT = 1\nprint('set')", **SCI)
    second = sandbox.run("import builtins\nprint(hasattr(builtins, 'LEFT'))", **SCI)
    assert (first.stdout, second.stdout) == ("set\n", "False\n")
    default = sandbox.run("import sys\nprint(sys.version_info[:2])", lang="python")
    assert default.ok and default.stdout == "(3, 12)\n"


def test_the_device_channel_works_and_ungranted_hosts_are_denied(httpserver: Any) -> None:
    httpserver.expect_request("/hello").respond_with_data("hello guest")
    port = httpserver.port
    code = ("import workbench_guest\n"
            f"for url in ['http://localhost:{port}/hello', 'http://127.0.0.1:{port}/hello']:\n"
            "    try:\n        print('ok', workbench_guest.http_get(url).decode())\n"
            "    except PermissionError as exc:\n        print('denied')\n")
    result = Sandbox([f"network:http:localhost:{port}"]).run(code, **SCI)
    assert result.stdout == "ok hello guest\ndenied\n", result.stderr
    requests = [e for e in result.events if e.category == "network" and e.action == "request"]
    assert [e.decision for e in requests] == ["allow", "deny"]


def test_figures_come_back_as_png_through_the_capped_channel() -> None:
    code = ("import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\nax.plot([1, 2, 3], [1, 4, 9])\n"
            "plt.figure()\nplt.bar([1, 2], [3, 4])\n"
            "print('drawn')\nresult = len(plt.get_fignums())")
    result = Sandbox(["filesystem:write:/tmp"]).run(code, **SCI)  # matplotlib needs a writable MPLCONFIGDIR
    assert result.ok, result.stderr
    assert (result.stdout, result.value, len(result.figures)) == ("drawn\n", 2, 2)
    assert all(f.startswith(b"\x89PNG\r\n\x1a\n") and f.endswith(b"IEND\xaeB`\x82") for f in result.figures)
    assert json.loads(result.to_json())["figures"] == [{"format": "png", "bytes": len(f)} for f in result.figures]
    forged = Sandbox().run("print('\\x1e\\x1eworkbench-figure:bm90IGEgcG5n')\nprint('after')", **SCI)
    assert forged.stdout == "after\n" and forged.figures == ()
    assert [(v.kind, v.event.action if v.event else None) for v in forged.violations] == [("output", "figure")]
    squeezed = Sandbox(["filesystem:write:/tmp", "output:limit:2KB"]).run(code, **SCI)
    assert squeezed.figures == () and squeezed.stdout == "drawn\n"  # the output cap cut them: none half-kept
