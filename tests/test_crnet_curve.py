"""CRNet's curve output (ours): the guarantees the photo model is built on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_cli.data.pairs import ImagePair
from lowlight_cli.data.patches import PatchConfig, PatchDataset
from lowlight_cli.errors import ConfigError
from lowlight_cli.models import create_model


def _random_curve_model(correction: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("crnet-curve", pretrained=False)
    for head in model.heads:
        torch.nn.init.normal_(head.weight, std=0.05)
        if not correction:  # the first 3 s^2 channels are the input-domain correction
            with torch.no_grad():
                head.weight[: -3].zero_()
                head.bias[: -3].zero_()
    return model.eval()


def test_curve_never_darkens_keeps_black_and_white():
    model = _random_curve_model(correction=False)
    x = torch.rand(2, 3, 64, 80) * 0.6
    x[..., :8, :8] = 0.0
    x[..., -8:, -8:] = 1.0
    with torch.no_grad():
        y = model(x)
    assert (y >= x - 1e-6).all()
    assert (y[..., :8, :8] == 0).all() and (y[..., -8:, -8:] == 1).all()
    assert y.mean() > x.mean() + 0.05  # random logits ~0: gains ~8 brighten a lot


def test_correction_is_bounded_so_an_output_is_never_much_darker():
    model = _random_curve_model(correction=True)
    with torch.no_grad():
        for head in model.heads:
            head.bias[: -3].fill_(-50.0)  # push the correction to its negative bound
            head.bias[-3:].fill_(-50.0)  # and the gain to 1
        x = torch.rand(1, 3, 64, 64)
        y = model(x)
    assert (y >= (x - 0.05 - 1e-5).clamp(min=0)).all()


def test_highlights_are_guarded_from_clipping():
    model = _random_curve_model(correction=False)
    with torch.no_grad():
        for head in model.heads:
            head.bias[-3:].fill_(50.0)  # the largest gain everywhere
        x = torch.full((1, 3, 64, 64), 0.02)
        x[..., 20:40, 20:40] = 0.96  # a lamp, not clipped in the input (245)
        y = model(x)
    assert y[..., 0, 0].min() > 0.5  # the dark part is lifted hard
    assert (y[..., 20:40, 20:40] * 255 < 254.5).all()  # the lamp is not pushed to 255


@pytest.mark.parametrize("bad", [{"output": "gain"}, {"padding_mode": "circular"}, {"max_gain": 1.0},
                                 {"curve_shoulder": 0.5}, {"curve_shoulder": float("nan")},
                                 {"curve_shoulder": True}, {"curve_shoulder": "2"}])
def test_curve_options_are_validated(bad):
    with pytest.raises(ConfigError):
        create_model("crnet-curve", pretrained=False, **bad)


def test_identity_patches_are_references_at_the_requested_rate():
    rng = np.random.default_rng(0)
    low = (rng.random((64, 64, 3)) * 60).astype(np.uint8)
    high = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    pairs = [ImagePair("a", low, high)]
    plain = PatchDataset(pairs, PatchConfig(size=32, per_image=400), seed=1)
    mixed = PatchDataset(pairs, PatchConfig(size=32, per_image=400, identity_prob=0.25), seed=1)
    same = [bool(torch.equal(mixed[(0, k)]["low"], mixed[(0, k)]["high"])) for k in range(400)]
    assert 0.18 < np.mean(same) < 0.32
    assert not any(torch.equal(plain[(0, k)]["low"], plain[(0, k)]["high"]) for k in range(50))
    # the crop is drawn as before: a non-identity patch equals the plain dataset's patch
    k = same.index(False)
    assert torch.equal(mixed[(0, k)]["low"], plain[(0, k)]["low"])


def test_under_exposed_patches_are_their_reference_darkened_at_the_requested_rate():
    rng = np.random.default_rng(0)
    low = (rng.random((64, 64, 3)) * 20).astype(np.uint8)  # LOL-dark: mean gray ~0.04
    high = (rng.random((64, 64, 3)) * 200 + 40).astype(np.uint8)
    pairs = [ImagePair("a", low, high)]
    plain = PatchDataset(pairs, PatchConfig(size=32, per_image=300), seed=1)
    config = PatchConfig(size=32, per_image=300, identity_prob=0.2, dim_prob=0.5, dim_exposure=(0.25, 0.5))
    mixed = PatchDataset(pairs, config, seed=1)
    kinds = []
    for k in range(300):
        item = mixed[(0, k)]
        if torch.equal(item["low"], item["high"]):
            kinds.append("identity")
        elif torch.equal(item["low"], plain[(0, k)]["low"]):
            kinds.append("pair")  # the crop is drawn as before
        else:
            # a gain in linear light: display values scale by exposure ** (1/2.2), plus noise
            ratio = float(item["low"].mean() / item["high"].mean())
            assert 0.25 ** (1 / 2.2) - 0.05 < ratio < 0.5 ** (1 / 2.2) + 0.05
            levels = item["low"] * 255
            assert (levels - torch.round(levels)).abs().max() < 1e-3  # 8-bit
            kinds.append("dim")
    shares = {kind: kinds.count(kind) / len(kinds) for kind in ("identity", "dim", "pair")}
    assert 0.13 < shares["identity"] < 0.27 and 0.32 < shares["dim"] < 0.48  # 0.2, then half of 0.8


def test_under_exposed_patches_are_validated_and_for_paired_methods_only():
    from lowlight_cli.training.config import TrainConfig, set_value

    config = TrainConfig()
    set_value(config, "data.dim_exposure", [0.6, 0.2])
    with pytest.raises(ConfigError, match="dim_exposure"):
        config.validate()
    config = TrainConfig()
    set_value(config, "data.dim_prob", 1.0)
    with pytest.raises(ConfigError, match="dim_prob"):
        config.validate()



def test_gain_curve_is_a_gain_near_black_and_keeps_white():
    from lowlight_cli.models.crnet import gain_curve

    y = torch.linspace(0, 1, 101, dtype=torch.float64)
    out = gain_curve(y, torch.tensor(10.0, dtype=torch.float64))
    assert out[0] == 0 and out[-1] == 1
    assert (out[1:] - out[:-1] > 0).all() and (out >= y).all()
    assert abs(out[1] / y[1] - 10 / (1 + 9 * 0.01)) < 1e-9  # ~ a 9x gain at 0.01
    # blacks stay proportionally dark: the ratio of 0.01 to 0.1 shrinks only from 0.1 to ~0.19
    assert out[1] / out[10] < 0.2


def _curve_stage_as_documented(model, x, raw, gain):
    """CRNetConfig's curve output written out at full resolution, operation by operation."""
    import math

    import torch.nn.functional as F

    from lowlight_cli.models.crnet import _CORRECTION_BOUND, gain_curve

    s = model.cfg.downscale
    correction = F.pixel_shuffle(raw[:, : 3 * s * s], s)
    logits = F.interpolate(raw[:, 3 * s * s :], scale_factor=float(s), mode="bilinear", align_corners=False) + gain
    log_gain = math.log(model.cfg.max_gain) * torch.sigmoid(logits)
    peak = x.amax(dim=1, keepdim=True).clamp(0.0, 1.0)
    g = torch.exp(log_gain * (1.0 - peak.pow(model.cfg.highlight_exponent)))
    correction = _CORRECTION_BOUND * torch.tanh(correction) * (1.0 - 1.0 / g)
    y, p = (x + correction).clamp(0.0, 1.0), model.cfg.curve_shoulder
    if p == 1:
        return gain_curve(y, g)
    return g * y / (1.0 + (g**p - 1.0) * y**p) ** (1.0 / p)  # written out: not the code's own function


def test_curve_stage_computes_the_documented_curve():
    """The stage works at body resolution where the operations commute with the upsampling and
    evaluates the curve through 1/g; it must still be the curve written out at full resolution."""
    model = create_model("crnet-curve", pretrained=False, gate_correction=True).double()
    s = model.cfg.downscale
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8 * s, 12 * s, dtype=torch.float64, generator=generator)
    raw = 2 * torch.randn(2, 3 * s * s + 3, 8, 12, dtype=torch.float64, generator=generator)
    gain = torch.randn(2, 3, 1, 1, dtype=torch.float64, generator=generator)
    documented = _curve_stage_as_documented(model, x, raw, gain)
    fast, _ = model._curve_stage(x, raw, gain)  # inference: written in place
    assert torch.allclose(fast, documented, atol=1e-12, rtol=0)
    graph, _ = model._curve_stage(x, raw.clone().requires_grad_(), gain)  # the differentiable form
    assert torch.allclose(graph, documented, atol=1e-12, rtol=0)
    for exponent in (1.0, 2.5):  # the general power (the default 4 is two squarings)
        other = create_model("crnet-curve", pretrained=False, gate_correction=True,
                             highlight_exponent=exponent).double()
        fast, _ = other._curve_stage(x, raw, gain)
        assert torch.allclose(fast, _curve_stage_as_documented(other, x, raw, gain), atol=1e-12, rtol=0)
    for shoulder in (2.0, 3.0):  # the shoulder's fast path (2) and the general power
        other = create_model("crnet-curve", pretrained=False, gate_correction=True, curve_shoulder=shoulder).double()
        documented = _curve_stage_as_documented(other, x, raw, gain)
        assert not torch.allclose(documented, _curve_stage_as_documented(model, x, raw, gain))
        fast, _ = other._curve_stage(x, raw, gain)
        assert torch.allclose(fast, documented, atol=1e-12, rtol=0), shoulder
        graph, _ = other._curve_stage(x, raw.clone().requires_grad_(), gain)
        assert torch.allclose(graph, documented, atol=1e-12, rtol=0), shoulder


@pytest.mark.parametrize("shoulder", [2.0, 3.0])
def test_curve_shoulder_keeps_the_guarantees_and_lifts_blacks_less_for_the_same_mid_tone(shoulder):
    from lowlight_cli.models.crnet import gain_curve

    y = torch.linspace(0, 1, 1001, dtype=torch.float64)
    out = gain_curve(y, torch.tensor(5.0, dtype=torch.float64), shoulder)
    assert out[0] == 0 and out[-1] == 1
    assert (out[1:] - out[:-1] > 0).all() and (out >= y).all()
    assert abs(out[1] / y[1] - 5.0) < 1e-3  # a gain of 5 near black
    # the gain each curve needs to take a mid-tone 0.1 to 0.4 (bisection), then what it does to 0.01
    def needed_gain(p):
        low, high = 1.0, 64.0
        for _ in range(100):
            middle = (low + high) / 2
            value = gain_curve(torch.tensor(0.1, dtype=torch.float64), torch.tensor(middle, dtype=torch.float64), p)
            low, high = (middle, high) if value < 0.4 else (low, middle)
        return torch.tensor(low, dtype=torch.float64)

    black = torch.tensor(0.01, dtype=torch.float64)
    assert abs(needed_gain(1.0) - 6.0) < 1e-6  # 0.1 g / (1 + 0.1 (g - 1)) = 0.4
    reinhard, shouldered = gain_curve(black, needed_gain(1.0), 1.0), gain_curve(black, needed_gain(shoulder), shoulder)
    assert shouldered < 0.8 * reinhard  # a near-black pixel lifted less by at least a fifth
    assert shouldered > 0.04  # still the gain that brightens the mid-tone 4x


def test_refinement_stage_warm_starts_as_the_model_without_it():
    base = _random_curve_model()
    torch.manual_seed(1)
    refined = create_model("crnet-curve-dn", pretrained=False)
    missing, unexpected = refined.load_state_dict(base.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith(refined.warm_start_additions) for k in missing)
    refined.eval()
    x = torch.rand(2, 3, 64, 48) * 0.3
    with torch.no_grad():
        assert torch.equal(refined(x), base(x))  # the stage's last convolution starts at zero
        torch.nn.init.normal_(refined.refine.out.weight, std=0.05)
        changed = refined(x)
    assert (changed - base(x)).abs().max() > 1e-3  # ... and is not dead once trained


def test_refinement_acts_only_where_the_curve_brightens():
    model = _random_curve_model(correction=False)
    refined = create_model("crnet-curve-dn", pretrained=False)
    refined.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        torch.nn.init.normal_(refined.refine.out.weight, std=0.5)
        for head in refined.heads:
            head.bias[-3:].fill_(-50.0)  # gain 1 everywhere: nothing to brighten
        x = torch.rand(1, 3, 64, 64)
        assert torch.allclose(refined.eval()(x), x, atol=1e-5)  # a well-exposed photo passes


def test_refinement_is_trained_by_the_final_stage_loss():
    model = create_model("crnet-curve-dn", pretrained=False).train()
    out = model.forward_train(torch.rand(2, 3, 32, 32) * 0.2)
    out["output"].mean().backward()
    assert model.refine.out.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="output: curve"):
        create_model("crnet-s", pretrained=False, refine_channels=8)


def test_refinement_never_clips_what_the_curve_left_unclipped():
    model = _random_curve_model(correction=False)
    refined = create_model("crnet-curve-dn", pretrained=False)
    refined.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        refined.refine.out.bias.fill_(5.0)  # a stage that pushes every pixel up hard
        x = torch.rand(1, 3, 64, 64) * 0.5
        base = model.eval()(x)
        out = refined.eval()(x)
    assert (out > base + 0.01).any()  # it does brighten ...
    unclipped = base * 255 < 254.5
    assert (out[unclipped] * 255 < 254.5).all()  # ... but never into 255 where the curve stayed below


def test_stem_input_is_the_unshuffled_image_and_its_gamma_view():
    """The stem input is written in place (no separate rearrangement and concatenation passes); it
    must equal ``cat(unshuffle(x), unshuffle(x) ** (1/2.2))``: exactly with autograd, within float
    rounding without (the in-place gamma is ``exp(log(x) / 2.2)``)."""
    import torch.nn.functional as F

    for stem_input in ("gamma", "self"):
        model = create_model("crnet-curve", pretrained=False, stem_input=stem_input)
        s = model.cfg.downscale
        x = torch.rand(2, 3, 3 * s, 5 * s)
        x[0, 0, :2, :2] = 0.0  # the clamp below 1e-6 matters there
        unshuffled = F.pixel_unshuffle(x, s)
        view = unshuffled.clamp(min=1e-6).pow(1.0 / 2.2) if stem_input == "gamma" else unshuffled
        expected = torch.cat((unshuffled, view), dim=1)
        # in place (no autograd): the gamma view as exp(log(x) / 2.2), within float rounding
        fast = model._stem_input(x)
        assert torch.equal(fast[:, : 3 * s * s], expected[:, : 3 * s * s])
        assert torch.allclose(fast, expected, atol=2e-7, rtol=0)
        assert torch.equal(model._stem_input(x.clone().requires_grad_()), expected)


def test_refinement_is_its_documented_formula():
    """``y + b * shuffle2(out(relu(hidden(relu(inp(cat(unshuffle2(y), pool2(b)))))))``, capped;
    the stage runs its convolutions in channels-last memory and in place and must still compute
    exactly that, gradients included."""
    import torch.nn.functional as F

    from lowlight_cli.models.crnet import REFINE_CEILING

    stage = create_model("crnet-curve-dn", pretrained=False).refine
    torch.nn.init.normal_(stage.out.weight, std=0.2)

    def documented(y, b):
        h = F.relu(stage.inp(torch.cat((F.pixel_unshuffle(y, 2), F.avg_pool2d(b, 2)), dim=1)))
        for conv in stage.hidden:
            h = F.relu(conv(h))
        return torch.minimum(y + b * F.pixel_shuffle(stage.out(h), 2), y.clamp(min=REFINE_CEILING))

    generator = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 10, 14, generator=generator).requires_grad_()
    b = torch.rand(2, 3, 10, 14, generator=generator)
    fast, slow = stage(y, b), documented(y, b)
    assert torch.allclose(fast, slow, atol=1e-6, rtol=0)
    (grad_fast,) = torch.autograd.grad(fast.sum(), y)
    (grad_slow,) = torch.autograd.grad(slow.sum(), y)
    assert torch.allclose(grad_fast, grad_slow, atol=1e-6, rtol=0)
    # inference builds the input and undoes the shuffle in channels-last memory, in place
    with torch.inference_mode():
        for shape in ((2, 3, 10, 14), (1, 3, 64, 40)):
            y = torch.rand(*shape, generator=generator)
            b = torch.rand(*shape, generator=generator)
            assert torch.allclose(stage(y, b), documented(y, b), atol=1e-6, rtol=0)
            assert stage(y, b).is_contiguous()
        # other memory layouts take the general path
        y_cl = y.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(stage(y_cl, b), documented(y, b), atol=1e-6, rtol=0)


def test_refinement_inference_path_matches_the_general_one_bit_for_bit():
    """The in-place inference path (channels-last input built in one copy, shuffle undone in one
    copy) gives the general path's bits, in fp32 and under CPU bf16 autocast, leaves its inputs
    alone, and steps aside when the stage's own weights are being trained on a frozen body."""
    stage = create_model("crnet-curve-dn", pretrained=False).refine
    torch.nn.init.normal_(stage.out.weight, std=0.2)
    generator = torch.Generator().manual_seed(1)
    # (a 2x2 image, whose 1x1 half-size layout is ambiguous, may differ in the last bit: not here)
    for shape in ((1, 3, 4, 6), (3, 3, 10, 14), (2, 3, 6, 22)):
        y = torch.rand(*shape, generator=generator)
        b = torch.rand(*shape, generator=generator)
        y0, b0 = y.clone(), b.clone()
        for autocast in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), torch.inference_mode():
                fast = stage(y, b)
                # a channels-last y takes the general path, with the same convolution inputs
                general = stage(y.contiguous(memory_format=torch.channels_last), b)
            assert fast.dtype == general.dtype == torch.float32
            assert torch.equal(fast, general.contiguous()), (shape, autocast)
        assert torch.equal(y, y0) and torch.equal(b, b0)
    # a frozen body (its output needs no gradient) and a trainable stage: the general path, with gradients
    y = torch.rand(2, 3, 8, 8, generator=generator)
    out = stage(y, torch.rand(2, 3, 8, 8, generator=generator))
    out.sum().backward()
    assert stage.out.weight.grad is not None and stage.out.weight.grad.abs().sum() > 0
