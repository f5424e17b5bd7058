"""A guest's HTTP through /dev/workbench/http, end to end, against a real server on 127.0.0.1.

The network policy itself is workbench.network's (tests/test_network_*.py); these tests show that
the device wires it to every guest language, and that without a network grant there is no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from workbench import Sandbox
from workbench.network import placeholder


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


GET = '''
import workbench_guest
for url in URLS:
    try:
        print("ok", workbench_guest.http_get(url).decode())
    except PermissionError as exc:
        print("denied", exc)
    except OSError as exc:
        print("error", exc)
'''


def run_get(policy: list[str], urls: list[str], **options: Any) -> Any:
    return Sandbox(policy, **options).run(f"URLS = {urls!r}\n" + GET, "python")


def test_a_granted_host_and_port_works_and_others_are_denied_and_recorded(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hello").respond_with_data("hello guest")
    port = httpserver.port
    urls = [f"http://localhost:{port}/hello", f"http://localhost:{port + 1}/hello",
            f"http://127.0.0.1:{port}/hello", f"https://localhost:{port}/hello"]
    result = run_get([f"network:http:localhost:{port}"], urls)
    lines = result.stdout.splitlines()
    assert lines[0] == "ok hello guest", result.stdout + result.stderr
    assert all(line.startswith("denied") for line in lines[1:]), lines
    requests = [e for e in result.events if e.category == "network" and e.action == "request"]
    assert [e.decision for e in requests] == ["allow", "deny", "deny", "deny"]


def test_a_redirect_to_an_ungranted_host_is_denied(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.expect_request("/go").respond_with_data("", status=302, headers={"Location": f"http://127.0.0.1:{port}/x"})
    result = run_get([f"network:http:localhost:{port}"], [f"http://localhost:{port}/go"])
    assert result.stdout.startswith("denied"), result.stdout + result.stderr


def test_request_with_headers_and_body_from_python(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/post", method="POST", data=b"payload").respond_with_json({"seen": True})
    code = (f"import workbench_guest\nr = workbench_guest.request('POST', 'http://localhost:{httpserver.port}/post', "
            "headers={'X-A': '1'}, body=b'payload')\nprint(r.status, r.json(), r.headers['content-type'])")
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(code, "python")
    assert result.stdout.strip() == "200 {'seen': True} application/json", result.stderr


def test_without_a_network_grant_there_is_no_http_node(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hello").respond_with_data("hello")
    result = run_get(["module:call:wordcount"], [f"http://localhost:{httpserver.port}/hello"])
    assert result.stdout.startswith("denied") or "Permission denied" in result.stdout, result.stdout + result.stderr
    assert [e for e in result.events if e.decision == "deny" and e.resolved == "/dev/workbench/http"]
    assert not [e for e in result.events if e.category == "network"]
    assert len(httpserver.log) == 0


def test_the_guest_sees_only_the_placeholder_of_a_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/k").respond_with_handler(
        lambda request: __import__("werkzeug").Response(request.headers.get("Authorization", "")))
    key = placeholder("API_KEY")
    code = (f"import workbench_guest\nr = workbench_guest.request('GET', 'http://localhost:{httpserver.port}/k', "
            f"headers={{'Authorization': 'Bearer {key}'}})\nprint(r.text())")
    sandbox = Sandbox([f"network:http:localhost:{httpserver.port};secret=API_KEY"], secrets={"API_KEY": "s3cr3t-v4lue"})
    result = sandbox.run(code, "python")
    assert "s3cr3t-v4lue" not in result.stdout and "s3cr3t-v4lue" not in json.dumps(result.to_dict())
    (request, _), = httpserver.log
    assert request.headers["Authorization"] == "Bearer s3cr3t-v4lue"


def test_the_fetcher_module(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/page").respond_with_data("<h1>hi</h1>", content_type="text/html")
    url = f"http://localhost:{httpserver.port}/page"
    granted = Sandbox(["network:http:localhost"]).run_module("fetcher", {"url": url})
    assert granted.value == {"status": 200, "content_type": "text/html", "bytes": 11,
                             "text": "<h1>hi</h1>"}, granted
    other = Sandbox(["network:http:localhost"]).run_module("fetcher", {"url": f"http://127.0.0.1:{httpserver.port}/"})
    assert "denied" in other.value


def test_a_wat_guest_reaches_the_network_through_the_device(httpserver: HTTPServer) -> None:
    from tests.test_device import wat_exchange

    httpserver.expect_request("/w").respond_with_data("from wat")
    request = json.dumps({"method": "GET", "url": f"http://localhost:{httpserver.port}/w"})
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(wat_exchange("http", request), "wat")
    answer = json.loads(result.stdout)
    assert answer["ok"] and answer["status"] == 200


def test_a_callee_gets_its_callers_secrets_only_through_its_grant(httpserver: HTTPServer, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Sandbox(secrets=...) reaches a called module's request (its grant came from the caller's), never its eyes."""
    httpserver.expect_request("/k").respond_with_handler(
        lambda request: __import__("werkzeug").Response(request.headers.get("Authorization", "")))
    port = httpserver.port
    folder = tmp_path / "catalog" / "keyed"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(
        "import workbench_guest\n"
        f"r = workbench_guest.request('GET', 'http://localhost:{port}/k', headers={{'Authorization': '{placeholder('API_KEY')}'}})\n"
        "result = r.text()\n")
    (folder / "manifest.toml").write_text(
        'name = "keyed"\nlanguage = "python"\ndescription = "sends its caller\'s secret"\n'
        f'capabilities = ["network:http:localhost:{port};secret=API_KEY"]\nexports = []\n[inputs]\n[outputs]\n')
    monkeypatch.setenv("WORKBENCH_EXTENSIONS", str(tmp_path / "catalog"))
    sandbox = Sandbox([f"network:http:localhost:{port};secret=API_KEY", "module:call:keyed"],
                      secrets={"API_KEY": "s3cr3t-v4lue"})
    result = sandbox.run("import workbench_guest\nprint(workbench_guest.call('keyed', {}))", "python")
    assert result.ok, result.stderr
    assert "s3cr3t-v4lue" not in result.stdout and placeholder("API_KEY") in result.stdout
    (request, _), = httpserver.log
    assert request.headers["Authorization"] == "s3cr3t-v4lue"


def test_a_c_guest_reaches_the_network_through_workbench_h(httpserver: HTTPServer) -> None:
    pytest.importorskip("ziglang")
    httpserver.expect_request("/c").respond_with_data("from c")
    source = ('#include <stdio.h>\n#include "workbench.h"\nint main(void) {\n  char out[4096];\n'
              f'  if (wb_http_get("http://localhost:{httpserver.port}/c", out, sizeof out) < 0) {{ perror("get"); return 1; }}\n'
              '  puts(out);\n  return 0;\n}\n')
    result = Sandbox([f"network:http:localhost:{httpserver.port}"]).run(source, "c")
    answer = json.loads(result.stdout)
    assert result.ok and answer["ok"] and answer["status"] == 200, result
