"""A seed gallery for retrieval: catalogue photos (by photo_index) and uploaded photos (embedded).

The app keeps one ``SeedGallery`` per session; it belongs to one run (photo indices and upload
embeddings mean nothing in another run), and ``Run.seed_vector`` turns it into a query. Its seed photos
are numbered in one order everywhere (catalogue photos as added, then uploads): the query's, the tray's
and the explanations' (``search.explain.seed_photos``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gallery_core.errors import UsageError

MAX_SEED_PHOTOS = 50


class SeedLimitError(UsageError):
    """The seed gallery is full."""


@dataclass(frozen=True)
class UploadedSeed:
    name: str
    thumbnail: bytes
    embedding: np.ndarray  # (D,) from the run's trained encoder


@dataclass
class SeedGallery:
    run_root: str
    photo_indices: list[int] = field(default_factory=list)
    uploads: dict[str, UploadedSeed] = field(default_factory=dict)  # content digest -> seed

    def __len__(self) -> int:
        return len(self.photo_indices) + len(self.uploads)

    @property
    def is_empty(self) -> bool:
        return len(self) == 0

    def _check_room(self, n_new: int) -> None:
        if len(self) + n_new > MAX_SEED_PHOTOS:
            raise SeedLimitError(f"a seed gallery holds at most {MAX_SEED_PHOTOS} photos; remove some first")

    def add_photos(self, photo_indices: Iterable[int]) -> int:
        """Add catalogue photos (those already present are skipped); returns how many were added."""
        new = [int(i) for i in dict.fromkeys(photo_indices) if int(i) not in self.photo_indices]
        self._check_room(len(new))
        self.photo_indices.extend(new)
        return len(new)

    def add_upload(self, digest: str, seed: UploadedSeed) -> bool:
        if digest in self.uploads:
            return False
        self._check_room(1)
        self.uploads[digest] = seed
        return True

    def remove_photo(self, photo_index: int) -> None:
        self.photo_indices = [i for i in self.photo_indices if i != photo_index]

    def remove_upload(self, digest: str) -> None:
        self.uploads.pop(digest, None)

    def clear(self) -> None:
        self.photo_indices.clear()
        self.uploads.clear()

    def upload_embeddings(self) -> np.ndarray | None:
        if not self.uploads:
            return None
        return np.stack([seed.embedding for seed in self.uploads.values()]).astype(np.float32)

    def upload_names(self) -> list[str]:
        """The uploads' file names, in the order of ``upload_embeddings``."""
        return [seed.name for seed in self.uploads.values()]

    def replace_with_paths(self, photo_paths: Sequence[str], photos: pd.DataFrame) -> list[str]:
        """Make the gallery these catalogue photos (a seed gallery handed over by another page), in order.
        ``photos``: the run's photo table (photo_index, path). Returns what could not be taken, as messages:
        paths that are not photos of this run, and photos beyond ``MAX_SEED_PHOTOS``."""
        wanted = [str(p) for p in photo_paths]
        found = photos[photos["path"].isin(set(wanted))]  # one vectorised pass, not a dict of every photo
        index_of_path = dict(zip(found["path"].astype(str), found["photo_index"], strict=True))
        known = [int(index_of_path[p]) for p in wanted if p in index_of_path]
        unknown = [p for p in wanted if p not in index_of_path]
        known = list(dict.fromkeys(known))
        self.clear()
        self.photo_indices.extend(known[:MAX_SEED_PHOTOS])
        problems = []
        if unknown:
            problems.append(f"{len(unknown)} photo(s) are not in this run's catalogue and were left out, e.g. "
                            f"{unknown[0]}")
        if len(known) > MAX_SEED_PHOTOS:
            problems.append(f"a seed gallery holds at most {MAX_SEED_PHOTOS} photos: the first {MAX_SEED_PHOTOS} of "
                            f"{len(known)} were taken")
        return problems


def random_listing_photos(listings: pd.DataFrame, rng: np.random.Generator) -> list[int]:
    """Photo indices of one listing picked at random (at most ``MAX_SEED_PHOTOS``): example seeds for a page
    that would otherwise open empty. ``listings``: the run's listing table (first_photo, n_photos)."""
    with_photos = np.flatnonzero(listings["n_photos"].to_numpy() > 0)
    if len(with_photos) == 0:
        return []
    row = listings.iloc[int(rng.choice(with_photos))]
    first, n = int(row["first_photo"]), min(int(row["n_photos"]), MAX_SEED_PHOTOS)
    return list(range(first, first + n))
