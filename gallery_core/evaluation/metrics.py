"""Pure metric functions of the evaluation: arrays in, numbers out, no files and no models.

Each one is small enough to check on a hand-made case (``tests/test_evaluation_metrics.py``); the
sections (``gallery_core.evaluation.sections``) only prepare arrays and call these. Where scikit-learn
or SciPy has the measure, it computes it; the rest (intervals, retrieval and top-k ranking measures)
has no library equivalent with the same definition, said at each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score

from gallery_core.vectors import group_mean, l2_normalise, top_k

# --- classification accuracy with an interval ---


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of ``predicted`` equal to ``labels`` (both (N,) class indices)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"predicted {predicted.shape} and labels {labels.shape} differ in shape")
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(accuracy_score(labels, predicted))


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> tuple[int, float]:
    """The trivial classifier: (the training labels' most frequent class, its accuracy on the test
    labels). Ties go to the smallest class index."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(train_labels), 1)), train_labels)
    predicted = dummy.predict(np.zeros((len(test_labels), 1)))
    return int(dummy.classes_[np.argmax(dummy.class_prior_)]), accuracy(predicted, test_labels)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: how far a test-set accuracy may be from the truth.

    The test splits here are small (a few hundred listings), so every accuracy is reported with it.
    """
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap_difference(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 2000,
                                seed: int = 0) -> dict[str, float]:
    """Accuracy of A minus accuracy of B on the same test items, with a 95% bootstrap interval.

    Pairing (resampling items, not each model separately) is what makes two models' accuracies on a
    small shared test set comparable: their errors are correlated.
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"expected two equal non-empty 1-d arrays, got {a.shape} and {b.shape}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), size=(n_boot, len(a)))
    differences = (a[rows] - b[rows]).mean(axis=1)
    low, high = np.quantile(differences, [0.025, 0.975])
    return {"difference": float(a.mean() - b.mean()), "low": float(low), "high": float(high)}


# --- per-task errors against single-task models (the paper's Figures 5 and 6) ---


def task_error(kind: str, metrics: dict[str, float]) -> float:
    """The paper's error of a task: 1 - accuracy (classification) or the MSE (regression)."""
    if kind in ("binary", "multiclass"):
        return 1.0 - float(metrics["accuracy"])
    if kind == "regression":
        return float(metrics["rmse"]) ** 2
    raise ValueError(f"unknown task kind {kind!r}")


def relative_error_increase(error: float, reference_error: float) -> float:
    """(error - reference) / reference: the paper's Figure 5 measure of MTL against a task-optimal model.

    Positive = MTL is worse; -0.1 = MTL makes 10% fewer errors. A perfect reference (error 0) gives
    +inf when MTL errs and 0 when it does not, rather than a division error.
    """
    if error < 0 or reference_error < 0:
        raise ValueError(f"errors must be >= 0, got {error} and {reference_error}")
    if reference_error == 0:
        return 0.0 if error == 0 else math.inf
    return (error - reference_error) / reference_error


def class_balance(labels: np.ndarray) -> float:
    """Fraction of the minority class among observed binary labels (0.5 balanced, near 0 skewed).

    NaN labels (missing) are ignored, as in training.
    """
    y = np.asarray(labels, dtype=float)
    y = y[~np.isnan(y)]
    if len(y) == 0:
        raise ValueError("class balance of no labels is undefined")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("class balance needs binary 0/1 labels")
    p = float(y.mean())
    return min(p, 1.0 - p)


def pearson(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Pearson's r and its two-sided p-value, NaN (not an error) where it is undefined.

    Undefined means fewer than 3 points or a constant variable; the report then says so in words.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": float("nan"), "p": float("nan"), "n": n}
    result = stats.pearsonr(x, y)
    return {"r": float(result.statistic), "p": float(result.pvalue), "n": n}


# --- retrieval ---


def split_galleries(listing_index: np.ndarray, n_listings: int, seed: int = 0) -> np.ndarray:
    """For gallery completion: which photos are in each listing's query half (boolean (P,)).

    Each listing with at least 2 photos gets a random floor(n/2) of its photos as the query half; the
    rest is the half it must be found by. Listings with one photo have no query half.
    """
    listing_index = np.asarray(listing_index)
    if len(listing_index) and (listing_index.min() < 0 or listing_index.max() >= n_listings):
        raise ValueError("listing_index has rows outside [0, n_listings)")
    rng = np.random.default_rng(seed)
    in_query = np.zeros(len(listing_index), dtype=bool)
    order = np.argsort(listing_index, kind="stable")
    sizes = np.bincount(listing_index, minlength=n_listings)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for listing in np.flatnonzero(sizes >= 2):
        rows = order[starts[listing]:starts[listing + 1]]
        in_query[rng.choice(rows, size=len(rows) // 2, replace=False)] = True
    return in_query


def gallery_completion_ranks(photo_embeddings: np.ndarray, listing_index: np.ndarray, n_listings: int,
                             in_query: np.ndarray, listings: np.ndarray | None = None) -> np.ndarray:
    """Rank (1 = best) of each listing's other half when it is queried with its query half.

    The query is the L2-normalised mean of the query-half photos; the candidates are every other
    listing's whole gallery and, for the listing itself, only its other half (its whole gallery would
    contain the query). Ties count against the listing (rank = 1 + candidates scoring >= it, others).
    ``listings``: which listings to query (default: every listing with a query half).
    """
    photo_embeddings = np.asarray(photo_embeddings, dtype=np.float32)
    listing_index, in_query = np.asarray(listing_index), np.asarray(in_query, dtype=bool)
    if not (len(photo_embeddings) == len(listing_index) == len(in_query)):
        raise ValueError("photo_embeddings, listing_index and in_query must have one row per photo")
    has_query = np.bincount(listing_index[in_query], minlength=n_listings) > 0
    has_rest = np.bincount(listing_index[~in_query], minlength=n_listings) > 0
    if listings is None:
        listings = np.flatnonzero(has_query & has_rest)
    listings = np.asarray(listings, dtype=np.int64)
    if not (has_query[listings] & has_rest[listings]).all():
        raise ValueError("every queried listing needs photos in both halves")
    whole = l2_normalise(group_mean(photo_embeddings, listing_index, n_listings))
    query = l2_normalise(group_mean(photo_embeddings[in_query], listing_index[in_query], n_listings)[listings])
    rest = l2_normalise(group_mean(photo_embeddings[~in_query], listing_index[~in_query], n_listings)[listings])
    return completion_ranks(query, rest, whole, listings)


def completion_ranks(query: np.ndarray, rest: np.ndarray, whole: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Gallery-completion rank of each query (1 = best): the ranking of ``gallery_completion_ranks``,
    also used with corrupted query halves (``robustness.robustness_metrics``).

    ``query``/``rest`` (Q, D): the queried listings' query and other halves; ``whole`` (L, D): every
    listing's whole gallery; ``own`` (Q,): each query's listing row, whose whole gallery is no candidate
    (it contains the query) and whose other half stands in for it. All L2-normalised. Ties count
    against the listing: rank = 1 + candidates scoring >= its other half.
    """
    own = np.asarray(own, dtype=np.int64)
    ranks = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), 1024):  # (chunk, L) similarities at a time
        q, rows = query[start:start + 1024], own[start:start + 1024]
        sims = q @ whole.T
        target = np.einsum("qd,qd->q", q, rest[start:start + 1024])
        sims[np.arange(len(rows)), rows] = -np.inf
        ranks[start:start + len(rows)] = 1 + (sims >= target[:, None]).sum(axis=1)
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose target ranks within the top k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = np.asarray(ranks)
    if len(ranks) == 0:
        raise ValueError("no ranks")
    return float((ranks <= k).mean())


def neighbours(embeddings: np.ndarray, k: int, queries: np.ndarray | None = None,
               chunk: int = 1024) -> np.ndarray:
    """Exact top-k rows by cosine similarity for each query row, the row itself left out -> (Q, k).

    ``embeddings`` L2-normalised (N, D); ``queries`` row numbers into it (default: all).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} items, got {k}")
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        rows = queries[start:start + chunk]
        sims = embeddings[rows] @ embeddings.T
        sims[np.arange(len(rows)), rows] = -np.inf
        out[start:start + len(rows)] = top_k(sims, k)
    return out


def attribute_precision_at_k(values: np.ndarray, neighbour_rows: np.ndarray,
                             queries: np.ndarray | None = None) -> dict[str, float]:
    """How often a listing's retrieved neighbours share its recorded value of one attribute.

    ``values`` (N,) object/float with NaN or None for missing; ``neighbour_rows`` (Q, k) from
    ``neighbours``. Queries without a value are skipped; neighbours without a value count as not
    agreeing (a user cannot see agreement that is not recorded). ``chance`` is the same precision
    for a random neighbour: the mean, over queries, of the fraction of other listings sharing the value.
    """
    values = np.asarray(values, dtype=object)
    neighbour_rows = np.asarray(neighbour_rows)
    queries = np.arange(len(neighbour_rows)) if queries is None else np.asarray(queries)
    if len(queries) != len(neighbour_rows):
        raise ValueError("one row of neighbours per query")
    missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values])
    keys = np.array(["" if m else str(v) for v, m in zip(values, missing, strict=True)], dtype=object)
    usable = ~missing[queries]
    if not usable.any():
        return {"precision": float("nan"), "chance": float("nan"), "n_queries": 0}
    q, rows = queries[usable], neighbour_rows[usable]
    agree = (keys[rows] == keys[q][:, None]) & ~missing[rows]
    uniques, counts = np.unique(keys[~missing], return_counts=True)
    count_of = dict(zip(uniques, counts, strict=True))
    same = np.array([count_of[keys[i]] - 1 for i in q], dtype=float)
    chance = same / (len(values) - 1)
    return {"precision": float(agree.mean()), "chance": float(chance.mean()), "n_queries": int(len(q))}


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of the exact top-k found by the approximate search (rows (Q, k) each).

    Each approximate row may be shorter than k (Annoy can return fewer); missing ones count as misses.
    """
    if len(approximate) != len(exact) or len(exact) == 0:
        raise ValueError("one approximate and one exact result per query, at least one query")
    recalls = []
    for approx_row, exact_row in zip(approximate, exact, strict=True):
        truth = set(np.asarray(exact_row).tolist())
        if not truth:
            raise ValueError("an exact result is empty")
        recalls.append(len(truth & set(np.asarray(approx_row).tolist())) / len(truth))
    return float(np.mean(recalls))


# --- the audit: a ranking against known flipped labels ---


def precision_recall_at_k(ranked_positive: np.ndarray, k: int, n_positive: int | None = None,
                          ) -> dict[str, float]:
    """Precision and recall of the top k of a ranking, given whether each ranked item is a true positive.

    ``ranked_positive`` (N,) bool, best first. ``n_positive``: the number of positives in all
    (default: those in the ranking) — larger when some positives could not be ranked at all.
    With fewer than k items, precision divides by the items there are.
    """
    ranked_positive = np.asarray(ranked_positive, dtype=bool)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    total = int(ranked_positive.sum()) if n_positive is None else int(n_positive)
    if total < ranked_positive.sum():
        raise ValueError(f"n_positive {total} is fewer than the positives in the ranking")
    top = ranked_positive[:k]
    hits = int(top.sum())
    return {"k": k, "hits": hits, "precision": hits / len(top) if len(top) else float("nan"),
            "recall": hits / total if total else float("nan")}


def average_precision(ranked_positive: np.ndarray, n_positive: int | None = None) -> float:
    """Mean of the precision at each true positive's rank (unranked positives count as 0).

    Not ``sklearn.metrics.average_precision_score``: that needs scores (and pools tied scores into one
    threshold) and cannot count the positives a ranking never reached, which ``n_positive`` does.
    """
    ranked_positive = np.asarray(ranked_positive, dtype=bool)
    total = int(ranked_positive.sum()) if n_positive is None else int(n_positive)
    if total == 0:
        return float("nan")
    ranks = np.flatnonzero(ranked_positive) + 1
    return float((np.arange(1, len(ranks) + 1) / ranks).sum() / total)


# --- representations ---


def participation_ratio(x: np.ndarray) -> float:
    """Effective number of dimensions of the rows of ``x`` (N, D): (sum of covariance eigenvalues)^2 /
    sum of their squares. D for isotropic data, 1 when all variance lies along one direction."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need a (N >= 2, D) matrix, got shape {x.shape}")
    centred = x - x.mean(axis=0)
    # The nonzero eigenvalues of the covariance are the squared singular values of the centred rows / (N - 1).
    eigenvalues = np.linalg.svd(centred, compute_uv=False) ** 2
    total = eigenvalues.sum()
    if total <= 0:
        raise ValueError("all rows are equal: no variance")
    return float(total ** 2 / (eigenvalues ** 2).sum())


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean of per-seed results with a Student-t interval (the seeds' spread; n = 1 gives no interval)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("no values")
    mean = float(values.mean())
    if len(values) < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(values)}
