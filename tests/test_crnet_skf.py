"""crnet-s-skf: CRNet with SKF's semantic embedding, guided by a frozen segmentation network inside its forward.

Most tests use ``crnet-tiny-skf`` with a seeded random stand-in of ESPNetv2-VOC (what
``create_model(..., pretrained=False)`` gives, and says so); the ones that load a checkpoint the way
``lowlight enhance --weights`` does need the real network from ``../shared/nets`` and are skipped
without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import ConfigError, ExportError, UsageError
from lowlight_cli.export import export_checkpoint, export_onnx
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import create_model, load_checkpoint, model_info, save_checkpoint
from lowlight_cli.models.checkpoint import load_weights_strict
from lowlight_cli.priors import create_prior

from .photos import dark_photo, save_photo

runner = CliRunner()
SHARED_NETS = Path(__file__).resolve().parents[2] / "shared" / "nets"
needs_nets = pytest.mark.skipif(
    not (SHARED_NETS / "espnetv2-s2.0-pascal-voc.safetensors").is_file(),
    reason="the real ESPNetv2-VOC weights are not in ../shared/nets",
)


def trained_looking(name: str = "crnet-tiny-skf", seed: int = 1) -> torch.nn.Module:
    """A seeded model whose every trainable parameter is nudged, so the zero-initialised SEMs do something."""
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


def test_skf_starts_as_the_crnet_it_extends_and_warm_starts_from_its_weights():
    plain = create_model("crnet-tiny", pretrained=False)
    guided = create_model("crnet-tiny-skf", pretrained=False)
    kept = load_weights_strict(guided, plain.state_dict(), "crnet-tiny", allow_missing=guided.warm_start_additions)
    assert kept and all(k.startswith("semantic.") for k in kept)  # only the SEMs keep their initialisation
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(guided(x), plain(x))  # zero-initialised SEMs are the identity
    assert model_info("crnet-s-skf").family == "crnet-skf"  # never picked as plain CRNet weights


def test_forward_train_gives_the_inputs_class_probabilities_and_trains_the_sems_not_the_network():
    model = trained_looking().train()
    low = 0.2 * torch.rand(2, 3, 32, 48)
    out = model.forward_train(low)
    assert out["output"].shape == low.shape and len(out["stages"]) == 1
    probabilities = out["probabilities"]
    assert probabilities.shape == (2, 21, 32, 48) and not probabilities.requires_grad
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2, 32, 48), atol=1e-5)
    with torch.no_grad():  # it is the segmentation of the low-light input itself
        assert torch.allclose(probabilities, model.prior(low).probabilities)
    out["output"].mean().backward()
    network = model.frozen_networks()["segmentation"]
    assert all(p.grad is None and not p.requires_grad for p in network.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.semantic.parameters())


def test_the_output_depends_on_the_segmentation():
    model = trained_looking().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        model.attach_frozen_network("segmentation", create_prior("espnetv2-voc", stand_in=True, seed=7))
        assert (model(x) - before).abs().max() > 1e-4


def test_checkpoints_hold_the_enhancer_only_and_reload_with_a_given_network(tmp_path):
    model = trained_looking().eval()
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny-skf", kwargs=model.config)
    keys = set(load_file(str(folder / "model.safetensors")))
    assert keys == set(model.state_dict()) and not any(k.startswith("prior.") for k in keys)
    assert any(k.startswith("semantic.") for k in keys)
    reloaded = load_checkpoint(folder, frozen_networks=model.frozen_networks())
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
    exported = export_checkpoint(model, tmp_path / "exported")  # `lowlight export --format safetensors`
    assert all(c.passed and c.max_abs_error == 0 for c in exported.parity)
    with pytest.raises(UsageError, match="segmentation"):  # a network that does not fit the SEMs
        reloaded.attach_frozen_network("segmentation", create_prior("vgg19-normalised", stand_in=True))
    with pytest.raises(ConfigError, match="semantic_scales"):
        create_model("crnet-tiny-skf", pretrained=False, semantic_scales=3)  # two groups: at most two SEMs


def test_tiles_like_crnet_s_and_refuses_onnx_export_with_the_reason(tmp_path):
    info = model_info("crnet-s-skf")
    assert not info.tile_exact and info.default_tile == model_info("crnet-s").default_tile == 1024  # see TILING_NOTE
    model = trained_looking()
    enhancer = Enhancer(model, InferenceConfig(device="cpu"))
    assert enhancer.tile == model.info.default_tile
    image = dark_photo(48, 64)  # smaller than a tile: run whole, the segmentation network sees all of it
    with torch.no_grad():
        whole = model.eval()(torch.from_numpy(image).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.allclose(enhancer.enhance(image), whole, atol=1e-6)
    with pytest.raises(ExportError, match="adaptive average pooling"):
        export_onnx(model, tmp_path / "x.onnx")
    result = runner.invoke(app, ["export", "--model", "crnet-s-skf", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1 and "adaptive average pooling" in result.output.replace("\n", " ")  # said before any weights load
    assert list(tmp_path.iterdir()) == []


@needs_nets
def test_enhance_with_weights_loads_the_real_segmentation_network(tmp_path, no_hub):
    model = trained_looking()
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny-skf", kwargs=model.config)
    loaded = load_checkpoint(folder)  # what --weights does: the enhancer's file, the network from ../shared/nets
    network = loaded.frozen_networks()["segmentation"]
    assert not network.is_stand_in and network.weights_path.name == "espnetv2-s2.0-pascal-voc.safetensors"
    photos = tmp_path / "photos"
    save_photo(photos / "a.png", dark_photo(40, 56))
    result = runner.invoke(app, ["enhance", str(photos), "--model", "crnet-tiny-skf", "--weights", str(folder),
                                 "-o", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "tiles of 1024 px" in result.output and (tmp_path / "out" / "a.png").is_file()
