"""Gallery completion with post-hoc transforms of a run's photo embeddings: a lead for the retrieval space.

The evaluation's gallery completion (recall@10: a random half of a gallery must find its other half among
every listing) on the run's photo embeddings as built (raw), and after transforms fitted on the training
listings' photos alone: centring, per-dimension standardisation, and PCA whitening to 128 and 256
dimensions (Jegou & Chum 2012). The same for the pretrained backbone's features (ImageNet transfer), so a
gain can be told apart from a property of the backbone. Every transform is affine, so it commutes with the
gallery mean: a seed gallery would be transformed exactly as a listing is.

    python benchmarks/bench_retrieval_whitening.py --run artifacts/demo
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from gallery_core.artifacts.run import open_run
from gallery_core.evaluation.context import Context
from gallery_core.evaluation.metrics import gallery_completion_ranks, hit_rate_at_k, split_galleries

REPO = Path(__file__).resolve().parent.parent


def transforms(fit: np.ndarray, seed: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    mean, std = fit.mean(axis=0), fit.std(axis=0) + 1e-6
    out = {"raw": lambda x: x, "centred": lambda x: x - mean, "standardised": lambda x: (x - mean) / std}
    for k in (128, 256):
        if k < fit.shape[1]:
            pca = PCA(n_components=k, whiten=True, random_state=seed).fit(fit)
            out[f"pca-whitened {k}"] = pca.transform
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO / "artifacts" / "demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-every", type=int, default=4, help="fit on every n-th training photo (default 4)")
    args = parser.parse_args()
    run = open_run(args.run)
    ctx = Context(run=run, work_dir=REPO / ".tmp" / "bench-whitening", report_dir=REPO / ".tmp", progress=False)
    listing_index = np.array(run.photos["listing_index"], dtype=np.int64)
    n = len(run.listings)
    in_query = split_galleries(listing_index, n, seed=args.seed)  # the evaluation's halves
    is_train_photo = (run.listings["split"] == "train").to_numpy()[listing_index]
    spaces = {"product": np.array(run.photo_embeddings, dtype=np.float32),
              "imagenet": np.asarray(ctx.imagenet.photos, dtype=np.float32)}
    print(f"run {run.name}: {n} listings, {len(listing_index)} photos; gallery completion recall@10 "
          f"(chance {10 / n:.3f}); transforms fitted on every {args.fit_every}th training photo")
    print(f"{'transform':<20}" + "".join(f"{name:>12}" for name in spaces) + f"{'seconds':>10}")
    rows: dict[str, list[float]] = {}
    for x in spaces.values():
        for label, transform in transforms(x[is_train_photo][::args.fit_every], args.seed).items():
            started = time.perf_counter()
            ranks = gallery_completion_ranks(transform(x), listing_index, n, in_query)
            rows.setdefault(label, []).append(hit_rate_at_k(ranks, 10))
            rows[label].append(time.perf_counter() - started)
    for label, values in rows.items():
        recalls = values[0::2]
        print(f"{label:<20}" + "".join(f"{r:>12.3f}" for r in recalls) + f"{sum(values[1::2]):>10.1f}")


if __name__ == "__main__":
    main()
