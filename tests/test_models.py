"""Model registry, CRNet structure and contract, checkpoints (strict, no pickle)."""

from __future__ import annotations

import json

import pytest
import torch

from lowlight_cli.errors import CheckpointError, UnknownNameError, UsageError
from lowlight_cli.models import MODELS, CRNet, create_model, list_models, load_checkpoint, save_checkpoint
from lowlight_cli.models.complexity import measure_complexity
from lowlight_cli.models.crnet import layer_attention


def test_unknown_model_suggests_close_name():
    with pytest.raises(UnknownNameError) as info:
        create_model("crnt", pretrained=False)
    assert "crnet" in (info.value.hint or "")


def test_registry_rejects_duplicates():
    entry = MODELS.get("gamma")
    with pytest.raises(ValueError):
        MODELS.register("gamma", entry)


@pytest.mark.parametrize("name", list_models(include_test=True))
def test_the_registered_cost_is_the_counted_one(name):
    """``lowlight models`` lists ``ModelInfo.listed_macs`` instead of counting: each is the count
    of the model as built by default on a 64x64 input."""
    entry = MODELS.get(name)
    assert entry.info.listed_macs == measure_complexity(entry.build(), size=64).macs


def _listed_macs_per_pixel(name: str) -> float:
    return MODELS.get(name).info.listed_macs / 64**2  # the count itself: test_the_registered_cost_is_the_counted_one


def test_paper_size_crnet_matches_spec_size_and_cost():
    # exact count of the architecture in SPEC-crnet.md (C=32, 4 groups, 5 blocks, 2 recurrences)
    assert sum(p.numel() for p in create_model("crnet", pretrained=False).parameters()) == 921_968
    assert 1.6e6 < _listed_macs_per_pixel("crnet") < 1.8e6  # "about 1.7 M multiply-adds per pixel"


def test_small_variant_is_at_least_8x_cheaper():
    assert _listed_macs_per_pixel("crnet") / _listed_macs_per_pixel("crnet-s") >= 8


@pytest.mark.parametrize("name", list_models(include_test=True))
def test_forward_keeps_shape_and_range(name):
    model = create_model(name, pretrained=False)
    m = model.info.input_multiple
    x = torch.rand(2, 3, 8 * m, 12 * m)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_forward_train_returns_all_stages_unclamped():
    model = create_model("crnet-tiny", pretrained=False).train()
    out = model.forward_train(torch.rand(1, 3, 16, 16))
    assert out["output"].shape == (1, 3, 16, 16)
    assert len(out["stages"]) == model.cfg.groups - 1
    assert out["output"].requires_grad


def test_eval_forward_equals_last_training_stage_clamped():
    model = create_model("crnet-tiny", pretrained=False)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        final = model.forward_train(x)["output"].clamp(0, 1)
        assert torch.allclose(model(x), final)


def test_random_init_is_seeded():
    a = create_model("crnet-tiny", pretrained=False)
    b = create_model("crnet-tiny", pretrained=False)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_layer_attention_sign_and_identity():
    feats = torch.randn(2, 5, 4, 6, 6)
    # gamma = 0 is the identity whatever the sign
    assert torch.equal(layer_attention(feats, torch.zeros(1)), feats)
    # one map much larger than the others: positive sign attends to it, negative sign away from it
    feats = torch.ones(1, 3, 1, 2, 2) * torch.tensor([1.0, 1.0, 4.0]).view(1, 3, 1, 1, 1)
    pos = layer_attention(feats, torch.ones(1), 1.0) - feats
    neg = layer_attention(feats, torch.ones(1), -1.0) - feats
    assert pos[0, 0].mean() > neg[0, 0].mean()  # map 0 pulls in map 2's large values with sign +1
    # softmax weights over maps (1, 1, 4): e^1, e^1, e^4 -> attended value (2e + 4e^4) / (2e + e^4)
    e = torch.e
    assert torch.allclose(pos[0, 0].mean(), torch.tensor((2 * e + 4 * e**4) / (2 * e + e**4)), atol=1e-4)


def test_long_inner_products_are_float32_under_bf16_autocast():
    from lowlight_cli.models.products import long_inner_product

    a = torch.randn(2, 3, 5000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = long_inner_product(a.bfloat16(), a.bfloat16().transpose(1, 2))
    assert gram.dtype == torch.float32
    exact = a.bfloat16().double() @ a.bfloat16().double().transpose(1, 2)  # the bf16 inputs' products, summed exactly
    assert torch.allclose(gram.double(), exact, rtol=1e-5, atol=1e-3)


def test_layer_attention_in_bf16_on_one_thread_does_not_kill_the_process():
    """oneDNN's bf16 batched product died with SIGFPE on (1, 3, 524288) x (1, 524288, 3), one thread
    (torch 2.13): layer attention of CRNet on a 1024 x 1024 photo, `lowlight enhance`'s default on a
    CPU with bf16. The crash needs oneDNN's native bf16 kernels, so elsewhere this only runs the shape."""
    import subprocess
    import sys

    code = ("import torch\nfrom lowlight_cli.models.crnet import layer_attention\n"
            "f = torch.randn(1, 3, 32, 128, 128).bfloat16()\n"
            "with torch.inference_mode():\n    out = layer_attention(f, torch.ones(1).bfloat16())\n"
            "print(out.dtype, bool(torch.isfinite(out.float()).all()))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.split() == ["torch.bfloat16", "True"]


def test_layer_attention_energy_is_a_mean():
    # scaling the spatial size must not sharpen the attention (energy divided by C*H*W)
    small = torch.randn(1, 3, 2, 4, 4)
    big = small.repeat(1, 1, 1, 4, 4)  # same statistics, 16x more pixels
    a = layer_attention(small, torch.ones(1)) - small
    b = layer_attention(big, torch.ones(1)) - big
    assert torch.allclose(a.mean(dim=(-1, -2)), b.mean(dim=(-1, -2)), atol=1e-5)


def test_checkpoint_roundtrip_is_strict(tmp_path):
    model = create_model("crnet-tiny", pretrained=False)
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny", kwargs={}, provenance={"test": True})
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "crnet-tiny" and len(config["sha256"]["model.safetensors"]) == 64
    loaded = load_checkpoint(folder)
    assert isinstance(loaded, CRNet) and not loaded.training
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # wrong kwargs for the stored tensors: strict loading refuses
    config["kwargs"] = {"channels": 16}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(folder)


def test_checkpoint_family_is_checked(tmp_path):
    folder = save_checkpoint(create_model("crnet-tiny", pretrained=False), tmp_path / "c", architecture="crnet-tiny", kwargs={})
    with pytest.raises(CheckpointError, match="not a classical"):
        load_checkpoint(folder, expected_family="classical")


def test_explicit_weights_folder_is_used(tmp_path):
    model = create_model("crnet-tiny", pretrained=False)
    for p in model.parameters():
        p.data.add_(0.01)
    folder = save_checkpoint(model, tmp_path / "c", architecture="crnet-tiny", kwargs={})
    loaded = create_model("crnet-tiny", weights=folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_weights_and_no_pretrained_conflict():
    with pytest.raises(UsageError):
        create_model("crnet-tiny", pretrained=False, weights="x")


def test_classical_models_need_no_weights():
    x = torch.full((1, 3, 8, 8), 0.25)
    assert torch.allclose(create_model("gamma")(x), x.pow(1 / 2.2))
    y = create_model("clahe")(torch.rand(1, 3, 64, 64) * 0.2)
    assert y.shape == (1, 3, 64, 64)


def test_layer_attention_does_not_overflow_half_precision():
    # a 512x512 tile of 8 channels: the unscaled energy sum exceeds fp16's 65504
    feats = (torch.rand(1, 2, 8, 512, 512) * 1.5).half()
    out = layer_attention(feats, torch.ones(1, dtype=torch.half))
    assert torch.isfinite(out).all()
    reference = layer_attention(feats.float(), torch.ones(1))
    assert torch.allclose(out.float(), reference, rtol=1e-2, atol=1e-2)


# ---- global context (ours) ----------------------------------------------------------------------
def _context_model(seed: int = 3) -> CRNet:
    model = create_model("crnet-tiny", pretrained=False, global_context=True, context_channels=8)
    torch.manual_seed(seed)
    with torch.no_grad():  # leave the zero initialisation so the branch does something
        model.context.out.weight.normal_(0.0, 0.3)
        model.context.out.bias.normal_(0.0, 0.3)
    return model.eval()


def test_global_context_starts_as_the_model_without_it():
    plain = create_model("crnet-s", pretrained=False, global_context=False).eval()
    ctx = create_model("crnet-s", pretrained=False).eval()  # the crnet-s default has it
    missing = ctx.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("context.") for k in missing)
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(plain(x), ctx(x))
    assert not plain.uses_image_context and ctx.uses_image_context


def test_image_context_is_exact_in_bands_and_drives_the_output():
    model = _context_model()
    x = torch.rand(2, 3, 40, 24)
    whole = model.context.pixel_embedding(model._stem_input(x)).mean(dim=(-2, -1))
    for band in (1, 7, 16, 64):
        assert torch.allclose(model.image_context(x, band=band), whole, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x, context=whole), atol=1e-6)
        other = model(x, context=model.image_context(torch.rand(2, 3, 40, 24) * 0.1))
    assert (other - model(x)).abs().max() > 1e-3  # the context is not ignored


def test_tiles_see_the_context_of_the_whole_photo():
    from lowlight_cli.inference import Enhancer, InferenceConfig

    model = _context_model()
    seen: list[torch.Tensor] = []
    original = model.forward

    def spy(batch, context=None):
        seen.append(context)
        return original(batch, context=context)

    model.forward = spy  # type: ignore[method-assign]
    image = torch.rand(1, 3, 150, 170)
    image[..., :75, :] *= 0.05  # a dark top half: a tile there alone would see other statistics
    tiled = Enhancer(model, InferenceConfig(device="cpu", tile=64, overlap=8)).enhance_tensor(image)
    expected = model.image_context(image)
    assert len(seen) > 1 and all(torch.allclose(c, expected.expand(c.shape[0], -1)) for c in seen)
    seen.clear()
    whole = Enhancer(model, InferenceConfig(device="cpu", tile=0)).enhance_tensor(image)
    assert torch.allclose(seen[0], expected) and tiled.shape == whole.shape


def test_warm_start_loads_every_checkpoint_tensor(tmp_path):
    from lowlight_cli.models.checkpoint import load_weights_strict

    source = create_model("crnet-tiny", pretrained=False)
    with torch.no_grad():
        source.stem.weight.add_(1.0)
    target = create_model("crnet-tiny", pretrained=False, global_context=True)
    kept = load_weights_strict(target, source.state_dict(), "src", allow_missing=("context.",))
    assert kept and all(k.startswith("context.") for k in kept)
    assert torch.equal(target.stem.weight, source.stem.weight)
    with pytest.raises(CheckpointError, match="missing"):  # only the named prefixes may be missing
        load_weights_strict(target, {k: v for k, v in source.state_dict().items() if k != "stem.bias"},
                            "src", allow_missing=("context.",))


def test_narrow_terminals_drop_columns_rather_than_split_numbers_and_names():
    from typer.testing import CliRunner

    from lowlight_cli.cli.app import app

    from lowlight_cli.cli import console

    for command, whole in ((["models"], ("1,694,752", "1,204,386", "crnet-curve-dn")), (["priors"], ("789,253", "espnetv2-voc"))):
        result = CliRunner().invoke(app, command, env={"COLUMNS": "60"})  # piped: every column, numbers whole
        assert result.exit_code == 0, result.output
        assert all(text in result.output for text in whole), (command, result.output)
    terminal = console.out.__class__(width=60, force_terminal=True, record=True)
    original = console.out
    try:  # a 60-column terminal: fewer columns, none cut
        for module in ("models", "priors"):
            __import__(f"lowlight_cli.cli.{module}", fromlist=["out"]).out = terminal
        for command in (["models"], ["priors"]):
            assert CliRunner().invoke(app, command).exit_code == 0
        text = terminal.export_text()
    finally:
        for module in ("models", "priors"):
            __import__(f"lowlight_cli.cli.{module}", fromlist=["out"]).out = original
    assert "1,694,752" in text and "789,253" in text and "espnetv2-voc" in text
    assert " ".join(text.split()).count("more columns in a terminal") == 2
    # crnet's row shows the paper network's size beside the scores of the weights it runs: said below
    assert "crnet runs crnet-curve-dn-lol-bench (crnet-curve-dn, 575,511 params), whose scores these are" in " ".join(text.split())
    narrower = console.out.__class__(width=45, force_terminal=True, record=True)
    models_module = __import__("lowlight_cli.cli.models", fromlist=["out"])
    models_module.out = narrower
    try:  # fewer columns still, and no cell cut short
        assert CliRunner().invoke(app, ["models"]).exit_code == 0
    finally:
        models_module.out = original
    table = narrower.export_text()
    assert "1,694,752" in table and "…" not in table.split("params and MACs")[0]


@pytest.mark.parametrize("name", ["crnet-s", "crnet-curve-dn", "crnet-s-skf", "semi-llie-s"])
def test_a_side_that_is_not_the_input_multiple_is_a_clear_error(name):
    """Called directly (not through an Enhancer, which pads), a model says what it takes instead of
    failing inside a reshape."""
    model = create_model(name, pretrained=False).eval()
    multiple = model.info.input_multiple
    assert multiple > 1
    with torch.no_grad():
        assert model(torch.rand(1, 3, 2 * multiple, 3 * multiple)).shape == (1, 3, 2 * multiple, 3 * multiple)
        with pytest.raises(ValueError, match=rf"multiples of {multiple}, got {2 * multiple + 1}x{3 * multiple}.*pad_to_multiple"):
            model(torch.rand(1, 3, 2 * multiple + 1, 3 * multiple))
