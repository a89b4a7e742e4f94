"""Photo evidence (gallery_core.app.evidence): leave-one-photo-out effects on the out-of-fold probe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gallery_core.app import audit, evidence
from gallery_core.artifacts.run import Run
from gallery_core.data.tasks import encode_labels, observed_mask
from gallery_core.errors import UsageError
from gallery_core.names import oof_p_recorded_column, oof_pred_column
from gallery_core.pipeline.embed import new_task_embeddings

# Refitting a fold's probe is deterministic; the photo means are summed again in another order (float
# rounding), and the pretrained part is recomputed for a few photos (other batch sizes).
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def run(tiny_run) -> Run:
    return Run(tiny_run)


def labelled_listings(run: Run, task_name: str) -> list[str]:
    task = run.task(task_name)
    observed = observed_mask(task, encode_labels(task, run.listings[task.column]))
    return run.listings["listing_id"][observed & (run.listings["n_photos"] > 1).to_numpy()].tolist()


@pytest.mark.parametrize("task_name", ["is_chain", "property_type", "price"])
def test_leave_nothing_out_reproduces_the_stored_out_of_fold_value(run, task_name):
    task = run.task(task_name)
    assert run.config.embed.new_task_features == "pretrained+learned"  # both parts are rebuilt per photo
    stored_column = oof_pred_column(task_name) if task.kind == "regression" else oof_p_recorded_column(task_name)
    for listing_id in labelled_listings(run, task_name)[:4]:
        result = evidence.photo_evidence(run, task, listing_id)
        stored = float(run.predictions.loc[run.row_of_listing[listing_id], stored_column])
        assert result.stored_value == stored
        assert result.value_all == pytest.approx(stored, abs=TOLERANCE)


def test_the_refitted_probe_reproduces_the_stored_values_on_the_stored_features(run):
    """The fold probe applied to new_task_embeddings.npy gives what the predict step stored, for every
    listing of the fold."""
    task = run.task("property_type")
    listing_id = labelled_listings(run, "property_type")[0]
    fold = evidence.probe_fold(run, task, listing_id)
    probe = evidence.fit_fold_probe(run, task, fold)
    same_fold = [i for i in labelled_listings(run, "property_type") if evidence.probe_fold(run, task, i) == fold]
    rows = [run.row_of_listing[i] for i in same_fold]
    probabilities = probe.scores(np.asarray(run.new_task_embeddings[rows]))
    codes = encode_labels(task, run.listings[task.column].iloc[rows])
    stored = run.predictions[oof_p_recorded_column(task.name)].to_numpy()[rows]
    np.testing.assert_allclose(probabilities[np.arange(len(rows)), codes], stored, atol=1e-6)


def test_leave_one_out_features_are_the_embed_steps_features(run):
    listing_id = run.listings["listing_id"].iloc[0]
    gallery = run.listing_photos(listing_id)
    learned = np.asarray(run.photo_embeddings[gallery["photo_index"].to_numpy()])
    pretrained = evidence.pretrained_photo_features(run, gallery["path"].tolist())
    features = evidence.new_task_features(learned, pretrained, "pretrained+learned")
    assert features.shape == (len(gallery) + 1, run.new_task_embeddings.shape[1])
    np.testing.assert_allclose(features[0], run.new_task_embeddings[run.row_of_listing[listing_id]], atol=TOLERANCE)
    # Row 1 + j leaves photo j out: the mean of the others.
    means = evidence.leave_one_out_means(learned)
    np.testing.assert_allclose(means[1], learned[1:].mean(axis=0), atol=1e-6)


def test_effects_are_ordered_and_signed_by_side(run):
    task = run.task("property_type")
    result = evidence.photo_evidence(run, task, labelled_listings(run, "property_type")[0])
    photos = result.photos
    assert list(photos.columns) == evidence.EVIDENCE_COLUMNS
    assert photos["effect"].is_monotonic_increasing and list(photos["rank"]) == list(range(1, len(photos) + 1))
    assert ((photos["effect"] < -evidence.NO_EFFECT) == (photos["side"] == evidence.AGAINST)).all()
    assert ((photos["effect"] > evidence.NO_EFFECT) == (photos["side"] == evidence.FOR)).all()
    np.testing.assert_allclose(photos["effect"], result.value_all - photos["value_without"])


@pytest.mark.parametrize("task_name", ["property_type", "is_chain"])
def test_a_planted_contradicting_photo_ranks_first_against(run_copy, task_name):
    """Listing A's second photo is replaced by a photo of a listing of another class (as if a photo of
    another property had been uploaded to it): the one that would lower A's P(recorded) most. It then
    ranks first against, and the evidence's P(recorded) is the planted gallery's."""
    run = Run(run_copy)
    task = run.task(task_name)
    codes = encode_labels(task, run.listings[task.column])
    p_recorded = run.predictions[oof_p_recorded_column(task.name)].to_numpy()
    # A: of the labelled listings with 4+ photos, the one the probe agrees with most.
    candidates = np.flatnonzero(observed_mask(task, codes) & (run.listings["n_photos"] >= 4).to_numpy())
    row = candidates[np.argmax(p_recorded[candidates])]
    target, recorded = run.listings["listing_id"].iloc[row], int(codes[row])
    probe = evidence.fit_fold_probe(run, task, evidence.probe_fold(run, task, target))
    gallery = run.listing_photos(target)
    features = run.config.embed.new_task_features

    def photo_features(photos: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # (n, D), (n, F)
        return (np.asarray(run.photo_embeddings[photos["photo_index"].to_numpy()], dtype=np.float64),
                evidence.pretrained_photo_features(run, photos["path"].tolist()).astype(np.float64))

    own_learned, own_pretrained = photo_features(gallery)
    donors = run.photos[run.photos["listing_index"].isin(np.flatnonzero(observed_mask(task, codes)
                                                                         & (codes != recorded)))]
    donor_learned, donor_pretrained = photo_features(donors)
    n = len(gallery)
    planted_learned = (own_learned.sum(0) - own_learned[1] + donor_learned) / n  # (donors, D)
    planted_pretrained = (own_pretrained.sum(0) - own_pretrained[1] + donor_pretrained) / n  # (donors, F)
    planted_p = probe.scores(new_task_embeddings(planted_learned, planted_pretrained, features))[:, recorded]
    donor = donors.iloc[int(np.argmin(planted_p))]

    photos = run.photos.copy()
    photos.loc[gallery["photo_index"].iloc[1], "path"] = donor["path"]
    embeddings = np.array(run.photo_embeddings)
    embeddings[gallery["photo_index"].iloc[1]] = embeddings[donor["photo_index"]]
    photos.to_parquet(run.paths.photo_table)
    np.save(run.paths.photo_embeddings, embeddings)
    after = evidence.photo_evidence(Run(run_copy, verify=False), task, target, probe)

    top = after.photos.iloc[0]
    assert top["position"] == 2 and top["side"] == evidence.AGAINST
    assert top["path"] == donor["path"]
    assert after.value_all == pytest.approx(planted_p.min(), abs=TOLERANCE)
    assert after.value_all < p_recorded[row]  # the planted photo lowered P(recorded)


def test_a_listing_without_a_recorded_value_has_no_evidence(run):
    task = run.task("price")
    listings = run.listings.copy()
    missing = listings["listing_id"][listings[task.column].isna()].tolist()
    if not missing:
        pytest.skip("every tiny listing has a price")
    with pytest.raises(UsageError, match="no recorded `price`"):
        evidence.photo_evidence(run, task, missing[0])


def test_a_single_photo_listing_has_no_leave_one_out_effect(run):
    features = evidence.leave_one_out_means(np.ones((1, 3)))
    assert features.shape == (2, 3) and np.all(features[1] == 0)


def test_the_most_suspicious_listing_has_a_photo_against(run):
    task = run.task("is_chain")
    table = audit.suspicion_table(task, run.listings, run.predictions)
    top = table[table["listing_id"].isin(labelled_listings(run, "is_chain"))].iloc[0]
    result = evidence.photo_evidence(run, task, top["listing_id"])
    assert result.value_all == pytest.approx(top["p_recorded"], abs=TOLERANCE)
    assert isinstance(result.photos, pd.DataFrame) and len(result.photos) > 1
    assert "P(recorded)" in evidence.evidence_caption(result)


def test_a_sampled_probe_is_refitted_on_the_same_sample(run_copy):
    """Where a fold has more labelled listings than PredictConfig.probe_sample, the predict step trains on a
    seeded sample of them; the evidence refits on that same sample and still reproduces the stored value."""
    from dataclasses import replace

    from conftest import tiny_config

    from gallery_core.config import PredictConfig
    from gallery_core.pipeline.build import run_steps

    config = tiny_config()
    run_steps(run_copy, steps=("predict",), config=replace(config, predict=PredictConfig(oof_folds=3, probe_sample=12)),
              progress=False)
    run = Run(run_copy)
    assert run.config.predict.probe_sample == 12
    task = run.task("is_chain")
    for listing_id in labelled_listings(run, "is_chain")[:3]:
        result = evidence.photo_evidence(run, task, listing_id)
        assert result.value_all == pytest.approx(result.stored_value, abs=TOLERANCE)
