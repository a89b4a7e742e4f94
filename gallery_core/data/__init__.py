"""The catalogue's inputs: listings and photos tables, task specs, photo decoding, corruptions, uploads."""
