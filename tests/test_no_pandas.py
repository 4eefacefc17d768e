"""Counting never imports pandas.

pyarrow, where pandas is installed, imports it the first time it converts a Python or numpy
value to Arrow (``pa.array``, ``pa.scalar``, a compute function given a Python number or
text, ``Array.to_numpy``): 0.3-0.45 s, a third of counting 50M rows on the benchmark
machine. The counting path builds its Arrow values from buffers instead
(:mod:`didcore._arrow_compat`). These tests run it in a fresh interpreter, on clean and on
messy extracts, through every reader, and check that pandas was not imported.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from didcore._arrow_compat import (
    bool_array,
    int64_array,
    null_scalar,
    number_array,
    number_scalar,
    text_array,
    text_scalar,
)
from didcore.arrow_buffers import _bool_values, _valid_rows
from didcore.synth import write_synthetic


def _messy(table: pa.Table) -> pa.Table:
    """``table`` coded as real extracts are: sex as padded lower-case letters, test dates as
    text with and without times (a few unreadable), dates of birth as text, ages as floats
    with fractions, NaN and the impossible, practice codes padded and lower-case.
    """
    rng = random.Random(7)

    def text(values: list, fix: object) -> pa.Array:
        return pa.array([None if v is None else fix(v) for v in values], pa.string())

    sexes = {"1": "m ", "2": " f"}
    sex = text(table["sex"].cast(pa.string()).to_pylist(), lambda v: sexes.get(v, v))
    test_date = text(
        table["test_date"].to_pylist(),
        lambda d: (
            "31/12/2023"
            if rng.random() < 0.01
            else f"{d} 10:30:00"
            if rng.random() < 0.5
            else str(d)
        ),
    )
    born = text(table["date_of_birth"].to_pylist(), str)
    ages = [
        None
        if a is None
        else float("nan")
        if rng.random() < 0.01
        else a + 0.5
        if rng.random() < 0.1
        else a + 200.0
        if rng.random() < 0.01
        else float(a)
        for a in table["age"].to_pylist()
    ]
    practice = text(
        table["gp_practice_code"].cast(pa.string()).to_pylist(), lambda v: f" {v.lower()}"
    )
    for name, column in [
        ("sex", sex),
        ("test_date", test_date),
        ("date_of_birth", born),
        ("age", pa.array(ages, pa.float32())),
        ("gp_practice_code", practice),
    ]:
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def test_counting_does_not_import_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")  # without pandas there is nothing to import
    paths = write_synthetic(tmp_path / "synth", rows=6_000, seed=3, years=2)
    table = pq.read_table(paths.extract)
    pacsv.write_csv(table, tmp_path / "clean.csv")
    messy = _messy(table)
    pq.write_table(messy, tmp_path / "messy.parquet", use_dictionary=False, data_page_version="2.0")
    pacsv.write_csv(messy, tmp_path / "messy.csv")
    extract, lookups = str(paths.extract), str(paths.lookups)
    script = f"""
import sys
import didcore
from didcore.cli import main

maps = {{"sex": {{"M": "1", "F": "2"}}}}
didcore.aggregate({extract!r}, {lookups!r}, by_year=True)
didcore.aggregate({extract!r})
didcore.aggregate({str(tmp_path / "clean.csv")!r}, {lookups!r})
for messy in ("messy.parquet", "messy.csv"):
    path = {str(tmp_path)!r} + "/" + messy
    didcore.aggregate(path, {lookups!r}, value_maps=maps, max_age=100)
    didcore.aggregate(path, {lookups!r}, value_maps=maps, by_year=True)
assert main(["cube", {extract!r}, "--out", {str(tmp_path / "out")!r}]) == 0
assert main(["check", {str(tmp_path / "messy.csv")!r}, "--map", "sex=F:2,M:1"]) == 0
print("pandas imported:", "pandas" in sys.modules)
"""
    for mode in ("native", "pyarrow"):
        env = {**os.environ, "DIDCORE_PARQUET": mode}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
        )
        assert out.returncode == 0, (mode, out.stderr[-3000:])
        assert out.stdout.strip().endswith("pandas imported: False"), (mode, out.stdout[-2000:])


# ------------------------------------------------------- the helpers equal what they replace


@given(st.lists(st.none() | st.text(max_size=6)))
def test_text_array_is_pa_array(values: list[str | None]) -> None:
    made = text_array(values)
    made.validate(full=True)
    assert made.equals(pa.array(values, pa.string()))
    if values and values[0] is not None:
        assert text_scalar(values[0]).equals(pa.scalar(values[0], pa.string()))


@given(st.lists(st.integers(-(2**63), 2**63 - 1)), st.lists(st.booleans()))
def test_number_and_bool_arrays_are_pa_array(ints: list[int], flags: list[bool]) -> None:
    import numpy as np

    assert int64_array(ints).equals(pa.array(ints, pa.int64()))
    assert number_array(np.asarray(ints, np.int64)[::2]).equals(pa.array(ints[::2], pa.int64()))
    assert number_array(np.asarray(flags, np.float32)).equals(pa.array(flags, pa.float32()))
    made = bool_array(flags)
    made.validate(full=True)
    assert made.equals(pa.array(flags, pa.bool_()))
    assert number_scalar(7, np.int32).equals(pa.scalar(7, pa.int32()))
    assert null_scalar(pa.date32()).equals(pa.scalar(None, pa.date32()))


@given(st.lists(st.none() | st.booleans()), st.integers(0, 20), st.integers(0, 20))
def test_validity_and_bools_read_in_place(values: list[bool | None], lo: int, n: int) -> None:
    arr = pa.array(values, pa.bool_()).slice(lo, n)  # offsets that are not whole bytes
    assert _valid_rows(arr).tolist() == [v is not None for v in arr.to_pylist()]
    got = _bool_values(arr)[_valid_rows(arr)].tolist()
    assert got == [v for v in arr.to_pylist() if v is not None]
    assert _valid_rows(pa.nulls(n, pa.null())).tolist() == [False] * n
