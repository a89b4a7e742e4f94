"""The variational-autoencoder objective: a decoder from the photo embedding back to a small photo.

The visual-search paper trains a VAE beside attribute classification and triplet ranking so that the
embedding also keeps what a photo *looks* like (colours, layout), not only what its labels say. Here the
photo embedding itself is the mean of the latent Gaussian (so the KL term shapes the very space the
index searches, as the paper's shared bottleneck does); a linear layer gives its log-variance, and a
small transposed-convolution decoder reconstructs a ``vae_image_size`` thumbnail of the photo.

The decoder belongs to ``GalleryModel`` (``model.decoder``) so its weights travel in the checkpoint;
the thumbnails it learns to reproduce are decoded once and cached beside the trunk features.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gallery_core.artifacts.store import atomic_path, hash_key, write_json
from gallery_core.data.decode import load_photo

VAE_IMAGE_SIZES = (8, 16, 32, 64)


class VAEDecoder(nn.Module):
    """Embedding (P, D) -> log-variance (P, D) and, from a latent sample, a photo (P, 3, S, S) in [0, 1]."""

    def __init__(self, embed_dim: int, image_size: int = 32, width: int = 64):
        super().__init__()
        if image_size not in VAE_IMAGE_SIZES:
            raise ValueError(f"vae image_size must be one of {VAE_IMAGE_SIZES}, got {image_size}")
        self.image_size = image_size
        self.width = width
        self.log_var = nn.Linear(embed_dim, embed_dim)
        self.fc = nn.Linear(embed_dim, width * 4 * 4)
        layers: list[nn.Module] = []
        channels = width
        for _ in range(int(math.log2(image_size // 4)) - 1):  # 4 -> 8 -> ... -> image_size / 2
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1), nn.ReLU()]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, 3, 4, stride=2, padding=1), nn.Sigmoid()]  # -> image_size
        self.up = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(z)).view(-1, self.width, 4, 4)  # (P, width, 4, 4)
        return self.up(x)  # (P, 3, S, S)

    def forward(self, mu: torch.Tensor, sample: bool = True,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mu`` (P, D): the photo embeddings. Returns (reconstruction (P, 3, S, S), mu, log_var).

        ``sample`` draws z = mu + sigma * eps (the reparameterisation trick) from torch's global
        generator (seeded by training); without it z = mu, so validation losses are deterministic.
        """
        mu = mu.float()
        log_var = self.log_var(mu).clamp(-10.0, 10.0)  # (P, D); clamped so exp() cannot overflow
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu) if sample else mu
        return self.decode(z), mu, log_var


def kl_divergence(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over latent dimensions -> (P,)."""
    return 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1.0).sum(dim=-1)


def vae_loss(reconstruction: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
    """Negative ELBO per pixel value: mean over photos of (sum of squared errors + beta * KL) / (3 S S).

    The ELBO's own balance between reconstruction and KL is kept (beta = 1 is the plain VAE); dividing
    by the number of pixel values only puts it on the scale of the other tasks' mean losses, so the
    MTL weighting starts from comparable terms. ``target`` (P, 3, S, S) in [0, 1].
    """
    if reconstruction.shape[0] == 0:
        return reconstruction.sum() * 0.0
    n_values = reconstruction[0].numel()
    squared_error = (reconstruction.float() - target.float()).pow(2).flatten(1).sum(dim=1)  # (P,)
    return ((squared_error + beta * kl_divergence(mu, log_var)) / n_values).mean()


# --- the reconstruction targets: small clean thumbnails, decoded once ---

def thumbnail_array(paths: Sequence[str], size: int) -> np.ndarray:
    """Photos as uint8 (P, 3, size, size), resized bilinearly like the model's input."""
    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        out[i] = load_photo(path, size).transpose(2, 0, 1)
    return out


def cached_thumbnails(cache_dir: Path, paths: Sequence[str], size: int) -> np.ndarray:
    """``thumbnail_array`` through a file cache keyed on the photo paths and the size.

    Raises PhotoError if a photo cannot be decoded (training has already left those out).
    """
    key = hash_key("vae-thumbnails", list(paths), size)
    array_path, index_path = cache_dir / f"vae-targets-{key}.npy", cache_dir / f"vae-targets-{key}.json"
    if array_path.is_file() and index_path.is_file() and json.loads(index_path.read_text()).get("n") == len(paths):
        return np.load(array_path)
    thumbs = thumbnail_array(paths, size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(array_path) as tmp, open(tmp, "wb") as f:
        np.save(f, thumbs)
    write_json(index_path, {"n": len(paths), "size": size})
    return thumbs


def thumbnails_to_tensor(thumbs: np.ndarray) -> torch.Tensor:
    """uint8 (P, 3, S, S) -> float (P, 3, S, S) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(thumbs)).float().div_(255.0)
