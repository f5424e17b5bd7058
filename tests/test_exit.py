"""A process that ran guests ends cleanly: no native abort, no segfault, no stall.

Every process here runs with ``RUST_BACKTRACE`` unset, as users run: with it set,
Rust spends long enough printing the panic's backtrace that the process has often
exited before the abort lands, which hid the bug (about half of the processes that ran
one Python guest died with SIGABRT at exit, "panic in a function that cannot unwind").
The mechanism is in docs/decisions.md, "A clean exit".
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench import probes
from workbench.runtime import Sandbox

C_SOURCE = '#include <stdio.h>\nint main(void) { printf("hi from C\\n"); return 0; }\n'
PY_SOURCE = "print(sum(range(10)))\n"
EXPECTED = {"python": "45", "c": "hi from C", "wat": "hello from the sandbox"}


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user has: ours without RUST_BACKTRACE (the test cache folder is kept)."""
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def guests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("guests")
    files = {"python": folder / "sum.py", "c": folder / "hi.c", "wat": folder / "hello.wat"}
    files["python"].write_text(PY_SOURCE)
    files["c"].write_text(C_SOURCE)
    files["wat"].write_text(probes.hello())
    # compile C once, in this process: the child processes then find it in the compile cache
    assert Sandbox().run(files["c"]).ok
    return files


def script_for(path: Path) -> str:
    return textwrap.dedent(
        f"""
        from pathlib import Path
        from workbench import Sandbox
        result = Sandbox().run(Path({str(path)!r}))
        print(result.stdout, end="")
        raise SystemExit(0 if result.ok else 9)
        """
    )


def run_process(kind: str, lang: str, guests: dict[str, Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if kind == "cli":
        command = [sys.executable, "-m", "workbench.cli", "run", str(guests[lang])]
    else:
        command = [sys.executable, "-c", script_for(guests[lang])]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def check_clean(proc: subprocess.CompletedProcess[str], lang: str) -> None:
    text = proc.stdout + proc.stderr
    # SIGABRT shows as -6 (or 134 through a shell), SIGSEGV as -11
    assert proc.returncode == 0, f"exit code {proc.returncode}: {text[-2000:]}"
    assert EXPECTED[lang] in proc.stdout
    for marker in ("panicked", "cannot unwind", "aborting", "Segmentation", "Fatal Python error"):
        assert marker not in text, text[-2000:]


def spin_cases(rounds: int) -> list[tuple[str, str]]:
    cases = [(kind, lang) for kind in ("script", "cli") for lang in ("python", "c", "wat")]
    return [case for _ in range(rounds) for case in cases]


def test_fresh_processes_exit_cleanly(guests: dict[str, Path]) -> None:
    """12 fresh processes (a script and `workbench run`, for Python, C and WAT) each run one
    guest and end normally: every one exits 0 with nothing native on stderr."""
    for kind, lang in spin_cases(2):
        check_clean(run_process(kind, lang, guests, user_env()), lang)


@pytest.mark.slow
@pytest.mark.parametrize("spinners", [0, 2])
@pytest.mark.parametrize("rust_backtrace", [None, "1"])
def test_hundred_processes_exit_cleanly(guests: dict[str, Path], rust_backtrace: str | None, spinners: int) -> None:
    """The deliverable's count: 100 processes, scripts and the CLI, Python, C and WAT, with no
    load of ours and while two CPU spinners compete for the cores; RUST_BACKTRACE unset and set."""
    env = user_env() if rust_backtrace is None else user_env(RUST_BACKTRACE=rust_backtrace)
    spinning = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(spinners)]
    try:
        failures = []
        cases = spin_cases(17)[:100]
        for kind, lang in cases:
            proc = run_process(kind, lang, guests, env)
            try:
                check_clean(proc, lang)
            except AssertionError as exc:
                failures.append(f"{kind}/{lang}: {exc}")
        assert not failures, f"{len(failures)} of {len(cases)} processes failed:\n" + "\n".join(failures[:5])
    finally:
        for spinner in spinning:
            spinner.kill()
            spinner.wait()


def test_a_finished_python_run_leaves_no_store_and_no_output_callback() -> None:
    """Deterministic form of the exit race: once a Python run (and the snapshot build it
    needed) has returned, no wasmtime store is left alive and no output callback is
    registered, so nothing is left for wasmtime's threads to call at exit; and every
    linear memory the sandbox mapped has been unmapped."""
    import wasmtime
    from wasmtime._wasi import CUSTOM_OUTPUTS

    from workbench.runtime.linear_memory import live_mappings
    from workbench.runtime.wasi_streams import OutputStreams

    result = Sandbox().run("print(6 * 7)", lang="python")
    assert result.stdout.strip() == "42"
    assert Sandbox(["memory:limit:2MB"]).run(probes.memory_bomb()).violations
    gc.collect()
    assert not CUSTOM_OUTPUTS.handles, "a store's output callbacks are still registered"
    assert OutputStreams.live() == 0
    assert live_mappings() == 0, "a linear memory was not unmapped when its store was freed"
    stores = [o for o in gc.get_objects() if isinstance(o, wasmtime.Store)]
    assert all(_closed(store) for store in stores), f"{len(stores)} wasmtime stores still alive"


def _closed(store: object) -> bool:
    try:
        store.ptr()  # type: ignore[attr-defined]
    except ValueError:
        return True
    return False


def test_a_guest_in_a_daemon_thread_is_stopped_at_exit(tmp_path: Path) -> None:
    """A daemon thread still running a guest when the main thread ends: the exit stops the
    guest (recorded as a cancel) and waits for it to leave wasmtime, instead of letting it
    call into a finalizing interpreter."""
    script = textwrap.dedent(
        """
        import atexit, threading, time
        seen = []
        def report():  # registered first, so it runs after the workbench's own exit handler
            thread.join(10)
            print("stopped:", seen, flush=True)
        atexit.register(report)
        from workbench import Sandbox
        from workbench.runtime import shutdown
        sandbox = Sandbox(["time:limit:60s"])
        started = threading.Event()
        def spin():
            started.set()
            result = sandbox.run("(module (func (export \\"_start\\") (loop br 0)))", lang="wat")
            seen.extend((v.event.action, v.message) for v in result.violations)
        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        started.wait()
        waited = time.monotonic()
        while shutdown.active_runs() != 1 and time.monotonic() - waited < 30:  # compiling, on a busy machine
            time.sleep(0.01)
        assert shutdown.active_runs() == 1
        time.sleep(0.1)  # inside the guest's loop
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=user_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "stopped: [('cancel', 'the Python process is exiting')]" in proc.stdout, proc.stdout + proc.stderr
    assert "panicked" not in proc.stderr


def test_no_run_starts_once_the_process_is_exiting() -> None:
    script = textwrap.dedent(
        """
        from workbench import Sandbox, probes
        from workbench.errors import SandboxError
        from workbench.runtime import shutdown
        assert shutdown.stop_runs_at_exit()
        try:
            Sandbox().run(probes.hello())
        except SandboxError as exc:
            print("refused:", exc.message)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=user_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "refused: the Python process is exiting: no new sandbox run can start" in proc.stdout
