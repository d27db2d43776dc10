"""Score one prediction (and its reference) under a :class:`Protocol`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError, InputError, MetricError, SizeMismatchError
from ..metrics import MetricWarning, create_metric, metric_info
from .protocol import Protocol

_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float64)


@dataclass
class ImageScores:
    """The scores of one image, by metric name; ``warnings`` holds metric notes (e.g. NaN NIQE).

    ``error``: why the image could not be scored (unreadable, too small for a metric); ``values``
    is then empty and the image counts in no summary.
    """

    name: str
    values: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def mean_gray_level(rgb: np.ndarray) -> float:
    """Mean gray level (BT.601 weights) of ``rgb`` ``(H, W, 3)`` float in [0, 1]: what GT-mean matches."""
    return float((rgb @ _GRAY).mean())


def gt_mean_scale(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Scale ``prediction`` so its mean gray level equals ``reference``'s, clipped to [0, 1].

    Both ``(H, W, 3)`` float in [0, 1]. A black prediction is returned unchanged.
    """
    pred_mean = mean_gray_level(prediction)
    if pred_mean <= 0:
        return prediction
    return np.clip(prediction * (mean_gray_level(reference) / pred_mean), 0.0, 1.0)


def check_scored_image(image: object, label: str) -> None:
    """What :meth:`Scorer.score` takes: an ``(H, W, 3)`` float numpy array in [0, 1].

    Raises:
        InputError: anything else (integer pixels would be read as [0, 1] floats and scored wrong).
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{label} is a {type(image).__name__}; scores take (H, W, 3) float numpy arrays in [0, 1]",
                         hint="tensor.permute(1, 2, 0).numpy() for a (3, H, W) tensor")
    if image.dtype.kind != "f":
        raise InputError(f"{label} holds {image.dtype} pixels; scores take floats in [0, 1]",
                         hint="lowlight_cli.io.to_float(image) divides by the type's maximum (255, 65535)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{label} has shape {image.shape}; scores take (H, W, 3) RGB",
                         hint="np.repeat(gray[..., None], 3, axis=2) for a gray image; drop an alpha channel")


class Scorer:
    """Holds the metric modules of a protocol and scores images one at a time.

    Example:
        >>> scorer = Scorer(Protocol(metrics=("psnr",)))
        >>> x = np.full((8, 8, 3), 0.5)
        >>> scorer.score("x", x, x).values["psnr"]
        inf
    """

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.metrics = {name: create_metric(name, **protocol.metric_options(name)) for name in protocol.metrics}

    def score(
        self,
        name: str,
        prediction: np.ndarray,
        reference: np.ndarray | None,
        *,
        labels: tuple[str, str] = ("prediction", "reference"),
        one_channel: tuple[bool, bool] = (False, False),
    ) -> ImageScores:
        """Score ``prediction`` ``(H, W, 3)`` float in [0, 1] against ``reference`` (same shape) or alone.

        ``labels`` name the two images in errors (e.g. their file paths). ``one_channel``: the
        prediction / reference came from a one-channel (gray) file and holds three equal channels;
        the metrics that score luma or gray (NIQE, SSIM with ``ssim_space`` y or gray) then take that
        channel itself, as MATLAB's NIQE and SSIM and BasicSR do for a gray image (converted, BT.601
        Y would make a gray value v 16 + 219 v / 255); full-reference ones when both are gray.

        Raises:
            InputError: not an ``(H, W, 3)`` float array (:func:`check_scored_image`).
            SizeMismatchError: sizes differ.
            MetricError: the crop border leaves nothing to score (and what a metric refuses).
            DataError: a full-reference metric was asked for without a reference.
        """
        p = self.protocol
        for image, label in ((prediction, labels[0]), (reference, labels[1])):
            if image is not None:
                check_scored_image(image, label)
        for image, label, gray in ((prediction, labels[0], one_channel[0]), (reference, labels[1], one_channel[1])):
            if gray and image is not None and not (np.array_equal(image[..., 0], image[..., 1])
                                                   and np.array_equal(image[..., 0], image[..., 2])):
                raise InputError(f"{label} is said to be one-channel (gray) but its three channels differ",
                                 hint="one_channel is for gray files held as three equal channels")
        if reference is not None and prediction.shape != reference.shape:
            raise SizeMismatchError(
                f"size mismatch (width x height): {labels[0]} is {prediction.shape[1]}x{prediction.shape[0]}, "
                f"{labels[1]} is {reference.shape[1]}x{reference.shape[0]}",
                hint="scores compare images pixel by pixel; no resizing is done",
            )
        # GT-mean scaling is a full-reference step: no-reference metrics score the prediction as it is
        compared = gt_mean_scale(prediction, reference) if reference is not None and p.gt_mean else prediction
        unscaled_black = reference is not None and p.gt_mean and compared is prediction  # told before any crop
        c = p.crop_border
        if c and min(prediction.shape[:2]) <= 2 * c:
            raise MetricError(
                f"--crop-border {c} leaves nothing of a {prediction.shape[1]}x{prediction.shape[0]} image",
                hint=f"use a crop border below {(min(prediction.shape[:2]) + 1) // 2}",
            )
        if c:
            prediction, compared = prediction[c:-c, c:-c], compared[c:-c, c:-c]
            reference = reference[c:-c, c:-c] if reference is not None else None
        pred_t = torch.from_numpy(np.ascontiguousarray(prediction, dtype=np.float64)).permute(2, 0, 1)[None]
        compared_t = pred_t if compared is prediction else torch.from_numpy(
            np.ascontiguousarray(compared, dtype=np.float64)).permute(2, 0, 1)[None]
        ref_t = None
        if reference is not None:
            ref_t = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64)).permute(2, 0, 1)[None]
        values: dict[str, float] = {}
        notes: list[str] = []
        if unscaled_black and any(metric_info(m).full_reference for m in self.metrics):
            notes.append("gt-mean: the prediction is black, so it cannot be scaled: scored as it is")
        try:
            self._score_metrics(pred_t, compared_t, ref_t, labels, values, notes, one_channel)
        except MetricError as exc:
            if c:  # the size a metric names is the cropped one: say so
                exc.message += f" (after --crop-border {c})"
            raise
        return ImageScores(name, values, notes)

    def _score_metrics(self, pred_t: torch.Tensor, compared_t: torch.Tensor, ref_t: torch.Tensor | None,
                       labels: tuple[str, str], values: dict[str, float], notes: list[str],
                       one_channel: tuple[bool, bool]) -> None:
        """Each metric's value into ``values`` and its warnings into ``notes``."""
        for metric_name, module in self.metrics.items():
            luma = getattr(module, "space", "rgb") != "rgb"  # a gray file's channel is its luma already
            if metric_info(metric_name).full_reference:
                if ref_t is None:
                    raise DataError(f"{metric_name} needs a reference image for {labels[0]}")
                if luma and all(one_channel):
                    values[metric_name] = float(module(compared_t[:, :1], ref_t[:, :1])[0])
                else:
                    values[metric_name] = float(module(compared_t, ref_t)[0])
            else:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", MetricWarning)
                    values[metric_name] = float(module(pred_t[:, :1] if luma and one_channel[0] else pred_t)[0])
                for w in caught:
                    if issubclass(w.category, MetricWarning):
                        text = str(w.message)  # the metric's own name once: "niqe: ...", not "niqe: niqe: ..."
                        notes.append(text if text.startswith(f"{metric_name}:") else f"{metric_name}: {text}")
