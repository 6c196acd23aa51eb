"""The notebooks as a learner meets them: JupyterLab in a real (headless) Chromium.

A JupyterLab server is started on 127.0.0.1 over the notebooks folder in smoke mode
(``SSL_COURSE_SMOKE=1``), Chromium is driven with Playwright: each notebook is opened and run with
Run All, no cell may show an error, and the sliders of the interactive figures are dragged with
the mouse; the figure under a slider must be drawn again (its image changes). Needs Debian's
``chromium`` (or ``SSL_COURSE_CHROMIUM=/path/to/chromium``) and the ``playwright`` Python package
(dev extra); it never downloads a browser. Without them it skips and says why.

``SSL_COURSE_SCREENSHOTS=DIR`` also saves, per notebook, a picture of every output area and a
view of each slider with its figure, to look at by eye.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
#: Two notebooks with sliders: InfoNCE's softmax temperature (quick) and PAWS's soft-nearest-neighbour
#: temperature and sharpening temperature (trains). name -> slider labels to drag.
NOTEBOOKS = {"01_nce_to_infonce": ["temperature"], "11_paws": ["temperature", "T"]}
RUN_TIMEOUT_S = 900
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
# Lab settings for a test run: every cell stays in the page (no virtual scrolling), nothing is saved
# back into the repository's notebooks, and no news or update pop-ups cover the page.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                          "checkForUpdates": False},
}

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    candidates = [os.environ.get("SSL_COURSE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_json(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _lab_environment(home: Path) -> dict[str, str]:
    """A JupyterLab of its own: config, settings, runtime and an ``ssl-course`` kernel under ``home``."""
    environment = dict(os.environ)
    for name in ("MPLBACKEND", "TQDM_DISABLE", "JUPYTER_PATH"):  # draw as in a learner's Lab
        environment.pop(name, None)
    environment.update({
        "SSL_COURSE_SMOKE": "1", "SSL_COURSE_RUNS": str(home / "runs"), "PYTHONPATH": str(ROOT),
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_WAIT_POLICY": "PASSIVE"})
    # The notebooks ask for the kernel `make kernel` installs; here it is this interpreter.
    _write_json(home / "data" / "kernels" / "ssl-course" / "kernel.json", {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (ssl-course)", "language": "python"})
    for name, content in LAB_SETTINGS.items():
        _write_json(home / "settings" / name, content)
    return environment


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Yields the URL of a running JupyterLab (with its token) whose root is the notebooks folder."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed")
    home = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={NOTEBOOK_DIR}",
               "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    before = {p: p.read_bytes() for p in NOTEBOOK_DIR.glob("*.ipynb")}
    listing = set(NOTEBOOK_DIR.iterdir())
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(command, env=_lab_environment(home), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(home / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        changed = [p.name for p, content in before.items() if p.read_bytes() != content]
        for path in changed:  # never leave outputs in the repository's notebooks
            path.write_bytes(before[path])
        left = set(NOTEBOOK_DIR.iterdir()) - listing
        for path in left:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        # Lab makes a checkpoint folder when it opens a notebook (git ignores it); nothing else may appear.
        created = sorted(p.name for p in left if p.name != ".ipynb_checkpoints")
    assert not changed, f"the browser session wrote into {changed} (restored): autosave should be off"
    assert not created, f"the browser session left {created} in notebooks/ (removed)"


def _skip(reason: str):
    """Skip, unless SSL_COURSE_REQUIRE_BROWSER=1 (CI sets it) makes a missing browser a failure."""
    if os.environ.get("SSL_COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (SSL_COURSE_REQUIRE_BROWSER=1 asks for the browser test to run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        _skip("no Chromium found: install Debian's `chromium` (apt-get install chromium) or set "
              "SSL_COURSE_CHROMIUM to a Chromium binary")
    try:
        from playwright import sync_api
    except ImportError:
        _skip("the `playwright` Python package is missing: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:  # launch() gives Chromium a new empty profile
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


# In-page JavaScript, through the JupyterLab app object that --LabApp.expose_app_in_browser exposes.
CURRENT = "window.jupyterapp.shell.currentWidget"
RUN_ALL = f"""async () => {{
    const panel = {CURRENT};
    await panel.sessionContext.ready;
    return await window.jupyterapp.commands.execute('notebook:run-all-cells');
}}"""
CELL_REPORT = f"""() => {{
    const cells = {CURRENT}.content.widgets.filter(cell => cell.model.type === 'code');
    return cells.map((cell, index) => {{
        const json = cell.model.toJSON();
        return {{index, count: json.execution_count, source: json.source.slice(0, 80),
                 errors: json.outputs.filter(o => o.output_type === 'error')
                                     .map(o => o.ename + ': ' + o.evalue)}};
    }});
}}"""


def _open_and_run(page, url, token, name):
    page.goto(f"{url}/lab/tree/{name}.ipynb?token={token}")
    page.wait_for_function(f"() => window.jupyterapp && {CURRENT} && {CURRENT}.context && "
                           f"{CURRENT}.context.path.endsWith('{name}.ipynb')", timeout=120_000)
    page.wait_for_function(f"() => {CURRENT}.sessionContext.session?.kernel?.status === 'idle'",
                           timeout=120_000)
    page.evaluate(RUN_ALL)
    page.wait_for_function(f"() => {CURRENT}.sessionContext.session.kernel.status === 'idle' && "
                           "![...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
                           timeout=RUN_TIMEOUT_S * 1000)
    return page.evaluate(CELL_REPORT)


def _slider(page, label):
    """The slider widget whose label reads exactly ``label``."""
    exact = re.compile(f"^{re.escape(label)}$")
    return page.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text=exact)).first


def _figure_under(slider):
    """The image of the figure in the same interactive box as the slider."""
    return slider.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]").locator(
        ".widget-output img").first


def _drag(page, slider, pixels):
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + pixels / 2, y, steps=5)
    page.mouse.move(x + pixels, y, steps=5)
    page.mouse.up()


REDRAWN = """([box, old]) => {
    const image = box.querySelector('.widget-output img');
    return box.innerText.includes('Traceback') ||
           (image !== null && image.src !== old && image.complete && image.naturalWidth > 0);
}"""


def _check_slider_redraws(page, label, shots: Path | None, name: str):
    slider = _slider(page, label)
    slider.scroll_into_view_if_needed()
    clipped = slider.locator(".widget-label").first.evaluate("e => e.scrollWidth > e.clientWidth")
    assert not clipped, f"{name}: the slider label {label!r} is cut off"
    box = slider.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")  # slider(s) + figure
    figure = _figure_under(slider)
    figure.wait_for(timeout=60_000)
    before_src, before_value = figure.get_attribute("src"), slider.locator(".widget-readout").inner_text()
    _drag(page, slider, 120)
    page.wait_for_function(REDRAWN, arg=[box.element_handle(), before_src], timeout=60_000)
    assert "Traceback" not in box.inner_text(), f"{name}: redrawing after moving {label!r} raised: " \
                                                f"{box.inner_text()[:2000]}"
    after_value = slider.locator(".widget-readout").inner_text()
    assert after_value != before_value, f"{name}: dragging {label!r} did not move it ({before_value})"
    assert _figure_under(slider).get_attribute("src") != before_src, f"{name}: the figure did not change"
    if shots is not None:
        box.scroll_into_view_if_needed()
        box.screenshot(path=str(shots / f"{name}_slider_{label}.png"))
    return before_value, after_value


@pytest.mark.parametrize("name", NOTEBOOKS, ids=list(NOTEBOOKS))
def test_notebook_runs_in_the_browser_and_its_sliders_redraw(name, browser, lab):  # no Lab without a browser
    url, token = lab
    shots = Path(os.environ["SSL_COURSE_SCREENSHOTS"]) if os.environ.get("SSL_COURSE_SCREENSHOTS") else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        report = _open_and_run(page, url, token, name)
        failed = [cell for cell in report if cell["errors"]]
        assert not failed, f"{name}: cells with errors: {failed}"
        unrun = [cell for cell in report if cell["count"] is None]
        assert not unrun, f"{name}: Run All left {len(unrun)} cells unexecuted, first: {unrun[0]}"
        if shots is not None:
            for index, figure in enumerate(page.locator(".jp-Cell-outputArea img").all()):
                figure.scroll_into_view_if_needed()
                figure.screenshot(path=str(shots / f"{name}_figure_{index:02d}.png"))
        for label in NOTEBOOKS[name]:
            _check_slider_redraws(page, label, shots, name)
        if shots is not None:  # the page as a learner sees it, at the first slider
            _slider(page, NOTEBOOKS[name][0]).scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"{name}_lab.png"))
    finally:
        context.close()


def test_a_missing_browser_skips_with_its_reason_or_fails_when_required(monkeypatch):
    monkeypatch.delenv("SSL_COURSE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's `chromium`"):
        _skip("no Chromium found: install Debian's `chromium`")
    monkeypatch.setenv("SSL_COURSE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="asks for the browser test to run"):
        _skip("no Chromium found: install Debian's `chromium`")
    monkeypatch.setenv("SSL_COURSE_CHROMIUM", sys.executable)  # an explicit binary comes first
    assert _chromium() == sys.executable
