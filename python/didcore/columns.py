"""The extract's columns: the names of its roles (:class:`Columns`), an opened source
(:class:`Extract`), and the Arrow types the counting reads in each role (:func:`check_types`).

Shared by every way of reading an extract (:mod:`didcore.io` for files and folders,
:mod:`didcore.sources` for in-memory and streaming sources); re-exported by :mod:`didcore.io`,
where users find :class:`Columns`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from didcore._arrow_compat import is_binary_view, is_string_view
from didcore.errors import ColumnTypeError, InputError, MissingColumnError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Columns", "Extract", "check_types", "is_binary_type", "is_text_type"]


# Other names extracts commonly give a column, only to suggest a --column option.
_USUAL_NAMES: dict[str, tuple[str, ...]] = {
    "provider_code": ("provider", "provider_org_code", "org_code", "organisation_code"),
    "gp_practice_code": ("gp_practice", "practice_code", "registered_gp_practice_code", "gp_code"),
    "lsoa11": ("lsoa", "lsoa_code", "lsoa2011", "lsoa_2011", "lsoa11cd"),
    "sex": ("gender", "person_gender_code", "gender_code", "person_stated_gender_code"),
    "age": ("age_at_test", "patient_age", "age_years"),
    "test_date": ("date_of_test", "test_date_time", "diagnostic_test_date"),
    "date_of_birth": ("dob", "birth_date"),
    "modality": ("modality_name", "imaging_modality"),
    "exam_code": ("examination_code", "exam", "nicip_code"),
}


def _key(name: str) -> str:
    """A column name compared ignoring case, spaces, underscores and other punctuation."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _likely_column(name: str, role: str, available: Sequence[str]) -> str | None:
    """The column of ``available`` that is most likely ``role`` (configured as ``name``):
    one differing from the name or the role only in case, spaces or underscores, else one
    of the role's usual other names; ``None`` when there is none.
    """
    by_key = {_key(a): a for a in available}
    names = (name, role, *_USUAL_NAMES.get(role, ()))
    return next((by_key[_key(n)] for n in names if _key(n) in by_key), None)


@dataclass(frozen=True)
class Columns:
    """Names of the extract's columns (docs/inputs.md); change any to match your extract."""

    provider_code: str = "provider_code"
    gp_practice_code: str = "gp_practice_code"
    lsoa11: str = "lsoa11"
    sex: str = "sex"
    age: str = "age"
    date_of_birth: str = "date_of_birth"
    test_date: str = "test_date"
    modality: str = "modality"
    exam_code: str = "exam_code"

    def __post_init__(self) -> None:
        """Each role names a column of its own: two roles reading one column (say provider
        code and LSOA) would count one value as two things, so any such pairing is refused,
        as is a name that is not text.
        """
        roles: dict[str, list[str]] = {}
        for role, name in vars(self).items():
            if not isinstance(name, str) or not name:
                raise InputError(
                    f"Columns({role}=...) must be a column name (non-empty text), not {name!r}"
                )
            roles.setdefault(name, []).append(role)
        shared = {name: rs for name, rs in roles.items() if len(rs) > 1}
        if shared:
            name, rs = next(iter(shared.items()))
            raise InputError(
                f"Columns: {' and '.join(rs)} both name column {name!r}; each role needs a "
                "column of its own (on the command line: --column ROLE=COLUMN)"
            )

    @property
    def codes(self) -> tuple[str, ...]:
        """The string code columns, always required."""
        return (self.provider_code, self.gp_practice_code, self.lsoa11, self.modality)

    def _renaming(self, missing: Sequence[str], available: Sequence[str]) -> str:
        """``--column`` options for the missing columns: ``--column sex=Gender`` where a
        column differs from the role's name only in case, spaces or underscores, else a
        ``--column ROLE=COLUMN`` placeholder for each role.
        """
        roles = {getattr(self, f): f for f in self.__dataclass_fields__}
        options = []
        for name in missing:
            role = roles.get(name, "age")
            found = _likely_column(name, role, available)
            options.append(f"--column {role}={found if found else 'COLUMN'}")
        return " ".join(options)

    def needed(self, available: Sequence[str]) -> tuple[list[str], bool]:
        """Columns to read from a source with ``available`` columns, and whether age comes from
        the ``age`` column (else from date of birth and test date).

        Raises :class:`MissingColumnError` naming what is missing, and :class:`InputError`
        if a column it would read is named twice.
        """
        have = set(available)
        required = [*self.codes, self.sex, self.exam_code]
        missing = [c for c in required if c not in have]
        use_age = self.age in have
        if not use_age and not {self.date_of_birth, self.test_date} <= have:
            missing.append(f"{self.age} (or {self.date_of_birth} and {self.test_date})")
        # Test dates under another name (TEST_DATE) would be read as no test dates at all:
        # every year counted as one, or a year declared for them all. Refused until named.
        dated_as = None
        if self.test_date not in have:
            dated_as = _likely_column(self.test_date, "test_date", available)
        if missing or dated_as:
            dates = (
                f"; its test dates look to be in {dated_as!r}, which must be named too (else "
                "every financial year is counted as one)"
                if dated_as
                else ""
            )
            what = (
                f"no column {', '.join(repr(m) for m in missing)}"
                if missing
                else f"no column {self.test_date!r}"
            )
            rename = [*missing, self.test_date] if dated_as else missing
            raise MissingColumnError(
                f"the extract has {what} (it has: {', '.join(available) or 'no columns'})"
                f"{dates}; name yours with {self._renaming(rename, available)} (Python: "
                "columns=Columns(...); docs/inputs.md)"
            )
        ages = [self.age] if use_age else [self.date_of_birth, self.test_date]
        if use_age and self.test_date in have:
            ages.append(self.test_date)  # each record's financial year (didcore.years)
        names = [*required, *ages]
        seen = Counter(available)
        twice = [n for n in names if seen[n] > 1]
        if twice:
            raise InputError(
                f"the extract has more than one column named {', '.join(map(repr, twice))}; "
                "rename or drop the copies so that each is named once"
            )
        return names, use_age


@dataclass
class Extract:
    """An opened source: its batches (a one-shot iterator) and what is known up front."""

    batches: Iterator[pa.RecordBatch]
    use_age: bool
    total_rows: int | None
    files: tuple[Path, ...]
    #: whether every part of the source has the test date column (financial years)
    dated: bool = True
    #: set before the batches are read, to have Parquet row groups the core can count as
    #: it decodes them given as ``didcore.parquet_native.RowGroupToCount`` items instead of
    #: batches (key ``"roles"``: a ``CountingRoles``); files only
    counting: dict[str, Any] = field(default_factory=dict)


def is_text_type(t: pa.DataType) -> bool:
    """Whether ``t`` is text (string, large string, string view) or binary, read as UTF-8."""
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or is_string_view(t)
        or is_binary_type(t)
    )


def _accepts(kind: str, t: pa.DataType) -> bool:
    """Whether the counting (``didcore.classify.BatchClassifier``) reads a column of type ``t``
    in the role ``kind``: ``code`` (text codes), ``number`` (sex and age) or ``date``.
    """
    import pyarrow as pa

    types = pa.types
    if types.is_null(t) or is_text_type(t):
        return True
    if types.is_dictionary(t):
        value = t.value_type
        return not types.is_dictionary(value) and _accepts(kind, value)
    if kind == "code":
        return bool(types.is_integer(t))
    if kind == "number":
        return bool(types.is_integer(t) or types.is_floating(t) or types.is_decimal(t))
    return bool(types.is_date(t) or types.is_timestamp(t))


_EXPECTED = {
    "code": "text codes (string, or dictionary-encoded/categorical text) or whole numbers",
    "number": "whole numbers (integers, floats or decimals) or text",
    "date": "a date, a timestamp or ISO 8601 text (YYYY-MM-DD)",
}


def check_types(schema: pa.Schema, names: Sequence[str], cols: Columns, where: str = "") -> None:
    """Refuse, before any batch is read, a column whose type the counting cannot read: a
    nested one (list, struct, map, union), a time, a duration, ... in a role that takes codes,
    numbers or dates. Raises :class:`ColumnTypeError` naming the column and its type;
    ``where`` prefixes the message (the file).
    """
    kinds = {cols.sex: "number", cols.age: "number"}
    kinds.update({cols.date_of_birth: "date", cols.test_date: "date"})
    kinds.update({c: "code" for c in (*cols.codes, cols.exam_code)})
    for name in names:
        index = schema.get_field_index(name)
        if index < 0:
            continue
        t = schema.field(index).type
        kind = kinds.get(name, "code")
        if not _accepts(kind, t):
            raise ColumnTypeError(
                f"{where}column {name!r} has type {t}; expected {_EXPECTED[kind]}"
            )


def is_binary_type(t: pa.DataType) -> bool:
    """Whether ``t`` is one of Arrow's binary types: text written without its UTF-8
    annotation (some Parquet writers leave it out), which didcore reads as UTF-8.
    """
    import pyarrow as pa

    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )
