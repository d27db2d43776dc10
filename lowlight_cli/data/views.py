"""Weak and strong views of unlabeled images for mean-teacher training (Semi-LLIE).

The teacher sees the *weak* view: the unlabeled patch as it comes from the patch sampler (already
cropped, flipped and rotated). The student sees the *strong* view, Semi-LLIE's augmentation
(the authors' ``data_aug``, after FixMatch-style recipes), drawn per image:

1. colour jitter with probability 0.8: brightness, contrast and saturation factors in
   ``U(0.5, 1.5)`` and a hue shift in ``U(-0.25, 0.25)`` turns, applied in a random order
   (as torchvision's ``ColorJitter``);
2. grayscale with probability 0.2 (ITU-R 601 luma, copied to the three channels);
3. Gaussian blur with probability 0.5: kernel side 1, 3 or 5 drawn as the authors do
   (``int(u * 4.95)`` made odd: 1 and 3 with probability 0.404 each, 5 with 0.192; a side of 1
   leaves the image as it is), sigma in ``U(0.1, 2.0)``, reflected borders.

Everything runs batched in torch on the images' device. The random draws come from a CPU
generator, the global one by default, whose state the fit loop saves with every checkpoint, so a
resumed run draws the same views as a straight one. The views are data: no gradient flows
through them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale
MAX_BLUR_KERNEL = 5


@dataclass(frozen=True)
class StrongView:
    """Strengths and probabilities of the strong view (defaults: Semi-LLIE's).

    Attributes:
        brightness, contrast, saturation: jitter factors are drawn in ``U(1 - s, 1 + s)``.
        hue: hue shifts are drawn in ``U(-hue, hue)`` turns (at most 0.5).
        jitter_prob: probability of the colour jitter, per image.
        grayscale_prob: probability of turning the image gray, per image.
        blur_prob: probability of the Gaussian blur, per image.
        blur_sigma: range of the blur's sigma in pixels.
    """

    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.25
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)


@dataclass(frozen=True)
class ViewParameters:
    """One draw of :class:`StrongView` for a batch of ``B`` images (CPU tensors).

    Attributes:
        factors: ``(B, 4)`` brightness, contrast, saturation factors and hue shift; the identity
            ``(1, 1, 1, 0)`` for images without jitter.
        order: ``(B, 4)`` a permutation of ``0..3`` per image: the order the jitter operations run in.
        jitter, grayscale: ``(B,)`` bool, whether each image is jittered, turned gray.
        blur: ``(B, 5)`` the separable blur kernel of each image (sums to 1; ``[0, 0, 1, 0, 0]``
            for images left sharp).
    """

    factors: Tensor
    order: Tensor
    jitter: Tensor
    grayscale: Tensor
    blur: Tensor


def draw_view_parameters(batch: int, view: StrongView = StrongView(), generator: torch.Generator | None = None) -> ViewParameters:
    """Draw the strong view of ``batch`` images.

    Every call draws the same amount of random numbers, in a fixed order, whatever is drawn.

    Args:
        batch: number of images.
        view: strengths and probabilities.
        generator: a CPU generator; None: the global one.
    """

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)

    jitter = torch.rand(batch, generator=generator) < view.jitter_prob
    factors = torch.stack([
        uniform(1 - view.brightness, 1 + view.brightness, batch),
        uniform(1 - view.contrast, 1 + view.contrast, batch),
        uniform(1 - view.saturation, 1 + view.saturation, batch),
        uniform(-view.hue, view.hue, batch),
    ], dim=1)
    factors = torch.where(jitter[:, None], factors, torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64))
    order = torch.rand(batch, 4, generator=generator).argsort(dim=1)
    grayscale = torch.rand(batch, generator=generator) < view.grayscale_prob
    blurred = torch.rand(batch, generator=generator) < view.blur_prob
    side = (torch.rand(batch, generator=generator, dtype=torch.float64) * 4.95).floor().long()
    side = torch.where(side % 2 == 0, side + 1, side)  # the authors' draw: 1, 3 or 5
    sigma = uniform(*view.blur_sigma, batch)
    radius = torch.where(blurred, side // 2, torch.zeros_like(side))
    return ViewParameters(factors, order, jitter, grayscale, gaussian_kernels(sigma, radius))


def gaussian_kernels(sigma: Tensor, radius: Tensor) -> Tensor:
    """Normalised 1-D Gaussian kernels of :data:`MAX_BLUR_KERNEL` taps, zero beyond each ``radius``.

    Args:
        sigma: ``(B,)`` standard deviations in pixels, > 0.
        radius: ``(B,)`` integer half-widths in ``0..2`` (0: the identity kernel).

    Returns:
        ``(B, 5)`` float64, rows summing to 1.
    """
    taps = torch.arange(MAX_BLUR_KERNEL, dtype=torch.float64) - MAX_BLUR_KERNEL // 2
    weights = torch.exp(-(taps[None] ** 2) / (2 * sigma.double()[:, None] ** 2))
    weights = torch.where(taps.abs()[None] <= radius[:, None], weights, torch.zeros_like(weights))
    return weights / weights.sum(dim=1, keepdim=True)


# ---- the operations, per image ------------------------------------------------------------------
def grayscale(images: Tensor) -> Tensor:
    """Luma of RGB images: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 1, H, W)`` in ``[0, 1]``."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _per_image(values: Tensor, images: Tensor) -> Tensor:
    return values.to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * images + (1 - factor) * other``, clipped to ``[0, 1]`` (torchvision's blend)."""
    f = _per_image(factor, images)
    return (f * images + (1 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Scale ``(B, 3, H, W)`` images in ``[0, 1]`` by ``factor`` ``(B,)``, clipped to ``[0, 1]``."""
    return (images * _per_image(factor, images)).clamp(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its mean luma by ``factor`` ``(B,)`` (0: flat gray, 1: unchanged)."""
    return _blend(images, grayscale(images).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its luma by ``factor`` ``(B,)`` (0: grayscale, 1: unchanged)."""
    return _blend(images, grayscale(images), factor)


def rgb_to_hsv(images: Tensor) -> Tensor:
    """RGB ``(B, 3, H, W)`` in ``[0, 1]`` -> HSV ``(B, 3, H, W)``, hue in turns ``[0, 1)``, gray pixels hue 0."""
    r, g, b = images.unbind(dim=1)
    value, _ = images.max(dim=1)
    delta = value - images.min(dim=1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    saturation = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value))
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue)) % 1.0
    return torch.stack([hue, saturation, value], dim=1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``(B, 3, H, W)`` HSV (hue in turns) -> RGB in ``[0, 1]``."""
    hue, saturation, value = hsv.unbind(dim=1)
    channels = []
    for n in (5.0, 3.0, 1.0):  # R, G, B of the piecewise-linear hue wheel
        k = (n + hue * 6) % 6
        channels.append(value - value * saturation * torch.minimum(k, 4 - k).clamp(0.0, 1.0))
    return torch.stack(channels, dim=1)


def adjust_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of ``(B, 3, H, W)`` images in ``[0, 1]`` by ``shift`` ``(B,)`` turns."""
    hsv = rgb_to_hsv(images)
    hue = (hsv[:, :1] + _per_image(shift, images)) % 1.0
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1)).clamp(0.0, 1.0)


JITTER: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def separable_blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Blur each image with its own separable kernel, reflected borders.

    Args:
        images: ``(B, C, H, W)`` with ``H, W > 2``.
        kernels: ``(B, 5)`` 1-D kernels (see :func:`gaussian_kernels`).

    Returns:
        ``(B, C, H, W)``; an image whose kernel is ``[0, 0, 1, 0, 0]`` comes back unchanged.
    """
    batch, channels, height, width = images.shape
    taps = kernels.to(device=images.device, dtype=images.dtype).repeat_interleave(channels, dim=0)  # (B*C, 5)
    pad = MAX_BLUR_KERNEL // 2
    x = F.pad(images.reshape(1, batch * channels, height, width), (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, taps.view(-1, 1, MAX_BLUR_KERNEL, 1), groups=batch * channels)
    x = F.conv2d(x, taps.view(-1, 1, 1, MAX_BLUR_KERNEL), groups=batch * channels)
    return x.view(batch, channels, height, width)


def apply_view(images: Tensor, parameters: ViewParameters) -> Tensor:
    """The view ``parameters`` describe, of ``images`` ``(B, 3, H, W)`` in ``[0, 1]``.

    Jitter (in each image's order), then grayscale, then blur. Computed in float32 at least (not
    under autocast), without gradient.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, same device and dtype as ``images``.
    """
    dtype = images.dtype
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        x = images.detach().to(torch.promote_types(dtype, torch.float32))
        for slot in range(len(JITTER)):
            for index, operation in enumerate(JITTER):
                chosen = (parameters.jitter & (parameters.order[:, slot] == index)).nonzero().squeeze(1)
                if chosen.numel():
                    rows = chosen.to(x.device)
                    x = x.index_copy(0, rows, operation(x.index_select(0, rows), parameters.factors[chosen, index]))
        gray = _per_image(parameters.grayscale, x) > 0
        x = torch.where(gray, grayscale(x).expand_as(x), x)
        x = separable_blur(x, parameters.blur)
    return x.to(dtype)


def strong_view(images: Tensor, view: StrongView = StrongView(), generator: torch.Generator | None = None) -> Tensor:
    """The strong view of ``images`` ``(B, 3, H, W)`` in ``[0, 1]``: a fresh draw per image (see the module docstring).

    Args:
        images: unlabeled patches in ``[0, 1]``, ``H, W >= 3``.
        view: strengths and probabilities (default: Semi-LLIE's).
        generator: CPU generator of the draws; None: the global one (saved and restored on resume).

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, same device and dtype, no gradient.
    """
    return apply_view(images, draw_view_parameters(images.shape[0], view, generator))
