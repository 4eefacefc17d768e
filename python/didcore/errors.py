"""The exceptions (and the one warning) didcore raises.

Every error caused by the caller's input derives from :class:`InputError` (itself a
``ValueError``), so a pipeline can catch bad input in one place; the command line maps it to
exit status 2 with a one-line message. Messages name the column, file or value and how many rows
are affected, and say what to do. Dirty values that didcore counts rather than refuses (an age
that is not a number) raise :class:`UnreadableValuesWarning` instead, once per column a run.
"""

from __future__ import annotations

__all__ = [
    "ColumnTypeError",
    "CorruptInputError",
    "CubeFileError",
    "DidcoreError",
    "GuardError",
    "InputError",
    "InternalError",
    "LookupConflictError",
    "MeasureDefinitionError",
    "MissingColumnError",
    "MissingExtraError",
    "OutputError",
    "PopulationError",
    "TooManyProvidersWarning",
    "UnreadableInputError",
    "UnreadableValuesWarning",
    "ZeroPopulationError",
]


class DidcoreError(Exception):
    """Root of every exception raised by didcore."""


class InternalError(DidcoreError, RuntimeError):
    """A bug in didcore (never the caller's fault): please report it with the message."""


class InputError(DidcoreError, ValueError):
    """The input (extract, lookups, population or options) cannot be used as given."""


class MissingColumnError(InputError, KeyError):
    """A required column is not in the extract, lookup or population table."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(InputError, ImportError):
    """An optional part of didcore is used without the libraries it needs: the report (charts,
    workbook, HTML) needs ``didcore[report]``, the statistics (:func:`didcore.standardise`,
    :func:`didcore.rates_ratios`) need scipy, ``didcore[stats]``. The message names the missing
    modules and the ``pip install`` line. An ``ImportError`` too, so code that guards an optional
    import with ``except ImportError`` catches it.
    """


class ColumnTypeError(InputError, TypeError):
    """A column has a type didcore cannot interpret (e.g. ``age`` as free text)."""


class UnreadableInputError(InputError, OSError):
    """A file is missing, unreadable, corrupt or in an unknown format."""


class CubeFileError(UnreadableInputError):
    """A file given as a cube file (:meth:`didcore.Cube.read`) is not one: not an Arrow IPC
    file, an Arrow file without didcore's cube metadata, a file written by a newer didcore in
    a newer cube file format version (upgrade didcore to read it), or a damaged one whose parts
    disagree. Write cube files with :meth:`didcore.Cube.write`.
    """


class CorruptInputError(InputError):
    """An extract's data contradicts itself: a dictionary-encoded column whose row points to
    a dictionary value that does not exist (a corrupt Parquet file pyarrow reads without
    complaint, or an Arrow array built without checks). Write the file out again from its
    source. No row of the batch at fault is counted.
    """


class ParquetUnsupportedError(InternalError):
    """Raised by the core for a Parquet column chunk it does not decode itself (an encoding,
    type or layout listed in docs/architecture.md, "Reading Parquet"): the reader then reads
    that row group through pyarrow. It never reaches a caller; if it does, it is a bug.
    """


class LookupConflictError(InputError):
    """A lookup table is inconsistent, e.g. the same key maps to two different values."""


class OutputError(InputError, OSError):
    """An output folder cannot be used or written: ``--out`` names an existing file, its parent
    cannot be created, the disk is full or read-only, a file-size limit was reached. The old
    outputs, if any, are left as they were (see :mod:`didcore.outputs`).
    """


class MeasureDefinitionError(InputError):
    """The measures file is malformed or names no modality the lookups know."""


class PopulationError(InputError):
    """The population table is malformed (negative, non-numeric, duplicate or unknown cells)."""


class ZeroPopulationError(PopulationError):
    """Tests were observed in a stratum whose national population is zero."""


class GuardError(InputError):
    """A guard rail tripped: the input looks coded or assembled differently from what didcore
    reads (sex as M/F, modality as short codes, a population missing an ICB or of another
    year), so a publication would be confidently wrong. :attr:`guard` is the guard's name, the
    one to pass to ``allow=`` (``--allow NAME``) once the input is known to be right; the
    message names the column, the top values with counts and what to do. See
    :mod:`didcore.guards`.
    """

    def __init__(self, message: str, guard: str = "") -> None:
        super().__init__(message)
        self.guard = guard


class UnreadableValuesWarning(UserWarning):
    """Some values could not be read (an age that is not a number, a date that is not ISO
    8601) and were counted as missing, as dirty values must not stop a run; the message says
    which column, how many rows and an example. Turn it into an error with
    ``warnings.simplefilter("error", UnreadableValuesWarning)``.
    """


class TooManyProvidersWarning(UserWarning):
    """The provider column held more distinct codes than ``aggregate(max_providers=...)``
    (20,000 by default; England has a few hundred providers): the codes past that number were
    counted together as one provider, ``"(other providers)"``, so that memory stays bounded
    (a patient identifier in the provider column would otherwise need a row per patient).
    Every record is still counted; the message says how many codes were folded. Check the
    column mapping (:class:`~didcore.io.Columns`).
    """


def shown(value: object, limit: int = 40) -> str:
    """A value as a message quotes it: ``repr``, cut to ``limit`` characters with the length
    said, so that a 70,000-character field (a CSV row run together) does not become a
    70,000-character line.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    return repr(value)
