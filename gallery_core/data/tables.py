"""Reading a catalogue's tables: listings and photos as text-typed tables, with messages that name the file,
the column and the rows of every problem (delimiter, encoding, blank or spaced ids)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gallery_core.errors import UsageError

logger = logging.getLogger(__name__)

MAX_ROWS_IN_MESSAGE = 5
# What other tools write for an empty cell. As listing ids they are kept as written, with a warning.
MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "nan", "null", "none"})


class CatalogueError(UsageError):
    """The catalogue cannot be used as it is; the message says what and where."""


def read_table(path: Path, exact_columns: tuple[str, ...], columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A table, with ``exact_columns`` as text exactly as written (a blank cell is '', 'NA' is 'NA').

    Other CSV columns follow pandas' defaults (empty cells and 'NA' are missing values). ``columns``: read
    only these when the table has them all (a large table's other columns never enter memory); when one
    is missing, everything is read, so that the message about it can list what is there."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # here: only Parquet tables need it

            wanted = None
            names = pq.read_schema(path).names
            _check_header(path, names)
            if columns is not None and set(columns) <= set(names):
                wanted = list(columns)
            table = pd.read_parquet(path, columns=wanted)
        except CatalogueError:
            raise
        except Exception as err:  # pyarrow raises many kinds for malformed files
            raise CatalogueError(f"{path}: cannot read table: {err}") from None
        for column in exact_columns:
            if column in table.columns:
                table[column] = as_text(table[column])
        return table

    text = _read_text(path)
    _check_delimiter(path, text.split("\n", 1)[0].rstrip("\r"))
    _check_header(path, next(csv.reader([text.split("\n", 1)[0].rstrip("\r")]), []))
    try:
        header = next(csv.reader([text.split("\n", 1)[0].rstrip("\r")]), [])
        usecols = list(columns) if columns is not None and set(columns) <= set(header) else None
        table = pd.read_csv(io.StringIO(text), dtype={"listing_id": str}, keep_default_na=True, usecols=usecols)
        exact = [c for c in exact_columns if c in table.columns]
        if exact:
            written = pd.read_csv(io.StringIO(text), usecols=exact, dtype=str, keep_default_na=False)
            for column in exact:
                table[column] = written[column]
    except pd.errors.EmptyDataError:
        raise CatalogueError(f"{path}: the file is empty (not even a header line)") from None
    except Exception as err:  # pandas raises many kinds for malformed files
        raise CatalogueError(f"{path}: cannot read table: {err}") from None
    return table


def _check_header(path: Path, names: list[str]) -> None:
    """Refuse a column name that appears twice: pandas would rename the second (``world_region.1``) and a
    later message would then name a column that seems missing instead of the duplicate."""
    first: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in first:
            raise CatalogueError(f"{path}: column {name!r} appears twice in the header (columns {first[name]} and "
                                 f"{position}); give each column its own name")
        first[name] = position


def written_values(path: Path, column: str) -> pd.Series:
    """A column's cells as the file writes them (for messages: ``1e999``, not ``np.float64(inf)``): a CSV's text
    as it is, a Parquet file's values as text. Rows in file order."""
    if path.suffix == ".parquet":
        return as_text(pd.read_parquet(path, columns=[column])[column])
    return pd.read_csv(io.StringIO(_read_text(path)), usecols=[column], dtype=str, keep_default_na=False)[column]


def _read_text(path: Path) -> str:
    """A CSV file's text (UTF-8, with or without a byte-order mark); other encodings are refused by line."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read table: {err}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")]), [])
        fields = next(csv.reader([data[line_start:err.start].decode("latin-1")]), [""])
        column = header[len(fields) - 1] if 0 < len(fields) <= len(header) else None
        where = ("the header line" if line == 1 else f"row {line - 1}") + \
            (f", column {column!r}" if column is not None and line > 1 else "")
        raise CatalogueError(f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at line {line} ({where}); "
                             "save the table as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)") from None


def _check_delimiter(path: Path, header: str) -> None:
    """Refuse a CSV whose header line is cut by semicolons or tabs instead of commas."""
    if "," in header:
        return
    for separator, name in ((";", "semicolon"), ("\t", "tab")):
        if separator in header:
            raise CatalogueError(f"{path}: looks {name}-separated (header line {header[:120]!r}); tables are read "
                                 "as comma-separated CSV: save it with ',' between columns and '.' as the "
                                 "decimal point")


def as_text(values: pd.Series) -> pd.Series:
    """Ids as text: numbers without a trailing '.0' (a Parquet int column with gaps is float), missing as ''."""
    def one(value: object) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)

    return pd.Series([one(v) for v in values], index=values.index, dtype=str)


def columns_text(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns))


def rows_text(mask: np.ndarray | pd.Series, table: pd.DataFrame, column: str) -> str:
    """'row 3 (L001): 'x', ...' for the first offending rows; row numbers count data rows from 1."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = [f"row {p + 1} ({table['listing_id'].iloc[p]}): {table[column].iloc[p]!r}"
             for p in positions[:MAX_ROWS_IN_MESSAGE]]
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return "; ".join(shown) + more


def values_text(mask: np.ndarray | pd.Series, table: pd.DataFrame, column: str) -> str:
    """'row 3: ' x'; row 7: 'y'' for the first offending rows (data rows counted from 1)."""
    positions = np.flatnonzero(np.asarray(mask))
    shown = [f"row {p + 1}: {table[column].iloc[p]!r}" for p in positions[:MAX_ROWS_IN_MESSAGE]]
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return "; ".join(shown) + more


def row_numbers(mask: np.ndarray | pd.Series) -> str:
    positions = np.flatnonzero(np.asarray(mask)) + 1
    shown = ", ".join(map(str, positions[:MAX_ROWS_IN_MESSAGE]))
    more = f" and {len(positions) - MAX_ROWS_IN_MESSAGE} more" if len(positions) > MAX_ROWS_IN_MESSAGE else ""
    return ("row " if len(positions) == 1 else "rows ") + shown + more


def require_column(table: pd.DataFrame, column: str, path: Path) -> None:
    if column in table.columns:
        return
    spaced = [c for c in map(str, table.columns) if c.strip() == column]
    hint = (f"; {spaced[0]!r} has spaces around its name (was it written with ', ' between columns?)"
            if spaced else "")
    if len(table.columns) == 1:  # one column whose name holds the others: another delimiter
        for separator, name in ((";", "semicolon"), ("\t", "tab")):
            if separator in str(table.columns[0]):
                hint = f"; it looks {name}-separated: save it with ',' between columns"
    raise CatalogueError(f"{path}: no {column!r} column (columns: {columns_text(table)}){hint}")


def check_ids(table: pd.DataFrame, path: Path) -> None:
    """Blank ids and ids with spaces around them are refused; ids that read like a missing value are
    kept (they are what the file says) with a warning."""
    ids = table["listing_id"]
    stripped = ids.str.strip()
    blank = (stripped == "").to_numpy()
    if blank.any():
        raise CatalogueError(f"{path}: column 'listing_id' is blank at {row_numbers(blank)}; every row needs "
                             "a listing id")
    # Kept exactly as written, ' L1' and 'L1' would be two listings (and a folder name that some systems
    # trim): spaces around an id are refused rather than trimmed silently into another id.
    spaced = (ids != stripped).to_numpy()
    if spaced.any():
        hint = (" (was the table written with ', ' between columns?)" if spaced.mean() > 0.5 else "")
        raise CatalogueError(f"{path}: column 'listing_id' has spaces around the id at {values_text(spaced, table, 'listing_id')}"
                             f"; ids are used exactly as written, so remove the spaces{hint}")
    markers = ids.str.lower().isin(MISSING_MARKERS).to_numpy()
    if markers.any():
        logger.warning(f"{path}: column 'listing_id' at {values_text(markers, table, 'listing_id')}: taken as the "
                       "listing id written there, not as a missing value")


def find_table(root: Path, stem: str, required: bool) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = root / f"{stem}{suffix}"
        if path.is_file():
            return path
    if required:
        raise CatalogueError(f"{root}: no {stem}.csv or {stem}.parquet found")
    return None
