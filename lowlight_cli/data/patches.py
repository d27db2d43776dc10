"""Random training patches, planned per epoch so that any run can be resumed bit for bit.

An epoch is a deterministic list of batches of *patch keys* ``(image_index, patch_id)``. The
crop position and the flip / rotation of a patch are drawn from a generator seeded by
``(seed, image_index, patch_id)``, so a patch is the same whichever worker process loads it and
whether or not the run was interrupted. Resuming means re-planning the epoch and skipping the
batches already done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import from_float, to_float
from .pairs import ImagePair

PatchKey = tuple[int, int]


@dataclass(frozen=True)
class PatchConfig:
    """Patch sampling.

    Attributes:
        size: side of the square patches in pixels.
        per_image: patches drawn from each labeled image per epoch.
        augment: random horizontal/vertical flips and 90-degree rotations (same for low and high).
        identity_prob: probability that a labeled patch is replaced by its reference as both input
            and target (ours): the model learns to leave a well-exposed photo as it is, which
            low-light pairs alone never show it.
        dim_prob: probability that a labeled patch's input (if not an identity patch) is its
            reference under-exposed instead (ours): darkened by an exposure drawn uniformly from
            ``dim_exposure`` through the camera model of :mod:`lowlight_cli.data.synthetic`
            (shot and read noise, 8-bit), with the reference as target. LOL's low images are all
            very dark and the identity patches well exposed; these fill the middle.
        dim_exposure: ``(lowest, highest)`` exposure of those patches, in ``(0, 1]``.
    """

    size: int = 96
    per_image: int = 30
    augment: bool = True
    identity_prob: float = 0.0
    dim_prob: float = 0.0
    dim_exposure: tuple[float, float] = (0.2, 0.6)


def augment_pair(low: np.ndarray, high: np.ndarray | None, code: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply one of the 8 flip/rotation symmetries (``code`` in 0..7) to both arrays ``(h, w, c)``."""

    def apply(a: np.ndarray) -> np.ndarray:
        if code & 1:
            a = a[:, ::-1]
        if code & 2:
            a = a[::-1]
        if code & 4:
            a = a.transpose(1, 0, 2)
        return a

    return apply(low), apply(high) if high is not None else None


def random_patch(
    rng: np.random.Generator, size: int, low: np.ndarray, high: np.ndarray | None = None, *, augment: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """A random ``size`` x ``size`` crop of ``low`` ``(h, w, c)`` (and the same crop of ``high``), turned
    by one of the 8 flip/rotation symmetries when ``augment``.

    Draws, in this order: the top row, the left column, the symmetry (only with ``augment``), so
    a seeded ``rng`` always gives the same patch.
    """
    h, w = low.shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    low = low[top : top + size, left : left + size]
    high = high[top : top + size, left : left + size] if high is not None else None
    if augment:
        low, high = augment_pair(low, high, int(rng.integers(0, 8)))
    return low, high


def under_exposed(reference: np.ndarray, exposure: float, rng: np.random.Generator) -> np.ndarray:
    """``reference`` ``(h, w, 3)`` (uint8/uint16/float) as a short exposure would record it: the
    camera model of :func:`lowlight_cli.data.synthetic.darken` (gain in linear light, shot and
    read noise), as ``(h, w, 3)`` uint8."""
    from .synthetic import DarkeningModel, darken  # numpy only; imported where it is used

    return from_float(darken(to_float(reference), DarkeningModel(exposure=exposure), rng), 8)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``(h, w, 3)`` uint8/uint16/float pixels -> ``(3, h, w)`` float32 tensor in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(to_float(pixels).transpose(2, 0, 1)))


MIN_PATCH_SIZE = 16  # lowlight train --patch-size's least value


def check_patch_size(images: dict[str, np.ndarray], size: int, what: str = "image", *, multiple: int = 1) -> None:
    """Raise :class:`DataError` when any of ``images`` (by name) is smaller than ``size`` on a side;
    the hint's patch size is a multiple of ``multiple`` (the model's input multiple), which a patch
    size must also be."""
    small = [name for name, pixels in images.items() if min(pixels.shape[:2]) < size]
    if small:
        side = min(min(images[name].shape[:2]) for name in small)
        fits = side - side % max(1, multiple)  # the largest patch size the model takes that fits
        hint = (f"use --patch-size {fits} or less, or larger images" if fits >= MIN_PATCH_SIZE
                else f"the smallest is {side} px on a side, below the least patch size ({max(MIN_PATCH_SIZE, multiple)}"
                     f"{f', a multiple of {multiple}' if multiple > 1 else ''}): use larger images")
        raise DataError(f"{len(small)} {what}(s) are smaller than the patch size {size} (e.g. {small[0]})", hint=hint)


class PatchDataset(Dataset):
    """Map-style dataset indexed by patch keys; items are dicts of ``(3, p, p)`` float32 tensors.

    ``item["high"]`` is zeros and ``item["labeled"]`` False for unlabeled images.
    """

    def __init__(self, pairs: list[ImagePair], config: PatchConfig, seed: int, *, multiple: int = 1) -> None:
        """``multiple``: the model's input multiple, for the hint of a patch size too large."""
        check_patch_size({p.name: p.low for p in pairs}, config.size, "low image", multiple=multiple)
        self.pairs = pairs
        self.config = config
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs) * self.config.per_image

    def __getitem__(self, key: PatchKey) -> dict[str, torch.Tensor]:
        index, patch_id = key
        pair = self.pairs[index]
        rng = np.random.default_rng([self.seed, index, patch_id])
        low, high = random_patch(rng, self.config.size, pair.low, pair.high, augment=self.config.augment)
        # drawn after the crop and symmetry, and only when enabled, so earlier runs' patches are unchanged
        if high is not None and self.config.identity_prob > 0 and rng.random() < self.config.identity_prob:
            low = high
        elif high is not None and self.config.dim_prob > 0 and rng.random() < self.config.dim_prob:
            low = under_exposed(high, float(rng.uniform(*self.config.dim_exposure)), rng)
        low_t = to_tensor(low)
        high_t = to_tensor(high) if high is not None else torch.zeros_like(low_t)
        return {"low": low_t, "high": high_t, "labeled": torch.tensor(high is not None)}


def plan_epoch(
    labeled: list[int],
    unlabeled: list[int],
    *,
    per_image: int,
    batch_size: int,
    unlabeled_batch_size: int,
    seed: int,
    epoch: int,
) -> list[list[PatchKey]]:
    """The batches of one epoch: ``batch_size`` labeled patch keys, then ``unlabeled_batch_size`` unlabeled ones.

    The epoch visits every labeled image ``per_image`` times in a random order (an incomplete
    last batch is dropped); unlabeled patches are drawn uniformly from ``unlabeled``. Keys carry a
    patch id unique to the epoch, so epochs see fresh crops.

    Raises:
        DataError: fewer labeled patches than one batch.
    """
    rng = np.random.default_rng([seed, epoch])
    keys = [(i, epoch * per_image + k) for i in labeled for k in range(per_image)]
    if len(keys) < batch_size:
        raise DataError(f"{len(keys)} labeled patches per epoch, fewer than the batch size {batch_size}")
    order = rng.permutation(len(keys))
    batches = [[keys[j] for j in order[b : b + batch_size]] for b in range(0, len(keys) - batch_size + 1, batch_size)]
    if unlabeled and unlabeled_batch_size:
        draw = np.random.default_rng([seed, epoch, 1])
        for b, batch in enumerate(batches):
            picks = draw.integers(0, len(unlabeled), unlabeled_batch_size)
            batch.extend((unlabeled[int(i)], epoch * per_image * 1000 + b * unlabeled_batch_size + n) for n, i in enumerate(picks))
    return batches
