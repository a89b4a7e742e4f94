"""The multi-task training loop and what it draws on: augmentation, triplet mining."""
