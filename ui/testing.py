"""Running the app for tests and benchmarks: under ``streamlit.testing.v1.AppTest`` as ``streamlit run``
runs it, or as a real ``streamlit run app.py`` server on a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_PATH = REPO_ROOT / "app.py"
SERVER_START_TIMEOUT_S = 60


def app_test(timeout_s: float = 120):
    """An ``AppTest`` of app.py; like a live server, it runs app.py (navigation, run picker) before every page."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP_PATH), default_timeout=timeout_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def streamlit_server(artifacts_root: Path, port: int | None = None, app_dir: Path = REPO_ROOT,
                     env: Mapping[str, str] | None = None, python: str = sys.executable) -> Iterator[Server]:
    """``streamlit run app.py`` on a free port, reading runs from ``artifacts_root``; yields its URL and process.

    It runs from ``app_dir`` (the repository root), as ``make serve`` does, so the project's
    ``.streamlit/config.toml`` applies (upload limit). Its output goes to a file, not a pipe that
    nobody reads (a full pipe would block the server).
    """
    port = port or free_port()
    environment = os.environ | {"GALLERY_CORE_ARTIFACTS": str(artifacts_root), "PYTHONPATH": str(app_dir)} | dict(env or {})
    command = [python, "-m", "streamlit", "run", str(Path(app_dir) / "app.py"), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=app_dir, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read().decode(errors='replace')}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not answer on {url} within {SERVER_START_TIMEOUT_S}s")
                time.sleep(0.3)
            yield Server(url, server)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
