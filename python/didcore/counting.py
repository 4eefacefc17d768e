"""Counting an extract: :func:`aggregate` (``didcore.aggregate``, re-exported by
:mod:`didcore.cube`) streams it batch by batch through the classifier
(:mod:`didcore.classify`) into the Rust core, and builds the :class:`~didcore.cube.Cube`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from didcore.classify import MAX_PROVIDERS, BatchClassifier
from didcore.errors import InputError, MeasureDefinitionError
from didcore.io import Columns, open_extract, prefetch
from didcore.lookup import Lookups, as_lookups

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.cube import Cube
    from didcore.profile import ValueProfile
    from didcore.years import YearCubes

_DEFAULT_MAX_AGE: int | None = None


# -------------------------------------------------------------------------- aggregation


@overload
def aggregate(
    source: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    n_threads: int | None = ...,
    progress: bool | None = ...,
    by_year: Literal[False] = ...,
    year: None = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    on_first_batch: Callable[[ValueProfile], None] | None = ...,
    full_profile: bool = ...,
) -> Cube: ...


@overload
def aggregate(
    source: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    n_threads: int | None = ...,
    progress: bool | None = ...,
    by_year: Literal[True],
    year: str | int | None = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    on_first_batch: Callable[[ValueProfile], None] | None = ...,
    full_profile: bool = ...,
) -> YearCubes: ...


@overload
def aggregate(
    source: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = ...,
    max_age: int | None = ...,
    max_providers: int = ...,
    n_threads: int | None = ...,
    progress: bool | None = ...,
    by_year: bool = ...,
    year: str | int | None = ...,
    value_maps: Mapping[str, Mapping[str, str]] | None = ...,
    on_first_batch: Callable[[ValueProfile], None] | None = ...,
    full_profile: bool = ...,
) -> Cube | YearCubes: ...


def aggregate(
    source: Any,
    lookups: Lookups | str | Any = None,
    *,
    columns: Columns | None = None,
    max_age: int | None = _DEFAULT_MAX_AGE,
    max_providers: int = MAX_PROVIDERS,
    n_threads: int | None = None,
    progress: bool | None = None,
    by_year: bool = False,
    year: str | int | None = None,
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
    on_first_batch: Callable[[ValueProfile], None] | None = None,
    full_profile: bool = False,
) -> Cube | YearCubes:
    """Aggregate a record-level extract into a :class:`Cube` (or, ``by_year=True``, one
    Cube per financial year: :class:`~didcore.years.YearCubes`).

    Parameters
    ----------
    source
        Parquet/CSV path(s) or folder, a pyarrow Table/RecordBatchReader, or any object with
        ``__arrow_c_stream__`` (polars, DuckDB). Read in record batches: memory stays flat.
    lookups
        A :class:`~didcore.lookup.Lookups`, the path of a lookups folder (docs/inputs.md), or
        ``None`` (the default) for the national lookups shipped with didcore
        (:meth:`~didcore.lookup.Lookups.default`).
    columns
        Column names, when they differ from the defaults (:class:`~didcore.io.Columns`).
    max_age
        Ages (in whole years) above this count as missing age, as negative ages always do.
        ``None`` (the default): no upper limit, every age from 90 up is in the 90+ band, as the
        publication bands them.
    max_providers
        Distinct provider codes counted one by one (default 20,000; England has a few
        hundred providers). Further codes are counted together as one provider,
        ``"(other providers)"``, with a :class:`~didcore.errors.TooManyProvidersWarning`:
        memory stays bounded when the column holds something else (a patient identifier).
    n_threads
        Worker threads for counting (default: all cores).
    progress
        Show a progress bar; ``None`` shows one only on a terminal.
    by_year
        Return a :class:`~didcore.years.YearCubes`: each record counted in the cube of the
        financial year of its ``test_date`` (1 April to 31 March), in the same single read;
        rows with a null or unreadable test date in ``.undated``. An extract with no
        ``test_date`` column is a :class:`~didcore.errors.MissingColumnError` unless ``year``
        declares its year.
    year
        The financial year (``"2023/24"``) of an extract with no ``test_date`` column: every
        row is counted in it. When the extract has test dates they decide, and ``year`` must
        be one of the years they give. Implies ``by_year=True``.
    value_maps
        ``{column role: {from: to}}`` recoding values before they are classified, e.g.
        ``{"sex": {"M": "1", "F": "2"}}`` (:mod:`didcore.valuemaps`); merged over the
        lookups folder's ``value_maps.csv``. The result's ``value_profile`` has the raw
        values of sex, modality and exam code with their row counts (for the guards).
    on_first_batch
        Called with the :class:`~didcore.profile.ValueProfile` of the first batch, before the
        rest is counted: the early guards (:func:`didcore.guards.early_guard`) raise there.
    full_profile
        Profile the exam codes, and the practice and LSOA codes that match no lookup, too
        (``didcore check``); by default only sex and modality are (about 3 ms per column
        per million rows).
    """
    from didcore import _didcore
    from didcore.arguments import check_max_age, check_max_providers, check_threads

    max_age = check_max_age(max_age)
    max_providers = check_max_providers(max_providers)
    n_threads = check_threads(n_threads)
    lk = as_lookups(lookups)
    extract = open_extract(source, columns)
    cols = columns or Columns()
    n_measures = len(lk.measures)
    if n_measures > _didcore.MAX_MEASURES:
        raise MeasureDefinitionError(
            f"{n_measures} measures defined; at most {_didcore.MAX_MEASURES} are supported"
        )
    classifier = BatchClassifier(
        lk, cols, extract.use_age, max_age=max_age, max_providers=max_providers
    )
    classifier.source = str(extract.files[0]) if len(extract.files) == 1 else None
    _use_value_maps(classifier, lk, value_maps, on_first_batch)
    classifier.profile.full = full_profile
    bar = _progress_bar(extract.total_rows, progress)
    if by_year or year is not None:
        from didcore.years import aggregate_years

        def new_aggregator() -> Any:
            return _didcore.Aggregator(
                len(lk.icb_codes),
                n_measures,
                max_age=max_age,
                n_threads=n_threads,
                column_names=_role_names(cols),
            )

        years = aggregate_years(
            extract, lk, classifier, new_aggregator, bar=bar, year=year, n_threads=n_threads
        )
        return _with_profile(years, classifier)
    agg = _didcore.Aggregator(
        len(lk.icb_codes),
        n_measures,
        max_age=max_age,
        n_threads=n_threads,
        column_names=_role_names(cols),
    )
    tally = _YearTally(cols.test_date)
    row_groups = None
    from didcore.parquet_native import RowGroupToCount, counting_enabled

    if extract.files and counting_enabled():
        # Parquet row groups the core can count as it decodes them come as RowGroupToCount
        from didcore.row_groups import RowGroupCounting, counting_roles

        extract.counting["roles"] = counting_roles(cols, extract.use_age, extract.dated)
        row_groups = RowGroupCounting(agg, classifier, tally, n_threads or _cores())

    def parts(item: Any) -> Iterator[tuple[int, int, Any]]:
        if row_groups is not None and isinstance(item, RowGroupToCount):
            template = classifier.classify_dictionaries(item.dictionaries, item.provider_nulls)
            yield 0, item.num_rows, (item, template)
            return
        with classifier.lock:  # the counting thread adds row groups' counts meanwhile
            args = classifier.classify(item)  # its errors first, as without the tally
            tally.add(item, classifier.dates.get(tally.column))
        yield 0, item.num_rows, args

    count_batches(extract, classifier, parts, lambda _key: agg, bar, row_groups)
    from didcore.cube import _cube_from_result

    result = agg.finish()
    classifier.warn_unreadable()
    cube = _cube_from_result(result, lk, classifier.provider_codes)
    object.__setattr__(cube, "year_rows", tally.labels())
    return _with_profile(cube, classifier)


def require_rows(result: Any, source: Any) -> None:
    """Refuse an extract that holds no rows (:class:`~didcore.errors.InputError`): the
    commands' outputs would be empty tables and guards passed on nothing. ``result`` is a
    Cube or YearCubes; ``source`` what was counted, named in the message. A library caller
    counting an empty table gets its empty cube: only the commands and the report refuse.
    """
    if result.exclusions.get("rows_read", 0):
        return
    items = list(source) if isinstance(source, list | tuple) else [source]
    names = [str(s) if isinstance(s, str) or hasattr(s, "__fspath__") else None for s in items]
    what = ", ".join(n for n in names if n) if all(names) else "given"
    raise InputError(
        f"the extract {what} holds no rows: check that it is the export you meant (an empty "
        "file, or a folder whose files have no rows)"
    )


class _YearTally:
    """Rows per financial year of the test dates, counted batch by batch on the classifier's
    thread for :attr:`Cube.year_rows` (the multiple-years guard) when counting all years into
    one cube. Cheap: a date32 batch of one year costs one min/max kernel
    (:func:`didcore.years.year_rows_of`).

    Unknown (None) when no batch has the test date column, or when the column's dates cannot
    be read (another type: an extract whose ages come from an age column need not have
    usable test dates); undated rows count in no year.
    """

    def __init__(self, column: str) -> None:
        self.column = column
        self.rows: dict[int, int] = {}
        self.known = False
        self.unreadable = False

    def add(self, batch: pa.RecordBatch, dates: pa.Array | None = None) -> None:
        """Count ``batch``'s rows per year; ``dates``: its test dates already read as date32
        (the classifier reads them for ages from dates of birth), so text is parsed once.
        """
        if self.unreadable or self.column not in batch.schema.names:
            return
        from didcore.years import year_rows_of

        try:
            rows = year_rows_of(batch, self.column, dates)
        except InputError:  # not dates; the counting itself does not need them
            self.unreadable = True
            return
        self.known = True
        for k, n in rows.items():
            self.rows[k] = self.rows.get(k, 0) + n

    def add_counts(self, rows: dict[int, int]) -> None:
        """Add rows per financial year (start year -> rows) counted elsewhere (by the core,
        for a row group it decoded: :mod:`didcore.row_groups`).
        """
        if self.unreadable:
            return
        self.known = True
        for k, n in rows.items():
            self.rows[k] = self.rows.get(k, 0) + n

    def labels(self) -> dict[str, int] | None:
        from didcore.years import year_labels

        return year_labels(self.rows) if self.known and not self.unreadable else None


def _use_value_maps(
    classifier: BatchClassifier,
    lk: Lookups,
    value_maps: Mapping[str, Mapping[str, str]] | None,
    on_first_batch: Callable[[ValueProfile], None] | None,
) -> None:
    """Install the lookups' and the caller's value maps, and the first-batch hook."""
    from didcore.valuemaps import merge_maps, normalise_maps

    maps = merge_maps(lk.value_maps, normalise_maps(value_maps))
    if maps:
        classifier.set_value_maps(maps)
    classifier.profile.on_first = on_first_batch


def _with_profile(result: Any, classifier: BatchClassifier) -> Any:
    """``result`` (a Cube or YearCubes) with the run's value profile as ``value_profile``
    (on a YearCubes also on each cube: the profile covers every year).
    """
    from didcore.cube import Cube

    profile = classifier.profile
    profile.value_maps = classifier.value_maps
    cubes = [result] if isinstance(result, Cube) else [*result.values(), result.undated]
    for cube in cubes:
        object.__setattr__(cube, "value_profile", profile)
    if not isinstance(result, Cube):
        result.value_profile = profile
    return result


def count_batches(
    extract: Any,
    classifier: BatchClassifier,
    parts: Callable[[Any], Iterable[tuple[Any, int, Any]]],
    aggregator_for: Callable[[Any], Any],
    bar: Any,
    row_groups: Any = None,
) -> None:
    """Count an opened extract: ``parts(batch)`` classifies a batch into ``(key, rows,
    ClassifiedBatch)`` items, and each item is added to ``aggregator_for(key)`` (one cube, or
    a cube a financial year).

    A pipeline of three threads: one reads batches (pyarrow decodes with the GIL released),
    one classifies their dictionaries (Arrow kernels), and this one counts (Rust, GIL
    released). Reading and classifying on one thread made each read wait for a classification
    (Parquet 10% slower end to end); classifying on this thread made each count wait for one
    (in-memory tables 35% slower).

    Read from files, a batch's columns are memory of their own (the decoded Parquet pages),
    so one classified batch waits at most: with two, a 50M-row Parquet run peaked 8-11 MB
    higher, no faster. An in-memory table's batches are views of it, and counting them is
    quick enough that a second one waiting pays (5% faster).
    """
    # Row groups counted in the core (RowGroupToCount) hold their chunks' bytes until
    # counted, two of them at once: one more read ahead is memory, and no faster.
    ahead = 1 if getattr(extract, "counting", {}).get("roles") else 2
    reads = prefetch((batch for batch in extract.batches if batch.num_rows > 0), depth=ahead)
    classified = prefetch(
        (item for batch in reads for item in parts(batch)), depth=1 if extract.files else 2
    )
    try:
        for key, n_rows, args in classified:
            if isinstance(args, tuple):  # a row group and its classified dictionaries
                row_groups.submit(*args, aggregator_for(key))
            else:
                aggregator_for(key).add_batch(args)
            if bar is not None:
                bar.update(n_rows)
        if row_groups is not None:
            row_groups.finish()
    finally:
        # Stop and join both reader threads now, outermost first (the inner one is iterated
        # by the outer one's thread): an error's traceback keeps this frame, and so these
        # generators, alive until exit, where a thread still inside pyarrow aborts.
        _close(classified, reads, extract.batches)
        classifier.close()
        if bar is not None:
            bar.close()


def _close(*iterators: Any) -> None:
    """Close generators (their reader threads and open files with them), in the order given;
    other iterators need nothing. Each is closed even when closing an earlier one raised (a
    second Ctrl-C arriving meanwhile): the first exception is raised once all are closed.
    """
    first: BaseException | None = None
    for iterator in iterators:
        close = getattr(iterator, "close", None)
        if close is None:
            continue
        try:
            close()
        except BaseException as exc:  # raised below, after the rest are closed
            first = first or exc
    if first is not None:
        raise first


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _role_names(cols: Columns) -> dict[str, str]:
    """The extract's column of each role, for the core's error messages."""
    import dataclasses

    return {f.name: str(getattr(cols, f.name)) for f in dataclasses.fields(cols)}


def _progress_bar(total: int | None, progress: bool | None) -> Any:
    import sys

    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, desc="didcore", leave=False)
