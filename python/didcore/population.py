"""The population denominator (docs/inputs.md): people by ICB x sex x age band x IMD.

:class:`Population` holds a float64 array of shape ``(n_icb, 2, 19, 5)`` whose axes are the
cube's first four (ICB in ``icb_codes`` order; sex ``male``, ``female``; the 19 age bands
``0-4`` .. ``85-89``, ``90+``; IMD quintile 1 (most deprived) .. 5).

:meth:`Population.read` reads the population file (docs/inputs.md): a long table (CSV, Parquet,
a folder of Parquet, a ``pyarrow.Table``, a ``RecordBatchReader`` or anything with
``__arrow_c_stream__``) with columns

* ``icb_code``: ICB ODS code (matched case-insensitively, surrounding spaces ignored);
* ``sex``: ``1`` male or ``2`` female (NHS Person Gender Code), or ``male``/``female``;
* ``age_band`` (``0-4`` .. ``85-89``, ``90+``; spaces and leading zeros tolerated, e.g.
  ``05 - 09``) **or** ``age`` in whole years (``90+`` accepted), aggregated into bands;
* ``imd_quintile``: 1..5;
* ``population``: a finite, non-negative number of people (fractions allowed: modelled
  populations are not whole numbers);
* optionally ``year``: the financial year the population is for (``2023/24``, ``2023-24`` or
  ``2023``, meaning 2023/24), one value throughout; or declared with
  ``Population.read(..., year="2023/24")``. It is :attr:`Population.year`, ``None`` when
  neither says.

Header names are matched case-insensitively. When both ``age`` and ``age_band`` are present the
finer ``age`` is used. Rows are summed into cells only when the file is finer than the cell
grain: single years of ``age``, or one of the finer geography columns ``lsoa11``, ``lsoa11cd``,
``lsoa21``, ``lsoa21cd``, ``gp_practice_code``, ``sicbl_code``. A row repeated at the file's own
grain is a :class:`~didcore.errors.PopulationError`, as are null, non-numeric, negative or
non-finite populations, unknown ICB codes, and bad sex, age or quintile values: each message
names the column, the offending values and how many rows have them.

ICBs in ``icb_codes`` with no rows in the file get population 0, with a
:class:`PopulationWarning` naming them (a test file may legitimately cover a few ICBs; in a real
run an ICB with activity but no population has no expected count, so its standardised rate is
null).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.axes import AGE_BANDS, IMD_QUINTILES, SEXES, STRATA_SHAPE
from didcore.errors import MissingColumnError, PopulationError, UnreadableInputError

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = [
    "AGE_BANDS",
    "IMD_QUINTILES",
    "SEXES",
    "Population",
    "PopulationWarning",
]


_SHAPE_TAIL = STRATA_SHAPE
_FINER_KEYS = ("lsoa11", "lsoa11cd", "lsoa21", "lsoa21cd", "gp_practice_code", "sicbl_code")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".tsv", ".txt")
_SHOW = 5  # offending values quoted in an error message


class PopulationWarning(UserWarning):
    """A population file is usable but probably not what was meant (e.g. ICBs with no rows)."""


@dataclass(frozen=True, eq=False)
class Population:
    """People by ICB x sex x age band x IMD quintile.

    Attributes:
        values: float64 array ``(n_icb, 2, 19, 5)``, read-only; axes as the cube's first four.
        icb_codes: ICB ODS codes of the first axis, in order.
        year: the financial year the population is for, as a label (``"2023/24"``); ``None``
            when unknown.
    """

    values: NDArray[np.float64]
    icb_codes: tuple[str, ...]
    year: str | None = None

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64, copy=True)
        codes = tuple(str(c) for c in self.icb_codes)
        if values.ndim != 4 or values.shape[1:] != _SHAPE_TAIL:
            raise ValueError(
                f"population values must have shape (n_icb, 2, 19, 5), not {values.shape}"
            )
        if values.shape[0] != len(codes):
            raise ValueError(
                f"population has {values.shape[0]} ICB rows but {len(codes)} ICB codes"
            )
        if len(set(codes)) != len(codes):
            raise ValueError("population ICB codes must be unique")
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise PopulationError(
                f"population has {int(bad.sum())} cell(s) that are negative or not finite"
            )
        values.flags.writeable = False
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "icb_codes", codes)
        if self.year is not None:
            from didcore.years import year_label

            object.__setattr__(self, "year", year_label(self.year))

    @property
    def total(self) -> float:
        """Total people."""
        return float(self.values.sum())

    def __repr__(self) -> str:
        """One line: ICBs, people, year (never the 190 cells per ICB)."""
        return (
            f"<didcore.Population {len(self.icb_codes)} ICBs x 2 sexes x 19 age bands x "
            f"5 IMD quintiles; {self.total:,.0f} people; year {self.year or 'unknown'}>"
        )

    def _repr_html_(self) -> str:
        """A notebook summary: ICBs, people by sex, year."""
        from didcore._display import html_table, many

        by_sex = self.values.sum(axis=(0, 2, 3))
        return html_table(
            "didcore.Population",
            [
                ("ICBs", f"{len(self.icb_codes)} ({many(self.icb_codes)})"),
                ("people", f"{self.total:,.0f}"),
                ("male (1)", f"{by_sex[0]:,.0f}"),
                ("female (2)", f"{by_sex[1]:,.0f}"),
                ("year", self.year or "unknown"),
            ],
        )

    def aligned(self, icb_codes: Sequence[str]) -> Population:
        """Return this population with its ICB axis in the order of ``icb_codes``.

        ICBs of this population not in ``icb_codes`` are dropped (their tests are not in the
        cube either, so the national rates stay consistent).

        Raises:
            PopulationError: an ICB of ``icb_codes`` is not in this population.
        """
        codes = tuple(icb_codes)
        if codes == self.icb_codes:
            return self
        index = {c: i for i, c in enumerate(self.icb_codes)}
        missing = [c for c in codes if c not in index]
        if missing:
            raise PopulationError(
                f"the population has no ICB {_quote_list(missing)}; read it with "
                "Population.read(source, cube.icb_codes) so that every ICB of the cube is covered"
            )
        return Population(self.values[[index[c] for c in codes]], codes, self.year)

    def to_arrow(self) -> pa.Table:
        """Return the population file's long table (``sex`` as NHS code 1/2), one row per cell."""
        import pyarrow as pa

        n_icb = len(self.icb_codes)
        icb, sex, band, quintile = (
            a.ravel() for a in np.indices((n_icb, *_SHAPE_TAIL), dtype=np.int64)
        )
        return pa.table(
            {
                "icb_code": pa.array(np.asarray(self.icb_codes, dtype=object)[icb], pa.string()),
                "sex": pa.array(sex + 1, pa.int64()),
                "age_band": pa.array(np.asarray(AGE_BANDS, dtype=object)[band], pa.string()),
                "imd_quintile": pa.array(quintile + 1, pa.int64()),
                "population": pa.array(self.values.ravel(), pa.float64()),
            }
        )

    @classmethod
    def read(
        cls, source: Any, icb_codes: Sequence[str], *, year: str | int | None = None
    ) -> Population:
        """Read a population file or table and aggregate it to ``(icb, sex, age band, IMD)``.

        Args:
            source: path to a CSV or Parquet file or a folder of Parquet files; or a
                ``pyarrow.Table``, ``RecordBatchReader`` or object with ``__arrow_c_stream__``.
            icb_codes: the ICB axis, normally ``cube.icb_codes``.
            year: the financial year the population is for (``"2023/24"``), when the file
                has no ``year`` column; one that disagrees with the column is an error.

        Raises:
            MissingColumnError: a required column is absent.
            PopulationError: bad values, unknown ICBs or duplicate cells (see module docstring).
            UnreadableInputError: the file is missing, unreadable or of an unknown format.
        """
        codes = tuple(str(c) for c in icb_codes)
        if len(set(codes)) != len(codes):
            raise ValueError("icb_codes must be unique")
        table = _load(source)
        name = _source_name(source)
        table = _binary_as_text(table, name)
        columns = _resolve_columns(table, name)
        n_rows = table.num_rows
        pop_year = _population_year(table, columns.get("year"), name, year)

        icb = _encode_icb(table.column(columns["icb_code"]), codes, name)
        sex = _encode(
            table.column(columns["sex"]), "sex", name, _parse_sex, "1 (male) or 2 (female)"
        )
        quintile = _encode(
            table.column(columns["imd_quintile"]), "imd_quintile", name, _parse_quintile, "1..5"
        )
        if "age" in columns:
            age = _encode(
                table.column(columns["age"]),
                "age",
                name,
                _parse_age,
                "whole years 0, 1, ... or 90+",
            )
            band = np.minimum(age // 5, len(AGE_BANDS) - 1)
            age_key: NDArray[np.int64] = age
            age_name = "age"
        else:
            band = _encode(
                table.column(columns["age_band"]),
                "age_band",
                name,
                _parse_band,
                "0-4, 5-9, ..., 85-89, 90+",
            )
            age_key = band
            age_name = "age_band"
        people = _population_values(table.column(columns["population"]), name)

        finer = [columns[k] for k in _FINER_KEYS if k in columns]
        _check_duplicates(
            [icb, sex, age_key, quintile, *(_codes_of(table.column(c)) for c in finer)],
            ["icb_code", "sex", age_name, "imd_quintile", *finer],
            lambda i: _describe_row(
                codes, int(icb[i]), int(sex[i]), age_name, int(age_key[i]), int(quintile[i])
            ),
            name,
        )

        cell = ((icb * 2 + sex) * len(AGE_BANDS) + band) * len(IMD_QUINTILES) + quintile
        size = len(codes) * int(np.prod(_SHAPE_TAIL))
        flat = np.zeros(size, dtype=np.float64)
        if n_rows:
            flat += np.bincount(cell, weights=people, minlength=size)
        values = flat.reshape(len(codes), *_SHAPE_TAIL)

        absent = [c for i, c in enumerate(codes) if not np.any(icb == i)]
        if absent:
            warnings.warn(
                f"{name} has no rows for {len(absent)} ICB(s): {_quote_list(absent)}; their "
                "population is taken as 0, so they get no expected counts",
                PopulationWarning,
                stacklevel=2,
            )
        return cls(values, codes, pop_year)


def _population_year(
    table: pa.Table, column: str | None, name: str, declared: str | int | None
) -> str | None:
    """The population's financial year: its ``year`` column's one value, or ``declared``.

    Raises :class:`PopulationError` when the column holds several years, a value that is not
    a year, or a year other than the declared one.
    """
    from didcore.errors import InputError
    from didcore.years import year_label

    try:
        wanted = year_label(declared) if declared is not None else None
    except InputError as exc:
        raise PopulationError(f"population year: {exc}") from exc
    if column is None:
        return wanted
    values = [v for v in table.column(column).unique().to_pylist() if v not in (None, "")]
    labels: dict[str, list[Any]] = {}
    for v in values:
        try:
            labels.setdefault(year_label(v.strip() if isinstance(v, str) else v), []).append(v)
        except InputError as exc:
            raise PopulationError(
                f"{name}, column {column!r}: {v!r} is not a financial year; write it as "
                "2023/24 (or 2023-24, 2023)"
            ) from exc
    if len(labels) > 1:
        raise PopulationError(
            f"{name}, column {column!r} holds several years ({_quote_list(sorted(labels))}); "
            "a population is for one financial year: keep that year's rows"
        )
    if not labels:
        return wanted
    found = next(iter(labels))
    if wanted is not None and wanted != found:
        raise PopulationError(
            f"{name}, column {column!r} says {found} but the population was declared as "
            f"{wanted} (--population-year): correct one of them"
        )
    return found


# --------------------------------------------------------------------------------------------
# loading


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"population file {os.fspath(source)!r}"
    return "population table"


def _load(source: Any) -> pa.Table:
    import pyarrow as pa

    from didcore.arguments import check_path
    from didcore.io import _first_line, _foreign_failure

    if isinstance(source, pa.Table):
        return source
    if isinstance(source, (str, os.PathLike)):
        return _load_path(check_path(source, "population file"))
    if isinstance(source, pa.RecordBatchReader) or hasattr(source, "__arrow_c_stream__"):
        try:
            if isinstance(source, pa.RecordBatchReader):
                return source.read_all()
            return pa.table(source)
        except BaseException as exc:
            if not _foreign_failure(exc):
                raise
            raise UnreadableInputError(
                f"cannot read the population from {type(source).__name__}: {_first_line(exc)}"
            ) from exc
    raise UnreadableInputError(
        "population source must be a path, a pyarrow Table or RecordBatchReader, or an object "
        f"with __arrow_c_stream__; got {type(source).__name__}"
    )


def _load_path(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from didcore.io import CSV_BLOCK_BYTES, csv_column_names, csv_encoding
    from didcore.lookup_files import small_table_pool
    from didcore.textfiles import csv_parse_options

    try:
        exists = path.exists()
    except OSError as exc:
        raise UnreadableInputError(f"cannot read population file {str(path)!r}: {exc}") from exc
    if not exists:
        raise UnreadableInputError(f"population file {str(path)!r} does not exist")
    lower = path.name.lower()
    try:
        if path.is_dir() or lower.endswith(_PARQUET_SUFFIXES):
            table = pq.read_table(path)
            table.column_names  # noqa: B018 - decoded here: a name that is not UTF-8 is an error
            return table
        if lower.endswith(_CSV_SUFFIXES):
            parse = csv_parse_options(path)  # commas, or the header's semicolons, bars or tabs
            csv_column_names(path, parse)  # a header that is not UTF-8 is named as such
            return pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(
                    encoding=csv_encoding(path), block_size=CSV_BLOCK_BYTES
                ),
                parse_options=parse,
                # strings stay strings so that values like "05-09" or "1,2" reach our parsers
                convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
                memory_pool=small_table_pool(),
            )
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic == b"PAR1":
            return pq.read_table(path)
    except UnreadableInputError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        from didcore.io import csv_problem

        raise UnreadableInputError(
            csv_problem(path, exc, [], "population file ").replace("\n", " ")
        ) from exc
    raise UnreadableInputError(
        f"population file {str(path)!r} is neither CSV (.csv, .csv.gz, .tsv) nor Parquet"
    )


def _binary_as_text(table: pa.Table, name: str) -> pa.Table:
    """Binary columns (CSV text that is not UTF-8 is read as binary; Parquet written without
    the UTF-8 annotation) as text; bytes that are not UTF-8, in them or in a text column,
    are a :class:`PopulationError` naming the column.
    """
    import pyarrow as pa

    from didcore.io import is_binary_type

    for i, field in enumerate(table.schema):
        t = field.type
        value_type = t.value_type if pa.types.is_dictionary(t) else t
        text_type = pa.types.is_string(value_type) or pa.types.is_large_string(value_type)
        if not (is_binary_type(value_type) or text_type):
            continue
        try:
            # a Parquet string column is not checked when read: check it here
            text = table.column(i) if text_type else table.column(i).cast(pa.string())
            text.validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise PopulationError(
                f"{name}: column {field.name!r} holds bytes that are not UTF-8 text; save the "
                "file as UTF-8 ('CSV UTF-8' in Excel)"
            ) from exc
        table = table.set_column(i, field.name, text)
    return table


def _resolve_columns(table: pa.Table, name: str) -> dict[str, str]:
    """Map canonical column names to the table's own (matched case-insensitively)."""
    by_key: dict[str, str] = {}
    for col in table.column_names:
        by_key.setdefault(col.strip().lower(), col)
    wanted = ("icb_code", "sex", "imd_quintile", "population")
    missing = [c for c in wanted if c not in by_key]
    if "age" not in by_key and "age_band" not in by_key:
        missing.append("age_band (or age)")
    if missing:
        raise MissingColumnError(
            f"{name} has no column {', '.join(missing)}; it has {', '.join(table.column_names)}"
            " (docs/inputs.md: icb_code, sex, age_band or age, imd_quintile, population)"
        )
    keys = [*wanted, "age", "age_band", "year", *_FINER_KEYS]
    return {k: by_key[k] for k in keys if k in by_key}


# --------------------------------------------------------------------------------------------
# parsing columns into integer codes


def _as_strings(column: pa.ChunkedArray) -> tuple[NDArray[np.int64], list[str]]:
    """Dictionary-encode a column as trimmed strings: (row indices, -1 for null; dictionary)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        # 1.0 -> "1": whole-number floats are how spreadsheets hand over integer codes
        values = column.to_numpy(zero_copy_only=False)
        finite = np.isfinite(values)
        if np.all(values[finite] == np.floor(values[finite])):
            column = pc.cast(column, pa.int64(), safe=False)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    column = pc.utf8_trim_whitespace(column)
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), []
    encoded = column.combine_chunks().dictionary_encode()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return indices, encoded.dictionary.to_pylist()


def _encode(
    column: pa.ChunkedArray,
    what: str,
    name: str,
    parse: Callable[[str], int | None],
    allowed: str,
) -> NDArray[np.int64]:
    """Parse a column's distinct values with ``parse`` into codes >= 0; raise naming bad ones."""
    indices, dictionary = _as_strings(column)
    parsed = [parse(v) if v else None for v in dictionary]
    lut = np.array([-1 if p is None else p for p in parsed] + [-1], dtype=np.int64)
    codes = lut[indices]  # index -1 picks the trailing -1: null rows
    bad = codes < 0
    if bad.any():
        detail = _bad_values(indices, dictionary, bad)
        raise PopulationError(f"{name}: column {what!r} {detail}; allowed values are {allowed}")
    return codes


def _bad_values(indices: NDArray[np.int64], dictionary: list[str], bad: NDArray[np.bool_]) -> str:
    """Describe a column's offending rows, e.g. 'has 3 null or blank row(s) and 2 invalid ...'."""
    blank = {i for i, v in enumerate(dictionary) if not v}
    is_null = (indices < 0) | np.isin(indices, list(blank))
    parts = []
    n_null = int(np.sum(bad & is_null))
    if n_null:
        parts.append(f"has {n_null} null or blank row(s)")
    invalid = indices[bad & ~is_null]
    if len(invalid):
        idx, counts = np.unique(invalid, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        shown = ", ".join(f"{dictionary[idx[j]]!r} ({counts[j]} rows)" for j in order[:_SHOW])
        more = f" and {len(idx) - _SHOW} more" if len(idx) > _SHOW else ""
        parts.append(f"has {len(idx)} invalid value(s) in {len(invalid)} row(s): {shown}{more}")
    return " and ".join(parts)


def _parse_int(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if not number.is_integer():
        return None
    return int(number)


def _parse_sex(text: str) -> int | None:
    low = text.lower()
    if low in ("male", "female"):
        return SEXES.index(low)
    code = _parse_int(text)
    return code - 1 if code in (1, 2) else None


def _parse_quintile(text: str) -> int | None:
    code = _parse_int(text)
    return code - 1 if code is not None and 1 <= code <= 5 else None


_BAND = re.compile(r"^(\d+)-(\d+)$")
_OPEN = re.compile(r"^(\d+)\+$")


def _parse_band(text: str) -> int | None:
    compact = re.sub(r"\s+", "", text)
    m = _BAND.match(compact)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo % 5 == 0 and hi == lo + 4 and lo <= 85:
            return lo // 5
        return None
    m = _OPEN.match(compact)
    if m and int(m.group(1)) == 90:
        return len(AGE_BANDS) - 1
    return None


def _parse_age(text: str) -> int | None:
    compact = re.sub(r"\s+", "", text)
    if compact == "90+":
        return 90
    age = _parse_int(compact)
    return age if age is not None and age >= 0 else None


def _encode_icb(column: pa.ChunkedArray, codes: tuple[str, ...], name: str) -> NDArray[np.int64]:
    from didcore.codes import normalise_text

    index = {normalise_text(c): i for i, c in enumerate(codes)}
    indices, dictionary = _as_strings(column)
    lut = np.array([index.get(normalise_text(v), -1) for v in dictionary] + [-1], dtype=np.int64)
    icb = lut[indices]
    bad = icb < 0
    if bad.any():
        raise PopulationError(
            f"{name}: column 'icb_code' {_bad_values(indices, dictionary, bad)}; allowed values "
            f"are the {len(codes)} ICB codes of the lookups ({_quote_list(codes)})"
        )
    return icb


def _parse_float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _population_values(column: pa.ChunkedArray, name: str) -> NDArray[np.float64]:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if numeric or pa.types.is_decimal(column.type):
        if column.null_count:
            raise PopulationError(
                f"{name}: column 'population' has {column.null_count} null row(s); every cell "
                "needs a number of people (0 if there is nobody)"
            )
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    else:
        indices, dictionary = _as_strings(column)
        parsed = [_parse_float(v) for v in dictionary]
        ok = np.array([p is not None for p in parsed] + [False], dtype=bool)[indices]
        if not ok.all():
            raise PopulationError(
                f"{name}: column 'population' {_bad_values(indices, dictionary, ~ok)}; "
                "populations must be numbers of people"
            )
        values = np.array([0.0 if p is None else p for p in parsed] + [0.0])[indices]
    problems = []
    nonfinite = ~np.isfinite(values)
    if nonfinite.any():
        problems.append(f"{int(nonfinite.sum())} row(s) that are not finite (NaN or infinite)")
    negative = values < 0
    if negative.any():
        examples = ", ".join(repr(float(v)) for v in np.unique(values[negative])[:_SHOW])
        problems.append(f"{int(negative.sum())} negative row(s) (e.g. {examples})")
    if problems:
        raise PopulationError(
            f"{name}: column 'population' has {' and '.join(problems)}; populations must be "
            "finite, non-negative numbers of people"
        )
    return values


def _codes_of(column: pa.ChunkedArray) -> NDArray[np.int64]:
    """Integer codes for a key column (null is its own code)."""
    indices, _ = _as_strings(column)
    return indices


def _check_duplicates(
    keys: list[NDArray[np.int64]],
    names: list[str],
    describe: Callable[[int], str],
    name: str,
) -> None:
    """Raise if any combination of ``keys`` occurs in more than one row."""
    if not len(keys[0]):
        return
    shifted = [k - k.min() for k in keys]
    dims = [int(k.max()) + 1 for k in shifted]
    if float(np.prod(np.asarray(dims, dtype=np.float64))) < 2.0**62:
        flat = np.ravel_multi_index(tuple(shifted), tuple(dims))
        _, first, counts = np.unique(flat, return_index=True, return_counts=True)
    else:  # too many combinations for one int64 key: compare the rows themselves
        _, first, counts = np.unique(
            np.stack(shifted, axis=1), axis=0, return_index=True, return_counts=True
        )
    dup = counts > 1
    if dup.any():
        rows = int(counts[dup].sum())
        examples = "; ".join(
            f"{describe(int(i))} ({int(c)} rows)"
            for i, c in zip(first[dup][:_SHOW], counts[dup][:_SHOW], strict=True)
        )
        raise PopulationError(
            f"{name} has {int(dup.sum())} duplicate cell(s) in {rows} rows (same "
            f"{', '.join(names)}), e.g. {examples}; each cell must appear once: remove the "
            "repeated rows or sum them before reading"
        )


def _describe_row(
    codes: tuple[str, ...], icb: int, sex: int, age_name: str, age: int, quintile: int
) -> str:
    age_text = f"age {age}" if age_name == "age" else f"age band {AGE_BANDS[age]}"
    return f"{codes[icb]} {SEXES[sex]} {age_text} IMD quintile {IMD_QUINTILES[quintile]}"


def _quote_list(values: Iterable[str]) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[: _SHOW * 2])
    return shown + (f" and {len(values) - _SHOW * 2} more" if len(values) > _SHOW * 2 else "")
