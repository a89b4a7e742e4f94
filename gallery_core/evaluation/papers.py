"""The papers' own numbers, each defined once: the report's tables and sentences quote them from here.

Nothing else in the evaluation is a constant about the results: every verdict reads the section's
numbers and says whether they agree with these.
"""

from __future__ import annotations

# --- the gallery-encoder paper ---

# Table 2: hold-out star rating with all 250k labelled listings, accuracy of each method.
PAPER_TABLE2_FULL: dict[str, float] = {"mtl": 0.623, "end_to_end": 0.583, "imagenet": 0.534}
PAPER_TABLE2_LISTINGS = 250_000
PAPER_TABLE2_ORDER: tuple[str, ...] = ("mtl", "end_to_end", "imagenet")  # best first
# Table 2: the end-to-end model first matches the MTL embeddings' accuracy at 20% of the data when it
# has 60% of it.
PAPER_CATCH_UP: dict[str, float] = {"mtl": 0.2, "end_to_end": 0.6}
# Section 4.2: pseudo-uniform weighting had the better metric than uncertainty weighting on 22 of 31 tasks.
PAPER_PU_BETTER: tuple[int, int] = (22, 31)
# Figure 5: most binary tasks lose at most this relative error increase against single-task models.
PAPER_WITHIN = 0.05
# Figure 6: Pearson's r of class balance against relative error increase, per weighting, with p below this.
PAPER_PEARSON: dict[str, float] = {"pseudo_uniform": 0.78, "uncertainty": 0.80}
PAPER_PEARSON_P = 0.001

# --- the reseller (visual-search) paper ---

# All three objectives against the best single-task model: +4% relative.
RESELLER_ALL_OBJECTIVES_GAIN = 0.04

