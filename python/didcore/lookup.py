"""Lookups: practice -> ICB, LSOA -> ICB and IMD, measures, ICBs (docs/inputs.md).

A lookups folder holds one CSV or Parquet file per table, with a header row:

============================  ==============================================================
file                          columns
============================  ==============================================================
``practice_icb``              ``gp_practice_code``, ``icb_code``
``other_practices`` (opt.)    ``gp_practice_code``: valid practices outside the English ICBs
``lsoa_icb``                  ``lsoa11``, ``icb_code``
``lsoa_imd``                  ``lsoa11``, ``imd_decile`` (1 = most deprived), ``imd_quintile``
                              or ``imd_rank`` (1 = most deprived, of every LSOA ranked)
``measures``                  ``measure``, ``kind`` (``modality``/``edoc``), ``modality``,
                              ``exam_code`` (empty = every code of that modality)
``icb`` (optional)            ``icb_code``, ``icb_name``, ``region``
============================  ==============================================================

Column names are matched ignoring case and surrounding spaces (``ICB_CODE``, ``Exam Code``).
Codes are compared after trimming white space and upper-casing, both here and in the extract;
categorical (pandas, polars) and binary columns are read as text.
An ``lsoa_imd`` level may be any whole number (``3``, ``3.0``); a blank one (or NA, NaN, NULL)
leaves that LSOA with no IMD (its records are counted under "no IMD"); any other value
outside the scale is an error. With both ``imd_decile`` and ``imd_quintile``, a row may give
either, and where it gives both they must agree. A required lookup with no usable row, an
``edoc`` measure with no ``exam_code`` column, and measure names that differ only in case are
errors, since each would otherwise empty or split the cube without a word.
When ``measures`` is absent from the folder, the measures shipped with didcore (the
publication's 9 modalities and 5 early-diagnosis-of-cancer tests) are used.

:meth:`Lookups.default` gives the national lookups shipped with didcore (:mod:`didcore.defaults`),
which ``aggregate(source)`` and the command line use when no lookups are given.

This module holds :class:`Lookups` and :func:`as_lookups`; the rest lives by concern, its
names re-exported here: finding and reading the tables and their code -> value pairs in
:mod:`didcore.lookup_files`, IMD deciles, quintiles and ranks in :mod:`didcore.imd`, the
measures and the modality spellings in :mod:`didcore.measures`, code normalisation in
:mod:`didcore.codes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore.codes import normalise_code
from didcore.errors import LookupConflictError, UnreadableInputError
from didcore.imd import _imd
from didcore.imd import _imd_rows as _imd_rows
from didcore.imd import _imd_vectorised as _imd_vectorised
from didcore.lookup_files import _as_table, _find_table, _pairs, _read_table, _require
from didcore.lookup_files import _pairs_rows as _pairs_rows
from didcore.lookup_files import _pairs_vectorised as _pairs_vectorised
from didcore.measures import (
    DID_MODALITIES,
    MODALITY_SPELLINGS,
    MeasureRule,
    _measure_rules,
    _shipped_measures,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DID_MODALITIES",
    "MODALITY_SPELLINGS",
    "Lookups",
    "MeasureRule",
    "as_lookups",
    "normalise_code",
]

_TABLES = ("practice_icb", "other_practices", "lsoa_icb", "lsoa_imd", "measures", "icb")
_REQUIRED = ("practice_icb", "lsoa_icb", "lsoa_imd")


@dataclass(frozen=True)
class Lookups:
    """Everything needed to derive ICB, IMD quintile and measures for a record.

    Mappings are plain dicts keyed by normalised codes (see :func:`normalise_code`); ICB
    indices refer to :attr:`icb_codes`, the ICB axis of every cube built with these lookups.
    """

    icb_codes: tuple[str, ...]
    practice_icb: Mapping[str, str]
    other_practices: frozenset[str]
    lsoa_icb: Mapping[str, str]
    lsoa_quintile: Mapping[str, int]
    measure_rules: tuple[MeasureRule, ...]
    icb_names: Mapping[str, str] = field(default_factory=dict)
    icb_regions: Mapping[str, str] = field(default_factory=dict)
    #: Where the lookups came from (a folder's path, ``"tables"``, or the shipped data); not
    #: compared: two Lookups with the same content are equal wherever they came from.
    source: str = field(default="tables", compare=False)
    #: The reference data's vintage, named in every output: e.g. ``"ICBs July 2022; ..."`` for
    #: :meth:`default`, ``"user-supplied folder DIR"`` for :meth:`read`, ``None`` for tables.
    vintage: str | None = field(default=None, compare=False)
    #: Value maps of the folder's optional ``value_maps.csv`` (:mod:`didcore.valuemaps`).
    value_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> Lookups:
        """The national lookups shipped with didcore (ICBs July 2022, GP practices epraccur
        2023, LSOA 2011 -> ICB July 2022, IMD 2019, the publication's measures): see
        :mod:`didcore.defaults`. Built once per process and shared: do not modify it.
        """
        from didcore.defaults import default_lookups

        return default_lookups()

    @classmethod
    def read(cls, folder: str | Path) -> Lookups:
        """Read a lookups folder (files and columns: docs/inputs.md). Raises
        :class:`~didcore.errors.InputError` subclasses naming the file, column and values at
        fault.
        """
        from didcore.arguments import check_path

        root = check_path(folder, "lookups folder")
        try:
            is_dir = root.is_dir()
        except OSError as exc:  # e.g. a folder above it that cannot be searched
            raise UnreadableInputError(f"cannot read lookups folder {root}: {exc}") from exc
        if not is_dir:
            raise UnreadableInputError(f"lookups folder {root} does not exist or is not a folder")
        tables: dict[str, pa.Table] = {}
        for name in _TABLES:
            try:
                path = _find_table(root, name)
            except OSError as exc:  # a folder that cannot be listed
                if isinstance(exc, UnreadableInputError):
                    raise
                raise UnreadableInputError(f"cannot read lookups folder {root}: {exc}") from exc
            if path is not None:
                tables[name] = _read_table(path)
        for name in _REQUIRED:
            if name not in tables:
                raise UnreadableInputError(
                    f"lookups folder {root} has no {name}.csv or {name}.parquet "
                    f"(needed: {', '.join(_REQUIRED)}; optional: other_practices, measures, icb)"
                )
        from dataclasses import replace

        from didcore.valuemaps import read_value_maps

        lookups = cls.from_tables(
            **tables, source=str(root), vintage=f"user-supplied folder {root}"
        )
        return replace(lookups, value_maps=read_value_maps(root))

    @classmethod
    def from_tables(
        cls,
        practice_icb: Any,
        lsoa_icb: Any,
        lsoa_imd: Any,
        measures: Any = None,
        other_practices: Any = None,
        icb: Any = None,
        *,
        source: str = "tables",
        vintage: str | None = None,
    ) -> Lookups:
        """Build lookups from tables: pyarrow Tables, or anything ``pyarrow.table()`` accepts
        (a dict of columns, a polars or pandas frame). ``measures=None`` uses the shipped file.
        """
        practice = _pairs(
            _as_table(practice_icb, "practice_icb"), "practice_icb", "gp_practice_code", "icb_code"
        )
        lsoa = _pairs(_as_table(lsoa_icb, "lsoa_icb"), "lsoa_icb", "lsoa11", "icb_code")
        quintile = _imd(_as_table(lsoa_imd, "lsoa_imd"))
        for table_name, mapping, what in (
            ("practice_icb", practice, "practice with an ICB"),
            ("lsoa_icb", lsoa, "LSOA with an ICB"),
            ("lsoa_imd", quintile, "LSOA with an IMD level"),
        ):
            if not mapping:
                # an empty lookup would not fail: every record would just lose its ICB or IMD
                raise LookupConflictError(
                    f"lookup {table_name} lists no {what}: is the file empty, or are its "
                    "values blank?"
                )
        others: frozenset[str] = frozenset()
        if other_practices is not None:
            t = _as_table(other_practices, "other_practices")
            _require(t, "other_practices", ("gp_practice_code",))
            others = frozenset(
                c for c in map(normalise_code, t.column("gp_practice_code").to_pylist()) if c
            )
        if measures is None:
            measures = _shipped_measures()
        rules = _measure_rules(_as_table(measures, "measures"))

        names: dict[str, str] = {}
        regions: dict[str, str] = {}
        if icb is not None:
            t = _as_table(icb, "icb")
            _require(t, "icb", ("icb_code",))
            codes = [normalise_code(c) for c in t.column("icb_code").to_pylist()]
            if any(c is None for c in codes):
                raise LookupConflictError(f"icb: {codes.count(None)} rows have a blank icb_code")
            dupes = sorted({c for c in codes if codes.count(c) > 1 and c})
            if dupes:
                raise LookupConflictError(f"icb: icb_code repeated: {', '.join(dupes[:10])}")
            icb_codes = tuple(c for c in codes if c)
            for col, target in (("icb_name", names), ("region", regions)):
                if col in t.column_names:
                    for code, value in zip(icb_codes, t.column(col).to_pylist(), strict=True):
                        if value is not None:
                            target[code] = str(value)
            known = set(icb_codes)
            for table_name, mapping in (("practice_icb", practice), ("lsoa_icb", lsoa)):
                unknown: dict[str, int] = {}
                for value in mapping.values():
                    if value not in known:
                        unknown[value] = unknown.get(value, 0) + 1
                if unknown:
                    listed = ", ".join(f"{k} ({n} rows)" for k, n in sorted(unknown.items())[:10])
                    raise LookupConflictError(
                        f"{table_name}: icb_code not in the icb table: {listed}; add them to "
                        "icb or correct the lookup"
                    )
        else:
            icb_codes = tuple(sorted(set(practice.values()) | set(lsoa.values())))
        if not icb_codes:
            raise LookupConflictError("lookups name no ICB: practice_icb and lsoa_icb are empty")
        return cls(
            icb_codes=icb_codes,
            practice_icb=practice,
            other_practices=others,
            lsoa_icb=lsoa,
            lsoa_quintile=quintile,
            measure_rules=rules,
            icb_names=names,
            icb_regions=regions,
            source=source,
            vintage=vintage,
        )

    def _counts(self) -> list[tuple[str, int]]:
        return [
            ("ICBs", len(self.icb_codes)),
            ("GP practices", len(self.practice_icb)),
            ("other practices", len(self.other_practices)),
            ("LSOAs with an ICB", len(self.lsoa_icb)),
            ("LSOAs with an IMD quintile", len(self.lsoa_quintile)),
            ("measures", len(self.measures)),
        ]

    def __repr__(self) -> str:
        """One line: counts of each table and the vintage (never the tables themselves)."""
        counts = ", ".join(f"{n:,} {what}" for what, n in self._counts())
        maps = f", value maps for {', '.join(self.value_maps)}" if self.value_maps else ""
        return f"<didcore.Lookups {counts}{maps}; {self.description}>"

    def _repr_html_(self) -> str:
        """A notebook summary: the counts of :meth:`__repr__`, the source and vintage."""
        from didcore._display import html_table

        rows: list[tuple[str, object]] = [*self._counts(), ("source", self.description)]
        rows += [(f"value map of {k}", len(v)) for k, v in self.value_maps.items()]
        return html_table("didcore.Lookups", rows)

    @property
    def description(self) -> str:
        """The lookups used and their vintage, in one line, as every output names them."""
        if self.vintage is None:
            return "user-supplied lookup tables"
        if self.vintage.startswith("user-supplied"):
            return self.vintage
        return f"{self.source} ({self.vintage})"

    # ------------------------------------------------------------------ measures
    @property
    def measures(self) -> tuple[str, ...]:
        """Measure names, in the order they first appear in the measures file."""
        return tuple(dict.fromkeys(r.measure for r in self.measure_rules))

    @property
    def measure_kinds(self) -> tuple[str, ...]:
        """``"modality"`` or ``"edoc"`` for each of :attr:`measures`."""
        kinds = {r.measure: r.kind for r in self.measure_rules}
        return tuple(kinds[m] for m in self.measures)

    def measures_of(self, modality: str | None, exam_code: str | None) -> list[int]:
        """Indices of the measures a test of this (raw) modality and exam code counts in."""
        mod = normalise_code(modality)
        exam = normalise_code(exam_code)
        index = {m: i for i, m in enumerate(self.measures)}
        hits = {
            index[r.measure]
            for r in self.measure_rules
            if r.modality == mod and (r.exam_code is None or r.exam_code == exam)
        }
        return sorted(hits)


def as_lookups(lookups: object) -> Lookups:
    """``lookups`` as :class:`Lookups`: ``None`` for :meth:`Lookups.default`, a folder path
    for :meth:`Lookups.read`, a Lookups as it is; anything else is an InputError.
    """
    import os

    if lookups is None:
        return Lookups.default()
    if isinstance(lookups, Lookups):
        return lookups
    if isinstance(lookups, str | os.PathLike):
        return Lookups.read(lookups)  # type: ignore[arg-type]
    raise LookupConflictError(
        f"lookups must be a didcore.Lookups, the path of a lookups folder or None (the shipped "
        f"lookups), not {type(lookups).__name__}"
    )
