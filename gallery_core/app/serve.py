"""``gallery-core serve``: start the Streamlit app (``app.py``) from the repository root, so that
``.streamlit/config.toml`` applies, optionally read-only (``--read-only``: ``gallery_core.app.settings``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gallery_core.app.settings import READ_ONLY_ENV
from gallery_core.errors import UsageError

# app.py sits beside the package in a source checkout; an installed wheel has no app (the UI is not packaged).
APP_SCRIPT = Path(__file__).resolve().parents[2] / "app.py"
DEFAULT_PORT = 8501


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the app on http://localhost:PORT (streamlit run app.py)",
                       description="Serve the app. Runs `streamlit run app.py` from the repository root.")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--read-only", action="store_true",
                   help="hide every action that writes to disk (audit decisions, writing a selection as a "
                        f"catalogue): for a public viewer (sets {READ_ONLY_ENV}=1)")
    p.add_argument("--artifacts", type=Path, default=None,
                   help="the folder of runs (default $GALLERY_CORE_ARTIFACTS, else artifacts/)")
    p.set_defaults(func=cmd_serve)


def serve_invocation(args: argparse.Namespace, environ: dict[str, str] | None = None,
                     app: Path = APP_SCRIPT) -> tuple[list[str], dict[str, str], Path]:
    """(argv, environment, working folder) of the Streamlit server that ``serve`` starts."""
    if not app.is_file():
        raise UsageError(f"{app}: the app script is not there; `serve` runs from a source checkout of gallery-core")
    env = dict(os.environ if environ is None else environ)
    if args.read_only:
        env[READ_ONLY_ENV] = "1"
    if args.artifacts is not None:
        env["GALLERY_CORE_ARTIFACTS"] = str(Path(args.artifacts).resolve())
    argv = [sys.executable, "-m", "streamlit", "run", app.name, "--server.headless", "true",
            "--server.port", str(args.port), "--browser.gatherUsageStats", "false"]
    return argv, env, app.parent


def cmd_serve(args: argparse.Namespace) -> int:
    argv, env, cwd = serve_invocation(args)
    os.chdir(cwd)
    os.execve(argv[0], argv, env)  # the server replaces this process: Ctrl-C and signals reach it directly
    return 0  # not reached
