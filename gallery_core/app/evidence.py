"""Photo evidence for a suspicious label: which of a listing's photos argue against its recorded value.

Method: leave one photo out. The audit's out-of-fold probe reads the listing's new-task embedding, which
the embed step builds from the *mean* of the listing's photos (``pipeline.embed.new_task_embeddings``:
each part's photo mean L2-normalised, parts concatenated). For photo j we rebuild that feature exactly
as embed does from every photo but j, apply the same probe, and report

    effect_j = P(recorded | all photos) - P(recorded | all photos but j)

(classification), so a negative effect means the listing looks *more* like its recorded value without
the photo: the photo argues against the data. For regression the effect is how much closer the photo
brings the prediction to the recorded value: |recorded - pred without j| - |recorded - pred with all|.

Why this and not the probe applied to each photo's own embedding: the probe was trained on gallery
means, never on single photos, so its output on one photo is off its training distribution, and the
per-photo answers do not add up to the number the audit ranks by. Leave-one-out moves the very input
the suspicion score came from, so the leave-nothing-out value *is* the stored out-of-fold probability
(the tests check it) and every effect is a change in that number.

Exact with respect to the probe: the predict step stores no fitted probes, only their out-of-fold
outputs. They are refitted here, deterministically, from the stored setup: the same split
(``pipeline.predict.probe_folds`` with the run's seed and ``PredictConfig``), the same estimator
(``pipeline.predict._Probe`` / ridge), trained on the same rows of ``new_task_embeddings.npy``; only the
fold that held the listing out is fitted (once per fold: the app caches it).

Per-photo features: the learned part is ``photo_embeddings.npy``; the pretrained part (when the run's
``new_task_features`` includes it) is stored per listing only, so it is recomputed for the listing's
photos from the run's frozen-trunk cache (the numbers embed used), or from the photo files when the
cache was deleted. Listings of one photo have no leave-one-out evidence (NaN effect).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from gallery_core.artifacts.run import Run
from gallery_core.data.tasks import TaskSpec, class_labels, encode_labels, observed_mask
from gallery_core.errors import UsageError
from gallery_core.names import oof_p_recorded_column, oof_pred_column
from gallery_core.vectors import group_mean

AGAINST = "against"
FOR = "for"
NEITHER = "neither"  # no measurable effect (e.g. a class the fold's probe never saw has P = 0 anyway)
NO_EVIDENCE = "only photo"
# Effects smaller than this (in probability or the task's unit) are float noise, not evidence.
NO_EFFECT = 1e-9
EVIDENCE_COLUMNS = ["rank", "photo_index", "path", "position", "effect", "side", "value_without"]


@dataclass(frozen=True)
class FoldProbe:
    """The out-of-fold probe that judged a listing: fitted on the other folds' labelled listings."""

    task: TaskSpec
    fold: int
    model: Any  # fitted scikit-learn estimator (``_Probe`` for classification, ``Ridge`` for regression)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N, D') features -> (N, C) class probabilities over every class of the task (a class absent from
        the training folds has 0, as in the predict step), or (N,) values for regression."""
        x = np.asarray(features, dtype=np.float32)
        if self.task.kind == "regression":
            return np.asarray(self.model.predict(x), dtype=float)
        n_classes = self.task.output_dim if self.task.kind == "multiclass" else 2
        probabilities = np.zeros((len(x), n_classes))
        probabilities[:, self.model.classes_.astype(np.int64)] = self.model.predict_proba(x)
        return probabilities


@dataclass(frozen=True)
class Evidence:
    """One listing's photos ranked by their effect on the probe's judgement of one recorded value."""

    task: TaskSpec
    listing_id: str
    recorded: Any  # the recorded value as the audit shows it (class label or number)
    predicted: Any  # what the probe says from all photos (class label or number)
    value_all: float  # P(recorded) (classification) or the prediction (regression) from all photos
    stored_value: float  # the same number as the predict step stored it (equal up to float rounding)
    photos: pd.DataFrame  # EVIDENCE_COLUMNS, most "against" first

    @property
    def disagrees(self) -> bool:
        return str(self.predicted) != str(self.recorded) if self.task.kind != "regression" else False


def _labelled(run: Run, task: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the listings with a recorded value (N,) and their encoded labels (N,), as predict sees them."""
    labels = encode_labels(task, run.listings[task.column])
    observed = np.flatnonzero(observed_mask(task, labels))
    return observed, labels[observed]


def _folds(run: Run, n_observed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The predict step's split of the labelled listings: (train, test) positions per fold."""
    from gallery_core.pipeline.predict import probe_folds  # torch import: lazy

    return probe_folds(n_observed, run.config.predict, run.config.train.seed)


def probe_fold(run: Run, task: TaskSpec, listing_id: str) -> int:
    """Which fold's probe judged this listing (the fold that held it out). UsageError when it has no
    recorded value (no probe judged it) or too few listings are labelled for a probe."""
    row = run.row_of_listing.get(listing_id)
    if row is None:
        raise UsageError(f"unknown listing {listing_id!r} in run {run.name}")
    observed, _ = _labelled(run, task)
    position = int(np.searchsorted(observed, row))
    if position >= len(observed) or observed[position] != row:
        raise UsageError(f"listing {listing_id} has no recorded `{task.column}`: there is no label to find "
                         "evidence against")
    if len(observed) < 2:
        raise UsageError(f"only {len(observed)} listing has a recorded `{task.column}`: no probe was trained")
    for fold, (_, test) in enumerate(_folds(run, len(observed))):
        if position in test:
            return fold
    raise AssertionError("k-fold split covers every labelled listing")


def fit_fold_probe(run: Run, task: TaskSpec, fold: int) -> FoldProbe:
    """Refit the predict step's probe of one fold: same estimator, same training rows, same features."""
    from gallery_core.pipeline.predict import _Probe  # the predict step's estimator (torch import: lazy)

    observed, labels = _labelled(run, task)
    train, _ = _folds(run, len(observed))[fold]
    x = np.asarray(run.new_task_embeddings[observed[train]])  # (N_train, D')
    y = labels[train]
    if task.kind == "regression":
        return FoldProbe(task, fold, Ridge(alpha=1.0).fit(x, y))
    with warnings.catch_warnings():  # the same warnings the predict step silences
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The number of unique classes")
        return FoldProbe(task, fold, _Probe().fit(x, y.astype(np.int64)))


def leave_one_out_means(photo_features: np.ndarray) -> np.ndarray:
    """(n, D) features of a listing's photos -> (n + 1, D): row 0 the mean of all, row 1 + j the mean of
    every photo but j (the zero vector when n == 1)."""
    n = len(photo_features)
    # Group 0 takes every photo; group 1 + j takes every photo but j.
    members = [np.arange(n)] + [np.delete(np.arange(n), j) for j in range(n)]
    rows = np.concatenate(members)
    groups = np.repeat(np.arange(n + 1), [len(m) for m in members])
    return group_mean(np.asarray(photo_features, dtype=np.float64)[rows], groups, n + 1)


def new_task_features(learned: np.ndarray, pretrained: np.ndarray | None, features: str) -> np.ndarray:
    """Leave-one-out new-task features of a listing: ``learned`` (n, D) and ``pretrained`` (n, F) photo
    features -> (n + 1, D'), built from the photo means exactly as ``pipeline.embed.new_task_embeddings``."""
    from gallery_core.pipeline.embed import new_task_embeddings

    return new_task_embeddings(leave_one_out_means(learned),
                               None if pretrained is None else leave_one_out_means(pretrained), features)


def pretrained_photo_features(run: Run, photo_paths: list[str]) -> np.ndarray:
    """The pretrained backbone's features (n, F) of some of the run's photos, as the embed step made them:
    from the frozen-trunk cache when it holds them, else from the photo files (nothing is written)."""
    import json

    from gallery_core.data.photos import (
        cached_trunk_features,
        compute_trunk_features,
        trunk_cache_dir,
        trunk_cache_key,
    )
    from gallery_core.pipeline import embed

    backbone = run.model.encoder.backbone
    fingerprint = run.manifest["catalogue"].get("fingerprint")  # None: a run made without a catalogue (synthetic)
    key = trunk_cache_key(fingerprint, backbone, run.config.model.image_size) if fingerprint else ""
    index_path = trunk_cache_dir(run.paths.cache_dir) / f"trunk-{key}.json"
    cached = set(json.loads(index_path.read_text())["paths"]) if key and index_path.is_file() else set()
    if cached.issuperset(photo_paths):  # a cache hit: cached_trunk_features only reads
        trunk, bad = cached_trunk_features(run.paths.cache_dir, key, backbone, photo_paths,
                                           run.config.model.image_size, progress=False)
    else:
        trunk, bad = compute_trunk_features(backbone, photo_paths, run.config.model.image_size, progress=False)
    if bad:
        raise UsageError(f"photo {photo_paths[min(bad)]} can no longer be decoded: {bad[min(bad)]}")
    return embed.pretrained_photo_features(run.config.model, trunk)


def _recorded_value(task: TaskSpec, raw: Any) -> Any:
    if task.kind == "regression":
        return float(raw)
    return class_labels(pd.Series([raw])).iloc[0]


def photo_evidence(run: Run, task: TaskSpec, listing_id: str, probe: FoldProbe | None = None) -> Evidence:
    """The listing's photos ranked by their effect on P(recorded value) (see the module docstring).

    ``probe``: the listing's fold probe (``fit_fold_probe(run, task, probe_fold(...))``), passed by callers
    that cache it; fitted here otherwise."""
    fold = probe_fold(run, task, listing_id)
    if probe is None or probe.fold != fold or probe.task != task:
        probe = fit_fold_probe(run, task, fold)
    row = run.row_of_listing[listing_id]
    gallery = run.listing_photos(listing_id)
    photo_rows = gallery["photo_index"].to_numpy()
    learned = np.asarray(run.photo_embeddings[photo_rows])  # (n, D)
    features = run.config.embed.new_task_features
    pretrained = None if features == "learned" else pretrained_photo_features(run, gallery["path"].tolist())
    x = new_task_features(learned, pretrained, features)  # (n + 1, D'): all photos, then without each
    if len(photo_rows) == 1:
        x = x[:1]
    scores = probe.scores(x)
    recorded_code = encode_labels(task, run.listings[task.column].iloc[[row]])[0]
    stored_row = run.predictions.iloc[row]
    if task.kind == "regression":
        values = scores  # (n + 1,) predictions
        distance = np.abs(float(recorded_code) - values)
        effects = distance[1:] - distance[0]
        predicted: Any = float(values[0])
        stored = float(stored_row[oof_pred_column(task.name)])
    else:
        values = scores[:, int(recorded_code)]  # (n + 1,) P(recorded)
        effects = values[0] - values[1:]
        labels = task.classes if task.kind == "multiclass" else ("0", "1")
        predicted = labels[int(scores[0].argmax())]
        stored = float(stored_row[oof_p_recorded_column(task.name)])
    if len(photo_rows) == 1:
        effects, without = np.array([np.nan]), np.array([np.nan])
    else:
        without = values[1:]
    table = pd.DataFrame({"photo_index": photo_rows, "path": gallery["path"].to_numpy(),
                          "position": np.arange(1, len(photo_rows) + 1), "effect": effects,
                          "value_without": without})
    table["side"] = np.select([np.isnan(effects), np.abs(effects) <= NO_EFFECT, effects < 0],
                              [NO_EVIDENCE, NEITHER, AGAINST], FOR)
    table = table.sort_values(["effect", "position"], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return Evidence(task, listing_id, _recorded_value(task, run.listings[task.column].iloc[row]), predicted,
                    float(values[0]), stored, table[EVIDENCE_COLUMNS])


def evidence_caption(evidence: Evidence) -> str:
    """One line saying what the numbers are, for the pages."""
    if evidence.task.kind == "regression":
        return (f"recorded {evidence.recorded:.4g}, photos say {evidence.predicted:.4g}. Each number: how much "
                "closer the photo brings the prediction to the recorded value (negative: the photo argues "
                "against it).")
    return (f"recorded {evidence.recorded}, photos say {evidence.predicted} (P(recorded) = {evidence.value_all:.2f}). "
            "Each number: the change in P(recorded) that the photo causes (P with it − P without it); "
            "negative: the photo argues against the recorded value.")
