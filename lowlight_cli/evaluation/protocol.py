"""The evaluation protocol: every choice that moves a score, printed with every result."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError
from ..metrics import list_metrics, metric_info

SSIM_SPACES = ("rgb", "y", "gray")
NIQE_SPACES = ("y", "gray")


@dataclass(frozen=True)
class Protocol:
    """How images are scored (SPEC-metrics.md; defaults are the field's usual LOL protocol).

    Attributes:
        metrics: metric names, in report order.
        gt_mean: scale each prediction so its mean gray level equals its reference's (off by
            default; it adds 2-4 dB on LOL and several papers do it silently); for the
            full-reference metrics only: no-reference ones (NIQE) score the prediction as it is.
        ssim_space: ``rgb`` (per channel, averaged), ``y`` (BT.601 luma) or ``gray``.
        niqe_space: ``y`` (BT.601 luma) or ``gray`` (MATLAB rgb2gray).
        crop_border: pixels removed from every side before scoring.
        lpips_net: LPIPS backbone, ``alex`` or ``vgg``.
        lpips_weights: LPIPS weights (folder, file or hub id); None reads ``$LOWLIGHT_LPIPS_WEIGHTS``.
    """

    metrics: tuple[str, ...] = ("psnr", "ssim")
    gt_mean: bool = False
    ssim_space: str = "rgb"
    niqe_space: str = "y"
    crop_border: int = 0
    lpips_net: str = "alex"
    lpips_weights: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.metrics, str):  # "psnr" would be read letter by letter
            raise UsageError(f"metrics is a sequence of names, got the string {self.metrics!r}",
                             hint=f"Protocol(metrics=({self.metrics!r},))")
        object.__setattr__(self, "metrics", tuple(self.metrics))  # a list given: hashable, like the default
        if not isinstance(self.gt_mean, bool):  # "no" would switch it on
            raise UsageError(f"gt_mean is True or False, got {self.gt_mean!r}")
        if isinstance(self.crop_border, bool) or not isinstance(self.crop_border, int):
            raise UsageError(f"crop_border is a whole number of pixels, got {self.crop_border!r}")
        if not self.metrics:
            raise UsageError("no metrics given", hint=f"use --metrics with some of: {', '.join(list_metrics())}")
        for name in self.metrics:
            metric_info(name)  # raises UnknownNameError with a hint
        twice = sorted({m for m in self.metrics if self.metrics.count(m) > 1})
        if twice:
            raise UsageError(f"metric listed twice: {', '.join(twice)} (in {', '.join(self.metrics)})",
                             hint="name each metric once")
        if self.ssim_space not in SSIM_SPACES:
            raise UsageError(f"unknown ssim_space (--ssim-space) {self.ssim_space!r}", hint=f"use one of {', '.join(SSIM_SPACES)}")
        if self.niqe_space not in NIQE_SPACES:
            raise UsageError(f"unknown niqe_space (--niqe-space) {self.niqe_space!r}", hint=f"use one of {', '.join(NIQE_SPACES)}")
        if self.lpips_net not in ("alex", "vgg"):
            raise UsageError(f"unknown lpips_net (--lpips-net) {self.lpips_net!r}", hint="use alex or vgg")
        if self.lpips_weights is not None and not str(self.lpips_weights).strip():
            raise UsageError("lpips_weights (--lpips-weights) is empty", hint="give a folder, a file or an hf-hub: id, or leave the option out")
        if self.crop_border < 0:
            raise UsageError(f"crop_border (--crop-border) must be >= 0, got {self.crop_border}")
        if self.gt_mean and not self.needs_reference:
            raise UsageError("gt_mean (--gt-mean) scales each prediction to its reference, and no metric asked for takes one",
                             hint="add a full-reference metric (psnr, ssim) or drop it")

    @property
    def needs_reference(self) -> bool:
        """True when some metric is full-reference."""
        return any(metric_info(m).full_reference for m in self.metrics)

    def metric_options(self, name: str) -> dict[str, str | None]:
        """Constructor options of metric ``name`` under this protocol (its colour space)."""
        if name == "lpips":
            return {"net": self.lpips_net, "weights": self.lpips_weights}
        spaces = {"ssim": self.ssim_space, "niqe": self.niqe_space}
        return {"space": spaces[name]} if name in spaces else {}

    def as_dict(self) -> dict:
        """The protocol block of JSON reports (with the fixed conventions spelled out)."""
        return {
            **asdict(self),
            "metrics": list(self.metrics),
            "pairing": "file stem",
            "value_scale": "8-bit 0..255 (16-bit images scaled to the same range)",
            "psnr": "10 log10(255^2 / MSE) over all pixels and channels, per image, then mean",
            "ssim": "Wang 2004, Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L 255, valid region; "
                    "space y: BT.601 Y 16..235, unrounded; a one-channel file: its own values",
            "niqe": "LIVE MATLAB release: BT.601 Y (or MATLAB rgb2gray) rounded to integers, 96x96 blocks, pristine "
                    "model shipped; a one-channel file: its own values",
            "gt_mean_scaling": "prediction times mean(0.299 R + 0.587 G + 0.114 B) of the reference over the "
                               "same of the prediction, clipped to [0, 1], not rounded again; full-reference "
                               "metrics only",
        }

    def describe(self) -> str:
        """One line for tables, CSV headers and logs."""
        parts = ["pairing by stem", "0..255 scale"]
        if self.needs_reference:
            parts.append(f"gt-mean {'on (full-reference metrics)' if self.gt_mean else 'off'}")
        if "ssim" in self.metrics:  # only the settings of the metrics asked for
            parts.append(f"ssim space {self.ssim_space} (Gaussian 11x11, sigma 1.5, valid)")
        if "niqe" in self.metrics:
            parts.append(f"niqe space {self.niqe_space}")
        parts.append(f"crop border {self.crop_border}")
        if "lpips" in self.metrics:
            parts.append(f"lpips {self.lpips_net}")
        return "; ".join(parts)
