"""Frozen networks (priors) and region providers.

The real networks are checked against the reference outputs of ``../shared/nets/README.md`` when
that folder is there (skipped with a reason otherwise); everything else runs on seeded random
stand-ins of the same architectures, which say so.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

import lowlight_cli.priors.weights as weights_module
from lowlight_cli.cli.app import app
from lowlight_cli.errors import CheckpointError, UnknownNameError, UsageError, WeightsIntegrityError, WeightsNotFoundError
from lowlight_cli.priors import (
    VOC_CLASSES,
    FelzenszwalbRegions,
    FrozenNetwork,
    SemanticRegions,
    create_prior,
    list_priors,
    prior_info,
)

from .test_hub import hub  # noqa: F401 - the fake Hugging Face Hub fixture

SHARED_NETS = Path(__file__).resolve().parents[2] / "shared" / "nets"
needs_nets = pytest.mark.skipif(
    not SHARED_NETS.is_dir(), reason=f"real frozen-network weights not present ({SHARED_NETS} is absent)"
)
runner = CliRunner()


def photo(name: str, size: int | None = None, crop: tuple[int, int] | None = None) -> torch.Tensor:
    """A scikit-image sample photo as ``(1, 3, H, W)`` in ``[0, 1]``: PIL-bilinear resized to ``size``
    (square), then the ``crop`` (top-left corner, side) as the README's references do."""
    skdata = pytest.importorskip("skimage.data")
    image = Image.fromarray(getattr(skdata, name)())
    if size is not None:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    if crop is not None:
        top, side = crop
        pixels = pixels[top : top + side, top : top + side]
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]


@pytest.fixture
def no_nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every default weights location is an empty folder under ``tmp_path``; returns ``$LOWLIGHT_NETS``."""
    nets = tmp_path / "nets"
    nets.mkdir()
    monkeypatch.setenv("LOWLIGHT_NETS", str(nets))
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights_module, "development_nets_dir", lambda: tmp_path / "no-shared-nets")
    return nets


def file_state(network: FrozenNetwork, prefix: str = "") -> dict[str, torch.Tensor]:
    """The network's tensors under the names of its weights file."""
    state = network.state_dict()
    if "convs.0.weight" in state:  # VGG: the file names convolutions by their index
        return {prefix + k.removeprefix("convs."): v for k, v in state.items()}
    return dict(state)


# --- real networks against the README references -------------------------------------------------


@needs_nets
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("astronaut", (0.894, 0.854, 0.939, 0.856, 0.947)),
        ("coffee", (1.307, 1.154, 1.110, 0.890, 1.065)),
    ],
)
def test_vgg19_normalised_reference_mean_activations(name: str, expected: tuple[float, ...]) -> None:
    net = create_prior("vgg19-normalised")
    assert not net.is_stand_in and net.weights_path == SHARED_NETS / "vgg19-normalised-to-relu3_1.safetensors"
    with torch.no_grad():
        feats = net.features(photo(name, crop=(0, 256)))
    means = tuple(feats[layer].mean().item() for layer in ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1"))
    assert means == pytest.approx(expected, abs=1e-3)  # the README gives 3 decimals
    assert feats["relu3_1"].shape == (1, 256, 64, 64)


@needs_nets
@pytest.mark.parametrize(
    ("name", "expected"),
    [("coffee", {967: 0.96}), ("chelsea", {285: 0.70, 282: 0.14, 281: 0.12})],
)
def test_squeezenet_reference_probabilities(name: str, expected: dict[int, float]) -> None:
    net = create_prior("squeezenet")
    x = photo(name, size=256, crop=(14, 227))  # resize to 256, centre crop 227
    with torch.no_grad():
        probs = net.probabilities(x)[0]
        embedding = net.embedding(x)
    top = probs.topk(len(expected))
    assert top.indices.tolist() == list(expected)
    assert top.values.tolist() == pytest.approx(list(expected.values()), abs=0.01)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert embedding.shape == (1, 512) and (embedding >= 0).all()


@needs_nets
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("astronaut", {"background": 0.57, "person": 0.42}),
        ("chelsea", {"cat": 0.79, "background": 0.21}),
        ("coffee", {"diningtable": 1.00}),
    ],
)
def test_espnetv2_reference_class_fractions(name: str, expected: dict[str, float]) -> None:
    net = create_prior("espnetv2-voc")
    x = photo(name, size=384)
    with torch.no_grad():
        logits, feats = net.logits_and_features(x)
    assert logits.shape == (1, 21, 384, 384)
    fractions = torch.bincount(logits.argmax(1).flatten(), minlength=21).double() / (384 * 384)
    for cls, fraction in expected.items():
        assert fractions[VOC_CLASSES.index(cls)].item() == pytest.approx(fraction, abs=0.01), cls
    assert [tuple(f.shape) for f in feats.values()] == [(1, 32, 192, 192), (1, 128, 96, 96), (1, 256, 48, 48), (1, 512, 24, 24)]


@needs_nets
def test_real_network_gradient_reaches_the_input_only() -> None:
    net = create_prior("vgg19-normalised")
    x = photo("astronaut", crop=(200, 32)).requires_grad_(True)
    net.features(x, ("relu2_2",))["relu2_2"].square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


@needs_nets
def test_real_file_of_another_network_is_refused() -> None:
    with pytest.raises(CheckpointError, match="does not fit the espnetv2-voc network"):
        create_prior("espnetv2-voc", weights=SHARED_NETS / "squeezenet1.0-imagenet.safetensors")


@needs_nets
def test_lowlight_nets_folder_comes_first(no_nets: Path) -> None:
    (no_nets / "squeezenet1.0-imagenet.safetensors").symlink_to(SHARED_NETS / "squeezenet1.0-imagenet.safetensors")
    net = create_prior("squeezenet")
    assert net.weights_path == no_nets / "squeezenet1.0-imagenet.safetensors"


# --- stand-ins -------------------------------------------------------------------------------------


EXPECTED_SHAPES = {  # layer -> (channels, divisor of a 64x64 input)
    "vgg19-normalised": {"relu1_1": (64, 1), "relu1_2": (64, 1), "relu2_1": (128, 2), "relu2_2": (128, 2), "relu3_1": (256, 4)},
    "vgg16": {"relu1_2": (64, 1), "relu2_2": (128, 2), "relu3_3": (256, 4), "relu4_3": (512, 8)},
    "espnetv2-voc": {"level1": (32, 2), "level2": (128, 4), "level3": (256, 8), "level4": (512, 16)},
    "squeezenet": {"conv1": (96, None), "fire9": (512, None)},
}


def test_registry_lists_the_four_networks() -> None:
    assert set(list_priors()) == {"vgg19-normalised", "vgg16", "espnetv2-voc", "squeezenet"}
    with pytest.raises(UnknownNameError, match="unknown prior 'vgg19-normalized'") as info:
        create_prior("vgg19-normalized", stand_in=True)
    assert "vgg19-normalised" in (info.value.hint or "")


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_stand_in_is_labelled_frozen_and_shaped_like_the_real_network(name: str) -> None:
    net = create_prior(name, stand_in=True)
    assert net.is_stand_in and net.weights_path is None
    assert "STAND-IN" in repr(net)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    layers = EXPECTED_SHAPES[name]
    with torch.no_grad():
        feats = net.features(torch.rand(2, 3, 64, 64), layers=tuple(layers))
    assert list(feats) == list(layers)
    for layer, (channels, divisor) in layers.items():
        assert feats[layer].shape[:2] == (2, channels)
        if divisor is not None:
            assert feats[layer].shape[2:] == (64 // divisor, 64 // divisor), layer


def test_stand_ins_are_reproducible_per_seed() -> None:
    a, b = (create_prior("squeezenet", stand_in=True, seed=3) for _ in range(2))
    c = create_prior("squeezenet", stand_in=True, seed=4)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_gradient_reaches_the_input_but_not_the_weights(name: str) -> None:
    net = create_prior(name, stand_in=True)
    x = torch.rand(1, 3, 48, 48, requires_grad=True)
    net.features(x, (net.info.layers[-1],))[net.info.layers[-1]].mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_vgg_features_pass_gradcheck_in_float64() -> None:
    net = create_prior("vgg19-normalised", stand_in=True).double()
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: net.features(t, ("relu2_1",))["relu2_1"], (x,), eps=1e-6, atol=1e-5)


def test_parent_train_mode_does_not_unfreeze_batch_norm() -> None:
    net = create_prior("espnetv2-voc", stand_in=True)
    parent = torch.nn.Sequential(net)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = net.logits(x)
        parent.train()
        after = net.logits(x)
    assert not any(m.training for m in net.modules())
    assert torch.equal(before, after)


def test_espnetv2_runs_at_sizes_not_divisible_by_16() -> None:
    net = create_prior("espnetv2-voc", stand_in=True)
    with torch.no_grad():
        logits, feats = net.logits_and_features(torch.rand(1, 3, 50, 37))
    assert logits.shape == (1, 21, 50, 37)
    assert feats["level4"].shape[2:] == (4, 3)


@pytest.mark.parametrize("size", [(2, 64), (1, 100), (4, 128), (8, 400), (64, 2), (1, 1)])
def test_espnetv2_runs_on_thin_images(size: tuple[int, int]) -> None:
    # A short photo's height reaches 1 pixel (1 halves to 1) while its width still halves: the
    # reinforcing image of each strided unit must match both sides, not the height alone.
    net = create_prior("espnetv2-voc", stand_in=True)
    with torch.no_grad():
        logits, feats = net.logits_and_features(torch.rand(1, 3, *size))
    assert logits.shape == (1, 21, *size)
    h, w = size
    for level in ("level1", "level2", "level3", "level4"):
        h, w = (h + 1) // 2, (w + 1) // 2
        assert feats[level].shape[2:] == (h, w)


def test_bad_layer_names_and_inputs_are_usage_errors() -> None:
    net = create_prior("vgg19-normalised", stand_in=True)
    with pytest.raises(UnknownNameError, match="no layer 'relu4_3'") as info:
        net.features(torch.rand(1, 3, 16, 16), ("relu4_3",))
    assert "relu3_1" in str(info.value)  # the message lists the layers it has
    with pytest.raises(UsageError, match=r"\(B, 3, H, W\)"):
        net.features(torch.rand(3, 16, 16))


# --- weights resolution and strict loading ---------------------------------------------------------


def test_missing_weights_raise_never_a_silent_stand_in(no_nets: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="vgg19-normalised-to-relu3_1.safetensors is in none of") as info:
        create_prior("vgg19-normalised")
    assert "LOWLIGHT_NETS" in (info.value.hint or "") and "stand_in=True" in (info.value.hint or "") and "--set" in (info.value.hint or "")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        create_prior("squeezenet", weights=no_nets / "nowhere.safetensors")
    with pytest.raises(UsageError, match="contradict"):
        create_prior("squeezenet", weights=no_nets, stand_in=True)


def test_default_lookup_checks_the_published_sha256(no_nets: Path) -> None:
    stand_in = create_prior("vgg19-normalised", stand_in=True)
    save_file(file_state(stand_in), str(no_nets / "vgg19-normalised-to-relu3_1.safetensors"))
    with pytest.raises(WeightsIntegrityError, match="sha256 is"):
        create_prior("vgg19-normalised")


@pytest.mark.parametrize("name", ["vgg19-normalised", "squeezenet", "espnetv2-voc"])
def test_explicit_file_round_trips_exactly(name: str, tmp_path: Path) -> None:
    stand_in = create_prior(name, stand_in=True, seed=7)
    path = tmp_path / "weights.safetensors"
    save_file(file_state(stand_in), str(path))
    loaded = create_prior(name, weights=path)
    assert not loaded.is_stand_in and loaded.weights_path == path and "STAND-IN" not in repr(loaded)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(stand_in(x).values(), loaded(x).values()))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s.pop("16.bias"), "missing 1 .*convs.16.bias"),
        (lambda s: s.update({"17.weight": torch.zeros(1)}), "unexpected 1"),
        (lambda s: s.update({"2.weight": torch.zeros(64, 3, 5, 5)}), "shape mismatch"),
        (lambda s: s.update({"5.bias": torch.full((64,), float("nan"))}), "non-finite"),
    ],
)
def test_strict_loading_rejects_a_wrong_file(damage, message: str, tmp_path: Path) -> None:
    state = file_state(create_prior("vgg19-normalised", stand_in=True))
    damage(state)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        create_prior("vgg19-normalised", weights=tmp_path / "bad.safetensors")


def test_a_file_that_is_not_safetensors_is_refused(tmp_path: Path) -> None:
    (tmp_path / "net.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        create_prior("squeezenet", weights=tmp_path / "net.safetensors")
    with pytest.raises(WeightsNotFoundError, match="holds neither"):
        create_prior("squeezenet", weights=tmp_path)


def test_hub_reference_downloads_verifies_and_loads(hub, tmp_path: Path) -> None:  # noqa: F811
    stand_in = create_prior("vgg19-normalised", stand_in=True, seed=5)
    save_file(file_state(stand_in), str(tmp_path / "model.safetensors"))
    config = b'{"architecture": "vgg19-normalised"}'
    hub.add("org/vgg19n", {"config.json": config, "model.safetensors": (tmp_path / "model.safetensors").read_bytes()})
    net = create_prior("vgg19-normalised", weights="hf-hub:org/vgg19n")
    assert net.weights_path is not None and net.weights_path.name == "model.safetensors"
    assert torch.equal(net.convs["16"].weight, stand_in.convs["16"].weight)


# --- torchvision-layout VGG16 ----------------------------------------------------------------------

VGG16_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
               17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}  # fmt: skip


@pytest.fixture(scope="module")
def torchvision_vgg16(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, torch.Tensor]]]:
    """A random state dict in torchvision's VGG16 key layout (features + a classifier tensor), saved."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for index, (cin, cout) in VGG16_CONVS.items():
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(cout, generator=g) * 0.01
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16-torchvision.safetensors"
    save_file(state, str(path))
    yield path, state
    shutil.rmtree(path.parent, ignore_errors=True)


def reference_vgg16(x: torch.Tensor, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VGG16 relu outputs written out with torch.nn.functional, independently of the module."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (x - mean) / std
    names = ["relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3"]
    out = {}
    for name, index in zip(names, [0, 2, 5, 7, 10, 12, 14, 17, 19, 21]):
        if index in (5, 10, 17):
            x = F.max_pool2d(x, 2)
        x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        out[name] = x
    return out


def test_vgg16_loads_torchvision_layout_and_matches_a_functional_reference(torchvision_vgg16) -> None:
    path, state = torchvision_vgg16
    net = create_prior("vgg16", weights=path)
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        feats = net.features(x, ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
        expected = reference_vgg16(x, state)
    for layer, value in feats.items():
        torch.testing.assert_close(value, expected[layer], rtol=1e-4, atol=1e-5)
    assert feats["relu4_3"].shape == (2, 512, 4, 5)


def test_vgg16_is_found_in_lowlight_nets_and_strict(torchvision_vgg16, no_nets: Path, tmp_path: Path) -> None:
    path, state = torchvision_vgg16
    (no_nets / path.name).symlink_to(path)
    assert create_prior("vgg16").weights_path == no_nets / path.name
    broken = {k: v for k, v in state.items() if k != "features.21.bias"}
    save_file(broken, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="missing 1"):
        create_prior("vgg16", weights=tmp_path / "broken.safetensors")
    stray = {**state, "features.3.weight": torch.zeros(1)}  # index 3 is a ReLU in torchvision's layout
    save_file(stray, str(tmp_path / "stray.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected 1"):
        create_prior("vgg16", weights=tmp_path / "stray.safetensors")


# --- region providers ------------------------------------------------------------------------------


def two_flat_halves(height: int = 48, width: int = 64) -> torch.Tensor:
    image = torch.empty(1, 3, height, width)
    image[..., : width // 2] = torch.tensor([0.2, 0.3, 0.1]).view(1, 3, 1, 1)
    image[..., width // 2 :] = torch.tensor([0.8, 0.7, 0.9]).view(1, 3, 1, 1)
    return image


def test_felzenszwalb_finds_the_two_halves() -> None:
    pytest.importorskip("skimage")
    images = torch.cat([two_flat_halves(), torch.full((1, 3, 48, 64), 0.5)]).requires_grad_(True)
    labels = FelzenszwalbRegions()(images)
    assert labels.shape == (2, 48, 64) and labels.dtype == torch.int64
    first = labels[0]
    assert first.unique().numel() == 2
    assert first[:, :32].unique().numel() == 1 and first[:, 32:].unique().numel() == 1
    assert first[0, 0] != first[0, -1]
    assert labels[1].unique().numel() == 1  # one flat image, one region


def test_semantic_regions_are_argmax_class_maps() -> None:
    net = create_prior("espnetv2-voc", stand_in=True)
    regions = SemanticRegions(net)
    x = torch.rand(2, 3, 40, 56, requires_grad=True)
    labels = regions(x)
    assert labels.shape == (2, 40, 56) and labels.dtype == torch.int64
    assert not labels.requires_grad and 0 <= labels.min() and labels.max() < 21
    with torch.no_grad():
        assert torch.equal(labels, net.logits(x).argmax(1))
    assert regions.classes == VOC_CLASSES


def test_semantic_regions_need_a_segmentation_network() -> None:
    with pytest.raises(UsageError, match="need a segmentation network"):
        SemanticRegions(create_prior("squeezenet", stand_in=True))


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_lists_networks_parameters_and_missing_weights(no_nets: Path) -> None:
    result = runner.invoke(app, ["priors", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(list_priors())
    assert rows["vgg19-normalised"]["parameters"] == 555_340  # the README's counts
    assert rows["squeezenet"]["parameters"] == 1_248_424
    assert rows["espnetv2-voc"]["num_classes"] == 21
    assert not any(row["weights_found"] for row in rows.values())
    assert rows["vgg16"]["hub_id"] == "timm/vgg16.tv_in1k"

    table = runner.invoke(app, ["priors"], env={"COLUMNS": "250"})
    assert table.exit_code == 0
    assert "espnetv2-voc" in table.stdout and "not found" in table.stdout


def test_cli_says_where_weights_were_found_and_checks_them(no_nets: Path) -> None:
    save_file(file_state(create_prior("squeezenet", stand_in=True)), str(no_nets / prior_info("squeezenet").weights.filename))
    result = runner.invoke(app, ["priors", "--json", "--check"])
    assert result.exit_code == 1, result.output  # a failed check is a failure a script can see
    row = {r["name"]: r for r in json.loads(result.stdout)}["squeezenet"]
    assert row["weights_found"] and row["weights_place"] == "$LOWLIGHT_NETS"
    assert row["weights_path"] == str(no_nets / "squeezenet1.0-imagenet.safetensors")
    assert row["check"].startswith("error:") and "sha256" in row["check"]  # stand-in bytes are not the published file
    table = runner.invoke(app, ["priors", "--check"], env={"COLUMNS": "250"})
    assert table.exit_code == 1 and "1 network(s) failed the check: squeezenet" in table.output
    (no_nets / prior_info("squeezenet").weights.filename).unlink()
    assert runner.invoke(app, ["priors", "--check"]).exit_code == 0  # nothing found is nothing failed
