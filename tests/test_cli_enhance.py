"""`lowlight enhance` end to end through Typer's CliRunner: files, folders, failures, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lowlight_cli import __version__
from lowlight_cli.cli.app import app
from lowlight_cli.io import read_image

from .photos import dark_photo, save_photo

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("no_hub")


@pytest.fixture()
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    save_photo(folder / "a.png", dark_photo(60, 80, seed=1))
    save_photo(folder / "b.jpg", dark_photo(50, 70, name="coffee", seed=2))
    save_photo(folder / "deep" / "c.png", dark_photo(40, 40, name="chelsea", seed=3), bit_depth=16)
    return folder


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "enhance" in result.output and "models" in result.output
    result = runner.invoke(app, ["enhance", "--help"])
    assert result.exit_code == 0 and "lowlight enhance examples/" in result.output


def test_enhance_folder_writes_brighter_images(photos, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]  # not recursive: deep/ ignored ...
    assert "ignored 1 folder(s): sub-folder (--recursive enters it): 1" in result.output  # ... and said
    before = read_image(photos / "a.png").rgb.mean()
    after = read_image(out / "a.png").rgb.mean()
    assert after > before * 1.5


def test_recursive_mirrors_tree_and_keeps_16_bit(photos, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "-r", "-o", str(out), "--suffix", "_x"])
    assert result.exit_code == 0, result.output
    deep = read_image(out / "deep" / "c_x.png")
    assert deep.bit_depth == 16
    assert (out / "a_x.png").exists() and (out / "b_x.jpg").exists()


def test_corrupt_file_does_not_stop_the_batch(photos, tmp_path):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(out)])
    assert result.exit_code == 3, result.output
    assert "broken.png" in result.output
    assert (out / "a.png").exists() and (out / "b.jpg").exists()
    assert not (out / "broken.png").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_photo_over_the_pixel_limit_is_told_the_flag_to_raise(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "gamma",
                                 "--max-pixels", "1000"])
    assert result.exit_code == 1, result.output  # the only file failed
    assert "hint: raise --max-pixels if you trust this file" in result.output
    assert "max_pixels)" not in result.output  # the library's wording names its argument
    as_json = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "gamma",
                                  "--max-pixels", "1000", "--json"])
    assert json.loads(as_json.stdout)["files"][0]["hint"].startswith("raise --max-pixels")  # --json says it too


def test_existing_outputs_are_refused_then_skipped_or_overwritten(photos, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(out)]).exit_code == 0
    stamp = (out / "a.png").stat().st_mtime_ns
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(out)])
    assert result.exit_code == 2 and "a.png" in result.output and "--overwrite" in result.output
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(out), "--skip-existing", "--json"])
    assert result.exit_code == 0
    assert (out / "a.png").stat().st_mtime_ns == stamp
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0
    assert (out / "a.png").stat().st_mtime_ns != stamp


def test_dry_run_writes_nothing(photos, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(out), "--dry-run"])
    assert result.exit_code == 0 and "a.png" in result.output
    assert not out.exists()


def test_dry_run_checks_what_a_run_checks_and_speaks_json(photos, tmp_path):
    out = tmp_path / "out"
    for bad in (["--model", "no-such-model"], ["--weights", str(tmp_path / "missing")], ["--device", "cuda:7"],
                ["--model", "crnet-s", "--curve-scale", "2"]):
        result = runner.invoke(app, ["enhance", str(photos), "-o", str(out), "--dry-run", *bad])
        assert result.exit_code in (1, 2) and "error:" in result.output, (bad, result.output)  # as the real run says it
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(blocker / "sub"), "--dry-run", "--model", "gamma"])
    assert result.exit_code != 0 and "a-file" in result.output
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(out), "--dry-run", "--json", "--model", "gamma"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)  # stdout is the JSON object and nothing else
    assert plan["dry_run"] is True and plan["to_write"] == 2 and plan["model"] == "gamma"
    assert {Path(j["output"]).name for j in plan["jobs"]} == {"a.png", "b.jpg"}
    assert not out.exists()


def test_outputs_written_among_the_inputs_are_not_enhanced_again(tmp_path):
    folder = tmp_path / "same"
    save_photo(folder / "a.png", dark_photo(30, 40, seed=1))
    save_photo(folder / "sub" / "b.png", dark_photo(30, 40, seed=2))
    command = ["enhance", str(folder), "-r", "-o", str(folder), "--suffix", "_bright", "-m", "gamma"]
    assert runner.invoke(app, command).exit_code == 0
    for _ in range(2):  # reruns: the last run's outputs are recognised, never made into _bright_bright
        result = runner.invoke(app, [*command, "--skip-existing", "--verbose"])
        assert result.exit_code == 0, result.output
        assert "an earlier run's output (written for a.png)" in result.stderr
        assert "ignored 2 file(s): an earlier run's output: 2" in result.stderr  # counted by reason, once
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    assert names == ["a.png", "a_bright.png", "sub/b.png", "sub/b_bright.png"]
    other = tmp_path / "conv"  # --ext: a.jpg -> a.png beside it
    save_photo(other / "a.jpg", dark_photo(30, 40, seed=3))
    convert = ["enhance", str(other), "-o", str(other), "--ext", "png", "-m", "gamma"]
    assert runner.invoke(app, convert).exit_code == 0
    # a rerun cannot tell its a.png from an original a.png (a camera's pair): it never writes over one
    original = other / "x.png"
    save_photo(original, dark_photo(30, 40, seed=4))
    save_photo(other / "x.jpg", dark_photo(30, 40, seed=5))
    kept = original.read_bytes()
    for flags in ([], ["--overwrite"], ["--skip-existing"]):
        again = runner.invoke(app, [*convert, *flags])
        said = " ".join(again.output.split())
        assert again.exit_code == 2 and "which is an input of this run" in said and "--suffix" in said, again.output
    assert original.read_bytes() == kept


def test_a_suffix_cannot_lead_outside_the_output_folder(photos, tmp_path):
    for suffix in ("/../../escaped", "/evil", "a\\b"):
        result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--suffix", suffix, "-m", "gamma"])
        assert result.exit_code == 2 and "may not hold a path" in result.output, result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped.png").exists()


def test_an_output_name_in_a_format_not_written_is_refused_not_made_a_folder(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "res.gif"), "-m", "gamma"])
    assert result.exit_code == 2 and "does not write .gif" in result.output, result.output
    assert not (tmp_path / "res.gif").exists()


def test_two_inputs_for_one_output_are_refused_with_a_hint_that_helps(tmp_path):
    for folder in ("one", "two"):
        save_photo(tmp_path / folder / "x.png", dark_photo(30, 40, seed=len(folder)))
    result = runner.invoke(app, ["enhance", str(tmp_path / "one"), str(tmp_path / "two"), "-o", str(tmp_path / "out"), "-m", "gamma"])
    assert result.exit_code == 2 and "would both be written" in result.output and "own output folder" in result.output
    save_photo(tmp_path / "one" / "x.jpg", dark_photo(30, 40, seed=9))
    result = runner.invoke(app, ["enhance", str(tmp_path / "one"), "-o", str(tmp_path / "out"), "--ext", "png", "-m", "gamma"])
    assert result.exit_code == 2 and "--suffix" in result.output  # x.jpg and x.png -> x.png: a suffix or --ext auto helps


def test_json_summary_on_stdout(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["written"] == 1 and summary["failed"] == 0 and summary["model"] == "crnet-curve-dn"
    assert summary["files"][0]["status"] == "written" and summary["files"][0]["curve_scale"] == 1
    plain = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "g"), "--json", "-m", "gamma"])
    assert json.loads(plain.stdout)["files"][0]["curve_scale"] is None  # a model without curves has no curve scale
    assert summary["files"][0]["tile"] == 0  # smaller than the tile: it ran whole, and says so
    tiled = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "t"), "--json", "-m", "gamma",
                                "--tile", "64", "--overlap", "8"])  # 80 px wide: two tiles
    assert json.loads(tiled.stdout)["files"][0]["tile"] == 64


def test_weights_alone_run_the_architecture_their_checkpoint_names(photos, tmp_path):
    from lowlight_cli.models import create_model, save_checkpoint

    net = create_model("dce-tiny", pretrained=False)
    folder = save_checkpoint(net, tmp_path / "ckpt", architecture="dce-tiny", kwargs=net.config)
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--weights", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["model"] == "dce-tiny" and summary["written"] == 1
    # an explicit --model still wins, and a mismatch is still refused with the families named
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o2"), "--weights", str(folder),
                                 "--model", "crnet-curve-dn"])
    assert result.exit_code == 1 and "not a crnet model" in result.output
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o3"), "--weights", str(tmp_path / "none")])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output


def test_weights_alone_are_looked_up_once_and_loaded_from_the_folder_found():
    from lowlight_cli.cli.loading import model_for_weights
    from lowlight_cli.hub import bundled_weights_dir

    bundled = bundled_weights_dir()
    if bundled is None or not (bundled / "pie-lol").is_dir():
        pytest.skip("the bundled weights/ folder is not installed with this copy")
    # a bundled name is resolved to its folder here, and that folder is what the model is loaded from
    assert model_for_weights(None, "pie-lol", "crnet-curve-dn") == ("pie", str(bundled / "pie-lol"))
    assert model_for_weights("crnet", "pie-lol", "crnet-curve-dn") == ("crnet", "pie-lol")  # --model given: untouched
    assert model_for_weights(None, None, "crnet-curve-dn") == ("crnet-curve-dn", None)


def test_model_without_weights_exits_with_a_clear_message(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--model", "crnet-tiny"])
    assert result.exit_code == 1
    assert "no trained weights" in result.output and "--weights" in result.output
    assert "Traceback" not in result.output


def test_no_pretrained_warns_and_runs(photos, tmp_path):
    result = runner.invoke(
        app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o"), "-m", "crnet-tiny", "--no-pretrained", "--tile", "64", "--overlap", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "means nothing" in result.output


def test_unknown_model_is_a_usage_error(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "o"), "--model", "crnte"])
    assert result.exit_code == 2 and "did you mean" in result.output


def test_debug_env_shows_the_exception(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("LOWLIGHT_DEBUG", "1")
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "o"), "--model", "crnte"])
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "UnknownNameError"


def test_ext_jpg_on_16_bit_says_so(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "deep" / "c.png"), "-o", str(tmp_path / "o"), "--ext", "jpg"])
    assert result.exit_code == 0, result.output
    assert "8" in result.output and "bit" in result.output
    assert read_image(tmp_path / "o" / "c.jpg").bit_depth == 8


def test_missing_input_is_reported(tmp_path):
    result = runner.invoke(app, ["enhance", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert result.exit_code in (1, 2) and "nope" in result.output


def test_interrupt_leaves_no_partial_files(photos, tmp_path, monkeypatch):
    import lowlight_cli.cli.enhance as cli_enhance

    real = cli_enhance.enhance_file
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_enhance, "enhance_file", flaky)
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(out)])
    assert result.exit_code == 130
    assert [p.name for p in out.iterdir()] == ["a.png"]


def test_models_lists_sizes_weights_and_scores():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["crnet"]["parameters"] == 921_968 and rows["crnet"]["macs_per_pixel"] > 1_600_000
    assert rows["gamma"]["needs_weights"] is False and "crnet-tiny" not in rows
    # the repository bundles weights; a bundled checkpoint carries its LOL test scores
    assert rows["crnet-s"]["bundled_weights"] == "crnet-s-lol" and rows["crnet-s"]["lol_test_psnr"] > 0
    assert "crnet-s-lol-semi10" in rows["crnet-s"]["also_bundled"]
    # `crnet` points at the best trained weights of its family, which the row says
    assert rows["crnet"]["bundled_architecture"] == "crnet-curve-dn"
    # ONNX is what the flag is about, and a model that cannot go there says why
    assert rows["crnet-s"]["onnx_exportable"] is True and rows["crnet-s"]["onnx_note"] is None
    assert rows["clahe"]["onnx_exportable"] is False and "OpenCV" in rows["clahe"]["onnx_note"]


def test_models_lists_the_registered_cost_and_counts_only_where_none_is(monkeypatch):
    """The listing takes ``ModelInfo.listed_macs`` (checked against a count in test_models) and
    counts a model registered without it."""
    import dataclasses

    from lowlight_cli.cli import models as cli_models
    from lowlight_cli.models import MODELS
    from lowlight_cli.models.complexity import Complexity

    counted = []

    def count(model, size=256):
        counted.append(model.info.name)
        return Complexity(parameters=0, macs=7 * size * size, size=size)

    monkeypatch.setattr(cli_models, "measure_complexity", count)
    cli_models.listed_complexity.cache_clear()
    try:
        assert cli_models.listed_complexity("crnet").macs_per_pixel == 1_694_752 and counted == []
        entry, get = MODELS.get("crnet-s"), MODELS.get
        unlisted = dataclasses.replace(entry, info=dataclasses.replace(entry.info, listed_macs=None))
        monkeypatch.setattr(MODELS, "get", lambda name: unlisted if name == "crnet-s" else get(name))
        assert cli_models.listed_complexity("crnet-s").macs_per_pixel == 7 and counted == ["crnet-s"]
    finally:
        cli_models.listed_complexity.cache_clear()


def test_a_rerun_never_takes_the_last_runs_outputs_inside_the_input_tree(photos):
    out = photos / "out"
    assert runner.invoke(app, ["enhance", str(photos), "-r", "-o", str(out), "--model", "gamma"]).exit_code == 0
    written = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    result = runner.invoke(app, ["enhance", str(photos), "-r", "-o", str(out), "--model", "gamma", "--skip-existing", "-v"])
    assert result.exit_code == 0, result.output
    assert "0 written, 3 skipped" in result.output
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == written  # no out/out/...


def test_a_multi_frame_file_says_only_its_first_frame_was_enhanced(tmp_path):
    from PIL import Image

    frames = [Image.fromarray((dark_photo(40, 48, seed=s) * 255).astype("uint8")) for s in range(3)]
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    result = runner.invoke(app, ["enhance", str(tmp_path / "pages.tif"), "-o", str(tmp_path / "out"), "--model", "gamma", "--json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout[result.stdout.index("{"):])["files"][0]["notes"]
    assert any("first of its 3 frames" in note for note in notes)


@pytest.mark.parametrize("tile,overlap,code", [("64", None, 0), ("65", "32", 0), ("64", "32", 2)])
def test_the_smallest_tiles_work_with_the_default_overlap(photos, tmp_path, tile, overlap, code):
    args = ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "gamma", "--tile", tile]
    result = runner.invoke(app, args + (["--overlap", overlap] if overlap else []))
    assert result.exit_code == code, result.output
    if code:
        assert "hint: use --overlap 31 or less" in result.output


def test_a_folder_where_an_output_file_would_go_is_refused_not_skipped(photos, tmp_path):
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    for extra in ([], ["--skip-existing"], ["--overwrite"]):
        result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "-m", "gamma", *extra])
        assert result.exit_code == 2 and "is a folder where an output file would go" in result.output, result.output


def test_an_overlap_too_large_for_the_default_tiles_is_refused(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "crnet-curve-dn",
                                 "--overlap", "5000"])
    assert result.exit_code == 2 and "default tiles" in result.output, result.output


def test_model_names_are_matched_whatever_their_case_in_suggestions(photos, tmp_path):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "CRNet"])
    assert result.exit_code == 2 and "did you mean crnet?" in result.output


def test_a_cmyk_file_says_its_colours_were_converted(tmp_path):
    from PIL import Image

    rgb = (dark_photo(40, 48, seed=4) * 255).astype("uint8")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "print.jpg")
    result = runner.invoke(app, ["enhance", str(tmp_path / "print.jpg"), "-o", str(tmp_path / "out"), "--model", "gamma", "--json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout[result.stdout.index("{"):])["files"][0]["notes"]
    assert any("CMYK colours were converted to RGB" in note for note in notes)
    assert read_image(tmp_path / "out" / "print.jpg").converted_from is None  # written as RGB


def test_output_may_name_the_file_of_a_single_input(photos, tmp_path):
    target = tmp_path / "result.jpg"
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(target), "--model", "gamma"])
    assert result.exit_code == 0, result.output
    assert target.is_file() and read_image(target).source_format == "jpeg"  # the name's extension sets the format
    again = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(target), "--model", "gamma"])
    assert again.exit_code == 2 and "exist" in again.output  # an existing file is not replaced unasked
    several = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "both.png"), "--model", "gamma"])
    assert several.exit_code == 2 and "names one file, but 2 images" in several.output
    assert not (tmp_path / "both.png").exists()
    clash = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "c.png"), "--ext", "jpg"])
    assert clash.exit_code == 2 and "disagrees" in clash.output
    folder = tmp_path / "looks.png"  # an existing folder stays a folder, whatever its name
    folder.mkdir()
    inside = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(folder), "--model", "gamma"])
    assert inside.exit_code == 0 and (folder / "a.png").is_file()


@pytest.mark.parametrize("ext,written", [("jpeg", "a.jpg"), ("JPG", "a.jpg"), ("tiff", "a.tif")])
def test_ext_takes_the_usual_spellings(photos, tmp_path, ext, written):
    result = runner.invoke(app, ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--model", "gamma", "--ext", ext])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / written).is_file()


def test_json_answers_even_when_the_command_fails_before_starting(tmp_path):
    result = runner.invoke(app, ["enhance", str(tmp_path / "missing.png"), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1
    answer = json.loads(result.stdout[result.stdout.index("{"):])
    assert "no such file" in answer["error"] and answer["exit_code"] == 1 and answer["hint"]


def test_colour_hidden_under_full_transparency_does_not_change_the_visible_part(tmp_path):
    import numpy as np

    from lowlight_cli.io import ImageData, write_image

    photo = (dark_photo(96, 128, seed=5) * 255).round().astype(np.uint8)
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # a cut-out: the left part fully transparent
    alpha[:, 40:44] = 128  # an antialiased edge: visible, so it counts
    for name, hidden in (("photo", None), ("white", 255), ("black", 0)):
        rgb = photo.copy()
        if hidden is not None:
            rgb[alpha == 0] = hidden  # what editors leave under transparency
        write_image(tmp_path / "in" / f"{name}.png", ImageData(rgb, alpha=alpha))
    result = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    outputs = {name: read_image(tmp_path / "out" / f"{name}.png") for name in ("photo", "white", "black")}
    reference = outputs["photo"]
    assert np.array_equal(reference.alpha, alpha)
    for name in ("white", "black"):  # the default model reads whole-image statistics: visible pixels only
        assert np.array_equal(outputs[name].rgb, reference.rgb), name
    assert reference.rgb[alpha > 0].mean() > photo[alpha > 0].mean() + 40  # and it brightened


def test_fill_hidden_takes_the_nearest_visible_colour():
    import numpy as np

    from lowlight_cli.inference.transparency import fill_hidden

    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[:, 0] = (10, 20, 30)
    rgb[:, 4] = (200, 100, 50)
    visible = np.zeros((3, 5), bool)
    visible[:, 0] = visible[:, 4] = True
    filled = fill_hidden(rgb, visible)
    assert (filled[:, 1] == (10, 20, 30)).all() and (filled[:, 3] == (200, 100, 50)).all()
    assert np.array_equal(filled[visible], rgb[visible]) and rgb[:, 1].max() == 0  # the input is left as it was
    assert fill_hidden(rgb, np.zeros((3, 5), bool)) is rgb and fill_hidden(rgb, np.ones((3, 5), bool)) is rgb


def test_an_unreadable_input_named_alone_fails_like_any_file_with_its_json(tmp_path):
    """Click's own readability check refused it as a usage error (exit 2, a boxed message, no JSON)."""
    import os
    import shutil
    import subprocess
    import sys

    save_photo(tmp_path / "locked.png", dark_photo(32, 32))
    os.chmod(tmp_path / "locked.png", 0)
    command = [sys.executable, "-m", "lowlight_cli", "enhance", str(tmp_path / "locked.png"), "-o", str(tmp_path / "out"),
               "-m", "gamma", "--json"]
    if os.geteuid() == 0:  # root reads anything: drop its capabilities for the run
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    (entry,) = json.loads(proc.stdout)["files"]
    assert entry["status"] == "failed" and "Permission denied" in entry["error"] and "permissions" in entry["hint"]


def test_quality_for_lossless_outputs_is_noted_not_dropped_silently(tmp_path):
    photo = tmp_path / "in" / "a.png"
    save_photo(photo, dark_photo(30, 40, seed=1))
    result = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "png"), "--quality", "10", "-m", "gamma"])
    assert result.exit_code == 0, result.output
    assert "--quality 10 applies to JPEG and WebP outputs; these are PNG" in " ".join(result.stderr.split())
    for extra in (["--quality", "10", "--ext", "jpg"], []):  # a lossy output takes it; no --quality, no note
        result = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / f"o{len(extra)}"), "-m", "gamma", *extra])
        assert result.exit_code == 0 and "--quality" not in result.stderr, result.output
    small, large = ((tmp_path / "q").joinpath(f"{q}.jpg") for q in ("10", "95"))
    for q, path in (("10", small), ("95", large)):
        assert runner.invoke(app, ["enhance", str(photo), "-o", str(path), "--quality", q, "-m", "gamma"]).exit_code == 0
    assert small.stat().st_size < large.stat().st_size  # and it is used


def test_a_file_and_links_to_it_are_enhanced_once_under_the_files_own_name(tmp_path):
    folder = tmp_path / "in"
    save_photo(folder / "a.png", dark_photo(30, 40, seed=1))
    (folder / "zz.png").symlink_to("a.png")  # listed before a.png by some file systems
    (folder / "b.png").symlink_to("a.png")
    result = runner.invoke(app, ["enhance", str(folder), "-o", str(tmp_path / "out"), "-m", "gamma", "--verbose"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    said = " ".join(result.stderr.split())
    assert "another name of an input: 2" in said and "the same file as" in said and "zz.png" in said


def test_a_file_without_an_extension_is_refused_before_the_work_and_a_full_disk_stops_the_batch(photos, tmp_path, monkeypatch):
    import errno as errno_module

    bare = tmp_path / "bare"
    bare.write_bytes((photos / "a.png").read_bytes())
    result = runner.invoke(app, ["enhance", str(bare), "-o", str(tmp_path / "o"), "-m", "gamma"])
    assert result.exit_code == 2 and "no image extension" in result.output and "--ext png" in result.output
    assert not (tmp_path / "o").exists()
    assert runner.invoke(app, ["enhance", str(bare), "-o", str(tmp_path / "o"), "-m", "gamma", "--ext", "png"]).exit_code == 0
    # ENOSPC on the first write: the batch stops there instead of enhancing every other photo to fail it
    import lowlight_cli.io.write as write_module

    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        raise OSError(errno_module.ENOSPC, "No space left on device")

    monkeypatch.setattr(write_module, "_commit", full)  # fails inside the image's write, as a full disk does
    result = runner.invoke(app, ["enhance", str(photos), "-o", str(tmp_path / "full"), "-m", "gamma"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "the disk is full at image 1 of 2: 0 written" in said and "--skip-existing" in said, result.output
    assert len(calls) == 1


def test_a_fifo_named_directly_is_passed_over_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["enhance", str(fifo), "-o", str(tmp_path / "o"), "-m", "gamma"])
    assert result.exit_code == 2 and "no images found" in result.output, result.output


def test_a_truncated_jpegs_filler_neither_steers_the_photo_nor_is_enhanced(tmp_path):
    """A JPEG cut short decodes with flat gray at its end; that gray is not the photo. Counted in
    the whole-image statistics it told the model the photo was half mid-gray (darker output)."""
    import cv2

    from lowlight_cli.inference import Enhancer, InferenceConfig
    from lowlight_cli.io import from_float
    from lowlight_cli.models import create_model

    dark = from_float(dark_photo(96, 128, name="chelsea", seed=4), 8)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(dark, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    data = encoded.tobytes()
    scan = data.index(b"\xff\xda")  # cut in the middle of the pixel data
    (tmp_path / "cut.jpg").write_bytes(data[: scan + (len(data) - scan) // 2])
    image = read_image(tmp_path / "cut.jpg")
    filler = image.filler
    assert filler is not None and 0.2 < filler.mean() < 0.7
    result = runner.invoke(app, ["enhance", str(tmp_path / "cut.jpg"), "-o", str(tmp_path / "out"), "--ext", "png", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "gray filler" in result.output
    saved = read_image(tmp_path / "out" / "cut.png").rgb
    assert (saved[filler] == 128).all()  # left as the decoder gave it
    enhancer = Enhancer(create_model("crnet-curve-dn"), InferenceConfig(colour="input", blacks="keep", precision="fp32"))
    photo_only = enhancer.enhance_pixels(image.rgb, visible=~filler)
    with_filler = enhancer.enhance_pixels(image.rgb)  # what it did before: the gray counted
    assert np.array_equal(saved[~filler], photo_only[~filler])
    whole = enhancer.enhance_pixels(cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    # the part that is there comes out about as the untruncated file's does; counting the gray held it
    # down (mean levels 112.7 and 102.1 against 32.5 when this test was written)
    assert abs(saved[~filler].mean() - whole[~filler].mean()) < 0.25 * abs(with_filler[~filler].mean() - whole[~filler].mean())


def test_an_overlap_too_small_for_tile_exactness_is_said(photos, tmp_path):
    args = ["enhance", str(photos / "a.png"), "-o", str(tmp_path / "o"), "-m", "scl-lle", "--tile", "64", "--overwrite"]
    short = runner.invoke(app, [*args, "--overlap", "8"])
    assert short.exit_code == 0 and "with --overlap 15 or more; at 8, tile borders may differ" in " ".join(short.output.split())
    enough = runner.invoke(app, [*args, "--overlap", "15"])
    assert enough.exit_code == 0 and "tile borders" not in enough.output
    whole = runner.invoke(app, [*args[:-3], "--tile", "0", "--overlap", "0", "--overwrite"])
    assert whole.exit_code == 0 and "tile borders" not in whole.output
