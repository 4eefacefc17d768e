"""Counting a Spark DataFrame where it lives: :func:`aggregate` (``didcore.spark.aggregate``).

Record-level DID data on Databricks or another Spark platform cannot be moved to one machine;
the cube it counts into is small (a few hundred kilobytes). So each Spark task counts its own
partition with :func:`didcore.aggregate` (the Rust core, one counting thread a task: Spark runs
a task per core) inside ``DataFrame.mapInArrow``, writes the partial cube as a cube file's
bytes (:mod:`didcore.cubefile`: lossless, counts, exclusions and quality tables alike), and
the partials are added by a tree reduce (``RDD.treeAggregate``): the result equals
``didcore.aggregate`` of the same records on one machine, exactly.

How it keeps to that:

* Only the columns counting needs are selected before ``mapInArrow`` (the same
  ``columns=`` mapping as :func:`didcore.aggregate`); they are checked on the driver first,
  by counting an empty batch of the DataFrame's Arrow schema, so a missing column or a type
  didcore cannot read is the same error as on one machine before any task runs. That empty
  count is also the result of an empty DataFrame.
* Spark hands Python Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows
  (10,000 by default), which made counting 2.6 times slower than batches of a million rows:
  each task joins them into batches of ``batch_rows`` rows (a million by default) before
  counting, one copy of the columns. Raising Spark's own setting for the job
  (``spark_batch_rows``, put back after it) saves that copy but makes the JVM build
  million-row batches: on local[2] it was no faster (docs/spark.md), so it is off by default.
* The lookups are read once, on the driver (a path there need not exist on the executors),
  and broadcast once.
* A task records the warnings it raises (an :class:`~didcore.errors.UnreadableValuesWarning`
  for ages that are not numbers, say) and sends them back with its cube: each is raised once
  on the driver with its category; the counted ones (``column 'age': 12 rows hold ...``) are
  added up over the tasks, so the message is the one a single count would give.
* A task's :class:`~didcore.errors.DidcoreError` (an ``InputError`` for bad input) is sent
  back as its type and message, not raised in the task (Spark would wrap it in its own
  exception): the caller gets the same didcore exception type with the same message.

Spark 3.4 or newer (``mapInArrow``), with ``pip install "didcore[spark]"`` on the driver and
didcore on the executors (a cluster library: see docs/spark.md). On Spark Connect (Databricks
shared and serverless compute), which has no RDDs, the partial cubes are collected and added
on the driver instead of by a tree reduce, and the lookups travel with the function.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from didcore.classify import MAX_PROVIDERS
from didcore.errors import DidcoreError, InputError, InternalError

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.columns import Columns
    from didcore.cube import Cube
    from didcore.lookup import Lookups
    from didcore.years import YearCubes

__all__ = ["ARROW_BATCH_CONF", "DEFAULT_BATCH_ROWS", "aggregate"]

#: Rows per batch handed to the counting core in each task: a million rows keep the core's
#: per-batch work (dictionary classification, thread hand-offs) under 2% of the run.
DEFAULT_BATCH_ROWS = 1_000_000
#: The Spark setting of how many rows each Arrow batch sent to Python holds.
ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"
#: What each task returns: a partial cube file's bytes, or an error; and its warnings.
_TASK_SCHEMA = "cube binary, error string, warnings string"


@overload
def aggregate(
    df: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    by_year: Literal[False] = ...,
    year: None = ...,
    batch_rows: int = ...,
    spark_batch_rows: int | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    depth: int = ...,
) -> Cube: ...


@overload
def aggregate(
    df: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    by_year: Literal[True],
    year: str | int | None = ...,
    batch_rows: int = ...,
    spark_batch_rows: int | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    depth: int = ...,
) -> YearCubes: ...


@overload
def aggregate(
    df: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    by_year: bool = ...,
    year: str | int | None = ...,
    batch_rows: int = ...,
    spark_batch_rows: int | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    depth: int = ...,
) -> Cube | YearCubes: ...


def aggregate(
    df: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = None,
    by_year: bool = False,
    year: str | int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    spark_batch_rows: int | None = None,
    max_age: int | None = None,
    max_providers: int = MAX_PROVIDERS,
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
    depth: int = 2,
) -> Cube | YearCubes:
    """Count a Spark DataFrame of DID records into a :class:`~didcore.Cube` (or, with
    ``by_year=True`` or ``year``, a :class:`~didcore.years.YearCubes`), partition by partition
    on the executors, equal to :func:`didcore.aggregate` of the same records.

    Parameters
    ----------
    df
        A ``pyspark.sql.DataFrame`` with the extract's columns (docs/inputs.md), e.g.
        ``spark.read.parquet(path)`` or ``spark.table("catalog.schema.did")``; other columns
        are not read.
    lookups, columns, by_year, year, max_age, value_maps
        As for :func:`didcore.aggregate`. The lookups (default: the national ones shipped
        with didcore) are read on the driver and broadcast.
    batch_rows
        Rows per batch counted in each task (default a million; at least 1,000): Spark's
        smaller Arrow batches are joined into batches of this size.
    spark_batch_rows
        Set Spark's Arrow batch size (``spark.sql.execution.arrow.maxRecordsPerBatch``) to
        this for the job, and put it back after; ``None`` (the default) leaves it as it is.
    max_providers
        As for :func:`didcore.aggregate`, for each task: a task folds the provider codes past
        this number into ``"(other providers)"``.
    depth
        Depth of the tree reduce adding the partial cubes (``RDD.treeAggregate``).

    Raises the didcore exception a single count would (a task's is rebuilt on the driver
    with its type and message), and :class:`~didcore.errors.MissingExtraError` without
    pyspark.
    """
    from didcore.arguments import check_max_age, check_max_providers
    from didcore.extras import require
    from didcore.lookup import as_lookups

    require("spark", "didcore.spark.aggregate")
    max_age = check_max_age(max_age)
    max_providers = check_max_providers(max_providers)
    batch_rows = _check_whole("batch_rows", batch_rows, 1_000)
    if spark_batch_rows is not None:
        spark_batch_rows = _check_whole("spark_batch_rows", spark_batch_rows, 1_000)
    depth = _check_whole("depth", depth, 1)
    _check_dataframe(df)
    lk = as_lookups(lookups)
    from didcore.columns import Columns

    cols = columns or Columns()
    names, _ = cols.needed(list(df.columns))
    dated = cols.test_date in names
    per_year = by_year or year is not None
    if year is not None:
        from didcore.years import year_label

        year_label(year)  # an InputError now, not after the job
    options: dict[str, Any] = {
        "columns": cols,
        "max_age": max_age,
        "max_providers": max_providers,
        "value_maps": value_maps,
        "by_year": per_year,
        # with test dates each task splits its rows by them; the declared year is checked
        # against the whole DataFrame's years below (a task may hold none of its rows)
        "year": None if dated else year,
    }
    empty = _empty_batch(df, names)
    zero = _count([empty], lk, options)  # the driver's checks, and the empty DataFrame's result
    selected = df.select(*(_column(n) for n in names))
    spark = df.sparkSession
    if spark_batch_rows is None:
        partial = _run(selected, spark, lk, options, batch_rows, depth)
    else:
        changed, previous = _set_batch_size(spark, spark_batch_rows)
        try:
            partial = _run(selected, spark, lk, options, batch_rows, depth)
        finally:
            _restore_batch_size(spark, changed, previous)
    data, error, caught = partial if partial is not None else (None, None, [])
    if error is not None:
        raise _rebuild(error) from None
    result = zero if data is None else zero + _load(data, per_year)
    _rewarn(caught)
    if per_year and dated and year is not None:
        result = _declared_year(result, year, lk, options, empty)
    return result


# -------------------------------------------------------------------------- the driver's part


def _check_whole(name: str, value: object, least: int) -> int:
    from didcore.arguments import _whole

    n = _whole(value, name, f"a whole number from {least:,}")
    if n < least:
        raise InputError(f"{name} must be a whole number from {least:,}, not {n}")
    return n


def _check_dataframe(df: Any) -> None:
    if not all(hasattr(df, a) for a in ("mapInArrow", "sparkSession", "columns", "schema")):
        raise InputError(
            f"didcore.spark.aggregate counts a pyspark DataFrame (Spark 3.4 or newer), not a "
            f"{type(df).__name__}; for files or Arrow data use didcore.aggregate"
        )


def _column(name: str) -> Any:
    from pyspark.sql import functions as F  # noqa: N812 (pyspark's own convention)

    return F.col("`" + name.replace("`", "``") + "`")


def _empty_batch(df: Any, names: list[str]) -> pa.RecordBatch:
    """An empty batch of ``names`` with the Arrow types Spark gives the tasks."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_type

    from didcore.errors import ColumnTypeError

    fields = []
    by_name = {f.name: f for f in df.schema.fields}
    for name in names:
        spark_type = by_name[name].dataType
        try:
            arrow_type = to_arrow_type(spark_type)
        except Exception as exc:  # pyspark's own error types differ between versions
            raise ColumnTypeError(
                f"column {name!r} has the Spark type {spark_type.simpleString()}, which Spark "
                "cannot hand to Python as Arrow; cast it to a string, number or date"
            ) from exc
        fields.append(pa.field(name, arrow_type))
    schema = pa.schema(fields)
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def _set_batch_size(spark: Any, rows: int) -> tuple[bool, str | None]:
    """Set Spark's Arrow batch size to ``rows``: whether it was set, and the earlier value
    (None: unset).
    """
    try:
        previous = spark.conf.get(ARROW_BATCH_CONF, None)
        spark.conf.set(ARROW_BATCH_CONF, str(rows))
    except Exception:  # a platform that refuses the setting: the tasks join batches anyway
        warnings.warn(
            f"Spark refused the setting {ARROW_BATCH_CONF}; the tasks join its batches instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return False, None
    return True, (str(previous) if previous is not None else None)


def _restore_batch_size(spark: Any, changed: bool, previous: str | None) -> None:
    if not changed:
        return
    try:
        if previous is None:
            spark.conf.unset(ARROW_BATCH_CONF)
        else:
            spark.conf.set(ARROW_BATCH_CONF, previous)
    except Exception:  # refused above too
        return


def _spark_context(spark: Any) -> Any:
    """The SparkContext, or None on Spark Connect (no RDDs, no broadcast variables)."""
    try:
        return spark.sparkContext
    except Exception:  # Spark Connect raises its own not-implemented error
        return None


Partial = tuple[bytes | None, dict[str, Any] | None, list[dict[str, Any]]]


def _run(
    selected: Any, spark: Any, lk: Lookups, options: dict[str, Any], batch_rows: int, depth: int
) -> Partial | None:
    """Count every partition and add the partials: the tree reduce, or on Spark Connect a
    collect and a sum on the driver. None when the DataFrame has no partition with rows.
    """
    sc = _spark_context(spark)
    merge = functools.partial(_merge, by_year=bool(options["by_year"]))
    if sc is None:
        task = _Task(lk, None, options, batch_rows)
        partials = [_partial(row) for row in selected.mapInArrow(task, _TASK_SCHEMA).collect()]
        return functools.reduce(merge, partials, None)
    shared = sc.broadcast(lk)
    try:
        task = _Task(None, shared, options, batch_rows)
        rows = selected.mapInArrow(task, _TASK_SCHEMA).rdd
        result: Partial | None = rows.treeAggregate(
            None, lambda acc, row: merge(acc, _partial(row)), merge, depth=depth
        )
        return result
    finally:
        shared.unpersist()


def _load(data: bytes, by_year: bool) -> Any:
    from didcore.cubefile import read_cube, read_year_cubes

    return read_year_cubes(data) if by_year else read_cube(data)


def _dump(result: Any) -> bytes:
    from didcore.cube import Cube

    if isinstance(result, Cube):
        return result.to_bytes()
    return bytes(result.to_bytes())


def _partial(row: Any) -> Partial:
    """A task's row as a partial: cube bytes, error, warnings."""
    data = None if row["cube"] is None else bytes(row["cube"])
    error = None if row["error"] is None else json.loads(row["error"])
    return data, error, json.loads(row["warnings"])


def _merge(a: Partial | None, b: Partial | None, *, by_year: bool) -> Partial | None:
    """Two partials added (on an executor, in the tree reduce, or on the driver): the cubes
    read, added and written back; the first error kept; the warnings of both.
    """
    if a is None or b is None:
        return a if a is not None else b
    caught = [*a[2], *b[2]]
    error = a[1] or b[1]
    if error is not None:
        return None, error, caught
    if a[0] is None or b[0] is None:
        return (a[0] if a[0] is not None else b[0]), None, caught
    return _dump(_load(a[0], by_year) + _load(b[0], by_year)), None, caught


def _rebuild(error: Mapping[str, Any]) -> DidcoreError:
    """A task's didcore exception, as its own type with its own message."""
    import didcore.errors as errors

    cls = getattr(errors, str(error.get("type")), None)
    message = str(error.get("message", ""))
    if not (isinstance(cls, type) and issubclass(cls, DidcoreError)):
        cls = InputError if error.get("input") else InternalError
    try:
        if issubclass(cls, errors.GuardError):
            return cls(message, str(error.get("guard") or ""))
        return cls(message)
    except TypeError:  # an exception class with other arguments: the nearest general one
        return InputError(message) if error.get("input") else InternalError(message)


# "column 'age': 1,234 rows hold a value that is not a number (e.g. 'x'); counted as ..."
_COUNTED = re.compile(
    r"(?P<head>column .+?: )(?P<n>\d[\d,]*) rows? holds? (?P<what>.+?) "
    r"\(e\.g\. (?P<example>.*)\)(?P<tail>; .*)",
    re.DOTALL,
)


def merge_warnings(caught: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """The tasks' warnings as ``(module, category, message)``, each once, in task order: the
    counted ones (``column 'age': 12 rows hold ...``) of one column and kind added up over
    the tasks (the first task's example kept), others once per distinct message.
    """
    from didcore.values import _rows_holding

    items = sorted(caught, key=lambda w: (w.get("task", 0), w.get("order", 0)))
    merged: dict[tuple[str, ...], list[Any]] = {}
    for w in items:
        module, category, message = str(w["module"]), str(w["category"]), str(w["message"])
        m = _COUNTED.fullmatch(message)
        if m is None:
            merged.setdefault((module, category, message), [module, category, message, None])
            continue
        key = (module, category, m["head"], m["what"], m["tail"])
        n = int(m["n"].replace(",", ""))
        if key in merged:
            merged[key][3] += n
        else:
            merged[key] = [module, category, m, n]
    out = []
    for module, category, m, n in merged.values():
        if n is None:
            out.append((module, category, m))
        else:
            text = f"{m['head']}{_rows_holding(n, m['what'])} (e.g. {m['example']}){m['tail']}"
            out.append((module, category, text))
    return out


def _rewarn(caught: Iterable[Mapping[str, Any]]) -> None:
    """Raise the tasks' warnings on the driver, each once, with their own categories."""
    import builtins
    import importlib

    for module, category, message in merge_warnings(caught):
        try:
            cls = getattr(importlib.import_module(module), category)
        except (ImportError, AttributeError):
            cls = getattr(builtins, category, UserWarning)
        if not (isinstance(cls, type) and issubclass(cls, Warning)):
            cls = UserWarning
        warnings.warn(cls(message), stacklevel=3)


def _declared_year(
    result: YearCubes, year: str | int, lk: Lookups, options: dict[str, Any], empty: Any
) -> YearCubes:
    """Check a declared ``year`` against the test dates of the whole DataFrame, as
    :func:`didcore.aggregate` does for one extract.
    """
    from didcore.years import year_label

    label = year_label(year)
    if label in result:
        return result
    if len(result):
        raise InputError(
            f"the extract's test dates give the financial year(s) {', '.join(result)}, not {label}"
        )
    # no dated row at all: the declared year's cube is empty, as on one machine
    declared = _count([empty], lk, {**options, "year": label})
    return result + declared  # type: ignore[no-any-return]


# -------------------------------------------------------------------------- the tasks' part


def _count(batches: Iterable[pa.RecordBatch], lk: Lookups, options: Mapping[str, Any]) -> Any:
    """:func:`didcore.aggregate` of ``batches`` on one core, no progress bar."""
    from didcore.counting import aggregate as count

    return count(batches, lk, n_threads=1, progress=False, **options)


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` joined into batches of at least ``rows`` rows (the last may be smaller;
    a batch already that large passes as it is, without a copy). Empty batches are dropped.
    """
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not held and batch.num_rows >= rows:
            yield batch
            continue
        held.append(batch)
        n += batch.num_rows
        if n >= rows:
            yield _joined(held)
            held, n = [], 0
    if held:
        yield _joined(held)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).combine_chunks()
    return pa.RecordBatch.from_arrays(
        [column.chunk(0) for column in table.columns], schema=table.schema
    )


class _Task:
    """The function ``mapInArrow`` runs on each partition: count it, return one row.

    Pickled to the executors by reference to this module (didcore is installed there) with
    its state: the options and the broadcast lookups (or, on Spark Connect, the lookups).
    """

    def __init__(
        self, lookups: Lookups | None, shared: Any, options: dict[str, Any], batch_rows: int
    ) -> None:
        self.lookups = lookups
        self.shared = shared
        self.options = options
        self.batch_rows = batch_rows

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        joined = rechunk(batches, self.batch_rows)
        first = next(joined, None)
        if first is None:  # an empty partition adds nothing
            return
        data: bytes | None = None
        error: dict[str, Any] | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                lk = self.lookups if self.lookups is not None else self.shared.value
                data = _dump(_count(_chain(first, joined), lk, self.options))
            except DidcoreError as exc:
                error = {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "guard": getattr(exc, "guard", None),
                    "input": isinstance(exc, InputError),
                }
        task = _task_id()
        found = [
            {
                "module": w.category.__module__,
                "category": w.category.__name__,
                "message": str(w.message),
                "task": task,
                "order": i,
            }
            for i, w in enumerate(caught)
        ]
        yield pa.RecordBatch.from_pydict(
            {
                "cube": pa.array([data], pa.binary()),
                "error": pa.array([None if error is None else json.dumps(error)], pa.string()),
                "warnings": pa.array([json.dumps(found)], pa.string()),
            }
        )


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _task_id() -> int:
    """The running task's partition (the warnings' order on the driver); 0 outside Spark."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return int(context.partitionId()) if context is not None else 0
    except ImportError:
        return 0
