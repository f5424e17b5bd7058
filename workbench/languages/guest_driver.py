"""The driver that runs *inside* the sandboxed CPython, around the user's code.

Never imported on the host: :mod:`.python` reads this file as text and hands it to
the guest interpreter in its argv.  The guest's argv is::

    python -c STUB  DRIVER_SOURCE  PAYLOAD_JSON  user-args...

``STUB`` registers this source as the module ``__workbench__`` (unless a
pre-initialised interpreter already holds it) and calls :func:`main`.
``PAYLOAD_JSON`` carries the code, its file name, ``sys.argv[0]`` and the inputs.

What the user's code sees (the documented convention):

- it runs as ``__main__`` in a fresh module, ``sys.argv`` is ``[argv0, *args]``;
- ``inputs`` is a global dict of the values given to ``Sandbox.run(inputs=...)``;
- assigning a JSON-serialisable value to the global ``result`` hands it back as
  ``RunResult.value`` (it travels as the last line of stdout, after a marker);
- exceptions print a normal traceback and exit with 1, ``sys.exit(n)`` exits with n.

The run ends with ``os._exit`` after atexit handlers, the module's objects
(open files are closed and flushed) and stdio are finished, so it never depends on
interpreter finalisation, which a pre-initialised interpreter must skip.
"""

import sys

RESULT_MARKER = "\x1e\x1eworkbench-result:"
SNAPSHOT_MARKER = "\x00workbench-snapshot\x00"
DRIVER_FILE = "<workbench>"


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass
    return 1


def _print_exception(exc):
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == DRIVER_FILE:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _hand_back(namespace):
    """The JSON text of ``result`` (None when not set), or raise TypeError/ValueError."""
    import json

    if "result" not in namespace:
        return None
    return json.dumps(namespace["result"])


def _finish(code, value_json):
    import atexit
    import os

    try:
        atexit._run_exitfuncs()
    except BaseException:  # an exit handler's error is printed by atexit itself
        pass
    main = sys.modules.get("__main__")
    if main is not None:  # drop the code's objects, so files it left open are flushed and closed
        namespace = main.__dict__
        for name in [name for name in namespace if name != "__builtins__"]:
            namespace.pop(name, None)
    # no gc.collect(): a full collection of the interpreter's heap costs ~1.7 ms per run, and only
    # files kept alive by reference cycles would need it (CPython's own exit does not promise it either)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if value_json is not None:
        try:
            sys.stdout.write(RESULT_MARKER + value_json + "\n")
            sys.stdout.flush()
        except BaseException:
            pass
    os._exit(code)


def _remember_source(source, filename):
    """Let tracebacks quote the code's lines (``python -c`` cannot, this can)."""
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _fresh_main(payload):
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    if payload.get("file"):
        main.__file__ = payload["file"]
    main.inputs = payload.get("inputs") or {}
    sys.modules["__main__"] = main
    return main


def main():
    """Run the user's code from the payload and exit (never returns)."""
    import json

    payload = json.loads(sys.argv[2])
    sys.argv[:] = [payload.get("argv0", "-c"), *sys.argv[3:]]
    namespace = _fresh_main(payload).__dict__
    source, filename = payload["code"], payload.get("filename", "<string>")
    _remember_source(source, filename)
    code = 0
    try:
        exec(compile(source, filename, "exec"), namespace)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        _print_exception(exc)
        code = 1
    value_json = None
    try:
        value_json = _hand_back(namespace)
    except Exception as exc:
        sys.stderr.write(
            f"workbench: `result` is not JSON-serialisable ({type(exc).__name__}: {exc}); "
            "RunResult.value stays None\n"
        )
        code = code or 1
    _finish(code, value_json)


def warm_up():
    """Do once what every run would otherwise pay for (imports, the compiler's first use)."""
    import atexit  # noqa: F401
    import json
    import linecache  # noqa: F401
    import os  # noqa: F401
    import traceback  # noqa: F401
    import types  # noqa: F401

    compile("pass", "<string>", "exec")  # the first compile() costs ~5 ms of one-time set-up
    json.loads(json.dumps({"warm": [1, 2.5, "é"]}))
    try:
        raise ValueError("warm-up")
    except ValueError as exc:
        traceback.format_exception(type(exc), exc, exc.__traceback__)


def pause():
    """Tell the host the interpreter is ready, then make the host call it snapshots in."""
    import time

    sys.stdout.write(SNAPSHOT_MARKER)
    sys.stdout.flush()
    time.time()  # clock_time_get: the host copies linear memory here and stops this instance
    raise SystemExit("workbench: the interpreter snapshot was not taken")
