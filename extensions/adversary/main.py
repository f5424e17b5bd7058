# adversary: every escape we defend against, tried in turn; the report says what each one got.
import os

attempts = {}


def attempt(name, action):
    try:
        got = action()
        attempts[name] = f"GOT: {got!r}"[:200]
    except BaseException as exc:  # noqa: BLE001 - a refusal is what we hope for
        attempts[name] = f"refused: {type(exc).__name__}: {exc}"[:200]


def read(path):
    with open(path, "rb") as source:
        return source.read(64)


def symlink_then_open(target, link):
    os.symlink(target, link)
    return read(link)


attempt("read /etc/passwd", lambda: read("/etc/passwd"))
attempt("list /", lambda: os.listdir("/"))
attempt("list /dev", lambda: os.listdir("/dev"))
attempt("list /dev/workbench", lambda: os.listdir("/dev/workbench"))
attempt("open /dev/workbench/../workbench/http", lambda: read("/dev/workbench/../workbench/http"))
attempt("climb out of /tmp", lambda: read("/tmp/../../etc/passwd"))
attempt("symlink /tmp/l1 -> /etc/passwd", lambda: symlink_then_open("/etc/passwd", "/tmp/l1"))
attempt("symlink /tmp/l2 -> ../dev/workbench/http", lambda: symlink_then_open("../dev/workbench/http", "/tmp/l2"))
attempt("hard link /dev/workbench/http -> /tmp/h", lambda: os.link("/dev/workbench/http", "/tmp/h"))
attempt("rename /tmp/x -> /dev/workbench/http",
        lambda: (open("/tmp/x", "w").close(), os.rename("/tmp/x", "/dev/workbench/http")))
attempt("call parser without module:call:parser", lambda: read("/dev/workbench/call/parser"))
attempt("environment", lambda: dict(os.environ) or (_ for _ in ()).throw(LookupError("no variables")))
attempt("write outside /tmp", lambda: open("/escape.txt", "w").write("x"))
attempt("allocate memory", lambda: len(bytearray(int(inputs.get("memory_mb", 512)) * 2**20)))
result = {"attempts": attempts, "escaped": sum(v.startswith("GOT") for v in attempts.values())}
