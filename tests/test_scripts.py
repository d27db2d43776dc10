"""The maintenance scripts: dataset packing for remote GPU runs, the LOL test breakdown."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _fake_lol(root: Path) -> None:
    for split, stems, labeled in (("train", range(1, 7), {1, 2, 3}), ("test", range(20, 22), {20, 21})):
        for stem in stems:
            for side in ("low", "high"):
                if side == "high" and stem not in labeled:
                    continue
                path = root / split / side / f"{stem}.webp"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(3000 + 100 * stem))
    (root / "README.md").write_text("fake")


def test_pack_keeps_pairs_together_under_the_part_size_and_unpacks_verified(tmp_path):
    packer = _script("pack_dataset")
    source, parts, target = tmp_path / "LOL", tmp_path / "parts", tmp_path / "out"
    _fake_lol(source)
    manifest = packer.pack(source, parts, part_bytes=12_000, labeled_only=True)
    assert len(manifest["parts"]) > 1
    files = manifest["files"]
    assert "train/low/4.webp" not in files  # unlabeled: left out with --labeled-only
    for stem in (1, 2, 3):
        assert files[f"train/low/{stem}.webp"]["part"] == files[f"train/high/{stem}.webp"]["part"]
    for part in manifest["parts"]:  # the tar file itself, headers and padding included, stays under the limit
        assert part["bytes"] <= 12_000 or part["files"] <= 2, part
    # parts arrive one by one: unpack reports what is still missing, then completes
    first = parts / manifest["parts"][0]["name"]
    held = tmp_path / "held"
    held.mkdir()
    for part in manifest["parts"][1:]:
        (parts / part["name"]).rename(held / part["name"])
    assert packer.unpack(parts, target) > 0 and first.is_file()
    for tar in held.iterdir():
        tar.rename(parts / tar.name)
    assert packer.unpack(parts, target) == 0
    for rel in files:
        assert (target / rel).read_bytes() == (source / rel).read_bytes()
    # a corrupted file is caught
    (target / "train/low/1.webp").write_bytes(b"broken")
    (parts / files["train/low/1.webp"]["part"]).unlink()
    with pytest.raises(SystemExit, match="differ"):
        packer.unpack(parts, target)
    assert json.loads((parts / "parts.json").read_text())["root"] == "LOL"


def _scores_csv(path: Path, rows: dict[str, tuple[float, float]]) -> Path:
    lines = ["# lowlight 0.1.0; protocol: test", "name,psnr,ssim"]
    lines += [f"{name},{psnr},{ssim}" for name, (psnr, ssim) in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _grey_lol(root: Path, train: dict[int, int], test: dict[int, int]) -> Path:
    import cv2
    import numpy as np

    for split, levels in (("train", train), ("test", test)):
        for stem, level in levels.items():
            path = root / split / "high" / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((4, 6, 3), level, np.uint8))
    return root


def test_lol_breakdown_splits_test_scores_at_the_highest_training_reference(tmp_path, capsys):
    breakdown = _script("lol_test_breakdown")
    lol = _grey_lol(tmp_path / "LOL", train={1: 100, 2: 110, 3: 120}, test={1: 50, 3: 60, 4: 70, 20: 80})
    scores = _scores_csv(tmp_path / "a.csv", {"1": (20.0, 0.8), "3": (22.0, 0.9), "4": (10.0, 0.5), "20": (14.0, 0.6)})
    other = _scores_csv(tmp_path / "b.csv", {"1": (1.0, 0.1), "3": (1.0, 0.1), "4": (1.0, 0.1), "20": (1.0, 0.1)})
    assert breakdown.main(["--lol", str(lol), f"mine={scores}", str(other)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "| scores | all (4) | numbered up to 3, as the training references (2) | numbered above 3 (2) |"
    assert lines[2] == "| mine | 16.50 / 0.7000 | 21.00 / 0.8500 | 12.00 / 0.5500 |"
    assert lines[3].startswith("| b | 1.00 / 0.1000 |")
    assert lines[-1] == (
        "reference mean grey level, median per group: all (4): 0.255; "
        "numbered up to 3, as the training references (2): 0.216; numbered above 3 (2): 0.294; "
        "training references (3): 0.431"
    )
    # CSVs that score different images are refused rather than averaged over different sets
    short = _scores_csv(tmp_path / "c.csv", {"1": (20.0, 0.8)})
    with pytest.raises(SystemExit, match="different set of images"):
        breakdown.main(["--lol", str(lol), str(scores), str(short)])


def test_bundling_names_the_bundled_copy_of_a_run_it_was_warm_started_from(tmp_path, monkeypatch):
    bundler = _script("bundle_weights")
    monkeypatch.setattr(bundler, "ROOT", tmp_path)
    run_best, twin, other = tmp_path / "runs/a/best", tmp_path / "weights/a-stage1", tmp_path / "weights/b"

    def checkpoint(folder: Path, digest: str) -> None:  # what save_checkpoint records for its weights
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"architecture": "crnet-s", "sha256": {"model.safetensors": digest}}))

    for folder, digest in ((run_best, "stage one"), (twin, "stage one"), (other, "something else")):
        checkpoint(folder, digest)
    assert bundler.bundled_twin(run_best) == twin  # the run's best/ was bundled as a-stage1
    assert bundler.bundled_twin(other) == other  # a bundled folder is its own parent
    checkpoint(run_best, "retrained")
    assert bundler.bundled_twin(run_best) is None  # never bundled


def _log(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_run_history_is_recorded_when_bundling_and_reads_the_same_from_run_or_bundle(tmp_path, capsys):
    history = _script("run_history")
    bundler = _script("bundle_weights")
    run = tmp_path / "runs/a"

    def step(n: int, loss: float) -> dict:
        return {"time": float(n), "kind": "step", "step": n, "total_steps": 40, "terms": {"loss": loss, "mc_final": 0.0004567}}

    def val(n: int, psnr: float, **extra: float) -> dict:
        return {"time": float(n), "kind": "validation", "step": n, "psnr": psnr, "ssim": 0.5, "best": False, **extra}

    # stopped hard after step 30's validation, resumed from the step-20 state: 30 is logged twice
    _log(run / "log.jsonl", [step(10, 0.9), val(10, 15.0), step(20, 0.8), val(20, 17.0), step(30, 0.7), val(30, 16.0),
                             step(30, 0.65), val(30, 16.5), step(40, 0.6), val(40, 18.123456, psnr_gt_mean=22.0)])
    (run / "split.json").write_text(json.dumps({"labeled": [1, 2], "unlabeled": [3], "validation": [4], "seed": 0}))
    (run / "config.yaml").write_text("optim: {epochs: 4}\n")
    facts = bundler.run_facts(run)
    assert facts["validation_history"] == [
        {"step": 10, "psnr": 15.0, "ssim": 0.5}, {"step": 20, "psnr": 17.0, "ssim": 0.5},
        {"step": 30, "psnr": 16.5, "ssim": 0.5}, {"step": 40, "psnr": 18.1235, "ssim": 0.5, "psnr_gt_mean": 22.0},
    ]  # GT-mean PSNR where the log has it (runs before 2026-11-25 did not log it)
    assert facts["last_terms"] == {"step": 40, "loss": 0.6, "mc_final": 0.000457}
    # a bundle keeps them in provenance.training; the script reads either source alike
    bundle = tmp_path / "weights/a"
    bundle.mkdir(parents=True)
    training = {k: v for k, v in facts.items() if k != "config"}
    (bundle / "config.json").write_text(json.dumps({"provenance": {"training": training}}))
    assert history.read_history(bundle) == history.read_history(run)
    assert history.main([str(bundle), "--last", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{bundle}: 4 validations, best 18.12 dB at step 40"
    assert "| 30 | 16.50 | 0.5000 | (not logged) |" in out
    assert "| 40 | 18.12 | 0.5000 | 22.00 |" in out
    assert out[-2] == "last 3 validations (steps 20 to 40): 16.50 to 18.12 dB, mean 17.21"
    assert out[-1] == "loss terms at step 40: loss 0.6, mc_final 0.000457"
    # a checkpoint bundled before histories were recorded is named, not guessed at
    (bundle / "config.json").write_text(json.dumps({"provenance": {"training": {"steps": 40}}}))
    with pytest.raises(SystemExit, match="without a validation history"):
        history.read_history(bundle)
    with pytest.raises(SystemExit, match="neither a run folder"):
        history.read_history(tmp_path)


def test_bundling_a_checkpoint_other_than_best_quotes_its_own_step_and_validation(tmp_path):
    bundler = _script("bundle_weights")
    run = tmp_path / "runs/a"
    records = []
    for n, psnr in ((10, 15.0), (20, 17.0), (30, 16.0), (40, 18.0)):
        records += [{"time": float(n), "kind": "step", "step": n, "total_steps": 40, "terms": {"loss": 1.0}},
                    {"time": float(n), "kind": "validation", "step": n, "psnr": psnr, "ssim": psnr / 20, "best": n in (20, 40)}]
    _log(run / "log.jsonl", records)
    (run / "split.json").write_text(json.dumps({"labeled": [1, 2], "unlabeled": [3], "validation": [4], "seed": 0}))
    (run / "config.yaml").write_text("optim: {epochs: 4}\n")
    best = bundler.run_facts(run, 40)
    assert (best["best_step"], best["run_best_step"], best["best_val_psnr"]) == (40, 40, 18.0)
    assert bundler.chosen_text(best) == "at the best validation step (40 of 40)"
    chosen = bundler.run_facts(run, 30)  # a copy of the EMA at step 30, chosen by a rule of its own
    assert (chosen["best_step"], chosen["run_best_step"], chosen["best_val_psnr"], chosen["best_val_ssim"]) == (30, 40, 16.0, 0.8)
    assert bundler.chosen_text(chosen).startswith("at step 30 of 40, chosen by a rule of its own")
    assert bundler.run_facts(run)["best_step"] == 40
    with pytest.raises(SystemExit, match="no validation at step 35"):
        bundler.run_facts(run, 35)


def test_a_card_says_how_its_validation_pairs_were_held_out():
    bundler = _script("bundle_weights")
    facts = {"split_seed": 0, "validation": 15, "config": {"data": {"hold_out": "pair"}}}
    assert bundler.held_out_text(facts).startswith("Seed 0: 15 pairs with references held out for validation, each alone")
    assert "recall of trained scenes" in bundler.held_out_text(facts)
    for data in ({"hold_out": "scene"}, {}):  # runs before data.hold_out held out scenes
        text = bundler.held_out_text({**facts, "config": {"data": data}})
        assert text.endswith("(`data.hold_out: scene`: new scenes)") and "recall" not in text


def test_photo_eval_counts_the_outputs_identical_to_their_reference():
    evaluator = _script("photo_eval")
    rng = np.random.default_rng(0)
    photos = [(str(i), (rng.random((96, 96, 3)) * 255).astype(np.uint8)) for i in range(3)]

    class TouchesTheLast:  # passes two photos bit for bit, changes one pixel of the third
        def enhance_pixels(self, low):
            out = low.copy()
            if low is photos[2][1]:
                out[0, 0, 0] ^= 1
            return out

    summary = evaluator.score_set(TouchesTheLast(), [(name, low, low) for name, low in photos], None, "bright")["summary"]
    assert summary["identical_count"] == 2 and np.isfinite(summary["psnr_out_min"])


def test_lineage_hours_count_a_parent_run_that_was_not_bundled_and_what_it_started_from(tmp_path, monkeypatch):
    bundler = _script("bundle_weights")
    monkeypatch.setattr(bundler, "ROOT", tmp_path)

    def bundle(name: str, provenance: dict) -> None:
        (tmp_path / "weights" / name).mkdir(parents=True)
        (tmp_path / "weights" / name / "config.json").write_text(json.dumps({"architecture": "crnet-s", "provenance": provenance, "sha256": {}}))

    bundle("m-stage1", {"training": {"wall_hours": 5.0}})
    bundle("m-stage2", {"training": {"wall_hours": 1.0}, "parent_weights": "m-stage1"})
    # stage 3 continued from a run's best/ that was not bundled, which itself started from m-stage2
    bundle("m-stage3", {"training": {"wall_hours": 0.25}, "parent_weights": None,
                        "parent_run": {"wall_hours": 0.5, "train_config": {"model": {"init_from": "weights/m-stage2"}}}})
    bundle("m", {"training": {"wall_hours": 2.0}, "parent_weights": "m-stage3"})
    prov = json.loads((tmp_path / "weights/m/config.json").read_text())["provenance"]
    assert bundler.lineage_hours(prov) == pytest.approx(2.0 + 0.25 + 0.5 + 1.0 + 5.0)


def test_rebundling_the_same_weights_keeps_their_pinned_architecture_kwargs(tmp_path):
    bundler = _script("bundle_weights")
    best, target = tmp_path / "runs/a/best", tmp_path / "weights/a"
    for folder, kwargs, digest in ((best, {}, "w1"), (target, {"global_context": False}, "w1")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"architecture": "crnet-s", "kwargs": kwargs, "sha256": {"model.safetensors": digest}}))
        (folder / "model.safetensors").write_bytes(digest.encode())
    bundler.copy_checkpoint(best, target)  # same weights: the kwargs pinned in the bundle stay
    assert json.loads((target / "config.json").read_text())["kwargs"] == {"global_context": False}
    (best / "config.json").write_text(json.dumps({"architecture": "crnet-s", "kwargs": {}, "sha256": {"model.safetensors": "w2"}}))
    (best / "model.safetensors").write_bytes(b"w2")
    bundler.copy_checkpoint(best, target)  # new weights: the run's own config
    assert json.loads((target / "config.json").read_text())["kwargs"] == {}
    assert (target / "model.safetensors").read_bytes() == b"w2"


def test_history_only_refuses_a_run_whose_best_is_not_the_bundled_weights(tmp_path):
    bundler = _script("bundle_weights")
    for folder, digest in ((tmp_path / "runs/a/best", "w1"), (tmp_path / "weights/a", "w2")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"architecture": "crnet-s", "sha256": {"model.safetensors": digest}}))
    with pytest.raises(SystemExit, match="does not hold the weights bundled"):
        bundler.record_history(tmp_path / "runs/a", tmp_path / "weights/a")


def test_step_time_is_the_median_over_log_lines_leaving_out_stops(tmp_path, capsys):
    history = _script("run_history")
    run = tmp_path / "run"
    lines = [(10, 0.0), (20, 30.0), (30, 60.0), (40, 100.0), (50, 5000.0), (60, 5030.0), (50, 5040.0), (70, 5070.0)]
    _log(run / "log.jsonl", [{"time": t, "kind": "step", "step": s, "total_steps": 70, "terms": {"loss": 1.0}} for s, t in lines]
         + [{"time": 5071.0, "kind": "validation", "step": 70, "psnr": 10.0, "ssim": 0.1, "best": True}])
    records = history.read_records(run)
    # 3.0, 3.0, 4.0 (10-40), the 82-minute stop left out, 3.0 (50-60), the resume back to 50 left out, 1.5 (50-70)
    assert history.median_step_seconds(records, 10, 70) == 3.0
    assert history.median_step_seconds(records, 30, 40) == 4.0
    assert history.median_step_seconds(records, 80, 90) != history.median_step_seconds(records, 80, 90)  # NaN: none
    assert history.main([str(run), "--step-time", "10", "40"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "median seconds per step, steps 10 to 40: 3.00"


def test_validate_run_reproduces_the_validation_training_logged(tmp_path, capsys):
    import cv2
    from typer.testing import CliRunner

    from lowlight_cli.cli.app import app
    from lowlight_cli.data.pairs import synthetic_pairs

    data = tmp_path / "data"
    for pair in synthetic_pairs(8, size=(64, 80), seed=3):
        for side, pixels in (("low", pair.low), ("high", pair.high)):
            (data / "train" / side).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(data / "train" / side / f"{pair.name}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--data", str(data), "--set", "model.name=crnet-tiny", "--set", "data.val_count=3",
        "--set", "data.patch_size=32", "--set", "data.patches_per_image=2", "--set", "data.batch_size=4",
        "--set", "run.device=cpu", "--set", "run.val_every=3", "--max-steps", "3", "--out", str(run)])
    assert result.exit_code == 0, result.output
    logged = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    logged = [r for r in logged if r["kind"] == "validation"][-1]
    assert _script("validate_run").main([str(run), "best", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    held_out = len(json.loads((run / "split.json").read_text())["validation"])
    assert out[0].startswith(f"{run}: {held_out} validation pairs from {data}")
    assert out[-1] == (f"| best | {logged['step']} | {logged['psnr']:.2f} | {logged['ssim']:.4f} | "
                       f"{logged['psnr_gt_mean']:.2f} |")
    with pytest.raises(SystemExit):
        _script("validate_run").main([str(tmp_path), "best"])  # not a run folder
    synthetic = tmp_path / "synthetic-run"  # a run on data.root synthetic: said, not a DataError traceback
    synthetic.mkdir()
    (synthetic / "split.json").write_text((run / "split.json").read_text())
    (synthetic / "config.yaml").write_text("data: {root: synthetic}\n")
    with pytest.raises(SystemExit):
        _script("validate_run").main([str(synthetic), "best"])
    assert "trained on synthetic data" in capsys.readouterr().err
    # --exposure: mean gray of inputs, outputs and references, each in [0, 1]
    assert _script("validate_run").main([str(run), "best", "--device", "cpu", "--exposure"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"  validation ({held_out}): mean gray input / output / reference ")
    assert all(0.0 <= float(v) <= 1.0 for v in line.rsplit(" ", 5)[-5::2])
    # --make-split: the same validation pairs rebuilt from the data alone (a bundled checkpoint's run
    # folder is not in the repository), so the same score
    rebuilt = tmp_path / "rebuilt"
    assert _script("validate_run").main([str(rebuilt), str(run / "best"), "--device", "cpu", "--make-split",
                                         "--data", str(data), "--val-count", "3"]) == 0
    assert json.loads((rebuilt / "split.json").read_text())["validation"] == json.loads((run / "split.json").read_text())["validation"]
    assert capsys.readouterr().out.splitlines()[-1].split("|")[3:5] == out[-1].split("|")[3:5]
    # --recall-weighted: test low images that are a training low (a room trained on) and noise (a new
    # room) give the weight 1/2; a file that is not an image is passed over
    (data / "test" / "low").mkdir(parents=True)
    trained = json.loads((run / "split.json").read_text())["labeled"][0]
    cv2.imwrite(str(data / "test" / "low" / "1.png"), cv2.imread(str(data / "train" / "low" / f"{trained}.png")))
    cv2.imwrite(str(data / "test" / "low" / "2.png"), np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    (data / "test" / "low" / "README.txt").write_text("not an image")
    assert _script("validate_run").main([str(run), "best", "--device", "cpu", "--recall-weighted"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "weight 0.500 on the first" in lines[1]
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| best")}
    same, new = int(lines[1].split(": ")[1].split(" ")[0]), held_out - int(lines[1].split(": ")[1].split(" ")[0])
    assert ("best, recall-weighted" in rows) == (same > 0 and new > 0)
    assert rows["best"] == out[-1]  # the whole set's row is unchanged
    # --trained: the pairs the run trained on; --gain-exponent: curve models only, 1 gives the plain row
    assert _script("validate_run").main([str(run), "best", "--device", "cpu", "--trained"]) == 0
    trained_count = len(json.loads((run / "split.json").read_text())["labeled"])
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{run}: {trained_count} trained pairs")
    with pytest.raises(SystemExit):
        _script("validate_run").main([str(run), "best", "--device", "cpu", "--gain-exponent", "0.9"])
    assert "applies to CRNet curve models" in capsys.readouterr().err
    from lowlight_cli.models import create_model
    from lowlight_cli.models.checkpoint import save_checkpoint

    kwargs = {"channels": 4, "groups": 1, "blocks": 1, "context_channels": 4}
    torch.manual_seed(0)
    curve = save_checkpoint(create_model("crnet-curve-dn", pretrained=False, **kwargs), tmp_path / "curve",
                            architecture="crnet-curve-dn", kwargs=kwargs)
    assert _script("validate_run").main([str(run), str(curve), "--device", "cpu", "--gain-exponent", "1", "0.5"]) == 0
    rows = [line.split("|")[3:6] for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {curve}")]
    assert len(rows) == 3 and rows[1] == rows[0] and rows[2] != rows[0]


def test_cards_of_other_methods_say_what_the_method_is_and_what_it_was_trained_with(tmp_path):
    """A run of an unpaired method (here a 2-step PIE run of the test-size DCE-Net) gets a card built from
    its method's --explain text, its loss section as run, its frozen networks, data and lineage."""
    import argparse

    from typer.testing import CliRunner

    from lowlight_cli.cli.app import app
    from lowlight_cli.models import load_checkpoint
    from lowlight_cli.models.complexity import measure_complexity

    from .test_methods import UNPAIRED

    bundler = _script("bundle_weights")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--method", "pie", *UNPAIRED, "--max-steps", "2", "--set", "run.val_every=1",
                                      "--out", str(run)])
    assert result.exit_code == 0, result.output
    facts = bundler.run_facts(run)
    model = load_checkpoint(run / "best")
    config = json.loads((run / "best" / "config.json").read_text())
    parent = {"command": "lowlight train --method pie (first stage)", "steps": 1057, "epochs": 4.6, "wall_hours": 0.5}
    config["provenance"]["parent_run"] = parent
    facts["config"]["model"]["init_from"] = "runs/pie-parent"
    scores = {"psnr": 17.0, "ssim": 0.56, "niqe": 4.2, "images": 15, "protocol": "the protocol"}
    args = argparse.Namespace(name="pie-test", command="lowlight train --method pie ...", note="")
    card = bundler.method_card(args, model, measure_complexity(model, size=64), config, facts, scores, "the machine", "pie")
    assert card.startswith("# pie-test\n") and "lowlight train --method pie`" in card
    assert "PIE (Liang et al." in card or "PIE" in card.split("## Method")[1]
    assert "As run: `pie:` tv 200.0, colour 8.0" in card
    assert "`vgg19-normalised` from `stand-in: seeded random weights`" in card
    assert "unpaired: 8 low-light inputs" in card
    assert "Region brightness consistency is computed as the papers describe it" in card
    assert "SCL-LLE 12.42 / 0.520, PIE 11.54 / 0.485, Zero-DCE 14.86 / 0.559" in card
    assert "## Lineage" in card and "after step 1057" in card and "Both stages together" in card
    assert "**PSNR 17.00 dB, SSIM 0.5600**" in card


def test_lineage_mentions_new_modules_only_when_the_warm_start_lacked_some(tmp_path):
    from safetensors.torch import save_file

    from lowlight_cli.models import create_model

    bundler = _script("bundle_weights")
    model = create_model("crnet-s")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "same.safetensors"))
    assert bundler.new_modules_text(model, tmp_path / "same.safetensors") == ""
    save_file({k: v for k, v in list(state.items())[1:]}, str(tmp_path / "fewer.safetensors"))
    assert "new modules" in bundler.new_modules_text(model, tmp_path / "fewer.safetensors")


def test_a_parent_run_counts_the_hours_up_to_the_weights_taken_from_it():
    bundler = _script("bundle_weights")
    records = [{"kind": "step", "step": s, "time": t} for s, t in ((10, 0.0), (20, 360.0), (30, 3960.0), (40, 4320.0), (50, 7920.0))]
    # 10 -> 20: 0.1 h; 20 -> 30: a stop of an hour, left out; 30 -> 40: 0.1 h; after step 40: not these weights'
    assert bundler.hours_until(records, 40) == 0.2
    assert bundler.hours_until(records, 20) == 0.1
    assert bundler.hours_until(records, 10**9) == 0.2  # 40 -> 50 is another hour-long gap


def test_exposure_predictability_finds_a_predictable_error_and_not_noise():
    script = _script("exposure_predictability")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    groups = np.repeat(np.arange(100), 2)  # pairs sharing a reference stay in one fold
    predictable = 0.5 * x[:, 0] - 0.2 * x[:, 2] + rng.normal(scale=0.05, size=200)
    noise = rng.normal(scale=0.2, size=200)
    r2 = lambda y: 1 - script.cross_validated_residuals(x, y, groups, ridge=1.0).var() / y.var()
    assert r2(predictable) > 0.9 and r2(noise) < 0.05
    low = np.full((4, 4, 3), 0.1, np.float32)
    features = script.image_features(low, low * 4)
    assert len(features) == len(script.FEATURES) and abs(features[0] - np.log(0.1 + script.EPS)) < 1e-6


def test_exposure_predictability_noise_statistics_rise_with_the_noise():
    script = _script("exposure_predictability")
    rng = np.random.default_rng(0)
    clean = np.clip(np.linspace(0.02, 0.2, 64, dtype=np.float32)[None, :, None] * np.ones((64, 1, 3), np.float32), 0, 1)
    quiet = np.clip(clean + rng.normal(scale=0.005, size=clean.shape), 0, 1).astype(np.float32)
    noisy = np.clip(clean + rng.normal(scale=0.04, size=clean.shape), 0, 1).astype(np.float32)
    a, b = script.noise_features(quiet), script.noise_features(noisy)
    assert len(a) == len(script.NOISE_FEATURES)
    assert all(y > x for x, y in zip(a, b))  # every statistic is larger for the noisier image


def test_lol_neighbours_layout_ignores_exposure_and_finds_the_same_scene():
    script = _script("lol_neighbours")
    rng = np.random.default_rng(0)
    scenes = [rng.uniform(0.05, 0.9, size=(48, 64, 3)) for _ in range(3)]
    library = np.stack([script.layout((s * 255).astype(np.uint8)) for s in scenes])
    darker = (scenes[1] * 0.25 * 255).astype(np.uint8)  # the same room at a quarter of the exposure
    index, similarity = script.nearest(script.layout(darker), library)
    assert index == 1 and similarity > 0.95
    other = script.nearest(script.layout((rng.uniform(0.05, 0.9, size=(48, 64, 3)) * 255).astype(np.uint8)), library)[1]
    assert other < 0.5
    ref = (scenes[0] * 255).astype(np.uint8)
    psnr, ssim = script.scores(ref, ref)
    assert psnr > 60 and abs(ssim - 1) < 1e-6


def test_memorisation_probe_picks_its_pairs_and_finds_repeats(tmp_path):
    probe = _script("memorisation_probe")
    names = [str(n) for n in range(1, 40)]
    assert probe.every_nth(names, 15) == ["1", "23", "37"]  # sorted as file names: 1, 10, 11, ..., 19, 2, 20, ...
    assert probe.neighbour("5", {"4", "6", "7"}, {"6"}) == "4"  # n+1 taken: n-1
    assert probe.neighbour("5", {"7"}, set()) == "7" and probe.neighbour("5", {"9"}, set()) is None
    assert probe.neighbour("a", {"b"}, set()) is None

    rng = np.random.default_rng(0)
    room = rng.uniform(0.05, 0.9, size=(24, 32, 3))
    u8 = lambda x: (np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    library = {"a": (u8(room * 0.2), u8(room)), "b": (u8(room * 0.6), u8(room * 0.9)), "c": (u8(rng.uniform(size=room.shape) * 0.2), u8(room))}
    repeat = u8(room * 0.2 + rng.normal(0, 0.001, room.shape))  # the capture of "a" again, a little noise
    (twin,) = probe.repeat_twins({"t": (repeat, u8(room))}, library)
    assert twin.twin == "a" and twin.low_psnr >= probe.SAME_CAPTURE_DB and twin.reference_psnr == float("inf")
    (other,) = probe.repeat_twins({"t": (u8(room * 0.4), u8(room * 0.5))}, library)  # the room at another exposure
    assert other.low_psnr < probe.SAME_CAPTURE_DB and other.reference_psnr < probe.SAME_REFERENCE_DB
    assert probe.repeat_twins({"t": (u8(np.zeros((8, 8, 3))), u8(np.zeros((8, 8, 3))))}, library) == []  # no size match

    layouts = {n: _script("lol_neighbours").layout(library[n][0]) for n in library}
    layouts["v"] = _script("lol_neighbours").layout(u8(room * 0.05))
    matches = probe.same_room_matches(["v"], ["a", "b", "c"], layouts)["v"]
    assert set(matches) == {"a", "b"}  # the room at any exposure; the unrelated "c" is not
    assert probe.same_room_matches(["v"], ["a", "b", "c"], layouts, per_room=1) == {"v": matches[:1]}  # most similar first
    assert probe.same_room_matches(["c"], ["a", "b"], layouts) == {}  # a room with no match is left out

    _fake_lol(tmp_path / "LOL")
    from lowlight_cli.data.pairs import find_pairs

    pairs = {p.name: p for p in find_pairs(tmp_path / "LOL", "train") if p.high is not None}
    subset = probe.link_subset(pairs, ["1", "3"], tmp_path / "subset", tmp_path / "LOL" / "test")
    assert sorted(p.name for p in (subset / "train" / "low").iterdir()) == ["1.webp", "3.webp"]
    assert (subset / "train" / "high" / "3.webp").read_bytes() == (tmp_path / "LOL" / "train" / "high" / "3.webp").read_bytes()
    assert (subset / "test").resolve() == (tmp_path / "LOL" / "test").resolve()
    probe.link_subset(pairs, ["1", "3"], tmp_path / "subset", tmp_path / "LOL" / "test")  # again: nothing to redo


def test_average_weights_writes_a_loadable_mean_checkpoint(tmp_path):
    import torch

    from lowlight_cli.models import create_model, load_checkpoint
    from lowlight_cli.models.checkpoint import save_checkpoint

    script = _script("average_weights")
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("crnet-curve-dn", pretrained=False, channels=4, groups=1, blocks=1, context_channels=4,
                             refine_channels=4)
        folders.append(save_checkpoint(model, tmp_path / f"m{seed}", architecture="crnet-curve-dn",
                                       kwargs={"channels": 4, "groups": 1, "blocks": 1, "context_channels": 4,
                                               "refine_channels": 4}))
    assert script.main([str(f) for f in folders] + ["-o", str(tmp_path / "soup")]) == 0
    soup = load_checkpoint(tmp_path / "soup").state_dict()  # loads: config, sha256 and shapes agree
    a, b = (load_checkpoint(f).state_dict() for f in folders)
    for key in soup:
        if soup[key].is_floating_point():
            assert torch.allclose(soup[key], (a[key] + b[key]) / 2, atol=1e-7)
    other = tmp_path / "other"
    save_checkpoint(create_model("gamma", pretrained=False), other, architecture="gamma", kwargs={})
    with pytest.raises(SystemExit):
        script.main([str(folders[0]), str(other), "-o", str(tmp_path / "bad")])


def test_torchrun_stress_counts_a_hung_round_and_kills_its_processes(tmp_path):
    stress = _script("torchrun_stress")
    assert stress.run_round(30, [sys.executable, "-c", "pass"])[0] == "passed"
    assert stress.run_round(30, [sys.executable, "-c", "raise SystemExit(1)"])[0] == "failed"
    marker = tmp_path / "child.pid"
    # a parent that starts a child and waits: both must be gone after the round times out
    hang = [sys.executable, "-c",
            "import subprocess, sys, pathlib; "
            f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"pathlib.Path({str(marker)!r}).write_text(str(c.pid)); c.wait()"]
    outcome, seconds = stress.run_round(3, hang)
    assert outcome == "hung" and seconds < 30
    child = int(marker.read_text())
    deadline = time.time() + 10
    while Path(f"/proc/{child}").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


def test_guided_filter_sweep_keeps_luma_and_its_none_setting_is_the_identity():
    sweep = _script("guided_filter_sweep")
    rng = np.random.default_rng(0)
    base = np.linspace(40, 200, 48 * 64, dtype=np.float32).reshape(48, 64)
    clean = np.stack([base, 0.8 * base, 0.6 * base], axis=-1)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    dark = (noisy // 8).astype(np.uint8)
    same = sweep.apply(dark, noisy, chroma="none", radius=0, eps=0.0, gate="linear")
    assert np.abs(same.astype(int) - noisy.astype(int)).max() <= 1  # float round trip only
    smoothed = sweep.apply(dark, noisy, chroma="guided", radius=2, eps=1e-4, gate="none")

    def luma(rgb):
        return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])

    def chroma_error(rgb):
        return np.abs((rgb.astype(np.float64) - luma(rgb)[..., None]) - (clean - luma(clean)[..., None])).mean()

    assert np.abs(luma(smoothed) - luma(noisy)).mean() < 0.6  # luma kept (to rounding and clipping)
    assert chroma_error(smoothed) < 0.6 * chroma_error(noisy)
    assert set(sweep.GRIDS) == {"chroma", "variants", "luma"}


@pytest.mark.parametrize("script", ["examples/make_examples.py", "examples/before_after.py", "scripts/snapshot_run.py",
                                    "scripts/memorisation_probe.py", "scripts/noise_eps_trial.py",
                                    "scripts/chroma_radius_trial.py"])
def test_help_prints_usage_exits_0_and_writes_nothing(script, tmp_path):
    import subprocess

    watched = ROOT / "examples"
    before = {p.name: p.stat().st_mtime_ns for p in watched.iterdir()}
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in watched.iterdir()} == before  # make_examples.py wrote on --help


def test_black_point_trial_lowers_a_lifted_black_halfway_and_keeps_what_it_must():
    trial = _script("black_point_trial")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 64 * 96).reshape(64, 96)
    low = np.clip(np.stack([ramp, ramp, ramp], -1) * 30 + rng.normal(0, 1, (64, 96, 3)), 0, 255).astype(np.uint8)
    lifted = np.clip(40 + low.astype(np.float64) * 8, 0, 255).astype(np.uint8)  # blacks near 0.16, brightened
    low[:8, -8:], lifted[:8, -8:] = 50, 50  # a patch the model left as it was, in the shadows
    gray = lambda rgb: rgb.astype(np.float64) @ trial.LUMA / 255  # noqa: E731
    b = np.percentile(gray(lifted), 1)
    toned = trial.black_point(low, lifted, target=0.1, strength=0.5, pivot=1.0)
    assert abs(np.percentile(gray(toned), 1) - (b - 0.5 * (b - 0.1))) < 0.01  # halfway to the target
    assert (toned.astype(int) >= low.astype(int)).all()  # never below the input
    assert (toned <= lifted).all()  # darkens only: clips nothing new
    above = gray(lifted) >= gray(lifted).mean()
    assert np.array_equal(toned[above], lifted[above])  # identity above the pivot
    assert (toned[:8, -8:] == 50).all()  # the untouched patch: held at its input
    free = np.ones(low.shape[:2], bool)
    free[:8, -8:] = False
    order = np.argsort(gray(lifted)[free], kind="stable")
    assert (np.diff(gray(toned)[free][order]) >= -1 / 255).all()  # the other tones keep their order
    assert np.array_equal(trial.black_point(low, low, target=0.1, strength=1.0, pivot=1.0), low)  # passed photo: unchanged


def test_black_point_trials_calibrated_toe_lands_the_black_on_its_goal():
    """Round 4: the strength found by bisection puts the toned output's 1st-percentile luma on
    ``b - w s (b - t)`` where the cap allows, and at most 0.9 where it does not."""
    trial = _script("black_point_trial")
    rng = np.random.default_rng(5)
    low = np.clip(rng.normal(20, 4, (120, 160, 3)), 0, 255).astype(np.uint8)
    low[:, 80:] = 90  # a lit half: the pivot sits above the blacks
    lifted = np.clip(30 + low.astype(np.float64) * 2 + rng.normal(0, 3, low.shape), 0, 255).astype(np.uint8)
    gray = lambda rgb: rgb.astype(np.float64) @ trial.LUMA / 255  # noqa: E731
    b = np.percentile(gray(lifted), 1)
    halfway = trial.calibrated_toe(low, lifted, 0.1, 0.5, 1.5)
    assert abs(np.percentile(gray(halfway), 1) - (b - 0.5 * (b - 0.1))) < 0.004  # on the goal, to rounding
    plain = trial.toe_step(low, lifted, 0.1, 0.5, 1.5, gain_from="base")
    assert np.percentile(gray(plain), 1) > np.percentile(gray(halfway), 1) + 0.004  # round 3's ends above it
    deepest = trial.calibrated_toe(low, lifted, 0.0001, 1.0, 1.5)  # a goal out of reach: the cap
    assert (deepest.astype(int) >= low.astype(int)).all() and np.percentile(gray(deepest), 1) > 0.0001
    assert np.array_equal(trial.calibrated_toe(low, low, 0.1, 1.0, 1.5), low)  # a passed photo: unchanged


def test_black_point_trials_chosen_step_is_what_the_library_runs(capsys):
    """Round 3's candidate, as the trial scored it (float64, its own guided filter), and
    ``lowlight_cli.inference.blacks.keep_blacks`` (float32, in bands) give the same pixels within a level."""
    from lowlight_cli.inference.blacks import REFERENCE_BLACK, keep_blacks

    trial = _script("black_point_trial")
    rng = np.random.default_rng(3)
    low = np.clip(rng.normal(8, 3, (300, 420, 3)), 0, 255).astype(np.uint8)
    low[40:120, 200:380] = (60, 50, 40)  # a lit wall
    low[10:20, 10:20] = 240  # a lamp
    lifted = np.clip(45 + low.astype(np.float64) * 3 + rng.normal(0, 5, low.shape), 0, 255).astype(np.uint8)
    by_trial = trial.STEPS["base-y"](low, lifted, REFERENCE_BLACK, 1.0, 1.5)
    by_library = lifted.copy()
    assert keep_blacks(low, by_library) is not None
    assert not np.array_equal(by_trial, lifted)
    difference = np.abs(by_trial.astype(int) - by_library)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    sets = {"lights": [("wall", low, lifted, lifted)]}
    trial.print_per_photo(sets, lambda l, o: by_trial, "base-y s 1, p 1.5", names=("lights",))
    printed = capsys.readouterr().out
    assert "0 of 1 photos gain" in printed or "1 of 1 photos gain" in printed
    assert "| wall |" in printed


def test_weights_table_names_each_bundle_by_its_method_and_the_data_it_used():
    table = _script("weights_table")

    def prov(method: str, semi: bool, data: str) -> dict:
        return {"method": method, "training_data": data, "train_config": {"run": {"semi": semi}},
                "training": {"labeled": 49, "unlabeled": 414}}

    assert table.training_text(prov("crnet", False, "split: 49 labeled")) == ("supervised", "49 labeled")
    assert table.training_text(prov("mcmt", True, "split: 49 labeled, 414 unlabeled (used)")) == ("MCMT", "49 labeled + 414 unlabeled")
    # a semi-supervised method run without unlabeled batches used no unlabeled images
    assert table.training_text(prov("semi-llie", True, "split: 49 labeled, 414 unlabeled (not used: ...)")) == ("`semi-llie`", "49 labeled")
    assert table.training_text(prov("pie", False, "unpaired: 463 low-light inputs, 383 positives")) == ("`pie`", "unpaired, 463 low-light inputs")


def test_record_per_image_writes_each_pairs_scores_only_when_the_card_reproduces(tmp_path):
    """scripts/record_per_image.py: the per-pair scores the bundled-weights test checks a few pairs
    against, added only to a checkpoint whose means still reproduce its card."""
    import json

    import torch

    from lowlight_cli.models import create_model
    from lowlight_cli.models.checkpoint import save_checkpoint

    from .photos import dark_photo, save_photo

    bundler, recorder = _script("bundle_weights"), _script("record_per_image")
    data = tmp_path / "LOL"
    for i, stem in enumerate(("1", "22")):
        save_photo(data / "test" / "low" / f"{stem}.png", dark_photo(96, 112, seed=i))
        save_photo(data / "test" / "high" / f"{stem}.png", dark_photo(96, 112, seed=i, exposure=0.6))
    torch.manual_seed(0)
    kwargs = {"channels": 4, "groups": 1, "blocks": 1, "context_channels": 4, "refine_channels": 4}
    folder = save_checkpoint(create_model("crnet-curve-dn", pretrained=False, **kwargs), tmp_path / "ckpt",
                             architecture="crnet-curve-dn", kwargs=kwargs)
    scores = bundler.lol_test_scores(folder, data)
    assert set(scores["per_image"]) == {"1", "22"} and set(scores["per_image"]["1"]) == {"psnr", "ssim"}
    card = {k: scores[k] for k in ("psnr", "ssim", "niqe", "images", "protocol")}
    config = json.loads((folder / "config.json").read_text())
    config["provenance"] = {"lol_test": dict(card, psnr=card["psnr"] + 0.2)}  # a card the weights no longer give
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="not recorded"):
        recorder.record(folder, data)
    assert "per_image" not in json.loads((folder / "config.json").read_text())["provenance"]["lol_test"]
    config["provenance"] = {"lol_test": card}
    (folder / "config.json").write_text(json.dumps(config))
    assert recorder.record(folder, data) == scores["per_image"]
    recorded = json.loads((folder / "config.json").read_text())["provenance"]["lol_test"]
    assert recorded["per_image"] == scores["per_image"] and recorded["psnr"] == card["psnr"]  # the card's figures kept
    part = bundler.lol_test_scores(folder, data, bundler.PER_IMAGE_METRICS, names=("22",))
    assert part["images"] == 1 and part["per_image"] == {"22": scores["per_image"]["22"]}


def test_gain_map_trial_changes_only_what_each_candidate_names():
    trial = _script("gain_map_trial")
    import torch

    logits = torch.randn(1, 3, 16, 16)
    assert torch.equal(trial.flatten_logits(logits, 1.0), logits)  # as trained
    share, flat = torch.sigmoid(logits), torch.sigmoid(trial.flatten_logits(logits, 0.5))
    mean = share.mean(dim=(-2, -1), keepdim=True)
    assert torch.allclose(flat, 0.5 * share + 0.5 * mean, atol=1e-5)  # halfway to the photo's mean share

    x = torch.linspace(0, 0.2, 16 * 16).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    correction = torch.full((1, 3, 16, 16), 0.05)
    correction[:, 0] = -0.05  # a negative offset is left alone
    toed = trial.toe_limited(correction, x, 0.5)
    assert torch.equal(trial.toe_limited(correction, x, 0.0), correction)
    assert toed[0, 1, 0, 0] == 0 and torch.equal(toed[:, 0], correction[:, 0])  # no offset at black
    bright = x[:, :1] >= 0.5 * x.mean()
    assert torch.equal(toed[:, 1:2][bright], correction[:, 1:2][bright])  # mid-tones keep theirs

    model = trial.create_model("crnet-curve-dn", pretrained=False).eval()
    photo = torch.rand(1, 3, 64, 64) * 0.2
    with torch.no_grad():
        bundled = model(photo)
        with trial.curve_stage_changed(1.0, 1.0, 0.0):
            assert torch.equal(model(photo), bundled)  # the identity candidate is the model
        with trial.curve_stage_changed(0.0, 1.0, 0.0):
            changed = model(photo)
        assert torch.equal(model(photo), bundled)  # restored on leaving
    assert not torch.equal(changed, bundled)


def test_chroma_radius_trial_changes_only_the_filters_radius():
    trial = _script("chroma_radius_trial")
    from lowlight_cli.models import create_model

    bundled = create_model("crnet-curve-dn", pretrained=True)
    wider = trial.with_radius(4)
    assert wider.config == {**bundled.config, "chroma_radius": 4}
    assert all(torch.equal(a, b) for a, b in zip(wider.state_dict().values(), bundled.state_dict().values()))
    rng = np.random.default_rng(2)
    low = np.clip(rng.normal(12, 4, (64, 96, 3)), 0, 255).astype(np.uint8)  # dark, noisy in every channel
    narrow, wide = trial.enhancer_for(2)(low), trial.enhancer_for(4)(low)
    chroma = lambda rgb: (rgb.astype(np.float64) - rgb.astype(np.float64).mean(-1, keepdims=True)).std()  # noqa: E731
    assert chroma(wide) < chroma(narrow)  # the wider window averages more of the colour noise


def test_noise_eps_trial_estimates_noise_like_the_model_and_patches_only_inside_its_context():
    trial = _script("noise_eps_trial")
    import torch
    import torch.nn.functional as F

    from lowlight_cli.models import crnet
    from lowlight_cli.models.noise import IMMERKAER_SCALE, cell_noise_response, cell_noise_taps

    rng = np.random.default_rng(0)
    photo = np.clip(0.2 + rng.normal(0, 0.01, (128, 160, 1)), 0, 1).repeat(3, axis=2)
    assert trial.noise_sigma(photo) == pytest.approx(0.01, rel=0.05)
    cells = cell_noise_response(F.pixel_unshuffle(torch.from_numpy(photo.transpose(2, 0, 1))[None].float(), 8),
                                cell_noise_taps(8))
    assert IMMERKAER_SCALE * float(cells.mean()) == pytest.approx(trial.noise_sigma(photo), rel=0.02)
    original = crnet.smooth_chroma
    with trial.noise_adaptive("4g"):
        assert crnet.smooth_chroma is not original
    assert crnet.smooth_chroma is original and trial.as_trained().cfg.chroma_noise == 0.0
    model = trial.as_trained()  # each candidate runs through the library's noise term
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        plain = model(x)
        trial._State.sigma = 0.01
        for candidate in ("4", "4g"):
            with trial.noise_adaptive(candidate):
                assert not torch.equal(model(x), plain)


def test_lol_training_fit_groups_repeats_by_their_references(tmp_path):
    script = _script("lol_training_fit")
    rng = np.random.default_rng(1)
    u8 = lambda x: (np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    rooms = [rng.uniform(0.05, 0.9, size=(24, 32, 3)) for _ in range(3)]
    noisy = lambda x: u8(x + rng.normal(0, 0.001, x.shape))  # noqa: E731  the same capture again
    pairs = {
        "a1": (noisy(rooms[0] * 0.2), u8(rooms[0])), "a2": (noisy(rooms[0] * 0.2), u8(rooms[0])),  # one reference
        "b1": (noisy(rooms[1] * 0.2), u8(rooms[1])), "b2": (noisy(rooms[1] * 0.2), u8(rooms[1] * 0.5)),  # two
        "c": (u8(rooms[2] * 0.2), u8(rooms[2])),
        "d": (u8(rooms[0] * 0.5), u8(rooms[0])),  # a's room at another exposure: not a repeat
    }
    repeats = script.find_repeats(pairs)
    groups = {n: script.group_of(r) for n, r in repeats.items()}
    assert groups == {"a1": "repeat, same reference", "a2": "repeat, same reference",
                      "b1": "repeat, other reference", "b2": "repeat, other reference", "c": "once", "d": "once"}
    assert [r.name for r in repeats["a1"]] == ["a2"] and repeats["a1"][0].reference_psnr == float("inf")

    raw = {"a1": 20.0, "a2": 22.0, "b1": 18.0, "b2": 18.0, "c": 25.0, "d": 24.0}
    gt_mean = {n: v + 4 for n, v in raw.items()}
    table = script.rows(groups, raw, gt_mean)
    assert table == ["| once | 2 | 24.50 | 28.50 | 4.00 |", "| repeat, same reference | 2 | 21.00 | 25.00 | 4.00 |",
                     "| repeat, other reference | 2 | 18.00 | 22.00 | 4.00 |", "| all | 6 | 21.17 | 25.17 | 4.00 |"]
    csv_path = tmp_path / "fit.csv"
    csv_path.write_text("# lowlight 0.1.0\nname,psnr,ssim,error,warnings\na1,20.5,0.8,,\nbad,,,unreadable,\n")
    assert script.read_scores(csv_path) == {"a1": 20.5}


def test_lol_training_fit_reads_csv_files_without_the_training_machinery():
    # it shares its thresholds and PSNR with memorisation_probe.py through lol_matching.py, which is light
    import subprocess

    def imported(module: str) -> list[str]:  # in a fresh interpreter, so that other tests' imports do not count
        code = (f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import {module}; "
                "print(sorted(k for k in sys.modules if k.startswith(('lowlight_cli.training', 'memorisation_probe'))))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert imported("lol_training_fit") == "[]"
    assert "lowlight_cli.training" in imported("validate_run")  # what it loaded through its old imports
    probe, matching = _script("memorisation_probe"), _script("lol_matching")
    assert (probe.SAME_CAPTURE_DB, probe.SAME_REFERENCE_DB) == (matching.SAME_CAPTURE_DB, matching.SAME_REFERENCE_DB)
