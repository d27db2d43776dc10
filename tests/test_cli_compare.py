"""`lowlight compare`: several models, one test set, one protocol; the same scores as `evaluate`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.models import create_model, save_checkpoint

from .photos import dark_photo, save_photo

runner = CliRunner()


@pytest.fixture()
def test_set(tmp_path):
    """DIR/low and DIR/high: three small dark photos and their clean originals."""
    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        save_photo(tmp_path / "set" / "high" / f"{i}.png", dark_photo(96, 128, name=name, seed=i, exposure=1.0))
        save_photo(tmp_path / "set" / "low" / f"{i}.png", dark_photo(96, 128, name=name, seed=i, exposure=0.1))
    return tmp_path / "set"


@pytest.fixture()
def checkpoint(tmp_path):
    model = create_model("crnet-tiny", pretrained=False)
    return save_checkpoint(model, tmp_path / "tiny-run", architecture="crnet-tiny", kwargs=model.config,
                           provenance={"data": "test"})


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_each_row_scores_as_evaluate_does_the_input_first(test_set, checkpoint):
    """The point of the command: every model under one protocol, each mean what `lowlight evaluate
    --model` gives for it alone; metric names after one --metrics flag are not taken for models."""
    report = _json(runner.invoke(app, ["compare", "gamma", str(checkpoint), "--data", str(test_set),
                                       "--metrics", "psnr", "ssim", "--json"]))
    assert report["protocol"]["metrics"] == ["psnr", "ssim"]
    assert [row["model"] for row in report["rows"]] == ["input", "gamma", str(checkpoint)]
    assert report["rows"][2]["architecture"] == "crnet-tiny"
    alone = {
        "input": _json(runner.invoke(app, ["evaluate", "--pred", str(test_set / "low"), "--ref", str(test_set / "high"), "--json"])),
        "gamma": _json(runner.invoke(app, ["evaluate", "--model", "gamma", "--data", str(test_set), "--json"])),
        str(checkpoint): _json(runner.invoke(app, ["evaluate", "--weights", str(checkpoint), "--data", str(test_set), "--json"])),
    }
    for row in report["rows"]:
        for metric in ("psnr", "ssim"):
            assert row["summary"][metric]["mean"] == alone[row["model"]]["summary"][metric]["mean"]
        assert row["failed"] == 0 and len(row["images"]) == 3
    assert report["rows"][1]["summary"]["psnr"]["mean"] != report["rows"][0]["summary"]["psnr"]["mean"]  # gamma did something


def test_the_table_and_the_csv_name_every_model(test_set, checkpoint, tmp_path):
    scores = tmp_path / "scores.csv"
    result = runner.invoke(app, ["compare", "gamma", str(checkpoint), "--data", str(test_set), "--csv", str(scores)])
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "input" in table and "gamma" in table and "crnet-tiny" in table and "psnr" in table and "ssim" in table
    lines = scores.read_text().splitlines()
    assert lines[0].startswith("# lowlight") and "protocol" in lines[0]
    assert any(line.startswith(f"# {checkpoint}: crnet-tiny") for line in lines)
    body = [line for line in lines if not line.startswith("#")]
    assert body[0] == "model,name,psnr,ssim,error,warnings" and len(body) == 1 + 3 * 3
    assert {line.split(",")[0] for line in body[1:]} == {"input", "gamma", str(checkpoint)}


def test_mistakes_are_said_before_any_model_runs(test_set, tmp_path):
    result = runner.invoke(app, ["compare", "gamma", "pie-lool", "--data", str(test_set)])
    assert result.exit_code == 2 and "pie-lool is not a model name" in result.output and "pie-lol" in result.output, result.output
    result = runner.invoke(app, ["compare", "gamma", "gamma", "--data", str(test_set)])
    assert result.exit_code == 2 and "named twice" in result.output
    result = runner.invoke(app, ["compare", "psnr", "--data", str(test_set)])
    assert result.exit_code == 2 and "no models to compare" in result.output
    result = runner.invoke(app, ["compare", "gamma", "--data", str(test_set / "low")])
    assert result.exit_code == 2 and "need references" in result.output and "niqe" in result.output
    assert "[1/" not in result.output  # nothing was enhanced
    result = runner.invoke(app, ["compare", "gamma", "zero-dce", "--data", str(test_set)])  # no bundled weights; no --weights here
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "zero-dce has no trained weights" in text and "--weights" not in text, result.output
    assert "lowlight import FILE.pth --arch zero-dce -o DIR, then compare DIR" in text and "[1/" not in text


def test_an_image_a_model_cannot_score_is_listed_and_exits_3(test_set):
    (test_set / "low" / "3.png").write_bytes(b"not a png")
    save_photo(test_set / "high" / "3.png", dark_photo(96, 128, seed=3, exposure=1.0))
    result = runner.invoke(app, ["compare", "gamma", "--data", str(test_set), "--json"])
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert [row["failed"] for row in report["rows"]] == [1, 1]
    assert "cover part of the 4 images" in " ".join(result.output.split())


def test_review_points_nan_scores_onnx_names_metric_names_and_unused_options(test_set, tmp_path):
    """A nan score (NIQE of a flat image) makes the run partial as in evaluate; a missing .onnx is
    named as such; a metric named without --metrics replaces the default; an option of a metric not
    asked for is refused; the JSON's inference is a dict, with the unpaired files listed."""
    import numpy as np

    flat = tmp_path / "flat"
    save_photo(flat / "flat.png", np.full((96, 128, 3), 0.2, np.float32))
    save_photo(flat / "textured.png", dark_photo(96, 128, seed=4, exposure=0.3))
    result = runner.invoke(app, ["compare", "gamma", "niqe", "--data", str(flat)])  # niqe alone: no references needed
    text = " ".join(result.output.split())
    assert result.exit_code == 3 and "(1 nan)" in text and "cover part of" in text, result.output
    result = runner.invoke(app, ["compare", str(tmp_path / "missing.onnx"), "--data", str(test_set)])
    assert result.exit_code == 1 and "does not exist" in result.output and "no trained weights" not in result.output
    result = runner.invoke(app, ["compare", "gamma", "--data", str(test_set), "--metrics", "psnr", "--ssim-space", "y"])
    assert result.exit_code == 2 and "--ssim-space applies to ssim" in " ".join(result.output.split())
    save_photo(test_set / "high" / "9.png", dark_photo(96, 128, seed=9, exposure=1.0))  # a reference without its low image
    result = runner.invoke(app, ["compare", "gamma", "--data", str(test_set), "--json"])
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["rows"][1]["inference"]["device"] == "cpu" and report["rows"][1]["inference"]["colour"] == "model"
    assert [p.endswith("9.png") for p in report["unpaired"]] == [True]


def test_means_that_leave_out_different_numbers_of_infinite_scores_get_no_best(tmp_path):
    # a DCE-Net with zero weights hands back its input: on a pair whose low image is its reference it
    # scores inf, which its mean leaves out; gamma's finite score there is in its mean
    import torch

    identity = create_model("scl-lle", pretrained=False)
    with torch.no_grad():
        for parameter in identity.parameters():
            parameter.zero_()
    folder = save_checkpoint(identity, tmp_path / "identity", architecture="scl-lle", kwargs=identity.config,
                             provenance={"data": "test"})
    bright = dark_photo(96, 128, seed=0, exposure=1.0)
    save_photo(tmp_path / "set" / "low" / "0.png", bright)
    save_photo(tmp_path / "set" / "high" / "0.png", bright)
    save_photo(tmp_path / "set" / "low" / "1.png", dark_photo(96, 128, name="coffee", seed=1, exposure=0.1))
    save_photo(tmp_path / "set" / "high" / "1.png", dark_photo(96, 128, name="coffee", seed=1, exposure=1.0))
    result = runner.invoke(app, ["compare", str(folder), "gamma", "--data", str(tmp_path / "set"), "--metrics", "psnr"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "(+1 inf)" in said and "none for psnr" in said
    report = _json(runner.invoke(app, ["compare", str(folder), "gamma", "--data", str(tmp_path / "set"), "--metrics", "psnr", "--json"]))
    assert report["rows"][1]["summary"]["psnr"]["infinite"] == 1 and "infinite" not in report["rows"][2]["summary"]["psnr"]
