"""What the Map page's WebGL scatter receives: binary columns in one framed payload.

The browser component (``ui/components/scatter``, ``src/payload.js`` reads this format) keeps every blob it
receives under a content key, so each blob goes over once per browser session: the coordinates once per
run, a colour column once per colour option, a visibility mask once per filter, a selection once. A
payload names the blobs the map needs now and carries only those the browser does not hold yet
(``encode_payload``'s ``held``). Format: ``b"GCS1"``, the header's length (uint32 little-endian), the header
as UTF-8 JSON, then each blob 8-byte aligned, raw little-endian values.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from plotly.colors import hex_to_rgb, sequential

from gallery_core.app.explore import MISSING_LABEL, MapColour, format_value
from gallery_core.app.figures import GREY, GREY_LEVELS, PALETTE, legend_levels

MAGIC = b"GCS1"
ALIGN = 8
DTYPES = {"float32": np.float32, "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32}
GREY_RGB = list(hex_to_rgb(GREY))
SCALE = [[i / (len(sequential.Viridis) - 1), list(hex_to_rgb(c))] for i, c in enumerate(sequential.Viridis)]


@dataclass(frozen=True)
class Blob:
    """A binary column, named by its content."""

    key: str
    array: np.ndarray

    @staticmethod
    def of(array: np.ndarray) -> Blob:
        array = np.ascontiguousarray(array)
        if array.dtype.name not in DTYPES:
            raise ValueError(f"a scatter blob must be one of {sorted(DTYPES)}, not {array.dtype}")
        digest = hashlib.blake2b(digest_size=12)
        digest.update(f"{array.dtype.name}{array.shape}".encode())
        digest.update(array.data)
        return Blob(digest.hexdigest(), array)


@dataclass(frozen=True)
class ColourColumn:
    """A colour option as the scatter draws it: ``spec`` (JSON: kind, legend or scale, counts) and the values
    blob (uint8/uint16 legend codes for categories, float32 for numbers with NaN for missing)."""

    spec: dict[str, Any]
    blob: Blob


def _rgb(colour: str) -> list[int]:
    return list(hex_to_rgb(colour)) if colour.startswith("#") else [int(float(c)) for c in colour[4:-1].split(",")]


def colour_column(colour: MapColour) -> ColourColumn:
    """The column and legend of a map colour, with the colours plotly's map used: the same legend order and
    palette for categories (missing and "(other)" grey), Viridis over the values' range for numbers."""
    base = {"label": colour.label, "missing_colour": GREY_RGB, "missing_label": MISSING_LABEL}
    if colour.categorical:
        labels = np.asarray(colour.categories, dtype=object)
        counts = pd.Series(labels).value_counts()
        levels = legend_levels(counts.index)
        codes = pd.Categorical(labels, categories=levels).codes  # every label is a level: no -1
        dtype = np.uint8 if len(levels) <= 256 else np.uint16
        legend = [{"label": str(level), "count": int(counts[level]),
                   "colour": GREY_RGB if level in GREY_LEVELS else _rgb(PALETTE[i % len(PALETTE)])}
                  for i, level in enumerate(levels)]
        blob = Blob.of(codes.astype(dtype))
        return ColourColumn({**base, "kind": "category", "legend": legend, "key": blob.key}, blob)
    numbers = np.asarray(colour.numbers, dtype=np.float32)
    known = ~np.isnan(numbers)
    lo, hi = (float(numbers[known].min()), float(numbers[known].max())) if known.any() else (0.0, 1.0)
    blob = Blob.of(numbers)
    return ColourColumn({**base, "kind": "number", "scale": SCALE, "domain": [lo, hi],
                         "domain_text": [format_value(lo), format_value(hi)], "missing": int((~known).sum()),
                         "key": blob.key}, blob)


def coordinates_blob(x: np.ndarray, y: np.ndarray) -> Blob:
    """Every listing's map position, float32 x, y interleaved ((N, 2): what the scatter's GPU buffer holds)."""
    return Blob.of(np.stack([np.asarray(x, np.float32), np.asarray(y, np.float32)], axis=1))


def bits_blob(mask: np.ndarray) -> Blob:
    """A boolean per row, 8 rows a byte (``np.packbits``: the first row in the high bit)."""
    return Blob.of(np.packbits(np.asarray(mask, dtype=bool)))


@dataclass(frozen=True)
class MapPayload:
    """Everything the scatter draws: coordinates, colour, visibility (None: every listing) and selection
    (None: nothing selected), with how many are selected and a note for its status line."""

    coordinates: Blob
    colour: ColourColumn
    mask: Blob | None = None
    selection: Blob | None = None
    n_selected: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.coordinates.array.shape[0])

    def blobs(self) -> list[Blob]:
        return [b for b in (self.coordinates, self.colour.blob, self.mask, self.selection) if b is not None]


def encode_payload(payload: MapPayload, held: Iterable[str] = ()) -> tuple[bytes, list[str]]:
    """The framed bytes of ``payload`` without the blobs whose keys are in ``held``, and the keys sent."""
    held = set(held)
    sending = [b for b in payload.blobs() if b.key not in held]
    header = {"n": payload.n, "coords": payload.coordinates.key, "colour": payload.colour.spec,
              "mask": None if payload.mask is None else payload.mask.key,
              "selection": None if payload.selection is None else payload.selection.key,
              "selected": payload.n_selected, "note": payload.note, **payload.extra, "blobs": []}
    # offsets depend on the header's length, which depends on the offsets: lay out with room to spare
    layout = [{"key": b.key, "dtype": b.array.dtype.name, "offset": 0, "length": int(b.array.size)} for b in sending]
    header["blobs"] = layout
    start = _align(8 + len(json.dumps(header).encode()) + 16 * max(1, len(layout)))
    offset = start
    for entry, blob in zip(layout, sending, strict=True):
        entry["offset"] = offset
        offset = _align(offset + blob.array.nbytes)
    text = json.dumps(header).encode()
    if 8 + len(text) > start:
        raise AssertionError("scatter payload: the header outgrew its room")
    out = bytearray(offset)
    out[:8] = MAGIC + struct.pack("<I", len(text))
    out[8:8 + len(text)] = text
    for entry, blob in zip(layout, sending, strict=True):
        out[entry["offset"]:entry["offset"] + blob.array.nbytes] = blob.array.astype(blob.array.dtype.newbyteorder("<"),
                                                                                    copy=False).tobytes()
    return bytes(out), [b.key for b in sending]


def decode_payload(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the blobs (flat arrays, by key) of a payload: what the browser reads (tests, benchmarks)."""
    if data[:4] != MAGIC:
        raise ValueError(f"not a scatter payload: {data[:4]!r}")
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + length])
    blobs = {entry["key"]: np.frombuffer(data, dtype=np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<"),
                                         count=entry["length"], offset=entry["offset"])
             for entry in header["blobs"]}
    return header, blobs


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def header_keys(header: Mapping[str, Any]) -> list[str]:
    """The blob keys a payload's header needs (held or sent)."""
    return [k for k in (header["coords"], header["colour"]["key"], header["mask"], header["selection"]) if k]
