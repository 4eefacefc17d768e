"""Lossless cube files: :meth:`didcore.Cube.write` / :meth:`didcore.Cube.read` and
:meth:`didcore.YearCubes.write` / :meth:`didcore.YearCubes.read`.

A cube file is an Arrow IPC file (the "Feather v2" layout, zstd-compressed where pyarrow has
the codec) holding everything a :class:`~didcore.Cube` has, so that cubes counted by
independent jobs (Spark partitions, years, regions, machines) can be written, moved, read back
and added (``a + b``) with the same result as one count of the whole extract:

* one row per cube: a lone Cube is one row (``part`` ``"cube"``); a YearCubes one row per
  financial year (``part`` ``"2023/24"``) and one for the undated rows (``"undated"``);
* per row, as list columns: the non-zero cells of the counts (``cells``, the flat C-order
  index into ``(n_icb, 2, 19, 5, n_measure)``, and ``counts``), the per-ICB quality counters
  (``icb_counts``, ``(n_icb + 1) x n_counters`` row-major, the last row for records with no
  ICB), the providers (``provider_codes``), their counters (``provider_counts``) and their
  records by derived ICB (``provider_icb_counts``, ``n_provider x (n_icb + 1)``), the rows read
  per financial year (``year_rows_labels``/``year_rows_rows``, null when unknown) and
  ``has_records``;
* in the schema metadata under ``didcore.cube`` (JSON): ``format`` (``"didcore-cube"``),
  ``format_version`` (:data:`FORMAT_VERSION`), the didcore version that wrote it, the axes
  (ICB codes, sexes, age bands, IMD quintiles, measures with their kinds), the quality
  counters' names (columns of ``icb_counts``/``provider_counts``, matched by name on reading),
  the value profile of the raw sex/modality/exam code values (for the guards), whether the
  years were declared, and each row's exclusions and ICB sources (for people and other tools
  reading the file; checked against the counters on reading).

Reading refuses, with :class:`~didcore.errors.CubeFileError`, a file that is not a cube file
(not Arrow IPC, or Arrow without the metadata), one written by a newer format version, and one
whose parts disagree (a damaged file). Exclusions, ICB sources and the quality tables are sums
of the stored counters, so they add exactly; the value profile adds as
:class:`~didcore.profile.ValueProfile` does (exact up to its :data:`~didcore.profile.KEEP`
values a column).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.axes import AGE_BANDS, IMD_QUINTILES, SEXES, STRATA_SHAPE
from didcore.errors import CubeFileError, OutputError

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.cube import Cube
    from didcore.profile import ValueProfile
    from didcore.years import YearCubes

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "cube_from_bytes",
    "cube_to_bytes",
    "read_cube",
    "read_cubes",
    "read_year_cubes",
    "write_cubes",
]

#: The ``format`` value of every cube file's metadata.
FORMAT = "didcore-cube"
#: The version of the layout this didcore writes, and the newest it reads. Raise it whenever
#: a column or metadata key changes meaning; older versions stay readable.
FORMAT_VERSION = 1
#: The schema metadata key holding the JSON header.
METADATA_KEY = b"didcore.cube"
#: ``part`` of a lone cube's row; a YearCubes has year labels and :data:`UNDATED_PART`.
CUBE_PART = "cube"
UNDATED_PART = "undated"


def _schema(meta: Mapping[str, Any]) -> pa.Schema:
    import pyarrow as pa

    ints = pa.large_list(pa.int64())
    return pa.schema(
        [
            ("part", pa.string()),
            ("has_records", pa.bool_()),
            ("year_rows_labels", pa.list_(pa.string())),
            ("year_rows_rows", pa.list_(pa.int64())),
            ("cells", ints),
            ("counts", ints),
            ("icb_counts", ints),
            ("provider_codes", pa.large_list(pa.string())),
            ("provider_counts", ints),
            ("provider_icb_counts", ints),
        ],
        metadata={METADATA_KEY: json.dumps(meta, separators=(",", ":")).encode()},
    )


def _profile_to_json(profile: ValueProfile | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    return {
        "rows": profile.rows,
        "batches": profile.batches,
        "counts": {role: list(map(list, c.items())) for role, c in profile.counts.items()},
        "dropped": dict(profile.dropped),
        "value_maps": {k: dict(v) for k, v in (profile.value_maps or {}).items()},
    }


def _profile_from_json(data: Mapping[str, Any] | None) -> ValueProfile | None:
    from didcore.profile import ValueProfile

    if data is None:
        return None
    profile = ValueProfile()
    profile.rows = int(data["rows"])
    profile.batches = int(data["batches"])
    profile.counts = {role: {v: int(c) for v, c in pairs} for role, pairs in data["counts"].items()}
    profile.dropped = {role: int(c) for role, c in data["dropped"].items()}
    profile.value_maps = {k: dict(v) for k, v in data["value_maps"].items()}
    return profile


def write_cubes(
    target: str | os.PathLike[str] | None,
    parts: Mapping[str, Cube],
    *,
    declared: bool = False,
    profile: ValueProfile | None = None,
) -> bytes | None:
    """Write ``parts`` (part name -> cube, every cube with the same axes) as one cube file
    at ``target``, or return the file's bytes when ``target`` is None.

    The file is written beside ``target`` and renamed into place, so a reader never sees half
    a file; an ``OSError`` is an :class:`~didcore.errors.OutputError` naming the path.
    """
    import pyarrow as pa

    from didcore import __version__
    from didcore.cube import QUALITY_COUNTERS

    cubes = list(parts.values())
    first = cubes[0]
    for cube in cubes[1:]:
        if cube.icb_codes != first.icb_codes or cube.measures != first.measures:
            raise CubeFileError("the cubes of one file must have the same ICBs and measures")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "didcore_version": __version__,
        "icb_codes": list(first.icb_codes),
        "sexes": list(SEXES),
        "age_bands": list(AGE_BANDS),
        "imd_quintiles": list(IMD_QUINTILES),
        "measures": list(first.measures),
        "measure_kinds": list(first.measure_kinds),
        "quality_counters": list(QUALITY_COUNTERS),
        "declared": declared,
        "value_profile": _profile_to_json(profile),
        "exclusions": {name: c.exclusions for name, c in parts.items()},
        "icb_source": {name: c.icb_source for name, c in parts.items()},
    }
    columns: dict[str, list[Any]] = {name: [] for name in _schema({}).names}
    for name, cube in parts.items():
        assert cube.icb_counts is not None and cube.provider_icb_counts is not None
        flat = cube.counts.reshape(-1)
        cells = np.flatnonzero(flat)
        columns["part"].append(name)
        columns["has_records"].append(bool(cube.has_records))
        rows = cube.year_rows
        columns["year_rows_labels"].append(None if rows is None else list(rows))
        columns["year_rows_rows"].append(None if rows is None else [int(n) for n in rows.values()])
        columns["cells"].append(cells.astype(np.int64))
        columns["counts"].append(flat[cells])
        columns["icb_counts"].append(cube.icb_counts.reshape(-1))
        columns["provider_codes"].append(list(cube.provider_codes))
        columns["provider_counts"].append(np.asarray(cube.provider_counts).reshape(-1))
        columns["provider_icb_counts"].append(cube.provider_icb_counts.reshape(-1))
    schema = _schema(meta)
    table = pa.table(
        {n: pa.array(v, schema.field(n).type) for n, v in columns.items()}, schema=schema
    )
    codec = "zstd" if pa.Codec.is_available("zstd") else None
    options = pa.ipc.IpcWriteOptions(compression=codec)
    if target is None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, schema, options=options) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue())
    path = Path(target)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as w:
            w.write_table(table)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write the cube file {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    return None


def cube_to_bytes(cube: Cube) -> bytes:
    """``cube`` as the bytes of a cube file (what :meth:`Cube.write` writes)."""
    data = write_cubes(None, {CUBE_PART: cube}, profile=cube.value_profile)
    assert data is not None
    return data


def _open(source: Any) -> tuple[pa.Table, str]:
    """The table of a cube file (a path, or its bytes) and a name for messages."""
    import pyarrow as pa

    from didcore.errors import UnreadableInputError

    if isinstance(source, bytes | bytearray | memoryview):
        what = "the cube file's bytes"
        stream: Any = pa.BufferReader(pa.py_buffer(source))
    else:
        what = repr(str(source))
        path = Path(source)
        if not path.is_file():
            raise UnreadableInputError(
                f"cube file {what} "
                + ("is a folder" if path.is_dir() else "does not exist")
                + ": give the path of a file written by Cube.write"
            )
        try:
            stream = pa.memory_map(str(path))
        except OSError as exc:
            raise UnreadableInputError(f"cannot read cube file {what}: {exc}") from exc
    try:
        table = pa.ipc.open_file(stream).read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise CubeFileError(
            f"{what} is not a didcore cube file (not an Arrow IPC file: "
            f"{str(exc).splitlines()[0][:120]}); write cube files with Cube.write"
        ) from exc
    return table, what


def _header(table: pa.Table, what: str) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise CubeFileError(
            f"{what} is an Arrow file but not a didcore cube file (no {METADATA_KEY.decode()!r} "
            "metadata); write cube files with Cube.write"
        )
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise CubeFileError(f"{what}: its didcore.cube metadata is not JSON (damaged)") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CubeFileError(f"{what} is not a didcore cube file (format is not {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CubeFileError(f"{what}: cube file format version {version!r} is not valid")
    if version > FORMAT_VERSION:
        from didcore import __version__

        raise CubeFileError(
            f"{what} was written by didcore {meta.get('didcore_version', '(unknown)')} in cube "
            f"file format version {version}; this didcore ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}: upgrade didcore (pip install --upgrade didcore) to read it"
        )
    axes = {
        "sexes": list(SEXES),
        "age_bands": list(AGE_BANDS),
        "imd_quintiles": list(IMD_QUINTILES),
    }
    for key, expected in axes.items():
        if meta.get(key) != expected:
            raise CubeFileError(
                f"{what}: its {key.replace('_', ' ')} {meta.get(key)!r} are not this didcore's "
                f"{expected!r}; it cannot be read as a cube"
            )
    return meta


def read_cubes(source: Any) -> tuple[dict[str, Cube], dict[str, Any]]:
    """The cubes of a cube file (part name -> Cube, in file order) and its header.

    ``source`` is a path or the file's bytes. Raises :class:`~didcore.errors.CubeFileError`
    for a file that is not a cube file, from a newer format version, or damaged.
    """
    from didcore.cube import QUALITY_COUNTERS, Cube

    table, what = _open(source)
    meta = _header(table, what)
    try:
        icbs = tuple(str(c) for c in meta["icb_codes"])
        measures = tuple(str(m) for m in meta["measures"])
        kinds = tuple(str(k) for k in meta["measure_kinds"])
        counters = [str(c) for c in meta["quality_counters"]]
        profile = _profile_from_json(meta.get("value_profile"))
        recorded = meta["exclusions"]
        rows = table.to_pylist()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CubeFileError(f"{what}: its header or columns are damaged ({exc!r})") from exc
    missing = [c for c in QUALITY_COUNTERS if c not in counters]
    if missing:
        raise CubeFileError(f"{what}: no quality counter {', '.join(missing)} (damaged file)")
    take = [counters.index(c) for c in QUALITY_COUNTERS]
    n_icb, n_m, k = len(icbs), len(measures), len(counters)
    shape = (n_icb, *STRATA_SHAPE, n_m)
    cubes: dict[str, Cube] = {}
    for row in rows:
        name = row["part"]
        try:
            flat = np.zeros(int(np.prod(shape)), np.int64)
            cells = np.asarray(row["cells"], np.int64)
            flat[cells] = np.asarray(row["counts"], np.int64)
            providers = tuple(row["provider_codes"])
            n_prov = len(providers)
            labels, numbers = row["year_rows_labels"], row["year_rows_rows"]
            cube = Cube(
                counts=flat.reshape(shape),
                icb_codes=icbs,
                measures=measures,
                measure_kinds=kinds,
                provider_codes=providers,
                provider_counts=np.asarray(row["provider_counts"], np.int64).reshape(n_prov, k)[
                    :, take
                ],
                icb_counts=np.asarray(row["icb_counts"], np.int64).reshape(n_icb + 1, k)[:, take],
                provider_icb_counts=np.asarray(row["provider_icb_counts"], np.int64).reshape(
                    n_prov, n_icb + 1
                ),
                has_records=bool(row["has_records"]),
                value_profile=profile,
                year_rows=None if labels is None else dict(zip(labels, numbers, strict=True)),
            )
        except (ValueError, IndexError, TypeError) as exc:
            raise CubeFileError(f"{what}: cube {name!r} is damaged ({exc})") from exc
        if recorded.get(name) != cube.exclusions or (cube.counts < 0).any():
            raise CubeFileError(
                f"{what}: cube {name!r} does not add up (its counters disagree with the "
                "exclusions recorded when it was written): the file is damaged"
            )
        cubes[name] = cube
    if not cubes:
        raise CubeFileError(f"{what} holds no cube (damaged file)")
    return cubes, meta


def read_cube(source: Any) -> Cube:
    """The :class:`~didcore.Cube` of a file written by :meth:`Cube.write` (a path or bytes)."""
    cubes, _ = read_cubes(source)
    if list(cubes) != [CUBE_PART]:
        raise CubeFileError(
            f"{_name(source)} holds the cubes of {len(cubes) - 1} financial year(s) and the "
            "undated rows (written by YearCubes.write): read it with didcore.YearCubes.read"
        )
    return cubes[CUBE_PART]


def cube_from_bytes(data: bytes) -> Cube:
    """The cube of :func:`cube_to_bytes`'s bytes."""
    return read_cube(data)


def write_year_cubes(target: str | os.PathLike[str] | None, years: YearCubes) -> bytes | None:
    """``years`` as one cube file: a row per financial year and one for the undated rows."""
    parts = {**dict(years.items()), UNDATED_PART: years.undated}
    profile = getattr(years, "value_profile", None) or years.undated.value_profile
    return write_cubes(target, parts, declared=years.declared, profile=profile)


def read_year_cubes(source: Any) -> YearCubes:
    """The :class:`~didcore.YearCubes` of a file written by :meth:`YearCubes.write`."""
    from didcore.years import YearCubes

    cubes, meta = read_cubes(source)
    if UNDATED_PART not in cubes:
        raise CubeFileError(
            f"{_name(source)} holds one cube, not a cube per financial year (those are "
            "written by YearCubes.write, e.g. of didcore.spark.aggregate(..., by_year=True)); "
            "read it with didcore.Cube.read"
        )
    undated = cubes.pop(UNDATED_PART)
    years = YearCubes(cubes, undated, declared=bool(meta.get("declared", False)))
    years.value_profile = undated.value_profile
    return years


def _name(source: Any) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return "the cube file's bytes"
    return repr(str(source))
