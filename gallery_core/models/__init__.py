"""Networks: image backbones (a registry, one file per family), the gallery encoder with its task heads,
the VAE decoder; a model's checkpoint on disk and the device it runs on."""
