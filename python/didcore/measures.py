"""The measures lookup: the DID modalities and their other spellings, and the rules of a
measures file (docs/inputs.md), each saying which tests a measure counts.

When a lookups folder has no measures file, the one shipped with didcore is used
(:func:`_shipped_measures`: the publication's 9 modalities and 5 early-diagnosis-of-cancer
tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from didcore.codes import normalise_code
from didcore.errors import MeasureDefinitionError
from didcore.lookup_files import _read_table, _require

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DID_MODALITIES", "MODALITY_SPELLINGS", "MeasureRule"]

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


@dataclass(frozen=True)
class MeasureRule:
    """One row of the measures file: ``measure`` counts tests of ``modality`` (upper-cased)
    whose exam code is ``exam_code`` (upper-cased), or any exam code when it is ``None``.
    """

    measure: str
    kind: str
    modality: str
    exam_code: str | None


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
