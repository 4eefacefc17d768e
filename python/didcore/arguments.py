"""Checks of the arguments of :func:`didcore.aggregate`, :func:`didcore.run_report` and the
command line, so that a bad one is an :class:`~didcore.errors.InputError` naming the argument
and what it accepts, before anything is read; never an ``OverflowError`` or ``TypeError`` from
deep inside, nor an ``OSError`` from a path the system cannot even look up.
"""

from __future__ import annotations

import argparse
import numbers
import os
from pathlib import Path

from didcore.errors import InputError, UnreadableInputError

__all__ = ["MAX_THREADS", "check_max_age", "check_max_providers", "check_path", "check_threads"]

#: The most counting threads accepted: beyond it a thread pool costs memory for nothing.
MAX_THREADS = 1024
#: ``max_age`` is a 64-bit signed whole number of years in the core.
MAX_AGE_LIMIT = 2**63 - 1
#: The longest path, and file name, accepted (Linux's PATH_MAX and NAME_MAX).
_PATH_MAX = 4096
_NAME_MAX = 255


def _whole(value: object, name: str, accepted: str) -> int:
    """``value`` as a Python int, refusing bools, floats, text and anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be {accepted}, not {value!r} ({type(value).__name__})")
    return int(value)


def check_max_age(value: object, name: str = "max_age") -> int | None:
    """``max_age``: ``None`` (no upper limit) or a whole number of years from 0 to 2**63-1."""
    if value is None:
        return None
    accepted = f"None (no limit) or a whole number of years from 0 to {MAX_AGE_LIMIT}"
    age = _whole(value, name, accepted)
    if not 0 <= age <= MAX_AGE_LIMIT:
        raise InputError(f"{name} must be {accepted}, not {age}")
    return age


def check_max_providers(value: object, name: str = "max_providers") -> int:
    """``max_providers``: a whole number from 1 to 2**31-1 (provider ids are 32-bit)."""
    accepted = f"a whole number of provider codes from 1 to {2**31 - 1}"
    n = _whole(value, name, accepted)
    if not 1 <= n <= 2**31 - 1:
        raise InputError(f"{name} must be {accepted}, not {n}")
    return n


def check_threads(value: object, name: str = "n_threads") -> int | None:
    """``n_threads``: ``None`` (every core) or a whole number from 1 to :data:`MAX_THREADS`."""
    if value is None:
        return None
    accepted = f"None (every core) or a whole number from 1 to {MAX_THREADS}"
    n = _whole(value, name, accepted)
    if not 1 <= n <= MAX_THREADS:
        raise InputError(f"{name} must be {accepted}, not {n}")
    return n


def check_path(value: object, what: str) -> Path:
    """``value`` (text or a path-like) as a Path the system can look up: no NUL character,
    at most 4,096 bytes long, each part at most 255 bytes. ``what`` names it in errors
    ("extract", "lookups folder", ...).
    """
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise InputError(
            f"{what} must be a path (text or pathlib.Path), not {type(value).__name__}"
        )
    text = os.fspath(value)
    if not isinstance(text, str):
        raise InputError(f"{what} must be a path given as text, not {type(text).__name__}")
    shown = text if len(text) <= 80 else f"{text[:60]}...{text[-15:]}"
    if "\0" in text:
        raise UnreadableInputError(f"{what} {shown!r} holds a NUL character: no file has it")
    if not text:
        raise UnreadableInputError(f"{what} is an empty path")
    try:
        encoded = os.fsencode(text)
    except UnicodeError as exc:
        raise UnreadableInputError(f"{what} {shown!r} cannot be encoded as a file name") from exc
    longest = max((len(part) for part in encoded.split(b"/")), default=0)
    if len(encoded) > _PATH_MAX or longest > _NAME_MAX:
        raise UnreadableInputError(
            f"{what} {shown!r} is too long ({len(encoded):,} bytes, a part of {longest:,}): "
            f"paths are at most {_PATH_MAX:,} bytes, each folder or file name at most "
            f"{_NAME_MAX}"
        )
    return Path(text)


def _option(text: str, low: int, high: int) -> int:
    """A command-line option's whole number from ``low`` to ``high``, else a one-line usage
    error (argparse exits with status 2).
    """
    accepted = f"expected a whole number from {low} to {high}"
    try:
        value = int(text.strip())
    except ValueError:  # not digits, or more digits than Python converts
        shown = text if len(text) <= 40 else f"{text[:30]}..."
        raise argparse.ArgumentTypeError(f"{accepted}, not {shown!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{accepted}, not {value}")
    return value


def threads_option(text: str) -> int:
    """The type of ``--threads``: a whole number from 1 to :data:`MAX_THREADS`."""
    return _option(text, 1, MAX_THREADS)


def max_age_option(text: str) -> int:
    """The type of ``--max-age``: a whole number of years from 0 to 2**63-1."""
    return _option(text, 0, MAX_AGE_LIMIT)
