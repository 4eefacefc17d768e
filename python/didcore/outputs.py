"""Output folders written all at once: a failure never leaves a mix of old and new files.

Every command that writes a folder (``didcore cube``, ``report``, ``demo``, ``lookups``) writes
into a temporary folder created *beside* the target (same parent, so the same file system and
the final :func:`os.rename` is atomic), and only when every file is written moves it into place:

1. :func:`check_output_dir` refuses, before any costly work, a target that is an existing file,
   whose parent cannot be created, that cannot be written, or that is a folder of other files
   (not a didcore output: replacing it would delete them);
2. :func:`atomic_output_dir` yields the temporary folder; on success the old folder (if any) is
   renamed aside, the new one renamed into place and the old one removed; on any failure
   (an exception, Ctrl-C, a full disk, a file-size limit) the temporary folder is removed and
   the old folder is left exactly as it was.

An :class:`OSError` raised while writing (``ENOSPC``, ``EFBIG``, ``EROFS``, ``EACCES``, ``EIO``
from ``/dev/full``...) becomes one :class:`~didcore.errors.OutputError` naming the file as it
would have been in the target folder and what to do. Ctrl-C is deferred during the two renames
and the clean-up, so it cannot leave the target missing or a temporary folder behind.

Each finished folder holds a marker file, ``.didcore-output``: a later run may replace a folder
with that marker (or an empty folder, or one from an older didcore holding ``cube.csv`` or
``provenance.json``), never another folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from didcore.errors import DidcoreError, OutputError

__all__ = ["MARKER", "atomic_output_dir", "check_output_dir"]

#: The file that marks a folder as didcore's output (so a later run may replace it).
MARKER = ".didcore-output"
# Files an output folder of an older didcore (written before the marker) holds.
_LEGACY_OUTPUTS = ("cube.csv", "provenance.json")

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose another --out",
    errno.EDQUOT: "the disk quota is used up: free some space or choose another --out",
    errno.EFBIG: "a file-size limit was reached (ulimit -f): raise it or choose another --out",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "not permitted (an immutable or protected folder?): choose another --out",
    errno.EIO: "the device reported an input/output error: choose another --out",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another --out",
    errno.EEXIST: "it already exists: choose another --out",
}


def _why(exc: OSError) -> str:
    """What went wrong, in words, with what to do."""
    hint = _HINTS.get(exc.errno or -1)
    # the system's words for the error number: pyarrow's own strerror adds its internals
    reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
    return f"{reason} ({hint})" if hint else reason


def check_output_dir(target: str | os.PathLike[str], kind: str = "outputs") -> Path:
    """Check that ``target`` can become an output folder; return it as an absolute path.

    Cheap and without side effects (nothing is left behind), so a command calls it before
    counting. Raises :class:`~didcore.errors.OutputError` (one line) when ``target`` is an
    existing file, a folder of other files, under a file, or in a place that cannot be written.
    A symbolic link to a folder is followed: the folder it points to is the one replaced.
    ``kind`` (``"outputs"``, ``"lookups"``) is what will be written: a folder marked as another
    kind is refused, so that ``--out`` naming an edited lookups folder cannot replace it.
    """
    try:
        # normalised, so that "out/" and "a/../out" name the folder "out"
        path = Path(os.path.normpath(Path(os.fspath(target)).absolute()))
    except (TypeError, ValueError) as exc:
        raise OutputError(f"output folder {target!r} is not a usable path: {exc}") from exc
    try:
        return _check(path, kind)
    except OutputError:
        raise
    except OSError as exc:  # e.g. a name too long to look up
        raise OutputError(f"cannot use output folder {path}: {_why(exc)}") from exc
    except ValueError as exc:  # e.g. a NUL character in the path
        raise OutputError(f"output folder {target!r} is not a usable path: {exc}") from exc


def _check(path: Path, kind: str) -> Path:
    """:func:`check_output_dir` of an absolute, normalised path."""
    if path.is_symlink() and path.is_dir():
        path = path.resolve()
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputError(
                f"--out {path} is an existing file, not a folder: name a folder (it is created "
                "if absent)"
            )
        if path.is_mount():  # a mount point cannot be renamed, so it cannot be replaced
            raise OutputError(
                f"--out {path} is a mount point, which cannot be replaced as a whole: name a "
                "folder inside it"
            )
        _check_replaceable(path, kind)
    if path.parent == path:
        raise OutputError(f"--out {path} is the root of the file system: name a folder in it")
    ancestor = path.parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link: nothing can be created under it
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(
            f"cannot create output folder {path}: {ancestor} is a file, not a folder; "
            "choose another --out"
        )
    # Probe: make (and remove) a folder where the temporary one will go, and with the target's
    # own name when the parent exists, which catches read-only, immutable, full-inode and
    # too-long-name cases that permission bits alone would miss (root bypasses the bits).
    probe_in = path.parent if path.parent.is_dir() else ancestor
    try:
        probe = tempfile.mkdtemp(prefix=".didcore-check-", dir=probe_in)
        Path(probe).rmdir()
        if not path.exists() and path.parent.is_dir():
            path.mkdir()
            path.rmdir()
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {_why(exc)}") from exc
    return path


def _check_replaceable(path: Path, kind: str) -> None:
    """Refuse to replace a folder that holds files not written by didcore, or didcore's
    files of another kind (a lookups folder, for outputs).
    """
    try:
        names = {p.name for p in path.iterdir()}
        marked = _marked_kind(path / MARKER) if MARKER in names else None
    except OSError as exc:
        raise OutputError(f"cannot read output folder {path}: {_why(exc)}") from exc
    if marked is not None and marked != kind:
        raise OutputError(
            f"--out {path} is a {marked} folder written by didcore, not {kind}; it would be "
            "replaced as a whole, so name another folder"
        )
    if not names or MARKER in names or any(n in names for n in _LEGACY_OUTPUTS):
        return
    entries = "entry" if len(names) == 1 else "entries"
    shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
    raise OutputError(
        f"--out {path} is a folder of other files ({len(names)} {entries}: {shown}), not a "
        "didcore output; the outputs replace the whole folder, so name a new or empty folder"
    )


def _marked_kind(marker: Path) -> str:
    """The kind a marker file records (``kind: lookups``); outputs when it names none."""
    for line in marker.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "kind" and value.strip():
            return value.strip()
    return "outputs"


@contextlib.contextmanager
def atomic_output_dir(target: str | os.PathLike[str], kind: str = "outputs") -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success move it into place as ``target``.

    See the module docstring. Use as::

        with atomic_output_dir(out) as tmp:
            write_files(tmp)          # any exception: ``out`` is left as it was
    """
    path = check_output_dir(target, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:80]}.tmp-", dir=path.parent))
        # mkdtemp makes the folder private (0700); an output folder gets the usual mode
        tmp.chmod(0o777 & ~_umask())
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {_why(exc)}") from exc
    try:
        try:
            yield tmp
            (tmp / MARKER).write_text(
                "Written by didcore. The next run writing the same kind of folder with --out "
                f"here replaces this whole folder.\nkind: {kind}\n",
                encoding="utf-8",
            )
        except OSError as exc:
            if isinstance(exc, DidcoreError):
                raise
            raise OutputError(_write_error(exc, tmp, path)) from exc
        _swap(tmp, path)
    except BaseException:
        with _signals_deferred():
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _failed_file(exc: OSError, tmp: Path) -> Path | None:
    """The file an error is about: its ``filename``, else (pyarrow's errors name none) the
    file last written in ``tmp``, which is the one being written when the write failed.
    """
    if exc.filename is not None:
        try:
            return Path(os.fsdecode(exc.filename)).absolute()
        except (TypeError, ValueError):
            return None
    newest: tuple[float, Path] | None = None
    with contextlib.suppress(OSError):
        for f in tmp.rglob("*"):
            mtime = f.lstat().st_mtime
            if f.is_file() and (newest is None or mtime >= newest[0]):
                newest = (mtime, f)
    return newest[1] if newest else None


def _write_error(exc: OSError, tmp: Path, path: Path) -> str:
    """One line naming the file (as it would have been in the target) and what to do."""
    where = f"the outputs in {path}"
    failed = _failed_file(exc, tmp)
    if failed is not None:
        try:
            where = str(path / failed.relative_to(tmp))
        except ValueError:  # a file elsewhere (not an output)
            where = str(failed)
    return (
        f"cannot write {where}: {_why(exc)}; nothing was changed in {path}"
        if path.exists()
        else f"cannot write {where}: {_why(exc)}; no outputs were written"
    )


def _swap(tmp: Path, path: Path) -> None:
    """Move ``tmp`` into place as ``path``: old folder aside, new one in, old one removed."""
    with _signals_deferred():
        if not path.exists():
            try:
                tmp.rename(path)
            except OSError as exc:
                raise OutputError(f"cannot create output folder {path}: {_why(exc)}") from exc
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name[:80]}.old-", dir=path.parent))
        try:
            path.rename(old / path.name)
        except OSError as exc:
            old.rmdir()
            raise OutputError(f"cannot replace output folder {path}: {_why(exc)}") from exc
        try:
            tmp.rename(path)
        except OSError as exc:
            (old / path.name).rename(path)
            old.rmdir()
            raise OutputError(f"cannot replace output folder {path}: {_why(exc)}") from exc
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM for the duration; one that arrives is delivered after.

    Python runs signal handlers in the main thread whichever thread the signal reached, so the
    handlers are swapped for one that only records the signal (a thread's signal mask would
    not do: the reader threads would still take it). Only in the main thread, where handlers
    can be set; elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    previous: dict[signal.Signals, Any] = {}
    for held in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            previous[held] = signal.signal(held, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler not set from Python, which cannot be put back; the default then
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])  # now, to the handler put back (Ctrl-C: exit 130)


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
