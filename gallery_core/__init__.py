"""gallery-core: learn, explore and audit photo-gallery embeddings of a catalogue."""

__version__ = "0.1.0"
