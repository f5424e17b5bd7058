"""The live gauges in a real browser: JupyterLab + Debian's Chromium, driven by Playwright.

Run with ``make test-browser`` (it installs Chromium, Playwright and JupyterLab).
JupyterLab listens on 127.0.0.1 only, with no token, ``allow_root`` (CI runs as
root) and the news notification turned off in its user settings, so nothing
covers the notebook.  The test opens a notebook whose ``%%sandbox`` cell spins
for 2 s, starts Run All without waiting for it, and checks that

- the gauge widgets appear in the DOM (``.widget-hprogress`` inside the live box);
- a gauge's value (the bar's ``style.width``) changes while the cell is still running;

and saves a screenshot to ``build/test-artifacts/jupyterlab-gauges.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import nbformat
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
SPIN = '(module\n (memory (export "memory") 1)\n (func (export "_start") (loop $forever (br $forever))))'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (make test-browser installs it)")
    pytest.importorskip("playwright")
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("JupyterLab is not installed (make test-browser installs it)")
    root = tmp_path_factory.mktemp("lab")
    settings = root / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext workbench"),
            nbformat.v4.new_code_cell(f"%%sandbox spin --timeout 2s\n{SPIN}"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "live.ipynb")
    port = _free_port()
    log = open(root / "lab.log", "w")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"), "JUPYTER_CONFIG_DIR": str(root / "config")}
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.allow_root=True",
            "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={root / 'settings'}", f"--LabApp.workspaces_dir={root / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


def _wait_for_idle_kernel(url: str, timeout: float = 60) -> None:
    """The notebook's kernel is started and idle (asked of the server, not guessed from the DOM)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = json.load(urllib.request.urlopen(f"{url}/api/kernels", timeout=5))
        if kernels and all(k.get("execution_state") == "idle" for k in kernels):
            return
        time.sleep(0.3)
    pytest.fail("the notebook's kernel did not become idle")


def test_gauges_render_and_move_while_the_cell_runs(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{lab}/lab/tree/live.ipynb", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _wait_for_idle_kernel(lab)
            # Run All, started and not awaited: the gauges must move while the cell is busy
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return 0; }")
            bar = ".workbench-live .widget-hprogress .progress-bar"
            page.wait_for_selector(".workbench-live .widget-hprogress", timeout=30_000)
            gauges = page.locator(".workbench-live .widget-hprogress")
            assert gauges.count() >= 3, "memory, CPU and time gauges"
            widths = []
            busy = []
            for step in range(12):
                widths.append(page.eval_on_selector_all(bar, "els => els.map(e => e.style.width)"))
                busy.append(page.locator(".jp-Cell .jp-InputPrompt:has-text('[*]')").count() > 0)
                if step == 3:  # mid-run: the gauges as they move
                    page.screenshot(path=str(ARTIFACTS / "jupyterlab-gauges.png"), full_page=True)
                page.wait_for_timeout(120)
            while_busy = [w for w, b in zip(widths, busy) if b]
            assert len(while_busy) >= 2, f"the cell finished too soon to watch: {busy}"
            assert len({tuple(w) for w in while_busy}) >= 2, f"no gauge moved while the cell ran: {while_busy}"
            page.wait_for_selector(".workbench-result", timeout=30_000)  # the summary after the run
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-summary.png"), full_page=True)
        finally:
            browser.close()
