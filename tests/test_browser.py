"""The notebooks in a real browser: JupyterLab on localhost with the project's kernel, driven by
headless Chromium (Debian's ``chromium`` package through Playwright for Python; Playwright's own
browser download is not available on the CI machines, ``make browser`` installs the package).

``02_explorer`` runs with its sliders; moving one must re-render the anonymized image (checked on
the image bytes the browser shows). ``00_tour`` and the smoke ``03`` run to the end without an
error. Screenshots go to ``<runs dir>/browser-screenshots/`` (``papermill_runs/`` in a checkout,
git-ignored) and their paths are printed. Every wait is bounded; the server and its kernels are
always shut down.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reidlab.paths import notebook_dir, runs_dir
from reidlab.study import notebook_parameters

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = Path(os.environ.get("REIDLAB_CHROMIUM", "/usr/bin/chromium"))  # env: another build
# Chromium runs as root in CI (needs --no-sandbox) on a closed network: without these it keeps
# trying to reach Google's services and floods refused connections. Playwright itself gives every
# launch a fresh temporary profile (--user-data-dir).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNEL = "reidlab"
SERVER_START_S = 120
RUN_ALL_S = {"00_tour": 150, "02_explorer": 180, "03_anonymization_cost": 270}
SHOTS = runs_dir() / "browser-screenshots"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook shown (its tab is current)

# JupyterLab user settings for the test server: every cell stays in the page (no windowing, so
# the checks see all prompts and outputs) and no news or update check reaches for the network.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_notebooks(root: Path, data_root: Path, out_dir: Path) -> None:
    """Copies of the notebooks with their small parameters injected the way papermill does, and
    the project's kernel named in their metadata."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    wanted = {
        "smoke": True,
        "interactive": True,
        "data_root": str(data_root),
        "out_dir": None,
    }
    for name in RUN_ALL_S:
        src = notebook_dir() / f"{name}.ipynb"
        declared = notebook_parameters(src)
        params = {k: v for k, v in wanted.items() if k in declared}
        if "out_dir" in params:
            params["out_dir"] = str(out_dir / name)
        nb = parameterize_notebook(load_notebook_node(str(src)), params, kernel_name=KERNEL)
        nb.metadata["kernelspec"] = {
            "name": KERNEL,
            "display_name": "reidlab (.venv)",
            "language": "python",
        }
        nbformat.write(nb, root / src.name)


class LabServer:
    def __init__(self, url: str, token: str, root: Path, proc: subprocess.Popen, log: Path):
        self.url, self.token, self.root, self.proc, self.log = url, token, root, proc, log

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for k in self.api("/api/kernels"):
            self.api(f"/api/kernels/{k['id']}", method="DELETE")

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, synthetic_root):
    """JupyterLab (this venv's) on a free localhost port, serving prepared notebook copies, with
    the project's kernel installed into a private Jupyter data folder. Always shut down."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    _prepare_notebooks(root, synthetic_root, base / "outputs")
    settings = base / "settings"
    for rel, values in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    env = dict(
        os.environ,
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    # The kernel `make lab` installs, here into the private data folder: this interpreter.
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--user", "--name", KERNEL]
        + ["--display-name", "reidlab (.venv)"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1"]
    cmd += [f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}"]
    cmd += [f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={base / 'ws'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = base / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, proc, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in {SERVER_START_S} s")
                time.sleep(0.5)
        yield server
    finally:
        # SIGTERM lets the server shut its kernels down; whatever is left of its own process
        # group (kernels included) is killed after a bounded wait.
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: Debian's chromium package drives this test (`make browser`"
            " installs it as root with apt-get; it could not here)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) absent")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1920, "height": 1800})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()
        lab.shutdown_kernels()


def _shot(page, name: str, locator=None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def _open(page, lab: LabServer, name: str) -> None:
    # a workspace of its own: JupyterLab reopens nothing a previous test left open
    page.goto(f"{lab.url}/lab/workspaces/{name}/tree/{name}.ipynb?token={lab.token}")
    page.wait_for_selector(f"{PANEL} .jp-Notebook .jp-CodeCell", timeout=120_000)
    # the kernel is started and connected: the status bar names it and says Idle
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(e => /reidlab.*\\|\\s*Idle/.test(e.textContent))",
        timeout=120_000,
    )


# Every code cell's prompt: "[ ]:" not run, "[*]:" running or queued, "[3]:" done.
_PROMPTS = (
    f"() => [...document.querySelectorAll('{PANEL} .jp-CodeCell .jp-InputArea-prompt')]"
    ".map(e => e.textContent.trim())"
)


def _run_all(page, lab: LabServer, name: str) -> dict:
    """Run > Run All Cells from the menu, wait (bounded) until no cell is queued or running, save
    with Ctrl+S, and return the saved notebook (its outputs as the browser's kernel made them)."""
    started = time.monotonic()
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    timeout_ms = RUN_ALL_S[name] * 1000
    page.wait_for_function(f"() => ({_PROMPTS})().some(p => p.includes('*'))", timeout=30_000)
    page.wait_for_function(
        f"() => !({_PROMPTS})().some(p => p.includes('*'))"
        f" && document.querySelector('{PANEL} .jp-Notebook-ExecutionIndicator')"
        "?.getAttribute('data-status') === 'idle'",
        timeout=timeout_ms,
    )
    print(f"{name}: Run All Cells took {time.monotonic() - started:.0f} s")
    path = lab.root / f"{name}.ipynb"
    unsaved = path.stat().st_mtime_ns
    page.locator(f"{PANEL} .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=30_000,
    )
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == unsaved:
        assert time.monotonic() < deadline, f"{name}: Ctrl+S did not save the notebook"
        time.sleep(0.2)
    return json.loads(path.read_text())


def _assert_ran_clean(saved: dict, name: str) -> None:
    errors = [
        f"{o.get('ename')}: {o.get('evalue')}"
        for c in saved["cells"]
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{name}: error cells in the browser run: {errors}"
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    not_run = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert code and not not_run, f"{name}: code cells {not_run} did not run"


def _image_bytes(img) -> bytes:
    """The bytes behind an ipywidgets Image's <img> (a blob: URL). Its URL alone says nothing:
    the view makes a new one on any change of the widget (its width too)."""
    b64 = img.evaluate(
        """async (el) => {
            const buf = new Uint8Array(await (await fetch(el.src)).arrayBuffer());
            let s = '';
            for (let i = 0; i < buf.length; i += 0x8000)
                s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
            return btoa(s);
        }"""
    )
    return base64.b64decode(b64)


def _explorer_images(out) -> list[bytes]:
    """The explorer's images: the anonymized crops, then the ranked list where it is shown."""
    return [_image_bytes(img) for img in out.locator("img.widget-image").all()]


def _settled_images(page, out, timeout_s: float = 120) -> list[bytes]:
    """The explorer's images once the kernel has been idle for 3 s (every queued re-render done:
    a slider sends a value per step it passes) and two reads a second apart agree."""
    indicator = page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_s
    idle_since, last = None, None
    while time.monotonic() < deadline:
        if indicator.get_attribute("data-status") != "idle":
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= 3:
            now = _explorer_images(out)
            if now and now == last:
                return now
            last = now
        time.sleep(0.5)
    pytest.fail(f"the explorer did not settle (kernel idle, images unchanged) in {timeout_s} s")


def _drag(page, slider, fraction: float) -> None:
    """Drag a slider's handle with the mouse by ``fraction`` of its track (leftwards where the
    track ends first)."""
    slider.scroll_into_view_if_needed()
    track = slider.locator(".noUi-base").bounding_box()
    handle = slider.locator(".noUi-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    to = x + fraction * track["width"]
    if to > track["x"] + track["width"]:
        to = x - fraction * track["width"]
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(to, y, steps=2)
    page.mouse.up()


def _wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_explorer_slider_rerenders_the_anonymized_image(page, lab):
    _open(page, lab, "02_explorer")
    saved = _run_all(page, lab, "02_explorer")
    _assert_ran_clean(saved, "02_explorer")
    out = page.locator(f"{PANEL} .jp-OutputArea-output:has(.widget-slider)").first
    out.locator("img.widget-image").first.wait_for(state="visible")
    out.scroll_into_view_if_needed()
    _shot(page, "02_explorer-1-after-run-all")
    _shot(page, "02_explorer-2-widget-before", out)
    before = _settled_images(page, out)
    assert before[0].startswith(b"\x89PNG"), "the explorer's image is not a PNG"

    # The first visible slider whose move re-renders the image (the explorer's controls come from
    # the method registry, so their order and labels may change); at most three are tried, which
    # bounds the test's time.
    sliders = out.locator(".widget-slider").locator("visible=true")
    assert sliders.count() > 0, "the explorer shows no slider"
    tried = []
    for i in range(min(3, sliders.count())):
        slider = sliders.nth(i)
        label = slider.locator(".widget-label").inner_text()
        readout = slider.locator(".widget-readout")
        value = readout.inner_text()
        _drag(page, slider, 0.25)
        moved = _wait_until(lambda r=readout, v=value: r.inner_text() != v, timeout_s=10)
        tried.append(f"{label!r} {value} -> {readout.inner_text()}")
        if moved and _wait_until(lambda: _explorer_images(out)[0] != before[0], timeout_s=60):
            break
    else:
        _shot(page, "02_explorer-3-no-change")
        pytest.fail(f"no slider re-rendered the anonymized image (moved: {tried})")
    after = _settled_images(page, out)
    _shot(page, "02_explorer-3-after-slider")
    _shot(page, "02_explorer-4-widget-after-slider", out)
    print(f"02_explorer: moved {tried[-1]}")
    assert after[0].startswith(b"\x89PNG") and after[0] != before[0]
    if len(before) > 1:  # the ranked list (shown when the explorer has a model and a gallery)
        assert len(after) == len(before) and after[1] != before[1], "the ranked list did not change"
    else:
        print("02_explorer: the explorer shows no ranked list; only the anonymized image checked")


@pytest.mark.parametrize("name", ["00_tour", "03_anonymization_cost"])
def test_notebook_runs_in_browser_without_error(page, lab, name):
    _open(page, lab, name)
    saved = _run_all(page, lab, name)
    last = page.locator(f"{PANEL} .jp-Cell").last
    last.scroll_into_view_if_needed()
    _shot(page, f"{name}-end")
    _assert_ran_clean(saved, name)
    # and nothing in the page shows a traceback (an error output JupyterLab rendered)
    tracebacks = page.locator(f"{PANEL} .jp-OutputArea-output", has_text="Traceback (most rec")
    assert tracebacks.count() == 0, f"{name}: the page shows a traceback"
