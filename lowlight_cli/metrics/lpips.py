"""LPIPS v0.1 (Zhang et al. 2018): learned perceptual distance on AlexNet or VGG16 features, lower is better.

R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", CVPR 2018. This is a pure-torch port of the ``lpips`` package
(version 0.1, ``normalize=True`` input convention) without torchvision: the backbones have the exact
layer layout and state-dict keys of torchvision's ``alexnet().features`` / ``vgg16().features``
(``features.0.weight``, ...) and the heads the keys of the official release (``lin0.model.1.weight``,
...), so the published files load unchanged.

The metric never runs on random weights: they come from the ``weights`` argument or
``$LOWLIGHT_LPIPS_WEIGHTS``, else :class:`~lowlight_cli.errors.MetricError` says what is missing.
Accepted (see :func:`load_lpips_state`):

- a folder with ``backbone.safetensors`` + ``lpips_head.safetensors``, or ``lpips_<net>.safetensors``
  (or ``model.safetensors``) holding both key sets;
- a folder with the official ``.pth`` files: torchvision's ImageNet backbone (``alexnet-owt-7be5be79.pth``
  / ``vgg16-397923af.pth``, any ``alexnet*.pth`` / ``vgg16*.pth``) + the LPIPS head (``alex.pth`` /
  ``vgg.pth``). They are read with ``torch.load(..., weights_only=True)``, which unpickles tensors and
  plain containers only and refuses anything that could run code;
- one such file or a list of files (their keys are merged);
- ``hf-hub:org/repo@rev``: a lowlight checkpoint repository (``config.json`` + ``model.safetensors``
  with both key sets), downloaded and verified by :mod:`lowlight_cli.hub`.

Every key and shape is checked strictly; torchvision's ``classifier.*`` keys are ignored.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, MetricError, WeightsError, first_line
from ..hub import HubRef, download_checkpoint, is_hub_ref
from ..models.checkpoint import WEIGHTS_NAME, load_state_dict_file
from .base import check_image_pair

LPIPSNet = Literal["alex", "vgg"]
WeightsSource = str | os.PathLike | Sequence[str | os.PathLike]

ENV_VAR = "LOWLIGHT_LPIPS_WEIGHTS"
BACKBONE_FILE = "backbone.safetensors"
HEAD_FILE = "lpips_head.safetensors"
PAPER = (
    "R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, 'The Unreasonable Effectiveness of Deep "
    "Features as a Perceptual Metric', CVPR 2018"
)

# ScalingLayer of LPIPS v0.1: ImageNet statistics expressed on the [-1, 1] input scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10
# torchvision's full-model files also hold the classifier, which LPIPS does not use.
_IGNORED_PREFIX = "classifier."


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features``: same layers, indices and parameter names, no weights loaded."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )  # fmt: skip


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` (configuration D, no batch norm), no weights loaded."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(width)
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class LPIPSBackbone:
    """One LPIPS backbone: how to build it, where to tap it, and the names of its official files.

    Attributes:
        net: LPIPS name (``"alex"``, ``"vgg"``), also the official head file's stem (``alex.pth``).
        title: human name for messages; build: makes the torchvision-compatible ``features``.
        taps: indices in ``features`` whose outputs (ReLUs) are compared.
        min_size: smallest height and width that reaches the last tap.
        torchvision_file, torchvision_glob: name of torchvision's ImageNet file, pattern for others.
    """

    net: str
    title: str
    build: Callable[[], nn.Sequential]
    taps: tuple[int, ...]
    min_size: int
    torchvision_file: str
    torchvision_glob: str


BACKBONES: dict[str, LPIPSBackbone] = {
    "alex": LPIPSBackbone(
        "alex", "AlexNet", alexnet_features, (1, 4, 7, 9, 11), 31, "alexnet-owt-7be5be79.pth", "alexnet*.pth"
    ),
    "vgg": LPIPSBackbone(
        "vgg", "VGG16", vgg16_features, (3, 8, 15, 22, 29), 16, "vgg16-397923af.pth", "vgg16*.pth"
    ),
}


def lpips_backbone(net: str) -> LPIPSBackbone:
    """The :class:`LPIPSBackbone` of ``net``; :class:`MetricError` for other names."""
    if net not in BACKBONES:
        raise MetricError(f"lpips: unknown net {net!r}", hint=f"use one of {', '.join(BACKBONES)}")
    return BACKBONES[net]


class _LinearHead(nn.Module):
    """LPIPS ``NetLinLayer``: a bias-free 1x1 convolution from C channels to 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Slot 0 held the release's Dropout, inactive when scoring: Identity keeps the official key
        # ``model.1.weight`` and makes the metric deterministic even in train mode.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


def _layout(spec: LPIPSBackbone) -> tuple[nn.Sequential, list[_LinearHead]]:
    """The backbone and heads of ``spec`` on the meta device (shapes only, no values)."""
    with torch.device("meta"):
        features = spec.build()
        heads = [_LinearHead(features[tap - 1].out_channels) for tap in spec.taps]
    return features, heads


def lpips_state_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """Every key a complete LPIPS state dict of ``net`` holds, with its shape.

    Backbone keys are torchvision's (``features.0.weight``, ...), head keys the official release's
    (``lin0.model.1.weight``, shape ``(1, C, 1, 1)``).

    Example:
        >>> lpips_state_shapes("alex")["lin4.model.1.weight"]
        (1, 256, 1, 1)
    """
    features, heads = _layout(lpips_backbone(net))
    shapes = {f"features.{k}": tuple(v.shape) for k, v in features.state_dict().items()}
    for i, head in enumerate(heads):
        shapes |= {f"lin{i}.{k}": tuple(v.shape) for k, v in head.state_dict().items()}
    return shapes


def _hint(spec: LPIPSBackbone) -> str:
    return (
        f"set {ENV_VAR} or pass --lpips-weights to `lowlight evaluate` (LPIPS(weights=...) in Python): "
        f"a folder with {BACKBONE_FILE} + {HEAD_FILE}, or lpips_{spec.net}.safetensors holding both, "
        f"or the official torchvision {spec.torchvision_file} + LPIPS v0.1 {spec.net}.pth; "
        "or hf-hub:org/repo@rev whose model.safetensors holds both"
    )


def _error(spec: LPIPSBackbone, message: str, hint: str | None = None) -> MetricError:
    return MetricError(f"lpips ({spec.net}): {message}", hint=hint or _hint(spec))


def _only_file(spec: LPIPSBackbone, folder: Path, names: Sequence[str], pattern: str | None = None) -> Path | None:
    """The first of ``names`` in ``folder``, else the single match of ``pattern``, else None."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    matches = sorted(folder.glob(pattern)) if pattern else []
    if len(matches) > 1:
        raise _error(spec, f"{folder} holds several {pattern} files: {', '.join(p.name for p in matches)}", "keep one")
    return matches[0] if matches else None


def _folder_files(spec: LPIPSBackbone, folder: Path) -> list[Path]:
    """The weight files of ``folder`` for ``spec``: one combined file, else a backbone and a head file."""
    combined = _only_file(spec, folder, (f"lpips_{spec.net}.safetensors", WEIGHTS_NAME))
    if combined is not None:
        return [combined]
    backbone_file = _only_file(spec, folder, (BACKBONE_FILE,), spec.torchvision_glob)
    head_file = _only_file(spec, folder, (HEAD_FILE, f"{spec.net}.pth"))
    missing = []
    if backbone_file is None:
        missing.append(f"{spec.title} backbone weights ({BACKBONE_FILE} or {spec.torchvision_file})")
    if head_file is None:
        missing.append(f"LPIPS head weights ({HEAD_FILE} or {spec.net}.pth)")
    if missing:
        raise _error(spec, f"{folder} has no " + " and no ".join(missing))
    return [backbone_file, head_file]  # type: ignore[list-item]


def _weight_files(spec: LPIPSBackbone, source: WeightsSource) -> list[Path]:
    """Resolve a path, list of paths or ``hf-hub:`` reference to the files to read."""
    if is_hub_ref(source):
        try:
            folder = download_checkpoint(HubRef.parse(str(source)))
        except WeightsError as exc:  # the hub's hints name enhancement's option; this one is --lpips-weights
            hint = exc.hint.replace("--weights", "--lpips-weights") if exc.hint else exc.hint
            raise _error(spec, exc.message, hint) from exc
        return _folder_files(spec, folder)
    listed = isinstance(source, Sequence) and not isinstance(source, str)
    paths = [Path(p).expanduser() for p in source] if listed else [Path(source).expanduser()]
    for path in paths:
        if not path.exists():
            raise _error(spec, f"weights path {path} does not exist")
    if len(paths) == 1 and paths[0].is_dir():
        return _folder_files(spec, paths[0])
    for path in paths:
        if not path.is_file():
            raise _error(spec, f"{path} is a folder; pass one folder or a list of files")
    return paths


def _read_file(spec: LPIPSBackbone, path: Path) -> dict[str, torch.Tensor]:
    """Tensors of one safetensors or ``.pth`` file (the latter through ``weights_only`` unpickling)."""
    if path.suffix == ".safetensors":
        try:
            return load_state_dict_file(path)
        except CheckpointError as exc:
            raise _error(spec, exc.message, "re-create or re-download the file") from exc
    if path.suffix not in (".pth", ".pt"):
        raise _error(spec, f"{path}: unsupported weights file type {path.suffix!r} (use .safetensors or .pth)")
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects (no code runs).
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise _error(
            spec,
            f"{path} is not a plain tensor file readable with torch.load(weights_only=True): {first_line(exc)}",
            "use the official files unchanged, or convert them to safetensors",
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _error(spec, f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def _check_state(spec: LPIPSBackbone, state: Mapping[str, torch.Tensor], files: Sequence[Path]) -> None:
    """Raise :class:`MetricError` naming every missing, unexpected or misshapen key."""
    expected = lpips_state_shapes(spec.net)
    problems = []
    for part, prefix in (("backbone", "features."), ("LPIPS head", "lin")):
        wanted = [k for k in expected if k.startswith(prefix)]
        missing = [k for k in wanted if k not in state]
        if missing == wanted:
            problems.append(f"no {spec.title} {part} keys ({prefix}*)")
        elif missing:
            problems.append(f"missing {part} keys {', '.join(missing)}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        problems.append(f"unexpected keys {', '.join(unexpected)}")
    for key in sorted(set(state) & set(expected)):
        if tuple(state[key].shape) != expected[key]:
            problems.append(f"{key} has shape {tuple(state[key].shape)}, expected {expected[key]}")
    if problems:
        names = ", ".join(str(f) for f in files)
        raise _error(spec, f"weights in {names} do not fit LPIPS-{spec.net}: " + "; ".join(problems))


def load_lpips_state(net: str = "alex", weights: WeightsSource | None = None) -> dict[str, torch.Tensor]:
    """Find, read and strictly check the LPIPS weights of ``net``.

    Args:
        net: ``"alex"`` or ``"vgg"``.
        weights: a folder, a file, a list of files or ``hf-hub:org/repo@rev`` (see the module
            docstring for the file names); None reads ``$LOWLIGHT_LPIPS_WEIGHTS``.

    Returns:
        float32 CPU tensors, exactly the keys of :func:`lpips_state_shapes` (``classifier.*`` dropped).

    Raises:
        MetricError: no source given, a path or file missing, an unreadable or unsafe file, a Hub
            failure, or keys missing / unexpected / of the wrong shape (all named in the message;
            the hint says how to provide the weights).
    """
    spec = lpips_backbone(net)
    source = weights if weights is not None else os.environ.get(ENV_VAR) or None
    if source is None:
        raise _error(
            spec,
            f"no weights: the ImageNet-pretrained {spec.title} backbone and the LPIPS v0.1 {spec.net} head "
            f"are needed (the weights argument and ${ENV_VAR} are both unset); random weights are never used",
        )
    files = _weight_files(spec, source)
    state = {k: v for path in files for k, v in _read_file(spec, path).items() if not k.startswith(_IGNORED_PREFIX)}
    _check_state(spec, state, files)
    return {k: v.to(torch.float32) for k, v in state.items()}


def _unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Divide each spatial position's channel vector by its L2 norm (+1e-10), as LPIPS does."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + _EPS)


def lpips_distance(
    pred_features: Sequence[torch.Tensor],
    target_features: Sequence[torch.Tensor],
    head_weights: Sequence[torch.Tensor],
) -> torch.Tensor:
    """LPIPS from tapped backbone activations: the differentiable core of the metric.

    Per tap: unit-normalise channels, square the difference, weight channels with the head (a 1x1
    convolution without bias), average over space; then sum over taps.

    Args:
        pred_features: per tap, a (B, C_l, H_l, W_l) activation of the prediction.
        target_features: the same for the reference.
        head_weights: per tap, the (1, C_l, 1, 1) head weight (non-negative in the release).

    Returns:
        (B,) distances; 0 for identical features, non-negative with non-negative heads.

    Example:
        >>> import torch
        >>> f = [torch.ones(1, 2, 3, 3)]
        >>> g = [torch.cat([torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)], dim=1)]
        >>> lpips_distance(f, g, [torch.ones(1, 2, 1, 1)])
        tensor([0.5858])
    """
    per_tap = [
        F.conv2d((_unit_normalize(f0) - _unit_normalize(f1)).square(), weight).mean(dim=(1, 2, 3))
        for f0, f1, weight in zip(pred_features, target_features, head_weights, strict=True)
    ]
    return torch.stack(per_tap).sum(dim=0)


class LPIPS(nn.Module):
    """LPIPS v0.1 metric: ``LPIPS(net, weights)(pred, target) -> (B,)``, lower is better.

    Inputs are (B, 3, H, W) RGB in [0, 1] (mapped to [-1, 1] as ``lpips(..., normalize=True)`` does),
    at least 31 px (alex) or 16 px (vgg) per side, on the module's device. Scores have the weights'
    dtype (float32); gradients reach the inputs (weights are frozen), so it can serve as a loss.

    Args:
        net: ``"alex"`` (default, the paper's recommended metric) or ``"vgg"``.
        weights: where the pretrained weights are; None reads ``$LOWLIGHT_LPIPS_WEIGHTS``. See
            :func:`load_lpips_state`.

    Raises:
        MetricError: at construction, weights missing, incomplete or unreadable (files or keys named);
            when called, mismatched, non-RGB or too small inputs.

    Example:
        >>> metric = LPIPS("alex", weights="path/to/lpips-alex")  # doctest: +SKIP
        >>> metric(pred, target)  # doctest: +SKIP
        tensor([0.1234])
    """

    def __init__(self, net: LPIPSNet = "alex", weights: WeightsSource | None = None) -> None:
        super().__init__()
        self.spec = lpips_backbone(net)
        state = load_lpips_state(net, weights)
        # Built on the meta device and filled by assignment: there is never a randomly initialised copy.
        self.features, heads = _layout(self.spec)
        for i, head in enumerate(heads):
            self.add_module(f"lin{i}", head)
        self.load_state_dict(state, strict=True, assign=True)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def head_weights(self) -> list[torch.Tensor]:
        """The (1, C, 1, 1) head weight of each tap, in tap order."""
        return [getattr(self, f"lin{i}").model[1].weight for i in range(len(self.spec.taps))]

    def tapped_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Backbone activations at the LPIPS taps of (B, 3, H, W) images in [0, 1]."""
        x = ((images * 2 - 1) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features[: self.spec.taps[-1] + 1]):
            x = layer(x)
            if index in self.spec.taps:
                taps.append(x)
        return taps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_image_pair(pred, target, "lpips")
        if pred.shape[1] != 3:
            raise MetricError(f"lpips: expected RGB (B, 3, H, W) inputs, got {tuple(pred.shape)}")
        if min(pred.shape[-2:]) < self.spec.min_size:
            raise MetricError(
                f"lpips ({self.spec.net}): images of {pred.shape[-2]}x{pred.shape[-1]} px are too small; "
                f"the {self.spec.title} backbone needs at least {self.spec.min_size} px per side",
                hint="score larger images, or use net='vgg' (16 px minimum)" if self.spec.net == "alex" else None,
            )
        features = self.tapped_features(torch.cat([pred, target]).to(self.shift.dtype))  # one pass for both
        batch = pred.shape[0]
        return lpips_distance([f[:batch] for f in features], [f[batch:] for f in features], self.head_weights())
