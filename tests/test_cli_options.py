"""Numeric options are checked when the command line is parsed: a usage error (exit 2) naming the
option, before any model is loaded or any file is read or written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app

runner = CliRunner()

ENHANCE = ["enhance", "in.png", "-m", "crnet-tiny"]  # in.png does not exist: the values must be refused first
EVALUATE = ["evaluate", "--model", "crnet-tiny", "--data", "nowhere"]
TRAIN = ["train", "--data", "nowhere"]
EXPORT = ["export", "--model", "crnet-tiny", "-o", "x.onnx"]

BAD = [
    (ENHANCE, "--max-pixels", "0"),
    (ENHANCE, "--max-pixels", "-5"),
    (ENHANCE, "--tile", "-1"),
    (ENHANCE, "--tile", "32"),
    (ENHANCE, "--overlap", "-1"),
    (ENHANCE, "--batch-size", "0"),
    (ENHANCE, "--quality", "0"),
    (ENHANCE, "--quality", "101"),
    (EVALUATE, "--tile", "10"),
    (EVALUATE, "--overlap", "-3"),
    (EVALUATE, "--batch-size", "0"),
    (EVALUATE, "--crop-border", "-1"),
    (EXPORT, "--opset", "11"),
    (EXPORT, "--opset", "99"),
    (TRAIN, "--epochs", "0"),
    (TRAIN, "--max-steps", "-1"),
    (TRAIN, "--batch-size", "0"),
    (TRAIN, "--patch-size", "8"),
    (TRAIN, "--patches-per-image", "0"),
    (TRAIN, "--lr", "0"),
    (TRAIN, "--lr", "-1e-4"),
    (TRAIN, "--lr", "nan"),
    (TRAIN, "--labeled-frac", "0"),
    (TRAIN, "--labeled-frac", "1.5"),
    (TRAIN, "--val-every", "-1"),
    (TRAIN, "--seed", "-1"),
    (TRAIN, "--workers", "-1"),
]


@pytest.mark.parametrize(("command", "option", "value"), BAD, ids=[f"{c[0]} {o} {v}" for c, o, v in BAD])
def test_bad_numbers_are_usage_errors_at_parse_time(command, option, value, monkeypatch):
    import lowlight_cli.cli.loading as loading

    def never(*args, **kwargs):
        raise AssertionError("a model was created before the options were checked")

    monkeypatch.setattr(loading, "create_model", never)
    result = runner.invoke(app, [*command, option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_options_say_what_they_do():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    for option in ("--epochs", "--patch-size", "--lr", "--seed"):
        line = next(line for line in result.output.splitlines() if option in line)
        assert len(line.split(option, 1)[1].strip(" │INTEGERFLOAT")) > 15, line  # a help text follows the option


def test_a_mistyped_command_gets_one_suggestion():
    result = runner.invoke(app, ["enhanc", "in.png"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "No such command 'enhanc'" in text, result.output
    assert text.count("Did you mean") == 1 and "'enhance'" in text


def test_precision_and_colour_are_taken_in_any_case(tmp_path):
    from .photos import dark_photo, save_photo

    save_photo(tmp_path / "in.png", dark_photo(40, 48))
    result = runner.invoke(app, ["enhance", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", "crnet-tiny",
                                 "--no-pretrained", "--precision", "FP32", "--colour", "Input", "--json"])
    assert result.exit_code == 0, result.output


def test_weights_given_as_the_model_are_sent_to_weights(tmp_path):
    from lowlight_cli.models import create_model
    from lowlight_cli.models.checkpoint import save_checkpoint

    kwargs = {"channels": 4, "groups": 1, "blocks": 1}
    folder = save_checkpoint(create_model("crnet-tiny", pretrained=False, **kwargs), tmp_path / "ckpt",
                             architecture="crnet-tiny", kwargs=kwargs)
    photo = tmp_path / "p.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(photo), np.full((16, 16, 3), 20, np.uint8))
    for command in (["enhance", str(photo), "-o", str(tmp_path / "out"), "--model", str(folder)],
                    ["enhance", str(photo), "-o", str(tmp_path / "out"), "--model", "crnet-s-lol"],  # bundled weights
                    ["export", "--model", str(folder), "-o", str(tmp_path / "m.onnx")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "names weights, not a model" in result.output and "--weights" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()
    result = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"), "--weights", str(folder)])
    assert result.exit_code == 0, result.output  # as the hint says
