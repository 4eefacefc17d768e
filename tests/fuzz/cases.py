"""The fuzz case kinds: each builds, from a seed, an input (files in the case's folder or an
in-memory object), the call to make, and what the contract asks of its outcome.

``expect`` says what outcome the input allows beyond the universal contract (a result with
conservation, or an InputError):

* ``"valid"``: the input is valid, so it must be counted, and equal the reference;
* ``"oracle"``: valid when the oracle (an independent pyarrow read of the same file) can read
  it; a refusal is then a violation, unless it is about the columns;
* ``"any"``: a result (compared with the reference where there is one) or a clean error;
* ``"error"``: the input is unusable: a result is a violation (silently accepted).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import fixtures as fx
from . import mutate as mu
from .strategies import Gen, Spec, batches, spec, table, text_value


class Invalid(Exception):
    """The oracle cannot read the input: there is nothing to compare with."""


class Skip(Exception):
    """The generator could not build this case's input (never a finding)."""


@dataclass
class Case:
    """One generated case: ``run()`` makes the call under test; ``oracle()`` gives the
    reference cube of a valid input (raising :class:`Invalid` when it cannot read it);
    ``expect`` is described in the module docstring; ``cli`` marks a command-line run
    (``run()`` returns a :class:`CliRun`); ``check(result)``, when given, replaces the cube
    comparison and returns the problems it finds.
    """

    kind: str
    seed: int
    variant: str
    run: Callable[[], Any]
    oracle: Callable[[], Any] | None = None
    expect: str = "any"
    cli: bool = False
    check: Callable[[Any], list[str]] | None = None


CODE_ROLES = ("provider_code", "gp_practice_code", "lsoa11", "sex", "modality", "exam_code")
ROLES = (*CODE_ROLES, "age", "date_of_birth", "test_date")


# ------------------------------------------------------------------ helpers


def _aggregate(source: Any, lookups: Any = None, **kwargs: Any) -> Any:
    import didcore

    kwargs.setdefault("progress", False)
    return didcore.aggregate(source, fx.lookups() if lookups is None else lookups, **kwargs)


def _ref_of_table(t: Any, columns: Any = None, max_age: Any = None, lk: Any = None) -> Any:
    from didcore.io import Columns

    c = columns or Columns()
    use_age = c.age in t.column_names
    return fx.reference(fx.reference_rows(t, c), columns=c, max_age=max_age, lk=lk, use_age=use_age)


def save_ipc(t: Any, path: Path) -> None:
    """Save an in-memory table as an Arrow IPC file (every type, unsafe dictionaries too)."""
    import pyarrow as pa

    with (
        contextlib.suppress(Exception),
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, t.schema) as w,
    ):
        for b in t.to_batches():
            w.write_batch(b)


def _parquet_safe(t: Any) -> Any:
    """``t`` with what the Parquet writer refuses made plain: dictionaries of views, and
    dictionaries holding a null entry (each re-encoded from its values).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in t.columns:
        ty = col.type
        if pa.types.is_dictionary(ty):
            v = ty.value_type
            text = (
                pa.types.is_string(v) or pa.types.is_large_string(v) or pa.types.is_string_view(v)
            )
            base = pa.string() if text else pa.binary()
            plain = pa.chunked_array(
                [c.dictionary.cast(base).take(c.indices) for c in col.chunks], base
            )
            col = pc.dictionary_encode(plain)
        elif pa.types.is_string_view(ty):
            col = col.cast(pa.string())
        elif pa.types.is_binary_view(ty):
            col = col.cast(pa.binary())
        cols.append(col)
    return pa.table(cols, names=t.column_names)


def write_parquet(g: Gen, t: Any, path: Path) -> str:
    """Write ``t`` with random writer options (several row groups, dictionary or plain,
    delta encodings, v1/v2 pages, compression); returns a description of the options.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = max(len(t), 1)
    opts: dict[str, Any] = {
        "row_group_size": g.choice([1, 2, 3, 7, max(1, n // 3), n, None]),
        "compression": g.choice(["none", "snappy", "gzip", "zstd", "lz4", "brotli"]),
        "data_page_version": g.choice(["1.0", "2.0"]),
        "write_statistics": g.bool(0.7),
        "store_schema": g.bool(0.8),
        "data_page_size": g.choice([64, 1024, None]),
    }
    text = [
        f.name
        for f in t.schema
        if pa.types.is_string(f.type)
        or pa.types.is_large_string(f.type)
        or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type)
    ]
    mode = g.choice(["dict", "plain", "mixed", "delta"])
    if mode == "dict":
        opts["use_dictionary"] = True
    elif mode == "plain":
        opts["use_dictionary"] = False
    elif mode == "mixed":
        opts["use_dictionary"] = [c for c in t.column_names if g.bool()]
    elif text:
        # Parquet v2 writers' encodings for text: DELTA_BYTE_ARRAY, DELTA_LENGTH_BYTE_ARRAY
        delta = [c for c in text if g.bool(0.7)] or text[:1]
        opts["use_dictionary"] = [c for c in t.column_names if c not in delta and g.bool()]
        opts["column_encoding"] = {
            c: g.choice(["DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"]) for c in delta
        }
    opts = {k: v for k, v in opts.items() if v is not None}
    try:
        pq.write_table(t, path, **opts)
    except (pa.ArrowException, ValueError, TypeError, OSError):
        try:
            t = _parquet_safe(t)
            pq.write_table(t, path, **opts)
        except (pa.ArrowException, ValueError, TypeError, OSError) as exc:
            raise Skip(f"parquet writer: {exc}") from exc
    return ", ".join(f"{k}={v}" for k, v in opts.items())


def oracle_parquet(path: Path, columns: Any = None, lk: Any = None, max_age: Any = None) -> Any:
    """The reference of what pyarrow reads from a Parquet file (:class:`Invalid` if it cannot)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
        t = pf.read(columns=[n for n in dict.fromkeys(names) if names.count(n) == 1])
        t.validate(full=True)
        return _ref_of_table(t, columns, max_age, lk)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"pyarrow cannot read it: {type(exc).__name__}: {exc}") from exc


def write_csv(g: Gen, s: Spec, path: Path, *, delimiter: str = ",") -> bytes:
    """Write the spec's rows as CSV text (random quoting, line ends, missing-value words)."""
    buf = io.StringIO()
    quoting = g.choice([csv.QUOTE_MINIMAL, csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
    w = csv.writer(
        buf, delimiter=delimiter, quoting=quoting, lineterminator=g.choice(["\n", "\r\n"])
    )
    cols = s.columns
    if g.bool(0.2):
        g.rng.shuffle(cols)
    w.writerow(cols)
    missing = g.choice(["", "", "NA", "NULL", "nan"])
    for r in s.rows:
        w.writerow([missing if (v := text_value(r[c])) is None else v for c in cols])
    data = buf.getvalue().encode("utf-8")
    return data


def _csv_opts(path: Path, *, newlines_in_values: bool = False) -> Any:
    import pyarrow.csv as pacsv

    tab = path.name.lower().endswith((".tsv", ".tsv.gz"))
    return pacsv.ParseOptions(delimiter="\t" if tab else ",", newlines_in_values=newlines_in_values)


def oracle_csv_rows(path: Path, columns: Any = None) -> list[dict[str, Any]]:
    """Rows of a CSV read whole by pyarrow, every column as text, line breaks inside quoted
    values allowed as RFC 4180 has them (:class:`Invalid` if it cannot be read, or if the
    columns the count needs are missing or named twice). Without ``newlines_in_values``,
    pyarrow's threaded reader splits such a value silently where a block boundary falls in it.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from didcore.errors import InputError
    from didcore.io import Columns

    c = columns or Columns()
    try:
        with pacsv.open_csv(path, parse_options=_csv_opts(path)) as head:
            names = head.schema.names
        try:
            c.needed(names)
        except InputError as exc:
            raise Invalid(f"columns: {exc}") from exc
        types = {n: pa.string() for n in names}
        t = pacsv.read_csv(
            path,
            parse_options=_csv_opts(path, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"pyarrow cannot read it: {type(exc).__name__}: {exc}") from exc
    return fx.reference_rows(t, c)


def oracle_csv(path: Path, columns: Any = None, lk: Any = None, max_age: Any = None) -> Any:
    from didcore.io import Columns

    c = columns or Columns()
    rows = oracle_csv_rows(path, c)
    use_age = c.age in rows[0] if rows else _csv_has(path, c.age)
    return fx.reference(rows, columns=c, lk=lk, max_age=max_age, use_age=use_age)


def _csv_has(path: Path, name: str) -> bool:
    import pyarrow.csv as pacsv

    with pacsv.open_csv(path, parse_options=_csv_opts(path)) as head:
        return name in head.schema.names


def _csv_name(g: Gen) -> tuple[str, str]:
    name = g.choice(["extract.csv", "extract.csv", "extract.tsv", "extract.csv.gz", "e.tsv.gz"])
    return name, "\t" if ".tsv" in name else ","


def _write_csv_file(g: Gen, s: Spec, folder: Path) -> Path:
    name, delim = _csv_name(g)
    data = write_csv(g, s, folder / name, delimiter=delim)
    path = folder / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


# ------------------------------------------------------------------ valid sources


class _Stream:
    """An object exposing only the Arrow C stream interface (as DuckDB, polars do)."""

    def __init__(self, t: Any) -> None:
        self._t = t

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._t.__arrow_c_stream__(requested_schema)


class _ToArrow:
    """An object with a ``to_arrow()`` method (as several dataframe libraries have)."""

    def __init__(self, t: Any) -> None:
        self._t = t

    def to_arrow(self) -> Any:
        return self._t


def case_table(g: Gen, d: Path) -> Case:
    """A valid in-memory source: Table, RecordBatch, RecordBatchReader, a C stream object,
    a ``to_arrow()`` object, a sliced table (arrays with offsets).
    """
    import pyarrow as pa

    s = spec(g)
    bs, schema = batches(s)
    t = pa.Table.from_batches(bs, schema)
    form = g.choice(["table", "reader", "batch", "c_stream", "to_arrow", "sliced", "combined"])
    if form == "sliced" and len(t):
        lo = g.int(0, len(t) - 1)
        t = t.slice(lo, g.int(0, len(t) - lo))
    elif form == "combined":
        with contextlib.suppress(pa.ArrowException):
            t = t.combine_chunks()
    elif form == "batch" and len(bs) != 1:
        bs = bs[:1]
        t = pa.Table.from_batches(bs, schema)
    save_ipc(t, d / "input.arrow")

    def source() -> Any:
        if form == "reader":
            return pa.RecordBatchReader.from_batches(schema, iter(t.to_batches()))
        if form == "batch":
            return bs[0]
        if form == "c_stream":
            return _Stream(t)
        if form == "to_arrow":
            return _ToArrow(t)
        return t

    return Case(
        "table",
        g.seed,
        f"{form}, {len(t)} rows, {len(bs)} batches",
        lambda: _aggregate(source()),
        lambda: _ref_of_table(t),
        expect="valid",
    )


def _polars_safe(t: Any) -> Any:
    """``t`` with what polars cannot take made plain: 256-bit decimals as 128-bit, timestamps
    in a fixed-offset zone ("+05:30") in UTC.
    """
    import pyarrow as pa

    cols = []
    for col in t.columns:
        ty = col.type
        if pa.types.is_decimal256(ty):
            col = col.cast(pa.decimal128(min(ty.precision, 38), ty.scale))
        elif pa.types.is_timestamp(ty) and ty.tz and ty.tz[0] in "+-":
            col = col.cast(pa.timestamp(ty.unit, "UTC"))
        cols.append(col)
    return pa.table(cols, names=t.column_names)


def case_polars(g: Gen, d: Path) -> Case:
    """A polars DataFrame (exported as string_view, Categorical as dictionary<string_view>)."""
    import pyarrow as pa

    try:
        import polars as pl
    except ImportError as exc:
        raise Skip("polars is not installed") from exc
    t = _polars_safe(table(spec(g)))
    try:
        df = pl.from_arrow(t)
        if g.bool(0.3):
            text = [c for c, ty in df.schema.items() if ty == pl.String]
            if text:
                df = df.with_columns(pl.col(g.choice(text)).cast(pl.Categorical))
        back = df.to_arrow()
    except BaseException as exc:
        raise Skip(f"polars: {type(exc).__name__}: {exc}") from exc
    save_ipc(back, d / "input.arrow")
    lazy = g.bool(0.05)
    return Case(
        "polars",
        g.seed,
        f"{'LazyFrame' if lazy else 'DataFrame'}, {len(back)} rows",
        lambda: _aggregate(df.lazy() if lazy else df),
        lambda: _ref_of_table(pa.table(back)),  # a LazyFrame is streamed (collect_batches)
        expect="valid",
    )


def case_parquet(g: Gen, d: Path) -> Case:
    """A valid Parquet file: several row groups, any writer options."""
    t = table(spec(g))
    path = d / g.choice(["extract.parquet", "extract.parquet", "extract.pq", "EXTRACT.PARQUET"])
    opts = write_parquet(g, t, path)
    try:
        ref_check = oracle_parquet(path)
        del ref_check
    except Invalid as exc:
        raise Skip(str(exc)) from exc
    return Case(
        "parquet",
        g.seed,
        f"{len(t)} rows; {opts}",
        lambda: _aggregate(path if g.bool() else str(path)),
        lambda: oracle_parquet(path),
        expect="valid",
    )


def case_csv(g: Gen, d: Path) -> Case:
    """A CSV/TSV (optionally gzipped) file of the spec's rows."""
    s = spec(g)
    path = _write_csv_file(g, s, d)
    return Case(
        "csv",
        g.seed,
        f"{path.name}, {len(s.rows)} rows",
        lambda: _aggregate(path),
        lambda: oracle_csv(path),
        expect="oracle",
    )


def case_folder(g: Gen, d: Path) -> Case:
    """A folder (or list) of Parquet and CSV parts, in subfolders, with files to skip."""
    import pyarrow as pa

    s = spec(g)
    root = d / "extract"
    root.mkdir()
    bounds = sorted({0, len(s.rows), *(g.int(0, len(s.rows)) for _ in range(g.int(1, 3)))})
    if len(bounds) == 1:  # no rows: one part holding only the header (or an empty row group)
        bounds = [0, 0]
    parts = []
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        sub = Spec(s.rows[lo:hi], s.types, s.use_age)
        folder = root / g.choice(["", "year=2023", "2024/q1", "a b"])
        folder.mkdir(parents=True, exist_ok=True)
        if g.bool():
            path = folder / f"part-{k}.parquet"
            write_parquet(g, table(sub), path)
        else:
            path = folder / f"part-{k}.csv"
            path.write_bytes(write_csv(g, sub, path))
        parts.append(path)
    if not parts:
        raise Skip("no rows to split")
    for junk, data in (("_SUCCESS", b""), (".part-0.parquet.crc", b"\x00garbage")):
        if g.bool():
            (root / junk).write_bytes(data)
    if g.bool(0.3):
        (root / "_temporary").mkdir(exist_ok=True)
        (root / "_temporary" / "x.parquet").write_bytes(b"PAR1 not parquet")
    as_list = g.bool(0.3)
    ordered = sorted(parts)

    def oracle() -> Any:
        rows: list[dict[str, Any]] = []
        for p in ordered:
            if p.suffix == ".parquet":
                import pyarrow.parquet as pq

                rows.extend(fx.reference_rows(pq.read_table(p)))
            else:
                rows.extend(oracle_csv_rows(p))
        return fx.reference(rows, use_age=s.use_age)

    del pa
    return Case(
        "folder",
        g.seed,
        f"{len(parts)} parts{' as a list' if as_list else ''}",
        lambda: _aggregate([str(p) for p in parts] if as_list else root),
        oracle,
        expect="oracle",
    )


# ------------------------------------------------------------------ arguments and columns


class _Weird:
    def __repr__(self) -> str:
        return "<object>"


def case_args(g: Gen, d: Path) -> Case:
    """Edge values of ``max_age``, ``n_threads``, ``progress``, ``lookups``, ``source``."""
    import decimal

    import numpy as np
    import pyarrow as pa

    s = spec(g, max_rows=40)
    t = table(s)
    save_ipc(t, d / "input.arrow")
    folder = fx.write_lookups(d / "lookups")
    which = g.choice(
        ["max_age", "max_age", "n_threads", "n_threads", "lookups", "source", "progress",
         "max_providers", "max_providers"]
    )  # fmt: skip
    kwargs: dict[str, Any] = {}
    expect = "any"
    source: Any = t
    lookups: Any = fx.lookups()
    max_age: Any = None
    if which == "max_age":
        max_age = g.choice(
            [
                None, -1, 0, 4, 89, 90, 130, 2**31 - 2, 2**31 - 1, 2**31, 2**32, 2**62,
                2**63 - 1, 2**63, 2**64, -(2**63) - 1, 1.5, 90.0, float("nan"), "90", True,
                np.int64(90), np.uint64(2**63), decimal.Decimal(90),
            ]
        )  # fmt: skip
        kwargs["max_age"] = max_age
        if isinstance(max_age, str):
            expect = "error"
    elif which == "n_threads":
        kwargs["n_threads"] = g.choice(
            [None, 1, 2, 3, 16, 0, -1, 2**31, 2**63, 2**64, 1.5, "2", True, np.int32(2)]
        )
        if isinstance(kwargs["n_threads"], str):
            expect = "error"
    elif which == "progress":
        kwargs["progress"] = g.choice([None, False, True, "yes", 0])
    elif which == "max_providers":
        kwargs["max_providers"] = g.choice([1, 2, 3, 5, 0, -1, 2**63, 2**64, 1.5, "3", None])
        if isinstance(kwargs["max_providers"], str):
            expect = "error"
    elif which == "lookups":
        lookups = g.choice(
            [
                str(folder), folder, None, 5, b"lookups", {}, [], "x" * 300, "/nonexistent",
                str(folder / "icb.csv"), str(folder) + "\x00", _Weird(), "", fx.lookup_tables(),
            ]
        )  # fmt: skip
        valid = lookups is None or lookups == str(folder) or lookups == folder
        if not valid:
            expect = "error"
    else:
        empty = d / "empty"
        empty.mkdir()
        source = g.choice(
            [
                None, 5, b"extract.parquet", {"a": [1]}, [], [str(folder / "icb.csv"), 5],
                "batches", "batch_list", "", "x" * 300, "/dev/null", str(empty),
                "a\x00b", _Weird(), pa.array([1, 2]), [t], np.zeros(3), [t.to_batches(), 1],
            ]
        )  # fmt: skip
        expect = "error"
        if isinstance(source, str) and source in ("batches", "batch_list"):
            # an iterable of record batches (a generator, a list) is a source (docs/inputs.md)
            # ... unless it holds no batch at all (no schema to check: refused)
            expect = "valid" if t.to_batches() else "error"
            source = iter(t.to_batches()) if source == "batches" else list(t.to_batches())
    n_age = max_age if isinstance(max_age, int | float | np.integer | decimal.Decimal) else None
    shown = {
        k: (v if not isinstance(v, str) or len(v) < 40 else v[:20] + "...")
        for k, v in kwargs.items()
    }
    variant = f"{which}: " + (
        repr(shown)
        if which in ("max_age", "n_threads", "progress")
        else repr(lookups if which == "lookups" else source)[:80]
    )

    def run() -> Any:
        import didcore

        kw = {"progress": False, **kwargs}
        return didcore.aggregate(source, lookups, **kw)

    oracle = None
    if (which != "source" or expect == "valid") and not (
        which == "max_age" and isinstance(max_age, str)
    ):

        def oracle() -> Any:
            from didcore.lookup import Lookups

            lk = Lookups.default() if which == "lookups" and lookups is None else None
            return _ref_of_table(t, max_age=n_age, lk=lk)

    check = None
    if which == "max_providers":
        limit = kwargs["max_providers"]

        def check(cube: Any) -> list[str]:
            problems = fx.conservation_errors(cube)
            ref = _ref_of_table(t)
            problems += fx.cube_differences(cube, ref, providers=False)
            real = [p for p in cube.provider_codes if p != "(missing)"]
            if isinstance(limit, int) and limit >= 1 and len(real) > limit + 1:
                problems.append(f"{len(real)} provider rows for max_providers={limit}")
            if isinstance(limit, int) and limit >= 1:
                # unfolded providers must hold exactly their own rows
                for row in cube.provider_quality.to_pylist():
                    code, n = row["provider_code"], row["rows"]
                    own = ref.provider.get(code, {}).get("rows")
                    if own is not None and code != "(other providers)" and n != own:
                        problems.append(f"provider {code!r}: {n} rows, reference {own}")
            return problems

    return Case("args", g.seed, variant, run, oracle, expect=expect, check=check)


def case_columns(g: Gen, d: Path) -> Case:
    """Renamed columns with a matching ``Columns``; two roles naming one column; a role
    naming a column that is not there.
    """
    import pyarrow as pa

    from didcore.io import Columns

    s = spec(g, max_rows=60)
    t = table(s)
    how = g.choice(["rename", "rename", "alias", "alias", "alias", "absent", "blank"])
    mapping: dict[str, str] = {}
    if how == "rename":
        names = {}
        for name in t.column_names:
            new = g.choice([f"x_{name}", name.upper(), f" {name}", f"{name}\u00e9", name])
            names[name] = new
        if len(set(names.values())) != len(names):
            names = {n: f"x_{n}" for n in t.column_names}
        t = t.rename_columns([names[n] for n in t.column_names])
        mapping = {r: names[r] for r in ROLES if r in names}
    elif how == "alias":
        present = [r for r in ROLES if r in t.column_names]
        a, b = g.choice(ROLES), g.choice(present)
        if a == b:
            b = g.choice(present)
        mapping = {a: b}
    elif how == "absent":
        mapping = {g.choice(ROLES): g.choice(["nope", "AGE", "sex ", ""])}
    else:
        mapping = {g.choice(ROLES): ""}
    form = g.choice(["table", "table", "parquet", "csv"])
    path: Path | None = None
    if form == "parquet":
        path = d / "extract.parquet"
        write_parquet(g, t, path)
    elif form == "csv":
        path = d / "extract.csv"
        s2 = Spec(
            [dict(zip(t.column_names, r.values(), strict=True)) for r in s.rows], {}, s.use_age
        )
        s2.types = {n: None for n in t.column_names}
        path.write_bytes(write_csv(g, s2, path))
    else:
        save_ipc(t, d / "input.arrow")

    def oracle() -> Any:
        cols = Columns(**mapping)
        if form == "parquet":
            return oracle_parquet(path, cols)  # type: ignore[arg-type]
        if form == "csv":
            return oracle_csv(path, cols)  # type: ignore[arg-type]
        return _ref_of_table(t, cols)

    expect = {"rename": "valid", "alias": "any", "absent": "any", "blank": "any"}[how]
    if how == "absent" and mapping:
        role, name = next(iter(mapping.items()))
        needed = role not in ("date_of_birth", "test_date") or "age" not in t.column_names
        if role == "age" and {"date_of_birth", "test_date"} <= set(t.column_names):
            needed = False
        if needed and name not in t.column_names:
            expect = "error"
    if form == "csv" and expect == "valid":
        expect = "oracle"
    del pa
    return Case(
        "columns",
        g.seed,
        f"{how} {mapping} via {form}",
        lambda: _aggregate(path if path is not None else t, columns=Columns(**mapping)),
        oracle,
        expect=expect,
    )


# ------------------------------------------------------------------ schema variants


def case_schema(g: Gen, d: Path) -> Case:
    """Missing, duplicated, renamed, nested, null-typed and wrong-typed columns."""
    import pyarrow as pa

    s = spec(g, max_rows=40)
    t = table(s)
    n = len(t)
    present_required = [c for c in (*CODE_ROLES, "age") if c in t.column_names]
    what = g.choice(
        ["drop", "dup_used", "dup_unused", "nested", "wrong", "wrong", "null", "extra", "empty"]
    )
    expect = "any"
    oracle_ok = False
    name = g.choice(present_required)
    if what == "drop":
        t = t.drop_columns([name])
        expect = "error"
    elif what == "dup_used":
        t = t.append_column(name, t.column(name))
        expect = "error"
    elif what == "dup_unused":
        t = t.append_column("notes", pa.array(["x"] * n)).append_column("notes", pa.array([1] * n))
        oracle_ok = True
    elif what == "nested":
        nested = g.choice(
            [
                pa.array([[v] for v in range(n)], pa.list_(pa.int64())),
                pa.array([{"a": "RM3"} for _ in range(n)], pa.struct([("a", pa.string())])),
                pa.array([[("k", "v")] for _ in range(n)], pa.map_(pa.string(), pa.string())),
                pa.array([["1", "2"] for _ in range(n)], pa.list_(pa.string(), 2)),
                pa.array([["x"] for _ in range(n)], pa.large_list(pa.string())),
            ]
        )
        t = t.set_column(t.schema.get_field_index(name), name, nested)
        expect = "error"
    elif what == "wrong":
        wrong = g.choice(
            [
                pa.array([True] * n),
                pa.array([1_000_000 * i for i in range(n)], pa.timestamp("us")),
                pa.array([i for i in range(n)], pa.time32("s")),
                pa.array([i for i in range(n)], pa.duration("s")),
                pa.array([i for i in range(n)], pa.int32()),
                pa.array([i + 0.5 for i in range(n)], pa.float64()),
                pa.array([b"ab"] * n, pa.binary(2)),
                pa.array([i for i in range(n)], pa.decimal128(5, 0)),
                pa.array([i for i in range(n)], pa.date32()),
                pa.array([pa.MonthDayNano([1, 2, 3])] * n, pa.month_day_nano_interval()),
            ]
        )
        t = t.set_column(t.schema.get_field_index(name), name, wrong)
    elif what == "null":
        # a column with no value at all (Arrow's null type): every row missing, counted
        t = t.set_column(t.schema.get_field_index(name), name, pa.nulls(n))
        oracle_ok = True
    elif what == "extra":
        extra = g.choice(
            [pa.array([[1]] * n), pa.array([{"a": 1}] * n), pa.nulls(n), pa.array([b"\xff"] * n)]
        )
        t = t.append_column(g.choice(["", "\u00e9", "x y", "AGE", "Sex"]), extra)
        oracle_ok = True
    else:
        t = t.slice(0, 0)
        oracle_ok = True
    form = g.choice(["table", "table", "parquet"])
    path = d / "extract.parquet"
    if form == "parquet":
        try:
            pq_opts = write_parquet(g, t, path)
            del pq_opts
        except Skip:
            form = "table"
    save_ipc(t, d / "input.arrow")
    oracle = None
    if oracle_ok:
        oracle = (lambda: oracle_parquet(path)) if form == "parquet" else (lambda: _ref_of_table(t))
        expect = "valid"
    return Case(
        "schema",
        g.seed,
        f"{what} {name!r} via {form}",
        lambda: _aggregate(path if form == "parquet" else t),
        oracle,
        expect=expect,
    )


# ------------------------------------------------------------------ mutated files


def _bad_utf8_parquet(g: Gen, d: Path) -> tuple[Path, str]:
    """One row group whose binary code column holds bytes that are not UTF-8."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = table(spec(g, max_rows=20))
    n = max(len(t), 1)
    t = table(spec(Gen(g.seed + 1), max_rows=20)) if len(t) == 0 else t
    n = len(t)
    if n == 0:
        raise Skip("no rows")
    col = g.choice(["provider_code", "gp_practice_code", "lsoa11", "modality", "exam_code"])
    bad = g.choice(mu.NOT_UTF8[:8])
    values = [b"RM3"] * n
    values[g.int(0, n - 1)] = b"R" + bad
    t = _parquet_safe(
        t.set_column(t.schema.get_field_index(col), col, pa.array(values, pa.binary()))
    )
    path = d / "extract.parquet"
    pq.write_table(t, path, use_dictionary=g.bool(), row_group_size=g.choice([n, None, 1]))
    return path, f"binary {col} holds {bad!r}"


def case_mutate_parquet(g: Gen, d: Path) -> Case:
    """A small Parquet file, then flipped, cut, spliced, its footer or pages damaged."""
    if g.bool(0.15):
        path, variant = _bad_utf8_parquet(g, d)
        return Case(
            "mutate_parquet",
            g.seed,
            variant,
            lambda: _aggregate(path),
            lambda: oracle_parquet(path),
        )
    t = table(spec(g, max_rows=60))
    clean = d / "clean.parquet"
    write_parquet(g, t, clean)
    data = clean.read_bytes()
    clean.unlink()
    donor = None
    if g.bool(0.3):
        donor_path = d / "donor.parquet"
        write_parquet(g, table(spec(Gen(g.seed + 7), max_rows=20)), donor_path)
        donor = donor_path.read_bytes()
        donor_path.unlink()
    mutators = dict(mu.PARQUET_MUTATORS)
    if donor is not None:
        mutators["splice"] = lambda b, r: mu.splice(b, r, donor)
    data, names = mu.mutate(data, g.rng, mutators)
    path = d / "extract.parquet"
    path.write_bytes(data)
    return Case(
        "mutate_parquet",
        g.seed,
        "+".join(names),
        lambda: _aggregate(path),
        lambda: oracle_parquet(path),
    )


def case_mutate_csv(g: Gen, d: Path) -> Case:
    """A small CSV/TSV file (or its gzip) mutated: bytes, encodings, quotes, huge fields."""
    s = spec(g, max_rows=60)
    name, delim = _csv_name(g)
    data = write_csv(g, s, d / name, delimiter=delim)
    gz = name.endswith(".gz")
    names: list[str]
    if gz and g.bool(0.4):  # damage the compressed bytes
        data, names = mu.mutate(gzip.compress(data), g.rng, mu.BYTE_MUTATORS)
        names = ["gz:" + n for n in names]
    else:
        data, names = mu.mutate(data, g.rng, mu.TEXT_MUTATORS)
        if gz:
            data = gzip.compress(data)
    path = d / name
    path.write_bytes(data)
    return Case(
        "mutate_csv",
        g.seed,
        f"{name}: {'+'.join(names)}",
        lambda: _aggregate(path),
        lambda: oracle_csv(path),
        expect="oracle",
    )


# ------------------------------------------------------------------ lookups


def _lookup_damage(g: Gen, folder: Path) -> str:
    """Damage the lookups folder one way; returns what was done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    if not files:
        return "no file left to damage"
    target = folder / g.choice(files)
    how = g.choice(
        [
            "remove", "empty", "header_only", "ragged", "dup_same", "dup_conflict", "bad_text",
            "utf16", "bom", "mutate", "mutate", "mutate", "imd_values", "unknown_icb",
            "measures", "measures", "upper_name", "two_copies", "dir_named", "padded",
            "parquet_copy", "blank_values",
        ]
    )  # fmt: skip
    text = target.read_bytes()
    if how == "remove":
        target.unlink()
    elif how == "empty":
        target.write_bytes(b"")
    elif how == "header_only":
        target.write_bytes(text.split(b"\n")[0] + b"\n")
    elif how == "ragged":
        target.write_bytes(mu.ragged(text, g.rng))
    elif how in ("dup_same", "dup_conflict"):
        lines = text.rstrip(b"\n").split(b"\n")
        if len(lines) > 1:
            row = g.choice(lines[1:])
            if how == "dup_conflict" and b"," in row:
                key, _, _ = row.partition(b",")
                row = key + b"," + g.choice([b"QCC", b"QAA", b"3", b"ZZZ"])
            lines.append(row)
        target.write_bytes(b"\n".join(lines) + b"\n")
    elif how == "bad_text":
        target.write_bytes(
            mu.header_bad_text(text, g.rng) if g.bool() else mu.insert_bad_text(text, g.rng)
        )
    elif how == "utf16":
        target.write_bytes(mu.utf16(text, g.rng))
    elif how == "bom":
        target.write_bytes(mu.bom(text, g.rng))
    elif how == "mutate":
        data, names = mu.mutate(text, g.rng, mu.TEXT_MUTATORS)
        target.write_bytes(data)
        how = "mutate:" + "+".join(names)
    elif how == "imd_values":
        target = folder / "lsoa_imd.csv"
        value = g.choice(
            ["0", "11", "x", "3.5", "", "NA", "-1", "1e1", "99999999999999999999", "\u0663"]
        )
        with target.open("a", encoding="utf-8") as fh:
            fh.write(f"E01000009,{value}\n")
        how = f"imd_values {value!r}"
    elif how == "unknown_icb":
        target = folder / g.choice(["practice_icb.csv", "lsoa_icb.csv"])
        with target.open("a", encoding="utf-8") as fh:
            fh.write(f"{'A99999' if 'practice' in target.name else 'E01000099'},QZZ\n")
    elif how == "measures":
        variant = g.choice(
            ["int_measure", "unknown_kind", "edoc_no_exam", "many", "case", "empty", "mutated"]
        )
        path = folder / "measures.csv"
        if variant == "int_measure":
            pq.write_table(
                pa.table({"measure": [1, 2], "kind": ["modality"] * 2,
                          "modality": ["Plain Radiography", "Fluoroscopy"],
                          "exam_code": pa.nulls(2, pa.string())}),
                folder / "measures.parquet",
            )  # fmt: skip
        elif variant == "unknown_kind":
            path.write_text("measure,kind,modality,exam_code\nX,weird,Plain Radiography,\n")
        elif variant == "edoc_no_exam":
            path.write_text("measure,kind,modality\nX,edoc,Plain Radiography\n")
        elif variant == "many":
            rows = "\n".join(
                f"M{i},modality,Plain Radiography," for i in range(g.choice([64, 65, 200]))
            )
            path.write_text("measure,kind,modality,exam_code\n" + rows + "\n")
        elif variant == "case":
            path.write_text(
                "measure,kind,modality,exam_code\nX-ray,modality,Plain Radiography,\n"
                "x-RAY,modality,Fluoroscopy,\n"
            )
        elif variant == "empty":
            path.write_text("measure,kind,modality,exam_code\n")
        else:
            base = (
                b"measure,kind,modality,exam_code\nX-ray,modality,Plain Radiography,\n"
                b"CT,edoc,Computerized Axial Tomography,CCHES\n"
            )
            path.write_bytes(mu.mutate(base, g.rng, mu.TEXT_MUTATORS)[0])
        how = f"measures {variant}"
    elif how == "upper_name":
        target.rename(folder / target.name.upper())
    elif how == "two_copies":
        (folder / (target.stem + ".CSV")).write_bytes(text)
    elif how == "dir_named":
        target.unlink()
        target.mkdir()
    elif how == "padded":
        lines = text.split(b"\n")
        lines[0] = b" " + lines[0].upper().replace(b",", b" , ")
        target.write_bytes(b"\n".join(ln.replace(b",", "\u00a0,".encode()) for ln in lines))
    elif how == "parquet_copy":
        import pyarrow.csv as pacsv

        try:
            t = pacsv.read_csv(target)
        except (pa.ArrowException, OSError):
            return f"{target.name}: unreadable, left as it is"
        target.unlink()
        pq.write_table(t, target.with_suffix(".parquet"))
    elif how == "blank_values":
        lines = text.split(b"\n")
        target.write_bytes(b"\n".join([lines[0], *(b"," * ln.count(b",") for ln in lines[1:])]))
    return f"{target.name}: {how}"


def case_lookups(g: Gen, d: Path) -> Case:
    """A broken lookups folder (or a lookups path that is no folder)."""
    from didcore.lookup import Lookups

    t = table(spec(g, max_rows=40))
    save_ipc(t, d / "input.arrow")
    folder = fx.write_lookups(d / "lookups")
    damage = [_lookup_damage(g, folder) for _ in range(g.choice([1, 1, 1, 2, 3]))]
    target: Path = folder
    if g.bool(0.05):
        target = folder / "icb.csv" if (folder / "icb.csv").exists() else d / "nope"
        damage.append(f"lookups path {target.name}")

    def oracle() -> Any:
        return _ref_of_table(t, lk=Lookups.read(target))

    return Case(
        "lookups",
        g.seed,
        "; ".join(damage),
        lambda: _aggregate(t, str(target)),
        oracle,
    )


def case_lookups_typed(g: Gen, d: Path) -> Case:
    """The same lookups re-encoded as a writer might (Parquet with dictionary, binary or
    large text codes, numeric IMD deciles; CSV with upper-case headers, padding, quotes, CRLF,
    a BOM): read, they must give exactly the lookups of the plain CSV folder.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from didcore.lookup import Lookups

    folder = fx.write_lookups(d / "lookups")
    done = []
    for name, cols in fx.lookup_tables().items():
        if not g.bool(0.6):
            continue
        how = g.choice(["parquet", "parquet", "csv_dressed"])
        if how == "parquet":
            arrays = {}
            for col, values in cols.items():
                if col == "imd_decile":
                    kind = g.choice(["int8", "int64", "float64", "string", "decimal"])
                    if kind == "string":
                        arrays[col] = pa.array([f"0{v}" if g.bool() else v for v in values])
                    elif kind == "decimal":
                        arrays[col] = pa.array([Decimal(v) for v in values], pa.decimal128(4, 1))
                    else:
                        arrays[col] = pa.array([int(v) for v in values]).cast(kind)
                else:
                    ty = g.choice(
                        [pa.string(), pa.large_string(), pa.binary(), pa.string_view(), "dict"]
                    )
                    arr = pa.array(values, pa.string())
                    arrays[col] = arr.dictionary_encode() if ty == "dict" else arr.cast(ty)
            (folder / f"{name}.csv").unlink()
            t = pa.table(arrays)
            try:
                pq.write_table(t, folder / f"{name}.parquet")
            except (pa.ArrowException, OSError):
                pq.write_table(_parquet_safe(t), folder / f"{name}.parquet")
            done.append(f"{name}: parquet {t.schema.types}")
        else:
            header = [g.choice([c, c.upper(), f" {c} ", c.title()]) for c in cols]
            rows = zip(*cols.values(), strict=True)
            q = g.bool()
            cell = (lambda v: f'"{v}"') if q else (lambda v: g.choice(["", " ", "\xa0"]) + str(v))
            text = "\r\n".join([",".join(header), *(",".join(map(cell, r)) for r in rows)])
            data = ("\ufeff" if g.bool(0.3) else "") + text + "\r\n"
            (folder / f"{name}.csv").write_bytes(data.encode("utf-8"))
            done.append(f"{name}: csv {header}{' quoted' if q else ''}")
    t = table(spec(g, max_rows=30))
    save_ipc(t, d / "input.arrow")

    def check(cube: Any) -> list[str]:
        problems = fx.conservation_errors(cube)
        got, want = Lookups.read(folder), fx.lookups()
        for attr in ("icb_codes", "practice_icb", "other_practices", "lsoa_icb", "lsoa_quintile"):
            a, b = getattr(got, attr), getattr(want, attr)
            if (dict(a) if isinstance(a, dict) else a) != (dict(b) if isinstance(b, dict) else b):
                problems.append(f"lookups read differ in {attr}: {a!r:.120} != {b!r:.120}")
        problems += fx.cube_differences(cube, _ref_of_table(t))
        return problems

    return Case(
        "lookups_typed",
        g.seed,
        "; ".join(done) or "plain",
        lambda: _aggregate(t, str(folder)),
        lambda: _ref_of_table(t),
        expect="valid",
        check=check,
    )


# ------------------------------------------------------------------ misbehaving Arrow objects


def own(exc: BaseException) -> BaseException:
    """Mark an exception the case's own code raises (a stream, an export, a ``to_arrow()``):
    if it reaches the caller as the same object, didcore let the caller's error through
    unchanged (outcome ``PASSTHROUGH``), which is reported apart from didcore's own errors.
    """
    exc.fuzz_origin = True  # type: ignore[attr-defined]
    return exc


class _Raises:
    """``__arrow_c_stream__`` raising, or returning something other than a stream capsule."""

    def __init__(self, t: Any, how: str) -> None:
        self._t = t
        self._how = how

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        how = self._how
        if how == "schema_capsule":
            return self._t.schema.__arrow_c_schema__()
        if how == "array_capsule":
            return self._t.to_batches()[0].__arrow_c_array__()[1] if self._t.num_rows else None
        if how == "none":
            return None
        if how == "int":
            return 5
        if how == "tuple":
            return self._t.to_batches()[0].__arrow_c_array__() if self._t.num_rows else ()
        if how == "self":
            return self
        exc = {
            "ValueError": ValueError("bad"),
            "TypeError": TypeError("bad"),
            "RuntimeError": RuntimeError("bad"),
            "KeyError": KeyError("bad"),
            "NotImplementedError": NotImplementedError("no"),
            "OSError": OSError(5, "I/O error"),
            "MemoryError": MemoryError(),
            "RecursionError": RecursionError(),
        }[how]
        raise own(exc)


class _NoArgStream:
    """``__arrow_c_stream__`` that takes no ``requested_schema`` argument."""

    def __init__(self, t: Any) -> None:
        self._t = t

    def __arrow_c_stream__(self) -> Any:
        return self._t.__arrow_c_stream__()


class _ToArrowOdd:
    """``to_arrow()`` returning itself, nothing, a number, a new wrapper, or raising."""

    def __init__(self, how: str, depth: int = 0) -> None:
        self._how = how
        self._depth = depth

    def to_arrow(self) -> Any:
        if self._how == "self":
            return self
        if self._how == "none":
            return None
        if self._how == "int":
            return 5
        if self._how == "chain":
            return _ToArrowOdd("chain", self._depth + 1)
        raise own(RuntimeError("to_arrow failed"))


class _ArrowList:
    def arrow(self) -> Any:
        return [1, 2, 3]


def _unsafe_dictionary(g: Gen, t: Any) -> tuple[Any, str]:
    """Replace a text column with a DictionaryArray whose indices point outside its
    dictionary (built with ``safe=False``), in one of every index width.
    """
    import numpy as np
    import pyarrow as pa

    n = len(t)
    text = [f.name for f in t.schema if f.name in (*CODE_ROLES,)]
    col = g.choice(text)
    index_type = g.choice(
        [
            pa.int8(),
            pa.int16(),
            pa.int32(),
            pa.int64(),
            pa.uint8(),
            pa.uint16(),
            pa.uint32(),
            pa.uint64(),
        ]
    )
    dictionary = pa.array(
        g.choice([["RM3", "A81001", "1", "E01000001", "XCHES"], ["x"], []]),
        g.choice([pa.string(), pa.large_string(), pa.string_view(), pa.binary()]),
    )
    info = np.iinfo(index_type.to_pandas_dtype())
    candidates = [len(dictionary), len(dictionary) + 1, info.max, info.min, -1, 127, 255, 2**31 - 1]
    bad = g.choice(
        [b for b in candidates if info.min <= b <= info.max and not 0 <= b < len(dictionary)]
    )
    idx = [g.int(0, max(len(dictionary) - 1, 0)) if len(dictionary) else 0 for _ in range(n)]
    idx[g.int(0, n - 1)] = bad
    arr = pa.DictionaryArray.from_arrays(pa.array(idx, index_type), dictionary, safe=False)
    return t.set_column(t.schema.get_field_index(col), col, arr), f"{col} {arr.type} index {bad}"


def _bad_offsets(g: Gen, t: Any) -> tuple[Any, str]:
    """A string column whose offsets run past its data or go backwards (unsafe buffers)."""
    import numpy as np
    import pyarrow as pa

    n = len(t)
    col = g.choice([f.name for f in t.schema if f.name in CODE_ROLES])
    data = b"RM3A81001E01000001"
    offsets = np.arange(n + 1, dtype=np.int32) * 3 % (len(data) + 1)
    offsets = np.sort(offsets)
    how = g.choice(["backwards", "backwards", "invalid_utf8"])
    if how == "backwards" and n > 1:
        offsets[1], offsets[2 if n > 2 else 1] = offsets[-1], 0
    elif how == "negative":
        offsets[g.int(0, n)] = -5
    else:
        data = b"\xff\xfe" + data[2:]
    arr = pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )
    return t.set_column(t.schema.get_field_index(col), col, arr), f"{col} offsets {how}"


def case_arrow(g: Gen, d: Path) -> Case:
    """Misbehaving Arrow objects: streams that break part-way or change shape, C stream
    methods that raise or return the wrong thing, ``to_arrow()`` loops, unsafe dictionaries,
    string arrays with bad offsets.
    """
    import pyarrow as pa

    s = spec(g, max_rows=40)
    for retry in range(1, 20):  # these cases need rows to misbehave with
        if s.rows:
            break
        s = spec(Gen(g.seed + 11 * retry), max_rows=40)
    if not s.rows:
        raise Skip("no rows")
    s.cuts = []  # one batch: the misbehaviour is put in by hand below
    bs, schema = batches(s)
    t = pa.Table.from_batches(bs, schema)
    what = g.choice(
        [
            "raise_midway", "c_stream_breaks", "later_lacks_column", "later_other_type",
            "wrong_capsule", "wrong_capsule", "no_arg_stream", "to_arrow_odd", "arrow_list",
            "unsafe_dict", "unsafe_dict", "unsafe_dict", "bad_offsets",
        ]
    )  # fmt: skip
    expect = "error"
    oracle = None
    variant = what
    with contextlib.suppress(pa.ArrowException):
        t = t.combine_chunks()
    first = t.slice(0, max(1, len(t) // 2)).to_batches() or [t.to_batches()[0]]
    rest = t.slice(max(1, len(t) // 2)).to_batches()

    if what in ("raise_midway", "c_stream_breaks"):
        exc_type = g.choice([ValueError, RuntimeError, OSError, KeyError, pa.ArrowInvalid])

        def gen() -> Any:
            yield from first
            raise own(exc_type("the stream broke"))

        variant = f"{what} ({exc_type.__name__})"

        def source() -> Any:
            reader = pa.RecordBatchReader.from_batches(schema, gen())
            return _Stream(reader) if what == "c_stream_breaks" else reader

    elif what == "later_lacks_column":
        drop = g.choice([f.name for f in schema])

        def source() -> Any:
            later = [b.drop_columns([drop]) for b in rest] or [first[0].drop_columns([drop])]
            reader = pa.RecordBatchReader.from_batches(schema, iter([*first, *later]))
            return _Stream(reader) if g.bool() else reader

        variant = f"later batch lacks {drop}"
    elif what == "later_other_type":
        col = g.choice(["sex", "age" if "age" in schema.names else "test_date", "lsoa11"])
        if col not in schema.names:
            col = "sex"
        later_batches = []
        for b in rest or first:
            arr = b.column(col)
            try:
                new = (
                    arr.cast(pa.string())
                    if not pa.types.is_string(arr.type)
                    else pa.array([None] * len(arr), pa.int64())
                )
            except pa.ArrowException:
                new = pa.nulls(len(arr), pa.int64())
            later_batches.append(b.set_column(b.schema.get_field_index(col), col, new))
        every = [*first, *later_batches]

        def source() -> Any:
            return pa.RecordBatchReader.from_batches(schema, iter(every))

        def oracle() -> Any:
            rows = [r for b in every for r in fx.reference_rows(pa.Table.from_batches([b]))]
            return fx.reference(rows, use_age=s.use_age)

        expect = "any"
        variant = f"later batch has {col} as another type"
    elif what == "wrong_capsule":
        how = g.choice(
            [
                "schema_capsule", "array_capsule", "none", "int", "tuple", "self", "ValueError",
                "TypeError", "RuntimeError", "KeyError", "NotImplementedError", "OSError",
                "MemoryError", "RecursionError",
            ]
        )  # fmt: skip

        def source() -> Any:
            return _Raises(t, how)

        variant = f"__arrow_c_stream__ -> {how}"
    elif what == "no_arg_stream":

        def source() -> Any:
            return _NoArgStream(t)

        oracle = lambda: _ref_of_table(t)  # noqa: E731
        expect = "any"
    elif what == "to_arrow_odd":
        how = g.choice(["self", "none", "int", "chain", "raise"])

        def source() -> Any:
            return _ToArrowOdd(how)

        variant = f"to_arrow -> {how}"
    elif what == "arrow_list":

        def source() -> Any:
            return _ArrowList()

    elif what == "unsafe_dict":
        bad, variant = _unsafe_dictionary(g, t)
        form = g.choice(["table", "reader", "batch"])
        variant = f"unsafe dictionary: {variant} via {form}"

        def source() -> Any:
            if form == "reader":
                return pa.RecordBatchReader.from_batches(bad.schema, bad.to_batches())
            if form == "batch":
                return bad.to_batches()[0]
            return bad

        save_ipc(bad, d / "input.arrow")
    else:
        bad, variant = _bad_offsets(g, t)
        save_ipc(bad, d / "input.arrow")
        try:  # offsets that happen to be valid make a valid (if odd) column
            bad.validate(full=True)
            oracle = lambda: _ref_of_table(bad)  # noqa: E731
            expect = "valid"
            variant += " (valid after all)"
        except pa.ArrowException:
            pass

        def source() -> Any:
            return bad

    if what not in ("unsafe_dict", "bad_offsets"):
        save_ipc(t, d / "input.arrow")
    return Case("arrow", g.seed, variant, lambda: _aggregate(source()), oracle, expect=expect)


# ------------------------------------------------------------------ command line


@dataclass
class CliRun:
    """What a command-line run did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    out: Path | None
    old_files: dict[str, bytes] | None = None
    timed_out: bool = False
    #: stderr lines (besides notes and warnings) an exit 2 must have; 0: any number, each
    #: starting "didcore" (``check`` prints one per failing guard)
    lines: int = 1


def _didcore_cmd(g: Gen) -> list[str]:
    script = Path(sys.executable).with_name("didcore")
    if script.exists() and g.bool(0.3):
        return [str(script)]
    return [sys.executable, "-m", "didcore.cli"]


def case_cli(g: Gen, d: Path) -> Case:
    """``didcore cube`` (or ``report``) on valid, mutated or absent inputs, broken lookups,
    odd options, and outputs that cannot be written (an existing file, /dev/full, a file-size
    limit, an immutable folder); exit 0, or 2 with one line, and old outputs intact.
    """
    import resource
    import signal
    import subprocess

    s = spec(g, max_rows=60)
    t = table(s)
    lookups = fx.write_lookups(d / "lookups")
    # one hostile thing a run (or none), so that each shows on its own
    axis = g.choice(["none", "extract", "extract", "extract", "lookups", "option", "out", "out"])
    extract_kind = g.choice(["parquet", "parquet", "csv"])
    if axis == "extract":
        extract_kind = g.choice(
            ["mutated", "mutated", "mutated_csv", "mutated_csv", "absent", "badutf8"]
        )
    oracle = None
    if extract_kind == "parquet":
        extract = d / "extract.parquet"
        write_parquet(g, t, extract)
        oracle = lambda: oracle_parquet(extract)  # noqa: E731
    elif extract_kind == "csv":
        extract = _write_csv_file(g, s, d)
        oracle = lambda: oracle_csv(extract)  # noqa: E731
    elif extract_kind == "mutated":
        extract = d / "extract.parquet"
        write_parquet(g, t, extract)
        extract.write_bytes(mu.mutate(extract.read_bytes(), g.rng, mu.PARQUET_MUTATORS)[0])
    elif extract_kind == "mutated_csv":
        extract = d / "extract.csv"
        extract.write_bytes(mu.mutate(write_csv(g, s, extract), g.rng, mu.TEXT_MUTATORS)[0])
    elif extract_kind == "badutf8":
        extract, _ = _bad_utf8_parquet(g, d)
    else:
        extract = d / "missing.parquet"
    if axis == "lookups":
        _lookup_damage(g, lookups)
        extract_kind += "+broken lookups"
        oracle = None
    out = d / "out"
    opts: list[str] = ["-q"] if g.bool(0.7) else []
    odd = None if axis != "option" else g.choice(
        [
            "--max-age 99999999999999999999", "--max-age -5",
            "--max-age 2147483647", "--max-age abc", "--threads -1", "--threads 0",
            "--threads 99999999999999999999", "--threads 1", "--column provider_code=lsoa11",
            "--column bad", "--column sex=", "--column =x", "--column age=nope",
            "--map sex=M:1,F:2", "--map bad", "--map sex=:1", "--map age=1:2", "--map sex=M:",
            "--map modality=XR:Plain Radiography", "--year 2023/24", "--year x",
            "--year 2023/25", "--year 99999",
        ]
    )  # fmt: skip
    if odd:
        opts += odd.split(" ")
    if g.bool(0.6):  # let the guards pass, so dirty extracts are counted rather than refused
        for guard in ("sex-coding", "modality-coding", "exclusions", "no-measure", "empty-measure"):
            opts += ["--allow", guard]
    # the command line's counts are the API's (checked there); here: exit status, one line,
    # conservation in every exclusions.csv written, old outputs intact on failure
    oracle = None
    out_kind = g.choice(["fresh", "old"])
    if axis == "out":
        out_kind = g.choice(
            ["old", "is_file", "dev_full", "fsize", "fsize", "immutable", "long", "nested_file"]
        )
    old_files: dict[str, bytes] | None = None
    preexec = None
    # an earlier didcore output (its marker says so): a failed run must leave it as it was
    marker = b"Written by didcore.\nkind: outputs\n"
    if out_kind == "old":
        out.mkdir()
        old_files = {
            ".didcore-output": marker,
            "cube.csv": b"old cube\n",
            "exclusions.csv": b"old\n",
        }
        for k, v in old_files.items():
            (out / k).write_bytes(v)
    elif out_kind == "is_file":
        out.write_bytes(b"a file")
    elif out_kind == "dev_full":
        out = Path("/dev/full/out")
    elif out_kind == "nested_file":
        (d / "afile").write_bytes(b"x")
        out = d / "afile" / "out"
    elif out_kind == "long":
        out = d / ("o" * 300)
    elif out_kind == "fsize":
        out.mkdir()
        old_files = {".didcore-output": marker, "cube.csv": b"old cube\n"}
        for k, v in old_files.items():
            (out / k).write_bytes(v)
        limit = g.choice([64, 300, 2000])

        def preexec() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        out_kind = f"fsize {limit}"
    elif out_kind == "immutable":
        out.mkdir()
        old_files = {".didcore-output": marker, "cube.csv": b"old cube\n"}
        for k, v in old_files.items():
            (out / k).write_bytes(v)
        ok = subprocess.run(["chattr", "+i", str(out)], capture_output=True, check=False)
        if ok.returncode != 0:
            out_kind = "old (chattr unavailable)"
    sigint = axis == "none" and g.bool(0.3)
    if sigint:  # a long enough count to be interrupted twice (Ctrl-C, then Ctrl-C again)
        line = b"RM3,A81001,E01000001,1,40,Plain Radiography,XCHES\n"
        extract = d / "big.csv"
        extract.write_bytes(
            b"provider_code,gp_practice_code,lsoa11,sex,age,modality,exam_code\n" + line * 1_500_000
        )
        extract_kind, oracle, out_kind, preexec = "sigint x2", None, "fresh", None
        out = d / "out"
    command = g.choice(["cube"] * 8 + ["report", "check", "lookups"]) if not sigint else "cube"
    if command == "report":  # with no --population: refused in one line
        opts = [
            o for i, o in enumerate(opts) if o != "--allow" and (i == 0 or opts[i - 1] != "--allow")
        ]
    argv = [
        *_didcore_cmd(g),
        command,
        str(extract),
        "--lookups",
        str(lookups),
        *(["--out", str(out)] if command != "check" else []),
        *opts,
    ]
    if command == "lookups":  # the shipped lookups written as a folder
        argv = [*_didcore_cmd(g), "lookups", "--out", str(out), *(["-q"] if g.bool() else [])]
        if old_files and out.is_dir():  # an earlier lookups folder, then, to be replaced
            old_files[".didcore-output"] = b"Written by didcore.\nkind: lookups\n"
            subprocess.run(["chattr", "-i", str(out)], capture_output=True, check=False)
            (out / ".didcore-output").write_bytes(old_files[".didcore-output"])
            if out_kind == "immutable":
                subprocess.run(["chattr", "+i", str(out)], capture_output=True, check=False)
    if command == "check":  # writes nothing: no outputs to keep, no year folders
        drop = {i for i, a in enumerate(argv) if a == "--max-age"}  # check has no --max-age
        argv = [a for i, a in enumerate(argv) if i not in drop and i - 1 not in drop]
        if g.bool(0.3):
            argv.append("--json")

    delays = (g.rng.uniform(0.5, 1.0), g.rng.uniform(0.02, 0.3))

    def run() -> CliRun:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if sigint:
            import time

            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                errors="replace",
            )  # fmt: skip
            time.sleep(delays[0])
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            time.sleep(delays[1])
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                stdout, stderr = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
                return CliRun(argv, -999, stdout, stderr, out, None, timed_out=True)
            return CliRun(argv, proc.returncode, stdout, stderr, out, None)
        try:
            p = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, preexec_fn=preexec, env=env,
                errors="replace", check=False,
            )  # fmt: skip
            if command == "check":  # it writes nothing; several failing guards, several lines
                return CliRun(argv, p.returncode, p.stdout, p.stderr, None, None, lines=0)
            return CliRun(argv, p.returncode, p.stdout, p.stderr, out, old_files)
        except subprocess.TimeoutExpired as exc:
            return CliRun(argv, -999, "", str(exc.stderr or ""), out, old_files, timed_out=True)
        finally:
            if out_kind == "immutable":
                subprocess.run(["chattr", "-i", str(out)], capture_output=True, check=False)

    variant = f"{command} {extract_kind} {odd or ''} out={out_kind}".replace("  ", " ")
    return Case("cli", g.seed, variant, run, oracle, cli=True)


# ------------------------------------------------------------------ fresh processes

#: Kinds a solo case re-runs in a fresh interpreter (file inputs: reader threads are alive
#: when an error stops the count, which is where an abort at exit came from).
SOLO_KINDS = ("solo_badutf8", "mutate_parquet", "parquet", "csv", "mutate_csv")


def case_solo_badutf8(g: Gen, d: Path) -> Case:
    """One row group, a binary code column holding bytes that are not UTF-8."""
    path, variant = _bad_utf8_parquet(g, d)
    return Case("solo_badutf8", g.seed, variant, lambda: _aggregate(path), None)


# ------------------------------------------------------------------ larger extracts


def case_big(g: Gen, d: Path) -> Case:
    """A larger extract (5,000-40,000 rows, drawn from pools of clean and dirty values, many
    distinct codes) through the multi-threaded count: Table, Parquet with many row groups,
    or CSV; equal to the reference.
    """
    import numpy as np
    import pyarrow as pa

    from .strategies import AGE_TEXT, DATE_TEXT, SEX_TEXT

    n = g.choice([5_000, 12_000, 40_000])
    rng = np.random.default_rng(g.seed % 2**32)
    sample = [g.draw(st_row) for st_row in [_big_row_strategy()] * 40]

    def pick(values: list[Any], size: int = n) -> list[Any]:
        idx = rng.integers(0, len(values), size)
        return [values[i] for i in idx]

    providers = pick(
        [r["provider_code"] for r in sample] + [f"P{i:05d}" for i in range(g.choice([3, 3000]))]
    )
    cols: dict[str, Any] = {
        "provider_code": providers,
        "gp_practice_code": pick([r["gp_practice_code"] for r in sample] + list(fx.PRACTICES) * 5),
        "lsoa11": pick([r["lsoa11"] for r in sample] + list(fx.LSOA_ICB) * 5),
        "sex": pick([*SEX_TEXT, "1", "2"] * 2 + [None]),
        "modality": pick([r["modality"] for r in sample]),
        "exam_code": pick([r["exam_code"] for r in sample]),
        "test_date": pick([*DATE_TEXT, "2023-06-01", "2024-01-15", None]),
    }
    if g.bool(0.7):
        cols["age"] = (
            pick([*AGE_TEXT, *map(str, range(0, 100))])
            if g.bool()
            else [int(x) for x in rng.integers(-2, 120, n)]
        )
    else:
        cols["date_of_birth"] = pick([*DATE_TEXT, "1950-02-28", "2000-12-31"])
    t = pa.table(cols)
    if g.bool(0.5):
        t = pa.table(
            {k: pa.array(v).dictionary_encode() if g.bool() else v for k, v in cols.items()}
        )
    form = g.choice(["table", "parquet", "csv"])
    path = d / ("extract.parquet" if form == "parquet" else "extract.csv")
    if form == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(t, path, row_group_size=g.choice([1_000, 7_000, 50_000]))
    elif form == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(t, path)
    threads = g.choice([None, 1, 2, 3])

    def oracle() -> Any:
        if form == "parquet":
            return oracle_parquet(path)
        if form == "csv":
            return oracle_csv(path)
        return _ref_of_table(t)

    return Case(
        "big",
        g.seed,
        f"{n} rows via {form}, n_threads={threads}",
        lambda: _aggregate(t if form == "table" else path, n_threads=threads),
        oracle,
        expect="oracle" if form == "csv" else "valid",
    )


def _big_row_strategy() -> Any:
    from hypothesis import strategies as st

    from .strategies import exam_st, lsoa_st, modality_st, practice_st, provider_st

    return st.fixed_dictionaries(
        {
            "provider_code": provider_st,
            "gp_practice_code": practice_st,
            "lsoa11": lsoa_st,
            "modality": modality_st,
            "exam_code": exam_st,
        }
    )


# ------------------------------------------------------------------ financial years


def fy_label(day: Any) -> str | None:
    """The financial year (1 April to 31 March) of a test date, as ``"2023/24"``; ``None``
    for no date, or one no DID test can have (before 1 April 2012, when the dataset began,
    or after today): docs/inputs.md counts those rows as having no usable test date.
    """
    import datetime as dt

    if isinstance(day, dt.datetime):
        day = day.date()
    if day is None or not dt.date(2012, 4, 1) <= day <= dt.date.today():
        return None
    start = day.year - (day.month < 4)
    return f"{start:04d}/{(start + 1) % 100:02d}"


def case_years(g: Gen, d: Path) -> Case:
    """``aggregate(by_year=True)``: each record in the cube of its test date's financial
    year, undated rows apart, the total equal to the whole extract; or a declared ``year=``
    for an extract with no test dates.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = spec(g, max_rows=80)
    t = table(s)
    declared = s.use_age and g.bool(0.25)
    year: Any = None
    if declared:
        t = t.drop_columns(["test_date"])
        s = Spec([{k: v for k, v in r.items() if k != "test_date"} for r in s.rows], {}, True)
        s.types = {n: None for n in t.column_names}
        year = g.choice(
            [
                "2023/24",
                "2023-24",
                2023,
                "2023",
                "1999/00",
                " 2024/25 ",
                "2023/25",
                "x",
                True,
                99999,
            ]
        )
    form = g.choice(["table", "parquet", "csv"])
    path = d / ("extract.parquet" if form == "parquet" else "extract.csv")
    if form == "parquet":
        write_parquet(g, t, path)
    elif form == "csv":
        path.write_bytes(write_csv(g, s, path))
    else:
        save_ipc(t, d / "input.arrow")

    def rows() -> list[dict[str, Any]]:
        if form == "parquet":
            return fx.reference_rows(pq.read_table(path))
        if form == "csv":
            return oracle_csv_rows(path)
        return fx.reference_rows(t)

    def run() -> Any:
        source = t if form == "table" else path
        return _aggregate(source, by_year=True, year=year)

    def check(result: Any) -> list[str]:
        from didcore.years import year_label

        try:
            all_rows = rows()
        except Invalid:
            return []
        problems = []
        for label, cube in [*result.items(), ("undated", result.undated)]:
            problems += [f"{label}: {p}" for p in fx.conservation_errors(cube)]
        whole = fx.reference(all_rows, use_age=s.use_age)
        problems += [f"total: {p}" for p in fx.cube_differences(result.total, whole)]
        groups: dict[str | None, list[dict[str, Any]]] = {}
        for r in all_rows:
            label = year_label(year) if declared else fy_label(r.get("test_date"))
            groups.setdefault(label, []).append(r)
        got = set(result)
        want = {k for k in groups if k is not None} | ({year_label(year)} if declared else set())
        if got != want:
            problems.append(f"years {sorted(got)} != reference {sorted(want)}")
        for label, part in groups.items():
            cube = result.undated if label is None else result.get(label)
            if cube is None:
                continue
            ref = fx.reference(part, use_age=s.use_age)
            problems += [f"{label or 'undated'}: {p}" for p in fx.cube_differences(cube, ref)]
        if None not in groups and result.undated.rows_read:
            problems.append(f"undated holds {result.undated.rows_read} rows; reference none")
        return problems

    valid = not declared or year in ("2023/24", "2023-24", 2023, "2023", "1999/00", " 2024/25 ")
    del pa
    return Case(
        "years",
        g.seed,
        f"{form}{f' year={year!r}' if declared else ''}, {len(t)} rows",
        run,
        (lambda: fx.reference(rows(), use_age=s.use_age)) if valid else None,
        expect=("oracle" if form == "csv" else "valid") if valid else "error",
        check=check,
    )


# ------------------------------------------------------------------ value maps

_MAP_CHOICES: dict[str, list[tuple[str, Any]]] = {
    "sex": [("M", "1"), ("F", "2"), ("x", ""), ("9", "1"), ("1", "2"), (" m ", "1"), ("male", "1")],
    "modality": [
        ("XR", "Plain Radiography"),
        ("Other Thing", "Plain Radiography"),
        ("x-ray", "Fluoroscopy"),
        ("Plain Radiography", "Fluoroscopy"),
        ("Fluoroscopy", ""),
        ("NA", "Medical Photography"),
    ],
    "exam_code": [("ZZZZZ", "XCHES"), ("xches", "MBRAI"), ("CCHES", "")],
    "gp_practice_code": [("X00000", "A81001"), ("a81002", "W91001"), ("A81001", "")],
    "lsoa11": [("E01999999", "E01000001"), ("E01000001", ""), ("W01000001", "E01000005")],
}


def _map_rows(rows: list[dict[str, Any]], maps: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The rows with each mapped column recoded as docs/inputs.md says: keys matched as codes
    (trimmed, upper-cased), a blank target is missing, other values left as they are.
    """
    from didcore.lookup import normalise_code

    out = []
    for r in rows:
        r = dict(r)
        for role, mapping in maps.items():
            key = normalise_code(r.get(role))
            if key is not None and key in mapping:
                r[role] = mapping[key] or None
        out.append(r)
    return out


def case_valuemaps(g: Gen, d: Path) -> Case:
    """Value maps (API ``value_maps=`` and/or ``value_maps.csv`` in the lookups folder):
    counts equal the reference on the recoded rows; bad maps are refused.
    """
    import pyarrow as pa

    from didcore.lookup import normalise_code

    s = spec(g, max_rows=60)
    t = table(s)
    save_ipc(t, d / "input.arrow")
    sex_type = t.schema.field("sex").type
    sex_text = pa.types.is_string(sex_type) or (
        pa.types.is_dictionary(sex_type) and pa.types.is_string(sex_type.value_type)
    )
    roles = [r for r in _MAP_CHOICES if r != "sex" or sex_text]
    api: dict[str, dict[Any, Any]] = {}
    for role in g.rng.sample(roles, g.int(1, len(roles))):
        api[role] = dict(g.rng.sample(_MAP_CHOICES[role], g.int(1, len(_MAP_CHOICES[role]))))
    bad = g.choice([None] * 6 + ["role", "blank_key", "not_dict", "int_value", "none_value"])
    expect = "valid"
    if bad == "role":
        api[g.choice(["age", "provider_code", "Sex", "test_date"])] = {"1": "2"}
        expect = "error"
    elif bad == "blank_key":
        api.setdefault("modality", {})["  "] = "Fluoroscopy"
        expect = "error"
    elif bad == "not_dict":
        api = g.choice([["sex"], "sex=M:1", {"sex": "M:1"}, 5])  # type: ignore[assignment]
        expect = "error"
    elif bad == "int_value":
        api.setdefault("exam_code", {})["ZZZZZ"] = 7
        expect = "any"
    elif bad == "none_value":
        api.setdefault("exam_code", {})["XKNEE"] = None
    where = g.choice(["api", "api", "file", "both"]) if bad in (None, "none_value") else "api"
    lookups: Any = fx.lookups()
    file_maps: dict[str, dict[str, str]] = {}
    if where in ("file", "both"):
        folder = fx.write_lookups(d / "lookups")
        lines = ["column,from,to"]
        for role in g.rng.sample(roles, g.int(1, len(roles))):
            for src, dst in g.rng.sample(_MAP_CHOICES[role], g.int(1, 2)):
                file_maps.setdefault(role, {})[src] = dst
                lines.append(f"{role},{src},{dst}")
        (folder / "value_maps.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        lookups = str(folder)

    def merged() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        layers = [file_maps] + ([api] if where != "file" else [])
        for layer in layers:
            for role, mapping in layer.items():
                for src, dst in mapping.items():
                    key = normalise_code(src)
                    if key:
                        out.setdefault(role, {})[key] = "" if dst is None else str(dst).strip()
        return out

    def run() -> Any:
        kwargs = {} if where == "file" else {"value_maps": api}
        return _aggregate(t, lookups, **kwargs)

    def oracle() -> Any:
        from didcore.lookup import Lookups

        lk = Lookups.read(lookups) if isinstance(lookups, str) else lookups
        return fx.reference(_map_rows(fx.reference_rows(t), merged()), lk=lk, use_age=s.use_age)

    variant = f"{where}: {api if where != 'file' else ''} {file_maps or ''}"[:160]
    return Case("valuemaps", g.seed, variant, run, oracle, expect=expect)


# ------------------------------------------------------------------ odd files and populations


def case_files(g: Gen, d: Path) -> Case:
    """Files that are not what their names say, or hold next to nothing: a CSV named
    .parquet and the reverse, an Arrow IPC or JSON file as an extract, an empty file, a
    header alone, a BOM alone, an empty gzip, a folder named like a file, a symlink loop.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = spec(g, max_rows=30)
    t = table(s)
    what = g.choice(
        [
            "csv_as_parquet", "parquet_as_csv", "ipc", "json", "empty_parquet", "empty_csv",
            "header_only", "bom_only", "empty_gz", "dir_as_file", "symlink_loop",
            "parquet_no_rows", "many_files",
        ]
    )  # fmt: skip
    source: Any
    expect = "any"
    oracle = None
    if what == "csv_as_parquet":
        source = d / "extract.parquet"
        source.write_bytes(write_csv(g, s, source))
    elif what == "parquet_as_csv":
        source = d / "extract.csv"
        write_parquet(g, t, source)
    elif what == "ipc":
        source = d / g.choice(["extract.arrow", "extract.feather", "extract.csv"])
        save_ipc(t, source)
    elif what == "json":
        source = d / "extract.csv"
        source.write_text(json_rows(s))
    elif what == "empty_parquet":
        source = d / "extract.parquet"
        source.write_bytes(b"")
    elif what == "empty_csv":
        source = d / g.choice(["extract.csv", "extract.tsv", "extract.csv.gz"])
        source.write_bytes(b"")
    elif what == "header_only":
        source = d / "extract.csv"
        source.write_bytes(write_csv(g, Spec([], s.types, s.use_age), source))
        oracle = lambda: oracle_csv(source)  # noqa: E731
        expect = "oracle"
    elif what == "bom_only":
        source = d / "extract.csv"
        source.write_bytes(b"\xef\xbb\xbf")
    elif what == "empty_gz":
        source = d / "extract.csv.gz"
        source.write_bytes(gzip.compress(b""))
    elif what == "dir_as_file":
        source = d / "extract"
        (source / "part.parquet").mkdir(parents=True)
        (source / "real.csv").write_bytes(write_csv(g, s, source / "real.csv"))
    elif what == "symlink_loop":
        source = d / "extract"
        source.mkdir()
        (source / "part.csv").write_bytes(write_csv(g, s, source / "part.csv"))
        (source / "loop").symlink_to(source, target_is_directory=True)
    elif what == "parquet_no_rows":
        source = d / "extract.parquet"
        pq.write_table(_parquet_safe(t.slice(0, 0)), source)
        oracle = lambda: oracle_parquet(source)  # noqa: E731
        expect = "valid"
    else:
        source = d / "extract"
        source.mkdir()
        for i in range(g.choice([50, 200])):
            part = Spec(s.rows[i % max(len(s.rows), 1) :][:1], s.types, s.use_age)
            pq.write_table(_parquet_safe(table(part)), source / f"p{i:04d}.parquet")

        def oracle() -> Any:
            rows = []
            for p in sorted(source.iterdir()):
                rows.extend(fx.reference_rows(pq.read_table(p)))
            return fx.reference(rows, use_age=s.use_age)

        expect = "valid"
    del pa
    return Case("files", g.seed, what, lambda: _aggregate(source), oracle, expect=expect)


def json_rows(s: Spec) -> str:
    """The rows as JSON lines (what an API export might hand over instead of a CSV)."""
    import json

    return "\n".join(json.dumps({k: text_value(v) for k, v in r.items()}) for r in s.rows)


def _population_rows(g: Gen) -> list[dict[str, Any]]:
    from didcore.cube import AGE_BANDS

    rows = []
    for icb in fx.ICBS:
        for sex in ("1", "2"):
            for band in AGE_BANDS:
                for q in range(1, 6):
                    rows.append(
                        {
                            "icb_code": icb,
                            "sex": sex,
                            "age_band": band,
                            "imd_quintile": str(q),
                            "population": str(g.int(0, 5000)),
                        }
                    )
    return rows


def case_population(g: Gen, d: Path) -> Case:
    """A population file, valid or damaged (bad values, duplicates, unknown ICBs, missing
    columns, bytes), read for the cube's ICBs, then a standardisation with it.
    """
    import numpy as np

    from didcore.population import Population

    rows = _population_rows(g)
    how = g.choice(
        [
            "valid", "valid", "value", "value", "value", "duplicate", "unknown_icb",
            "drop_column", "mutate", "mutate", "year", "case_headers", "parquet",
        ]
    )  # fmt: skip
    header = list(rows[0])
    variant = how
    if how == "value":
        col = g.choice(header)
        bad = g.choice(
            [
                "", "-1", "NaN", "inf", "1e400", "x", "3", "0", "9", "1.5", "90+", "100-104",
                "\u0663", "QZZ", " qaa ", "1e308", "-0", "99999999999999999999",
            ]
        )  # fmt: skip
        rows[g.int(0, len(rows) - 1)][col] = bad
        variant = f"{col}={bad!r}"
    elif how == "duplicate":
        rows.append(dict(g.choice(rows)))
    elif how == "unknown_icb":
        rows.append({**rows[0], "icb_code": "QZZ"})
    elif how == "drop_column":
        col = g.choice(header)
        header.remove(col)
        variant = f"no {col}"
    elif how == "year":
        value = g.choice(["2023/24", "2023-24", "2023", "23/24", "2023/25", "x", ""])
        header.append("year")
        for r in rows:
            r["year"] = value
        if g.bool(0.3):
            rows[0]["year"] = "2022/23"
        variant = f"year {value!r}"
    elif how == "case_headers":
        rows = [{k.upper(): v for k, v in r.items()} for r in rows]
        header = [h.upper() for h in header]
    text = "\n".join([",".join(header), *(",".join(r[h] for h in header) for r in rows)]) + "\n"
    data = text.encode("utf-8")
    path = d / "population.csv"
    if how == "mutate":
        data, names = mu.mutate(data, g.rng, mu.TEXT_MUTATORS)
        variant = "mutate:" + "+".join(names)
    if how == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = d / "population.parquet"
        cols = {h: [r[h] for r in rows] for h in header}
        cols["population"] = [int(v) for v in cols["population"]]
        pq.write_table(pa.table(cols), path)
    else:
        path.write_bytes(data)
    cube_table = table(spec(g, max_rows=40))
    # a cube of several financial years is refused unless allowed (docs/guards.md)
    allow = {"allow": {"multiple-years"}} if g.bool(0.6) else {}

    def run() -> Any:
        import didcore

        pop = Population.read(path, fx.lookups().icb_codes)
        cube = _aggregate(cube_table)
        return pop, didcore.standardise(cube, pop, **allow)

    def check(result: Any) -> list[str]:
        pop, _rates = result
        if how in ("valid", "parquet", "case_headers"):
            want = sum(float(r.get("population", r.get("POPULATION", 0))) for r in rows)
            if not np.isclose(pop.values.sum(), want):
                return [f"population total {pop.values.sum()} != file total {want}"]
        return []

    case = Case(
        "population", g.seed, variant, run, None, expect="valid" if how == "valid" else "any"
    )
    case.check = check
    return case


# ------------------------------------------------------------------ more sources


def case_duckdb(g: Gen, d: Path) -> Case:
    """A DuckDB relation (an Arrow C stream of DuckDB's making) over the spec's table."""
    try:
        import duckdb
    except ImportError as exc:
        raise Skip("duckdb is not installed") from exc
    t = _polars_safe(table(spec(g)))
    con = duckdb.connect()
    try:
        con.register("t", t)
        query = g.choice(
            ["select * from t", "select * from t order by 1", "select * from t limit 7"]
        )
        rel = con.sql(query)
        back = rel.arrow()
        back = back.read_all() if hasattr(back, "read_all") else back
    except Exception as exc:
        raise Skip(f"duckdb: {type(exc).__name__}: {exc}") from exc
    save_ipc(back, d / "input.arrow")
    return Case(
        "duckdb",
        g.seed,
        f"{query}, {len(back)} rows",
        lambda: _aggregate(con.sql(query)),
        lambda: _ref_of_table(back),
        expect="valid",
    )


def case_names(g: Gen, d: Path) -> Case:
    """Column names a path-minded reader may misread: dots ("a.b" is a nested path to some
    readers), slashes, spaces, brackets, non-ASCII, very long; named with ``Columns``.
    """
    from didcore.io import Columns

    s = spec(g, max_rows=40)
    t = table(s)
    style = g.choice(["dot", "dot", "slash", "space", "bracket", "unicode", "long", "quote"])

    def new(name: str) -> str:
        return {
            "dot": f"x.{name}", "slash": f"{name}/1", "space": f"{name} col",
            "bracket": f"{name}[0]", "unicode": f"{name}\u00e9\u4e2d", "long": name + "_" * 300,
            "quote": f'"{name}"',
        }[style]  # fmt: skip

    names = {n: new(n) for n in t.column_names}
    if g.bool(0.3):  # a decoy: a struct column whose field path is the dotted name
        import pyarrow as pa

        t = t.append_column(
            "x",
            pa.array(
                [{"provider_code": "ZZZ"}] * len(t), pa.struct([("provider_code", pa.string())])
            ),
        )
        names["x"] = "x"
    t = t.rename_columns([names[n] for n in t.column_names])
    mapping = {r: names[r] for r in ROLES if r in names}
    form = g.choice(["table", "parquet", "csv"])
    path = d / ("extract.parquet" if form == "parquet" else "extract.csv")
    if form == "parquet":
        write_parquet(g, t, path)
    elif form == "csv":
        if "x" in t.column_names:
            t = t.drop_columns(["x"])
        s2 = Spec([{names[k]: v for k, v in r.items()} for r in s.rows], {}, s.use_age)
        s2.types = {n: None for n in t.column_names}
        path.write_bytes(write_csv(g, s2, path))
    else:
        save_ipc(t, d / "input.arrow")

    def oracle() -> Any:
        cols = Columns(**mapping)
        if form == "parquet":
            return oracle_parquet(path, cols)
        if form == "csv":
            return oracle_csv(path, cols)
        return _ref_of_table(t, cols)

    return Case(
        "names",
        g.seed,
        f"{style} names via {form}",
        lambda: _aggregate(t if form == "table" else path, columns=Columns(**mapping)),
        oracle,
        expect="oracle" if form == "csv" else "valid",
    )


# ------------------------------------------------------------------ aggregated counts


def case_from_counts(g: Gen, d: Path) -> Case:
    """``Cube.from_counts`` on a cube's long table, as written or damaged (bad labels,
    negative, null, fractional or huge counts, wrong types, a missing column); a valid table
    must round-trip to the same counts.
    """
    import numpy as np
    import pyarrow as pa

    from didcore.cube import Cube

    cube = _aggregate(table(spec(g, max_rows=60)))
    long = cube.to_arrow()
    long = pa.table(
        {
            n: long.column(n).cast(pa.string())
            if pa.types.is_dictionary(long.schema.field(n).type)
            else long.column(n)
            for n in long.column_names
        }
    )
    how = g.choice(["valid", "valid", "value", "value", "drop", "type", "sex_codes"])
    variant = how
    n = len(long)
    if how == "value" and n:
        col = g.choice(long.column_names)
        bad = g.choice(
            {
                "icb_code": ["QZZ", None, "", " qaa "],
                "sex": ["3", None, "M", ""],
                "age_band": ["95+", "0-5", None, "90 +"],
                "imd_quintile": [0, 6, None, -1],
                "measure": ["Nope", None, ""],
                "count": [-1, None, 2**62, 0],
            }[col]
        )
        values = long.column(col).to_pylist()
        values[g.int(0, n - 1)] = bad
        long = long.set_column(
            long.schema.get_field_index(col), col, pa.array(values, long.schema.field(col).type)
        )
        variant = f"{col}={bad!r}"
    elif how == "drop":
        col = g.choice(long.column_names)
        long = long.drop_columns([col])
        variant = f"no {col}"
    elif how == "type" and n:
        col = g.choice(long.column_names)
        new = g.choice(
            [pa.array([[1]] * n), pa.array([1.5] * n), pa.array([True] * n), pa.nulls(n)]
        )
        long = long.set_column(long.schema.get_field_index(col), col, new)
        variant = f"{col} as {new.type}"
    elif how == "sex_codes":
        codes = {"male": g.choice(["1", 1, "male"]), "female": g.choice(["2", 2, "female"])}
        sexes = [codes[v] for v in long.column("sex").to_pylist()]
        long = long.set_column(long.schema.get_field_index("sex"), "sex", pa.array(sexes))
    save_ipc(long, d / "input.arrow")

    def run() -> Any:
        return Cube.from_counts(
            long, icb_codes=cube.icb_codes, measures=cube.measures, measure_kinds=cube.measure_kinds
        )

    def check(result: Any) -> list[str]:
        if how in ("valid", "sex_codes") and not np.array_equal(result.counts, cube.counts):
            return ["from_counts(to_arrow()) does not give the counts back"]
        if (result.counts < 0).any():
            return ["negative counts accepted"]
        return []

    return Case(
        "from_counts",
        g.seed,
        variant,
        run,
        None,
        expect="valid" if how == "valid" else "any",
        check=check,
    )


# ------------------------------------------------------------------ harness self-tests


SELFTESTS = ("segfault", "raw", "hang", "abort_at_exit", "miscount", "internal", "ok")


def case_selftest(g: Gen, d: Path) -> Case:
    """Misbehaviours the harness must classify (never drawn in campaigns): a segfault, a raw
    exception, a hang, an abort at interpreter exit, a miscount.
    """
    import atexit
    import signal
    import time

    how = SELFTESTS[g.seed % len(SELFTESTS)]

    def run() -> Any:
        if how == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "raw":
            raise KeyError("selftest")
        if how == "hang":
            time.sleep(3600)
        if how == "internal":
            from didcore.errors import InternalError

            raise InternalError("selftest")
        if how == "abort_at_exit":
            atexit.register(os.abort)
        return _aggregate(fx.lookups() and _tiny())

    def oracle() -> Any:
        rows = fx.reference_rows(_tiny())
        if how == "miscount":
            rows = rows[:-1]
        return fx.reference(rows)

    return Case("selftest", g.seed, how, run, oracle, expect="valid")


def _tiny() -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "provider_code": ["RM3", "RWF"],
            "gp_practice_code": ["A81001", None],
            "lsoa11": ["E01000001", "E01000002"],
            "sex": ["1", "2"],
            "age": [40, 91],
            "modality": ["Plain Radiography"] * 2,
            "exam_code": ["XCHES", None],
        }
    )


# ------------------------------------------------------------------ registry

KINDS: dict[str, Callable[[Gen, Path], Case]] = {
    "table": case_table,
    "polars": case_polars,
    "parquet": case_parquet,
    "csv": case_csv,
    "folder": case_folder,
    "args": case_args,
    "columns": case_columns,
    "schema": case_schema,
    "mutate_parquet": case_mutate_parquet,
    "mutate_csv": case_mutate_csv,
    "lookups": case_lookups,
    "arrow": case_arrow,
    "cli": case_cli,
    "solo_badutf8": case_solo_badutf8,
    "files": case_files,
    "population": case_population,
    "years": case_years,
    "big": case_big,
    "lookups_typed": case_lookups_typed,
    "from_counts": case_from_counts,
    "duckdb": case_duckdb,
    "names": case_names,
    "valuemaps": case_valuemaps,
    "selftest": case_selftest,
}

#: How often each kind is drawn (out of the sum); ``solo`` runs another kind's case in a
#: fresh interpreter.
WEIGHTS: dict[str, int] = {
    "table": 13,
    "polars": 5,
    "parquet": 13,
    "csv": 10,
    "folder": 4,
    "args": 8,
    "columns": 6,
    "schema": 8,
    "mutate_parquet": 10,
    "mutate_csv": 9,
    "lookups": 8,
    "arrow": 9,
    "files": 4,
    "population": 5,
    "years": 6,
    "big": 1,
    "lookups_typed": 3,
    "from_counts": 3,
    "duckdb": 2,
    "names": 3,
    "valuemaps": 4,
    "cli": 3,
    "solo": 2,
}


def pick_kind(seed: int, kinds: list[str] | None = None) -> str:
    """The kind of the case with this seed (weighted, deterministic)."""
    import random

    names = list(WEIGHTS) if kinds is None else list(kinds)
    rng = random.Random(seed * 7919 + 17)
    return rng.choices(names, weights=[WEIGHTS.get(k, 1) for k in names])[0]


def solo_inner(seed: int, kinds: list[str] | None = None) -> str:
    """The kind a solo case runs in its fresh interpreter."""
    import random

    if kinds:
        return random.Random(seed * 31 + 5).choice(kinds)
    return random.Random(seed * 31 + 5).choice(
        [
            "solo_badutf8",
            "solo_badutf8",
            "solo_badutf8",
            "mutate_parquet",
            "parquet",
            "csv",
            "mutate_csv",
        ]
    )


def build(kind: str, seed: int, folder: Path) -> Case:
    """Build the case ``(kind, seed)`` in ``folder`` (which must exist and be empty)."""
    return KINDS[kind](Gen(seed), folder)
