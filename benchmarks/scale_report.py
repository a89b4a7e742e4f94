"""The scale benchmark's report (``bench_scale.py``): the Markdown document, its slopes and extrapolations,
the merging of an earlier results file (``--merge``) and the log-log plot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scale_synthetic import AFTER_EMBED, PHOTO_STEPS, STEPS, TRUNK_JITTER, VARIANTS

from gallery_core.artifacts.store import atomic_path
from gallery_core.errors import UsageError

PAPER_LISTINGS = 520_000  # the gallery-encoder paper's catalogue: 520k listings, ~10M photos
TARGET_PHOTOS = 10_000_000
RSS_BUDGET_GB = 8.0
OPEN_BUDGET_S = 3.0
COMMAND = "python benchmarks/bench_scale.py"


def power_law(sizes: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """(slope, intercept) of log(value) = slope * log(size) + intercept; None with fewer than 2 sizes."""
    ok = (values > 0) & np.isfinite(values)
    if len(np.unique(sizes[ok])) < 2:
        return None
    slope, intercept = np.polyfit(np.log(sizes[ok]), np.log(values[ok]), 1)
    return float(slope), float(intercept)


def scaling_table(rows: pd.DataFrame, photos_per_listing: float) -> pd.DataFrame:
    """Per step and variant: slope of time and of peak memory against listings, extrapolated to the paper's
    520k listings and to 10M photos at this benchmark's photos per listing. A step and variant measured at
    one size only has no slope and is left out."""
    targets = {"paper": PAPER_LISTINGS, "10M photos": TARGET_PHOTOS / photos_per_listing}
    out = []
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        if group["listings"].nunique() < 2:
            continue
        entry: dict[str, Any] = {"step": step, "variant": variant}
        for measure_name, column in (("time", "step_seconds"), ("anon memory", "peak_anon_gb")):
            fit = power_law(group["listings"].to_numpy(float), group[column].to_numpy(float))
            entry[f"{measure_name} slope"] = None if fit is None else round(fit[0], 2)
            for target_name, target in targets.items():
                unit = "s" if measure_name == "time" else "GB"
                entry[f"{measure_name} at {target_name} ({unit})"] = None if fit is None else \
                    float(np.exp(fit[1]) * target ** fit[0])
        out.append(entry)
    return pd.DataFrame(out)


def read_previous(path: Path, photos_per_listing: int) -> dict[str, Any]:
    """An earlier results file to merge (``--merge``), checked before anything is measured."""
    try:
        previous = json.loads(path.read_text())
        rows = previous["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--merge {path}: not a results file of this benchmark ({type(err).__name__}: {err})") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"listings", "step", "variant"} <= set(row):
            raise UsageError(f"--merge {path}: row {i} lacks listings, step or variant")
    if previous.get("photos_per_listing") != photos_per_listing:
        raise UsageError(f"--merge {path}: measured at {previous.get('photos_per_listing')} photos per listing, this "
                         f"invocation at {photos_per_listing}; give the same --photos-per-listing")
    return previous


def merge_rows(rows: list[dict[str, Any]], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """This invocation's rows and the earlier file's rows whose (listings, step, variant) it did not measure,
    in the order of the table; an earlier row without a ``measured`` field gets the earlier file's date and
    note."""
    date = re.search(r"\d{4}-\d{2}-\d{2}", previous.get("machine", ""))
    earlier = f"{date.group(0) if date else 'an earlier date'}: {previous.get('note', 'an earlier invocation')}"
    measured = {(r["listings"], r["step"], r["variant"]) for r in rows}
    kept = [{"measured": earlier} | row for row in previous["rows"]
            if (row["listings"], row["step"], row["variant"]) not in measured]
    order = {step: i for i, step in enumerate(STEPS)} | {variant: i for i, variant in enumerate(VARIANTS)}
    return sorted(kept + rows, key=lambda r: (r["listings"], order.get(r["step"], 99), order.get(r["variant"], 99)))


def first_value(frame: pd.DataFrame, column: str) -> float | None:
    """The column's first value, None where there is no row or no value (a row merged from an earlier file
    may lack a column)."""
    if not len(frame) or column not in frame or pd.isna(frame[column].iloc[0]):
        return None
    return float(frame[column].iloc[0])


def _number(value: Any, fmt: str = "{:,.1f}") -> str:
    return "_(to be measured)_" if value is None or pd.isna(value) else fmt.format(value)


def after_embed_lines(rows: pd.DataFrame | None) -> list[str]:
    """The steps after embed at the largest size they were measured at, against the issue's budgets (memory,
    the app's first page); ``rows`` None: placeholders."""
    after = rows[(rows["variant"] == "streaming") & rows["step"].isin(AFTER_EMBED)] if rows is not None else None
    if after is not None and not len(after):
        return ["- The steps after embed: not measured by these invocations."]
    largest = after["listings"].max() if after is not None else None
    at_largest = after[after["listings"] == largest] if after is not None else pd.DataFrame()
    peak = at_largest["peak_anon_gb"].max() if len(at_largest) else None
    peak_rss = at_largest["peak_rss_gb"].max() if len(at_largest) else None
    open_row = at_largest[at_largest["step"] == "open"] if len(at_largest) else pd.DataFrame()
    render, hashed = (first_value(open_row, column) for column in ("render_seconds", "files_hashed"))
    verdict_memory = "" if peak is None else (" (under" if peak < RSS_BUDGET_GB else " (NOT under") + \
        f" the {RSS_BUDGET_GB:.0f} GB budget)"
    verdict_open = "" if render is None else (" (under" if render < OPEN_BUDGET_S else " (NOT under") + \
        f" the {OPEN_BUDGET_S:.0f} s budget)"
    return [f"- {_number(largest, '{:,}')} listings: the largest peak anonymous memory of a step after embed is "
            f"{_number(peak, '{:.2f}')} GB{verdict_memory}; the largest peak RSS counting mapped file pages "
            f"{_number(peak_rss, '{:.2f}')} GB.",
            f"- The app's first page (Overview, server side, right after the build: the run's check, opening "
            f"it, rendering) takes {_number(render, '{:.2f}')} s{verdict_open}, hashing "
            f"{_number(hashed, '{:.0f}')} files: the build's hashes are trusted through the run's checksum cache "
            "(sizes and mtimes), and full checksums are computed once per build or on demand "
            "(`check_run(root, 'full')`)."]


def photo_step_lines(rows: pd.DataFrame | None) -> list[str]:
    """The trunk pass, training and embed at the largest size they were measured at: peak anonymous memory of
    both variants; ``rows`` None: placeholders."""
    photo = rows[rows["step"].isin(PHOTO_STEPS)] if rows is not None else None
    if photo is not None and not len(photo):
        return ["- The trunk pass, training and embed: not measured by these invocations.", ""]
    largest = photo["listings"].max() if photo is not None else None
    lines = []
    for step in PHOTO_STEPS:
        at = photo[(photo["listings"] == largest) & (photo["step"] == step)] if photo is not None else pd.DataFrame()
        anon = {variant: at.loc[at["variant"] == variant, "peak_anon_gb"].max() if len(at) else None
                for variant in VARIANTS}
        lines.append(f"- {_number(largest, '{:,}')} listings, `{step}`: peak anonymous memory "
                     f"{_number(anon['streaming'], '{:.2f}')} GB streaming, "
                     f"{_number(anon['in-memory'], '{:.2f}')} GB in memory.")
    return lines + [""]


def markdown_report(results: dict[str, Any] | None) -> str:
    """The document; with ``results`` None, the same prose with placeholders where the numbers go."""
    rows = pd.DataFrame(results["rows"]) if results else pd.DataFrame()
    p = results["photos_per_listing"] if results else None
    photo = results.get("photo_config", {}) if results else {}
    lines = ["# Scale benchmark: every step of the build, and opening the run, at 10k to 500k listings", "",
             f"Made by `{COMMAND}` (the module docstring says what is measured and how), in the invocations "
             "listed under the table. " + (f"Machine: {results['machine']}." if results else
                                          "Machine: _(to be measured)_"), "",
             "**What is synthetic.** The runs are made from the demo run's listings (repeated with new ids: real "
             f"labels and tasks), at most {_number(p, '{:d}')} photos per listing. *Trunk pass*: real photos, "
             "the demo catalogue's JPEG files (repeated across the synthetic listings), decoded and run through "
             f"the frozen trunk of the demo run's backbone ({photo.get('backbone', '_(to be measured)_')}, "
             f"{_number(photo.get('image_size'), '{:d}')} px). *Training and embed*: no photo is decoded (decoding "
             "every photo again would dominate them; the trunk rows show what that costs): the demo run's cached "
             f"trunk features, repeated to the synthetic photos and jittered ({TRUNK_JITTER:.0%} of their standard deviation), "
             "written in the cache format under the key training looks up. Training runs exactly one epoch "
             "(`max_epochs` 1: one training and one validation pass over the listings, no early stop), so "
             "every size does the same work per listing. *Steps after embed*: the demo run's photo embeddings "
             "(jittered), written chunk by chunk into memory-mapped `.npy` files; they read only these files, "
             "so they see what a real catalogue of that size would give them.", "",
             "**Columns.** `wall` is the subprocess (Python start-up and imports included); `step` the step "
             "itself; `peak RSS` the kernel's high-water mark (`VmHWM`), which also counts the pages of files a "
             "step maps (Annoy's index file during the index step's on-disk build; the steps read their large "
             "files with plain reads, `NpyRows`, whose pages stay out of the process); `peak anon` the anonymous "
             "memory polled every 20 ms, what the step really needs; `run` the invocation that measured the row. "
             "For `open`, `step` is the first render of the Overview page in a fresh process whose app modules "
             "are already imported, as in a started server (the run's check, opening it, the page). "
             "`streaming` is the product's path; `in-memory` the path of before issue 12, run only where it "
             "fits: the trunk pass's features gathered in one array and saved with `np.save`; training and embed "
             "with the whole trunk cache in memory (embed computing every photo embedding in one array); arrays "
             "read whole, Annoy built in memory then saved, UMAP on every point, probes trained on every "
             "labelled listing, every file hashed when the app starts. The product keeps trunk caches under "
             "2 GiB in memory and those measured here are smaller, so the streaming training child lowers that "
             "threshold (`TRUNK_IN_MEMORY_MAX_BYTES`) to 0 to measure its path for large caches (rows read from the "
             "cache file per batch). The streaming index, project and predict are the build's own steps.", ""]
    if results:
        # numbered in date order (labels start with the date)
        runs = {label: i + 1 for i, label in enumerate(sorted(pd.unique(rows["measured"])))}
        table = rows.assign(run=rows["measured"].map(runs))[
            ["listings", "photos", "step", "variant", "wall_seconds", "step_seconds", "peak_rss_gb", "peak_anon_gb",
             "run"]].rename(columns={"wall_seconds": "wall (s)", "step_seconds": "step (s)",
                                     "peak_rss_gb": "peak RSS (GB)", "peak_anon_gb": "peak anon (GB)"})
        lines += ["## Time and memory per step", "", table.to_markdown(index=False, floatfmt=".2f", intfmt=","), "",
                  "Runs:", ""] + [f"{i}. {label}" for label, i in runs.items()] + [""]
    else:
        lines += ["## Time and memory per step", "", "_(to be measured)_", ""]
    lines += ["## At the largest size", "",
              f"The issue's {RSS_BUDGET_GB:.0f} GB budget is for the steps after embed at 500k listings; the trunk "
              "pass, training and embed are measured at 10k and 50k.", ""]
    lines += after_embed_lines(rows if results else None) + photo_step_lines(rows if results else None)
    lines += ["## Slope and extrapolation", "",
              "A power law `value = a * listings^slope` fitted per step over the sizes measured (slope 1: linear). "
              f"Extrapolated to the paper's catalogue ({PAPER_LISTINGS:,} listings, ~10M photos) and to "
              f"{TARGET_PHOTOS:,} photos at this benchmark's {_number(p, '{:d}')} photos per listing "
              "(more listings; the trunk pass, training, embed and predict read photos in proportion). "
              "Extrapolations beyond the sizes measured are estimates, not measurements; the trunk pass, training "
              "and embed are fitted through their two sizes only; a step measured at one size only is left out.", ""]
    slopes = scaling_table(rows, p) if results else pd.DataFrame()
    if len(slopes):
        lines += [slopes.to_markdown(index=False, floatfmt=".2f"), ""]
    elif results:
        lines += ["_(every step was measured at one size only: no slope)_", ""]
    else:
        lines += ["_(to be measured)_", ""]
    lines += ["![time and peak anonymous memory against listings](scale.png)", ""]
    return "\n".join(lines)


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for (step, variant), group in rows.groupby(["step", "variant"], sort=False):
        style = "-o" if variant == "streaming" else "--x"
        axes[0].plot(group["listings"], group["step_seconds"], style, label=f"{step} ({variant})")
        axes[1].plot(group["listings"], group["peak_anon_gb"], style, label=f"{step} ({variant})")
    for axis, label in zip(axes, ("time of the step (s)", "peak anonymous memory (GB)"), strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("listings")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].axhline(RSS_BUDGET_GB, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=6, ncol=2)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)

