"""The driver that runs *inside* the sandboxed CPython, around the user's code.

Its functions never run on the host (which imports it only for the markers):
:mod:`.python` reads this file, strips its docstrings and hands it to the guest
interpreter in its argv::

    python -I -c STUB  DRIVER_SOURCE  PAYLOAD_HEX  user-args...

``STUB`` registers this source as the module ``__workbench__`` (unless a
pre-initialised interpreter already holds it) and calls :func:`main`.
``PAYLOAD_HEX`` is ``marshal`` data (hex) with the code, its file name,
``sys.argv[0]`` and the inputs.

What the user's code sees (the documented convention):

- it runs as ``__main__`` in a fresh module, ``sys.argv`` is ``[argv0, *args]``;
- ``inputs`` is a global dict of the values given to ``Sandbox.run(inputs=...)``;
- assigning a JSON-serialisable value to the global ``result`` hands it back as
  ``RunResult.value`` (it travels as the last line of stdout, after a marker);
- exceptions print a traceback (quoting the user's lines) and exit with 1,
  ``sys.exit(n)`` exits with n.

Why it is small and imports nothing up front: on a cold start every line is
compiled by a CPython built with ``-O0``, and ``import json`` alone costs the guest
about 24 ms (it pulls in ``re``).  So the payload is ``marshal`` (built in), and
``json``/``traceback`` are imported only when there is a ``result`` to hand back or
an exception to print (a pre-initialised interpreter has them already).

The run ends with ``os._exit`` after atexit handlers, the module's objects (open
files are closed and flushed) and stdio are finished, so it never depends on
interpreter finalisation, which a pre-initialised interpreter must skip.
"""

import sys

RESULT_MARKER = "\x1e\x1eworkbench-result:"
FIGURE_MARKER = "\x1e\x1eworkbench-figure:"
#: figures handed back per run, at most (the host keeps to its own caps as well)
MAX_FIGURES = 16
SNAPSHOT_MARKER = "\x00workbench-snapshot\x00"
_current = ("", "<string>")  # the running code and its file name, for tracebacks


def quiet_stdlib_sources():
    """Never look for the stdlib's source files: its code objects name the build machine's paths
    (``/wlr/build-staging/...``), which do not exist in the guest, so every traceback or warning
    through the stdlib would add denied reads to the audit and find nothing."""
    import linecache
    import os

    if getattr(linecache.updatecache, "workbench", False):
        return
    prefix = os.path.dirname(os.walk.__code__.co_filename) + "/"
    original = linecache.updatecache

    def updatecache(filename, module_globals=None):
        if filename.startswith(prefix):
            return []
        return original(filename, module_globals)

    updatecache.workbench = True
    linecache.updatecache = updatecache


def _print_exception(exc):
    """The traceback without the driver's own frame, quoting the user's lines."""
    import linecache
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals is globals():  # the driver's own frames
        tb = tb.tb_next
    quiet_stdlib_sources()
    source, name = _current
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    traceback.print_exception(type(exc), exc, tb)


def _send_figures():
    """matplotlib's open figures as PNG lines (base64) after a marker, when pyplot was used; the host
    checks and caps them (``RunResult.figures``).  Nothing is written to any file."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    import base64
    import io

    for number in plt.get_fignums()[:MAX_FIGURES]:
        buffer = io.BytesIO()
        try:
            plt.figure(number).savefig(buffer, format="png")
        except Exception as exc:
            sys.stderr.write(f"workbench: figure {number} could not be drawn ({type(exc).__name__}: {exc})\n")
            continue
        sys.stdout.write(FIGURE_MARKER + base64.b64encode(buffer.getvalue()).decode("ascii") + "\n")


def _finish(code, namespace):
    import atexit
    import os

    try:
        _send_figures()  # before atexit: pyplot registers Gcf.destroy_all there
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    value = None
    if "result" in namespace:
        import json

        try:
            value = json.dumps(namespace["result"])
        except Exception as exc:
            sys.stderr.write(f"workbench: `result` is not JSON-serialisable ({type(exc).__name__}: {exc}); "
                             "RunResult.value stays None\n")
            code = code or 1
    for name in [name for name in namespace if name != "__builtins__"]:
        namespace.pop(name, None)  # drop the code's objects: files it left open are flushed and closed
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if value is not None:
        sys.stdout.write(RESULT_MARKER + value + "\n")
        sys.stdout.flush()
    os._exit(code)


def run_code(source, filename, namespace):
    """Run ``source`` as ``filename`` in ``namespace``.

    Source without a file name runs through ``exec`` on the text, which names it
    ``<string>`` exactly as ``compile`` would.  The builtin ``compile()`` is kept for
    real file names only: its first call in an interpreter builds the ``ast``
    module's ~120 node types, about 4 ms of a 25 ms cold start (a pre-initialised
    interpreter has paid it already)."""
    if filename == "<string>":
        exec(source, namespace)
    else:
        exec(compile(source, filename, "exec"), namespace)


class GuestHelpers:
    """``import workbench_guest``: the host serves the helper module at ``/dev/workbench`` (only when a
    grant gives the run a device node); this finder loads it from there, and nothing else.  First on
    ``sys.meta_path`` so no other finder looks for the name in folders the guest was not given."""

    NAME = "workbench_guest"
    PATH = "/dev/workbench/workbench_guest.py"

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != cls.NAME:
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec(name, cls, origin=cls.PATH)

    @classmethod
    def create_module(cls, spec):
        return None

    @classmethod
    def exec_module(cls, module):
        try:
            with open(cls.PATH, "rb") as source:
                code = source.read()
        except OSError as exc:
            raise ImportError(f"workbench_guest needs a device grant (network:... or module:call:NAME): {exc}",
                              name=cls.NAME) from None
        module.__file__ = cls.PATH
        exec(compile(code, cls.PATH, "exec"), module.__dict__)


def main():
    """Run the user's code from the payload and exit (never returns)."""
    global _current
    import marshal

    if not any(finder is GuestHelpers for finder in sys.meta_path):
        sys.meta_path.insert(0, GuestHelpers)

    payload = marshal.loads(bytes.fromhex(sys.argv[2]))
    sys.argv[:] = [payload["argv0"], *sys.argv[3:]]
    module = type(sys)("__main__")
    if payload["file"]:
        module.__file__ = payload["file"]
    module.inputs = payload["inputs"]
    _current = (payload["code"], payload["filename"])
    sys.modules["__main__"] = module
    namespace = module.__dict__
    code = 0
    try:
        run_code(payload["code"], payload["filename"], namespace)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            sys.stderr.write(f"{code}\n")
            code = 1
    except BaseException as exc:
        _print_exception(exc)
        code = 1
    _finish(code, namespace)
