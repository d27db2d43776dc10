"""Stopping `lowlight enhance` with real signals: SIGTERM like Ctrl-C, SIGKILL's leftovers cleaned next time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.io import find_images, read_image
from lowlight_cli.io.write import STALE_TEMP_SECONDS, is_temp_file, remove_stale_temps

from .photos import dark_photo, save_photo

runner = CliRunner()

# `lowlight` with one step made slow or stuck, so that a signal arrives at a known point
PATCHED_CLI = r"""
import sys, time
import lowlight_cli.cli.enhance as cli_enhance
import lowlight_cli.io.write as write

mode = sys.argv.pop(1)
if mode == "slow-second-file":
    real, calls = cli_enhance.enhance_file, []
    def slow(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            print("READY", flush=True)
            time.sleep(60)
        return real(*args, **kwargs)
    cli_enhance.enhance_file = slow
elif mode == "stuck-before-rename":  # the encoded bytes are in the temporary file, not yet renamed
    def stuck(*args, **kwargs):
        print("READY", flush=True)
        time.sleep(60)
    write._commit = stuck
from lowlight_cli.cli.app import main
sys.argv[0] = "lowlight"
main()
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LOWLIGHT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("LOWLIGHT_DEBUG", None)
    return env


def run_until_ready_then(sig: int, mode: str, args: list[str], tmp_path: Path) -> tuple[int, str]:
    """Start the patched CLI, wait for its READY line, send ``sig``; return exit status and stderr."""
    process = subprocess.Popen([sys.executable, "-c", PATCHED_CLI, mode, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    try:
        line = process.stdout.readline()
        assert line.strip() == "READY", process.stderr.read()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


def lowlight(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lowlight_cli", *args], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=120)


@pytest.fixture()
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    for i, name in enumerate(("a", "b", "c")):
        save_photo(folder / f"{name}.png", dark_photo(40, 48, seed=i))
    return folder


def test_sigterm_stops_like_ctrl_c_with_a_summary_and_nothing_half_written(photos, tmp_path):
    out = tmp_path / "out"
    status, stderr = run_until_ready_then(signal.SIGTERM, "slow-second-file", ["enhance", str(photos), "-o", str(out), "-m", "gamma"], tmp_path)
    assert status == 130, stderr
    assert "terminated (SIGTERM)" in stderr and "1 of 3" in stderr and "--skip-existing" in stderr
    assert "Traceback" not in stderr
    assert [p.name for p in out.iterdir()] == ["a.png"]  # complete, and nothing else (no temporary file)
    read_image(out / "a.png")
    rerun = lowlight(["enhance", str(photos), "-o", str(out), "-m", "gamma", "--skip-existing"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]


def test_ctrl_c_says_what_was_written_and_how_to_go_on(photos, tmp_path, monkeypatch):
    import lowlight_cli.cli.enhance as cli_enhance

    real = cli_enhance.enhance_file
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_enhance, "enhance_file", interrupted_second)
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C)" in result.output and "1 written" in result.output and "--skip-existing" in result.output
    calls.clear()  # again, skipping the one written: the JSON of the stop lists it as skipped
    again = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "out"), "-m", "gamma", "--skip-existing", "--json"])
    assert again.exit_code == 130
    summary = json.loads(again.stdout)
    assert summary["interrupted"] and summary["skipped"] == 1 and summary["written"] == 1, summary


def test_sigkill_leftover_is_cleaned_at_the_next_run_and_never_read(photos, tmp_path):
    out = tmp_path / "out"
    status, _ = run_until_ready_then(signal.SIGKILL, "stuck-before-rename", ["enhance", str(photos / "a.png"), "-o", str(out), "-m", "gamma"], tmp_path)
    assert status == -signal.SIGKILL
    (leftover,) = out.iterdir()
    assert is_temp_file(leftover) and leftover.stat().st_size > 0
    # never an input: neither in a folder scan nor named on the command line
    assert find_images([out]) == []
    named = lowlight(["enhance", str(leftover), "-o", str(tmp_path / "other"), "-m", "gamma"], tmp_path)
    assert named.returncode == 2 and "temporary file" in named.stderr
    # a leftover this young could be a concurrent run's file being written: kept
    rerun = lowlight(["enhance", str(photos / "b.png"), "-o", str(out), "-m", "gamma"], tmp_path)
    assert rerun.returncode == 0 and leftover.exists()
    old = time.time() - 2 * STALE_TEMP_SECONDS
    os.utime(leftover, (old, old))
    rerun = lowlight(["enhance", str(photos / "c.png"), "-o", str(out), "-m", "gamma"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 temporary file" in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "c.png"]


def test_only_stale_files_named_like_our_temporaries_are_removed(tmp_path):
    old = time.time() - 2 * STALE_TEMP_SECONDS
    names = [".a.png.0123abcd.tmp", ".a.png.0123abcX.tmp", ".keep.tmp", "a.png.0123abcd.tmp", "photo.png", ".b.jpg.deadbeef.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".young.png.0123abcd.tmp").write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == [".a.png.0123abcd.tmp", ".b.jpg.deadbeef.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".a.png.0123abcX.tmp", ".keep.tmp", "a.png.0123abcd.tmp", "photo.png", ".young.png.0123abcd.tmp"]
    )
    assert remove_stale_temps(tmp_path / "missing") == []


SLOW_START = r"""
import os, sys, time
class SlowImport:  # the app's import (torch: about a second) made slow, so that signals land in it
    def find_spec(self, name, path, target=None):
        if name == os.environ.get("SLOW_MODULE", "lowlight_cli.cli.app"):
            print("READY", flush=True)
            time.sleep(float(os.environ["SLOW_IMPORT_SECONDS"]))
        return None
sys.meta_path.insert(0, SlowImport())
from lowlight_cli.cli.entry import main
sys.argv[0] = "lowlight"
main()
"""


def _slow_start(args: list[str], tmp_path: Path, seconds: float, module: str = "lowlight_cli.cli.app",
                **options: object) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SLOW_START, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**_env(tmp_path), "SLOW_IMPORT_SECONDS": str(seconds), "SLOW_MODULE": module},
                               **options)
    assert process.stdout.readline().strip() == "READY"
    return process


def _finish(process: subprocess.Popen) -> str:
    try:
        _, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    return stderr


@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated (SIGTERM)")])
def test_a_signal_while_starting_stops_the_command_as_it_starts(photos, tmp_path, sig, said):
    """Python cannot stop an import safely (a Ctrl-C inside torch's left numpy half-loaded: a long
    traceback, or the interrupt lost): the signal is held until the command starts, which then ends
    with one line and exit 130 (SIGTERM too, not 143), having read and written nothing."""
    process = _slow_start(["enhance", str(photos), "-o", str(tmp_path / "out")], tmp_path, 1.0)
    process.send_signal(sig)
    stderr = _finish(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and f"{said} before the command started: nothing was done" in stderr, stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module", ["lowlight_cli.cli.app", "lowlight_cli.cli.enhance"])  # the app, then the command's module
def test_a_second_ctrl_c_while_starting_stops_at_once(photos, tmp_path, module):
    process = _slow_start(["enhance", str(photos), "-o", str(tmp_path / "out")], tmp_path, 60.0, module)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stderr = _finish(process)
    assert process.returncode == 130 and "Traceback" not in stderr and "interrupted while starting" in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_a_signal_ignored_by_whoever_started_the_process_stays_ignored(tmp_path):
    """`lowlight ... &` from a script (or a supervisor) starts it with SIGINT ignored: holding
    signals while starting must not undo that, and the command runs to its end."""
    process = _slow_start(["models", "--json"], tmp_path, 1.0, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert json.loads(stdout) and "interrupted" not in stderr


CRASHING = r"""
import atexit, signal, sys
import lowlight_cli.cli.models as models

def broken(*args, **kwargs):
    raise RuntimeError("a bug")
models.list_models = broken
atexit.register(lambda: sys.stderr.write(f"SIGTERM handler: {signal.getsignal(signal.SIGTERM)}\n"))
from lowlight_cli.cli.entry import main
sys.argv[0] = "lowlight"
main()
"""


def test_after_an_unexpected_error_kill_works_again(tmp_path):
    """A command that crashes gets the process's own handlers back, so that SIGTERM (kill, timeout,
    torchrun) can still end a teardown that hangs."""
    done = subprocess.run([sys.executable, "-c", CRASHING, "models"], capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 1 and "a bug" in done.stderr
    assert f"SIGTERM handler: {signal.SIG_DFL}" in done.stderr, done.stderr


FINISHED_THEN_SIGNALLED = r"""
import os, signal, sys
from lowlight_cli.cli.entry import main
import lowlight_cli.cli.app as app

SIGNAL = getattr(signal, sys.argv.pop())
original = app.exit_now
def exit_now(code):  # the command has its status; a signal comes as the process leaves
    os.kill(os.getpid(), SIGNAL)
    original(code)
app.exit_now = exit_now
sys.argv[0] = "lowlight"
main()
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_command_keeps_its_exit_status(tmp_path, sig):
    """A finished command's status stands: a signal as it leaves neither makes it 130 or 143 nor
    prints a traceback."""
    done = subprocess.run([sys.executable, "-c", FINISHED_THEN_SIGNALLED, "models", "--json", sig],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "interrupted" not in done.stderr
    assert json.loads(done.stdout)  # its output whole


def test_the_console_script_starts_through_the_guard():
    import tomllib

    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lowlight"] == "lowlight_cli.cli.entry:main"
