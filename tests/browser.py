"""Serve the app on a free localhost port and drive it with Debian's Chromium through Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"


def ensure_chromium() -> str | None:
    """Path of Debian's chromium, installing it with apt-get when missing and allowed; None if impossible."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, **quiet)
    return CHROMIUM if Path(CHROMIUM).exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(env: dict[str, str] | None = None, timeout: float = 60):
    """Run `streamlit run serve.py` (the app behind its middleware) on a free port; yield its base URL; stop it afterwards."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "serve.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"server-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ | (env or {}), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextlib.contextmanager
def chromium():
    """A Playwright browser on Debian's chromium."""
    from playwright.sync_api import sync_playwright

    path = ensure_chromium()
    if path is None:
        raise RuntimeError("Debian's chromium is not installed and could not be installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


MAIN = '[data-testid="stMain"]'
# Streamlit's own record of the script run, set the moment the server says a run began or ended. (The status
# widget is no such signal: it shows "Running" only half a second into a run, so its absence proves nothing.)
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def wait_for_app(page, timeout: float = 30_000, *, path: str | None = None, heading: str | None = None) -> None:
    """Wait for the page the caller is about to check, then until Streamlit has finished running its script.

    path: the URL path st.navigation gives the page ("" for the default one); heading: a heading its script draws
    (every page's st.title is its title in the sidebar). After a click that opens another page the old page is
    still drawn and Streamlit idle until the server answers, so only what the new run draws shows it has begun:
    give the heading. Without one this waits for any content, which is enough only after page.goto or reload
    (a fresh document is in its "initial" state until its first run).
    """
    if path is not None:
        page.wait_for_url(lambda u: urlparse(u).path.strip("/") == path, timeout=timeout)
    if heading is not None:
        page.locator(MAIN).get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=timeout)
    else:
        page.locator(f'{MAIN} [data-testid="stElementContainer"]').first.wait_for(timeout=timeout)
    page.locator(IDLE).wait_for(state="attached", timeout=timeout)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=timeout)


def screenshot(page, name: str) -> Path:
    """Full-page PNG under test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
