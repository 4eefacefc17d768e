"""The count cube: record-level extract -> ICB x sex x age band x IMD quintile x measure.

:func:`aggregate` streams an extract batch by batch. For each batch, every dictionary (the
distinct codes of a column in that batch) is classified once here with Arrow compute kernels
(practice -> ICB, LSOA -> ICB and IMD quintile, sex code, modality and exam code -> measures);
the Rust core then walks the rows once, in parallel and without the GIL, applying the
derivation rules (docs/inputs.md):

* ICB: practice in the lookup -> its ICB; else practice in the other-valid list -> no ICB;
  else the LSOA's ICB; else none. The rule used is counted (``icb_source``).
* Exclusions, first that applies: no ICB -> no IMD -> no sex (not 1/2) -> no age. The rest are
  ``included``; of those, ``no_measure`` counts records whose modality and exam code are in no
  measure (they are in the cube's record count but in none of its cells).
* A test counts once in every measure whose (modality, exam code) rule it matches: once in its
  modality and, where it qualifies, once in an early-diagnosis-of-cancer measure.

Conservation holds for every run and every provider:
``rows_read = no_icb + no_imd + no_sex + no_age + included``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from didcore._arrow_compat import integer_dtype, is_string_view, to_float64
from didcore.axes import AGE_BANDS, IMD_QUINTILES, SEXES
from didcore.errors import (
    ColumnTypeError,
    CorruptInputError,
    InputError,
    MeasureDefinitionError,
    TooManyProvidersWarning,
    UnreadableValuesWarning,
    shown,
)
from didcore.io import Columns, is_binary_type, open_extract, prefetch
from didcore.lookup import Lookups, as_lookups

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.profile import ValueProfile
    from didcore.years import YearCubes

__all__ = [
    "AGE_BANDS",
    "EXCLUSION_REASONS",
    "ICB_SOURCES",
    "IMD_QUINTILES",
    "QUALITY_COUNTERS",
    "SEXES",
    "Cube",
    "aggregate",
]

#: Exclusion reasons in order of precedence (docs/inputs.md).
EXCLUSION_REASONS: tuple[str, ...] = ("no_icb", "no_imd", "no_sex", "no_age")
ICB_SOURCES: tuple[str, ...] = ("gp_practice", "other_valid_practice", "lsoa", "unknown")
#: Data-quality counters kept per provider and per derived ICB (see docs/architecture.md).
QUALITY_COUNTERS: tuple[str, ...] = (
    "rows",
    "no_practice",
    "no_lsoa",
    "no_practice_no_lsoa",
    "src_gp_practice",
    "src_other_valid_practice",
    "src_lsoa",
    "src_unknown",
    "excl_no_icb",
    "excl_no_imd",
    "excl_no_sex",
    "excl_no_age",
    "included",
    "no_measure",
    "missing_imd",
    "missing_sex",
    "missing_age",
    "missing_any",
)
MISSING_PROVIDER = "(missing)"
#: The provider row of the codes past ``max_providers`` (see :class:`TooManyProvidersWarning`).
OTHER_PROVIDERS = "(other providers)"
#: Default ``aggregate(max_providers=...)``: distinct provider codes counted one by one. England
#: has a few hundred providers; each costs about 2 KB plus 1 KB per counting thread while
#: counting (docs/architecture.md, "Memory"), so 20,000 bound that to tens of megabytes.
MAX_PROVIDERS = 20_000
#: How many folded provider codes are remembered, to count them for the warning.
_FOLDED_KEPT = 100_000
_DEFAULT_MAX_AGE: int | None = None

# What a fractional number in an integer column is: completed years, rounded down (ages), or
# an invalid code, counted as missing (sex).
Fractions = Literal["floor", "invalid"]


@dataclass(frozen=True, eq=False, repr=False)
class Cube:
    """Counts of imaging tests by ICB x sex x age band x IMD quintile x measure.

    ``counts`` is int64 of shape ``(len(icb_codes), 2, 19, 5, len(measures))``; axes are
    labelled by :attr:`icb_codes`, :data:`SEXES`, :data:`AGE_BANDS`, :data:`IMD_QUINTILES`
    and :attr:`measures`. Cubes with the same axes add (``a + b``), so partitions, files or
    years can be aggregated separately and combined. Quality counters are kept per provider
    (``provider_counts``, rows in ``provider_codes`` order) and per derived ICB
    (``icb_counts``, the last row for records with no ICB); columns are
    :data:`QUALITY_COUNTERS`.
    """

    counts: np.ndarray
    icb_codes: tuple[str, ...]
    measures: tuple[str, ...]
    measure_kinds: tuple[str, ...]
    provider_codes: tuple[str, ...] = ()
    provider_counts: np.ndarray = field(
        default_factory=lambda: np.zeros((0, len(QUALITY_COUNTERS)), np.int64)
    )
    icb_counts: np.ndarray | None = None
    provider_icb_counts: np.ndarray | None = None
    has_records: bool = False
    #: raw values of sex, modality and exam code with row counts (cubes from an extract)
    value_profile: ValueProfile | None = field(default=None, compare=False, repr=False)
    #: rows read per financial year of their test date (``{"2023/24": rows}``, undated rows
    #: in none), or None when unknown (a cube from counts, an extract with no test date
    #: column). The multiple-years guard of :func:`didcore.standardise` reads it: a cube of
    #: several years over one year's population would multiply every rate.
    year_rows: Mapping[str, int] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts)
        expect = (len(self.icb_codes), len(SEXES), len(AGE_BANDS), len(IMD_QUINTILES))
        if counts.ndim != 5 or counts.shape[:4] != expect or counts.shape[4] != len(self.measures):
            raise InputError(
                f"cube counts have shape {counts.shape}; expected {(*expect, len(self.measures))}"
            )
        if len(self.measure_kinds) != len(self.measures):
            raise InputError("measure_kinds must give one kind per measure")
        object.__setattr__(self, "icb_codes", tuple(self.icb_codes))
        object.__setattr__(self, "measures", tuple(self.measures))
        object.__setattr__(self, "measure_kinds", tuple(self.measure_kinds))
        object.__setattr__(self, "counts", counts.astype(np.int64, copy=False))
        if self.year_rows is not None:
            object.__setattr__(self, "year_rows", _year_rows(self.year_rows))
        n_icb = len(self.icb_codes)
        k = len(QUALITY_COUNTERS)
        if self.icb_counts is None:
            object.__setattr__(self, "icb_counts", np.zeros((n_icb + 1, k), np.int64))
        n_prov = len(self.provider_codes)
        if self.provider_icb_counts is None:
            object.__setattr__(self, "provider_icb_counts", np.zeros((n_prov, n_icb + 1), np.int64))

    def __repr__(self) -> str:
        ex = self.exclusions
        source = (
            f"{ex['rows_read']:,} records, {ex['included']:,} included"
            if self.has_records
            else "from counts"
        )
        years = ""
        if self.year_rows is not None and len(self.year_rows) > 1:
            years = "; years " + ", ".join(f"{k}: {n:,}" for k, n in self.year_rows.items())
        return (
            f"<didcore.Cube {len(self.icb_codes)} ICBs x 2 sexes x {len(AGE_BANDS)} age bands x "
            f"5 IMD quintiles x {len(self.measures)} measures; {int(self.counts.sum()):,} counted; "
            f"{source}{years}>"
        )

    def _repr_html_(self) -> str:
        """A notebook summary: axes, totals, the exclusions and each measure's count."""
        from didcore._display import html_table, many

        rows: list[tuple[str, Any]] = [
            ("ICBs", f"{len(self.icb_codes)} ({many(self.icb_codes)})"),
            ("axes", f"2 sexes x {len(AGE_BANDS)} age bands x 5 IMD quintiles"),
            ("counted", int(self.counts.sum())),
        ]
        if self.has_records:
            rows += list(self.exclusions.items())
        per_measure = self.counts.sum(axis=(0, 1, 2, 3))
        rows += [
            (f"{m} ({k})", int(n))
            for m, k, n in zip(self.measures, self.measure_kinds, per_measure, strict=True)
        ]
        return html_table("didcore.Cube", rows)

    # ------------------------------------------------------------------ labels
    @property
    def sexes(self) -> tuple[str, ...]:
        """Sex axis labels (NHS codes 1 and 2)."""
        return SEXES

    @property
    def age_bands(self) -> tuple[str, ...]:
        """Age band labels, ``0-4`` .. ``85-89``, ``90+``."""
        return AGE_BANDS

    @property
    def imd_quintiles(self) -> tuple[int, ...]:
        """IMD quintiles, 1 = most deprived."""
        return IMD_QUINTILES

    # ------------------------------------------------------------------ summaries
    def _total(self, counter: str) -> int:
        assert self.icb_counts is not None
        return int(self.icb_counts[:, QUALITY_COUNTERS.index(counter)].sum())

    @property
    def rows_read(self) -> int:
        """Records read (0 for a cube built from aggregated counts)."""
        return self._total("rows")

    @property
    def exclusions(self) -> dict[str, int]:
        """``rows_read``, each exclusion reason, ``included``, then ``no_measure``.

        ``rows_read = no_icb + no_imd + no_sex + no_age + included`` always; ``no_measure`` is
        the part of ``included`` whose modality and exam code are in no measure.
        """
        out = {"rows_read": self.rows_read}
        for reason in EXCLUSION_REASONS:
            out[reason] = self._total(f"excl_{reason}")
        out["included"] = self._total("included")
        out["no_measure"] = self._total("no_measure")
        return out

    @property
    def icb_source(self) -> dict[str, int]:
        """How many records got (or failed to get) their ICB by each rule of docs/inputs.md."""
        return {s: self._total(f"src_{s}") for s in ICB_SOURCES}

    @property
    def provider_quality(self) -> pa.Table:
        """One row per provider code: ``provider_code`` and the :data:`QUALITY_COUNTERS`."""
        import pyarrow as pa

        cols: dict[str, Any] = {"provider_code": pa.array(self.provider_codes, pa.string())}
        for j, name in enumerate(QUALITY_COUNTERS):
            cols[name] = pa.array(self.provider_counts[:, j], pa.int64())
        return pa.table(cols)

    @property
    def icb_quality(self) -> pa.Table:
        """One row per ICB plus one (``icb_code`` null) for records with no ICB."""
        import pyarrow as pa

        assert self.icb_counts is not None
        codes: list[str | None] = [*self.icb_codes, None]
        cols: dict[str, Any] = {"icb_code": pa.array(codes, pa.string())}
        for j, name in enumerate(QUALITY_COUNTERS):
            cols[name] = pa.array(self.icb_counts[:, j], pa.int64())
        return pa.table(cols)

    @property
    def provider_icb(self) -> pa.Table:
        """Records by provider and derived ICB (``icb_code`` null: no ICB); non-zero rows."""
        import pyarrow as pa

        assert self.provider_icb_counts is not None
        p, i = np.nonzero(self.provider_icb_counts)
        icbs: list[str | None] = [*self.icb_codes, None]
        return pa.table(
            {
                "provider_code": pa.array([self.provider_codes[k] for k in p], pa.string()),
                "icb_code": pa.array([icbs[k] for k in i], pa.string()),
                "rows": pa.array(self.provider_icb_counts[p, i], pa.int64()),
            }
        )

    def to_arrow(self, *, dictionary: bool = True) -> pa.Table:
        """The cube as a long table of its non-zero cells: ``icb_code``, ``sex``
        (``male``/``female``), ``age_band``, ``imd_quintile``, ``measure``, ``count``.

        The text columns are dictionary-encoded (small, fast to group by); with
        ``dictionary=False`` they are plain ``string`` columns, for engines that refuse Arrow
        dictionaries (Spark's ``createDataFrame``, some JDBC/ODBC writers).
        """
        import pyarrow as pa

        idx = np.nonzero(self.counts)
        dict_col = pa.DictionaryArray.from_arrays
        if not dictionary:
            table = self.to_arrow()
            plain = [
                c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                for c in table.columns
            ]
            return pa.table(plain, names=table.column_names)
        return pa.table(
            {
                "icb_code": dict_col(
                    pa.array(idx[0], pa.int32()), pa.array(self.icb_codes, pa.string())
                ),
                "sex": dict_col(pa.array(idx[1], pa.int32()), pa.array(SEXES)),
                "age_band": dict_col(pa.array(idx[2], pa.int32()), pa.array(AGE_BANDS)),
                "imd_quintile": pa.array(idx[3] + 1, pa.int8()),
                "measure": dict_col(
                    pa.array(idx[4], pa.int32()), pa.array(self.measures, pa.string())
                ),
                "count": pa.array(self.counts[idx], pa.int64()),
            }
        )

    # ------------------------------------------------------------------ combining
    def __add__(self, other: object) -> Cube:
        if not isinstance(other, Cube):
            return NotImplemented
        if other.icb_codes != self.icb_codes or other.measures != self.measures:
            raise InputError(
                "cubes can only be added when their ICBs and measures are the same "
                "(build them with the same lookups)"
            )
        codes = list(dict.fromkeys([*self.provider_codes, *other.provider_codes]))
        where = {c: i for i, c in enumerate(codes)}
        prov = np.zeros((len(codes), len(QUALITY_COUNTERS)), np.int64)
        prov_icb = np.zeros((len(codes), len(self.icb_codes) + 1), np.int64)
        for cube in (self, other):
            rows = [where[c] for c in cube.provider_codes]
            prov[rows] += cube.provider_counts
            assert cube.provider_icb_counts is not None
            prov_icb[rows] += cube.provider_icb_counts
        assert self.icb_counts is not None and other.icb_counts is not None
        return Cube(
            counts=self.counts + other.counts,
            icb_codes=self.icb_codes,
            measures=self.measures,
            measure_kinds=self.measure_kinds,
            provider_codes=tuple(codes),
            provider_counts=prov,
            icb_counts=self.icb_counts + other.icb_counts,
            provider_icb_counts=prov_icb,
            has_records=self.has_records or other.has_records,
            value_profile=_add_profiles(self.value_profile, other.value_profile),
            year_rows=_add_year_rows(self.year_rows, other.year_rows),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cube):
            return NotImplemented
        assert self.icb_counts is not None and other.icb_counts is not None
        return (
            self.icb_codes == other.icb_codes
            and self.measures == other.measures
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.icb_counts, other.icb_counts)
            and self.provider_quality.sort_by("provider_code").equals(
                other.provider_quality.sort_by("provider_code")
            )
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_counts(
        cls,
        table: Any,
        *,
        icb_codes: Sequence[str] | None = None,
        measures: Sequence[str] | None = None,
        measure_kinds: Sequence[str] | None = None,
    ) -> Cube:
        """Build a cube from an aggregated long table (the :meth:`to_arrow` layout; ``sex``
        may be 1/2 or ``male``/``female``). Repeated cells are summed. Measures default to the
        ones in the table (kind ``modality`` unless given); ICBs to the sorted codes present.
        """
        import pyarrow as pa

        t = table if isinstance(table, pa.Table) else pa.table(table)
        need = ("icb_code", "sex", "age_band", "imd_quintile", "measure", "count")
        missing = [c for c in need if c not in t.column_names]
        if missing:
            from didcore.errors import MissingColumnError

            raise MissingColumnError(
                f"counts table has no column {', '.join(missing)} (it has: "
                f"{', '.join(t.column_names)})"
            )
        cols = {c: t.column(c).to_pylist() for c in need}
        icbs = tuple(icb_codes) if icb_codes is not None else tuple(sorted(set(cols["icb_code"])))
        meas = tuple(measures) if measures is not None else tuple(dict.fromkeys(cols["measure"]))
        kinds = tuple(measure_kinds) if measure_kinds is not None else ("modality",) * len(meas)
        counts = np.zeros((len(icbs), 2, len(AGE_BANDS), 5, len(meas)), np.int64)
        icb_i = {c: i for i, c in enumerate(icbs)}
        m_i = {c: i for i, c in enumerate(meas)}
        sex_i = {"male": 0, "female": 1, "1": 0, "2": 1, 1: 0, 2: 1}
        band_i = {b: i for i, b in enumerate(AGE_BANDS)}
        for n, (icb, sex, band, q, m, c) in enumerate(zip(*cols.values(), strict=True)):
            try:
                key = (icb_i[icb], sex_i[sex], band_i[band], int(q) - 1, m_i[m])
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(
                    f"counts table row {n}: unknown label {exc} in ({icb}, {sex}, {band}, {q}, {m})"
                ) from exc
            if not 0 <= key[3] < 5 or c is None or c < 0:
                raise InputError(f"counts table row {n}: bad quintile {q} or count {c}")
            counts[key] += int(c)
        return cls(counts, icbs, meas, kinds)


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

        years = aggregate_years(extract, lk, classifier, new_aggregator, bar=bar, year=year)
        return _with_profile(years, classifier)
    agg = _didcore.Aggregator(
        len(lk.icb_codes),
        n_measures,
        max_age=max_age,
        n_threads=n_threads,
        column_names=_role_names(cols),
    )
    # A pipeline of three threads: one reads batches (pyarrow decodes with the GIL released),
    # one classifies their dictionaries (Arrow kernels), and this one counts (Rust, GIL
    # released). Reading and classifying on one thread made each read wait for a
    # classification (Parquet 10% slower end to end); classifying on this thread made each
    # count wait for one (in-memory tables 35% slower).
    tally = _YearTally(cols.test_date)

    def classify(batch: pa.RecordBatch) -> tuple[int, dict[str, Any]]:
        args = classifier.classify(batch)  # its errors first, as without the tally
        tally.add(batch, classifier.dates.get(tally.column))
        return batch.num_rows, args

    reads = prefetch(batch for batch in extract.batches if batch.num_rows > 0)
    classified = prefetch(classify(batch) for batch in reads)
    try:
        for n_rows, args in classified:
            agg.add_batch(**args)
            if bar is not None:
                bar.update(n_rows)
    finally:
        # Stop and join both reader threads now, outermost first (the inner one is iterated
        # by the outer one's thread): an error's traceback keeps this frame, and so these
        # generators, alive until exit, where a thread still inside pyarrow aborts.
        _close(classified, reads, extract.batches)
        classifier.close()
        if bar is not None:
            bar.close()
    result = agg.finish()
    classifier.warn_unreadable()
    cube = _cube_from_result(result, lk, classifier.provider_codes)
    object.__setattr__(cube, "year_rows", tally.labels())
    return _with_profile(cube, classifier)


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

    def labels(self) -> dict[str, int] | None:
        from didcore.years import year_labels

        return year_labels(self.rows) if self.known and not self.unreadable else None


def _year_rows(rows: Mapping[str, int]) -> dict[str, int]:
    """``rows`` with labels normalised (``"2023-24"`` -> ``"2023/24"``), in year order."""
    from didcore.years import year_label, year_start

    out: dict[str, int] = {}
    for k, n in rows.items():
        label = year_label(k)
        out[label] = out.get(label, 0) + int(n)
    return {k: out[k] for k in sorted(out, key=year_start)}


def _add_year_rows(
    a: Mapping[str, int] | None, b: Mapping[str, int] | None
) -> Mapping[str, int] | None:
    """Two cubes' rows per year summed per label; unknown (None) only when both are."""
    if a is None or b is None:
        return a if a is not None else b
    out = dict(a)
    for k, n in b.items():
        out[k] = out.get(k, 0) + n
    return out


def _add_profiles(a: ValueProfile | None, b: ValueProfile | None) -> ValueProfile | None:
    """Two cubes' value profiles combined: one when both come from the same run."""
    if a is None or b is None or a is b:
        return a if a is not None else b
    return a + b


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
    profile = classifier.profile
    profile.value_maps = classifier.value_maps
    cubes = [result] if isinstance(result, Cube) else [*result.values(), result.undated]
    for cube in cubes:
        object.__setattr__(cube, "value_profile", profile)
    if not isinstance(result, Cube):
        result.value_profile = profile
    return result


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


def _state_indicators() -> np.ndarray:
    """Matrix (N_STATES x counters): which counters a record in each row state adds to."""
    from didcore import _didcore

    states = np.asarray(_didcore.state_table(), np.int64).reshape(_didcore.N_STATES, 7)
    source, outcome, no_practice, no_lsoa, miss_imd, miss_sex, miss_age = states.T
    cols = {
        "rows": np.ones_like(source),
        "no_practice": no_practice,
        "no_lsoa": no_lsoa,
        "no_practice_no_lsoa": no_practice & no_lsoa,
        "missing_imd": miss_imd,
        "missing_sex": miss_sex,
        "missing_age": miss_age,
        "missing_any": miss_imd | miss_sex | miss_age,
        # The core's outcome 4 (complete record, no measure) is part of "included".
        "included": (outcome >= 4).astype(np.int64),
        "no_measure": (outcome == 4).astype(np.int64),
    }
    for k, s in enumerate(ICB_SOURCES):
        cols[f"src_{s}"] = (source == k).astype(np.int64)
    for k, r in enumerate(EXCLUSION_REASONS):
        cols[f"excl_{r}"] = (outcome == k).astype(np.int64)
    return np.stack([cols[c] for c in QUALITY_COUNTERS], axis=1)


def _cube_from_result(result: dict[str, Any], lk: Lookups, providers: Sequence[str]) -> Cube:
    n_icb = len(lk.icb_codes)
    n_m = len(lk.measures)
    n_prov = int(result["n_providers"])
    # The core returns its state histograms over the states some row is in (a few dozen of
    # the N_STATES): a few hundred bytes per provider, however many providers there are.
    states = np.asarray(result["states"], np.intp)
    ind = _state_indicators()[states]
    provider_states = np.asarray(result["provider_states"]).reshape(n_prov, len(states))
    icb_states = np.asarray(result["icb_states"]).reshape(n_icb + 1, len(states))
    counts = np.asarray(result["cube"]).reshape(n_icb, 2, len(AGE_BANDS), 5, n_m)
    provider_icb = np.asarray(result["provider_icb"]).reshape(n_prov, n_icb + 1)
    # A provider is registered when its code is in a dictionary, which may hold codes no row
    # uses (a sliced or filtered table keeps its whole dictionary): report only those with rows.
    seen = np.flatnonzero(provider_states.sum(axis=1))
    return Cube(
        counts=counts,
        icb_codes=lk.icb_codes,
        measures=lk.measures,
        measure_kinds=lk.measure_kinds,
        provider_codes=tuple(providers[int(k)] for k in seen),
        provider_counts=provider_states[seen] @ ind,
        icb_counts=icb_states @ ind,
        provider_icb_counts=provider_icb[seen],
        has_records=True,
    )


class BatchClassifier:
    """Classifies each column's dictionary of a batch once, for the Rust counting pass.

    Each classification is cached against the last dictionary seen in that column, so a
    dictionary that repeats across batches (a Table's chunks, or row groups written with a
    shared dictionary) costs one comparison instead of a lookup.
    """

    def __init__(
        self,
        lookups: Lookups,
        columns: Columns,
        use_age: bool,
        *,
        max_age: int | None = None,
        max_providers: int = MAX_PROVIDERS,
    ) -> None:
        import pyarrow as pa

        from didcore import _didcore

        self._pa = pa
        self.lookups = lookups
        self.columns = columns
        self.use_age = use_age
        self._blank = _didcore.BLANK
        self._unrecognised = _didcore.UNRECOGNISED
        icb_index = {c: i for i, c in enumerate(lookups.icb_codes)}

        # practice: lookup first (rule 1), then the other-valid list (rule 2)
        keys = list(lookups.practice_icb)
        classes = [icb_index[lookups.practice_icb[k]] for k in keys]
        for k in sorted(lookups.other_practices):
            if k not in lookups.practice_icb:
                keys.append(k)
                classes.append(_didcore.OTHER_VALID)
        self._practice_keys = pa.array(keys, pa.string())
        self._practice_table = np.asarray(classes, np.int32)

        lsoa_keys = list(dict.fromkeys([*lookups.lsoa_icb, *lookups.lsoa_quintile]))
        self._lsoa_keys = pa.array(lsoa_keys, pa.string())
        self._lsoa_icb_table = np.asarray(
            [
                icb_index[lookups.lsoa_icb[k]] if k in lookups.lsoa_icb else self._unrecognised
                for k in lsoa_keys
            ],
            np.int32,
        )
        self._lsoa_imd_table = np.asarray(
            [lookups.lsoa_quintile.get(k, 0) - 1 for k in lsoa_keys], np.int8
        )

        # measures: modality id x exam id -> bit mask of measures; exam id 0 = any other code
        modalities = list(dict.fromkeys(r.modality for r in lookups.measure_rules))
        exams = list(dict.fromkeys(r.exam_code for r in lookups.measure_rules if r.exam_code))
        measure_index = {m: i for i, m in enumerate(lookups.measures)}
        masks = np.zeros((len(modalities), len(exams) + 1), np.uint64)
        for r in lookups.measure_rules:
            bit = np.uint64(1) << np.uint64(measure_index[r.measure])
            row = modalities.index(r.modality)
            if r.exam_code is None:
                masks[row, :] |= bit
            else:
                masks[row, exams.index(r.exam_code) + 1] |= bit
        self._modality_keys = pa.array(modalities, pa.string())
        self._exam_keys = pa.array(exams, pa.string())
        self._masks = masks.ravel()
        self._n_exam = len(exams) + 1

        import os

        self._threads = min(os.cpu_count() or 1, 4)
        self._pool: Any = None
        self._encoded: dict[str, Any] = {}
        self._encoders: dict[str, Any] = {}
        self._dictionaries: dict[str, Any] = {}
        self._last: dict[str, tuple[Any, Any]] = {}
        self._providers: dict[str, int] = {}
        self.provider_codes: list[str] = []
        # Ages above max_age are missing; the codes past max_providers share one provider row,
        # and the first _FOLDED_KEPT of them are remembered to say how many there were.
        self.max_age = max_age
        self.max_providers = max_providers
        self._folded: set[str] = set()
        self._n_codes = 0  # codes with a row of their own
        # the batch being classified (from 1) and the rows before it, for error messages
        self._batch_no = 0
        self._rows_before = 0
        #: the extract's file when it is one file, named in errors about its data
        self.source: str | None = None
        self._batch_rows = 0
        #: the last batch's date columns read as date32 (for ages from dates of birth), by
        #: column: the financial-year tally of aggregate() reuses the test dates
        self.dates: dict[str, Any] = {}
        self._cache: dict[str, tuple[Any, Any]] = {}
        # column -> [rows whose value could not be read as an age or a date, an example]
        self.unreadable: dict[str, list[Any]] = {}
        # raw values of sex, modality, exam code (and unmatched codes) for the guards
        from didcore.profile import ValueProfile

        self.profile = ValueProfile()
        self.value_maps: dict[str, dict[str, str]] = {}
        self._classify_sex = _classify_sex

    def set_value_maps(self, maps: dict[str, dict[str, str]]) -> None:
        """Recode values (``{role: {from: to}}``, :mod:`didcore.valuemaps`) before they are
        classified: each mapped role's classification is given the mapped dictionary.
        """
        from didcore.valuemaps import mapped_classifier

        self.value_maps = dict(maps)
        self.profile.value_maps = self.value_maps  # the guards judge raw values through them
        for role, method in _MAPPED_CLASSIFIERS.items():
            if role in maps:
                setattr(self, method, mapped_classifier(getattr(self, method), maps[role]))

    # ------------------------------------------------------------------ per batch
    def classify(self, batch: pa.RecordBatch) -> dict[str, Any]:
        """Keyword arguments for ``Aggregator.add_batch`` for this batch.

        Text whose bytes are not UTF-8 (a Parquet or in-memory string column from a writer
        that does not check) fails deep inside Arrow's kernels or Python's decoder; that is
        turned into a :class:`ColumnTypeError` naming the column (found only then, so valid
        input pays nothing for the check).
        """
        try:
            return self._classify(batch)
        except (UnicodeDecodeError, self._pa.ArrowInvalid) as exc:
            if isinstance(exc, self._pa.ArrowInvalid) and "utf8" not in str(exc).lower():
                raise
            for name, arr in zip(batch.schema.names, batch.columns, strict=True):
                problem = _not_utf8(self._pa, arr)
                if problem:
                    raise ColumnTypeError(f"column {name!r}: {problem}") from exc
            raise

    def _classify(self, batch: pa.RecordBatch) -> dict[str, Any]:
        c = self.columns
        args: dict[str, Any] = {"n_rows": batch.num_rows}
        self.dates = {}
        self._rows_before += self._batch_rows
        self._batch_no += 1
        self._batch_rows = batch.num_rows
        batch = self._binary_as_text(batch)
        self._encoded = self._encode_plain(batch)

        arr, dictionary = self._coded(batch, c.provider_code)
        args["provider"] = arr
        args["provider_ids"] = self._provider_ids(dictionary)
        # Only a column with null rows needs (and so registers) the "(missing)" provider.
        has_nulls = arr[1] is not None
        args["provider_null_id"] = self._provider_id(MISSING_PROVIDER) if has_nulls else 0

        arr, dictionary = self._coded(batch, c.gp_practice_code)
        args["practice"] = arr
        args["practice_class"] = self._cached(
            c.gp_practice_code, dictionary, self._classify_practice
        )
        unmatched = args["practice_class"], self._unrecognised
        self.profile.add_detail("gp_practice_code_unmatched", arr, dictionary, *unmatched)

        arr, dictionary = self._coded(batch, c.lsoa11)
        args["lsoa"] = arr
        args["lsoa_icb"], args["lsoa_imd"] = self._cached(c.lsoa11, dictionary, self._classify_lsoa)
        self.profile.add_detail(
            "lsoa11_unmatched", arr, dictionary, args["lsoa_icb"], self._unrecognised
        )

        self._sex(batch, args)
        self._age(batch, args)

        arr, dictionary = self._coded(batch, c.modality)
        args["modality"] = arr
        args["modality_ids"] = self._cached(c.modality, dictionary, self._classify_modality)
        self.profile.add_coded("modality", arr, dictionary)
        arr, dictionary = self._coded(batch, c.exam_code)
        args["exam"] = arr
        args["exam_ids"] = self._cached(c.exam_code, dictionary, self._classify_exam)
        self.profile.add_detail("exam_code", arr, dictionary)
        self.profile.end_batch(batch.num_rows)
        args["measure_masks"] = self._masks
        args["n_exam"] = self._n_exam
        # Ids are handed out while classifying, so this is known only now.
        args["n_providers"] = len(self.provider_codes)
        return args

    def _cached(self, column: str, dictionary: Any, fn: Any) -> Any:
        """``fn(dictionary)`` (a table with one entry per dictionary value), reused where it can.

        A plain text column's dictionary is its encoder's run-long one, classified value by
        value as it grows. Any other dictionary (a Parquet row group has its own) is
        classified whole, unless it equals the last one of the column. (Mapping row groups'
        values onto a run-long dictionary instead was slower: dirty codes make it grow every
        batch.)
        """
        if dictionary is self._dictionaries.get(column):
            return self._grown(column, dictionary, fn)
        last = self._last.get(column)
        if last is not None and (last[0] is dictionary or last[0].equals(dictionary)):
            return last[1]
        result = fn(dictionary)
        self._last[column] = (dictionary, result)
        return result

    def _run_dictionary(self, key: str, encoder: Any) -> Any:
        """An encoder's dictionary as an Arrow array, rebuilt only when it has grown."""
        cached = self._dictionaries.get(key)
        if cached is None or len(cached) != len(encoder):
            cached = self._dictionaries[key] = _dictionary_array(self._pa, *encoder.dictionary())
        return cached

    def _grown(self, key: str, dictionary: Any, fn: Any) -> Any:
        """``fn(dictionary)`` for a run-long dictionary: reused while it is unchanged, and
        extended by its new tail alone when it has grown (they only grow).
        """
        hit = self._cache.get(key)
        if hit is not None:
            previous, result = hit
            if previous is dictionary:
                return result
            n = len(previous)
            if len(dictionary) > n and dictionary.slice(0, n).equals(previous):
                tail = fn(dictionary.slice(n))
                if isinstance(result, tuple):
                    result = tuple(np.concatenate(p) for p in zip(result, tail, strict=True))
                else:
                    result = np.concatenate([result, tail])
                self._cache[key] = (dictionary, result)
                return result
        result = fn(dictionary)
        self._cache[key] = (dictionary, result)
        return result

    # ------------------------------------------------------------------ columns
    def _column(self, batch: pa.RecordBatch, name: str) -> Any:
        return batch.column(batch.schema.get_field_index(name))

    def _binary_as_text(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with its binary columns (and dictionaries of binary) read as UTF-8 text.

        Parquet stores text as byte arrays with a UTF-8 annotation, and some writers (older
        Spark and Hive among them) leave the annotation out; pyarrow then reads the column as
        binary. Bytes that are not UTF-8 are an error naming the column.
        """
        pa = self._pa
        columns = list(batch.columns)
        changed = False
        for i, arr in enumerate(columns):
            t = arr.type
            is_dict = pa.types.is_dictionary(t)
            if not is_binary_type(t.value_type if is_dict else t):
                continue
            try:
                # a dictionary's values are cast, not the whole array: Arrow cannot cast a
                # dictionary of binary views whole
                columns[i] = _plain_dictionary(pa, arr) if is_dict else arr.cast(pa.string())
            except pa.ArrowInvalid as exc:
                name = batch.schema.field(i).name
                raise ColumnTypeError(f"column {name!r}: {_bad_utf8(arr)}") from exc
            changed = True
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch

    def _encode_plain(self, batch: pa.RecordBatch) -> dict[str, Any]:
        """Dictionary-encode the batch's plain text code columns, several at once.

        Hashing every row of a plain string column is the costly part of the plain-string
        path. Each column has a Rust ``TextEncoder`` that keeps one dictionary for the whole
        run, so the dictionary (and its classification) changes only when a new code turns
        up; the encoders release the GIL, so the columns are encoded on parallel threads.
        """
        pa = self._pa
        c = self.columns
        names = [
            n for n in (*c.codes, c.exam_code, c.sex) if _is_text(pa, self._column(batch, n).type)
        ]
        if not names:
            return {}
        if len(names) == 1 or self._threads <= 1:
            return {n: self._encode_column(batch, n) for n in names}
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="didcore-encode")
        futures = {n: self._pool.submit(self._encode_column, batch, n) for n in names}
        return {n: f.result() for n, f in futures.items()}

    def _encode_column(self, batch: pa.RecordBatch, name: str) -> Any:
        """One plain text column as a dictionary array over its run-long dictionary."""
        from didcore import _didcore

        pa = self._pa
        arr = self._column(batch, name)
        if arr.type != pa.string():  # large_string, string_view
            arr = arr.cast(pa.string())
        encoder = self._encoders.get(name)
        if encoder is None:
            encoder = self._encoders[name] = _didcore.TextEncoder()
        try:
            ids = encoder.encode(_string_buffers(pa, arr))
        except CorruptInputError as exc:
            raise CorruptInputError(f"column {name!r}: {exc}") from None
        dictionary = self._run_dictionary(name, encoder)
        # the encoder's indices are all inside its dictionary: no need to check them again
        return pa.DictionaryArray.from_arrays(pa.array(ids), dictionary, safe=False)

    def close(self) -> None:
        """Stop the encoding threads, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _coded(self, batch: pa.RecordBatch, name: str) -> tuple[tuple[Any, ...], Any]:
        """Dictionary-encode a code column; return the Rust column argument and dictionary."""
        pa = self._pa
        import pyarrow.compute as pc

        arr = self._encoded.get(name)
        if arr is not None:  # plain text, encoded over the run-long dictionary
            return _buffers(arr.indices, np.int32), self._dictionaries[name]
        arr = self._column(batch, name)
        t = arr.type
        if pa.types.is_dictionary(t):
            self._check_indices(name, arr)
            if not _is_text(pa, t.value_type):
                arr = arr.cast(pa.dictionary(t.index_type, pa.string()))
        elif _is_text(pa, t) or pa.types.is_integer(t):
            # Codes written as numbers. (Plain text code columns were encoded over their
            # run-long dictionaries by _encode_plain already; this also serves any other.)
            if pa.types.is_integer(t):
                arr = arr.cast(pa.string())
            arr = pc.dictionary_encode(arr)
        elif pa.types.is_null(t):
            arr = pa.DictionaryArray.from_arrays(
                pa.nulls(len(arr), pa.int32()), pa.array([], pa.string())
            )
        else:
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected text codes (string or dictionary)"
            )
        if arr.type.index_type != pa.int32():
            # unchecked: the indices were checked above, and a null row's may hold anything
            arr = arr.cast(pa.dictionary(pa.int32(), arr.type.value_type), safe=False)
        dictionary = arr.dictionary
        if dictionary.type != pa.string():
            dictionary = dictionary.cast(pa.string())
        indices = arr.indices
        return _buffers(indices, np.int32), dictionary

    def _check_indices(self, name: str, arr: Any) -> None:
        """Refuse a dictionary array whose non-null rows point outside its dictionary
        (:func:`_check_dictionary_indices`), naming the row over the run and in its batch.
        """
        _check_dictionary_indices(
            name, arr, f" of batch {self._batch_no}", self._rows_before, self.source
        )

    def _normalise(self, dictionary: Any) -> Any:
        import pyarrow.compute as pc

        return pc.ascii_upper(pc.utf8_trim_whitespace(dictionary))

    def _positions(self, dictionary: Any, keys: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each normalised dictionary value is in ``keys``: (position, found, blank)."""
        import pyarrow.compute as pc

        norm = self._normalise(dictionary)
        pos = pc.index_in(norm, value_set=keys)
        found = pos.is_valid().to_numpy(zero_copy_only=False)
        where = pos.fill_null(0).to_numpy(zero_copy_only=False).astype(np.intp)
        return where, found, _blank_mask(norm)

    def _take(
        self, positions: tuple[np.ndarray, np.ndarray, np.ndarray], table: np.ndarray, missing: int
    ) -> np.ndarray:
        """``table[position]``, ``missing`` where not found, BLANK where blank."""
        where, found, blank = positions
        values = table[where] if len(table) else np.full(len(where), missing, table.dtype)
        out = np.where(found, values, missing).astype(table.dtype)
        out[blank] = self._blank
        return out

    def _lookup(self, dictionary: Any, keys: Any, table: np.ndarray, missing: int) -> np.ndarray:
        """``table[index of normalised value in keys]``; ``missing`` if absent; BLANK if blank."""
        return self._take(self._positions(dictionary, keys), table, missing)

    def _classify_practice(self, dictionary: Any) -> np.ndarray:
        return self._lookup(
            dictionary, self._practice_keys, self._practice_table, self._unrecognised
        )

    def _classify_lsoa(self, dictionary: Any) -> tuple[np.ndarray, np.ndarray]:
        positions = self._positions(dictionary, self._lsoa_keys)  # one hash lookup for both
        icb = self._take(positions, self._lsoa_icb_table, self._unrecognised)
        imd = self._take(positions, self._lsoa_imd_table.astype(np.int32), -1)
        imd[imd == self._blank] = -1
        return icb, imd.astype(np.int8)

    def _classify_modality(self, dictionary: Any) -> np.ndarray:
        ids = np.arange(len(self._modality_keys), dtype=np.int16)
        out = self._lookup(dictionary, self._modality_keys, ids, -1)
        out[out == self._blank] = -1
        return out.astype(np.int16)

    def _classify_exam(self, dictionary: Any) -> np.ndarray:
        ids = np.arange(1, len(self._exam_keys) + 1, dtype=np.int16)
        out = self._lookup(dictionary, self._exam_keys, ids, 0)
        out[out == self._blank] = 0
        return out.astype(np.int16)

    def _provider_id(self, code: str) -> int:
        """The provider row of ``code``: its own while fewer than ``max_providers`` codes have
        one, else the shared "(other providers)" row; "(missing)" always has its own (so at
        most ``max_providers + 2`` rows).
        Folded codes are not kept (memory stays bounded whatever the column holds), but the
        first ``_FOLDED_KEPT`` are remembered to say how many there were.
        """
        pid = self._providers.get(code)
        if pid is None:
            if code != MISSING_PROVIDER and self._n_codes >= self.max_providers:
                if len(self._folded) < _FOLDED_KEPT:
                    self._folded.add(code)
                code = OTHER_PROVIDERS
                pid = self._providers.get(code)
                if pid is not None:
                    return pid
            elif code != MISSING_PROVIDER:
                self._n_codes += 1
            pid = self._providers[code] = len(self.provider_codes)
            self.provider_codes.append(code)
        return pid

    def _provider_ids(self, dictionary: Any) -> np.ndarray:
        norm = self._normalise(dictionary).to_pylist()
        return np.asarray(
            [self._provider_id(v if v else MISSING_PROVIDER) for v in norm], np.uint32
        )

    def _sex(self, batch: pa.RecordBatch, args: dict[str, Any]) -> None:
        pa = self._pa
        name = self.columns.sex
        t = self._column(batch, name).type
        value_type = t.value_type if pa.types.is_dictionary(t) else t
        # a mapped integer column is read as text, so that its map applies
        mapped = "sex" in self.value_maps and pa.types.is_integer(value_type)
        if _is_text(pa, value_type) or pa.types.is_null(t) or mapped:
            arr, dictionary = self._coded(batch, name)
            args["sex_coded"] = arr
            args["sex_class"] = self._cached(name, dictionary, self._classify_sex)
            self.profile.add_coded("sex", arr, dictionary)
        elif (
            pa.types.is_integer(value_type)
            or pa.types.is_floating(value_type)
            or pa.types.is_decimal(value_type)
        ):
            args["sex_ints"] = self._ints(batch, name, fractions="invalid")
            self.profile.add_numbers("sex", args["sex_ints"])
        else:
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected NHS gender codes as text or integers"
            )

    def _age(self, batch: pa.RecordBatch, args: dict[str, Any]) -> None:
        c = self.columns
        if self.use_age:
            args["age_years"] = self._ints(batch, c.age, fractions="floor")
        else:
            args["birth"] = self._days(batch, c.date_of_birth)
            args["test"] = self._days(batch, c.test_date)

    def _ints(self, batch: pa.RecordBatch, name: str, fractions: Fractions) -> tuple[Any, ...]:
        """An integer column as int32 values for the core (zero-copy when it is int32).

        Wider values are clamped into int32: a sex code that large is invalid, and an age
        that large is 90+ with no ``max_age`` (with one, an age past it is made -1, missing,
        before the clamping, so that the limit holds however wide the age). Floating columns
        (pandas stores integers with missing values as floats) are read as ``_whole_numbers``
        says, ``fractions`` saying what a fractional value is. Text that is not a number is
        null: a missing value, noted in :attr:`unreadable` for ages.
        """
        pa = self._pa
        arr = self._column(batch, name)
        t = arr.type
        if pa.types.is_dictionary(t):
            self._check_indices(name, arr)
            arr = _plain_dictionary(pa, arr)
            arr = arr.cast(arr.type.value_type)
            t = arr.type
        if pa.types.is_null(t):
            arr = pa.nulls(len(arr), pa.int32())
            t = arr.type
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            arr = self._numbers(name, arr, fractions)
            t = arr.type
        elif _is_text(pa, t):  # a CSV's ages (didcore.io reads them as text)
            arr = self._text_ints(name, arr, fractions)
            t = arr.type
        elif not pa.types.is_integer(t):
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected whole numbers (integers)"
            )
        values, validity, offset = _buffers(arr, integer_dtype(t))
        if values.dtype != np.int32:
            info = np.iinfo(np.int32)
            too_old = None
            if fractions == "floor" and self.max_age is not None and values.dtype.itemsize >= 4:
                # An age past max_age is missing however wide it is: decided here, before the
                # clamping below would bring it within max_age (the core sees int32).
                too_old = values > self.max_age
            if values.dtype.kind == "u" and values.dtype.itemsize >= 4:
                values = np.minimum(values, info.max)
            elif values.dtype.itemsize > 4:
                values = np.clip(values, info.min, info.max)
            values = values.astype(np.int32)
            if too_old is not None:
                values[too_old] = -1
        return values, validity, offset

    def _text_ints(self, name: str, arr: Any, fractions: Fractions) -> Any:
        """Numbers written as text as int64 (or float64 from ``_numbers``), text that is not a
        number null and noted as unreadable for ages.

        The usual case, digits alone (blank cells are null), is one cast. Arrow's cast to
        integers also reads hexadecimal ("0x10" as 16), which is not an age, so the cast is
        taken only when every value is ASCII digits: otherwise (spaces, signs, "41.0", hex,
        text) each value is parsed as a decimal number, whatever the rest of the batch holds.
        """
        pa = self._pa
        import pyarrow.compute as pc

        if is_string_view(arr.type):  # the string kernels take string and large_string
            arr = arr.cast(pa.string())
        if pc.all(pc.ascii_is_decimal(arr)).as_py() is not False:
            try:
                return arr.cast(pa.int64())
            except pa.ArrowInvalid:  # more digits than int64 holds
                pass
        numbers, n_bad, example = _text_numbers(pa, arr)
        if fractions == "floor":
            self._note_unreadable(name, n_bad, example)
        return self._numbers(name, numbers, fractions)

    def _numbers(self, name: str, arr: Any, fractions: Fractions) -> Any:
        """``_whole_numbers``, noting an age column's infinities as unreadable.

        An age past ``max_age`` is made -1 (missing) first, compared exactly: the clamping
        into int32 that follows would otherwise bring a huge one within a huge ``max_age``.
        """
        if fractions == "floor" and self.max_age is not None:
            arr = _past_max_age(self._pa, arr, self.max_age)
        arr, n_bad, example = _whole_numbers(self._pa, arr, fractions)
        if fractions == "floor":
            self._note_unreadable(name, n_bad, example)
        return arr

    def _note_unreadable(self, name: str, n: int, example: Any) -> None:
        if n:
            seen = self.unreadable.setdefault(name, [0, example])
            seen[0] += n

    def warn_too_many_providers(self) -> None:
        """A :class:`~didcore.errors.TooManyProvidersWarning` if provider codes were folded."""
        if not self._folded:
            return
        import warnings

        n = len(self._folded)
        folded = f"{n:,} more" if n < _FOLDED_KEPT else f"more than {n:,} further"
        warnings.warn(
            TooManyProvidersWarning(
                f"column {self.columns.provider_code!r} holds more than "
                f"{self.max_providers:,} distinct codes: {folded} codes were counted together "
                f"as provider {OTHER_PROVIDERS!r}; is it the provider column? (raise "
                "max_providers to count them one by one)"
            ),
            stacklevel=4,
        )

    def warn_unreadable(self) -> None:
        """One :class:`~didcore.errors.UnreadableValuesWarning` per column that held values
        which are not ages or dates (counted as missing age).
        """
        import warnings

        for name, (n, example) in self.unreadable.items():
            kind = "a number" if name == self.columns.age else "an ISO date (YYYY-MM-DD)"
            what = _rows_holding(n, f"a value that is not {kind}")
            warnings.warn(
                UnreadableValuesWarning(
                    f"column {name!r}: {what} (e.g. {shown(example)}); counted as missing age"
                ),
                stacklevel=3,
            )
        self.warn_too_many_providers()

    def _days(self, batch: pa.RecordBatch, name: str) -> tuple[Any, ...]:
        column = self._column(batch, name)
        if self._pa.types.is_dictionary(column.type):
            self._check_indices(name, column)
        arr, n_bad, example = _dates(self._pa, column, name)
        self._note_unreadable(name, n_bad, example)
        self.dates[name] = arr
        return _buffers(arr, np.int32)


def _check_dictionary_indices(
    name: str, arr: Any, batch: str = "", rows_before: int = 0, source: str | None = None
) -> None:
    """Refuse a dictionary array (any index width) whose non-null rows point outside its
    dictionary, which a corrupt Parquet file or an unchecked Arrow array can hold and Arrow's
    kernels do not check: :class:`~didcore.errors.CorruptInputError` naming the column, the
    first such row (``rows_before`` earlier rows; ``batch`` words which batch, e.g.
    ``" of batch 3"``), its index and the dictionary's length, and ``source``, the file, if
    known.

    One pass over the indices, read in place: as unsigned numbers, negative indices are huge,
    so their maximum tells both ends (or, for a dictionary longer than the index type's
    largest value, the minimum alone). Only when that fails are the rows looked at one by one
    (a null row's index may hold anything).
    """
    indices = arr.indices
    n = len(arr.dictionary)
    dtype = integer_dtype(indices.type)
    values, validity, offset = _buffers(indices, dtype)
    if not len(values):
        return
    if dtype.kind == "i" and n > np.iinfo(dtype).max:  # only a negative index is outside
        if int(values.min()) >= 0:
            return
    elif int(values.view(dtype.str.replace("i", "u")).max()) < n:
        return
    bad = (values < 0) | (values >= n) if dtype.kind == "i" else values >= n
    if validity is not None:
        bits = np.unpackbits(validity, bitorder="little")[offset : offset + len(values)]
        bad &= bits.astype(bool)
    rows = np.flatnonzero(bad)
    if not len(rows):
        return
    row = int(rows[0])
    entries = "entry" if n == 1 else "entries"
    where = f"row {rows_before + row + 1} (row {row + 1}{batch})" if batch else f"row {row + 1}"
    in_file = f"{source}: " if source else ""
    raise CorruptInputError(
        f"{in_file}column {name!r}: {where} points to entry {int(values[row])} of its "
        f"dictionary, which has {n} {entries}: the file is corrupt (or the Arrow data was "
        "built without checks); write it out again from its source"
    )


def _dates(pa: Any, arr: Any, name: str) -> tuple[Any, int, Any]:
    """A date column as date32, values that are not dates null; and how many rows held such
    values, with an example. Used for ages (date of birth, test date) and financial years
    (:mod:`didcore.years`), so both read a date the same way.
    """
    t = arr.type
    n_bad, example = 0, None
    if pa.types.is_null(t):
        arr = pa.nulls(len(arr), pa.date32())
    elif pa.types.is_date64(t):
        # milliseconds since 1970; a time of day (not valid Arrow, but files hold it) is
        # dropped, as a timestamp's is
        arr = arr.cast(pa.timestamp("ms")).cast(pa.date32())
    elif pa.types.is_timestamp(t):
        arr = arr.cast(pa.date32())
    elif _is_text(pa, t) or pa.types.is_dictionary(t):
        if pa.types.is_dictionary(t):
            _check_dictionary_indices(name, arr)  # for didcore.years, which reads dates first
            arr = _plain_dictionary(pa, arr)
        arr, n_bad, example = _text_dates(pa, arr.cast(pa.string()))
    elif not pa.types.is_date32(t):
        raise ColumnTypeError(f"column {name!r} has type {t}; expected a date")
    return arr, n_bad, example


def _plain_dictionary(pa: Any, arr: Any) -> Any:
    """A dictionary array whose values are text or binary of any kind (string views and large
    strings, as polars exports a Categorical; binary, binary views) as the same indices over
    plain ``string`` values, which Arrow's casts and kernels take; any other as it is.
    Raises ``pa.ArrowInvalid`` for binary values that are not UTF-8.
    """
    values = arr.dictionary
    t = values.type
    if pa.types.is_string(t) or not (_is_text(pa, t) or is_binary_type(t)):
        return arr
    # safe=False: the indices are as they were; checking them is not this function's job
    return pa.DictionaryArray.from_arrays(arr.indices, values.cast(pa.string()), safe=False)


def _whole_numbers(pa: Any, arr: Any, fractions: Fractions) -> tuple[Any, int, Any]:
    """A floating (or decimal) column as int64 (clamped into int32's range), NaN null; and
    how many values were unreadable, with an example.

    ``fractions == "floor"`` (ages): a fractional age is its completed years, rounded down
    (40.7 is 40), and an infinite one is unreadable, null. ``"invalid"`` (sex codes): a value
    that is not whole (1.5, infinity) is an invalid code, null.
    """
    import pyarrow.compute as pc

    if not (pa.types.is_float32(arr.type) or pa.types.is_float64(arr.type)):
        arr = to_float64(arr)  # half floats and decimals: the kernels below need these
    arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    if fractions == "floor":
        arr = pc.floor(arr)
    good = pc.and_(pc.is_finite(arr), pc.equal(pc.floor(arr), arr))
    bad = pc.invert(good.fill_null(True))
    n_bad = pc.sum(bad).as_py() or 0
    example = arr.filter(bad)[0].as_py() if n_bad else None
    if n_bad:
        arr = pc.if_else(good, arr, pa.scalar(None, arr.type))
    bound = float(2**31)
    arr = pc.max_element_wise(
        pc.min_element_wise(arr, bound, skip_nulls=False), -bound, skip_nulls=False
    )
    return arr.cast(pa.int64()), n_bad, example


def _past_max_age(pa: Any, arr: Any, max_age: int) -> Any:
    """A floating (or decimal) age column as float, each finite age whose completed years
    exceed ``max_age`` replaced by -1 (a missing age).

    ``floor(v) > max_age`` is decided exactly although ``float(max_age)`` may be rounded: if
    it was rounded up, the ages past ``max_age`` are those from it on; if down, those above it.
    """
    import pyarrow.compute as pc

    if not (pa.types.is_float32(arr.type) or pa.types.is_float64(arr.type)):
        arr = to_float64(arr)
    limit = float(max_age)
    years = pc.floor(arr)
    past = pc.greater_equal(years, limit) if limit > max_age else pc.greater(years, limit)
    past = pc.and_(past, pc.is_finite(arr)).fill_null(False)
    return pc.if_else(past, pa.scalar(-1.0, arr.type), arr)


def _rows_holding(n: int, what: str) -> str:
    """How many rows of a column are bad, for an error message: "1 row holds ..." or
    "2,345 rows hold ..." (``what`` is worded for one value).
    """
    return f"1 row holds {what}" if n == 1 else f"{n:,} rows hold {what}"


def _blank_to_null(pa: Any, arr: Any) -> Any:
    """Text trimmed of white space (Unicode's, as ``str.strip``), with empty values null."""
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


# A number written as text: ASCII digits, an optional fraction, an optional exponent.
_NUMBER_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _text_numbers(pa: Any, arr: Any) -> tuple[Any, int, Any]:
    """Numbers written as text ("40", " 40 ", "40.0", "4e1"; blank is null) as float64, text
    that is not a number null; and how many rows held such text, with an example.
    """
    import pyarrow.compute as pc

    text = _blank_to_null(pa, arr)
    try:
        numbers = text.cast(pa.float64())
    except pa.ArrowInvalid:
        numbers = None
    # the usual case, numbers throughout; but the cast also reads "nan" and "inf", which are
    # not numbers here (as in didcore.reference): those go through the pattern below
    if numbers is not None and pc.all(pc.is_finite(numbers)).as_py() is not False:
        return numbers, 0, None
    number = pc.match_substring_regex(text, _NUMBER_TEXT)
    bad = pc.invert(number.fill_null(True))
    n_bad = pc.sum(bad).as_py() or 0
    example = text.filter(bad)[0].as_py() if n_bad else None
    if n_bad:
        text = pc.if_else(number, text, pa.scalar(None, pa.string()))
    return text.cast(pa.float64()), n_bad, example


def _text_dates(pa: Any, arr: Any) -> tuple[Any, int, Any]:
    """Dates written as text, ISO 8601: a date ("2023-04-01") or a date and time, whose date
    is taken as written ("2023-04-01 10:30:00", "2023-04-01T10:30", "2023-04-01T23:30+01:00");
    blank is null. Anything else ("01/05/1980", "2023-02-30") is null too; returned with how
    many rows held it and an example.
    """
    import pyarrow.compute as pc

    text = _blank_to_null(pa, arr)
    try:
        return text.cast(pa.date32()), 0, None  # the usual case: dates alone
    except pa.ArrowInvalid:
        pass
    date_part = pc.utf8_slice_codeunits(text, 0, 10)
    day = pc.strptime(date_part, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2023-02-30 over into March and takes "2023-4-1": written back, the date
    # must be the text it was read from
    date_ok = pc.equal(pc.strftime(day, format="%Y-%m-%d"), date_part)
    time_ok = pc.match_substring_regex(
        pc.utf8_slice_codeunits(text, 10, 1 << 30), _ISO_TIME.pattern
    )
    good = pc.and_(date_ok, time_ok).fill_null(False)
    bad = pc.and_(pc.is_valid(text), pc.invert(good))
    n_bad = pc.sum(bad).as_py() or 0
    example = text.filter(bad)[0].as_py() if n_bad else None
    days = pc.if_else(good, day, pa.scalar(None, day.type)).cast(pa.date32())
    return days, n_bad, example


# What may follow an ISO date in a date-time: nothing, or a time (hours, minutes, seconds,
# fractions) after "T" or a space, then a UTC offset or "Z".
_ISO_TIME = re.compile(r"^([T ]\d{2}(:?\d{2}(:?\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$")


def _not_utf8(pa: Any, arr: Any) -> str:
    """What :func:`_bad_utf8` says of a text column (or dictionary of text) holding bytes
    that are not UTF-8; empty when it holds none (or is not text).
    """
    t = arr.type
    values = arr.dictionary if pa.types.is_dictionary(t) else arr
    if not _is_text(pa, values.type):
        return ""
    try:
        values.validate(full=True)
        return ""
    except pa.ArrowInvalid:
        pass
    as_bytes = (
        values.cast(pa.large_binary())
        if not is_string_view(values.type)
        else (values.cast(pa.string()).cast(pa.large_binary()))
    )
    if pa.types.is_dictionary(t):
        as_bytes = pa.DictionaryArray.from_arrays(arr.indices, as_bytes, safe=False)
    return _bad_utf8(as_bytes)


def _bad_utf8(arr: Any) -> str:
    """How many rows (or dictionary values) of a binary column are not UTF-8, and the first."""
    is_dict = hasattr(arr, "dictionary")
    bad = []
    for v in (arr.dictionary if is_dict else arr).to_pylist():
        try:
            if v is not None:
                v.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(v)
    what = "bytes that are not UTF-8 text"
    if not bad:
        return f"it holds {what}"
    if is_dict:
        held = "value holds" if len(bad) == 1 else "values hold"
        n = f"{len(bad):,} dictionary {held} {what}"
    else:
        n = _rows_holding(len(bad), what)
    return f"{n} (e.g. {bad[0]!r})"


def _is_text(pa: Any, t: Any) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or is_string_view(t))


# Value-mapped roles -> the BatchClassifier method that classifies their dictionaries.
_MAPPED_CLASSIFIERS = {
    "sex": "_classify_sex",
    "modality": "_classify_modality",
    "exam_code": "_classify_exam",
    "gp_practice_code": "_classify_practice",
    "lsoa11": "_classify_lsoa",
}

# A whole number 1 or 2 written as text: "1", "01", "+2", "1.0" (CSVs written from a float
# column with missing values say "1.0").
_SEX_TEXT = re.compile(r"\+?0*([12])(?:\.0*)?")


def _classify_sex(dictionary: Any) -> np.ndarray:
    """NHS Person Gender Code as text: 1 male (0), 2 female (1), anything else -1."""
    import pyarrow.compute as pc

    out = []
    for v in pc.utf8_trim_whitespace(dictionary).to_pylist():
        m = _SEX_TEXT.fullmatch(v) if v is not None else None
        out.append(int(m.group(1)) - 1 if m else -1)
    return np.asarray(out, np.int8)


def _blank_mask(norm: Any) -> np.ndarray:
    import pyarrow.compute as pc

    blank = pc.or_kleene(pc.is_null(norm), pc.equal(norm, ""))
    return blank.fill_null(True).to_numpy(zero_copy_only=False)


def _string_buffers(pa: Any, arr: Any) -> tuple[Any, ...]:
    """``(offsets, data, validity bitmap or None, bit offset)`` viewing an Arrow ``string``
    array's buffers, no copy; the ``len + 1`` offsets start at the array's offset.
    """
    validity, offsets, data = arr.buffers()
    n = len(arr)
    offsets_view = (
        np.zeros(1, np.int32)
        if offsets is None
        else np.frombuffer(offsets, np.int32, count=n + 1, offset=arr.offset * 4)
    )
    data_view = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, np.uint8)
    if arr.null_count == 0:
        return offsets_view, data_view, None, 0
    if validity is None:  # every value null
        return offsets_view, data_view, np.zeros((n + 7) // 8, np.uint8), 0
    return offsets_view, data_view, np.frombuffer(validity, np.uint8), arr.offset


def _dictionary_array(pa: Any, offsets: np.ndarray, data: np.ndarray, null: int | None) -> Any:
    """A ``TextEncoder``'s dictionary as an Arrow ``string`` array (its null entry null)."""
    n = len(offsets) - 1
    bitmap = None
    if null is not None:
        valid = np.ones(n, bool)
        valid[null] = False
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        n,
        pa.py_buffer(offsets),
        pa.py_buffer(data),
        bitmap,
        null_count=0 if null is None else 1,
    )


def _buffers(arr: Any, dtype: Any) -> tuple[Any, ...]:
    """``(values, validity bitmap or None, bit offset)`` viewing the Arrow buffers, no copy."""
    bufs = arr.buffers()
    n = len(arr)
    itemsize = np.dtype(dtype).itemsize
    if n == 0 or bufs[1] is None:
        values = np.zeros(n, dtype)
    else:
        values = np.frombuffer(bufs[1], dtype=dtype, count=n, offset=arr.offset * itemsize)
    if arr.null_count == 0:
        return values, None, 0
    if bufs[0] is None:  # a null-typed array carries no bitmap: every row is null
        return values, np.zeros((n + 7) // 8, np.uint8), 0
    return values, np.frombuffer(bufs[0], dtype=np.uint8), arr.offset


def aggregate_many(sources: Iterable[Any], lookups: Lookups, **kwargs: Any) -> Cube:
    """Aggregate several sources separately and add the cubes (e.g. one per year)."""
    total: Cube | None = None
    for source in sources:
        cube = aggregate(source, lookups, **kwargs)
        total = cube if total is None else total + cube
    if total is None:
        raise InputError("no sources given")
    return total
