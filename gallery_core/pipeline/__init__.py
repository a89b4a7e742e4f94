"""The build: train -> embed -> index -> project -> predict, each step skipped when its inputs are unchanged."""
