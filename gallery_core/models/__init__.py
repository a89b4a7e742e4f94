"""Networks: image backbones, the gallery encoder with its task heads, the VAE decoder."""
