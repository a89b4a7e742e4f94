"""Serving a run while a build rewrites it: the last complete build, and a note that a rebuild is in progress.

A build replaces a run's files one at a time (each atomically) and records each step in the manifest after
its files; in between, the files on disk are a mix of two builds that the run check refuses. So while the
run folder's writer lock is held (``gallery_core.artifacts.lock``) the pages keep the ``RunKey`` of the last
build that opened in this server process (its ``Run`` stays in ``st.cache_resource``: embeddings read
through memory maps of the replaced files stay as they were); a server started during the rebuild opens the
run if its files are consistent at that moment, and otherwise says that it opens when the build is done.
When the lock is released the next rerun opens the new build.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from gallery_core.artifacts.lock import run_writer
from gallery_core.artifacts.run import Run
from gallery_core.artifacts.store import ArtifactError
from ui import loaders

# run folder -> the key of its last build that opened in this process (shared by every session, as the
# cached Run objects are)
_LAST_OPENED: dict[str, loaders.RunKey] = {}


def open_run(root: Path) -> tuple[Run, loaders.RunKey]:
    """The run and its key; ``ArtifactError`` when it cannot be opened and no build is writing it. During a
    rebuild: the last build opened here, with a note; the page stops with an explanation if there is none."""
    writer = run_writer(root)
    if writer is None:
        key = loaders.run_key(root)
        run = loaders.load_run(key)
        _LAST_OPENED[str(root)] = key
        return run, key
    st.info(f"A rebuild of run `{root.name}` is in progress (pid {writer.pid} on {writer.host}, since "
            f"{writer.started_at}): these pages show its last complete build until it has finished.",
            icon=":material/autorenew:")
    for key in (_LAST_OPENED.get(str(root)), loaders.run_key(root)):
        if key is None:
            continue
        try:
            run = loaders.load_run(key)
        except (ArtifactError, OSError, ValueError):  # files between two builds: not a run to show
            continue
        _LAST_OPENED[str(root)] = key
        return run, key
    st.info(f"Run `{root.name}` opens when the rebuild has finished (its files are between two builds now); "
            "reload the page then.")
    st.stop()
    raise AssertionError("st.stop() returns only outside Streamlit")  # for type checkers
