"""Training: losses, EMA, splits, config precedence, exact resume, learning, MCMT, DDP under torchrun."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.pairs import ImagePair
from lowlight_cli.data.patches import plan_epoch
from lowlight_cli.data.splits import make_split
from lowlight_cli.errors import ConfigError
from lowlight_cli.losses import multi_consistency_loss, progressive_loss, ssim_loss
from lowlight_cli.models import create_model, load_checkpoint
from lowlight_cli.training import EMA, build_config
from lowlight_cli.training.config import LossSection
from lowlight_cli.training.steps import MeanTeacherStep, StagesForward, sigmoid_rampup

runner = CliRunner()
SMOKE = [
    "--set", "model.name=crnet-tiny", "--set", "data.root=synthetic", "--set", "data.synthetic_count=10",
    "--set", "data.patch_size=32", "--set", "data.patches_per_image=4", "--set", "data.batch_size=4",
    "--set", "data.unlabeled_batch_size=4", "--set", "run.device=cpu", "--set", "run.log_every=1",
]


# ---- losses -------------------------------------------------------------------------------------
def test_progressive_loss_values_and_gradients():
    target = torch.rand(2, 3, 24, 24)
    zero, terms = progressive_loss(target.clone(), [target.clone()], target)
    assert float(zero) == pytest.approx(0.0, abs=1e-6) and terms["stages_l1"] == 0.0
    stage = target + 0.1
    output = target.clone().requires_grad_(True)
    total, terms = progressive_loss(output, [stage], target, lambda_ms=2.0)
    assert terms["stages_l1"] == pytest.approx(0.1, abs=1e-6)
    assert float(total) == pytest.approx(terms["ssim"] + 0.2, abs=1e-5)
    # the optional final L1 (ours) adds |y_G - gt|_1: a global brightness error SSIM barely sees
    darker = target * 0.8
    plain, _ = progressive_loss(darker, [], target)
    with_l1, terms = progressive_loss(darker, [], target, lambda_final_l1=1.0)
    assert float(with_l1 - plain) == pytest.approx(float((target * 0.2).mean()), rel=1e-5)
    assert terms["final_l1"] == pytest.approx(float((target * 0.2).mean()), rel=1e-5)
    noisy = (target + 0.05 * torch.randn_like(target)).requires_grad_(True)
    ssim_loss(noisy, target).backward()
    assert noisy.grad is not None and noisy.grad.abs().sum() > 0


def test_consistency_loss_trains_the_student_only():
    student = torch.rand(1, 3, 8, 8, requires_grad=True)
    teacher = torch.rand(1, 3, 8, 8, requires_grad=True)
    s_stage = torch.rand(1, 3, 8, 8, requires_grad=True)
    t_stage = torch.rand(1, 3, 8, 8)
    total, terms = multi_consistency_loss(student, [s_stage], teacher, [t_stage], lambda_mc=0.5)
    expected = ((student - teacher) ** 2).mean() + 0.5 * ((s_stage - t_stage) ** 2).mean()
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    total.backward()
    assert student.grad.abs().sum() > 0 and s_stage.grad.abs().sum() > 0
    assert teacher.grad is None


# ---- EMA ----------------------------------------------------------------------------------------
def test_ema_rule_with_warmup():
    student = torch.nn.Linear(2, 1)
    ema = EMA(student, decay=0.9, warmup=True)
    assert ema.current_decay() == 0.0  # first update copies the student
    with torch.no_grad():
        student.weight.fill_(1.0)
    ema.update(student)
    assert torch.equal(ema.teacher.weight, student.weight)
    assert ema.current_decay() == pytest.approx(0.5)  # 1 - 1/2
    before = ema.teacher.weight.clone()
    with torch.no_grad():
        student.weight.fill_(3.0)
    ema.update(student)
    assert torch.allclose(ema.teacher.weight, 0.5 * before + 0.5 * 3.0)
    ema.updates = 100
    assert ema.current_decay() == 0.9
    assert all(not p.requires_grad for p in ema.teacher.parameters())


# ---- splits and config --------------------------------------------------------------------------
def _fake_lol(total: int = 485, with_ref: int = 232) -> list[ImagePair]:
    tiny = np.zeros((4, 4, 3), np.uint8)
    refs = [np.full((4, 4, 3), (i % 256, i // 256, 0), np.uint8) for i in range(with_ref)]  # one scene each
    return [ImagePair(str(i), tiny, refs[i] if i < with_ref else None) for i in range(total)]


def test_split_is_seeded_and_holds_out_validation():
    pairs = _fake_lol()
    a = make_split(pairs, labeled_frac=0.1, val_count=15, seed=0)
    b = make_split(pairs, labeled_frac=0.1, val_count=15, seed=0)
    c = make_split(pairs, labeled_frac=0.1, val_count=15, seed=1)
    assert a == b and a.labeled != c.labeled
    assert len(a.labeled) == 49  # ceil(10% of 485), drawn from the 232 pairs with references
    assert all(int(n) < 232 for n in a.labeled + a.validation)
    assert len(a.validation) == 15
    assert not set(a.validation) & (set(a.labeled) | set(a.unlabeled))
    assert len(a.labeled) + len(a.unlabeled) + len(a.validation) == 485


def test_pairs_sharing_a_reference_stay_on_one_side_of_validation():
    """LOL has scenes shot at several exposures with one reference: never validate on a trained scene."""
    pairs = _fake_lol()
    shared = pairs[0].high
    for i in range(0, 60, 3):  # 20 scenes of three exposures each
        for j in (i + 1, i + 2):
            pairs[j] = ImagePair(pairs[j].name, pairs[j].low, shared if i == 0 else pairs[i].high.copy())
    split_sides = 0
    for seed in range(20):
        s = make_split(pairs, labeled_frac=0.1, val_count=15, seed=seed)
        val, trained = set(s.validation), set(s.labeled) | set(s.unlabeled)
        for i in range(0, 60, 3):
            group = {str(i), str(i + 1), str(i + 2)}
            assert group <= val or not group & val
            split_sides += bool(group & val)
        assert len(s.validation) >= 15 and not val & trained
    assert split_sides > 0  # the groups were drawn into validation, whole


def test_pair_hold_out_trains_on_the_other_exposures_of_a_validated_scene():
    """``hold_out="pair"`` validates like LOL-v1's test set: other captures of a held-out scene train."""
    pairs = _fake_lol()
    for i in range(0, 120, 3):  # 40 scenes of three exposures each
        for j in (i + 1, i + 2):
            pairs[j] = ImagePair(pairs[j].name, pairs[j].low, pairs[i].high.copy())
    shared_scenes = 0
    for seed in range(5):
        s = make_split(pairs, labeled_frac=1.0, val_count=15, seed=seed, hold_out="pair")
        val, trained = set(s.validation), set(s.labeled) | set(s.unlabeled)
        assert len(val) == 15 and not val & trained
        assert s == make_split(pairs, labeled_frac=1.0, val_count=15, seed=seed, hold_out="pair")
        shared_scenes += sum(bool({str(i), str(i + 1), str(i + 2)} & val and {str(i), str(i + 1), str(i + 2)} & trained)
                             for i in range(0, 120, 3))
    assert shared_scenes > 0  # a validated scene's other exposures were trained on
    with pytest.raises(ConfigError, match="hold-out"):
        make_split(pairs, labeled_frac=1.0, val_count=15, seed=0, hold_out="room")
    with pytest.raises(ConfigError, match="data.hold_out"):
        build_config(flags={"data.root": "synthetic"}, assignments=["data.hold_out=room"])


def test_data_seed_fixes_the_labeled_images_while_the_run_seed_varies(tmp_path):
    from lowlight_cli.training import Trainer

    def split(*assignments: str):
        cfg = build_config(flags={"data.root": "synthetic", "data.labeled_frac": 0.3, "data.val_count": 3}, assignments=list(assignments))
        trainer = Trainer(cfg, tmp_path / "_".join(assignments))
        return trainer._split(trainer._load_pairs(lambda e: None), lambda e: None)

    base = split("run.seed=0")
    assert split("run.seed=1", "data.seed=0") == base  # same images, same split (seed recorded: 0)
    assert split("run.seed=1").labeled != base.labeled  # without data.seed the run seed draws the split
    with pytest.raises(ConfigError, match="data.seed"):
        build_config(assignments=["data.seed=-2"])


def test_config_precedence(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("optim:\n  lr: 0.001\n  epochs: 7\ndata:\n  batch_size: 8\n")
    cfg = build_config(yaml_path=yaml_file, flags={"optim.epochs": 9, "optim.lr": None}, assignments=["optim.lr=2e-4"])
    assert cfg.optim.lr == 2e-4  # --set beats the file
    assert cfg.optim.epochs == 9  # a flag beats the file
    assert cfg.data.batch_size == 8  # the file beats the default
    assert cfg.data.patch_size == 96  # default
    with pytest.raises(ConfigError, match="unknown config key"):
        build_config(assignments=["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="optim.lr"):
        build_config(assignments=["optim.lr=fast"])


def test_patch_plan_is_deterministic_and_mixes_unlabeled():
    kw = dict(per_image=3, batch_size=2, unlabeled_batch_size=2, seed=5, epoch=1)
    a = plan_epoch([0, 1, 2], [3, 4], **kw)
    assert a == plan_epoch([0, 1, 2], [3, 4], **kw)
    assert len(a) == 4 and all(len(b) == 4 for b in a)
    assert all(k[0] in (3, 4) for b in a for k in b[2:])


# ---- runs ---------------------------------------------------------------------------------------
def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resume_continues_bit_for_bit(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    common = ["train", "--semi", "--labeled-frac", "0.5", *SMOKE, "--set", "run.val_every=100"]
    assert runner.invoke(app, [*common, "--out", str(straight), "--max-steps", "6"]).exit_code == 0
    first = runner.invoke(app, [*common, "--out", str(halves), "--max-steps", "3"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "6"])
    assert second.exit_code == 0, second.output
    assert "resumed at step 3" in second.output
    import re

    said = " ".join(second.output.split())  # epochs counted from 1, as --epochs counts them
    assert re.search(r"\(epoch [1-9]\d*, after \d+ of its batches\)", said) and "(epoch 0," not in said, said
    a, b = _weights(straight / "last"), _weights(halves / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    from safetensors.torch import load_file

    ta, tb = load_file(str(straight / "last" / "ema.safetensors")), load_file(str(halves / "last" / "ema.safetensors"))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def _ctrl_c_after_backward(monkeypatch, call: int) -> None:
    """Raise KeyboardInterrupt in the ``call``-th step, after its forward and backward passes (random
    numbers drawn, nothing updated yet): where the engine measures the gradients."""
    import lowlight_cli.training.engine as engine

    real, calls = engine.gradient_norm, []

    def stop(model):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(model)

    monkeypatch.setattr(engine, "gradient_norm", stop)


@pytest.mark.parametrize("where", ["after the backward pass", "inside the update"])
def test_a_run_stopped_by_ctrl_c_mid_step_resumes_bit_for_bit(tmp_path, monkeypatch, where):
    """MCMT draws its teacher's input noise inside the step: a Ctrl-C after the draw must save the
    random state the step started from; one landing while the optimiser, EMA and counter move is
    held until they have all moved (review, session 27: the resumed run drifted)."""
    import signal

    import lowlight_cli.training.engine as engine
    from safetensors.torch import load_file

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    common = ["train", "--semi", "--labeled-frac", "0.5", *SMOKE, "--set", "run.val_every=100", "--max-steps", "6"]
    assert runner.invoke(app, [*common, "--out", str(straight)]).exit_code == 0
    calls = []
    if where == "after the backward pass":
        _ctrl_c_after_backward(monkeypatch, 4)
    else:
        real = engine.EMA.update

        def stop(self, model):  # a real SIGINT, as a terminal sends it, between the optimiser step and the counter
            calls.append(1)
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGINT)
            return real(self, model)

        monkeypatch.setattr(engine.EMA, "update", stop)
    result = runner.invoke(app, [*common, "--out", str(stopped)])
    assert result.exit_code == 130 and "resumable state saved" in result.output, result.output
    saved = torch.load(stopped / "last" / "train_state.pt", weights_only=True)["progress"]["step"]
    assert saved == (3 if where == "after the backward pass" else 4)
    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", str(stopped)])
    assert resumed.exit_code == 0 and f"resumed at step {saved}" in resumed.output, resumed.output
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(str(straight / "last" / name)), load_file(str(stopped / "last" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_val_count_the_data_cannot_spare_is_capped_with_a_note(tmp_path):
    capped = runner.invoke(app, ["train", *SMOKE, "--set", "data.val_count=5", "--max-steps", "1", "--out", str(tmp_path / "a")])
    assert capped.exit_code == 0, capped.output
    assert "data.val_count 5 capped at 2: at most a fifth of the 10 pairs with references" in capped.output
    assert len(json.loads((tmp_path / "a" / "split.json").read_text())["validation"]) == 2
    default = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(tmp_path / "b")])
    assert default.exit_code == 0 and "capped" not in default.output  # the default shrinks on small sets silently
    from lowlight_cli.training.config import DataSection

    same = runner.invoke(app, ["train", *SMOKE, "--set", f"data.val_count={DataSection().val_count}", "--max-steps", "1",
                               "--out", str(tmp_path / "c")])
    assert same.exit_code == 0 and "capped at 2" in same.output, same.output  # asked, though equal to the default


def test_two_epochs_beat_the_input_and_export_a_usable_checkpoint(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMOKE, "--set", "data.synthetic_count=12", "--epochs", "2", "--out", str(run), "--lr", "2e-3"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r["terms"]["loss"] for r in records if r["kind"] == "step"]
    vals = [r for r in records if r["kind"] == "validation"]
    assert len(vals) == 2 and np.mean(losses[-3:]) < np.mean(losses[:3])
    # the untrained baseline: the dark inputs themselves, scored like the validation
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.data.splits import Split
    from lowlight_cli.metrics import psnr

    split = Split.load(run / "split.json")
    pairs = {p.name: p for p in synthetic_pairs(12, seed=0)}
    inputs = [float(psnr(torch.from_numpy(pairs[n].low / 255.0).permute(2, 0, 1)[None],
                         torch.from_numpy(pairs[n].high / 255.0).permute(2, 0, 1)[None])) for n in split.validation]
    assert max(v["psnr"] for v in vals) > np.mean(inputs) + 1.0
    model = load_checkpoint(run / "best")  # the best is a normal checkpoint
    assert model.info.name == "crnet-tiny"


def test_supervised_run_can_export_an_ema_of_the_student(tmp_path):
    run = tmp_path / "sup-ema"
    common = ["train", *SMOKE, "--set", "run.export=teacher", "--set", "run.val_every=100"]
    result = runner.invoke(app, [*common, "--out", str(run), "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    student, teacher = _weights(run / "last"), load_file(str(run / "last" / "ema.safetensors"))
    best = _weights(run / "best")
    assert any(not torch.equal(student[k], teacher[k]) for k in student)  # the EMA lags the student
    assert all(torch.equal(best[k], teacher[k]) for k in best)  # and is what gets exported
    best_info = json.loads((run / "best" / "config.json").read_text())["provenance"]
    last_info = json.loads((run / "last" / "config.json").read_text())["provenance"]
    assert best_info["weights"] == "teacher" and best_info["val_psnr"] is not None
    # last/model.safetensors is the student: its provenance says so, and whose scores it carries
    assert last_info["weights"] == "student" and last_info["teacher_weights"] == "ema.safetensors"
    assert last_info["best_val_psnr"] == best_info["val_psnr"] and last_info["best_step"] == best_info["step"]
    assert not (run / "final").exists()  # validation chose best/
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "4"])
    assert resumed.exit_code == 0 and "resumed at step 3" in resumed.output, resumed.output


def test_mean_teacher_uses_unlabeled_images():
    model = create_model("crnet-tiny", pretrained=False).train()
    ema = EMA(model)
    for p in ema.teacher.parameters():  # a teacher that differs from the student
        p.data.add_(0.05 * torch.randn_like(p))
    step = MeanTeacherStep(LossSection(), ema)
    batch = {"low": torch.rand(2, 3, 32, 32), "high": torch.zeros(2, 3, 32, 32), "labeled": torch.tensor([False, False])}
    out = step(StagesForward(model), batch)
    assert out.terms["unlabeled"] == 2 and out.terms["mc_final"] > 0 and "ssim" not in out.terms
    out.loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_consistency_rampup_scales_lambda_c_from_near_zero_to_full():
    assert sigmoid_rampup(0, 0) == 1.0 and sigmoid_rampup(10, 0) == 1.0  # off: the paper's constant weight
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(500, 100) == 1.0
    model = create_model("crnet-tiny", pretrained=False).train()
    ema = EMA(model)
    for p in ema.teacher.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    batch = {"low": torch.rand(2, 3, 32, 32), "high": torch.zeros(2, 3, 32, 32), "labeled": torch.tensor([False, False])}
    torch.manual_seed(0)
    full = MeanTeacherStep(LossSection(lambda_c=2.0), ema)(StagesForward(model), batch)
    torch.manual_seed(0)
    ramped_step = MeanTeacherStep(LossSection(lambda_c=2.0, consistency_rampup=100), ema)
    early = ramped_step(StagesForward(model), batch)
    assert early.terms["consistency_weight"] == pytest.approx(2.0 * math.exp(-5))
    assert float(early.loss) == pytest.approx(float(full.loss) * math.exp(-5), rel=1e-5)
    ema.updates = 100  # the teacher's update count is the step count, restored on resume
    torch.manual_seed(0)
    assert float(ramped_step(StagesForward(model), batch).loss) == pytest.approx(float(full.loss), rel=1e-6)
    with pytest.raises(ConfigError, match="consistency_rampup"):
        build_config(flags={"loss.consistency_rampup": -1})


def test_validation_separates_exposure_from_the_rest_of_the_error():
    """An output that is its reference at half the brightness: poor PSNR, near-perfect after GT-mean scaling."""
    from lowlight_cli.evaluation.scoring import gt_mean_scale
    from lowlight_cli.metrics import psnr
    from lowlight_cli.training.distributed import DistContext
    from lowlight_cli.training.validation import validate

    rng = np.random.default_rng(0)
    pairs = []
    for i in range(3):
        high = (rng.random((24, 32, 3)) * 0.6 + 0.2 + 0.1 * i)
        pairs.append(ImagePair(f"p{i}", np.round(high * 127.5).astype(np.uint8), np.round(high * 255).astype(np.uint8)))
    scores = validate(torch.nn.Identity(), pairs, torch.device("cpu"), DistContext(), multiple=1)
    expected = [float(psnr(torch.from_numpy(p.low / 255.0).permute(2, 0, 1)[None], torch.from_numpy(p.high / 255.0).permute(2, 0, 1)[None]))
                for p in pairs]
    assert scores.psnr == pytest.approx(np.mean(expected), abs=1e-4) and scores.psnr < 12
    scaled = [float(psnr(torch.from_numpy(gt_mean_scale(p.low / 255.0, p.high / 255.0)).permute(2, 0, 1)[None],
                         torch.from_numpy(p.high / 255.0).permute(2, 0, 1)[None])) for p in pairs]
    assert scores.psnr_gt_mean == pytest.approx(np.mean(scaled), abs=1e-4) and scores.psnr_gt_mean > 40


def test_run_log_records_validation_after_gt_mean_scaling(tmp_path):
    result = runner.invoke(app, ["train", *SMOKE, "--set", "run.val_every=2", "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "after GT-mean scaling" in result.output
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["kind"] == "validation"]
    assert vals and all(math.isfinite(v["psnr_gt_mean"]) and v["psnr_gt_mean"] != v["psnr"] for v in vals)


def test_semi_run_logs_unlabeled_in_every_step(tmp_path):
    run = tmp_path / "semi"
    result = runner.invoke(app, ["train", "--semi", "--labeled-frac", "0.3", *SMOKE, "--max-steps", "3", "--out", str(run)])
    assert result.exit_code == 0, result.output
    steps = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"step"' in x and '"kind": "step"' in x]
    assert steps and all(s["terms"]["unlabeled"] == 4 and s["terms"]["mc_final"] > 0 for s in steps)
    assert json.loads((run / "split.json").read_text())["unlabeled"]


def test_missing_dataset_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOWLIGHT_DATA", raising=False)
    result = runner.invoke(app, ["train", "--semi", "--labeled-frac", "0.1"])
    assert result.exit_code == 1
    assert "data/LOL" in result.output and "--data" in result.output and "LOWLIGHT_DATA" in result.output


def test_a_plain_folder_given_to_a_paired_method_points_at_the_unpaired_ones(tmp_path):
    from lowlight_cli.io import ImageData, write_image

    write_image(tmp_path / "plain" / "1.png", ImageData(np.full((40, 40, 3), 20, np.uint8)))
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "plain"), "--max-steps", "1", "--out", str(tmp_path / "run")])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "trains only the unpaired methods (--method scl-lle or pie)" in text, result.output


def test_semi_with_every_pair_labeled_is_a_valid_config():
    """Low images without references are unlabeled at any fraction: the data tells whether there
    are any (test_semi_supervised_training_with_every_pair_labeled_takes_the_lows_without_references)."""
    assert build_config(flags={"run.semi": True, "data.labeled_frac": 1.0}).data.labeled_frac == 1.0


def _torchrun_two_cpu_processes(tmp_path: Path, *extra: str, steps: int = 4, name: str = "ddp", resume: bool = False,
                                **env_extra: str) -> tuple[Path, list[dict], str]:
    """A run of two CPU processes under torchrun (``steps`` steps; ``resume``: the run ``name`` resumed
    to ``steps``); its folder, log records and stderr."""
    run = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env_extra}
    train = ["--resume", str(run)] if resume else [*SMOKE, *extra, "--out", str(run)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lowlight_cli", "train", *train, "--max-steps", str(steps)]
    try:  # about 15 s on 2 cores; one CI run hung here for the whole timeout (session 19): say what it printed
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        tail = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"torchrun did not finish in 300 s; its stderr ends with:\n{tail[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "terminate called" not in proc.stderr
    return run, [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()], proc.stderr


@pytest.mark.slow
def test_torchrun_two_cpu_processes_agree(tmp_path):
    run, records, _ = _torchrun_two_cpu_processes(tmp_path, "--semi", "--labeled-frac", "0.5")
    checks = [r for r in records if r["kind"] == "ddp_checksums"]
    assert checks and len(checks[-1]["checksums"]) == 2
    assert checks[-1]["checksums"][0] == checks[-1]["checksums"][1]
    assert checks[-1]["teacher_checksums"][0] == checks[-1]["teacher_checksums"][1]  # the EMA agrees too
    assert math.isfinite(checks[-1]["checksums"][0])
    assert (run / "best" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_torchrun_resume_gives_every_process_its_own_random_stream_back(tmp_path):
    """MCMT draws its teacher's noise in every process; a resume that gave the second process the
    first one's stream would train on other noise than a straight run."""
    straight, _, _ = _torchrun_two_cpu_processes(tmp_path, "--semi", "--labeled-frac", "0.5", steps=4, name="straight")
    halves, _, _ = _torchrun_two_cpu_processes(tmp_path, "--semi", "--labeled-frac", "0.5", steps=2, name="halves")
    assert (halves / "rng" / "rank1.pt").is_file() and not (halves / "rng" / "rank0.pt").exists()
    _, _, stderr = _torchrun_two_cpu_processes(tmp_path, steps=4, name="halves", resume=True)
    assert "resumed at step 2" in stderr and "not bit for bit" not in stderr
    a, b = _weights(straight / "last"), _weights(halves / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    (halves / "rng" / "rank1.pt").unlink()  # as if the second process had stopped before it saved
    _, _, stderr = _torchrun_two_cpu_processes(tmp_path, steps=5, name="halves", resume=True)
    assert "process(es) 1 have no random state saved for step 4" in " ".join(stderr.split())
    alone = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "6"])  # one process now
    assert alone.exit_code == 0 and "saved by 2 process(es) and resumes with 1" in " ".join(alone.output.split()), alone.output


def test_a_process_random_state_is_found_only_for_its_step_and_the_fallback_seed_is_its_own(tmp_path):
    """A process that stopped before it saved (or a new one) finds nothing and takes a seed no other process has."""
    from lowlight_cli.training.engine import fresh_rank_seed
    from lowlight_cli.training.state import load_rank_rng, rng_state, save_rank_rng

    assert len({fresh_rank_seed(0, rank, 10) for rank in range(1, 4)} | {fresh_rank_seed(0, 1, 11)}) == 4
    save_rank_rng(tmp_path, 1, 10, rng_state(), 2)
    assert load_rank_rng(tmp_path, 1, 10, 2) is not None
    assert load_rank_rng(tmp_path, 1, 12, 2) is None and load_rank_rng(tmp_path, 2, 10, 2) is None  # another step, none saved
    assert load_rank_rng(tmp_path, 1, 10, 3) is None  # saved by a job of another size
    torch.manual_seed(1)
    save_rank_rng(tmp_path, 1, 13, rng_state(), 2)  # an interrupt's save, after the periodic one that last/ holds
    assert load_rank_rng(tmp_path, 1, 10, 2) is not None and load_rank_rng(tmp_path, 1, 13, 2) is not None
    for step in (14, 15):
        save_rank_rng(tmp_path, 1, step, rng_state(), 2)
    assert load_rank_rng(tmp_path, 1, 10, 2) is None and load_rank_rng(tmp_path, 1, 13, 2) is not None  # the last 3 kept
    (tmp_path / "rng" / "rank1.pt").write_bytes(b"damaged")
    assert load_rank_rng(tmp_path, 1, 15, 2) is None


def _join_and_leave(rank: int, port: int, results) -> None:
    """One process of a two-process gloo job: join, reduce, gather, leave; report what it saw."""
    import gc
    import weakref

    import torch.distributed as dist

    from lowlight_cli.training import distributed

    works = []  # weak references to the work of every collective (None: a blocking call kept none)

    def watched(collective):
        def call(*args, **kwargs):
            work = collective(*args, **kwargs)
            works.append(None if work is None else weakref.ref(work))
            return work
        return call

    dist.all_reduce, dist.all_gather, dist.barrier = (watched(dist.all_reduce), watched(dist.all_gather),
                                                      watched(dist.barrier))
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    ctx, device = distributed.setup("cpu")
    distributed.join(ctx, device)
    total = float(distributed.all_reduce_sum(torch.tensor([rank + 1.0]), ctx))
    gathered = distributed.gather_values(rank + 0.5, ctx, device)
    distributed.leave(ctx)
    gc.collect()
    # Python still holds every collective's work, so a gloo thread never frees one (see distributed._RECENT_WORK)
    alive = len(works) == 3 and all(ref is not None and ref() is not None for ref in works)
    results.put((rank, total, gathered, dist.is_initialized(), alive))


def test_a_finished_process_leaves_the_process_group():
    """A gloo group left alive at exit can abort a process whose training succeeded (SIGABRT); a
    collective's work freed by a gloo thread while the group is destroyed deadlocks the teardown."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp_ctx = mp.get_context("spawn")
    results = mp_ctx.SimpleQueue()
    procs = [mp_ctx.Process(target=_join_and_leave, args=(r, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    seen = sorted(results.get() for _ in range(2))
    assert seen == [(0, 3.0, [0.5, 1.5], False, True), (1, 3.0, [0.5, 1.5], False, True)]


def _stop_at_call(monkeypatch, call: int, stop) -> object:
    """Make the supervised step run ``stop()`` on its ``call``-th call; returns the real step."""
    import lowlight_cli.training.engine as engine

    real = engine.SupervisedStep.__call__
    calls = []

    def stopping(self, student, batch):
        calls.append(1)
        if len(calls) == call:
            stop()
        return real(self, student, batch)

    monkeypatch.setattr(engine.SupervisedStep, "__call__", stopping)
    return real


def test_ctrl_c_saves_a_resumable_state(tmp_path, monkeypatch):
    import lowlight_cli.training.engine as engine

    def ctrl_c():
        raise KeyboardInterrupt

    run = tmp_path / "run"
    real = _stop_at_call(monkeypatch, 3, ctrl_c)
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "6", "--out", str(run)])
    assert result.exit_code == 130
    assert "resumable state saved" in result.output
    state = torch.load(run / "last" / "train_state.pt", weights_only=True)
    assert state["progress"]["step"] == 2
    monkeypatch.setattr(engine.SupervisedStep, "__call__", real)
    resumed = runner.invoke(app, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0 and "resumed at step 2" in resumed.output


@pytest.mark.parametrize("cut", [1, 2], ids=["middle validation", "final validation"])
def test_a_validation_cut_off_by_ctrl_c_runs_first_on_resume(tmp_path, monkeypatch, cut):
    """The step is done and saved; its validation (the log line, best/) must not be lost: the resumed
    run validates that step first, then goes on as a straight run does."""
    import lowlight_cli.training.engine as engine
    from safetensors.torch import load_file

    common = ["train", *SMOKE, "--set", "run.val_every=2", "--max-steps", "4"]
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "straight")]).exit_code == 0
    real, calls = engine.validate, []

    def validate(*args, **kwargs):
        calls.append(1)
        if len(calls) == cut:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "validate", validate)
    run = tmp_path / "run"
    assert runner.invoke(app, [*common, "--out", str(run)]).exit_code == 130
    assert torch.load(run / "last" / "train_state.pt", weights_only=True)["progress"]["step"] == 2 * cut
    monkeypatch.setattr(engine, "validate", real)
    resumed = runner.invoke(app, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0 and "cut off, runs first" in resumed.output, resumed.output
    logged = [(r["step"], r["psnr"]) for r in _log(run) if r["kind"] == "validation"]
    assert logged == [(r["step"], r["psnr"]) for r in _log(tmp_path / "straight") if r["kind"] == "validation"]
    for folder in ("best", "last"):
        a, b = load_file(tmp_path / "straight" / folder / "model.safetensors"), load_file(run / folder / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_ctrl_c_between_a_step_and_its_validation_saves_that_validation_as_due(tmp_path):
    """The step's progress event comes after the step and before its validation: a Ctrl-C there
    must not lose the validation either."""
    from safetensors.torch import load_file

    from lowlight_cli.training import Trainer
    from lowlight_cli.training.events import TickEvent

    common = ["train", *SMOKE, "--set", "run.val_every=2", "--max-steps", "4"]
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "straight")]).exit_code == 0
    cfg = build_config(yaml_path=tmp_path / "straight" / "config.yaml", saved_run=True)

    def stop_after_step_2(event):
        if isinstance(event, TickEvent) and event.step == 2:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, run).fit(stop_after_step_2)
    assert torch.load(run / "last" / "train_state.pt", weights_only=True)["validation_due"] is True
    resumed = runner.invoke(app, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0 and "cut off, runs first" in resumed.output, resumed.output
    logged = [(r["step"], r["psnr"]) for r in _log(run) if r["kind"] == "validation"]
    assert logged == [(r["step"], r["psnr"]) for r in _log(tmp_path / "straight") if r["kind"] == "validation"]
    a, b = load_file(tmp_path / "straight" / "best" / "model.safetensors"), load_file(run / "best" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_to_stop_saves_a_resumable_state_like_ctrl_c(tmp_path, monkeypatch, name):
    # SIGTERM: what `kill` or a job scheduler sends; SIGHUP: the terminal or ssh session closed
    import signal

    sig = getattr(signal, name)
    run = tmp_path / "run"
    _stop_at_call(monkeypatch, 4, lambda: os.kill(os.getpid(), sig))
    before = signal.getsignal(sig)
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "50", "--out", str(run)])
    assert result.exit_code == 130 and "resumable state saved" in result.output, result.output
    assert f"terminated ({name})" in result.output
    assert signal.getsignal(sig) is before  # the handler is only installed while training
    state = torch.load(run / "last" / "train_state.pt", weights_only=True)
    assert 3 <= state["progress"]["step"] <= 4


def test_a_run_under_nohup_trains_through_a_sighup(tmp_path, monkeypatch):
    import signal

    _stop_at_call(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGHUP))
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
    try:
        result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "6", "--out", str(tmp_path / "nohup")])
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert result.exit_code == 0, result.output


def test_a_resume_drops_the_log_records_of_steps_it_did_not_save(tmp_path):
    # a run killed without saving (SIGKILL, a crash) logged steps past last/: the resume's records replace them
    straight, run = tmp_path / "straight", tmp_path / "run"
    common = ["train", *SMOKE, "--set", "run.val_every=2", "--set", "run.save_every=4"]
    assert runner.invoke(app, [*common, "--out", str(straight), "--max-steps", "8"]).exit_code == 0
    assert runner.invoke(app, [*common, "--out", str(run), "--max-steps", "4"]).exit_code == 0
    with (run / "log.jsonl").open("a") as log:  # what the killed run had written after its save at step 4
        for step in (5, 6):
            log.write(json.dumps({"kind": "step", "step": step, "terms": {}}) + "\n")
        log.write(json.dumps({"kind": "validation", "step": 6, "psnr": 1.0}) + "\n")
    assert runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "8"]).exit_code == 0
    steps = lambda folder, kind: [r["step"] for r in _log(folder) if r["kind"] == kind]  # noqa: E731
    assert steps(run, "step") == steps(straight, "step") and steps(run, "validation") == steps(straight, "validation")
    assert 1.0 not in [r["psnr"] for r in _log(run) if r["kind"] == "validation"]


def test_a_progress_reader_that_goes_away_leaves_a_resumable_state(tmp_path):
    # `lowlight train ... | head`: the pipe closes, writing progress raises BrokenPipeError
    from lowlight_cli.training import Trainer
    from lowlight_cli.training.events import TickEvent

    assert runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(tmp_path / "first")]).exit_code == 0
    cfg = build_config(yaml_path=tmp_path / "first" / "config.yaml", saved_run=True)
    cfg.optim.max_steps = 20

    def reader_gone(event):
        if isinstance(event, TickEvent) and event.step == 3:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        Trainer(cfg, tmp_path / "run").fit(reader_gone)
    assert torch.load(tmp_path / "run" / "last" / "train_state.pt", weights_only=True)["progress"]["step"] == 3


def test_worker_processes_load_the_same_patches():
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.data.patches import PatchConfig, PatchDataset
    from torch.utils.data import DataLoader

    pairs = synthetic_pairs(4, size=(64, 64))
    dataset = PatchDataset(pairs, PatchConfig(size=32, per_image=2), seed=3)
    plan = plan_epoch([0, 1, 2, 3], [], per_image=2, batch_size=2, unlabeled_batch_size=0, seed=3, epoch=0)

    def collect(workers: int) -> list[torch.Tensor]:
        loader = DataLoader(dataset, batch_sampler=plan, num_workers=workers,
                            collate_fn=lambda items: torch.stack([i["low"] for i in items]))
        return list(loader)

    assert all(torch.equal(a, b) for a, b in zip(collect(0), collect(2)))


def test_shipped_configs_are_valid():
    from lowlight_cli.training.config import load_yaml, merge_mapping, TrainConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        cfg = TrainConfig()
        merge_mapping(cfg, load_yaml(path), str(path))
        cfg.validate()


def test_warm_start_from_a_checkpoint_adds_the_global_context(tmp_path):
    base = tmp_path / "base"
    assert runner.invoke(app, ["train", *SMOKE, "--out", str(base), "--max-steps", "2"]).exit_code == 0
    run = tmp_path / "ctx"
    args = ["train", *SMOKE, "--set", f"model.init_from={base / 'best'}",
            "--set", "model.kwargs={global_context: true, context_channels: 8}", "--out", str(run), "--max-steps", "1"]
    result = runner.invoke(app, [*args, "--lr", "1e-12"])
    assert result.exit_code == 0, result.output
    before, after = _weights(base / "best"), _weights(run / "last")
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)  # started from it
    assert any(k.startswith("context.") for k in after)
    bad = runner.invoke(app, [*args[:-4], "--set", f"model.init_from={tmp_path / 'nowhere'}", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "init_from" in bad.output and "Traceback" not in bad.output
    # a run folder: its checkpoints are named; bundled weights by name, of another architecture: said so
    folder = runner.invoke(app, [*args[:-4], "--set", f"model.init_from={base}", "--out", str(tmp_path / "x")])
    said = " ".join(folder.output.split())
    assert folder.exit_code == 2 and "is a training run" in said and str(base / "best") in said, folder.output
    other = runner.invoke(app, [*args[:-4], "--set", "model.init_from=crnet-s-lol", "--out", str(tmp_path / "x")])
    said = " ".join(other.output.split())
    assert other.exit_code == 2 and "holds crnet-s weights; this run trains crnet-tiny" in said, other.output
    assert not (tmp_path / "x").exists()


def _has_cxx() -> bool:
    import shutil

    from lowlight_cli.inference.compilation import CXX_NAMES

    return any(shutil.which(name) for name in CXX_NAMES)


@pytest.mark.skipif(not _has_cxx(), reason="torch.compile on the CPU needs a C++ compiler")
@pytest.mark.parametrize("mode", ["supervised", "semi"])
def test_compiled_training_follows_eager_training_and_saves_plain_weights(tmp_path, mode):
    semi = ["--semi", "--labeled-frac", "0.5"] if mode == "semi" else []
    common = ["train", *SMOKE, *semi, "--set", "run.val_every=100", "--max-steps", "3"]
    graphs = {"supervised": 1, "semi": 2}[mode]  # the student's forward; with MCMT the teacher's no-grad forward too
    runs = {}
    from torch._dynamo.utils import counters

    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        counters.clear()
        result = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert counters["stats"]["unique_graphs"] == (graphs if name == "compiled" else 0)  # compiled, only when asked
        log = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        runs[name] = ([r["terms"]["loss"] for r in log if r["kind"] == "step"], _weights(tmp_path / name / "last"))
    (eager_loss, eager_w), (comp_loss, comp_w) = runs["eager"], runs["compiled"]
    assert set(comp_w) == set(eager_w)  # no torch.compile wrapper names in the checkpoint
    assert np.allclose(comp_loss, eager_loss, rtol=1e-3)
    assert all(torch.allclose(comp_w[k], eager_w[k], atol=1e-4) for k in eager_w)
    assert "compile: true" in (tmp_path / "compiled" / "config.yaml").read_text()
    load_checkpoint(tmp_path / "compiled" / "last")  # loads strictly as a plain checkpoint


@pytest.mark.slow
@pytest.mark.skipif(not _has_cxx(), reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_training_under_torchrun_keeps_the_processes_in_step(tmp_path):
    """DDP wraps the student first, torch.compile wraps DDP: gradients still all-reduce, checkpoints stay plain.

    Supervised, so the student's is the only forward there is to compile.
    """
    run, records, stderr = _torchrun_two_cpu_processes(tmp_path, "--compile", TORCH_LOGS="dynamo")
    for rank in (0, 1):  # each process handed the student's forward to the compiler (dynamo's log, torch 2.x)
        assert re.search(rf"\[rank{rank}\].*done tracing forward.*\n(.*\n)*\[rank{rank}\].*calling compiler function",
                         stderr), stderr[-3000:]
    checks = [r for r in records if r["kind"] == "ddp_checksums"]
    assert checks and len(checks[-1]["checksums"]) == 2
    assert checks[-1]["checksums"][0] == checks[-1]["checksums"][1]  # gradients were averaged across both
    losses = [r["terms"]["loss"] for r in records if r["kind"] == "step"]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert "compile: true" in (run / "config.yaml").read_text()
    load_checkpoint(run / "last")  # strict, no wrapper prefixes


@pytest.mark.skipif(not _has_cxx(), reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_teacher_follows_ema_updates_and_loaded_weights():
    """The compiled teacher must read the weights the EMA changes in place, not a copy made when it compiled."""
    from lowlight_cli.training.steps import training_forwards

    torch.manual_seed(0)
    student = create_model("crnet-tiny", pretrained=False)
    ema = EMA(student, 0.5, warmup=False)
    _, teacher_forward = training_forwards(StagesForward(student), ema, semi=True, compile=True)
    x = torch.rand(2, 3, 32, 32)

    def agrees() -> bool:
        with torch.no_grad():
            return torch.allclose(teacher_forward(x)["output"], ema.teacher.forward_train(x)["output"], atol=1e-5)

    before = teacher_forward(x)["output"].detach().clone()  # compiles here
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ema.update(student)
    assert agrees() and not torch.allclose(teacher_forward(x)["output"], before, atol=1e-4)
    ema.load_state_dict({"teacher": {k: v * 0.9 for k, v in ema.teacher.state_dict().items()}, "updates": 3})
    assert agrees()


def test_compile_without_a_cpp_compiler_fails_before_training(tmp_path, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = runner.invoke(app, ["train", *SMOKE, "--compile", "--max-steps", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "needs a C++ compiler" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "log.jsonl").exists()


def _running_max_flags(values: list[float]) -> list[bool]:
    flags, best = [], -math.inf
    for v in values:
        flags.append(v > best)
        best = max(best, v)
    return flags


@pytest.mark.parametrize("metric", ["ssim", "psnr"])
def test_select_on_picks_the_best_checkpoint_by_that_validation_score(tmp_path, monkeypatch, metric):
    # scripted validation scores on which PSNR and SSIM disagree: PSNR peaks at step 2, SSIM at step 4
    from lowlight_cli.training import engine
    from lowlight_cli.training.validation import ValidationScores

    script = iter([(15.0, 0.50), (16.0, 0.52), (15.5, 0.55), (15.8, 0.60), (14.0, 0.58)])
    monkeypatch.setattr(engine, "validate", lambda *a, **k: ValidationScores(*next(script), psnr_gt_mean=20.0))
    run = tmp_path / metric
    args = ["train", *SMOKE, "--set", "run.val_every=1", "--set", f"run.select_on={metric}"]
    result = runner.invoke(app, [*args, "--max-steps", "5", "--out", str(run)])
    assert result.exit_code == 0, result.output
    vals = [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if r["kind"] == "validation"]
    assert [v["best"] for v in vals] == _running_max_flags([v[metric] for v in vals])
    chosen = max(vals, key=lambda v: v[metric])
    assert chosen["step"] == {"psnr": 2, "ssim": 4}[metric]
    provenance = json.loads((run / "best" / "config.json").read_text())["provenance"]
    assert provenance["selected_on"] == metric and provenance["step"] == chosen["step"]
    assert provenance["val_ssim"] == pytest.approx(chosen["ssim"]) and provenance["val_psnr"] == pytest.approx(chosen["psnr"])


def test_select_on_rejects_other_scores():
    with pytest.raises(ConfigError, match="select_on"):
        build_config(assignments=["run.select_on=niqe"])


# ---- training at several curve scales (model.curve_scales) ----------------------------------------
CURVE_SMOKE = [*SMOKE,
    "--set", 'model.kwargs={"output": "curve"}', "--set", "model.curve_scales=1,2", "--set", "run.val_every=100"]


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def test_curve_scales_alternate_per_step_and_resume_where_they_were(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    result = runner.invoke(app, ["train", *CURVE_SMOKE, "--out", str(straight), "--max-steps", "5"])
    assert result.exit_code == 0, result.output
    scales = [r["terms"]["curve_scale"] for r in _log(straight) if r.get("kind") == "step"]
    assert scales == [1.0, 2.0, 1.0, 2.0, 1.0]
    assert runner.invoke(app, ["train", *CURVE_SMOKE, "--out", str(halves), "--max-steps", "3"]).exit_code == 0
    second = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "5"])
    assert second.exit_code == 0, second.output
    assert [r["terms"]["curve_scale"] for r in _log(halves) if r.get("kind") == "step"][-2:] == [2.0, 1.0]
    a, b = _weights(straight / "last"), _weights(halves / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = load_checkpoint(straight / "best")
    assert model.curve_scale == 1  # the checkpoint runs at full resolution unless told otherwise


def test_curve_scales_resume_where_they_were_after_a_ctrl_c_mid_step(tmp_path, monkeypatch):
    """The step's own count of steps moves with the optimiser step, not in the forward pass (review,
    session 27: a Ctrl-C after the forward saved it one ahead, and the scales went out of turn)."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert runner.invoke(app, ["train", *CURVE_SMOKE, "--out", str(straight), "--max-steps", "5"]).exit_code == 0
    _ctrl_c_after_backward(monkeypatch, 3)
    assert runner.invoke(app, ["train", *CURVE_SMOKE, "--out", str(stopped), "--max-steps", "5"]).exit_code == 130
    monkeypatch.undo()
    resumed = runner.invoke(app, ["train", "--resume", str(stopped)])
    assert resumed.exit_code == 0 and "resumed at step 2" in resumed.output, resumed.output
    steps = {r["step"]: r["terms"]["curve_scale"] for r in _log(stopped) if r.get("kind") == "step"}
    assert [steps[k] for k in sorted(steps)] == [1.0, 2.0, 1.0, 2.0, 1.0]
    a, b = _weights(straight / "last"), _weights(stopped / "last")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_held_interrupts_wait_for_the_block_and_never_hide_its_error():
    import signal

    from lowlight_cli.interrupts import deferred_interrupts

    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the rest of the block ran")
    assert done == ["the rest of the block ran"]
    with pytest.raises(RuntimeError, match="out of memory"):  # the block's own error, not the held Ctrl-C
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            raise RuntimeError("out of memory")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back either way
    with deferred_interrupts():
        pass  # nothing held: nothing raised


def test_a_hangup_waits_for_the_held_block_too_and_stays_ignored_under_nohup():
    """The CLI turns SIGHUP into an interrupt: inside a held block (an optimiser step and its
    counter) it must wait, or the state saved has weights one step ahead of its counter."""
    import signal

    from lowlight_cli.interrupts import deferred_interrupts

    class HungUp(KeyboardInterrupt):
        pass

    def hang_up(signum, frame):
        raise HungUp

    before = signal.signal(signal.SIGHUP, hang_up)
    try:
        done = []
        with pytest.raises(HungUp):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGHUP)
                done.append("the rest of the block ran")
        assert done == ["the rest of the block ran"] and signal.getsignal(signal.SIGHUP) is hang_up
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup: ignored before, ignored inside, ignored after
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_saved_run_with_a_key_its_method_never_read_still_resumes(tmp_path):
    """Such keys are refused for new runs since session 27; a run saved before must stay resumable."""
    import yaml

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(run)]).exit_code == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["teacher"]["ema_decay"] = 0.5  # ignored by this supervised run without an EMA
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    assert resumed.exit_code == 0 and "resumed at step 1" in resumed.output, resumed.output
    fresh = runner.invoke(app, ["train", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "new")])
    assert fresh.exit_code == 2 and "teacher.ema_decay configures an EMA teacher" in fresh.output


def test_a_split_that_follows_run_seed_is_said(tmp_path):
    """data.seed unset: the validation pairs follow run.seed, so a replication with another run.seed
    validates elsewhere; training says so (it surprised a replication once)."""
    from lowlight_cli.training import InfoEvent, Trainer

    def messages(**flags):
        cfg = build_config(flags={"model.name": "crnet-tiny", "run.device": "cpu", "data.root": "synthetic",
                                  "data.synthetic_count": 6, "data.val_count": 1, "data.patch_size": 32,
                                  "optim.max_steps": 1, "run.val_every": 100, **flags})
        cfg.validate()
        said = []
        Trainer(cfg, tmp_path / f"run{len(flags)}").fit(lambda e: said.append(e.message) if isinstance(e, InfoEvent) else None)
        return said

    assert any("data.seed unset" in m for m in messages())
    assert not any("data.seed unset" in m for m in messages(**{"data.seed": 0}))


def test_trainer_fit_removes_the_folder_of_a_new_run_that_never_trained(tmp_path, monkeypatch):
    """The library's Trainer, not only the CLI: a failed new run leaves nothing; a run that logged
    a step keeps its folder (the record of why it failed)."""
    from lowlight_cli.training import Trainer
    from lowlight_cli.training import engine

    cfg = build_config(flags={"model.name": "crnet-tiny", "run.device": "cpu", "data.root": "synthetic",
                              "data.synthetic_count": 6, "data.val_count": 1, "data.patch_size": 32,
                              "optim.max_steps": 3, "run.log_every": 1, "run.val_every": 100})
    cfg.validate()

    def fail_when_building(self):
        assert (self.run_dir / "split.json").is_file()  # the folder exists by now
        raise RuntimeError("no model today")

    monkeypatch.setattr(engine.Trainer, "_build_model", fail_when_building)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="no model today"):
        Trainer(cfg, run).fit()
    assert not run.exists()

    monkeypatch.undo()
    original = engine.RunLog.write

    def fail_after_a_step(self, record):
        original(self, record)
        if record.get("kind") == "step":
            raise RuntimeError("disk full")

    monkeypatch.setattr(engine.RunLog, "write", fail_after_a_step)
    with pytest.raises(RuntimeError, match="disk full"):
        Trainer(cfg, run).fit()
    assert (run / "log.jsonl").is_file() and (run / "config.yaml").is_file()  # kept: it trained


def test_curve_scales_are_checked_before_training():
    with pytest.raises(ConfigError, match="crnet method"):
        build_config(flags={"run.method": "mcmt", "data.labeled_frac": 0.5}, assignments=["model.curve_scales=1,2"]).validate()
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_config(flags={"model.name": "crnet-curve-dn", "data.patch_size": 72}, assignments=["model.curve_scales=1,2"]).validate()
    with pytest.raises(ConfigError):
        build_config(assignments=["model.curve_scales=1,0"]).validate()


def test_curve_scales_need_a_curve_model(tmp_path):
    result = runner.invoke(app, ["train", *SMOKE, "--set", "model.curve_scales=1,2", "--out", str(tmp_path / "r"), "--max-steps", "1"])
    assert result.exit_code != 0 and "curve model" in result.output


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    import cv2

    data = tmp_path / "tiny"
    for stem in range(6):  # 10x12 images: smaller than any patch size
        for side in ("low", "high"):
            (data / "train" / side).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(data / "train" / side / f"{stem}.png"), np.full((10, 12, 3), 40 * (side == "high") + 10 + stem, np.uint8))
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(data), "--set", "model.name=crnet-tiny", "--set", "run.device=cpu",
                                 "--max-steps", "2", "--out", str(run)])
    assert result.exit_code == 1 and "smaller than the patch" in result.output, result.output
    assert "below the least patch size (16)" in result.output  # no --patch-size can help: said so
    assert not run.exists()  # no config.yaml / split.json left for a --resume to trip over
    run.mkdir()  # a folder the user made is theirs: left in place (one holding other files is refused first)
    result = runner.invoke(app, ["train", "--data", str(data), "--set", "model.name=crnet-tiny", "--set", "run.device=cpu",
                                 "--max-steps", "2", "--out", str(run)])
    assert result.exit_code == 1 and run.is_dir()


def test_a_diverging_run_stops_with_an_error_before_its_weights_turn_nan(tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMOKE, "--out", str(run), "--max-steps", "6", "--set", "run.val_every=2",
                                 "--lr", "1e8"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "gradients became nan" in text and "training diverged" in text and "lower learning rate" in text
    assert "done:" not in text
    last = run / "last"
    if last.is_dir():  # whatever was saved holds finite weights
        assert all(torch.isfinite(t).all() for t in _weights(last).values())


@pytest.mark.parametrize(("assignment", "message"), [
    ("optim.lr=inf", "optim.lr must be > 0 and finite"),
    ("optim.betas=0.5", "optim.betas must be two numbers"),
    ("optim.betas=[0.5,0.9,3]", "optim.betas must be two numbers"),
    ("optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
    ("optim.grad_clip=-1", "optim.grad_clip must be >= 0"),
    ("optim.gamma=-1", "optim.gamma"),
    ("loss.lambda_ms=-1", "loss weights"),
    ("run.save_every=-1", "run.save_every must be >= 0"),
    ("data.batch_size=true", "data.batch_size: cannot use"),
    ('model.kwargs={"foo": 1}', "has no architecture option 'foo'"),
    ("model.kwargs={width:4}", "write {width: 4}, with a space after the colon"),  # YAML's one key, not a traceback
])
def test_bad_config_values_are_usage_errors_naming_the_key(tmp_path, assignment, message):
    result = runner.invoke(app, ["train", *SMOKE, "--out", str(tmp_path / "run"), "--max-steps", "1", "--set", assignment])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_config_files_that_cannot_be_read_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1,2\n")
    result = runner.invoke(app, ["train", *SMOKE, "--config", str(bad), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and f"{bad} line 2, column 1: not valid YAML" in " ".join(result.output.split())
    folder = runner.invoke(app, ["train", *SMOKE, "--config", str(tmp_path), "--out", str(tmp_path / "r")])
    assert folder.exit_code == 2 and "is a folder" in folder.output
    (tmp_path / "file").write_text("x")
    under_file = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(tmp_path / "file" / "run")])
    assert under_file.exit_code == 1 and "Not a directory" in under_file.output and "Traceback" not in under_file.output


def test_a_config_folder_that_is_not_there_names_the_key_the_file_and_the_current_folder(tmp_path, monkeypatch):
    config = tmp_path / "configs" / "run.yaml"
    config.parent.mkdir()
    config.write_text("model:\n  name: crnet-tiny\ndata:\n  root: ../data/LOL\n")
    monkeypatch.chdir(tmp_path)  # ../data/LOL is read from here, not from configs/
    result = runner.invoke(app, ["train", "--config", str(config), "--max-steps", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert f"dataset folder ../data/LOL not found (data.root in {config}, read from the current folder {tmp_path})" in said
    assert "--data DIR" in said and "the folder the relative path is meant from" in said and not (tmp_path / "r").exists()
    # the same folder named by --set, or a positives folder named by the file, says so
    result = runner.invoke(app, ["train", "--model", "crnet-tiny", "--set", "data.root=../data/LOL", "--max-steps", "1",
                                 "--out", str(tmp_path / "r")])
    assert "(--set data.root, read from the current folder" in " ".join(result.output.split()), result.output
    unpaired = tmp_path / "configs" / "scl.yaml"
    unpaired.write_text("run:\n  method: scl-lle\n  device: cpu\ndata:\n  root: synthetic\n  positives: ../normal\n")
    result = runner.invoke(app, ["train", "--config", str(unpaired), "--max-steps", "1", "--out", str(tmp_path / "r")])
    said = " ".join(result.output.split())
    assert f"positives folder ../normal not found (data.positives in {unpaired}, read from the current folder" in said, said
    assert not (tmp_path / "r").exists()
    # --data (or --set data.root=...) replaces the file's folder: no complaint about it
    result = runner.invoke(app, ["train", *SMOKE, "--config", str(config), "--max-steps", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output

def test_resume_after_a_split_image_was_removed_names_it(tmp_path):
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.io import ImageData, write_image

    data = tmp_path / "data"
    for pair in synthetic_pairs(8, size=(64, 64), seed=0):
        write_image(data / "low" / f"{pair.name}.png", ImageData(pair.low))
        write_image(data / "high" / f"{pair.name}.png", ImageData(pair.high))
    run = tmp_path / "run"
    args = ["train", "--model", "crnet-tiny", "--data", str(data), "--patch-size", "32", "--patches-per-image", "1",
            "-b", "2", "--device", "cpu", "--set", "data.val_count=2"]
    assert runner.invoke(app, [*args, "--out", str(run), "--max-steps", "2"]).exit_code == 0
    gone = json.loads((run / "split.json").read_text())["validation"][0]
    (data / "low" / f"{gone}.png").unlink()
    (data / "high" / f"{gone}.png").unlink()
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "validation image(s) that" in text and gone in text and "put them back" in text
    write_image(data / "low" / f"{gone}.png", ImageData(synthetic_pairs(8, size=(64, 64), seed=0)[0].low))
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])  # back without its reference
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "(with their references)" in text and gone in text, result.output
    # the split itself gone: refused, not drawn again (it would validate on images the run trained on)
    (run / "split.json").unlink()
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "split.json is missing" in text and "put it back" in text, result.output
    assert not (run / "split.json").exists()


def test_images_added_before_a_resume_and_references_without_a_low_image_are_said(tmp_path):
    """Neither is trained on, and neither passes in silence: the split is the run's, and a
    reference pairs with a low image by stem only."""
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.io import ImageData, write_image

    data = tmp_path / "data"
    pairs = synthetic_pairs(9, size=(64, 64), seed=0)
    for pair in pairs[:8]:
        write_image(data / "low" / f"{pair.name}.png", ImageData(pair.low))
        write_image(data / "high" / f"{pair.name}.png", ImageData(pair.high))
    write_image(data / "high" / "lonely.png", ImageData(pairs[8].high))
    run = tmp_path / "run"
    args = ["train", "--model", "crnet-tiny", "--data", str(data), "--patch-size", "32", "--patches-per-image", "1",
            "-b", "2", "--device", "cpu", "--set", "data.val_count=2"]
    first = runner.invoke(app, [*args, "--out", str(run), "--max-steps", "2"])
    text = " ".join(first.output.split())
    assert first.exit_code == 0 and "1 reference(s) have no low-light image" in text and "lonely.png" in text, first.output
    assert "not part of this run" not in text
    write_image(data / "low" / "added.png", ImageData(pairs[8].low))
    write_image(data / "high" / "added.png", ImageData(pairs[8].high))
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    text = " ".join(resumed.output.split())
    assert resumed.exit_code == 0, resumed.output
    assert "1 image(s) in the data folder are not part of this run" in text and "added" in text and "model.init_from" in text
    split = json.loads((run / "split.json").read_text())
    assert "added" not in split["labeled"] + split["unlabeled"] + split["validation"]


def test_a_reference_added_before_a_resume_for_an_image_trained_without_one_is_said(tmp_path):
    """The run keeps its split: an image it trains without a reference stays so when its reference
    appears, and the resume says so (data.json tells which images had one when the run started)."""
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.io import ImageData, write_image

    data = tmp_path / "data"
    pairs = synthetic_pairs(8, size=(64, 64), seed=0)
    for i, pair in enumerate(pairs):
        write_image(data / "low" / f"{pair.name}.png", ImageData(pair.low))
        if i < 6:
            write_image(data / "high" / f"{pair.name}.png", ImageData(pair.high))
    run = tmp_path / "run"
    args = ["train", "--model", "crnet-tiny", "--data", str(data), "--patch-size", "32", "--patches-per-image", "1",
            "-b", "2", "--device", "cpu", "--semi", "--labeled-frac", "1", "--set", "data.val_count=1"]
    first = runner.invoke(app, [*args, "--out", str(run), "--max-steps", "2"])  # all pairs labeled, the 2 lows without references not
    assert first.exit_code == 0 and "5 labeled, 2 unlabeled (used)" in first.output, first.output
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])  # nothing added: nothing said
    assert resumed.exit_code == 0 and "trains without a reference" not in " ".join(resumed.output.split()), resumed.output
    late = pairs[7].name
    write_image(data / "high" / f"{late}.png", ImageData(pairs[7].high))
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "4"])
    text = " ".join(resumed.output.split())
    assert resumed.exit_code == 0, resumed.output
    assert "1 image(s) this run trains without a reference have one now" in text and late in text and "model.init_from" in text
    assert late in json.loads((run / "split.json").read_text())["unlabeled"]


def test_semi_supervised_training_with_every_pair_labeled_takes_the_lows_without_references(tmp_path):
    """`--semi --labeled-frac 1` is the labeled pairs plus the low images that have no reference (the
    docs: those are unlabeled data); with none such it says what is missing, before any training."""
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.io import ImageData, write_image

    data = tmp_path / "data"
    for pair in synthetic_pairs(6, size=(64, 64), seed=0):
        write_image(data / "low" / f"{pair.name}.png", ImageData(pair.low))
        write_image(data / "high" / f"{pair.name}.png", ImageData(pair.high))
    args = ["train", "--model", "crnet-tiny", "--data", str(data), "--patch-size", "32", "--patches-per-image", "1",
            "-b", "2", "--device", "cpu", "--semi", "--labeled-frac", "1", "--set", "data.val_count=1", "--max-steps", "1"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "needs unlabeled data" in text and "--labeled-frac" in text, result.output
    assert not (tmp_path / "run").exists()
    write_image(data / "low" / "unpaired.png", ImageData(synthetic_pairs(7, size=(64, 64), seed=0)[6].low))
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0 and "5 labeled, 1 unlabeled (used)" in result.output, result.output


def test_milestones_written_as_decimals_are_whole_epochs(tmp_path):
    cfg = build_config(flags={"data.root": "synthetic"}, assignments=["optim.milestones=30.0,50.0"])
    assert cfg.optim.milestones == (30, 50)
    with pytest.raises(ConfigError, match="whole epochs"):
        build_config(flags={"data.root": "synthetic"}, assignments=["optim.milestones=2.5"])


def test_supervised_flag_contradicting_a_semi_method_is_refused(tmp_path):
    result = runner.invoke(app, ["train", *SMOKE, "--supervised", "--method", "mcmt", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--supervised contradicts method mcmt" in result.output
    config = tmp_path / "mcmt.yaml"
    config.write_text("run: {method: mcmt}\n")  # the method named in a config file
    result = runner.invoke(app, ["train", *SMOKE, "--supervised", "--config", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--supervised contradicts method mcmt" in result.output


def test_error_messages_with_brackets_are_printed_whole(tmp_path):
    result = runner.invoke(app, ["train", *SMOKE, "--out", str(tmp_path / "r"), "--set", "data.dim_exposure=2,3"])
    assert result.exit_code == 2 and "[lowest, highest]" in result.output


def test_a_yaml_boolean_is_not_taken_for_a_number(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data: {batch_size: true}\n")
    with pytest.raises(ConfigError, match="data.batch_size: cannot use True as int"):
        build_config(yaml_path=config)


def test_a_new_run_is_not_written_among_other_files(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("keep")
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(folder)])
    assert result.exit_code == 2 and "holds other files and no run" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(empty)]).exit_code == 0


def test_the_progress_display_hears_of_every_step_not_only_the_logged_ones(tmp_path):
    """The bar stood at 0 until the first log line (log_every steps) and went stale after it."""
    from lowlight_cli.training import StepEvent, TickEvent, Trainer

    cfg = build_config(flags={"model.name": "crnet-tiny", "run.device": "cpu", "data.root": "synthetic",
                              "data.synthetic_count": 6, "data.val_count": 1, "data.patch_size": 32,
                              "optim.max_steps": 3, "run.val_every": 100, "run.log_every": 10})
    cfg.validate()
    events = []
    Trainer(cfg, tmp_path / "run").fit(events.append)
    assert [e.step for e in events if isinstance(e, TickEvent)] == [1, 2, 3]
    assert [e.step for e in events if isinstance(e, StepEvent)] == [3]  # the log keeps its pace


def test_a_resume_checks_the_references_the_run_uses_and_only_those(tmp_path):
    """data.json holds a reference's digest only where the split uses it (labeled and validation
    pairs): replacing the reference of an image MCMT trains without one does not block a resume."""
    import json

    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for part, level in (("low", 5), ("high", 120)):
        (tmp_path / "data" / part).mkdir(parents=True)
        for i in range(8):
            cv2.imwrite(str(tmp_path / "data" / part / f"{i}.png"), rng.integers(level, level + 40, (40, 48, 3), dtype=np.uint8))
    run = tmp_path / "run"
    args = ["train", "--semi", "--labeled-frac", "0.5", "--data", str(tmp_path / "data"), "--out", str(run),
            "--set", "model.name=crnet-tiny", "--set", "data.patch_size=32", "--set", "data.patches_per_image=2",
            "--set", "data.batch_size=2", "--set", "data.unlabeled_batch_size=2", "--set", "run.device=cpu",
            "--set", "data.val_count=1"]
    assert runner.invoke(app, [*args, "--max-steps", "1"]).exit_code == 0
    split = json.loads((run / "split.json").read_text())
    unlabeled, labeled = split["unlabeled"][0], split["labeled"][0]
    cv2.imwrite(str(tmp_path / "data" / "high" / f"{unlabeled}.png"), np.full((40, 48, 3), 200, np.uint8))
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    assert resumed.exit_code == 0, resumed.output
    cv2.imwrite(str(tmp_path / "data" / "high" / f"{labeled}.png"), np.full((40, 48, 3), 200, np.uint8))
    refused = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    assert refused.exit_code == 1 and f"e.g. {labeled}: its reference" in refused.output, refused.output


def test_a_validation_pair_smaller_than_the_ssim_window_is_refused_before_training(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for part, level in (("low", 5), ("high", 120)):
        (tmp_path / "data" / part).mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(tmp_path / "data" / part / f"{i}.png"), rng.integers(level, level + 40, (40, 48, 3), dtype=np.uint8))
    args = ["train", "--model", "crnet-tiny", "--data", str(tmp_path / "data"), "--patch-size", "32", "--device", "cpu",
            "--set", "data.val_count=1"]
    assert runner.invoke(app, [*args, "--max-steps", "1", "--out", str(tmp_path / "probe")]).exit_code == 0
    held = json.loads((tmp_path / "probe" / "split.json").read_text())["validation"][0]
    for part, level in (("low", 5), ("high", 120)):  # the same split draws it again: now it is tiny
        cv2.imwrite(str(tmp_path / "data" / part / f"{held}.png"), rng.integers(level, level + 40, (8, 9, 3), dtype=np.uint8))
    result = runner.invoke(app, [*args, "--max-steps", "50", "--out", str(tmp_path / "run")])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "smaller than 11x11 px" in text and f"e.g. {held}: 9x8" in text, result.output
    assert "hint:" in text and "step 1" not in text and not (tmp_path / "run").exists()


def test_a_damaged_training_state_is_said_with_a_way_on(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(run)]).exit_code == 0
    (run / "last" / "train_state.pt").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "is damaged and cannot be read" in text and "model.init_from" in text, result.output


def test_run_out_from_set_or_a_config_file_is_where_the_run_goes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--set", "run.out=runs/from-set"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "from-set" / "config.yaml").is_file() and not (tmp_path / "runs" / "crnet-tiny-full").exists()
    config = tmp_path / "run.yaml"
    config.write_text("run:\n  out: runs/from-file\n")
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "from-file" / "config.yaml").is_file()
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--config", str(config), "--out", "runs/flag"])
    assert result.exit_code == 0 and (tmp_path / "runs" / "flag" / "config.yaml").is_file()  # --out wins


def test_a_run_on_lowlight_data_records_the_folder_and_resumes_without_it(tmp_path, monkeypatch):
    from lowlight_cli.data.pairs import synthetic_pairs
    from lowlight_cli.io import ImageData, write_image

    data = tmp_path / "data"
    for pair in synthetic_pairs(6, size=(64, 64), seed=0):
        write_image(data / "low" / f"{pair.name}.png", ImageData(pair.low))
        write_image(data / "high" / f"{pair.name}.png", ImageData(pair.high))
    monkeypatch.setenv("LOWLIGHT_DATA", str(data))
    run = tmp_path / "run"
    args = ["--model", "crnet-tiny", "--patch-size", "32", "--patches-per-image", "1", "-b", "2", "--device", "cpu"]
    assert runner.invoke(app, ["train", *args, "--out", str(run), "--max-steps", "1"]).exit_code == 0
    assert f"root: {data}" in (run / "config.yaml").read_text()
    monkeypatch.delenv("LOWLIGHT_DATA")
    monkeypatch.chdir(tmp_path.parent)
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2"])
    assert result.exit_code == 0 and f"from {data}" in " ".join(result.output.split()), result.output


def test_a_state_that_cannot_be_written_is_a_clear_error_and_its_folder_is_not_reused(tmp_path, monkeypatch):
    """A full disk fails torch.save with a RuntimeError (its zip writer): one line, no half state
    left, and a new run is not started over the trained one's log and best/."""
    import lowlight_cli.training.state as state_module

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 148608 vs 148508")

    monkeypatch.setattr(state_module.torch, "save", full_disk)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "2", "--set", "run.val_every=1", "--out", str(run)])
    assert result.exit_code == 1 and "could not write the resumable state" in result.output, result.output
    assert "Traceback" not in result.output and not (run / "last.tmp").exists() and not (run / "last").exists()
    monkeypatch.undo()
    again = runner.invoke(app, ["train", *SMOKE, "--max-steps", "2", "--out", str(run)])
    assert again.exit_code == 2 and "saved no resumable state" in " ".join(again.output.split()), again.output
