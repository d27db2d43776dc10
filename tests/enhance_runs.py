"""`lowlight enhance` run once per value of one of its photo-step options (`--colour`, `--blacks`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.io import read_image

from .photos import dark_photo, save_photo

runner = CliRunner()


def enhance_each_mode(tmp_path: Path, option: str, values: tuple[str, str]) -> dict[str, tuple[np.ndarray, str]]:
    """``{label: (output RGB, the mode --json reports)}`` for one small dark photo enhanced by
    ``crnet-curve-dn`` with its defaults ("default") and with ``--OPTION VALUE`` for each value, and
    by an untrained ``crnet-s`` with its defaults ("crnet-s")."""
    save_photo(tmp_path / "in" / "a.png", dark_photo(48, 64, seed=5))
    runs = [("default", "crnet-curve-dn", [])]
    runs += [(value, "crnet-curve-dn", [f"--{option}", value]) for value in values]
    runs += [("crnet-s", "crnet-s", ["--no-pretrained"])]
    outputs = {}
    for label, model, extra in runs:
        result = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--model", model, "-o", str(tmp_path / label),
                                     "--device", "cpu", "--json", *extra])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout[result.stdout.index("{"):])
        outputs[label] = (read_image(tmp_path / label / "a.png").rgb, report[option])
    return outputs
