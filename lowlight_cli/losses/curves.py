"""PIE's Bag of Curves: badly exposed negatives made from normal-light positives with imaging curves.

Three curves, each with a darkening and a brightening setting (PIE's ``curves.py``):

- ``tone``: tone curve on the HSV value ``V' = V^k``, ``k = 6`` darkens, ``k = 0.1`` over-exposes;
- ``gamma``: per-channel RGB gamma ``x' = x^gamma``, ``gamma ~ U(5, 8)`` darkens, ``U(0, 0.2)``
  over-exposes;
- ``log``: log curve on the value in 8-bit units ``V' = clip(a ln(1 + V), 0, 255)``, ``a = 10``
  darkens, ``a = 40`` brightens shadows and mid-tones (values above ~0.87 come out slightly darker).

Value curves change ``V = max(R, G, B)`` and keep hue and saturation: scaling the three channels
by ``V'/V`` is exactly an HSV round trip with a new V (both are scale-invariant), without the
authors' 8-bit quantisation. Everything runs batched in torch, any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CURVES = ("tone", "gamma", "log")
TONE_EXPONENT = {"dark": 6.0, "bright": 0.1}
GAMMA_RANGE = {"dark": (5.0, 8.0), "bright": (0.0, 0.2)}
LOG_GAIN = {"dark": 10.0, "bright": 40.0}


def hsv_value(images: torch.Tensor) -> torch.Tensor:
    """HSV value ``V = max(R, G, B)``: ``(B, 3, H, W)`` -> ``(B, 1, H, W)``, same range."""
    return images.amax(dim=1, keepdim=True)


def with_value(images: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Give ``images`` ``(B, 3, H, W)`` in ``[0, 1]`` the HSV value ``value`` ``(B, 1, H, W)`` in ``[0, 1]``,
    keeping hue and saturation. Black pixels stay black. Returns ``(B, 3, H, W)`` in ``[0, 1]``."""
    current = hsv_value(images)
    scale = torch.where(current > 0, value / current.clamp(min=torch.finfo(images.dtype).tiny), torch.zeros_like(value))
    return (images * scale).clamp(0.0, 1.0)


def _per_image(parameter: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return parameter.to(device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)


def tone_curve(images: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """``V' = V^k`` on the HSV value. ``images`` ``(B, 3, H, W)`` in ``[0, 1]``, ``exponent`` ``(B,)`` > 0."""
    return with_value(images, hsv_value(images.clamp(0.0, 1.0)).pow(_per_image(exponent, images)))


def gamma_curve(images: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``x' = x^gamma`` per RGB channel (scikit-image's ``adjust_gamma``). ``gamma`` ``(B,)`` >= 0."""
    return images.clamp(0.0, 1.0).pow(_per_image(gamma, images))


def log_curve(images: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``V' = clip(a ln(1 + V), 0, 255)`` on the HSV value in 8-bit units. ``gain`` ``(B,)`` >= 0."""
    value = hsv_value(images.clamp(0.0, 1.0))
    curved = (_per_image(gain, images) * torch.log1p(255.0 * value)).clamp(0.0, 255.0) / 255.0
    return with_value(images.clamp(0.0, 1.0), curved)


@dataclass(frozen=True)
class CurveNegatives:
    """Negatives made by :func:`bag_of_curves` and how each was made.

    Attributes:
        images: ``(B, 3, H, W)`` in ``[0, 1]``.
        curve: ``(B,)`` int64 index into :data:`CURVES`.
        dark: ``(B,)`` bool, True for darkened (under-exposed), False for over-exposed.
        parameter: ``(B,)`` float: the exponent, gamma or gain used.
    """

    images: torch.Tensor
    curve: torch.Tensor
    dark: torch.Tensor
    parameter: torch.Tensor


def bag_of_curves(positives: torch.Tensor, generator: torch.Generator | None = None) -> CurveNegatives:
    """Make one negative per positive with a curve drawn at random (PIE's Bag of Curves).

    Each image gets one of the three curves (uniformly) in its dark or bright setting; half of the
    batch is dark and half bright (for an odd batch the extra one is either, at random), in a
    random order. Gammas are drawn from their ranges. All draws come from ``generator`` (on the
    CPU), so a seeded generator gives the same negatives on any device.

    Args:
        positives: ``(B, 3, H, W)`` normal-light images in ``[0, 1]``.
        generator: a CPU :class:`torch.Generator`; None uses the global RNG.

    Returns:
        :class:`CurveNegatives` with images on the device and dtype of ``positives``, no gradient.

    Example:
        >>> negatives = bag_of_curves(torch.full((4, 3, 8, 8), 0.5), torch.Generator().manual_seed(0))
        >>> int(negatives.dark.sum()), negatives.images.shape
        (2, torch.Size([4, 3, 8, 8]))
    """
    if positives.ndim != 4 or positives.shape[1] != 3:
        raise ValueError(f"positives must be (B, 3, H, W), got {tuple(positives.shape)}")
    batch = positives.shape[0]
    order = torch.randperm(batch, generator=generator)
    extra = torch.randint(0, 2, (1,), generator=generator).item()
    dark = torch.zeros(batch, dtype=torch.bool)
    dark[order[: batch // 2 + (batch % 2) * extra]] = True
    curve = torch.randint(0, len(CURVES), (batch,), generator=generator)
    gamma_unit = torch.rand(batch, generator=generator, dtype=torch.float64)

    def setting(dark_value: float, bright_value: float) -> torch.Tensor:
        return torch.where(dark, torch.tensor(dark_value, dtype=torch.float64), torch.tensor(bright_value, dtype=torch.float64))

    (dark_low, dark_high), (bright_low, bright_high) = GAMMA_RANGE["dark"], GAMMA_RANGE["bright"]
    gamma = setting(dark_low, bright_low) + setting(dark_high - dark_low, bright_high - bright_low) * gamma_unit
    parameter = torch.stack(
        [setting(TONE_EXPONENT["dark"], TONE_EXPONENT["bright"]), gamma, setting(LOG_GAIN["dark"], LOG_GAIN["bright"])]
    )
    parameter = parameter.gather(0, curve[None]).squeeze(0)

    with torch.no_grad():
        images = torch.empty_like(positives)
        for index, apply in enumerate((tone_curve, gamma_curve, log_curve)):
            chosen = (curve == index).nonzero().squeeze(1)
            if chosen.numel():
                picked = chosen.to(positives.device)
                images[picked] = apply(positives[picked], parameter[chosen])
    device = positives.device
    return CurveNegatives(images=images, curve=curve.to(device), dark=dark.to(device), parameter=parameter.to(device))
