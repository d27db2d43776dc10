"""LPIPS: weight resolution and its errors, key layout, metric properties, a from-the-paper reference.

The published LPIPS and ImageNet weights cannot be downloaded here. Every test below uses STAND-IN
weights generated in the test (random tensors of the right shapes, He-scaled backbone, |random| head
so the result is a valid distance), saved as safetensors and as ``.pth`` under ``tmp_path``. They check
the plumbing (file formats, names, strict checks, errors) and the metric's properties, not the
published LPIPS values.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from lowlight_cli.errors import MetricError, WeightsNotFoundError
from lowlight_cli.hub import HubRef
from lowlight_cli.metrics import LPIPS, create_metric, metric_info
from lowlight_cli.metrics import lpips as lpips_module
from lowlight_cli.metrics.lpips import ENV_VAR, lpips_state_shapes

TV_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def standin_state(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random STAND-IN weights with LPIPS's keys and shapes (not the published ones).

    Convolutions are He-scaled so activations keep their size through the backbone; head weights
    are ``|randn|``, non-negative like the release's, which makes LPIPS a valid distance.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in lpips_state_shapes(net).items():
        values = torch.randn(shape, generator=gen)
        if key.startswith("lin"):
            state[key] = values.abs()
        elif key.endswith(".bias"):
            state[key] = 0.01 * values
        else:
            state[key] = values * math.sqrt(2.0 / math.prod(shape[1:]))
    return state


def split(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(backbone keys, head keys)."""
    return (
        {k: v for k, v in state.items() if k.startswith("features.")},
        {k: v for k, v in state.items() if k.startswith("lin")},
    )


def write_safetensors_folder(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """``backbone.safetensors`` + ``lpips_head.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    backbone, head = split(state)
    save_file(backbone, str(folder / "backbone.safetensors"))
    save_file(head, str(folder / "lpips_head.safetensors"))
    return folder


def write_pth_folder(folder: Path, state: dict[str, torch.Tensor], net: str) -> Path:
    """The official layout: torchvision's full-model ``.pth`` (with a classifier) + LPIPS ``<net>.pth``."""
    folder.mkdir(parents=True, exist_ok=True)
    backbone, head = split(state)
    # A small stand-in for torchvision's classifier, which LPIPS must ignore.
    backbone = {**backbone, "classifier.1.weight": torch.ones(4, 4), "classifier.1.bias": torch.ones(4)}
    torch.save(backbone, folder / TV_FILES[net])
    torch.save(head, folder / f"{net}.pth")
    return folder


def images(seed: int, size: int = 64, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def noisy(x: torch.Tensor, sigma: float, seed: int = 7) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x + sigma * noise).clamp(0.0, 1.0)


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not pick up weights from the developer's environment."""
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def alex_state() -> dict[str, torch.Tensor]:
    return standin_state("alex")


@pytest.fixture(scope="module")
def alex_folder(alex_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_safetensors_folder(tmp_path_factory.mktemp("alex-safetensors"), alex_state)


@pytest.fixture(scope="module")
def alex(alex_folder: Path) -> LPIPS:
    return LPIPS("alex", weights=alex_folder)


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    return standin_state("vgg", seed=1)


@pytest.fixture(scope="module")
def vgg(vgg_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> LPIPS:
    path = tmp_path_factory.mktemp("vgg") / "lpips_vgg.safetensors"
    save_file(vgg_state, str(path))
    return LPIPS("vgg", weights=path)


# --- no weights, wrong weights: clear errors, never a random fallback ---------------------------


@pytest.mark.parametrize(("net", "title", "files"), [("alex", "AlexNet", "alex.pth"), ("vgg", "VGG16", "vgg.pth")])
def test_without_weights_the_error_names_what_is_missing_and_how_to_provide_it(
    net: str, title: str, files: str
) -> None:
    with pytest.raises(MetricError) as info:
        LPIPS(net)
    assert f"{title} backbone" in info.value.message and "head" in info.value.message
    hint = info.value.hint or ""
    for needed in (ENV_VAR, "--lpips-weights", "backbone.safetensors", "lpips_head.safetensors", files, TV_FILES[net]):
        assert needed in hint


def test_create_metric_without_weights_raises_instead_of_using_random_weights() -> None:
    with pytest.raises(MetricError, match="no weights"):
        create_metric("lpips")
    info = metric_info("lpips")
    assert info.full_reference and not info.higher_is_better


def test_folder_without_head_names_the_head_files(alex_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    save_file(split(alex_state)[0], str(tmp_path / "backbone.safetensors"))
    with pytest.raises(MetricError) as info:
        LPIPS("alex", weights=tmp_path)
    assert "LPIPS head weights (lpips_head.safetensors or alex.pth)" in info.value.message
    assert "backbone weights" not in info.value.message


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(MetricError, match="does-not-exist"):
        LPIPS("alex", weights=tmp_path / "does-not-exist")


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda s: s.pop("lin4.model.1.weight"), "missing LPIPS head keys lin4.model.1.weight"),
        (lambda s: s.pop("features.10.bias"), "missing backbone keys features.10.bias"),
        (lambda s: s.update({"lin0.model.1.weight": torch.ones(1, 32, 1, 1)}), "lin0.model.1.weight has shape"),
        (lambda s: s.update({"net.extra": torch.ones(1)}), "unexpected keys net.extra"),
    ],
    ids=["head-key", "backbone-key", "shape", "unexpected"],
)
def test_incomplete_or_wrong_file_names_the_key(
    alex_state: dict[str, torch.Tensor], tmp_path: Path, damage, named: str
) -> None:
    state = dict(alex_state)
    damage(state)
    path = tmp_path / "lpips_alex.safetensors"
    save_file(state, str(path))
    with pytest.raises(MetricError) as info:
        LPIPS("alex", weights=tmp_path)
    assert named in info.value.message and str(path) in info.value.message
    assert ENV_VAR in (info.value.hint or "")


def test_weights_of_the_other_net_are_refused(alex_folder: Path) -> None:
    with pytest.raises(MetricError, match="do not fit LPIPS-vgg") as info:
        LPIPS("vgg", weights=alex_folder)
    assert "features.0.weight has shape (64, 3, 11, 11), expected (64, 3, 3, 3)" in info.value.message


class _RunsCode:
    """Pickles to a call of ``os.mkdir``: what an unsafe ``torch.load`` would execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


def test_pth_files_are_read_with_weights_only(alex_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    folder = write_pth_folder(tmp_path / "weights", alex_state, "alex")
    marker = tmp_path / "code-ran"
    torch.save({**split(alex_state)[1], "payload": _RunsCode(marker)}, folder / "alex.pth")
    with pytest.raises(MetricError, match=r"alex\.pth.*weights_only"):
        LPIPS("alex", weights=folder)
    assert not marker.exists()


# --- accepted formats give the same metric --------------------------------------------------------


def test_safetensors_folder_pth_folder_files_and_env_var_agree(
    alex: LPIPS, alex_state: dict[str, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = images(0, batch=2), images(1, batch=2)
    expected = alex(x, y)
    pth_folder = write_pth_folder(tmp_path / "pth", alex_state, "alex")
    combined = tmp_path / "combined" / "lpips_alex.safetensors"
    combined.parent.mkdir()
    save_file(alex_state, str(combined))
    sources = [pth_folder, [pth_folder / TV_FILES["alex"], pth_folder / "alex.pth"], combined]
    for source in sources:
        assert torch.equal(LPIPS("alex", weights=source)(x, y), expected), source
    monkeypatch.setenv(ENV_VAR, str(pth_folder))
    assert torch.equal(create_metric("lpips")(x, y), expected)


def test_hub_reference_is_resolved_through_the_hub_module(
    alex: LPIPS, alex_state: dict[str, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Hub download returns a checkpoint folder; its model.safetensors holds both key sets."""
    save_file(alex_state, str(tmp_path / "model.safetensors"))
    asked: list[HubRef] = []

    def download(ref: HubRef, *, expected_sha256: str | None = None) -> Path:
        asked.append(ref)
        return tmp_path

    monkeypatch.setattr(lpips_module, "download_checkpoint", download)
    x, y = images(0), images(1)
    assert torch.equal(LPIPS("alex", weights="hf-hub:org/lpips-alex@v1")(x, y), alex(x, y))
    assert asked == [HubRef("org/lpips-alex", "v1")]


def test_hub_failure_becomes_a_metric_error_with_the_hubs_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def download(ref: HubRef, *, expected_sha256: str | None = None) -> Path:
        raise WeightsNotFoundError(f"Hub repository {ref.repo_id!r} not found", hint="check the name")

    monkeypatch.setattr(lpips_module, "download_checkpoint", download)
    with pytest.raises(MetricError, match="org/missing") as info:
        LPIPS("alex", weights="hf-hub:org/missing")
    assert info.value.hint == "check the name"


# --- layout ---------------------------------------------------------------------------------------


def test_alexnet_keys_and_shapes_are_torchvisions() -> None:
    """Hard-coded from torchvision's ``alexnet().features`` and the LPIPS v0.1 release."""
    expected = {
        "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
        "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
        "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
        "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
        "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
        "lin0.model.1.weight": (1, 64, 1, 1), "lin1.model.1.weight": (1, 192, 1, 1),
        "lin2.model.1.weight": (1, 384, 1, 1), "lin3.model.1.weight": (1, 256, 1, 1),
        "lin4.model.1.weight": (1, 256, 1, 1),
    }  # fmt: skip
    assert lpips_state_shapes("alex") == expected


def test_vgg_keys_are_torchvisions_conv_indices() -> None:
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    shapes = lpips_state_shapes("vgg")
    backbone_keys = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    assert [k for k in shapes if k.startswith("features.")] == backbone_keys
    assert [shapes[f"lin{i}.model.1.weight"][1] for i in range(5)] == [64, 128, 256, 512, 512]


def reference_lpips(state: dict[str, torch.Tensor], net: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS written independently from the paper and torchvision's layer hyper-parameters, in float64."""
    if net == "alex":  # (features index, stride, padding, max-pool before it)
        convs = [(0, 4, 2, False), (3, 1, 2, True), (6, 1, 1, True), (8, 1, 1, False), (10, 1, 1, False)]
        taps_after = {0, 3, 6, 8, 10}
        pool = (3, 2)
    else:  # VGG16: 3x3 convolutions, a 2x2 max-pool before each block but the first
        vgg_convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
        convs = [(i, 1, 1, i in (5, 10, 17, 24)) for i in vgg_convs]
        taps_after = {2, 7, 14, 21, 28}
        pool = (2, 2)
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    feats = []
    for image in (x, y):
        h, taps = (image.double() * 2 - 1 - shift) / scale, []
        for index, stride, padding, pooled in convs:
            if pooled:
                h = F.max_pool2d(h, *pool)
            w, b = state[f"features.{index}.weight"].double(), state[f"features.{index}.bias"].double()
            h = F.relu(F.conv2d(h, w, b, stride=stride, padding=padding))
            if index in taps_after:
                taps.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        feats.append(taps)
    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for layer, (a, b) in enumerate(zip(*feats, strict=True)):
        w = state[f"lin{layer}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((a - b) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_an_independent_reference_at_64px(net: str, request: pytest.FixtureRequest) -> None:
    metric: LPIPS = request.getfixturevalue(net)
    state = request.getfixturevalue(f"{net}_state")
    x, y = images(2, batch=2), images(3, batch=2)
    got = metric(x, y)
    assert got.shape == (2,) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference_lpips(state, net, x, y), rtol=1e-5, atol=1e-7)


# --- properties -----------------------------------------------------------------------------------


def test_identical_images_score_zero(alex: LPIPS) -> None:
    x = images(4, batch=2)
    assert torch.equal(alex(x, x), torch.zeros(2))


def test_symmetric_and_non_negative(alex: LPIPS) -> None:
    x, y = images(5, batch=3), images(6, batch=3)
    forward, backward = alex(x, y), alex(y, x)
    torch.testing.assert_close(forward, backward, rtol=1e-6, atol=0.0)
    assert (forward > 0).all()


def test_stronger_distortion_scores_higher(alex: LPIPS, vgg: LPIPS) -> None:
    x = images(8)
    for metric in (alex, vgg):
        scores = [float(metric(noisy(x, sigma), x)) for sigma in (0.02, 0.1, 0.3)]
        assert 0 < scores[0] < scores[1] < scores[2], scores


def test_batch_of_two_equals_two_singles(alex: LPIPS) -> None:
    x, y = images(9, batch=2), images(10, batch=2)
    singles = torch.cat([alex(x[:1], y[:1]), alex(x[1:], y[1:])])
    torch.testing.assert_close(alex(x, y), singles, rtol=1e-5, atol=1e-7)


def test_gradients_reach_the_input_but_not_the_weights(alex: LPIPS) -> None:
    x = images(11).requires_grad_()
    alex(x, images(12)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in alex.parameters())


def test_train_mode_does_not_change_scores(alex: LPIPS) -> None:
    x, y = images(13), images(14)
    expected = alex(x, y)
    try:
        assert torch.equal(alex.train()(x, y), expected)
    finally:
        alex.eval()


@pytest.mark.parametrize(("net", "smallest"), [("alex", 31), ("vgg", 16)])
def test_smallest_accepted_size(net: str, smallest: int, request: pytest.FixtureRequest) -> None:
    metric: LPIPS = request.getfixturevalue(net)
    assert metric(images(15, smallest), images(16, smallest)).shape == (1,)
    with pytest.raises(MetricError, match="too small"):
        metric(images(15, smallest - 1), images(16, smallest - 1))


def test_bad_inputs_are_metric_errors(alex: LPIPS) -> None:
    with pytest.raises(MetricError, match="shapes differ"):
        alex(images(0, 64), images(0, 48))
    with pytest.raises(MetricError, match="RGB"):
        alex(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
