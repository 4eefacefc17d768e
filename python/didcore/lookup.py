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
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import is_string_view
from didcore.errors import (
    LookupConflictError,
    MeasureDefinitionError,
    MissingColumnError,
    UnreadableInputError,
)
from didcore.io import csv_column_names, csv_encoding, is_binary_type

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

#: The modality values of the DID (Table 1 of the DID statistical release).
DID_MODALITIES: tuple[str, ...] = (
    "Plain Radiography",
    "Diagnostic Ultrasonography",
    "Computerized Axial Tomography",
    "Magnetic Resonance Imaging",
    "Fluoroscopy",
    "Nuclear Medicine Procedure",
    "Positron Emission Tomography",
    "Single Photon Emission Computerized Tomography",
    "Medical Photography",
)

#: Other spellings of the DID modalities (normalised: trimmed, upper-case) -> the DID name:
#: DICOM modality codes (``CR``/``DX`` radiography, ``RF`` fluoroscopy, ``PT`` PET, ``XC``
#: external-camera photography), the usual short forms and English names. The shipped
#: measures file lists each under its modality's measures, and a measures file may use them
#: (docs/measures-spellings.md). Each spelling names one modality only.
MODALITY_SPELLINGS: dict[str, str] = {
    spelling: name
    for name, spellings in {
        "Plain Radiography": (
            "XR",
            "X-RAY",
            "XRAY",
            "X RAY",
            "X-RAYS",
            "RADIOGRAPHY",
            "PLAIN FILM",
            "CR",
            "DX",
        ),
        "Diagnostic Ultrasonography": (
            "US",
            "USS",
            "ULTRASOUND",
            "ULTRASONOGRAPHY",
            "DIAGNOSTIC ULTRASOUND",
        ),
        "Computerized Axial Tomography": (
            "CT",
            "CT SCAN",
            "CAT",
            "COMPUTED TOMOGRAPHY",
            "COMPUTERISED TOMOGRAPHY",
            "COMPUTERIZED TOMOGRAPHY",
            "COMPUTERISED AXIAL TOMOGRAPHY",
        ),
        "Magnetic Resonance Imaging": ("MR", "MRI", "MRI SCAN", "MAGNETIC RESONANCE"),
        "Fluoroscopy": ("RF", "FLUORO"),
        "Nuclear Medicine Procedure": ("NM", "NUCLEAR MEDICINE", "NUC MED"),
        "Positron Emission Tomography": ("PT", "PET", "PET SCAN", "PET-CT", "PET CT"),
        "Single Photon Emission Computerized Tomography": (
            "SPECT",
            "SPECT SCAN",
            "SPECT-CT",
            "SPECT CT",
            "SINGLE PHOTON EMISSION COMPUTED TOMOGRAPHY",
            "SINGLE PHOTON EMISSION COMPUTERISED TOMOGRAPHY",
        ),
        "Medical Photography": ("MP", "XC", "PHOTOGRAPHY", "CLINICAL PHOTOGRAPHY"),
    }.items()
    for spelling in spellings
}

_TABLES = ("practice_icb", "other_practices", "lsoa_icb", "lsoa_imd", "measures", "icb")
_REQUIRED = ("practice_icb", "lsoa_icb", "lsoa_imd")


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalise_code(value: object) -> str | None:
    """Trim white space and upper-case ASCII letters; ``None`` for null or blank.

    White space is Unicode's, as ``str.strip()`` has it: ASCII's, the no-break space that
    spreadsheets leave around codes, and the rest. That set is exactly what Arrow's
    ``utf8_trim_whitespace`` kernel trims, and letters are upper-cased as its ``ascii_upper``
    does, the kernels the fast path applies to each dictionary, so both paths agree on any
    text. (Codes are ASCII, so upper-casing other letters would only make near misses match.)
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip().translate(_ASCII_UPPER)
    return text or None


@dataclass(frozen=True)
class MeasureRule:
    """One row of the measures file: ``measure`` counts tests of ``modality`` (upper-cased)
    whose exam code is ``exam_code`` (upper-cased), or any exam code when it is ``None``.
    """

    measure: str
    kind: str
    modality: str
    exam_code: str | None


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


# ---------------------------------------------------------------------- helpers


_SUFFIXES = (".csv", ".parquet", ".pq", ".csv.gz")


def _find_table(root: Path, name: str) -> Path | None:
    """The file of lookup ``name`` in ``root``: ``name`` with one of :data:`_SUFFIXES`, in
    any case (``PRACTICE_ICB.CSV``). Two such files (a CSV and a Parquet copy) are an error:
    which one is meant is not for didcore to guess.
    """
    wanted = {f"{name}{suffix}" for suffix in _SUFFIXES}
    found = sorted(p for p in root.iterdir() if p.name.lower() in wanted and p.is_file())
    if len(found) > 1:
        raise UnreadableInputError(
            f"lookups folder {root} has {len(found)} files for {name} "
            f"({', '.join(p.name for p in found)}); keep one"
        )
    return found[0] if found else None


# Bytes of a lookup CSV parsed at a time: a line longer than this cannot be read.
_LOOKUP_BLOCK_BYTES = 16 << 20


def _read_table(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    names: list[str] = []
    try:
        if path.name.endswith((".parquet", ".pq")):
            table = pq.read_table(path)
            names = table.column_names  # decoded here: a name that is not UTF-8 is an error
            return table
        # Every column as text: codes such as 01A or 0001 must not be read as numbers. The
        # streaming reader parses only the first block to learn the column names. A file
        # with a UTF-16 byte-order mark is transcoded; a header that is not UTF-8 is an error.
        names = csv_column_names(path)
        types = {name: pa.string() for name in names}
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding=csv_encoding(path), block_size=_LOOKUP_BLOCK_BYTES
            ),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
    except UnreadableInputError:
        raise
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        text = str(exc)
        if isinstance(exc, UnicodeDecodeError) and not names:
            raise UnreadableInputError(
                f"cannot read lookup {path}: a column name is not UTF-8 text"
            ) from exc
        if "utf8" in text.lower():
            column = re.search(r"column #(\d+)", text)
            where = "it"
            if column and int(column.group(1)) < len(names):
                where = f"column {names[int(column.group(1))]!r}"
            raise UnreadableInputError(
                f"cannot read lookup {path}: {where} is not UTF-8 text (Excel: save as 'CSV UTF-8')"
            ) from exc
        ragged = _ragged_line(path) if "Expected" in text else None
        if ragged is not None:
            line, n, want = ragged
            raise UnreadableInputError(
                f"cannot read lookup {path}: line {line} has {n} fields where the header has {want}"
            ) from exc
        raise UnreadableInputError(f"cannot read lookup {path}: {exc}") from exc


def _ragged_line(path: Path) -> tuple[int, int, int] | None:
    """The first line of a CSV file whose number of fields differs from its header's:
    (line number, fields, header fields), or ``None``. For error messages: pyarrow's do not
    say which line.
    """
    import csv
    import gzip

    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f)
            want = len(next(rows, []))
            for row in rows:
                # blank lines are skipped, as pyarrow skips them (but not lines of spaces); the
                # reader's line number is that of the row's last line
                if row and len(row) != want:
                    return rows.line_num, len(row), want
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _as_table(obj: Any, name: str) -> pa.Table:
    """A lookup as a pyarrow Table, tidied (:func:`_tidy`)."""
    import pyarrow as pa

    if isinstance(obj, pa.Table):
        table = obj
    elif isinstance(obj, str | Path):
        table = _read_table(Path(obj))
    else:
        try:
            table = pa.table(obj)
        except (TypeError, ValueError, pa.ArrowInvalid) as exc:
            raise LookupConflictError(
                f"cannot use {type(obj).__name__} as the {name} lookup table"
            ) from exc
    return _tidy(table, name)


def _tidy(table: pa.Table, name: str) -> pa.Table:
    """Column names trimmed and lower-cased, inner spaces as underscores (``EXAM_CODE``,
    `` icb_code``, ``Exam Code``); categorical columns (pandas, polars) as plain text; binary
    columns (Parquet written without the UTF-8 annotation) as UTF-8 text.
    """
    import pyarrow as pa

    names = [re.sub(" +", "_", str(n).strip().lower()) for n in table.column_names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LookupConflictError(
            f"lookup {name} has more than one column named {', '.join(twice)} (names are "
            "compared ignoring case and spaces)"
        )
    columns = []
    for f, column in zip(table.schema, table.columns, strict=True):
        try:
            text = _as_text(pa, column)
            # a Parquet string column is not checked when read: bytes that are not UTF-8
            # would fail later, deep in a kernel (lookups are small: checking costs little)
            text.validate(full=True)
            columns.append(text)
        except pa.ArrowInvalid as exc:
            raise LookupConflictError(
                f"lookup {name}: column {f.name} holds bytes that are not UTF-8 text; "
                "save the file as UTF-8"
            ) from exc
    return pa.table(columns, names=names)


def _as_text(pa: Any, column: Any) -> Any:
    """A categorical column decoded, and string views and binary as plain strings (other
    columns as they are). Raises ``pa.ArrowInvalid`` for bytes that are not UTF-8.
    """
    t = column.type
    if pa.types.is_dictionary(t):
        chunks = []
        for chunk in column.chunks:
            # decode with string values: Arrow cannot take from string views
            values = _as_text(pa, pa.chunked_array([chunk.dictionary])).combine_chunks()
            chunks.append(pa.DictionaryArray.from_arrays(chunk.indices, values).dictionary_decode())
        if not chunks:
            return _as_text(pa, pa.chunked_array([], type=t.value_type))
        return pa.chunked_array(chunks)
    if is_string_view(t) or is_binary_type(t):
        return column.cast(pa.string())
    return column


def _require(table: pa.Table, name: str, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        have = ", ".join(repr(c) for c in table.column_names) or "no columns"
        hint = ""
        if any(sep in c for c in table.column_names for sep in ("\t", ";", "|")):
            hint = "; its header looks tab-, semicolon- or bar-separated: use commas"
        raise MissingColumnError(
            f"lookup {name} has no column {', '.join(repr(c) for c in missing)} "
            f"(it has: {have}){hint}"
        )


def _normalised_text(column: Any) -> Any:
    """A text column normalised as :func:`normalise_code` does (blank -> null).

    With Arrow kernels; ``None`` for a column that is not text (the row loop handles those).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return None
    norm = pc.ascii_upper(pc.utf8_trim_whitespace(column))
    return pc.if_else(pc.equal(norm, ""), pa.scalar(None, norm.type), norm)


def _pairs(table: pa.Table, name: str, key: str, value: str) -> dict[str, str]:
    """Key -> value, refusing keys that map to two different values."""
    _require(table, name, (key, value))
    fast = _pairs_vectorised(table, key, value)
    return fast if fast is not None else _pairs_rows(table, name, key, value)


def _keyed_rows(table: pa.Table, key: str, value: str) -> Iterator[tuple[str, Any]]:
    """(normalised key, raw value) of each row whose key is not blank."""
    for raw_key, raw_value in zip(
        table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True
    ):
        k = normalise_code(raw_key)
        if k is not None:
            yield k, raw_value


def _pairs_rows(table: pa.Table, name: str, key: str, value: str) -> dict[str, str]:
    """:func:`_pairs` as a loop over rows: any column type, and the errors' details."""
    out: dict[str, str] = {}
    conflicts: dict[str, set[str]] = {}
    blank_values = 0
    for k, raw_value in _keyed_rows(table, key, value):
        v = normalise_code(raw_value)
        if v is None:
            blank_values += 1
            continue
        seen = out.setdefault(k, v)
        if seen != v:
            conflicts.setdefault(k, {seen}).add(v)
    if conflicts:
        shown = "; ".join(
            f"{k} -> {' / '.join(sorted(v))}" for k, v in sorted(conflicts.items())[:5]
        )
        raise LookupConflictError(
            f"lookup {name}: {len(conflicts)} {key} values map to more than one {value} "
            f"({shown}); keep one row per {key}"
        )
    if blank_values:
        raise LookupConflictError(
            f"lookup {name}: {blank_values} rows have a {key} but a blank {value}"
        )
    return out


def _pairs_vectorised(table: pa.Table, key: str, value: str) -> dict[str, str] | None:
    """:func:`_pairs` with Arrow kernels, for the usual case.

    That is text columns, no blank values and no key mapped to two values; ``None`` otherwise,
    and the row loop finds what is wrong.
    """
    import pyarrow.compute as pc

    keys = _normalised_text(table.column(key))
    values = _normalised_text(table.column(value))
    if keys is None or values is None:
        return None
    keep = pc.is_valid(keys)
    keys, values = keys.filter(keep), values.filter(keep)
    if values.null_count:
        return None
    return _unique_mapping(keys.to_pylist(), values.to_pylist())


def _unique_mapping(keys: list[Any], values: list[Any]) -> dict[Any, Any] | None:
    """``dict(zip(keys, values))``, or ``None`` if a key is given two different values."""
    out = dict(zip(keys, values, strict=True))
    # dict() keeps each key's first position, as the row loop does, and its last value
    if len(out) != len(keys) and any(out[k] != v for k, v in zip(keys, values, strict=True)):
        return None
    return out


def _blank(value: object) -> bool:
    """Null, or text that is empty once trimmed."""
    return value is None or (isinstance(value, str) and not value.strip())


def _imd(table: pa.Table) -> dict[str, int]:
    """LSOA -> IMD quintile 1..5 (1 = most deprived).

    From a decile d, quintile ceil(d / 2); from a rank r among the N LSOAs ranked (N the
    highest rank in the table, so the table must hold every ranked LSOA, e.g. all 32,844 of
    England for IMD 2019), quintile ceil(5 r / N): the equal fifths the published deciles and
    quintiles are cut from. A table with both deciles and quintiles uses whichever a row has,
    and they must agree where it has both. A level may be written as a whole number in any
    form (3, 3.0, " 3 "); a blank (or NA, NaN, NULL) level leaves its LSOA with no IMD.
    """
    has_decile = "imd_decile" in table.column_names
    has_quintile = "imd_quintile" in table.column_names
    _require(table, "lsoa_imd", ("lsoa11",))
    if not (has_decile or has_quintile) and "imd_rank" in table.column_names:
        return _imd_from_ranks(table)
    if not (has_decile or has_quintile):
        raise MissingColumnError(
            "lookup lsoa_imd needs imd_decile (1..10), imd_quintile (1..5) or imd_rank "
            f"(it has: {', '.join(table.column_names)})"
        )
    if has_decile != has_quintile:
        column, top = ("imd_decile", 10) if has_decile else ("imd_quintile", 5)
        fast = _imd_vectorised(table, column, top, has_decile)
        if fast is not None:
            return fast
    return _imd_rows(table)


# Text an IMD level may hold to say it has none: R's NA, pandas' NaN, SQL's NULL.
_NO_LEVEL = frozenset({"NA", "N/A", "NAN", "NULL", "NONE"})


def _level(raw: object) -> int | None:
    """An IMD level written as a whole number in any form; ``None`` when blank or NA.
    Raises ``ValueError`` for anything else.
    """
    if _blank(raw) or (isinstance(raw, float) and math.isnan(raw)):
        return None
    text = str(raw).strip()
    if text.upper() in _NO_LEVEL:
        return None
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _imd_rows(table: pa.Table) -> dict[str, int]:
    """:func:`_imd` from deciles and/or quintiles as a loop over rows: any column type, and
    the errors' details.
    """
    columns = [("imd_decile", 10), ("imd_quintile", 5)]
    values = {
        c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
        for c, _ in columns
    }
    out: dict[str, int] = {}
    conflicts: set[str] = set()
    disagree: list[str] = []
    bad: dict[str, list[object]] = {c: [] for c, _ in columns}
    for i, raw_key in enumerate(table.column("lsoa11").to_pylist()):
        k = normalise_code(raw_key)
        if k is None:
            continue
        levels: dict[str, int | None] = {}
        for c, top in columns:
            raw = values[c][i]
            try:
                level = _level(raw)
            except ValueError:
                level = -1
            if level is not None and not 1 <= level <= top:
                bad[c].append(raw)
                level = None
            levels[c] = level
        d, q = levels["imd_decile"], levels["imd_quintile"]
        if d is not None and q is not None and (d + 1) // 2 != q:
            disagree.append(f"{k} (decile {d}, quintile {q})")
            continue
        quintile = (d + 1) // 2 if d is not None else q
        if quintile is None:
            continue  # an LSOA listed with no IMD (a Welsh one in an English table, say)
        if out.setdefault(k, quintile) != quintile:
            conflicts.add(k)
    for c, top in columns:
        if bad[c]:
            raise LookupConflictError(
                f"lookup lsoa_imd: {len(bad[c])} rows have an {c} that is not a whole number "
                f"from 1 to {top} (e.g. {bad[c][0]!r})"
            )
    if disagree:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(disagree)} rows give a decile and a quintile that disagree "
            f"(e.g. {disagree[0]}); the quintile of decile d is ceil(d / 2)"
        )
    if conflicts:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(conflicts)} LSOAs have two different quintiles "
            f"(e.g. {sorted(conflicts)[0]})"
        )
    return out


def _imd_from_ranks(table: pa.Table) -> dict[str, int]:
    """LSOA -> quintile ceil(5 r / N) from IMD ranks r (1 = most deprived), N the highest."""
    ranks: dict[str, int] = {}
    bad: list[object] = []
    for k, raw_value in _keyed_rows(table, "lsoa11", "imd_rank"):
        try:
            rank = _level(raw_value)
        except ValueError:
            rank = 0
        if rank is None:
            continue
        if rank < 1:
            bad.append(raw_value)
        elif ranks.setdefault(k, rank) != rank:
            raise LookupConflictError(f"lookup lsoa_imd: LSOA {k} has two different ranks")
    if bad:
        raise LookupConflictError(
            f"lookup lsoa_imd: {len(bad)} rows have an imd_rank that is not a whole number "
            f"from 1 (e.g. {bad[0]!r})"
        )
    n = max(ranks.values(), default=0)
    return {k: (5 * r + n - 1) // n for k, r in ranks.items()}


def _imd_vectorised(
    table: pa.Table, column: str, top: int, has_decile: bool
) -> dict[str, int] | None:
    """:func:`_imd` with Arrow kernels, for the usual case.

    That is text LSOA codes, every level a whole number in range and no LSOA given two
    quintiles; ``None`` otherwise.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = _normalised_text(table.column("lsoa11"))
    if keys is None:
        return None
    raw = table.column(column)
    if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
        text = pc.utf8_trim_whitespace(raw)
        if not pc.all(pc.match_substring_regex(text, r"^[0-9]{1,3}$")).as_py():
            return None
        levels = text.cast(pa.int64())
    elif pa.types.is_integer(raw.type):
        levels = raw.cast(pa.int64())
    else:
        return None
    keep = pc.is_valid(keys)
    keys, levels = keys.filter(keep), levels.filter(keep)
    if levels.null_count:
        return None
    if len(levels) and not 1 <= pc.min(levels).as_py() <= pc.max(levels).as_py() <= top:
        return None
    quintiles = pc.divide(pc.add(levels, 1), 2) if has_decile else levels
    return _unique_mapping(keys.to_pylist(), quintiles.to_pylist())


def _shipped_measures() -> pa.Table:
    path = resources.files("didcore") / "data" / "measures.csv"
    with resources.as_file(path) as p:
        return _read_table(Path(p))


def _measures_as_text(table: pa.Table) -> pa.Table:
    """The measures table with its columns as text: a name or exam code written as a number
    (a spreadsheet's ``123``, a Parquet integer column) is the text it shows. A column that
    cannot be text (lists, structs) is a :class:`MeasureDefinitionError`.
    """
    import pyarrow as pa

    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if name not in ("measure", "kind", "modality", "exam_code"):
            continue
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            continue
        try:
            text = column.cast(pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
            raise MeasureDefinitionError(
                f"measures: column {name} has type {column.type}; expected text"
            ) from exc
        table = table.set_column(i, name, text)
    return table


def _measure_rules(table: pa.Table) -> tuple[MeasureRule, ...]:
    _require(table, "measures", ("measure", "kind", "modality"))
    table = _measures_as_text(table)
    if "exam_code" not in table.column_names:
        # Without the column every EDOC measure would silently count its whole modality.
        edoc = [k for k in table.column("kind").to_pylist() if (k or "").strip().lower() == "edoc"]
        if edoc:
            raise MeasureDefinitionError(
                f"measures: {len(edoc)} edoc rows but no exam_code column "
                f"(it has: {', '.join(repr(c) for c in table.column_names)})"
            )
    exam_col: Sequence[object] = (
        table.column("exam_code").to_pylist()
        if "exam_code" in table.column_names
        else [None] * table.num_rows
    )
    known = {m.upper(): m for m in DID_MODALITIES} | MODALITY_SPELLINGS
    rules: list[MeasureRule] = []
    kinds: dict[str, str] = {}
    # Rows are counted from 1 after the header: not file lines, as the CSV reader skips blank
    # lines (and a Parquet or in-memory table has none).
    for row, (measure, kind, modality, exam) in enumerate(
        zip(
            table.column("measure").to_pylist(),
            table.column("kind").to_pylist(),
            table.column("modality").to_pylist(),
            exam_col,
            strict=True,
        ),
        start=1,
    ):
        name = (measure or "").strip()
        kind_n = (kind or "").strip().lower()
        mod = normalise_code(modality)
        if not name:
            raise MeasureDefinitionError(f"measures: row {row} has no measure name")
        if kind_n not in ("modality", "edoc"):
            raise MeasureDefinitionError(
                f"measures: row {row} ({name}) has kind {kind!r}; use 'modality' or 'edoc'"
            )
        if kinds.setdefault(name, kind_n) != kind_n:
            raise MeasureDefinitionError(f"measures: {name} is given two kinds")
        if mod is None or mod not in known:
            raise MeasureDefinitionError(
                f"measures: row {row} ({name}) names modality {modality!r}, which is not a "
                f"DID modality (known: {', '.join(DID_MODALITIES)}, or the spellings in "
                "docs/measures-spellings.md)"
            )
        rules.append(MeasureRule(name, kind_n, mod, normalise_code(exam)))
    if not rules:
        raise MeasureDefinitionError("measures: the file defines no measure")
    by_case: dict[str, str] = {}
    for name in kinds:
        other = by_case.setdefault(name.casefold(), name)
        if other != name:
            raise MeasureDefinitionError(
                f"measures: {other!r} and {name!r} differ only in case; spell each measure "
                "the same way on all its lines"
            )
    return tuple(rules)
