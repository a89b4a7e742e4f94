"""A seed gallery for retrieval: catalogue photos (by photo_index) and uploaded photos (embedded).

The app keeps one ``SeedGallery`` per session; it belongs to one run (photo indices and upload
embeddings mean nothing in another run), and ``Run.seed_vector`` turns it into a query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

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
