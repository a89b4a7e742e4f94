"""A run's folder: atomic writes, the manifest, opening a built run and checking it."""
