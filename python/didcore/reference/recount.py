"""The derivation rules (docs/inputs.md, "How a record is counted") applied to a whole
table at once.

The one vectorised re-count: :func:`derive_rows` gives, for every row of an Arrow table with
the extract's standard columns, what the rules derive from it (the ICB and where it came from,
the IMD quintile, sex, age band, the modality measure and the EDOC measure, and which
exclusion drops it); :func:`count_cube` counts the rows that reach the cube. The synthetic
generator's tally (``didcore.synth.tally``, which writes ``truth.json``) and the tests' recount
of a written extract (``tests/_synth_helpers.recount``) both use them, each with its own
lookups (the generator's in-memory model; the lookup CSV files written next to the extract)
and its own counters. Unlike :mod:`didcore.reference.cube` this is vectorised (pyarrow
compute and numpy), so it can count a synthetic extract of millions of rows; it shares no code
with the Rust core, which tests/test_synth.py holds equal to it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from didcore.axes import AGE_BANDS, STRATA_SHAPE

__all__ = ["DerivedRows", "count_cube", "derive_rows", "lookup_codes"]

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _encoded(column: Any) -> tuple[IntArray, list[str | None]]:
    """(entry index of each row, -1 for null; the distinct values, normalised as codes are by
    :mod:`didcore.codes`, ``None`` for blank) of a text column.

    Lookups then run once per distinct value, not once per row: extract columns are
    dictionary-encoded, with few distinct values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from didcore.codes import normalise_array_or_null

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not isinstance(array, pa.DictionaryArray):
        array = array.cast(pa.string()).dictionary_encode()
    index = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    entries = normalise_array_or_null(array.dictionary.cast(pa.string())).to_pylist()
    return index, entries


def _lookup(
    encoded: tuple[IntArray, list[str | None]], table: Mapping[str, int], missing: int = -1
) -> IntArray:
    """``table[code]`` for each row of an :func:`_encoded` column, ``missing`` where the code is
    null, blank or not a key.
    """
    index, entries = encoded
    per_entry = [table.get(e, missing) if e is not None else missing for e in entries]
    return np.array([*per_entry, missing], dtype=np.int64)[index]  # -1 picks ``missing``


def lookup_codes(column: Any, table: Mapping[str, int], missing: int = -1) -> IntArray:
    """``table[normalise(code)]`` for each value of a text column, ``missing`` where the code is
    null, blank or not a key (codes normalised by :mod:`didcore.codes`).
    """
    return _lookup(_encoded(column), table, missing)


def _is_blank(encoded: tuple[IntArray, list[str | None]]) -> BoolArray:
    """Rows of an :func:`_encoded` column whose code is null or blank."""
    index, entries = encoded
    return np.array([*(e is None for e in entries), True], dtype=bool)[index]


def _pair_lookup(
    first: tuple[IntArray, list[str | None]],
    second: tuple[IntArray, list[str | None]],
    table: Mapping[tuple[str, str], int],
    missing: int = -1,
) -> IntArray:
    """``table[(a, b)]`` for each row's pair of codes from two :func:`_encoded` columns."""
    (a_index, a_entries), (b_index, b_entries) = first, second
    grid = np.full((len(a_entries) + 1, len(b_entries) + 1), missing, dtype=np.int64)
    a_pos: dict[str, list[int]] = {}
    b_pos: dict[str, list[int]] = {}
    for i, e in enumerate(a_entries):
        if e is not None:
            a_pos.setdefault(e, []).append(i)
    for j, e in enumerate(b_entries):
        if e is not None:
            b_pos.setdefault(e, []).append(j)
    for (a, b), k in table.items():
        if a in a_pos and b in b_pos:
            grid[np.ix_(a_pos[a], b_pos[b])] = k
    return grid[a_index, b_index]  # index -1 picks the last row / column: ``missing``


@dataclass(frozen=True)
class DerivedRows:
    """What the derivation rules make of each row (arrays with one entry per row).

    ``icb`` is the ICB index or -1; ``quintile`` 0..4 or -1 (no IMD); ``sex`` 0 male, 1 female,
    -1 missing; ``band`` the age band index 0..18 (meaningful where ``age_ok``);
    ``modality_measure`` and ``edoc_measure`` measure indices or -1.
    """

    icb: IntArray
    src_gp: BoolArray
    src_other: BoolArray
    src_lsoa: BoolArray
    quintile: IntArray
    sex: IntArray
    band: IntArray
    age_ok: BoolArray
    modality_measure: IntArray
    edoc_measure: IntArray
    no_practice: BoolArray
    no_lsoa: BoolArray

    @property
    def src_unknown(self) -> BoolArray:
        """Rows whose ICB source is unknown: no practice or LSOA lookup gave one."""
        return ~(self.src_gp | self.src_other | self.src_lsoa)

    @property
    def no_icb(self) -> BoolArray:
        """Exclusions in order: no_icb > no_imd > no_sex > no_age (each row in one at most)."""
        return self.icb < 0

    @property
    def no_imd(self) -> BoolArray:
        """Rows with an ICB but no IMD quintile."""
        return ~self.no_icb & (self.quintile < 0)

    @property
    def no_sex(self) -> BoolArray:
        """Rows with an ICB and a quintile but no valid sex."""
        return ~self.no_icb & ~self.no_imd & (self.sex < 0)

    @property
    def no_age(self) -> BoolArray:
        """Rows with an ICB, a quintile and a sex but no valid age."""
        return ~self.no_icb & ~self.no_imd & ~self.no_sex & ~self.age_ok

    @property
    def complete(self) -> BoolArray:
        """Rows past the four exclusions (the cube's ``included`` counter)."""
        return ~(self.no_icb | self.no_imd | self.no_sex | self.no_age)

    @property
    def counted(self) -> BoolArray:
        """Rows that reach the cube: complete, with a modality in some measure."""
        return self.complete & (self.modality_measure >= 0)


def derive_rows(
    table: Any,
    *,
    practice_icb: Mapping[str, int],
    other_practices: Collection[str],
    lsoa_icb: Mapping[str, int],
    lsoa_quintile: Mapping[str, int],
    modality_measure: Mapping[str, int],
    edoc_measure: Mapping[tuple[str, str], int],
) -> DerivedRows:
    """The derivation rules applied to every row of ``table``.

    ``table`` has the standard columns ``gp_practice_code``, ``lsoa11``, ``sex``, ``age``
    (integer years, null for missing), ``modality``, ``exam_code``. The lookups are keyed by
    normalised codes (:mod:`didcore.codes`): ICB indices of practices and LSOAs, the other valid
    practices, IMD quintile indices 0..4 of LSOAs, measure indices of modalities and of
    (modality, exam code) pairs. The ICB comes from the practice, else nothing for another
    valid practice, else from the LSOA; the age band is ``min(age // 5, 18)`` for ages >= 0.
    """
    import pyarrow.compute as pc

    practice = _encoded(table.column("gp_practice_code"))
    lsoa = _encoded(table.column("lsoa11"))
    p_icb = _lookup(practice, practice_icb)
    p_other = _lookup(practice, dict.fromkeys(other_practices, 1), 0) == 1
    l_icb = _lookup(lsoa, lsoa_icb)
    quintile = _lookup(lsoa, lsoa_quintile)
    src_gp = p_icb >= 0
    src_other = ~src_gp & p_other
    src_lsoa = ~src_gp & ~src_other & (l_icb >= 0)
    icb = np.where(src_gp, p_icb, np.where(src_lsoa, l_icb, -1))

    sex = lookup_codes(table.column("sex"), {"1": 0, "2": 1})
    age = pc.fill_null(table.column("age"), -1).to_numpy().astype(np.int64)
    age_ok = age >= 0
    band = np.minimum(np.maximum(age, 0) // 5, len(AGE_BANDS) - 1)

    modality = _encoded(table.column("modality"))
    mod = _lookup(modality, modality_measure)
    edoc = _pair_lookup(modality, _encoded(table.column("exam_code")), edoc_measure)
    return DerivedRows(
        icb=icb,
        src_gp=src_gp,
        src_other=src_other,
        src_lsoa=src_lsoa,
        quintile=quintile,
        sex=sex,
        band=band,
        age_ok=age_ok,
        modality_measure=mod,
        edoc_measure=edoc,
        no_practice=_is_blank(practice),
        no_lsoa=_is_blank(lsoa),
    )


def count_cube(rows: DerivedRows, n_icb: int, n_measure: int) -> IntArray:
    """Counts ``(n_icb, *STRATA_SHAPE, n_measure)`` of the rows that reach the cube: each adds
    one to its modality measure and, when its (modality, exam code) is an EDOC measure, one to
    that too.
    """
    counts = np.zeros((n_icb, *STRATA_SHAPE, n_measure), dtype=np.int64)
    inc = np.flatnonzero(rows.counted)
    n_sex, n_age, n_imd = STRATA_SHAPE
    base = (
        ((rows.icb[inc] * n_sex + rows.sex[inc]) * n_age + rows.band[inc]) * n_imd
        + rows.quintile[inc]
    ) * n_measure
    flat = counts.reshape(-1)
    flat += np.bincount(base + rows.modality_measure[inc], minlength=flat.size)
    has_edoc = rows.edoc_measure[inc] >= 0
    flat += np.bincount(base[has_edoc] + rows.edoc_measure[inc][has_edoc], minlength=flat.size)
    return counts
