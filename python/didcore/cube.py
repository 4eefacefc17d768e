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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore._arrow_compat import number_array, text_array
from didcore.axes import AGE_BANDS, IMD_QUINTILES, SEXES, STRATA_SHAPE

# The counting, the classifier and the value parsing have their own modules; the names
# callers import from here stay importable from here.
from didcore.classify import _FOLDED_KEPT as _FOLDED_KEPT
from didcore.classify import MAX_PROVIDERS as MAX_PROVIDERS
from didcore.classify import MISSING_PROVIDER as MISSING_PROVIDER
from didcore.classify import OTHER_PROVIDERS as OTHER_PROVIDERS
from didcore.classify import BatchClassifier as BatchClassifier
from didcore.classify import ClassifiedBatch as ClassifiedBatch
from didcore.counting import _close as _close
from didcore.counting import aggregate as aggregate
from didcore.errors import (
    InputError,
)
from didcore.lookup import Lookups
from didcore.values import _bad_utf8 as _bad_utf8
from didcore.values import _dates as _dates
from didcore.values import _rows_holding as _rows_holding

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.profile import ValueProfile

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
        expect = (len(self.icb_codes), *STRATA_SHAPE)
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

        cols: dict[str, Any] = {"provider_code": text_array(self.provider_codes)}
        for j, name in enumerate(QUALITY_COUNTERS):
            cols[name] = number_array(np.asarray(self.provider_counts[:, j], np.int64))
        return pa.table(cols)

    @property
    def icb_quality(self) -> pa.Table:
        """One row per ICB plus one (``icb_code`` null) for records with no ICB."""
        import pyarrow as pa

        assert self.icb_counts is not None
        codes: list[str | None] = [*self.icb_codes, None]
        cols: dict[str, Any] = {"icb_code": text_array(codes)}
        for j, name in enumerate(QUALITY_COUNTERS):
            cols[name] = number_array(np.asarray(self.icb_counts[:, j], np.int64))
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
                "provider_code": text_array([self.provider_codes[k] for k in p]),
                "icb_code": text_array([icbs[k] for k in i]),
                "rows": number_array(np.asarray(self.provider_icb_counts[p, i], np.int64)),
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

        def ints(values: np.ndarray, dtype: Any) -> pa.Array:
            return number_array(np.asarray(values, dtype))

        if not dictionary:
            table = self.to_arrow()
            plain = [
                c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                for c in table.columns
            ]
            return pa.table(plain, names=table.column_names)
        return pa.table(
            {
                "icb_code": dict_col(ints(idx[0], np.int32), text_array(self.icb_codes)),
                "sex": dict_col(ints(idx[1], np.int32), text_array(SEXES)),
                "age_band": dict_col(ints(idx[2], np.int32), text_array(AGE_BANDS)),
                "imd_quintile": ints(idx[3] + 1, np.int8),
                "measure": dict_col(ints(idx[4], np.int32), text_array(self.measures)),
                "count": ints(self.counts[idx], np.int64),
            }
        )

    # ------------------------------------------------------------------ files
    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the cube to ``path`` as a lossless cube file (:mod:`didcore.cubefile`: Arrow
        IPC with the axes, measures and kinds, counts, quality counters, rows per year and a
        format version), written beside ``path`` and renamed into place.
        :meth:`Cube.read` gives back an equal cube with the same exclusions, ICB sources,
        quality tables, ``year_rows`` and value profile; cubes written by independent jobs
        read back and add (``a + b``) exactly. An ``OSError`` is an
        :class:`~didcore.errors.OutputError`.
        """
        from didcore.cubefile import CUBE_PART, write_cubes

        write_cubes(path, {CUBE_PART: self}, profile=self.value_profile)

    @classmethod
    def read(cls, source: str | os.PathLike[str] | bytes) -> Cube:
        """The cube of a file written by :meth:`write` (a path, or the file's bytes).

        Raises :class:`~didcore.errors.CubeFileError` (an ``InputError``) for a file that is
        not a cube file, one from a newer didcore's format version, or a damaged one; a
        file of several years' cubes (:meth:`didcore.YearCubes.write`) is read with
        :meth:`didcore.YearCubes.read`.
        """
        from didcore.cubefile import read_cube

        return read_cube(source)

    def to_bytes(self) -> bytes:
        """The bytes :meth:`write` would write (for a binary column, a message, a blob store);
        :meth:`read` takes them back.
        """
        from didcore.cubefile import cube_to_bytes

        return cube_to_bytes(self)

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
        lookups: Lookups | str | None = None,
    ) -> Cube:
        """Build a cube from an aggregated long table (the :meth:`to_arrow` layout; ``sex``
        may be 1/2 or ``male``/``female``). Repeated cells are summed.

        The measures' order and kinds (``modality`` or ``edoc``) cannot be read from the table
        (a measure with no count has no row, and the rows' order is not the measures'), so
        they come from ``measures`` with ``measure_kinds`` (one kind each, in that order), or
        from ``lookups`` (a :class:`~didcore.lookup.Lookups` or its folder: the ICBs,
        measures and kinds of every cube counted with them). Without either, this is an
        :class:`~didcore.errors.InputError`: guessing would reorder the measures and could
        label an early-diagnosis (EDOC) measure a modality. ICBs come from ``icb_codes``,
        else the lookups, else the sorted codes present. ``year_rows`` is None (unknown).
        For a lossless copy of a cube, counters and all, use :meth:`write` and :meth:`read`.
        """
        import pyarrow as pa

        lk = None
        if lookups is not None:
            from didcore.lookup import as_lookups

            lk = as_lookups(lookups)
        if measures is None and lk is not None:
            measures = lk.measures
            if measure_kinds is None:
                measure_kinds = lk.measure_kinds
        if measures is None or measure_kinds is None:
            raise InputError(
                "Cube.from_counts needs the measures in order with their kinds: pass "
                "measures=[...] and measure_kinds=[...] ('modality' or 'edoc', one per "
                "measure), or lookups= (the lookups the counts were made with); a table alone "
                "does not say which measures are early-diagnosis (edoc) ones"
            )
        meas = tuple(measures)
        kinds = tuple(measure_kinds)
        if len(kinds) != len(meas):
            raise InputError(
                f"Cube.from_counts: {len(kinds)} measure_kinds for {len(meas)} measures; give "
                "one kind per measure, in the same order"
            )
        bad = sorted({k for k in kinds if k not in ("modality", "edoc")})
        if bad:
            raise InputError(
                f"Cube.from_counts: measure kind {bad[0]!r} is neither 'modality' nor 'edoc'"
            )
        if len(set(meas)) != len(meas):
            raise InputError("Cube.from_counts: a measure is named twice in measures")
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
        if icb_codes is None and lk is not None:
            icb_codes = lk.icb_codes
        icbs = tuple(icb_codes) if icb_codes is not None else tuple(sorted(set(cols["icb_code"])))
        counts = np.zeros((len(icbs), *STRATA_SHAPE, len(meas)), np.int64)
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


def _state_indicators() -> np.ndarray:
    """Matrix (N_STATES x counters): which counters a record in each row state adds to."""
    from didcore import _didcore

    table = {k: np.asarray(v, np.int64) for k, v in _didcore.state_table().items()}
    source, outcome = table["source"], table["outcome"]
    no_practice, no_lsoa = table["no_practice"], table["no_lsoa"]
    miss_imd, miss_sex, miss_age = table["missing_imd"], table["missing_sex"], table["missing_age"]
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
    counts = np.asarray(result["cube"]).reshape(n_icb, *STRATA_SHAPE, n_m)
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
