"""Why a listing was retrieved for a seed gallery: each seed photo's share of the score, and the
(seed photo, listing photo) pairs that match best.

The score the ranking uses (``Run.seed_vector`` + ``Run.retrieve``) is the cosine of two gallery means:

    q = m / |m|,  m = (1/n) sum_i s_i        s_i: the n seed photos' vectors in the retrieval space (the raw
                                             encoder outputs whitened: ``Run.retrieval_vectors``, affine, so
                                             the whitened mean is the mean of the whitened photos)
    score = q . l                            l: the listing's embedding (its photos' mean, unit length)
          = sum_i (s_i . l) / (n |m|)

so seed photo i *contributes* ``(s_i . l) / (n |m|)`` and the contributions add up to the score exactly
(up to float rounding: they are computed in float64, the ranking in float32). A contribution can be
negative: that seed photo pulls the listing down. This is the exact score. When the ranking went through
the Annoy index, the listings it returned may miss some exact neighbours, but each returned listing's
score is the same cosine (Annoy reports the exact angular distance of the items it returns);
``Explanation.ranking_score`` keeps the ranking's own number, and ``ranked_by_exact_score`` says
whether the two agree, so a future approximate score (quantised vectors, say) would show up as a
disagreement rather than be explained wrongly.

The pairs are a second, more concrete view: the cosine similarity of a seed photo's embedding and a
listing photo's embedding, the best few over every (seed, listing photo) pair. They say *which photos*
look alike; the contributions say how much each seed photo moved the listing's score.

Photo embeddings are memory-mapped: only the rows of the explained listings' photos are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gallery_core.artifacts.run import Run
from gallery_core.errors import UsageError
from gallery_core.vectors import EPS, l2_normalise, top_k

N_PAIRS = 3  # best pairs shown per listing
SCORE_TOLERANCE = 1e-5  # |ranking score - exact score| below this: the ranking used the exact score


@dataclass(frozen=True)
class SeedPhotos:
    """A seed gallery as the explanation needs it: one label and one embedding per seed photo."""

    labels: list[str]  # a catalogue photo's path or an upload's name, for people to read
    embeddings: np.ndarray  # (S, k) photo vectors in the retrieval space, in the order the query was built from

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.embeddings):
            raise ValueError(f"{len(self.labels)} labels for {len(self.embeddings)} seed embeddings")
        if len(self.labels) == 0:
            raise UsageError("a seed gallery needs at least one photo")

    @property
    def query(self) -> np.ndarray:
        """The query vector the ranking uses (as ``Run.seed_vector`` makes it) (D,)."""
        return l2_normalise(np.asarray(self.embeddings, dtype=np.float32).mean(axis=0))


def seed_photos(run: Run, photo_indices: Sequence[int] = (), uploaded: np.ndarray | None = None,
                upload_labels: Sequence[str] = ()) -> SeedPhotos:
    """The seeds of ``Run.seed_vector(photo_indices, uploaded)``, in its order: catalogue photos (labelled by
    their path), then uploads (labelled by ``upload_labels``)."""
    indices = np.asarray(photo_indices, dtype=np.int64)
    parts = [np.asarray(run.photo_embeddings[indices], dtype=np.float32)]  # (S1, D): only these rows are read
    labels = [str(p) for p in run.photos["path"].to_numpy()[indices]]
    if uploaded is not None and len(uploaded):
        if len(upload_labels) != len(uploaded):
            raise ValueError(f"{len(upload_labels)} labels for {len(uploaded)} uploaded embeddings")
        parts.append(np.asarray(uploaded, dtype=np.float32))
        labels.extend(str(label) for label in upload_labels)
    return SeedPhotos(labels, run.retrieval_vectors(np.concatenate(parts)))


@dataclass(frozen=True)
class PhotoPair:
    seed: int  # position in the seed gallery
    photo_index: int  # row of the run's photo table
    similarity: float  # cosine of the two photo embeddings


@dataclass(frozen=True)
class Explanation:
    listing_id: str
    score: float  # the exact score q . l; the contributions sum to it
    contributions: np.ndarray  # (S,) one per seed photo, in seed order
    pairs: list[PhotoPair]  # best first
    ranking_score: float | None = None  # the score the ranking reported, when known

    @property
    def ranked_by_exact_score(self) -> bool:
        return self.ranking_score is None or abs(self.ranking_score - self.score) <= SCORE_TOLERANCE

    def shares(self) -> np.ndarray:
        """Each seed photo's fraction of the score (S,); NaN when the score is too close to zero to divide."""
        if abs(self.score) < 1e-6:
            return np.full(len(self.contributions), np.nan)
        return self.contributions / self.score

    def top_seeds(self, n: int) -> tuple[np.ndarray, float]:
        """Positions of the ``n`` largest contributions (largest first) and the sum of all the others."""
        top = top_k(self.contributions, n)
        return top, float(self.contributions.sum() - self.contributions[top].sum())

    def to_dict(self, seeds: SeedPhotos, photo_paths: Sequence[str]) -> dict[str, Any]:
        """JSON-ready: seed_contributions [{seed, contribution, share}], pairs [{seed, photo, similarity}],
        exact_score (what the contributions sum to). ``photo_paths``: the run's photo table's paths."""
        shares = self.shares()
        out: dict[str, Any] = {
            "exact_score": self.score,
            "seed_contributions": [
                {"seed": label, "contribution": float(c), "share": None if np.isnan(s) else float(s)}
                for label, c, s in zip(seeds.labels, self.contributions, shares, strict=True)],
            "pairs": [{"seed": seeds.labels[p.seed], "photo": str(photo_paths[p.photo_index]),
                       "photo_index": p.photo_index, "similarity": p.similarity} for p in self.pairs],
        }
        if not self.ranked_by_exact_score:
            out["note"] = (f"the ranking's score ({self.ranking_score:.6f}) is approximate; the contributions "
                           f"explain the exact score {self.score:.6f}")
        return out


def explain_listing(seeds: SeedPhotos, listing_embedding: np.ndarray, listing_photo_embeddings: np.ndarray,
                    first_photo: int, listing_id: str, n_pairs: int = N_PAIRS,
                    ranking_score: float | None = None) -> Explanation:
    """The explanation of one listing from its vectors: ``listing_embedding`` (D,) unit length,
    ``listing_photo_embeddings`` (P, k) its photos' retrieval-space vectors, rows ``first_photo`` onwards of the
    run's photo table."""
    s = np.asarray(seeds.embeddings, dtype=np.float64)  # (S, D)
    listing = np.asarray(listing_embedding, dtype=np.float64)  # (D,)
    mean_norm = max(float(np.linalg.norm(s.mean(axis=0))), EPS)  # |m|, floored as l2_normalise floors it
    contributions = s @ listing / (len(s) * mean_norm)  # (S,)

    photos = np.asarray(listing_photo_embeddings)  # (P, D)
    cosines = l2_normalise(s) @ l2_normalise(photos).T  # (S, P)
    best = top_k(cosines.ravel(), n_pairs)  # ties: the lower seed, then the lower photo, first
    pairs = [PhotoPair(seed=int(i // cosines.shape[1]), photo_index=first_photo + int(i % cosines.shape[1]),
                       similarity=float(cosines.flat[i])) for i in best]
    return Explanation(listing_id, float(contributions.sum()), contributions, pairs,
                       None if ranking_score is None else float(ranking_score))


def explain_results(run: Run, seeds: SeedPhotos, results: pd.DataFrame, n_pairs: int = N_PAIRS) -> list[Explanation]:
    """One explanation per row of ``Run.retrieve``'s table (listing_id, score), in its order."""
    explanations = []
    for listing_id, score in zip(results["listing_id"], results["score"], strict=True):
        if listing_id not in run.row_of_listing:
            raise UsageError(f"unknown listing {listing_id!r} in run {run.name}")
        row = run.row_of_listing[listing_id]
        first, n = int(run.listings["first_photo"].iloc[row]), int(run.listings["n_photos"].iloc[row])
        explanations.append(explain_listing(
            seeds, run.listing_embeddings[row],
            run.retrieval_vectors(run.photo_embeddings[first:first + n]),  # only this listing's rows are read
            first, listing_id, n_pairs, ranking_score=float(score)))
    return explanations


def explanation_text(explanation: Explanation, seeds: SeedPhotos, photo_paths: Sequence[str],
                     n_seeds: int = 3) -> list[str]:
    """A compact text form (the CLI's ``retrieve --explain``): the largest seed contributions, the best pairs."""
    top, rest = explanation.top_seeds(n_seeds)
    shares = explanation.shares()

    def share(value: float) -> str:
        return "" if np.isnan(value) else f" ({value:.0%})"

    parts = [f"{short(seeds.labels[i])} {explanation.contributions[i]:+.4f}{share(shares[i])}" for i in top]
    if len(explanation.contributions) > len(top):
        parts.append(f"{len(explanation.contributions) - len(top)} more {rest:+.4f}")
    lines = [f"seeds: {', '.join(parts)} = {explanation.score:.4f}"]
    lines.append("pairs: " + "; ".join(f"{short(seeds.labels[p.seed])} ~ {short(photo_paths[p.photo_index])} "
                                       f"{p.similarity:.3f}" for p in explanation.pairs))
    if not explanation.ranked_by_exact_score:
        lines.append(f"note: the ranking's score {explanation.ranking_score:.4f} is approximate; explained: the "
                     f"exact score")
    return lines


def short(path: str) -> str:
    """The last two parts of a path ("L000005/02.jpg"): enough to tell photos apart in a line of text."""
    return "/".join(str(path).replace("\\", "/").split("/")[-2:])
