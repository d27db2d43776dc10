"""Every sub-package is listed in pyproject.toml, so a wheel install is complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lowlight_cli").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert config["package-dir"]["lowlight_cli.weights"] == "weights"


def test_a_command_run_imports_only_what_it_needs():
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['lowlight', 'enhance', '--help']\n"
            "from lowlight_cli.cli import app\n"
            "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
            "print('TRAINING' if 'lowlight_cli.cli.train' in sys.modules else 'LEAN',"
            " 'EVAL' if 'lowlight_cli.cli.evaluate' in sys.modules else 'LEAN')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("LEAN LEAN"), done.stdout[-500:] + done.stderr[-500:]
    from lowlight_cli.cli.app import COMMANDS, app

    assert [c.name for c in app.registered_commands] == list(COMMANDS)  # the whole app for `lowlight --help` and tests
