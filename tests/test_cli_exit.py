"""How the `lowlight` process ends: `enhance`, `evaluate`, `export`, `import`, `models` and `priors` leave through
`exit_now` (atexit handlers run, streams flushed, no interpreter teardown), with the exit codes and
output a normal exit gives; the others end normally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .photos import dark_photo, save_photo

# a global object whose finalizer speaks at interpreter teardown, and an atexit handler
PROBE = """
import atexit, sys
from lowlight_cli.cli.app import main, exit_now

class Teardown:
    def __del__(self):
        sys.stderr.write("TEARDOWN\\n")

probe = Teardown()
atexit.register(lambda: sys.stderr.write("ATEXIT\\n"))
if sys.argv[1] == "exit-with-message":
    exit_now("stopped: a message")
sys.argv = ["lowlight", *sys.argv[1:]]
main(quick_exit=True)  # as the lowlight script and python -m lowlight_cli call it
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LOWLIGHT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("LOWLIGHT_DEBUG", None)
    return env


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=_env(tmp_path), timeout=120)


def test_enhance_ends_without_teardown_keeping_its_exit_code_and_output(tmp_path):
    save_photo(tmp_path / "in" / "good.png", dark_photo(40, 48, seed=1))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    done = _run(["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", "gamma", "--json"], tmp_path)
    assert done.returncode == 3, done.stderr  # some files failed, the other written
    summary = json.loads(done.stdout)  # flushed whole before the process left
    assert summary["written"] == 1 and summary["failed"] == 1
    assert (tmp_path / "out" / "good.png").is_file()
    assert "ATEXIT" in done.stderr and "TEARDOWN" not in done.stderr


@pytest.mark.parametrize("args, code", [(["models", "--json"], 0), (["enhance", "--tile", "3", "x.png"], 2)])
def test_quick_exit_keeps_success_and_usage_codes(tmp_path, args, code):
    done = _run(args, tmp_path)
    assert done.returncode == code, done.stderr
    assert "ATEXIT" in done.stderr and "TEARDOWN" not in done.stderr
    if code == 0:
        json.loads(done.stdout)


def test_a_message_exit_prints_it_and_fails_like_python(tmp_path):
    done = _run(["exit-with-message"], tmp_path)
    assert done.returncode == 1 and "stopped: a message" in done.stderr and "ATEXIT" in done.stderr


def test_other_commands_end_normally(tmp_path):
    done = _run(["train", "--list-methods"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ATEXIT" in done.stderr and "TEARDOWN" in done.stderr  # train may hold files open: a full exit


def test_a_closed_standard_output_is_no_failure(tmp_path):
    # the descriptor closed before start: Python sets sys.stdout to None (flushing it raised AttributeError)
    done = subprocess.run([sys.executable, "-m", "lowlight_cli", "models", "--json"], stderr=subprocess.PIPE, text=True,
                          env=_env(tmp_path), timeout=120, preexec_fn=lambda: os.close(1))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_main_called_in_process_raises_system_exit(tmp_path):
    from lowlight_cli.cli.app import main

    old = sys.argv
    sys.argv = ["lowlight", "models", "--help"]
    try:
        with pytest.raises(SystemExit) as done:  # the caller's process goes on (no os._exit)
            main()
    finally:
        sys.argv = old
    assert done.value.code in (0, None)
