"""The ``skf`` training method: its losses and discriminator in the one fit loop, exact resume, DDP.

Runs use ``crnet-tiny-skf`` on synthetic pairs with a seeded random stand-in of ESPNetv2-VOC
(``run.stand_in_priors``): shapes, gradients and resume are the real ones, segmentation quality is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import ConfigError
from lowlight_cli.losses.region_masks import largest_region_masks
from lowlight_cli.models import create_model
from lowlight_cli.training import METHODS, StepContext, build_config
from lowlight_cli.training.steps import StagesForward

runner = CliRunner()
SMOKE = [
    "--method", "skf", "--model", "crnet-tiny-skf", "--data", "synthetic", "--set", "data.synthetic_count=10",
    "--patch-size", "32", "--batch-size", "2", "--patches-per-image", "2", "--set", "run.device=cpu",
    "--set", "run.log_every=1", "--set", "run.stand_in_priors=true", "--set", "run.val_every=100",
]


def _step(*assignments: str):
    config = build_config(flags={"run.method": "skf", "model.name": "crnet-tiny-skf", "run.stand_in_priors": True},
                          assignments=list(assignments))
    return METHODS.get("skf").build_step(StepContext(config.method_loss, config, torch.device("cpu")))


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    high = 0.2 + 0.6 * torch.rand(2, 3, 32, 32, generator=g)
    return {"low": 0.1 * high, "high": high, "labeled": torch.tensor([True, True])}


class FixedOutput(nn.Module):
    """A stand-in enhancer: a learnable image and the class probabilities chosen by the test."""

    def __init__(self, probabilities: torch.Tensor) -> None:
        super().__init__()
        self.image = nn.Parameter(torch.full((probabilities.shape[0], 3, *probabilities.shape[2:]), 0.5))
        self.probabilities = probabilities

    def forward(self, low: torch.Tensor) -> dict:
        return {"output": self.image * 1.0, "stages": [], "probabilities": self.probabilities}


class HalfScores(nn.Module):
    """A stand-in discriminator scoring the left half of every image ``left`` and the right half ``1 - left``."""

    def __init__(self, left: float) -> None:
        super().__init__()
        self.left = left
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = torch.full((images.shape[0], 1, 4, 8), 1.0 - self.left)
        scores[..., :3] = self.left  # the left 3 of 8 columns: the smaller region
        return scores + self.bias + 0.0 * images.mean()


def _one_hot(labels: torch.Tensor, classes: int = 21) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, classes).permute(0, 3, 1, 2).float()


# ---- registration and configuration ----------------------------------------------------------------
def test_skf_is_registered_with_its_section_and_says_what_it_fixed():
    method = METHODS.get("skf")
    assert (method.default_model, method.section, method.data, method.families) == ("crnet-s-skf", "skf", "paired", ("crnet-skf",))
    explained = runner.invoke(app, ["train", "--method", "skf", "--explain"])
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.stdout.split())
    assert "max_2_seg = max_1_seg" in text and "62-channel" in text
    assert "histogram = 0.05" in text and "adversarial = 0.01" in text  # the loss section's keys
    # a plain enhancer with an SKF variant trains that variant (--method skf --model crnet-s)
    assert build_config(flags={"run.method": "skf", "model.name": "crnet-s"}).model.name == "crnet-s-skf"
    assert build_config(flags={"run.method": "skf", "model.name": "crnet-tiny"}).model.name == "crnet-tiny-skf"
    with pytest.raises(ConfigError, match="crnet-curve") as info:  # an enhancer without the plug-in is refused
        build_config(flags={"run.method": "skf", "model.name": "crnet-curve"})
    assert "crnet-s-skf" in info.value.hint  # and the ones with it are named
    with pytest.raises(ConfigError, match="skf.regions"):
        build_config(flags={"run.method": "skf"}, assignments=["skf.regions=semantic"])


# ---- the step --------------------------------------------------------------------------------------
def test_every_term_trains_the_enhancer_and_the_discriminator_trains_after_the_step():
    step = _step()
    torch.manual_seed(0)
    model = create_model("crnet-tiny-skf", pretrained=False).train()
    with torch.no_grad():  # a trained-looking model: the zero-initialised SEM projections move
        for p in model.semantic.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    student = StagesForward(model)
    grads = {}
    for name, assignments in (("all", ()), ("histogram", ("skf.adversarial=0",)), ("adversarial", ("skf.histogram=0",)),
                              ("neither", ("skf.histogram=0", "skf.adversarial=0"))):
        own = _step(*assignments)
        model.zero_grad()
        out = own(student, _batch())
        out.loss.backward()
        grads[name] = torch.cat([p.grad.flatten() for p in model.semantic.parameters()])
        assert all(p.grad is None for p in own.discriminator.parameters())  # the enhancer's loss never trains it
    assert not torch.allclose(grads["histogram"], grads["neither"]) and not torch.allclose(grads["adversarial"], grads["neither"])
    out = step(student, _batch())
    assert {"ssim", "stages_l1", "histogram", "adversarial", "discriminator"} <= set(out.terms)
    assert 0 <= out.terms["histogram"] <= 1
    before = [p.detach().clone() for p in step.discriminator.parameters()]
    step.before_update()  # its gradients only (all-reduced under DDP, outside the held section) ...
    assert all(torch.equal(a, b) for a, b in zip(before, step.discriminator.parameters()))
    assert all(p.grad is not None for p in step.discriminator.parameters())
    step.after_step()  # ... its update with the model's
    assert any(not torch.equal(a, b) for a, b in zip(before, step.discriminator.parameters()))
    assert all(torch.isfinite(p).all() for p in step.discriminator.parameters())


def test_the_worst_of_two_distinct_regions_is_judged():
    labels = torch.full((2, 32, 64), 8)
    labels[..., :24] = 3  # class 3 on the left 3/8, class 8 on the right 5/8
    masks, areas = largest_region_masks(labels, 2)
    assert (masks[:, 0] * masks[:, 1]).sum() == 0 and torch.equal(areas[0], torch.tensor([1280.0, 768.0]))
    step = _step("skf.local_share=1", "skf.histogram=0")
    student = FixedOutput(_one_hot(labels))
    batch = {"low": torch.zeros(2, 3, 32, 64), "high": torch.rand(2, 3, 32, 64), "labeled": torch.tensor([True, True])}
    for left in (0.0, 1.0):  # whichever region the discriminator finds least real, the generator is judged on it
        step.discriminator = step.trained = HalfScores(left)
        assert step(student, batch).terms["adversarial"] == pytest.approx(1.0)
    # the authors' masks were both the second-largest class: one of the two cases would have scored 0


def test_a_patch_of_one_class_gives_finite_gradients():
    step = _step()
    student = FixedOutput(_one_hot(torch.zeros(2, 32, 32, dtype=torch.long)))  # fewer classes than candidates
    out = step(student, _batch())
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(student.image.grad).all() and student.image.grad.abs().sum() > 0
    step.before_update()
    step.after_step()
    assert all(torch.isfinite(p).all() for p in step.discriminator.parameters())


def test_unsupervised_regions_of_the_reference():
    pytest.importorskip("skimage")
    step = _step("skf.regions=felzenszwalb", "skf.felzenszwalb_min_size=20")
    out = step(StagesForward(create_model("crnet-tiny-skf", pretrained=False).train()), _batch())
    assert torch.isfinite(out.loss) and {"histogram", "adversarial"} <= set(out.terms)


# ---- runs ------------------------------------------------------------------------------------------
def test_training_resumes_exactly_the_enhancer_and_the_discriminator(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    result = runner.invoke(app, ["train", *SMOKE, "--out", str(straight), "--max-steps", "4"])
    assert result.exit_code == 0, result.output
    assert "stand-in" in result.output
    assert runner.invoke(app, ["train", *SMOKE, "--out", str(halves), "--max-steps", "2"]).exit_code == 0
    second = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "4"])
    assert second.exit_code == 0 and "resumed at step 2" in second.output, second.output
    a, b = load_file(str(straight / "last" / "model.safetensors")), load_file(str(halves / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (torch.load(run / "last" / "train_state.pt", weights_only=True)["step"] for run in (straight, halves))
    assert all(torch.equal(sa["discriminator"][k], sb["discriminator"][k]) for k in sa["discriminator"])
    moments = [(s["optimizer"]["state"][0]["step"], s["optimizer"]["state"][0]["exp_avg"]) for s in (sa, sb)]
    assert moments[0][0] == moments[1][0] == 4 and torch.equal(moments[0][1], moments[1][1])
    # checkpoints hold the enhancer only: no segmentation network, no discriminator
    assert set(a) == set(create_model("crnet-tiny-skf", pretrained=False).state_dict())
    assert not any(k.startswith(("prior.", "discriminator")) for k in a)
    provenance = json.loads((straight / "best" / "config.json").read_text())["provenance"]
    assert provenance["method"] == "skf" and "stand-in" in provenance["frozen_networks"]["espnetv2-voc"]
    steps = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines() if '"kind": "step"' in x]
    assert len(steps) == 4 and all({"histogram", "adversarial", "discriminator"} <= set(s["terms"]) for s in steps)


@pytest.mark.slow
def test_torchrun_two_processes_keep_one_discriminator(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lowlight_cli", "train", *SMOKE, "--max-steps", "3", "--out", str(run)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    check = [r for r in records if r["kind"] == "ddp_checksums"][-1]
    assert len(check["checksums"]) == 2 and check["checksums"][0] == check["checksums"][1]
    assert len(check["step_checksums"]) == 2 and check["step_checksums"][0] == check["step_checksums"][1]
