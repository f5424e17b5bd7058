"""The live gauges in a real browser: JupyterLab + Debian's Chromium, driven by Playwright.

Run with ``make test-browser`` (it installs Chromium, Playwright and JupyterLab).
JupyterLab listens on 127.0.0.1 only, with no token, ``allow_root`` (CI runs as
root) and the news notification turned off in its user settings, so nothing
covers the notebook.  The test opens a notebook whose ``%%sandbox`` cell spins
for 2 s, starts Run All without waiting for it, and checks that

- the gauge widgets appear in the DOM (``.widget-hprogress`` inside the live box);
- a gauge's value (the bar's ``style.width``) changes while the cell is still running;

and saves a screenshot to ``build/test-artifacts/jupyterlab-gauges.png``.

Then it opens the tutorials 06 (every limit hit, and a guest making 500 refused opens) and 01
from the repository, runs them, and asserts on the page that the violation timeline

- renders as a widget (an SVG chart inside ``.workbench-timeline``), not as text;
- groups a repeated violation (one band labelled ``×500``, not 500 rows);
- stays under a fixed height (:data:`MAX_TIMELINE_PX`) with those 500 violations,

saving screenshots of each (``timeline-06.png``, ``timeline-500.png``, ``notebook-01.png``).
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
from typing import Any, Iterator

import nbformat
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
REPO = Path(__file__).resolve().parents[2]
MAX_TIMELINE_PX = 300
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
    # every cell in the DOM (JupyterLab 4 otherwise renders only the cells in view), so the page can be asserted on
    tracker = root / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext workbench"),
            nbformat.v4.new_code_cell(f"%%sandbox spin --timeout 2s\n{SPIN}"),
        ]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "live.ipynb")
    for name in ("01-first-steps.ipynb", "06-limits-and-live-gauges.ipynb"):
        shutil.copy(REPO / "notebooks" / name, root / name)
    shutil.copytree(REPO / "notebooks" / "workspace", root / "workspace")
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


def _open(page: Any, lab: str, name: str) -> None:
    # a workspace of its own: JupyterLab would otherwise restore the tabs an earlier test left open
    page.goto(f"{lab}/lab/workspaces/{name.split('-')[0]}/tree/{name}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # this notebook's own kernel is connected and idle (not just some kernel on the server)
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return !!k && k.status === 'idle' && k.connectionStatus === 'connected'; }", timeout=90_000)
    # the saved outputs go first, so everything asserted on comes from this run
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.wait_for_function("() => document.querySelectorAll('.workbench-timeline').length === 0", timeout=10_000)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return 0; }")


def _wait_until_done(page: Any, lab: str, timeout: float = 180) -> None:
    """Every cell ran (no ``[*]`` and no ``[ ]`` prompt left on a code cell), or one failed."""
    deadline = time.monotonic() + timeout
    page.wait_for_timeout(1000)
    while time.monotonic() < deadline:
        busy = page.locator(".jp-CodeCell .jp-InputPrompt:has-text('[*]')").count()
        if busy == 0:
            _wait_for_idle_kernel(lab)
            return
        page.wait_for_timeout(500)
    pytest.fail("the notebook did not finish")


def test_tutorial_06_timeline_renders_groups_and_stays_compact(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            _open(page, lab, "06-limits-and-live-gauges.ipynb")
            page.wait_for_selector(".workbench-timeline svg", timeout=120_000)  # live, while the first run goes
            page.screenshot(path=str(ARTIFACTS / "timeline-live.png"))
            # the last cell checks the prober's groups: the notebook ran to its end
            page.wait_for_selector(".jp-OutputArea-output:has-text(\"('deny filesystem open /etc/passwd ×500', 'EACCES')\")",
                                   timeout=240_000)
            _wait_until_done(page, lab)
            page.screenshot(path=str(ARTIFACTS / "timeline-06.png"), full_page=True)
            # the runs that last long enough to show gauges: memory, CPU/deadline, output, the prober
            page.wait_for_function("() => document.querySelectorAll('.workbench-timeline svg').length >= 4",
                                   timeout=60_000)
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
            charts = page.locator(".workbench-timeline")
            assert page.locator(".workbench-timeline .wb-lane").count() >= 4 * 7  # lanes drawn, not text
            # the prober made 500 refused opens of one file: one group, ×500
            prober = page.locator(".workbench-timeline", has=page.locator("text=×500"))
            assert prober.count() == 1, "no timeline grouped the 500 violations"
            assert prober.locator(".wb-group[data-count='500']").count() == 1
            box = prober.bounding_box()
            assert box is not None and box["height"] <= MAX_TIMELINE_PX, box
            for i in range(charts.count()):
                height = charts.nth(i).bounding_box()["height"]  # type: ignore[index]
                assert height <= MAX_TIMELINE_PX, (i, height)
            prober.scroll_into_view_if_needed()
            cell = page.locator(".jp-CodeCell", has=prober)
            cell.screenshot(path=str(ARTIFACTS / "timeline-500.png"))
            # hover and click give a group's details
            prober.locator(".wb-group[data-count='500']").first.dispatch_event("click")
            assert "×500" in prober.locator(".wb-details").inner_text()
            summary = page.locator(".workbench-summary", has_text="/etc/passwd")
            assert summary.count() == 1 and summary.locator("tr").count() <= 5  # groups listed, not events
            page.screenshot(path=str(ARTIFACTS / "timeline-06.png"), full_page=True)
        finally:
            browser.close()


def test_tutorial_01_shows_gauges_and_timeline(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            _open(page, lab, "01-first-steps.ipynb")
            _wait_until_done(page, lab)
            page.wait_for_selector(".workbench-timeline svg", timeout=60_000)
            spin = page.locator(".jp-CodeCell", has=page.locator(".workbench-timeline")).filter(
                has_text="%%sandbox spin")
            assert spin.count() == 1
            assert spin.first.locator(".widget-hprogress").count() >= 3  # memory, CPU, time gauges
            assert spin.first.locator(".wb-group[data-decision='kill']").count() >= 1
            spin.first.screenshot(path=str(ARTIFACTS / "notebook-01.png"))
        finally:
            browser.close()
