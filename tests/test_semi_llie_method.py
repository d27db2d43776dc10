"""Semi-LLIE's training method: strong/weak views, its losses, the semantic mean-teacher step, runs.

The frozen networks (squeezenet for the paper's RAM, vgg19-normalised) are seeded random stand-ins
here (``run.stand_in_priors``): the real architectures, so shapes and gradients are the real ones,
without ``../shared/nets``. The backbone is ``semi-llie-tiny``.
"""

from __future__ import annotations

import colorsys
import json
import math

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.views import (
    StrongView,
    ViewParameters,
    adjust_hue,
    apply_view,
    draw_view_parameters,
    hsv_to_rgb,
    rgb_to_hsv,
    strong_view,
)
from lowlight_cli.errors import ConfigError
from lowlight_cli.losses import (
    GradientMapL1Loss,
    SemanticContrastiveLoss,
    create_loss,
    gradient_map,
    gradient_map_l1_loss,
    semantic_contrastive_loss,
)
from lowlight_cli.models import create_model
from lowlight_cli.priors import create_prior
from lowlight_cli.training import EMA, METHODS, StepContext, build_config
from lowlight_cli.training.config import load_yaml
from lowlight_cli.training.semi_llie import SemiLLIEStep
from lowlight_cli.training.steps import StagesForward

runner = CliRunner()
SMOKE = [
    "--method", "semi-llie", "--model", "semi-llie-tiny", "--data", "synthetic", "--set", "data.synthetic_count=10",
    "--patch-size", "32", "--batch-size", "2", "--set", "data.unlabeled_batch_size=2", "--patches-per-image", "2",
    "--labeled-frac", "0.5", "--set", "run.device=cpu", "--set", "run.log_every=1", "--set", "run.stand_in_priors=true",
    "--set", "run.val_every=100", "--set", "semi_llie.consistency_rampup=2",
]


# ---- views ---------------------------------------------------------------------------------------
def _identity(batch: int) -> ViewParameters:
    return ViewParameters(
        factors=torch.tensor([[1.0, 1.0, 1.0, 0.0]] * batch, dtype=torch.float64),
        order=torch.arange(4).repeat(batch, 1), jitter=torch.zeros(batch, dtype=torch.bool),
        grayscale=torch.zeros(batch, dtype=torch.bool),
        blur=torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]] * batch, dtype=torch.float64))


def test_hsv_matches_colorsys_and_round_trips():
    pixels = torch.rand(1, 3, 7, 9, dtype=torch.float64)
    pixels[0, :, 0, 0] = 0.5  # gray: hue 0, saturation 0
    hsv = rgb_to_hsv(pixels)
    for i, j in [(0, 0), (3, 4), (6, 8), (2, 1)]:
        expected = colorsys.rgb_to_hsv(*pixels[0, :, i, j].tolist())
        assert hsv[0, :, i, j].tolist() == pytest.approx(expected, abs=1e-12)
    assert torch.allclose(hsv_to_rgb(hsv), pixels, atol=1e-12)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert adjust_hue(red, torch.tensor([1 / 3])).flatten().tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)


def test_strong_view_draws_follow_semi_llies_probabilities():
    draws = draw_view_parameters(20000, generator=torch.Generator().manual_seed(0))
    assert float(draws.jitter.float().mean()) == pytest.approx(0.8, abs=0.015)
    assert float(draws.grayscale.float().mean()) == pytest.approx(0.2, abs=0.015)
    blurred = draws.blur[:, 2] < 1  # a kernel side of 1 leaves the image sharp: 0.5 x (1 - 0.404) blur
    assert float(blurred.float().mean()) == pytest.approx(0.5 * 0.596, abs=0.015)
    assert float((draws.blur[:, 0] > 0).float().mean()) == pytest.approx(0.5 * 0.192, abs=0.01)  # side 5
    assert torch.allclose(draws.blur.sum(dim=1), torch.ones(20000, dtype=torch.float64))
    jittered = draws.factors[draws.jitter]
    assert jittered[:, :3].min() >= 0.5 and jittered[:, :3].max() <= 1.5 and jittered[:, 3].abs().max() <= 0.25
    assert torch.equal(draws.factors[~draws.jitter], torch.tensor([[1.0, 1.0, 1.0, 0.0]], dtype=torch.float64).expand(
        int((~draws.jitter).sum()), 4))
    assert torch.equal(draws.order.sort(dim=1).values, torch.arange(4).expand(20000, 4))


def test_strong_view_is_a_seeded_batched_image_transform():
    images = torch.rand(6, 3, 16, 16)
    assert torch.equal(apply_view(images, _identity(6)), images)  # the identity draw changes nothing
    torch.manual_seed(5)
    a = strong_view(images)
    torch.manual_seed(5)
    b = strong_view(images)
    assert torch.equal(a, b)  # the global RNG (saved with every checkpoint) decides the views
    assert not torch.equal(a, strong_view(images))
    assert a.shape == images.shape and a.dtype == images.dtype and 0 <= float(a.min()) and float(a.max()) <= 1
    gray = draw_view_parameters(6, StrongView(jitter_prob=0, grayscale_prob=1, blur_prob=0))
    out = apply_view(images, gray)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    blur_only = StrongView(jitter_prob=0, grayscale_prob=0, blur_prob=1, blur_sigma=(2.0, 2.0))
    blurred = apply_view(images, draw_view_parameters(6, blur_only, torch.Generator().manual_seed(1)))
    sharp = blurred.diff(dim=-1).abs().mean(dim=(1, 2, 3)) < images.diff(dim=-1).abs().mean(dim=(1, 2, 3))
    kept = torch.isclose(blurred, images).flatten(1).all(dim=1)
    assert torch.all(sharp ^ kept)  # each image is blurred, or (kernel side 1) left as it was
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert strong_view(images).dtype == torch.float32  # the view is computed outside autocast
    assert not strong_view(images.clone().requires_grad_()).requires_grad


# ---- losses --------------------------------------------------------------------------------------
def test_gradient_map_l1_values_and_gradients():
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 4, 5)
    assert gradient_map(ramp, eps=0.0)[0, 0, 1].tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]
    flat = torch.full((1, 3, 6, 6), 0.4)
    assert float(gradient_map_l1_loss(flat, flat)) == 0.0
    target = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    output = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y: gradient_map(y), (output,))
    assert torch.autograd.gradcheck(lambda y: gradient_map_l1_loss(y, target), (output,))
    module = GradientMapL1Loss()(output.detach().float(), target.float())
    assert float(module) == pytest.approx(float(gradient_map_l1_loss(output.detach(), target)), rel=1e-5)
    assert isinstance(create_loss("gradient_map_l1"), GradientMapL1Loss)


def test_semantic_contrastive_ratio_values_and_gradients():
    a, p, n = torch.zeros(2, 3), torch.full((2, 3), 1.0), torch.full((2, 3), 4.0)
    assert float(semantic_contrastive_loss(a, p, n, eps=0.0)) == 0.25
    assert float(semantic_contrastive_loss(p, p, n)) == 0.0
    anchor = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    positive, negative = torch.rand(3, 8, dtype=torch.float64, requires_grad=True), torch.rand(3, 8, dtype=torch.float64) + 2
    assert torch.autograd.gradcheck(lambda x: semantic_contrastive_loss(x, positive, negative), (anchor,))
    semantic_contrastive_loss(anchor, positive, negative).backward()
    assert positive.grad is None  # the teacher's side is a target, not trained


def test_semantic_contrastive_loss_reaches_the_image_through_the_recogniser():
    network = create_prior("squeezenet", stand_in=True)
    x = torch.rand(2, 3, 40, 40)
    embedding, probabilities = network.embedding_and_probabilities(x)  # one pass, the same numbers
    assert torch.equal(embedding, network.embedding(x)) and torch.equal(probabilities, network.probabilities(x))
    loss = create_loss("semantic_contrastive", network=network, size=64)
    images = torch.rand(2, 3, 48, 48, requires_grad=True)
    terms = loss.terms(images, torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48) * 0.1)
    assert set(terms) == {"embedding", "probabilities"}
    for term in terms.values():
        (grad,) = torch.autograd.grad(term, images, retain_graph=True)
        assert float(grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="not a recognition network"):
        SemanticContrastiveLoss(create_prior("vgg19-normalised", stand_in=True))


# ---- the step ------------------------------------------------------------------------------------
def _step(*assignments: str, model: str = "semi-llie-tiny", patch: int = 32):
    config = build_config(flags={"run.method": "semi-llie", "model.name": model, "run.stand_in_priors": True,
                                 "data.patch_size": patch}, assignments=list(assignments))
    torch.manual_seed(0)
    student = create_model(model, pretrained=False).train()
    ema = EMA(student, config.teacher.ema_decay)
    context = StepContext(config.method_loss, config, torch.device("cpu"), ema)
    return METHODS.get("semi-llie").build_step(context), context, student


def _batch(labeled: int = 2, unlabeled: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    count = labeled + unlabeled
    high = (0.3 + 0.6 * torch.rand(count, 3, size, size, generator=g))
    high[labeled:] = 0  # as the patch dataset gives unlabeled patches
    return {"low": (high * 0.15 + 0.02 * torch.rand(count, 3, size, size, generator=g)).clamp(0, 1), "high": high,
            "labeled": torch.arange(count) < labeled}


def test_every_term_and_the_semantic_ones_train_the_student():
    step, context, student = _step()
    assert isinstance(step, SemiLLIEStep) and set(context.networks) == {"squeezenet", "vgg19-normalised"}
    torch.manual_seed(1)
    terms = step.loss_terms(StagesForward(student), _batch())
    assert set(terms) == {"l1", "mse", "perceptual", "gradient", "unsupervised_l1", "semantic",
                          "semantic_embedding", "semantic_probabilities"}
    params = list(student.parameters())
    for name, term in terms.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0, f"{name} gives the student no gradient"
    teacher_params = list(step.ema.teacher.parameters())
    assert not any(p.requires_grad for p in teacher_params)  # the teacher only follows the EMA
    assert not any(p.requires_grad for p in step.semantic.network.parameters())
    # the step's total: supervised + ramped consistency x unsupervised
    torch.manual_seed(1)
    out = step(StagesForward(student), _batch())
    w = context.losses
    weight = 0.2 * math.exp(-5.0)  # no teacher update yet: the start of the ramp-up
    assert out.terms["consistency_weight"] == pytest.approx(weight)
    expected = (sum(getattr(w, n) * float(terms[n].detach()) for n in ("l1", "mse", "perceptual", "gradient"))
                + weight * (float(terms["unsupervised_l1"].detach()) + float(terms["semantic"].detach())))
    assert out.terms["loss"] == pytest.approx(expected, rel=1e-5)
    step.ema.updates = w.consistency_rampup
    assert step.consistency_weight() == pytest.approx(0.2)


def test_the_student_sees_the_strong_view_and_the_teacher_the_weak_one():
    step, _, student = _step()
    batch = _batch(labeled=2, unlabeled=3)
    seen: dict[str, torch.Tensor] = {}
    forward = StagesForward(student)

    def student_forward(x: torch.Tensor) -> dict:
        seen["student"] = x.clone()
        return forward(x)

    def teacher_forward(x: torch.Tensor) -> dict:
        seen["teacher"] = x.clone()
        return step.ema.teacher.forward_train(x)

    step.teacher_forward = teacher_forward
    torch.manual_seed(3)
    step.loss_terms(student_forward, batch)
    weak = batch["low"][2:]
    torch.manual_seed(3)
    strong = strong_view(weak)
    assert torch.equal(seen["teacher"], weak)  # the unlabeled patches as they are
    assert torch.equal(seen["student"][:2], batch["low"][:2])  # labeled patches are not augmented
    assert torch.equal(seen["student"][2:], strong) and not torch.equal(strong, weak)


def test_supervised_only_runs_no_teacher_and_no_recogniser():
    step, context, student = _step("semi_llie.consistency=0")
    assert step.semantic is None and set(context.networks) == {"vgg19-normalised"}
    step.teacher_forward = lambda x: pytest.fail("the teacher ran in a supervised-only step")
    out = step(StagesForward(student), _batch())
    assert {"l1", "mse", "perceptual", "gradient"} <= set(out.terms) and "unsupervised_l1" not in out.terms
    assert out.terms["consistency_weight"] == 0.0


def test_loss_section_validation_names_the_key():
    def build(*assignments: str, **flags):
        return build_config(flags={"run.method": "semi-llie", **flags}, assignments=list(assignments))

    cases = [
        (("semi_llie.mse=-1",), "semi_llie.mse must be >= 0"),
        (("semi_llie.l1=0", "semi_llie.mse=0", "semi_llie.perceptual=0", "semi_llie.gradient=0"), "every supervised weight"),
        (("semi_llie.unsupervised_l1=0", "semi_llie.semantic=0"), "semi_llie.consistency is 0.2 but"),
        (("semi_llie.recogniser=vgg19-normalised",), "is a features network, not a recognition network"),
        (("semi_llie.perceptual_layers=relu4_3",), "semi_llie.perceptual_layers has no layer 'relu4_3'"),
        (("semi_llie.contrast_eps=0",), "semi_llie.contrast_eps must be > 0"),
        (("semi_llie.recogniser_size=8",), "at least 32 px"),
    ]
    for assignments, message in cases:
        with pytest.raises(ConfigError, match=message):
            build(*assignments)
    with pytest.raises(ConfigError, match="semi_llie.recogniser") as info:
        build("semi_llie.recogniser=squeezenett")
    assert "squeezenet" in info.value.hint
    with pytest.raises(ConfigError, match="semi_llie.consistencyy") as info:
        build("semi_llie.consistencyy=1")
    assert "did you mean semi_llie.consistency" in info.value.hint
    with pytest.raises(ConfigError, match="trains semi-llie models, not crnet-s"):
        build(**{"model.name": "crnet-s"})
    # no recogniser is needed (nor checked) when nothing reads it
    assert build("semi_llie.consistency=0", "semi_llie.recogniser=vgg19-normalised").method_loss.consistency == 0
    with pytest.raises(ConfigError, match="data.patch_size 30 must be a multiple of 4"):  # TrainConfig.validate
        _step(model="semi-llie-s", patch=30)


def test_method_defaults_and_explain():
    config = build_config(flags={"run.method": "semi-llie"})
    assert config.model.name == "semi-llie-s" and config.teacher.ema_decay == 0.996 and config.data.labeled_frac == 0.1
    assert config.export_weights == "teacher" and config.run.semi
    text = runner.invoke(app, ["train", "--method", "semi-llie", "--explain"]).stdout
    assert "RAM" in text and "squeezenet" in text and "recogniser = squeezenet" in text and "consistency = 0.2" in text


def test_the_two_lol_configs_differ_only_in_the_semi_supervised_part():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    semi, sup = (load_yaml(root / f"semi-llie-s-lol-{kind}10.yaml") for kind in ("semi", "sup"))
    for section in ("model", "optim", "teacher", "run"):
        assert semi[section] == sup[section], section
    assert {k: v for k, v in semi["data"].items() if k != "unlabeled_batch_size"} == \
           {k: v for k, v in sup["data"].items() if k != "unlabeled_batch_size"}
    assert sup["data"]["unlabeled_batch_size"] == 0 and sup["semi_llie"]["consistency"] == 0
    assert {k: semi["semi_llie"][k] for k in ("l1", "mse", "perceptual", "gradient")} == \
           {k: sup["semi_llie"][k] for k in ("l1", "mse", "perceptual", "gradient")}


# ---- runs ----------------------------------------------------------------------------------------
def test_a_run_resumes_exactly_and_saves_only_the_backbone(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    result = runner.invoke(app, ["train", *SMOKE, "--max-steps", "3", "--out", str(straight)])
    assert result.exit_code == 0, result.output
    assert "semi-supervised Semi-LLIE" in result.output and "squeezenet" in result.output and "stand-in" in result.output
    assert runner.invoke(app, ["train", *SMOKE, "--max-steps", "1", "--out", str(halves)]).exit_code == 0
    second = runner.invoke(app, ["train", "--resume", str(halves), "--max-steps", "3"])
    assert second.exit_code == 0 and "resumed at step 1" in second.output, second.output
    for name in ("model.safetensors", "ema.safetensors"):  # the views were drawn alike: same student, same teacher
        a, b = load_file(str(straight / "last" / name)), load_file(str(halves / "last" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    log = [json.loads(x) for x in (straight / "log.jsonl").read_text().splitlines()]
    steps = [r["terms"] for r in log if r["kind"] == "step"]
    assert len(steps) == 3 and all(t["unlabeled"] == 2 and t["semantic"] > 0 for t in steps)
    assert steps[0]["consistency_weight"] < steps[2]["consistency_weight"] == pytest.approx(0.2 * math.exp(-5 * 0.0))
    keys = set(create_model("semi-llie-tiny", pretrained=False).state_dict())
    assert set(load_file(str(straight / "best" / "model.safetensors"))) == keys  # no frozen network in it
    provenance = json.loads((straight / "best" / "config.json").read_text())["provenance"]
    assert provenance["method"] == "semi-llie" and provenance["weights"] == "teacher"
    assert set(provenance["frozen_networks"]) == {"squeezenet", "vgg19-normalised"}
