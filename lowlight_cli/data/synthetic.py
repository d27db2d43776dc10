"""Synthetic low-light photos: well-exposed sample photos darkened through a camera-like model.

The model: undo the display curve (gamma 2.2) to get linear light, scale by an exposure factor,
draw Poisson shot noise for a sensor of ``full_well`` electrons plus Gaussian read noise, clip,
and re-apply the display curve. The sample photos are scikit-image's bundled ones (its ``data``
module ships them inside the package, so this works offline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
DISPLAY_GAMMA = 2.2


@dataclass(frozen=True)
class DarkeningModel:
    """Parameters of the camera-like darkening.

    Attributes:
        exposure: fraction of the original linear light that reaches the sensor, in (0, 1].
        full_well: electrons at full scale; smaller means more shot noise.
        read_noise: standard deviation of the Gaussian read noise, in linear full-scale units.
    """

    exposure: float = 0.05
    full_well: float = 4000.0
    read_noise: float = 0.002


def sample_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled RGB sample photos, ``(H, W, 3)`` uint8.

    Raises:
        DataError: scikit-image is not installed, or ``name`` is not a bundled photo.
    """
    try:
        from skimage import data as skdata
    except ImportError:  # optional dependency
        raise DataError(
            "synthetic data needs scikit-image", hint="pip install 'lowlight-cli[synthetic]' (or scikit-image)"
        ) from None
    if name not in SAMPLE_PHOTOS:
        raise DataError(f"unknown sample photo {name!r}", hint=f"choose from {', '.join(SAMPLE_PHOTOS)}")
    image = np.asarray(getattr(skdata, name)())
    return np.ascontiguousarray(image[..., :3])


def darken(rgb: np.ndarray, model: DarkeningModel, rng: np.random.Generator) -> np.ndarray:
    """Darken a well-exposed photo the way a short exposure would.

    Args:
        rgb: ``(H, W, 3)`` float in ``[0, 1]``, display-referred.
        model: exposure and noise parameters.
        rng: random generator (seed it for reproducible noise).

    Returns:
        ``(H, W, 3)`` float32 in ``[0, 1]``, display-referred, dark and noisy.
    """
    linear = np.clip(rgb, 0.0, 1.0).astype(np.float64) ** DISPLAY_GAMMA
    electrons = rng.poisson(linear * model.exposure * model.full_well)
    signal = electrons / model.full_well + rng.normal(0.0, model.read_noise, size=linear.shape)
    return (np.clip(signal, 0.0, 1.0) ** (1.0 / DISPLAY_GAMMA)).astype(np.float32)
