"""Training methods: the registry, `lowlight train --method`, typed loss sections, unpaired data, SCL-LLE and PIE.

SCL-LLE and PIE train here with seeded random stand-ins of their frozen networks
(``run.stand_in_priors``), so the tests run without ``../shared/nets``; the stand-ins have the
real architectures, so shapes, layer names and gradients are the real ones.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.pairs import ImagePair, pixel_digest, synthetic_pairs
from lowlight_cli.data.patches import PatchConfig
from lowlight_cli.data.splits import make_split
from lowlight_cli.data.unpaired import UnpairedPatchDataset, image_pool
from lowlight_cli.errors import ConfigError, DataError, UnknownNameError
from lowlight_cli.models import create_model
from lowlight_cli.training import METHODS, StepContext, build_config, load_config
from lowlight_cli.training.data import training_data
from lowlight_cli.training.steps import StagesForward
from lowlight_cli.training.unpaired_curves import over_exposed

from .test_training import SMOKE as CRNET_SMOKE

runner = CliRunner()
UNPAIRED = [
    "--set", "model.name=dce-tiny", "--set", "data.root=synthetic", "--set", "data.synthetic_count=10",
    "--patch-size", "32", "--batch-size", "2", "--patches-per-image", "2", "--set", "run.device=cpu",
    "--set", "run.log_every=1", "--set", "run.stand_in_priors=true", "--set", "run.val_every=100",
]


# ---- registry and command line -------------------------------------------------------------------
def test_every_system_registers_its_methods():
    assert METHODS.names() == ["crnet", "mcmt", "scl-lle", "pie", "semi-llie", "skf"]
    crnet, mcmt, scl, pie, semi_llie = (METHODS.get(n) for n in ("crnet", "mcmt", "scl-lle", "pie", "semi-llie"))
    assert (crnet.data, mcmt.data, scl.data, pie.data) == ("paired", "paired+unlabeled", "unpaired", "unpaired")
    assert mcmt.teacher and semi_llie.teacher and not crnet.teacher and not scl.teacher
    assert (scl.section, pie.section, crnet.section, mcmt.section) == ("scl_lle", "pie", "loss", "loss")
    assert (scl.default_model, pie.default_model) == ("scl-lle", "pie")
    assert (semi_llie.data, semi_llie.section, semi_llie.default_model) == ("paired+unlabeled", "semi_llie", "semi-llie-s")
    with pytest.raises(UnknownNameError) as info:
        METHODS.get("scl_lle")
    assert "did you mean scl-lle" in info.value.hint


def test_list_methods_explain_and_help():
    listed = runner.invoke(app, ["train", "--list-methods"])
    assert listed.exit_code == 0
    for name in METHODS:
        assert any(line.startswith(name) and METHODS.get(name).summary in line for line in listed.stdout.splitlines())
    explained = runner.invoke(app, ["train", "--method", "scl-lle", "--explain"])
    assert explained.exit_code == 0, explained.output
    text = explained.stdout
    assert "SCL-LLE" in text and "loss section 'scl_lle'" in text and "  tv = 200.0" in text
    assert "texture_layers = [relu1_2, relu2_2]" in text and "optim.grad_clip=0.1" in text
    assert "relu4_3" in text  # the substitution is documented
    assert "mcmt: " in runner.invoke(app, ["train", "--semi", "--explain"]).stdout  # --semi is MCMT
    crnet = runner.invoke(app, ["train", "--method", "crnet", "--explain"]).stdout  # shares 'loss' with mcmt
    assert "lambda_mc = 1.0  (not read by this method" in crnet and "lambda_ms = 1.0\n" in crnet
    assert "not read" not in runner.invoke(app, ["train", "--semi", "--explain"]).stdout
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    assert "--method" in help_text and "--list-methods" in help_text and "--explain" in help_text and "pie" in help_text


def test_an_unknown_method_is_a_usage_error_with_a_suggestion(tmp_path):
    result = runner.invoke(app, ["train", "--method", "pei", "--data", "synthetic", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "did you mean pie" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


# ---- typed loss sections and method defaults -----------------------------------------------------
def test_method_sections_are_typed_validated_and_layered(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("run:\n  method: scl-lle\nscl_lle:\n  tv: 150\n  texture_layers: [relu1_1, relu2_1]\noptim:\n  lr: 0.0003\n")
    cfg = build_config(yaml_path=yaml_file, assignments=["scl_lle.brightness=4"])
    losses = cfg.method_loss
    assert type(losses).__name__ == "SclLleLosses"
    assert (losses.tv, losses.brightness, losses.texture, losses.texture_layers) == (150.0, 4.0, 5.0, ("relu1_1", "relu2_1"))
    assert cfg.model.name == "scl-lle"  # the method's default model
    assert cfg.optim.lr == 3e-4  # the file beats the method's default 1e-4 ...
    assert (cfg.optim.weight_decay, cfg.optim.grad_clip, cfg.data.batch_size) == (1e-4, 0.1, 2)  # ... which beat the generic ones
    assert build_config(flags={"run.method": "scl-lle", "optim.grad_clip": 0.0}).optim.grad_clip == 0.0
    assert build_config(flags={"run.method": "pie"}).optim.grad_clip == 0.0  # PIE's paper clips nothing
    with pytest.raises(ConfigError, match="scl_lle.tvv") as info:
        build_config(flags={"run.method": "scl-lle"}, assignments=["scl_lle.tvv=1"])
    assert "did you mean scl_lle.tv" in info.value.hint
    with pytest.raises(ConfigError, match="scl_lle.tv"):
        build_config(flags={"run.method": "scl-lle"}, assignments=["scl_lle.tv=strong"])
    with pytest.raises(ConfigError, match="scl_lle.regions"):
        build_config(flags={"run.method": "scl-lle"}, assignments=["scl_lle.regions=watershed"])
    with pytest.raises(ConfigError, match="'pie' configures pie, but this run trains scl-lle"):
        build_config(flags={"run.method": "scl-lle"}, assignments=["pie.tv=1"])
    # keys a method never reads are refused, not ignored (review, session 27: they ran without a word)
    with pytest.raises(ConfigError, match="loss.lambda_ms configures CRNet's losses"):
        build_config(flags={"run.method": "pie"}, assignments=["loss.lambda_ms=100"])
    with pytest.raises(ConfigError, match="loss.lambda_c is for the mean teacher"):
        build_config(assignments=["loss.lambda_c=100"])
    with pytest.raises(ConfigError, match="teacher.ema_decay configures an EMA teacher"):
        build_config(assignments=["teacher.ema_decay=0.5"])
    assert build_config(assignments=["teacher.ema_decay=0.5", "run.export=teacher"]).teacher.ema_decay == 0.5
    assert build_config(flags={"run.semi": True, "data.labeled_frac": 0.1}, assignments=["loss.lambda_c=2"]).loss.lambda_c == 2
    with pytest.raises(ConfigError, match="method pie trains dce models, not crnet-s"):
        build_config(flags={"run.method": "pie", "model.name": "crnet-s"})
    with pytest.raises(ConfigError, match="mcmt method"):
        build_config(flags={"run.method": "pie", "run.semi": True})
    with pytest.raises(ConfigError, match="data.positives") as info:
        build_config(flags={"data.positives": str(tmp_path)})
    assert info.value.hint == "drop --positives: crnet learns from the pairs of --data"
    with pytest.raises(ConfigError, match="data.labeled_frac is for paired methods") as info:
        build_config(flags={"run.method": "scl-lle", "data.labeled_frac": 0.1})
    assert info.value.hint.startswith("drop --labeled-frac")


def test_semi_is_mcmt_and_configs_of_earlier_runs_still_load(tmp_path):
    cfg = build_config(flags={"run.semi": True})
    assert cfg.method == cfg.run.method == "mcmt" and cfg.data.labeled_frac == 0.1 and cfg.export_weights == "teacher"
    assert build_config(flags={"run.method": "mcmt"}).run.semi  # and the other way round
    assert build_config().method == "crnet" and not build_config().run.semi
    # a run folder's config.yaml from before methods: no run.method, no method sections
    old = tmp_path / "config.yaml"
    old.write_text("model:\n  name: crnet-tiny\ndata:\n  labeled_frac: 0.3\nrun:\n  semi: true\n  out: runs/x\n")
    loaded = load_config(old)
    assert loaded.method == "mcmt" and loaded.data.labeled_frac == 0.3 and loaded.method_loss is loaded.loss


def test_resume_refuses_to_change_the_method(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--method", "pie", *UNPAIRED, "--max-steps", "1", "--out", str(run)]).exit_code == 0
    result = runner.invoke(app, ["train", "--resume", str(run), "--method", "scl-lle"])
    assert result.exit_code == 2 and "--resume continues a run" in result.output
    assert "--method cannot be given with it" in result.output  # the option at fault is named


# ---- unpaired data -------------------------------------------------------------------------------
def _lol_like(scenes: int = 12, exposures: int = 3, size: int = 20) -> list[ImagePair]:
    """Scenes shot at several exposures with one reference each (byte-identical copies), like LOL."""
    rng = np.random.default_rng(0)
    pairs = []
    for s in range(scenes):
        reference = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        for e in range(exposures):
            low = (reference // (4 + e)).astype(np.uint8)
            pairs.append(ImagePair(f"{s}-{e}", low, reference.copy()))  # a copy: the same bytes, another array
    pairs.append(ImagePair("no-reference", pairs[0].low.copy(), None))
    return pairs


def test_a_positive_is_never_the_inputs_own_reference_nor_a_copy_of_it():
    pairs = _lol_like()
    config = build_config(flags={"run.method": "pie", "data.patch_size": 16, "data.patches_per_image": 1, "data.val_count": 2})
    split = make_split(pairs, labeled_frac=1.0, val_count=2, seed=0)
    data = training_data(METHODS.get("pie"), config, pairs, split)
    dataset: UnpairedPatchDataset = data.dataset
    inputs = dataset.inputs
    assert len(inputs) == len(pairs) - len(split.validation)  # every training low image, the one without a reference too
    validation = {pixel_digest(p.high) for p in data.validation}
    assert len(dataset.positives) == 12 - len(validation)  # one per scene: copies count once; validated scenes withheld
    assert not validation & set(dataset.positives.digests)
    drawn = set()
    for index, pair in enumerate(inputs):
        own = pixel_digest(pair.high) if pair.high is not None else None
        for patch_id in range(60):
            j = dataset.positive_index(index, patch_id)
            assert dataset.positives.digests[j] != own
            drawn.add(j)
    assert drawn == set(range(len(dataset.positives)))  # every other positive can be drawn
    # what the items hold is that positive: a crop of it, not of the own reference
    index = next(i for i, p in enumerate(inputs) if p.high is not None)
    item = dataset[(index, 5)]
    chosen = dataset.positives.images[dataset.positive_index(index, 5)]
    assert set(item) == {"low", "positive"} and item["positive"].shape == (3, 16, 16)
    crops = {np.round(item["positive"].numpy() * 255).astype(np.uint8).tobytes()}
    assert _contains_patch(chosen, crops) and not _contains_patch(inputs[index].high, crops)


def _contains_patch(image: np.ndarray, crops: set[bytes], size: int = 16) -> bool:
    """Whether one of the 8 flips/rotations of some ``size`` crop of ``image`` is in ``crops`` ((3, s, s) bytes)."""
    from lowlight_cli.data.patches import augment_pair

    for top in range(image.shape[0] - size + 1):
        for left in range(image.shape[1] - size + 1):
            patch = image[top : top + size, left : left + size]
            for code in range(8):
                if np.ascontiguousarray(augment_pair(patch, None, code)[0].transpose(2, 0, 1)).tobytes() in crops:
                    return True
    return False


def test_unpaired_patches_depend_only_on_the_key():
    pairs = _lol_like(scenes=4)
    pool = image_pool(p.high for p in pairs if p.high is not None)
    make = lambda: UnpairedPatchDataset(pairs, pool, image_pool([pairs[0].low]), PatchConfig(size=8, per_image=2), seed=3)  # noqa: E731
    a, b = make(), make()
    for key in [(0, 0), (5, 1), (7, 9), (0, 0)]:
        assert all(torch.equal(a[key][k], b[key][k]) for k in ("low", "positive", "negative"))
    assert not torch.equal(a[(5, 1)]["positive"], a[(5, 2)]["positive"])  # other keys, other draws
    with pytest.raises(DataError, match="its own\nreference|its own reference"):  # the only positive there is
        UnpairedPatchDataset(pairs[:1], image_pool([pairs[0].high]), None, PatchConfig(size=8), seed=0)


@pytest.mark.parametrize("kind", ["positives", "negatives"])
def test_folders_of_positives_and_negatives(tmp_path, kind):
    folder = tmp_path / kind
    (folder / "nested").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(folder / "nested" / f"{i}.png"), np.full((40, 48, 3), 60 * i + 30, np.uint8))
    config = build_config(flags={"run.method": "scl-lle", "data.root": "synthetic", "data.patch_size": 32,
                                 f"data.{kind}": str(folder)})
    pairs = synthetic_pairs(6)
    data = training_data(METHODS.get("scl-lle"), config, pairs, make_split(pairs, labeled_frac=1.0, val_count=1, seed=0))
    item = data.dataset[(0, 0)]
    if kind == "positives":
        assert len(data.dataset.positives) == 3 and str(folder) in data.summary
        assert item["positive"].unique().numel() == 1  # a crop of one of the flat images
    else:
        assert "negative" in item and item["negative"].unique().numel() == 1 and "3 from" in data.summary
    config.data.negatives = config.data.positives = str(tmp_path / "missing")
    with pytest.raises(DataError, match="missing"):
        training_data(METHODS.get("scl-lle"), config, pairs, make_split(pairs, labeled_frac=1.0, val_count=1, seed=0))


def _write_images(folder: Path, count: int, level: int, size: tuple[int, int] = (40, 48), start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(level + start)
    for i in range(start, start + count):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(level, level + 40, (*size, 3), dtype=np.uint8))


# without data.root=synthetic and its count (the tests give --data), nor run.val_every (runs on data without
# references have no validation, and refuse it)
OWN_DATA = UNPAIRED[:2] + UNPAIRED[6:-2]
assert UNPAIRED[-1] == "run.val_every=100"


@pytest.mark.parametrize("layout", ["low-only", "plain"])
def test_unpaired_methods_train_on_low_images_without_references(tmp_path, layout):
    """A folder of low images (``low/`` alone, or the images themselves) and --positives: the run
    trains without validation and says its weights are last/, which enhance takes."""
    data = tmp_path / "dark"
    _write_images(data / "low" if layout == "low-only" else data, 4, 5)
    _write_images(tmp_path / "photos", 3, 120)
    out = tmp_path / "run"
    args = ["train", "--method", "pie", *OWN_DATA, "--data", str(data), "--positives", str(tmp_path / "photos"),
            "--max-steps", "2", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no validation (fewer than 2 references)" in result.output and "the final weights are in" in result.output
    assert (out / "last" / "model.safetensors").is_file() and not (out / "best").exists()
    assert json.loads((out / "split.json").read_text())["validation"] == []
    provenance = json.loads((out / "last" / "config.json").read_text())["provenance"]
    assert provenance["weights"] == "student" and provenance["best_val_psnr"] is None and "val_psnr" not in provenance
    assert not (out / "final").exists()  # the student is the run's weights: last/ says so
    resumed = runner.invoke(app, ["train", "--resume", str(out), "--max-steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    enhanced = runner.invoke(app, ["enhance", str(next((data / "low" if layout == "low-only" else data).glob("0.png"))),
                                   "-o", str(tmp_path / "enhanced"), "--weights", str(out / "last")])
    assert enhanced.exit_code == 0, enhanced.output
    # without --positives there is nothing to draw positives from: said so, with the option to pass
    if layout == "plain":  # a run exporting an EMA teacher without validation keeps it in final/, beside last/
        ema_run = tmp_path / "ema-run"
        result = runner.invoke(app, [*args[:-1], str(ema_run), "--set", "run.export=teacher"])
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert f"the final weights are in {ema_run / 'final'}" in said
        assert "the final weights are final/ (the EMA teacher; last/ holds the student)" in said  # said at the start too
        missing_best = runner.invoke(app, ["enhance", str(next(iter(sorted(data.glob("*.png"))))), "-o", str(tmp_path / "e"),
                                           "--weights", str(ema_run / "best"), "--dry-run"])
        assert missing_best.exit_code == 1 and f"its final weights are {ema_run / 'final'}" in " ".join(missing_best.output.split())
        teacher, final = load_file(str(ema_run / "last" / "ema.safetensors")), load_file(str(ema_run / "final" / "model.safetensors"))
        assert teacher.keys() == final.keys() and all(torch.equal(teacher[k], final[k]) for k in teacher)
        assert json.loads((ema_run / "final" / "config.json").read_text())["provenance"]["weights"] == "teacher"
        last = json.loads((ema_run / "last" / "config.json").read_text())["provenance"]
        assert last["weights"] == "student" and last["teacher_weights"] == "ema.safetensors"
    refused = runner.invoke(app, ["train", "--method", "pie", *OWN_DATA, "--data", str(data), "--max-steps", "1",
                                  "--out", str(tmp_path / "other")])
    assert refused.exit_code == 1 and "no normal-light positives" in refused.output and "--positives DIR" in refused.output


def test_val_every_on_a_run_without_validation_is_a_usage_error_before_the_data_is_read(tmp_path, monkeypatch):
    """--val-every (or run.val_every from a config file or --set) on data without references, which
    gives no validation, is refused before any image is decoded; the default 0 is not, and a resume
    refuses only a value given at resume."""
    import lowlight_cli.training.engine as engine

    data = tmp_path / "dark"
    _write_images(data, 4, 5)
    _write_images(tmp_path / "photos", 3, 120)
    config = tmp_path / "pie.yaml"
    config.write_text("run: {val_every: 7}\n")
    out = tmp_path / "run"
    base = ["train", "--method", "pie", *OWN_DATA, "--data", str(data), "--positives", str(tmp_path / "photos"),
            "--max-steps", "2", "--out", str(out)]
    decode = engine.load_pairs

    def not_decoded(paths):
        raise AssertionError("the images were decoded before the refusal")

    monkeypatch.setattr(engine, "load_pairs", not_decoded)
    for given, value in ((["--val-every", "5"], 5), (["--config", str(config)], 7), (["--set", "run.val_every=3"], 3)):
        result = runner.invoke(app, [*base, *given])
        assert result.exit_code == 2, (given, result.output)
        lines = result.output.strip().splitlines()
        assert lines[0] == f"error: run.val_every (--val-every) is {value}, but this run has no validation: its data has " \
                           "fewer than 2 pairs with references to hold out", result.output
        assert len(lines) == 2 and lines[1].startswith("hint: drop --val-every") and "last/" in lines[1], result.output
        assert not out.exists()
    monkeypatch.setattr(engine, "load_pairs", decode)
    config.write_text("run: {val_every: 0}\n")  # the default, as every saved config.yaml holds it
    assert runner.invoke(app, [*base, "--config", str(config)]).exit_code == 0
    refused = runner.invoke(app, ["train", "--resume", str(out), "--max-steps", "3", "--val-every", "2"])
    assert refused.exit_code == 2 and "run.val_every (--val-every) is 2" in refused.output, refused.output
    # a run started before the check holds its value: resumed as it was
    (out / "config.yaml").write_text((out / "config.yaml").read_text().replace("val_every: 0", "val_every: 100"))
    resumed = runner.invoke(app, ["train", "--resume", str(out), "--max-steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    # a run with validation takes it
    paired = tmp_path / "paired"
    _write_images(paired / "low", 6, 5)
    _write_images(paired / "high", 6, 120)
    validated = runner.invoke(app, ["train", "--method", "pie", *OWN_DATA, "--data", str(paired), "--max-steps", "2",
                                    "--val-every", "1", "--out", str(tmp_path / "validated")])
    assert validated.exit_code == 0 and validated.output.count("validation PSNR") == 2, validated.output


@pytest.mark.parametrize("method, layout", [("pie", "plain"), ("pie", "paired"), ("crnet", "paired")])
def test_a_training_start_digests_each_image_once_and_lists_each_folder_once(tmp_path, monkeypatch, method, layout):
    """The pixel digests of data.json (and of the checks on the pools) take about a second on LOL:
    each start, new or resumed, computes each image's once, and lists --positives/--negatives once."""
    import collections
    import hashlib

    import lowlight_cli.data.unpaired as unpaired
    import lowlight_cli.io.discovery as discovery
    from lowlight_cli.data import pairs as pairs_module, splits as splits_module
    from lowlight_cli.training import data as data_module

    digests, listings = collections.Counter(), collections.Counter()

    def counted_digest(pixels):
        digest = hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest()
        digests[digest] += 1
        return digest

    def counted_listing(inputs, **kwargs):
        listings[str(inputs[0])] += 1
        return discovery.scan_inputs(inputs, **kwargs)

    for module in (pairs_module, splits_module, unpaired, data_module):  # wherever the digest is computed
        if hasattr(module, "pixel_digest"):
            monkeypatch.setattr(module, "pixel_digest", counted_digest)
    monkeypatch.setattr(unpaired, "scan_inputs", counted_listing)
    data = tmp_path / "data"
    if layout == "plain":  # distinct images throughout, so that each digest is one image's
        _write_images(data, 4, 5)
        _write_images(tmp_path / "photos", 3, 120)
        _write_images(tmp_path / "bright", 2, 215)
        extra = ["--positives", str(tmp_path / "photos"), "--negatives", str(tmp_path / "bright")]
    else:
        _write_images(data / "low", 6, 5)
        _write_images(data / "high", 6, 120)
        extra = []
    args = (["--method", "pie", *OWN_DATA] if method == "pie" else
            ["--model", "crnet-tiny", "--patch-size", "32", "--batch-size", "2", "--patches-per-image", "2",
             "--set", "run.device=cpu"])
    run = tmp_path / "run"
    for start in (["--out", str(run), *args, "--data", str(data), *extra, "--max-steps", "1"],
                  ["--resume", str(run), "--max-steps", "2"]):
        digests.clear()
        listings.clear()
        result = runner.invoke(app, ["train", *start])
        assert result.exit_code == 0, result.output
        images = 4 + 3 + 2 if layout == "plain" else 6 + 6
        assert len(digests) == images and set(digests.values()) == {1}, (start[0], sorted(digests.values()))
        assert set(listings.values()) <= {1} and len(listings) == len(extra) // 2, (start[0], listings)


def test_a_resume_takes_the_data_where_it_now_is_and_refuses_changed_images(tmp_path, monkeypatch):
    """Relative folders are from where a run started (data.json says where); folders that moved may
    be named again at resume (--data, --positives); data.json makes sure they hold the same images."""
    import shutil

    start = tmp_path / "start"
    _write_images(start / "dark" / "low", 4, 5)
    _write_images(start / "photos", 3, 120)
    monkeypatch.chdir(start)
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", "--method", "pie", *OWN_DATA, "--data", "dark", "--positives", "photos",
                                "--max-steps", "1", "--out", str(run)])
    assert first.exit_code == 0, first.output
    assert json.loads((run / "data.json").read_text())["started_in"] == str(start)
    monkeypatch.chdir(tmp_path)  # elsewhere: the relative folders are found from where the run started
    elsewhere = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    assert elsewhere.exit_code == 0 and "taken from where the run started" in elsewhere.output, elsewhere.output
    shutil.move(str(start), str(tmp_path / "moved"))  # the folders moved: named again at resume
    lost = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    text = " ".join(lost.output.split())
    assert lost.exit_code == 1 and "not found" in text, lost.output
    assert "--data DIR --positives DIR" in text  # both named at once, not one per attempt
    (tmp_path / "here").mkdir()
    moved = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3",
                                "--data", "here/../moved/dark", "--positives", "moved/photos"])
    assert moved.exit_code == 0, moved.output
    # stored absolute, without the "..": the next resume works even once the folder named through is gone
    assert str((tmp_path / "moved" / "dark").resolve()) in (run / "config.yaml").read_text()
    assert ".." not in (run / "config.yaml").read_text()
    (tmp_path / "here").rmdir()
    _write_images(tmp_path / "moved" / "photos", 1, 200)  # 0.png replaced: another positive
    changed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "4"])
    assert changed.exit_code == 1 and "the positives changed since the run started" in changed.output, changed.output
    assert "0.png is new or changed" in changed.output
    _write_images(tmp_path / "moved" / "photos", 1, 120)  # put back as it was
    assert runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "4"]).exit_code == 0
    # a damaged record is one line, not a traceback
    (run / "data.json").write_text("[]")
    damaged = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5"])
    assert damaged.exit_code == 1 and "data.json is damaged" in damaged.output
    # a run older than data.json: its folders may not move; a plain resume writes the record
    (run / "data.json").unlink()
    shutil.copytree(tmp_path / "moved" / "dark", tmp_path / "copy")
    refused = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5", "--data", str(tmp_path / "copy")])
    assert refused.exit_code == 2 and "predates data.json" in refused.output
    assert runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5"]).exit_code == 0
    assert (run / "data.json").is_file()


def _pool_with_a_validation_image(tmp_path: Path, pool: str, part: str, level: int):
    """A ``pool`` folder holding one validation pair's ``part`` (low or high) and one other image,
    and the data and split it goes with: ``(config, pairs, split, folder)``."""
    pairs = synthetic_pairs(6)
    split = make_split(pairs, labeled_frac=1.0, val_count=1, seed=0)
    held = next(p for p in pairs if p.name in split.validation)
    folder = tmp_path / pool
    folder.mkdir()
    cv2.imwrite(str(folder / "held.png"), cv2.cvtColor(getattr(held, part), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "other.png"), np.full((192, 256, 3), level, np.uint8))
    config = build_config(flags={"run.method": "pie", "data.root": "synthetic", "data.patch_size": 32, f"data.{pool}": str(folder)})
    return config, pairs, split, folder


def test_validation_low_images_are_never_positives_and_half_a_paired_folder_is_refused(tmp_path):
    config, pairs, split, folder = _pool_with_a_validation_image(tmp_path, "positives", "low", 150)
    data = training_data(METHODS.get("pie"), config, pairs, split)
    assert data.dataset.positives.names == (str(folder / "other.png"),)
    half = tmp_path / "half"
    _write_images(half, 3, 5)
    _write_images(half / "high", 3, 120)
    result = runner.invoke(app, ["train", "--method", "pie", *OWN_DATA, "--data", str(half), "--positives", str(folder),
                                 "--max-steps", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "has a high/ folder but no low/ one" in result.output


def test_enhance_points_at_a_runs_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "last").mkdir(parents=True)
    (run / "last" / "config.json").write_text("{}")
    _write_images(tmp_path / "photos", 1, 20)
    photo = str(tmp_path / "photos" / "0.png")
    whole = runner.invoke(app, ["enhance", photo, "-o", str(tmp_path / "out"), "--weights", str(run)])
    assert whole.exit_code == 1 and "is a training run" in whole.output and str(run / "last") in whole.output
    best = runner.invoke(app, ["enhance", photo, "-o", str(tmp_path / "out"), "--weights", str(run / "best")])
    assert best.exit_code == 1 and "its final weights are" in best.output and str(run / "last") in best.output


def test_folders_of_positives_and_negatives_are_checked_before_the_data_is_read(tmp_path):
    _write_images(tmp_path / "data" / "low", 6, 5)
    _write_images(tmp_path / "data" / "high", 6, 120)
    (tmp_path / "empty").mkdir()
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "photos").symlink_to(tmp_path / "data" / "high")
    _write_images(tmp_path / "tiny", 1, 120, size=(20, 24))
    base = ["train", "--method", "pie", *OWN_DATA, "--data", str(tmp_path / "data"), "--max-steps", "1",
            "--out", str(tmp_path / "run")]
    cases = {
        ("--positives", ""): "--positives is empty",
        ("--positives", str(tmp_path / "data" / "low" / "0.png")): "is a file, not a folder",
        ("--negatives", str(tmp_path / "empty")): "no images in the negatives folder",
        ("--positives", str(tmp_path / "linked")): "symbolic links to folders are not followed: photos",
        ("--positives", str(tmp_path / "tiny")): "tiny/0.png",  # named by file, not by index
        ("--positives", str(tmp_path / "data" / "low")): "are low-light inputs of this run",
    }
    for (option, value), expected in cases.items():
        result = runner.invoke(app, [*base, option, value])
        assert result.exit_code in (1, 2) and expected in result.output, (option, value, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "run").exists()
    both = runner.invoke(app, [*base, "--positives", str(tmp_path / "data" / "high"), "--negatives", str(tmp_path / "data" / "high")])
    assert both.exit_code == 1 and "both positives and negatives" in both.output
    _write_images(tmp_path / "linked", 2, 150)  # beside the link: trains, and says what it did not follow
    mixed = runner.invoke(app, [*base, "--positives", str(tmp_path / "linked")])
    assert mixed.exit_code == 0 and "symbolic links to folders not followed: positives photos" in mixed.output, mixed.output


def test_validation_references_are_never_negatives_and_a_fully_held_out_set_is_named(tmp_path):
    config, pairs, split, folder = _pool_with_a_validation_image(tmp_path, "negatives", "high", 250)
    data = training_data(METHODS.get("pie"), config, pairs, split)
    assert len(data.dataset.negatives) == 1 and data.dataset.negatives.names == (str(folder / "other.png"),)
    # a run made before data.json resumes on the pools it drew then: negatives were not filtered
    legacy = training_data(METHODS.get("pie"), config, pairs, split, legacy_pools=True)
    assert len(legacy.dataset.negatives) == 2
    # two pairs of one scene (one reference): both are held out, nothing is left to train on
    root = tmp_path / "same"
    _write_images(root / "low", 2, 5)
    (root / "high").mkdir()
    for i in range(2):
        cv2.imwrite(str(root / "high" / f"{i}.png"), np.full((40, 48, 3), 140, np.uint8))
    result = runner.invoke(app, ["train", "--method", "pie", *OWN_DATA, "--data", str(root), "--max-steps", "1",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "no images left to train on" in result.output


def test_help_of_train_options_is_not_crnet_only():
    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    assert "(default 30)" not in text and "Labeled patches per step" not in text
    assert "scl-lle and pie 1" in text and "plain folder of low-light images" in text


# ---- steps ---------------------------------------------------------------------------------------
def _step(method: str, *assignments: str):
    config = build_config(flags={"run.method": method, "model.name": "dce-tiny", "run.stand_in_priors": True},
                          assignments=list(assignments))
    context = StepContext(config.method_loss, config, torch.device("cpu"))
    return METHODS.get(method).build_step(context), context


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"low": torch.rand(2, 3, 32, 32, generator=g) * 0.15,
            "positive": (0.3 + 0.5 * torch.rand(2, 3, 32, 32, generator=g)).clamp(0, 1)}


@pytest.mark.parametrize("method,regions", [("scl-lle", "semantic"), ("scl-lle", "felzenszwalb"), ("pie", "felzenszwalb")])
def test_every_loss_term_trains_the_curve_model(method, regions):
    section = method.replace("-", "_")
    step, context = _step(method, f"{section}.regions={regions}")
    assert set(context.networks) == ({"vgg19-normalised", "espnetv2-voc"} if regions == "semantic" else {"vgg19-normalised"})
    torch.manual_seed(0)
    model = create_model("dce-tiny", pretrained=False).train()
    torch.manual_seed(1)  # the curve negatives are drawn from the global RNG
    terms = step.loss_terms(StagesForward(model), _batch())
    assert set(terms) == {"tv", "colour", "brightness", "region", "feature", "texture"}
    for name, term in terms.items():
        grads = torch.autograd.grad(term, list(model.parameters()), retain_graph=True)
        assert sum(float(g.abs().sum()) for g in grads) > 0, f"{method}: {name} gives no gradient"
    torch.manual_seed(1)
    out = step(StagesForward(model), _batch())
    expected = sum(getattr(context.losses, n) * float(t.detach()) for n, t in terms.items())
    assert out.terms["loss"] == pytest.approx(expected, rel=1e-4)
    assert not any(p.requires_grad for p in step.network.parameters())  # frozen: only the model learns


def test_negatives_of_each_method():
    low = torch.rand(3, 3, 16, 16) * 0.1
    bright = over_exposed(low, torch.Generator().manual_seed(0))
    assert bright.shape == low.shape and float(bright.mean()) > 2 * float(low.mean()) and 0 <= float(bright.min())
    step, _ = _step("scl-lle")
    negatives = step.make_negatives(low, torch.full((2, 3, 16, 16), 0.5))
    assert negatives.shape[0] == 5 and torch.equal(negatives[:3], low)  # the inputs, then the positives over-exposed
    assert float(negatives[3:].amin()) > 0.5
    step, _ = _step("pie")
    assert step.make_negatives(low, torch.rand(3, 3, 16, 16)).shape[0] == 3  # Bag of Curves of the positives


def test_zero_weights_drop_terms_and_their_networks():
    step, context = _step("scl-lle", "scl_lle.region=0", "scl_lle.texture=0", "scl_lle.feature=0")
    assert step.network is None and step.regions is None and not context.networks
    terms = step.loss_terms(StagesForward(create_model("dce-tiny", pretrained=False)), _batch())
    assert set(terms) == {"tv", "colour", "brightness"}
    with pytest.raises(UnknownNameError, match="relu4_3"):
        _step("pie", "pie.feature_layers=relu4_3")  # vgg19-normalised stops at relu3_1: said, with the layers it has


# ---- runs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["scl-lle", "pie"])
def test_unpaired_resume_is_exact_and_checkpoints_hold_only_the_model(tmp_path, method):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    common = ["train", "--method", method, *UNPAIRED]
    result = runner.invoke(app, [*common, "--out", str(straight), "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "unpaired: 8 low-light inputs" in result.output and "stand-in" in result.output
    first = runner.invoke(app, [*common, "--out", str(halves), "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "4"])
    assert second.exit_code == 0 and "resumed at step 2" in second.output, second.output
    a, b = load_file(str(straight / "last" / "model.safetensors")), load_file(str(halves / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["kind"] == "step"]
    assert len(steps) == 4 and all({"tv", "brightness", "texture", "region", "feature"} <= set(r["terms"]) for r in steps)
    # the frozen networks stay out of every checkpoint; the provenance names them
    model_keys = set(create_model("dce-tiny", pretrained=False).state_dict())
    for folder in ("last", "best"):
        assert set(load_file(str(straight / folder / "model.safetensors"))) == model_keys
        assert sorted(p.name for p in (straight / folder).iterdir()) == sorted(
            ["config.json", "model.safetensors", *(["train_state.pt"] if folder == "last" else [])])
    provenance = json.loads((straight / "best" / "config.json").read_text())["provenance"]
    assert provenance["method"] == method and "vgg19-normalised" in provenance["frozen_networks"]
    assert f"method: {method}" in (straight / "config.yaml").read_text()


def test_mcmt_by_name_trains_like_semi(tmp_path):
    runs = {}
    for name, spelling in (("semi", ["--semi", "--labeled-frac", "0.5"]), ("method", ["--method", "mcmt", "--labeled-frac", "0.5"])):
        result = runner.invoke(app, ["train", *spelling, *CRNET_SMOKE, "--max-steps", "2", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        runs[name] = load_file(str(tmp_path / name / "last" / "ema.safetensors"))
    assert all(torch.equal(runs["semi"][k], runs["method"][k]) for k in runs["semi"])



@pytest.mark.parametrize("method", ["scl-lle", "pie"])
def test_unpaired_methods_train_in_bf16_and_track_fp32(method, tmp_path, monkeypatch):
    """The bundled scl-lle-lol / pie-lol were trained with --precision bf16 (AMX): the frozen networks
    and losses run under autocast, the master weights stay fp32 and the losses follow fp32's."""
    from lowlight_cli.inference import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)  # PyTorch emulates bf16 elsewhere
    runs = {}
    for name in ("fp32", "bf16"):
        result = runner.invoke(app, ["train", "--method", method, *UNPAIRED, "--precision", name, "--max-steps", "3",
                                     "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert f"on cpu ({name})" in result.output
        log = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        runs[name] = ([r["terms"]["loss"] for r in log if r["kind"] == "step"], load_file(str(tmp_path / name / "last" / "model.safetensors")))
    (loss32, w32), (loss16, w16) = runs["fp32"], runs["bf16"]
    assert all(t.dtype == torch.float32 for t in w16.values())
    assert any(not torch.equal(w32[k], w16[k]) for k in w32)
    assert all(np.isfinite(loss16)) and np.allclose(loss16, loss32, rtol=0.05, atol=0.01)


@pytest.mark.slow
def test_unpaired_method_under_torchrun_keeps_the_processes_in_step(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lowlight_cli", "train", "--method", "pie", *UNPAIRED, "--max-steps", "3", "--out", str(run)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    checks = [r for r in records if r["kind"] == "ddp_checksums"]
    assert checks and len(checks[-1]["checksums"]) == 2
    assert checks[-1]["checksums"][0] == checks[-1]["checksums"][1]
    assert math.isfinite(checks[-1]["checksums"][0])
    assert json.loads((run / "best" / "config.json").read_text())["provenance"]["method"] == "pie"


def test_resume_refuses_what_it_would_ignore_and_says_when_there_is_nothing_left(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--method", "pie", *UNPAIRED, "--max-steps", "2", "--out", str(run)]).exit_code == 0
    config_before = (run / "config.yaml").read_text()
    elsewhere = runner.invoke(app, ["train", "--resume", str(run), "--out", str(tmp_path / "fork"), "--max-steps", "3"])
    assert elsewhere.exit_code == 2 and "cannot write to --out" in elsewhere.output and "model.init_from" in elsewhere.output
    assert not (tmp_path / "fork").exists()
    for extra in (["--lr", "0.01"], ["--set", "optim.weight_decay=0.1"], ["--batch-size", "3"], ["--set", "pie.tv=5"]):
        # restored from last/ or fixed by the data plan: never silently ignored
        changed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3", *extra])
        assert changed.exit_code == 2 and "cannot change" in changed.output, changed.output
        if extra[-1] == "pie.tv=5":  # named as --set spells it, not by the config's internal field
            assert "pie.tv cannot change" in " ".join(changed.output.split()) and "method_sections" not in changed.output
    assert (run / "config.yaml").read_text() == config_before  # nothing was rewritten
    done = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    assert done.exit_code == 2 and "already at step 2" in done.output and "--max-steps" in done.output
    (tmp_path / "afile").write_text("x")
    for target, message in ((tmp_path / "afile", "not a folder"), (tmp_path / "nothing", "no such folder"),
                            (run / "last", "resume its parent folder")):
        bad = runner.invoke(app, ["train", "--resume", str(target)])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    as_out = runner.invoke(app, ["train", "--method", "pie", *UNPAIRED, "--max-steps", "1", "--out", str(tmp_path / "afile")])
    assert as_out.exit_code == 2 and "is a file" in as_out.output


def test_the_training_mode_line_never_rounds_a_label_fraction_to_zero():
    from lowlight_cli.cli.train import _mode

    for fraction, shown in ((0.1, "on 10% labels"), (0.025, "on 2.5% labels"), (0.0001, "on 0.01% labels")):
        cfg = build_config(flags={"run.semi": True, "data.labeled_frac": fraction})
        assert _mode(cfg, METHODS.get(cfg.method)) == f"semi-supervised MCMT {shown}"
    cfg = build_config(flags={"run.method": "semi-llie"})
    assert _mode(cfg, METHODS.get("semi-llie")) == "semi-supervised Semi-LLIE on 10% labels"  # as its paper spells it


def _paired_folder(root: Path, labeled: int, unlabeled: int = 0) -> Path:
    """``low/`` with ``labeled + unlabeled`` images, ``high/`` references for the first ``labeled``."""
    _write_images(root / "low", labeled + unlabeled, 10)
    _write_images(root / "high", labeled, 120)
    return root


TINY_RUN = ["--model", "crnet-tiny", "--max-steps", "1", "--patch-size", "32", "-b", "2", "--set", "run.device=cpu"]


def test_a_labeled_fraction_the_references_cannot_give_is_said_and_recorded(tmp_path):
    data = _paired_folder(tmp_path / "data", labeled=6, unlabeled=14)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--semi", "--labeled-frac", "0.5", *TINY_RUN, "--set", "data.unlabeled_batch_size=2",
                                 "--set", "data.val_count=1", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "asks for 10 labeled pairs of 20 images, but only 5 pairs with references are left outside validation" in said
    provenance = json.loads((out / "best" / "config.json").read_text())["provenance"]
    assert provenance["labeled_frac"] == 0.5 and provenance["labeled_pairs"] == 5


def test_a_supervised_run_is_not_refused_for_images_it_never_trains_on(tmp_path):
    data = _paired_folder(tmp_path / "data", labeled=6)
    cv2.imwrite(str(data / "low" / "tiny.png"), np.full((10, 10, 3), 20, np.uint8))  # no reference: unlabeled, unused
    result = runner.invoke(app, ["train", *TINY_RUN, "--data", str(data), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "7 training images (6 with references; without one: tiny)" in " ".join(result.output.split())
    # the same image in a semi-supervised run, which draws it: refused, with a patch size that fits
    refused = runner.invoke(app, ["train", "--semi", "--labeled-frac", "0.5", *TINY_RUN, "--data", str(data),
                                  "--set", "data.unlabeled_batch_size=1", "--out", str(tmp_path / "semi")])
    assert refused.exit_code == 1 and "low image(s) are smaller than the patch size 32 (e.g. tiny)" in refused.output


def test_the_patch_size_hint_is_one_the_model_takes(tmp_path):
    data = tmp_path / "data"
    _write_images(data / "low", 4, 10, size=(22, 48))
    _write_images(data / "high", 4, 120, size=(22, 48))
    result = runner.invoke(app, ["train", *TINY_RUN[2:], "--model", "crnet-s", "--data", str(data), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "use --patch-size 20 or less" in result.output  # 22 rounded down to crnet-s's multiple of 4


def test_default_run_folders_name_the_label_share():
    from lowlight_cli.cli.train import _run_tag

    def tag(**flags):
        cfg = build_config(flags=flags)
        return _run_tag(cfg, METHODS.get(cfg.method))

    assert tag() == "full" and tag(**{"data.labeled_frac": 0.1}) == "sup10"  # not the 100% run's folder
    assert tag(**{"run.semi": True}) == "semi10"
    assert tag(**{"run.semi": True, "data.labeled_frac": 0.025}) != tag(**{"run.semi": True, "data.labeled_frac": 0.015})
    assert tag(**{"run.semi": True, "data.labeled_frac": 0.025}) == "semi2.5"
    assert tag(**{"run.method": "pie"}) == "unpaired"
