"""Retrieval: vector primitives, the Annoy index, seed galleries and single-photo search."""
