"""Output folders are written beside --out and moved into place (didcore.outputs).

A failure at any point (an exception, Ctrl-C, a full disk, a file-size limit, a rename that
fails) must leave the previous outputs exactly as they were and no temporary folder behind; an
unusable --out is one line and exit status 2, found before any counting.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from didcore.cli import main
from didcore.errors import InputError, OutputError
from didcore.outputs import MARKER, atomic_output_dir, check_output_dir


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(parent: Path, name: str) -> list[str]:
    """Temporary folders a run left beside ``parent / name``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


@pytest.fixture
def old_output(tmp_path: Path) -> Path:
    """A finished output folder with two files, as a previous run leaves it."""
    out = tmp_path / "out"
    with atomic_output_dir(out) as work:
        (work / "cube.csv").write_text("icb_code,count\nQE1,1\n")
        (work / "charts").mkdir()
        (work / "charts" / "x.svg").write_text("<svg/>")
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic extract (real codes, so the shipped lookups apply)."""
    from didcore.synth import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, rows=3000, seed=3)
    return root


# ------------------------------------------------------------------------------ the swap


def test_success_replaces_the_whole_folder(old_output: Path) -> None:
    with atomic_output_dir(old_output) as work:
        assert work.parent == old_output.parent and work != old_output
        (work / "new.csv").write_text("a\n1\n")
    assert sorted(_snapshot(old_output)) == [MARKER, "new.csv"]
    assert _leftovers(old_output.parent, "out") == []


def test_a_new_folder_and_its_parents_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    with atomic_output_dir(target) as work:
        (work / "x.csv").write_text("x\n")
    assert (target / "x.csv").read_text() == "x\n"
    mode = target.stat().st_mode & 0o777
    assert mode == 0o777 & ~_umask(), oct(mode)  # not mkdtemp's private 0700


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_exception_midway_keeps_the_old_folder(old_output: Path) -> None:
    before = _snapshot(old_output)
    with pytest.raises(RuntimeError, match="writer broke"), atomic_output_dir(old_output) as work:
        (work / "cube.csv").write_text("half")
        raise RuntimeError("writer broke")
    assert _snapshot(old_output) == before
    assert _leftovers(old_output.parent, "out") == []


def test_ctrl_c_midway_keeps_the_old_folder(old_output: Path) -> None:
    before = _snapshot(old_output)
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(old_output) as work:
        (work / "cube.csv").write_text("half")
        raise KeyboardInterrupt
    assert _snapshot(old_output) == before
    assert _leftovers(old_output.parent, "out") == []


def test_a_full_disk_is_an_output_error_naming_the_file(old_output: Path) -> None:
    before = _snapshot(old_output)
    with pytest.raises(OutputError) as info, atomic_output_dir(old_output) as work:
        (work / "cube.csv").write_text("icb_code\n")
        raise OSError(errno.ENOSPC, "No space left on device", str(work / "exclusions.csv"))
    message = str(info.value)
    assert "\n" not in message
    assert str(old_output / "exclusions.csv") in message  # named as in the target, not the tmp
    assert "disk is full" in message and "nothing was changed" in message
    assert isinstance(info.value, InputError)
    assert _snapshot(old_output) == before
    assert _leftovers(old_output.parent, "out") == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_dev_full_while_pyarrow_writes(old_output: Path) -> None:
    """A real ENOSPC from the kernel, through pyarrow's writer (whose error names no file)."""
    before = _snapshot(old_output)
    table = pa.table({"a": list(range(100_000))})
    full = pytest.raises(OutputError, match="No space left on device")
    with full, atomic_output_dir(old_output) as work:
        (work / "cube.csv").symlink_to("/dev/full")
        pacsv.write_csv(table, work / "cube.csv")
    assert _snapshot(old_output) == before
    assert _leftovers(old_output.parent, "out") == []


def test_a_failed_rename_puts_the_old_folder_back(
    old_output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(old_output)
    real_rename = Path.rename

    def rename(self: Path, target: str | os.PathLike[str]) -> Path:
        if ".tmp-" in self.name:  # the new folder moving into place
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    refused = pytest.raises(OutputError, match="cannot replace output folder")
    with refused, atomic_output_dir(old_output) as work:
        (work / "cube.csv").write_text("new")
    monkeypatch.undo()
    assert _snapshot(old_output) == before
    assert _leftovers(old_output.parent, "out") == []


def test_input_errors_pass_through_unchanged(old_output: Path) -> None:
    from didcore.errors import UnreadableInputError

    with pytest.raises(UnreadableInputError), atomic_output_dir(old_output):
        raise UnreadableInputError("cannot read previous report")


# ------------------------------------------------------------------------------ the check


def test_an_existing_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("x")
    with pytest.raises(OutputError, match="is an existing file, not a folder"):
        check_output_dir(target)


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    """Not creatable even by root (the tests run as root, which bypasses permission bits)."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "f" / "deeper" / "out")


def test_a_too_long_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="name is too long"):
        check_output_dir(tmp_path / ("x" * 300))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot create output folder"):
            check_output_dir(ro / "out")
    finally:
        ro.chmod(0o755)


def test_a_folder_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a didcore output"):
        check_output_dir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_empty_marked_and_older_output_folders_may_be_replaced(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    older = tmp_path / "older"  # written before the marker existed
    older.mkdir()
    (older / "cube.csv").write_text("x")
    assert check_output_dir(empty) == empty
    assert check_output_dir(older) == older
    assert not list(tmp_path.glob(".didcore-check-*"))  # the probe leaves nothing


def test_the_check_leaves_nothing_behind(tmp_path: Path) -> None:
    check_output_dir(tmp_path / "new" / "out")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ the CLI


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["cube", "report", "lookups"])
def test_cli_existing_file_out_is_exit_2_before_counting(
    command: str,
    synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import didcore.cube

    def no_count(*args: object, **kwargs: object) -> None:
        raise AssertionError("counted before checking --out")

    monkeypatch.setattr(didcore.cube, "aggregate", no_count)
    target = tmp_path / "taken.csv"
    target.write_text("keep me")
    argv = {
        "cube": ["cube", str(synthetic / "extract"), "--out", str(target)],
        "report": [
            "report",
            str(synthetic / "extract"),
            "--population",
            str(synthetic / "population.csv"),
            "--out",
            str(target),
        ],
        "lookups": ["lookups", "--out", str(target)],
    }[command]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("didcore: error: ") and str(target) in line
    assert target.read_text() == "keep me"


def test_cli_out_under_a_file_is_exit_2(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["cube", str(synthetic / "extract"), "--out", str(tmp_path / "f" / "o")]) == 2
    assert "is a file, not a folder" in _one_line(capsys.readouterr().err)


def test_cli_dev_full_keeps_the_previous_cube(
    synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """exclusions.csv of the new run goes to /dev/full: exit 2, one line, old files intact."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    import didcore.outputs

    out = tmp_path / "cube"
    assert main(["cube", str(synthetic / "extract"), "--out", str(out), "-q"]) == 0
    before = _snapshot(out)
    real_mkdtemp = didcore.outputs.tempfile.mkdtemp

    def mkdtemp(*args: object, **kwargs: object) -> str:
        folder = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        if ".tmp-" in Path(folder).name:
            (Path(folder) / "exclusions.csv").symlink_to("/dev/full")
        return str(folder)

    monkeypatch.setattr(didcore.outputs.tempfile, "mkdtemp", mkdtemp)
    capsys.readouterr()
    assert main(["cube", str(synthetic / "extract"), "--out", str(out), "-q"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(out) in line
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "cube") == []


def test_cli_ctrl_c_while_writing_keeps_the_previous_cube(
    synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import didcore.cli

    out = tmp_path / "cube"
    assert main(["cube", str(synthetic / "extract"), "--out", str(out), "-q"]) == 0
    before = _snapshot(out)

    def interrupted(cube: object, folder: Path) -> None:
        (folder / "exclusions.csv").write_text("reason,count\n")
        raise KeyboardInterrupt

    for name in ("_write_cube_outputs", "_write_year_outputs"):
        if hasattr(didcore.cli, name):
            monkeypatch.setattr(didcore.cli, name, interrupted)
    capsys.readouterr()
    assert main(["cube", str(synthetic / "extract"), "--out", str(out), "-q"]) == 130
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "cube") == []


def test_cli_file_size_limit_never_leaves_a_cube_cut_midrow(
    synthetic: Path, tmp_path: Path
) -> None:
    """RLIMIT_FSIZE: SIGXFSZ is ignored, so the write fails with EFBIG: exit 2, old intact."""
    resource = pytest.importorskip("resource")
    out = tmp_path / "cube"
    assert main(["cube", str(synthetic / "extract"), "--out", str(out), "-q"]) == 0
    before = _snapshot(out)
    assert max(len(b) for b in before.values()) > 4096  # the limit below cuts a file

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    run = subprocess.run(
        [sys.executable, "-m", "didcore", "cube", str(synthetic / "extract"), "--out", str(out)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    line = _one_line(run.stderr)
    assert "file-size limit" in line
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "cube") == []


def test_report_write_failure_keeps_the_previous_report(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from didcore.report import pipeline

    out = tmp_path / "report"
    kwargs = {"population": synthetic / "population.csv", "formats": ("csv",), "quiet": True}
    pipeline.run_report([synthetic / "extract"], out_dir=out, **kwargs)  # type: ignore[arg-type]
    before = _snapshot(out)
    real = pipeline.write_csvs

    def full_disk(tables: object, folder: Path) -> list[Path]:
        real(tables, folder)  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "write_csvs", full_disk)
    with pytest.raises(OutputError, match="disk is full"):
        pipeline.run_report([synthetic / "extract"], out_dir=out, **kwargs)  # type: ignore[arg-type]
    assert _snapshot(out) == before
    assert _leftovers(tmp_path, "report") == []


def test_report_result_names_the_final_folder(synthetic: Path, tmp_path: Path) -> None:
    from didcore.report.pipeline import run_report

    out = tmp_path / "report"
    result = run_report(
        [synthetic / "extract"],
        population=synthetic / "population.csv",
        out_dir=out,
        formats=("csv",),
        quiet=True,
    )
    assert result.out_dir == out
    assert result.files and all(f.is_file() and out in f.parents for f in result.files)
    assert ".tmp-" not in result.summary and str(out) in result.summary


def test_ctrl_c_during_the_swap_is_delivered_after_it(
    old_output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT between the two renames must not leave the target missing."""
    import signal

    real_rename = Path.rename

    def rename(self: Path, target: str | os.PathLike[str]) -> Path:
        if ".old-" in str(target):  # the old folder moving aside: Ctrl-C now
            # raise_signal, not os.kill: a signal sent to the process may land on another
            # thread, and the main thread then sees it only some bytecodes later, past the
            # swap (still delivered after it, but no longer inside this block)
            signal.raise_signal(signal.SIGINT)
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    # Python's own Ctrl-C handler, whatever this process inherited (a shell's background job
    # starts with SIGINT ignored, and Python then installs no handler)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), atomic_output_dir(old_output) as work:
            (work / "cube.csv").write_text("new")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    monkeypatch.undo()
    assert _snapshot(old_output) == {MARKER: _snapshot(old_output)[MARKER], "cube.csv": b"new"}
    assert _leftovers(old_output.parent, "out") == []


def test_an_output_never_replaces_a_lookups_folder(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lookups = tmp_path / "lookups"
    assert main(["lookups", "--out", str(lookups), "-q"]) == 0
    before = _snapshot(lookups)
    argv = ["cube", str(synthetic / "extract"), "--lookups", str(lookups), "--out", str(lookups)]
    assert main(argv) == 2
    assert "is a lookups folder written by didcore" in _one_line(capsys.readouterr().err)
    assert _snapshot(lookups) == before
    assert main(["lookups", "--out", str(lookups), "-q"]) == 0  # lookups may replace lookups


def test_a_mount_point_is_refused() -> None:
    mount = next((p for p in (Path("/proc"), Path("/dev/shm"), Path("/sys")) if p.is_mount()), None)
    if mount is None:
        pytest.skip("no mount point to try")
    with pytest.raises(OutputError, match="mount point"):
        check_output_dir(mount)
