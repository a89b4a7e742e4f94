"""New photos (files or uploaded bytes) through a trained encoder: what ``retrieve``, ``search-photo`` and the
app's uploads embed (``artifacts.run.Run.embed_uploads``).

On a CUDA encoder the photos are decoded on it as the trunk pass decodes them (``engine.device_decode``: JPEGs by
nvJPEG in batches read ahead on CPU threads, what it cannot take by the CPU decoder, both counted in the log), so
a query of many seed photos is not held up by PIL; elsewhere by the CPU decoder (``data.decode.load_photo``), one
by one as before. Either way a photo that cannot be decoded raises the CPU decoder's ``PhotoError``: the first
bad one in order, with its message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gallery_core.data.decode import load_photo
from gallery_core.data.photos import decode_threads, to_model_input
from gallery_core.engine.device_decode import decode_read_batch, log_decode_counts, pin_host, read_batch
from gallery_core.engine.prefetch import prefetch
from gallery_core.models.encoder import GalleryEncoder

# Photos per model batch on the device: a retrieval query has a few, a scripted one may have thousands.
PHOTO_BATCH = 64


@torch.no_grad()
def embed_photo_files(encoder: GalleryEncoder, photos: Sequence[str | Path | bytes], image_size: int,
                      device: torch.device | None = None, decode_on_device: bool | None = None,
                      batch_size: int = PHOTO_BATCH) -> np.ndarray:
    """Embed photos given as files or bytes (e.g. uploads) -> (P, D) float32. Raises PhotoError on a bad one.

    ``device``: where the encoder is (default: where its weights are). ``decode_on_device``: decode the JPEGs on
    it (None: when it is a GPU; True on the CPU device runs the GPU's code there, as the tests do).
    """
    device = device or next(encoder.parameters()).device
    encoder.eval()
    if not (device.type == "cuda" if decode_on_device is None else decode_on_device):
        pixels = np.stack([load_photo(p, image_size) for p in photos])  # (P, S, S, 3)
        return encoder.embed_photos(to_model_input(pixels, encoder.backbone).to(device)).float().cpu().numpy()
    counts: Counter = Counter()
    chunks = [np.zeros((0, encoder.embed_dim), np.float32)]
    with ThreadPoolExecutor(max_workers=decode_threads(device)) as pool:
        batches = [photos[start:start + batch_size] for start in range(0, len(photos), batch_size)]
        for batch in prefetch(batches, lambda b: read_batch(b, image_size, pool, pin_host(device))):
            x, errors = decode_read_batch(batch, image_size, device, encoder.backbone.mean, encoder.backbone.std,
                                          counts)  # (G, 3, S, S)
            if errors:
                raise errors[min(errors)]
            chunks.append(encoder.embed_photos(x).float().cpu().numpy())
    log_decode_counts(counts, device)
    return np.concatenate(chunks)
