"""`lowlight enhance` checks its output folder before any work, in a real process on real file systems.

Each run names ``crnet-tiny``, which has no trained weights: a run that got as far as loading the
model would fail with "no trained weights", so the output problem must be reported first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app

from .photos import dark_photo, save_photo

runner = CliRunner()


def lowlight(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LOWLIGHT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("LOWLIGHT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "lowlight_cli", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture()
def photo(tmp_path) -> Path:
    return save_photo(tmp_path / "in" / "a.png", dark_photo(40, 48))


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``folder`` (root only; the test is skipped elsewhere)."""
    folder.mkdir(parents=True)
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def assert_refused_up_front(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert "no trained weights" not in result.stderr  # the model was never loaded
    assert "Traceback" not in result.stderr


def test_output_that_is_a_file_is_refused_before_the_model_loads(photo, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = lowlight("enhance", str(photo), "-o", str(target), "-m", "crnet-tiny", tmp_path=tmp_path)
    assert_refused_up_front(result, "is a file, not a folder")
    assert result.stderr.count(str(target)) == 1


def test_full_disk_is_refused_before_the_model_loads(photo, tmp_path):
    with tmpfs(tmp_path / "small", "size=256k") as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            filler.write(b"\0" * (1 << 20))  # stops at the size limit
        result = lowlight("enhance", str(photo), "-o", str(disk / "out"), "-m", "crnet-tiny", tmp_path=tmp_path)
        assert_refused_up_front(result, "cannot write files here", "No space left")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # the probe and its folder are gone


def test_read_only_folder_is_refused_before_the_model_loads(photo, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=64k") as folder:
        result = lowlight("enhance", str(photo), "-o", str(folder), "-m", "crnet-tiny", tmp_path=tmp_path)
        assert_refused_up_front(result, "Read-only file system")
        result = lowlight("enhance", str(photo), "-o", str(folder / "sub"), "-m", "crnet-tiny", tmp_path=tmp_path)
        assert_refused_up_front(result, "cannot create this folder")


def test_a_failed_file_is_reported_once(tmp_path):
    folder = tmp_path / "in"
    save_photo(folder / "a.png", dark_photo(40, 48))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    result = runner.invoke(app, ["enhance", str(folder), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 3, result.output
    assert result.output.count("broken.png") == 1, result.output
