"""Two catalogue messages that used to mislead: a column name written twice (pandas renamed the second to
``world_region.1``, and the error then named a column that seemed missing) and a regression value that is
a number but not a finite one (called "non-numeric", shown as ``np.float64(inf)``)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gallery_core.data.catalogue import CatalogueError, load_catalogue


def _replace_line(path, line: int, old: str, new: str) -> None:
    lines = path.read_text().split("\n")
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new, 1)
    path.write_text("\n".join(lines))


def test_a_column_written_twice_is_named(catalogue_copy):
    path = catalogue_copy / "listings.csv"
    _replace_line(path, 0, ",chain,", ",world_region,")  # columns 2 and 7 are both world_region
    with pytest.raises(CatalogueError) as raised:
        load_catalogue(catalogue_copy)
    assert str(raised.value) == (f"{path}: column 'world_region' appears twice in the header (columns 2 and 7); "
                                 "give each column its own name")


def test_a_column_written_twice_in_parquet_is_named(catalogue_copy):
    import pandas as pd

    table = pd.read_csv(catalogue_copy / "listings.csv", dtype=str)
    arrays = [pa.array(table[c]) for c in table.columns]
    names = [("city" if c == "chain" else c) for c in table.columns]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), catalogue_copy / "listings.parquet")
    (catalogue_copy / "listings.csv").unlink()
    with pytest.raises(CatalogueError, match=r"listings.parquet: column 'city' appears twice in the header \(columns 4 and 7\)"):
        load_catalogue(catalogue_copy)


@pytest.mark.parametrize("written", ["inf", "-Infinity", "1e999"])
def test_a_regression_value_that_is_not_finite_is_called_so_as_written(catalogue_copy, written):
    path = catalogue_copy / "listings.csv"
    lines = path.read_text().split("\n")
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("price")] = written
    lines[3] = ",".join(row)
    path.write_text("\n".join(lines))
    with pytest.raises(CatalogueError) as raised:
        load_catalogue(catalogue_copy)
    message = str(raised.value)
    assert f"task 'price' (column 'price', regression): not a finite number at row 3 (L000003): '{written}'" in message
    assert "non-numeric" not in message and "np.float64" not in message


def test_a_parquet_regression_value_that_is_not_finite(catalogue_copy):
    import pandas as pd

    table = pd.read_csv(catalogue_copy / "listings.csv", dtype={"listing_id": str})
    table.loc[4, "review_score"] = float("-inf")
    table.to_parquet(catalogue_copy / "listings.parquet", index=False)
    (catalogue_copy / "listings.csv").unlink()
    with pytest.raises(CatalogueError, match=r"not a finite number at row 5 \(L000005\): '-inf'"):
        load_catalogue(catalogue_copy)
