"""The run's provenance record: input files with hashes and rows, software versions, time.

:func:`build_provenance` makes the dictionary that :func:`didcore.report.pipeline.write_report`
completes (output options, the year-on-year basis) and writes as ``provenance.json``. Its one
field that differs between two runs of the same inputs is ``generated_at`` (:func:`now`, fixed by
``SOURCE_DATE_EPOCH``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = ["build_provenance", "didcore_version", "now"]


def _sha256(path: Path) -> tuple[str, int, int]:
    """(hex digest, bytes, newline count) of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    size = lines = 0
    with path.open("rb") as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), size, lines


def _file_record(path: Path) -> dict[str, Any]:
    digest, size, lines = _sha256(path)
    rec: dict[str, Any] = {"path": str(path), "bytes": size, "sha256": digest}
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        # an unreadable file is reported, with a proper message, by the aggregate step
        with contextlib.suppress(OSError, pa.ArrowException):
            rec["rows"] = pq.ParquetFile(path).metadata.num_rows
    elif path.suffix.lower() in (".csv", ".txt"):
        # data lines of an uncompressed CSV (header excluded); quoted newlines are rare in DID
        rec["rows"] = max(lines - 1, 0)
    return rec


def _files_of(source: Any) -> list[dict[str, Any]]:
    """Provenance records for a source: each file of a path or folder; a note for objects."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            from didcore.io import extract_files

            # the files that were read, found as reading finds them (no _SUCCESS, no .crc)
            return [_file_record(p) for p in extract_files(path)]
        if path.is_file():
            return [_file_record(path)]
        return [{"path": str(path), "missing": True}]
    rows = getattr(source, "num_rows", None)
    return [{"kind": type(source).__name__, "rows": rows}]


def now(clock: Callable[[], dt.datetime] | None) -> str:
    """The time of the run (UTC, seconds), or ``SOURCE_DATE_EPOCH`` when set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        moment = dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
    else:
        moment = clock() if clock else dt.datetime.now(tz=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("numpy", "pyarrow", "scipy", "matplotlib", "openpyxl", "jinja2"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def didcore_version() -> str:
    """The installed didcore's version, ``"unknown"`` when it cannot be imported."""
    try:
        from didcore import __version__

        return str(__version__)
    except ImportError:
        return "unknown"


def build_provenance(
    *,
    sources: Sequence[Any] | None,
    lookups: Any,
    population: Any,
    provider_missing: Any,
    previous: Any,
    cube: Any,
    options: Mapping[str, Any],
    period: str | None,
    title: str,
    clock: Callable[[], dt.datetime] | None = None,
) -> dict[str, Any]:
    """The run's record: inputs with hashes and rows, software versions, options, time."""
    inputs: dict[str, Any] = {}
    if sources is not None:
        inputs["extracts"] = [rec for s in sources for rec in _files_of(s)]
    lk_path = (
        lookups if isinstance(lookups, str | os.PathLike) else getattr(lookups, "source", None)
    )
    if lk_path and Path(lk_path).is_dir():
        inputs["lookups"] = {"path": str(lk_path), "files": _files_of(lk_path)}
    elif lookups is not None:
        inputs["lookups"] = {"path": str(lk_path or type(lookups).__name__), "files": []}
    if lookups is not None and hasattr(lookups, "description"):
        # which lookups, and their vintage: every output names them
        inputs["lookups"]["description"] = lookups.description
        inputs["lookups"]["vintage"] = lookups.vintage
    if population is not None:
        inputs["population"] = _files_of(population)[0]
    if provider_missing is not None:
        inputs["provider_missing"] = _files_of(provider_missing)[0]
    if previous is not None:
        inputs["previous"] = {"path": str(previous)}
    return {
        "title": title,
        "period": period,
        "didcore_version": didcore_version(),
        "python": platform.python_version(),
        "packages": _versions(),
        "inputs": inputs,
        "rows": {k: int(v) for k, v in dict(cube.exclusions).items()},
        "options": dict(options),
        "generated_at": now(clock),
    }
