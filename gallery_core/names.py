"""Names that several modules must agree on: the prediction table's columns and the commands shown to users.

The build writes these columns and these commands appear in messages, pages and reports; each is spelled
here once so that a rename cannot leave a reader behind. File names of a run live with the run's folder
layout in ``gallery_core.artifacts.store``.
"""

from __future__ import annotations

from pathlib import Path

# --- columns of predictions.parquet (one row per listing) ---


def prob_column(task: str) -> str:
    """Binary task: P(1) from the trained head."""
    return f"{task}__prob"


def pred_column(task: str) -> str:
    """Every task: the trained head's prediction (class or value)."""
    return f"{task}__pred"


def confidence_column(task: str) -> str:
    """Multiclass task: the probability of the predicted class."""
    return f"{task}__confidence"


def class_prob_column(task: str, label: str) -> str:
    """Multiclass task: the probability of one class."""
    return f"{task}__p__{label}"


def oof_pred_column(task: str) -> str:
    """Every task: the out-of-fold probe's prediction (a probe that never saw the listing's label)."""
    return f"{task}__oof_pred"


def oof_p_recorded_column(task: str) -> str:
    """Classification task: the out-of-fold probability of the recorded value."""
    return f"{task}__oof_p_recorded"


# --- commands shown to users ---

CLI = "python -m gallery_core"
DEMO_COMMAND = "make demo"


def build_command(out: str | Path, catalogue: str | Path = "DIR") -> str:
    return f"{CLI} build --catalogue {catalogue} --out {out}"


def step_command(step: str, out: str | Path) -> str:
    return f"{CLI} {step} --out {out}"


def evaluate_command(out: str | Path) -> str:
    return f"{CLI} evaluate --artifacts {out}"
