"""The exceptions didcore raises.

Every error caused by the caller's input derives from :class:`InputError` (itself a
``ValueError``), so a pipeline can catch bad input in one place; the command line maps it to
exit status 2 with a one-line message. Messages name the column, file or value and how many rows
are affected, and say what to do.
"""

from __future__ import annotations

__all__ = [
    "ColumnTypeError",
    "DidcoreError",
    "InputError",
    "InternalError",
    "LookupConflictError",
    "MeasureDefinitionError",
    "MissingColumnError",
    "PopulationError",
    "UnreadableInputError",
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


class ColumnTypeError(InputError, TypeError):
    """A column has a type didcore cannot interpret (e.g. ``age`` as free text)."""


class UnreadableInputError(InputError, OSError):
    """A file is missing, unreadable, corrupt or in an unknown format."""


class LookupConflictError(InputError):
    """A lookup table is inconsistent, e.g. the same key maps to two different values."""


class MeasureDefinitionError(InputError):
    """The measures file is malformed or names no modality the lookups know."""


class PopulationError(InputError):
    """The population table is malformed (negative, non-numeric, duplicate or unknown cells)."""


class ZeroPopulationError(PopulationError):
    """Tests were observed in a stratum whose national population is zero."""
