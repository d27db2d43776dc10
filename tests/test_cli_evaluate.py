"""`lowlight evaluate`: metric-list spellings, pairing, the JSON shape, the protocol, errors."""

from __future__ import annotations

import csv
import json
import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.cli.evaluate import parse_metric_list
from lowlight_cli.evaluation import Protocol, Scorer
from lowlight_cli.errors import UsageError
from lowlight_cli.evaluation.scoring import gt_mean_scale

from .photos import dark_photo, save_photo

runner = CliRunner()


@pytest.fixture()
def folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for i, name in enumerate(("astronaut", "coffee", "chelsea")):
        clean = dark_photo(200, 240, name=name, seed=i, exposure=1.0)
        save_photo(ref / f"{i}.png", clean)
        save_photo(pred / f"{i}.png", clean * 0.9 + 0.02)
    return pred, ref


def _json(result, exit_code: int = 0) -> dict:
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def test_three_metric_spellings_give_the_same_list(folders):
    pred, ref = folders
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref), "--json"]
    spaced = _json(runner.invoke(app, [*base, "--metrics", "psnr", "ssim", "niqe"]))
    comma = _json(runner.invoke(app, [*base, "--metrics", "psnr,ssim,niqe"]))
    repeated = _json(runner.invoke(app, [*base, "--metrics", "psnr", "--metrics", "ssim", "--metrics", "niqe"]))
    assert spaced["protocol"]["metrics"] == comma["protocol"]["metrics"] == repeated["protocol"]["metrics"] == ["psnr", "ssim", "niqe"]
    assert spaced["summary"] == comma["summary"] == repeated["summary"]
    assert parse_metric_list(["psnr,ssim", "niqe"]) == ["psnr", "ssim", "niqe"]


def test_json_shape_is_stable(folders):
    pred, ref = folders
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "ssim", "--json"]))
    assert set(report) >= {"version", "protocol", "summary", "images"}
    assert set(report["summary"]["psnr"]) >= {"mean", "median", "std", "count"}
    assert report["summary"]["psnr"]["count"] == 3
    assert [img["name"] for img in report["images"]] == ["0", "1", "2"]
    assert set(report["images"][0]) == {"name", "psnr", "ssim"}
    assert report["protocol"]["gt_mean"] is False and report["protocol"]["ssim_space"] == "rgb"


def test_identical_images_give_inf_as_a_string(folders, tmp_path):
    _, ref = folders
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(ref), "--ref", str(ref), "--metrics", "psnr", "--json"]))
    assert report["images"][0]["psnr"] == "inf"
    assert report["summary"]["psnr"]["count"] == 0 and report["summary"]["psnr"]["infinite"] == 3


def test_missing_partner_is_reported(folders):
    pred, ref = folders
    (ref / "2.png").unlink()
    save_photo(pred / "extra.png", np.zeros((200, 240, 3)))
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr"])
    assert result.exit_code == 3  # scores of part of the set: exit 3, as when an image fails
    assert "2.png has no reference" in result.output and "extra.png" in result.output
    assert "the means cover the 2 pairs only" in result.output
    table = pred.parent / "scores.csv"
    runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--csv", str(table)])
    rows = {r["name"]: r for r in csv.DictReader(table.read_text().splitlines()[1:])}
    assert rows[str(pred / "2.png")]["error"] == "unpaired: no reference" and rows[str(pred / "2.png")]["psnr"] == ""
    assert len(rows) == 2 + 2  # the scored pairs and the two files without a partner


def test_size_mismatch_fails_that_pair_naming_both_files(folders):
    pred, ref = folders
    save_photo(pred / "0.png", np.zeros((100, 100, 3)))
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr"])
    assert result.exit_code == 3  # the other pairs are scored
    assert str(pred / "0.png") in result.output and str(ref / "0.png") in result.output
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--json"]), 3)
    failed = [img for img in report["images"] if img.get("error")]
    assert len(failed) == 1 and "size mismatch" in failed[0]["error"]
    assert report["summary"]["psnr"]["count"] == 2


def test_no_reference_mode_and_missing_reference_error(folders):
    pred, _ = folders
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--metrics", "niqe", "--json"]))
    assert all(math.isfinite(img["niqe"]) for img in report["images"])
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--metrics", "psnr"])
    assert result.exit_code == 2 and "--ref" in result.output


def test_unknown_metric_suggests(folders):
    pred, ref = folders
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "pnsr"])
    assert result.exit_code == 2 and "psnr" in result.output
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "foo"])
    assert result.exit_code == 2 and "available: " in result.output and "niqe" in result.output
    assert "lowlight metrics" not in result.output  # no such command


def test_csv_has_protocol_header_and_rows(folders, tmp_path):
    pred, ref = folders
    target = tmp_path / "scores.csv"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "ssim", "--csv", str(target), "--gt-mean"])
    assert result.exit_code == 0, result.output
    lines = target.read_text().splitlines()
    assert lines[0].startswith("# lowlight") and "gt-mean on" in lines[0]
    rows = list(csv.DictReader(lines[1:]))
    assert [r["name"] for r in rows] == ["0", "1", "2"] and float(rows[0]["psnr"]) > 20
    assert "gt-mean on" in result.output  # the protocol is printed with the table
    no_reference = runner.invoke(app, ["evaluate", "--pred", str(pred), "--metrics", "niqe", "--gt-mean"])
    assert no_reference.exit_code == 2 and "--gt-mean" in no_reference.output  # it would do nothing: said, not printed as "on"
    folder = tmp_path / "reports"
    folder.mkdir()
    into_folder = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--csv", str(folder)])
    assert into_folder.exit_code == 2 and "is a folder" in into_folder.output and "Traceback" not in into_folder.output


def test_gt_mean_matches_brightness_and_raises_psnr():
    ref = dark_photo(120, 160, exposure=1.0).astype(np.float64)
    pred = np.clip(ref * 0.6, 0, 1)
    scaled = gt_mean_scale(pred, ref)
    gray = np.array([0.299, 0.587, 0.114])
    assert abs((scaled @ gray).mean() - (ref @ gray).mean()) < 1e-3
    plain = Scorer(Protocol(("psnr",))).score("x", pred, ref).values["psnr"]
    corrected = Scorer(Protocol(("psnr",), gt_mean=True)).score("x", pred, ref).values["psnr"]
    with pytest.raises(UsageError, match="no metric asked for takes one"):  # the library refuses it too, not only the CLI
        Protocol(("niqe",), gt_mean=True)
    assert corrected > plain + 5


def test_model_mode_enhances_then_scores(tmp_path):
    data = tmp_path / "set"
    for i in range(2):
        clean = dark_photo(100, 120, seed=i, exposure=1.0)
        save_photo(data / "high" / f"{i}.png", clean)
        save_photo(data / "low" / f"{i}.png", clean**2.2)
    report = _json(runner.invoke(app, ["evaluate", "--model", "gamma", "--data", str(data), "--metrics", "psnr", "--json", "--device", "cpu"]))
    table = runner.invoke(app, ["evaluate", "--model", "gamma", "--data", str(data), "--metrics", "psnr", "--colour", "input",
                                "--blacks", "keep"])
    caption = " ".join(table.stdout.split())  # on stdout with the table, as compare's caption says it
    assert "predictions: gamma" in caption and "colour input, blacks keep, rounded to each input's bit depth" in caption
    # the gamma curve undoes x ** 2.2 up to 8-bit rounding of the dark input
    assert report["summary"]["psnr"]["mean"] > 30 and report["model"] == "gamma"
    from lowlight_cli.models import create_model

    tile = create_model("gamma").info.default_tile  # the CPU default
    assert report["inference"] == {"device": "cpu", "precision": "fp32", "tile": tile, "overlap": 32, "curve_scale": None,
                                   "compiled": False, "colour": "model", "blacks": "model"}
    assert report["architecture"] == "gamma" and report["weights"] == "no weights needed" and report["weights_path"] is None
    assert report["pred"] == str(data / "low") and report["ref"] == str(data / "high")
    random = _json(runner.invoke(app, ["evaluate", "--model", "crnet-s", "--no-pretrained", "--data", str(data),
                                       "--metrics", "psnr", "--json", "--device", "cpu"]))
    assert random["weights"] == "random weights (--no-pretrained)" and random["weights_path"] is None


def test_lpips_weights_option_and_clear_error_without(folders, tmp_path, monkeypatch):
    # stand-in random weights (real ImageNet weights cannot be downloaded here): this checks the
    # plumbing from the CLI option to the metric, not published LPIPS values
    from .test_metrics_lpips import standin_state, write_safetensors_folder

    monkeypatch.delenv("LOWLIGHT_LPIPS_WEIGHTS", raising=False)
    pred, ref = folders
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "lpips"]
    missing = runner.invoke(app, base)
    assert missing.exit_code == 1 and "no weights" in missing.output and "--lpips-weights" in missing.output
    weights = write_safetensors_folder(tmp_path / "lpips", standin_state("alex"))
    report = _json(runner.invoke(app, [*base, "--lpips-weights", str(weights), "--json"]))
    assert report["protocol"]["lpips_net"] == "alex" and report["summary"]["lpips"]["count"] == 3


def test_unreadable_and_too_small_images_fail_alone(folders, tmp_path):
    pred, _ = folders
    (pred / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    save_photo(pred / "tiny.png", dark_photo(40, 40, exposure=1.0))  # NIQE needs 96x96
    target = tmp_path / "scores.csv"
    base = ["evaluate", "--pred", str(pred), "--metrics", "niqe"]
    result = runner.invoke(app, [*base, "--json", "--csv", str(target)])
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    errors = {img["name"]: img["error"] for img in report["images"] if "error" in img}
    assert set(errors) == {"bad", "tiny"} and "not a readable image" in errors["bad"] and "96x96" in errors["tiny"]
    assert report["failed"] == 2 and report["summary"]["niqe"]["count"] == 3  # the means leave them out
    rows = {r["name"]: r for r in csv.DictReader(target.read_text().splitlines()[1:])}
    assert rows["bad"]["niqe"] == "" and "not a readable image" in rows["bad"]["error"] and rows["0"]["error"] == ""
    table = runner.invoke(app, base)
    assert table.exit_code == 3 and "not scored" in table.output and "tiny" in table.output


def test_no_reference_scoring_takes_files_sharing_a_stem(folders):
    pred, _ = folders
    save_photo(pred / "0.jpg", dark_photo(200, 240, seed=7, exposure=1.0))
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--metrics", "niqe", "--json"]))
    assert sorted(img["name"] for img in report["images"]) == ["0.jpg", "0.png", "1", "2"]
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(folders[1]), "--metrics", "psnr"])
    assert result.exit_code == 1 and "share the stem" in result.output  # pairing by stem needs them unique


def test_score_test_set_agrees_with_evaluate_and_refuses_a_partial_set(folders):
    from lowlight_cli.errors import MetricError
    from lowlight_cli.evaluation import score_test_set

    pred, ref = folders
    cli = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr,ssim", "--json"]))
    result = score_test_set(pred, ref, None, ("psnr", "ssim"))
    assert result.images == 3 and "gt-mean off" in result.protocol
    for name in ("psnr", "ssim"):
        assert result.means[name] == pytest.approx(cli["summary"][name]["mean"], rel=1e-6)
    by_image = {img["name"]: img for img in cli["images"]}
    assert set(result.per_image) == set(by_image)
    for name, values in result.per_image.items():
        assert values["psnr"] == pytest.approx(by_image[name]["psnr"], rel=1e-6)
    part = score_test_set(pred, ref, None, ("psnr",), names=["0", "2"])  # a few pairs, checked per image
    assert part.images == 2 and set(part.per_image) == {"0", "2"}
    assert part.per_image["2"]["psnr"] == pytest.approx(result.per_image["2"]["psnr"], rel=1e-12)
    with pytest.raises(MetricError, match="no pair named '7'"):
        score_test_set(pred, ref, None, ("psnr",), names=["0", "7"])
    (pred / "1.png").write_bytes(b"not an image")  # a card's scores cover the whole set or nothing
    with pytest.raises(MetricError, match="1 test image"):
        score_test_set(pred, ref, None, ("psnr", "ssim"))


def test_a_missing_data_folder_is_named(tmp_path):
    result = runner.invoke(app, ["evaluate", "--model", "gamma", "--data", str(tmp_path / "nowhere")])
    # exit 1, as a missing --pred folder, enhance's missing input and train's missing --data give
    assert result.exit_code == 1 and "no such folder" in result.output and "need references" not in result.output


def test_model_mode_without_references_stops_before_loading_a_model(tmp_path, monkeypatch):
    save_photo(tmp_path / "low" / "a.png", dark_photo(64, 64, seed=1))
    import lowlight_cli.cli.evaluate as evaluate_cli

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the missing references were reported")

    monkeypatch.setattr(evaluate_cli, "load_model", no_model)
    monkeypatch.setattr(evaluate_cli, "model_for_weights", no_model)  # --weights: a hub checkpoint would be fetched
    for chosen in (["--model", "gamma"], ["--weights", "hf-hub:someone/weights"]):
        result = runner.invoke(app, ["evaluate", *chosen, "--data", str(tmp_path), "--metrics", "psnr"])
        assert result.exit_code == 2, result.output
        assert "psnr needs references" in result.output and "has no high/ folder" in result.output
        assert "enhancing" not in result.output


def test_model_mode_takes_the_architecture_from_weights_and_points_at_the_split(tmp_path):
    from lowlight_cli.models import create_model, save_checkpoint

    net = create_model("dce-tiny", pretrained=False)
    weights = save_checkpoint(net, tmp_path / "ckpt", architecture="dce-tiny", kwargs=net.config)
    root = tmp_path / "LOL"
    for side in ("low", "high"):
        save_photo(root / "test" / side / "1.png", dark_photo(48, 64, exposure=0.2 if side == "low" else 1.0, seed=1))
    at_root = runner.invoke(app, ["evaluate", "--weights", str(weights), "--data", str(root), "--metrics", "psnr"])
    assert at_root.exit_code == 2 and "dataset's splits" in at_root.output and str(root / "test") in at_root.output
    scored = runner.invoke(app, ["evaluate", "--weights", str(weights), "--data", str(root / "test"), "--metrics", "psnr", "--json"])
    assert scored.exit_code == 0, scored.output  # no --model: the checkpoint names dce-tiny, as enhance reads it
    assert json.loads(scored.stdout[scored.stdout.index("{"):])["model"] == "dce-tiny"


def test_weights_of_another_family_name_the_model_they_hold(tmp_path):
    from lowlight_cli.models import create_model, save_checkpoint

    net = create_model("crnet-tiny", pretrained=False)
    weights = save_checkpoint(net, tmp_path / "ckpt", architecture="crnet-tiny", kwargs=net.config)
    result = runner.invoke(app, ["export", "--model", "dce-tiny", "--weights", str(weights), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "not a dce model" in result.output and "--model crnet-tiny" in result.output


def test_a_damaged_jpeg_is_scored_with_a_warning_naming_the_decoders_message(folders, capfd):
    import cv2

    pred, ref = folders
    image = cv2.imread(str(pred / "1.png"))
    (pred / "1.png").unlink()
    data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
    at = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) // 2
    data[at : at + 40] = bytes([0, 0xFF] * 20)  # libjpeg decodes the rest and warns
    (pred / "1.jpg").write_bytes(bytes(data))
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # however the console wrapped it
    assert "warning:" in text and "its decoder warned: Corrupt JPEG data" in text
    assert str(pred / "1.jpg") in result.output.replace("\n", "")
    assert "Corrupt JPEG" not in capfd.readouterr().err  # libjpeg's own line is not printed
    table = pred.parent / "scores.csv"  # the reports carry the warning too, not only the terminal
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--json",
                                       "--csv", str(table)]))
    warned = {img["name"]: img.get("warnings", []) for img in report["images"]}
    assert any("Corrupt JPEG" in w for w in warned["1"]) and warned["0"] == []
    rows = {r["name"]: r for r in csv.DictReader(table.read_text().splitlines()[1:])}
    assert "Corrupt JPEG" in rows["1"]["warnings"] and rows["0"]["warnings"] == "" and rows["1"]["error"] == ""


def test_csv_is_checked_before_scoring_and_written_through_a_link(folders, tmp_path):
    pred, ref = folders
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr"]
    (tmp_path / "a-file").write_text("")
    under_file = runner.invoke(app, [*base, "--csv", str(tmp_path / "a-file" / "sub" / "s.csv")])
    assert under_file.exit_code == 2 and "is a file, not a folder" in under_file.output and "psnr" not in under_file.stdout
    made = runner.invoke(app, [*base, "--csv", str(tmp_path / "new" / "run1" / "s.csv")])  # folders made, like -o
    assert made.exit_code == 0 and (tmp_path / "new" / "run1" / "s.csv").read_text().count("\n") >= 3, made.output
    onto_input = runner.invoke(app, [*base, "--csv", str(pred / "1.png")])
    assert onto_input.exit_code == 2 and "image file's extension" in onto_input.output
    (tmp_path / "alias.csv").symlink_to(pred / "1.png")  # another spelling of an image being scored
    onto_alias = runner.invoke(app, [*base, "--csv", str(tmp_path / "alias.csv")])
    assert onto_alias.exit_code == 2 and "is not a lowlight report" in onto_alias.output
    assert (pred / "1.png").read_bytes()[:4] == b"\x89PNG"  # untouched
    (tmp_path / "target.csv").write_text("# lowlight 0.1; an earlier run's report")
    (tmp_path / "link.csv").symlink_to("target.csv")
    linked = runner.invoke(app, [*base, "--csv", str(tmp_path / "link.csv")])
    assert linked.exit_code == 0, linked.output
    assert (tmp_path / "link.csv").is_symlink() and "protocol:" in (tmp_path / "target.csv").read_text()
    fifo = tmp_path / "pipe.csv"  # a special file (a pipe) is written as it is, not replaced
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open first: the writer neither blocks nor waits
    try:
        piped = runner.invoke(app, [*base, "--csv", str(fifo)])
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert piped.exit_code == 0, piped.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and "protocol:" in received


def test_csv_to_dev_stdout_redirected_to_a_file_writes_through_the_redirect(folders, tmp_path):
    pred, ref = folders
    target = tmp_path / "out.txt"
    target.write_text("kept line\n")
    with open(target, "a") as stdout:  # lowlight evaluate ... --csv /dev/stdout >> out.txt
        done = subprocess.run([sys.executable, "-m", "lowlight_cli", "evaluate", "--pred", str(pred), "--ref", str(ref),
                               "--metrics", "psnr", "--csv", "/dev/stdout"], stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    assert text.startswith("kept line\n") and "# lowlight" in text and "psnr" in text  # the file was not replaced


def test_a_csv_that_cannot_be_written_still_prints_the_scores(folders, tmp_path, monkeypatch):
    from lowlight_cli.cli import report_file  # where --csv files are written

    def full_disk(path, data):
        raise OSError(28, "No space left on device", str(path.parent / f".{path.name}.x.tmp"))

    monkeypatch.setattr(report_file, "atomic_write_bytes", full_disk)
    pred, ref = folders
    target = tmp_path / "s.csv"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--json", "--csv", str(target)])
    assert result.exit_code == 1
    report = json.loads(result.stdout[result.stdout.index("{") :])  # one JSON object: the scores
    assert report["summary"]["psnr"]["count"] == 3 and "No space left" in report["csv_error"]
    text = " ".join(result.output.split())
    assert f"error: could not write --csv {target}: No space left on device" in text and ".tmp" not in text


def test_a_crop_that_leaves_nothing_and_all_nan_scores_are_errors(folders, tmp_path):
    pred, ref = folders
    cropped = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--crop-border", "100"])
    text = " ".join(cropped.output.split())
    assert cropped.exit_code == 1 and "--crop-border 100 leaves nothing of a 240x200 image" in text and "error: none of" in text
    flat = tmp_path / "flat"
    save_photo(flat / "black.png", np.zeros((200, 200, 3)))
    save_photo(flat / "grey.png", np.full((200, 200, 3), 0.5))
    result = runner.invoke(app, ["evaluate", "--pred", str(flat), "--metrics", "niqe"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "no image has a niqe score" in text
    assert "niqe: niqe:" not in text
    save_photo(flat / "photo.png", dark_photo(200, 240, seed=3, exposure=1.0))
    partial = runner.invoke(app, ["evaluate", "--pred", str(flat), "--metrics", "niqe"])
    assert partial.exit_code == 3 and "2 without niqe" in " ".join(partial.output.split())


def test_enhancing_options_are_refused_when_scoring_files_as_they_are(folders):
    pred, ref = folders
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr"]
    for extra in (["--device", "cpu"], ["--precision", "fp32"], ["--tile", "256"], ["--curve-scale", "2"],
                  ["--no-pretrained"], ["--data", str(pred)], ["--batch-size", "2"]):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and f"{extra[0]} applies when evaluate enhances" in result.output, extra


def test_metric_names_in_one_quoted_argument_and_spaces_in_any_case(folders):
    pred, ref = folders
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr ssim", "--ssim-space", "Y", "--json"])
    report = _json(result)
    assert set(report["summary"]) == {"psnr", "ssim"} and report["protocol"]["ssim_space"] == "y"
    twice = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "psnr"])
    assert twice.exit_code == 2 and "hint:" in twice.output


def test_the_same_pixels_score_alike_in_8_and_16_bit_files(folders, tmp_path):
    import cv2

    pred, ref = folders
    wide = tmp_path / "wide"
    wide.mkdir()
    for path in sorted(ref.iterdir()):  # exact 16-bit copies: every value times 257
        cv2.imwrite(str(wide / path.name), cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 257)
    same = _json(runner.invoke(app, ["evaluate", "--pred", str(ref), "--ref", str(wide), "--metrics", "psnr", "ssim", "--json"]))
    assert same["summary"]["psnr"]["mean"] == "inf" and same["summary"]["psnr"]["infinite"] == 3  # was 154 dB
    assert same["summary"]["ssim"]["mean"] == 1.0
    niqe = [_json(runner.invoke(app, ["evaluate", "--pred", str(folder), "--metrics", "niqe", "--json"]))["summary"]["niqe"]["mean"]
            for folder in (ref, wide)]
    assert niqe[0] == niqe[1]


def test_gt_mean_scales_for_the_full_reference_metrics_only(folders):
    pred, ref = folders
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "niqe", "--json"]
    plain, scaled = _json(runner.invoke(app, base)), _json(runner.invoke(app, [*base, "--gt-mean"]))
    assert scaled["summary"]["psnr"]["mean"] > plain["summary"]["psnr"]["mean"]
    assert scaled["summary"]["niqe"]["mean"] == plain["summary"]["niqe"]["mean"]  # NIQE sees the prediction as it is


def test_csv_destinations_that_would_lose_or_mix_output_are_refused(folders, tmp_path, monkeypatch):
    pred, ref = folders
    monkeypatch.chdir(tmp_path)
    base = ["evaluate", "--pred", str(pred), "--ref", str(ref)]
    dash = runner.invoke(app, [*base, "--csv", "-"])
    assert dash.exit_code == 2 and "file named '-'" in dash.output and not (tmp_path / "-").exists()
    image = runner.invoke(app, [*base, "--csv", str(pred / "new.png")])
    assert image.exit_code == 2 and "image file's extension" in image.output and not (pred / "new.png").exists()
    done = subprocess.run([sys.executable, "-m", "lowlight_cli", *base, "--csv", "/dev/stdout", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "mixed" in done.stderr + done.stdout
    json.loads(done.stdout)  # what stdout holds is one JSON document (the error), no CSV in it
    # a file that is not a report is kept; an earlier run's report (and an empty file) is replaced
    notes = tmp_path / "notes.txt"
    notes.write_text("important\n")
    kept = runner.invoke(app, [*base, "--csv", str(notes)])
    assert kept.exit_code == 2 and "is not a lowlight report" in kept.output and notes.read_text() == "important\n"
    report = tmp_path / "scores.csv"
    for _ in range(2):
        again = runner.invoke(app, [*base, "--csv", str(report)])
        assert again.exit_code == 0, again.output
    (tmp_path / "empty.csv").touch()
    assert runner.invoke(app, [*base, "--csv", str(tmp_path / "empty.csv")]).exit_code == 0
    compared = runner.invoke(app, ["compare", "gamma", "--data", str(pred.parent), "--csv", str(notes)])
    assert compared.exit_code == 2 and "is not a lowlight report" in compared.output


def test_a_folder_given_without_pred_is_not_taken_for_a_metric(folders):
    pred, ref = folders
    result = runner.invoke(app, ["evaluate", str(pred), "--ref", str(ref)])
    assert result.exit_code == 2 and "not a metric name" in result.output and "--pred DIR" in result.output


def test_csv_says_how_model_predictions_were_made(folders, tmp_path):
    pred, ref = folders
    target = tmp_path / "scores.csv"
    result = runner.invoke(app, ["evaluate", "--model", "crnet-curve", "--no-pretrained", "--data", str(pred), "--ref", str(ref),
                                 "--metrics", "psnr", "--device", "cpu", "--tile", "0", "--csv", str(target), "--json"])
    report = _json(result)
    lines = target.read_text().splitlines()
    assert lines[0].startswith("# lowlight") and lines[1].startswith("# predictions: crnet-curve (")
    assert "whole images" in lines[1] and "curve scale 1" in lines[1] and "colour model" in lines[1] and "fp32" in lines[1]
    assert report["inference"]["curve_scale"] == 1  # the scale it ran at, not null
    assert [r["name"] for r in csv.DictReader(lines[2:])] == ["0", "1", "2"]


@pytest.mark.parametrize("metrics, option", [
    (["psnr"], ["--ssim-space", "y"]), (["psnr"], ["--niqe-space", "gray"]), (["psnr"], ["--lpips-net", "vgg"]),
    (["ssim"], ["--lpips-weights", "/nowhere"]), (["niqe"], ["--ref", "REF"]),
])
def test_an_option_of_a_metric_not_asked_for_is_refused_not_ignored(folders, metrics, option):
    pred, ref = folders
    option = [str(ref) if part == "REF" else part for part in option]
    base = ["evaluate", "--pred", str(pred), "--metrics", *metrics]
    if option[0] != "--ref":
        base += ["--ref", str(ref)]
    result = runner.invoke(app, [*base, *option])
    assert result.exit_code == 2 and f"{option[0]} applies to" in result.output, result.output


def test_a_size_a_metric_refuses_after_cropping_says_it_was_cropped(folders):
    pred, _ = folders  # 240x200 photos: 60 px off each side leave 120x80, under NIQE's 96x96
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--metrics", "niqe", "--crop-border", "60", "--json"]), 1)
    errors = [img["error"] for img in report["images"]]
    assert len(errors) == 3 and all("120x80" in e and e.endswith("(after --crop-border 60)") for e in errors)


def test_a_transparent_prediction_is_scored_with_a_warning(folders):
    import cv2

    pred, ref = folders
    bgr = cv2.imread(str(pred / "0.png"))
    alpha = np.full(bgr.shape[:2], 255, np.uint8)
    alpha[:50] = 0
    cv2.imwrite(str(pred / "0.png"), np.dstack([bgr, alpha]))
    report = _json(runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--json"]))
    warned = {img["name"]: img.get("warnings", []) for img in report["images"]}
    assert any("transparent" in w and "alpha ignored" in w for w in warned["0"]) and warned["1"] == []


def test_a_16_bit_prediction_is_scored_from_its_exact_values(tmp_path):
    """NIQE rounds each pixel's luma: in float32, k / 65535 can land a rounding step away, and these
    colours' luma then rounds the other way (found by a search over random 16-bit colours)."""
    import cv2

    from lowlight_cli.io import read_image
    from lowlight_cli.metrics import niqe

    rng = np.random.default_rng(0)
    image = (rng.random((192, 192, 3)) * 30000 + np.linspace(0, 30000, 192)[:, None, None]).astype(np.uint16)
    flips = np.array([[40042, 60977, 18057], [43116, 39278, 61351], [13969, 36704, 46053], [63060, 41565, 57640]], np.uint16)
    image[:40, :40] = np.tile(flips, (400, 1)).reshape(40, 40, 3)
    (tmp_path / "pred").mkdir()
    cv2.imwrite(str(tmp_path / "pred" / "a.png"), image[..., ::-1])
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--metrics", "niqe", "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)["images"][0]["niqe"]
    assert scored == pytest.approx(niqe(read_image(tmp_path / "pred" / "a.png").rgb), abs=1e-9)


def test_an_empty_folder_says_where_images_are_looked_for_and_a_black_prediction_under_gt_mean_is_said(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sub").mkdir()
    save_photo(tmp_path / "empty" / "sub" / "1.png", dark_photo(32, 32))
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "empty"), "--metrics", "niqe"])
    assert result.exit_code == 1 and "hint:" in result.output and "-r" in result.output, result.output
    for folder in ("pred", "ref"):
        (tmp_path / folder).mkdir()
    save_photo(tmp_path / "pred" / "1.png", np.zeros((32, 32, 3), np.uint8))
    save_photo(tmp_path / "ref" / "1.png", dark_photo(32, 32))
    scored = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                 "--metrics", "psnr", "--gt-mean", "--json"])
    assert scored.exit_code == 0, scored.output
    assert any("cannot be scaled" in w for w in json.loads(scored.stdout)["images"][0]["warnings"])
    cropped = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                  "--metrics", "psnr", "--gt-mean", "--crop-border", "4", "--json"])
    assert any("cannot be scaled" in w for w in json.loads(cropped.stdout)["images"][0]["warnings"]), cropped.output


def test_sub_folders_left_out_are_said_not_skipped_silently(folders, tmp_path):
    pred, ref = folders
    save_photo(pred / "more" / "x.png", dark_photo(200, 240, seed=5, exposure=1.0))
    save_photo(ref / "more" / "x.png", dark_photo(200, 240, seed=5, exposure=1.0))
    flat = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "--json"])
    said = " ".join(flat.output.split())
    assert "2 sub-folder(s) not searched, their images not scored" in said and "(-r searches them)" in said
    assert len(_json(flat)["images"]) == 3
    deep = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", "psnr", "-r", "--json"])
    assert "not searched" not in deep.output and len(_json(deep)["images"]) == 4
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "low").symlink_to(pred)
    (tmp_path / "set" / "high").symlink_to(ref)
    compared = runner.invoke(app, ["compare", "gamma", "--data", str(tmp_path / "set"), "--metrics", "psnr"])
    said = " ".join(compared.output.split())
    assert compared.exit_code == 0 and "2 sub-folder(s) not searched" in said and "-r searches" not in said


def test_data_without_a_model_and_an_empty_metric_name_get_messages_that_fit(folders):
    pred, ref = folders
    alone = runner.invoke(app, ["evaluate", "--data", str(pred.parent)])
    said = " ".join(alone.output.split())
    assert alone.exit_code == 2 and "add --model NAME" in said and "score --pred as it is" not in said
    empty = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--metrics", ""])
    assert empty.exit_code == 2 and "no metrics given" in empty.output and "is not a metric name" not in empty.output


def test_a_gray_file_is_scored_on_its_own_channel_as_matlab_does(tmp_path):
    """MATLAB's NIQE and SSIM (and BasicSR) take a one-channel image as it is; converting its three
    equal channels to BT.601 Y made every value v into 16 + 219 v / 255 and moved NIQE by 0.1."""
    import cv2
    from skimage import data

    from lowlight_cli.metrics import create_metric
    from lowlight_cli.metrics.niqe import niqe

    camera = data.camera()  # a gray photo, 512x512
    blurred = cv2.GaussianBlur(camera, (5, 5), 1.0)
    for folder, image in (("pred", camera), ("ref", blurred)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.png"), image)  # one channel in the file
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                                 "--metrics", "niqe", "ssim", "psnr", "--ssim-space", "y", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["images"][0]
    assert scores["niqe"] == pytest.approx(niqe(camera.astype(np.float64), data_range=255), abs=1e-9)
    as_rgb = niqe(np.repeat(camera[..., None], 3, axis=2).astype(np.float64), data_range=255)  # what it was
    assert abs(scores["niqe"] - as_rgb) > 0.01
    one = lambda a: torch.from_numpy(a.astype(np.float64) / 255)[None, None]  # noqa: E731
    assert scores["ssim"] == pytest.approx(float(create_metric("ssim", space="y")(one(camera), one(blurred))[0]), abs=1e-12)
    rgb = Scorer(Protocol(("ssim",), ssim_space="y")).score("x", *(np.repeat(a[..., None], 3, axis=2) / 255.0 for a in (camera, blurred)))
    assert abs(rgb.values["ssim"] - scores["ssim"]) > 1e-4  # an RGB file of the same gray content is converted
    with pytest.raises(Exception, match="three channels differ"):
        Scorer(Protocol(("niqe",))).score("x", np.random.default_rng(0).random((8, 8, 3)), None, one_channel=(True, False))
