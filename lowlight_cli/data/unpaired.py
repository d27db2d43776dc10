"""Unpaired training data (SCL-LLE, PIE): low-light inputs, normal-light positives, optional negatives.

Each patch key ``(image_index, patch_id)`` gives a patch of the low-light input, a patch of a
positive drawn at random from a pool of normal-light images, and, when a folder of negatives is
given, a patch of a random negative. The positive is never the input's own reference, nor any
image byte-identical to it: LOL shoots several exposures of a scene with one reference, so one
reference file can stand for many inputs. Every draw is seeded by ``(seed, image_index,
patch_id)``, like :class:`~lowlight_cli.data.patches.PatchDataset`, so a resumed run loads the
same patches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import SUPPORTED_EXTENSIONS, read_image
from ..io.discovery import scan_inputs
from .pairs import named_where
from .pairs import ImagePair, pixel_digest
from .patches import PatchConfig, PatchKey, check_patch_size, random_patch, to_tensor

POSITIVE_STREAM, NEGATIVE_STREAM = 1, 2  # the draws of a positive and a negative, apart from the input's crop


@dataclass(frozen=True)
class ImagePool:
    """Distinct images (no two byte-identical), their :func:`pixel_digest` and names (file paths, for messages)."""

    images: tuple[np.ndarray, ...]
    digests: tuple[str, ...]
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return self.names[index] if index < len(self.names) else str(index)


def image_pool(images: Iterable[np.ndarray] | Iterable[tuple[str, np.ndarray]], withheld: Iterable[str] = (),
               digests: Iterable[str] | None = None) -> ImagePool:
    """Keep the first of byte-identical images, and none byte-identical to a ``withheld`` digest.

    Args:
        images: ``(H, W, 3)`` arrays, or ``(name, array)`` pairs (as :func:`read_image_folder` gives).
        withheld: digests of images that must not be drawn (e.g. the validation references).
        digests: the images' :func:`pixel_digest`, in their order, where known already (e.g.
            :attr:`ImagePair.high_digest`); computed here otherwise.
    """
    seen = set(withheld)
    kept, kept_digests, names = [], [], []
    known = iter(digests) if digests is not None else None
    for item in images:
        name, pixels = item if isinstance(item, tuple) else (str(len(kept)), item)
        digest = next(known) if known is not None else pixel_digest(pixels)
        if digest not in seen:
            seen.add(digest)
            kept.append(pixels)
            kept_digests.append(digest)
            names.append(name)
    return ImagePool(tuple(kept), tuple(kept_digests), tuple(names))


@dataclass(frozen=True)
class ImageFolder:
    """The image files under a folder (recursively, sorted by path), found before any is decoded.

    Attributes:
        files: the image files.
        unfollowed_links: names of the symbolic links to folders under it, which are not searched.
    """

    files: tuple[Path, ...]
    unfollowed_links: tuple[str, ...] = ()


def scan_image_folder(folder: str | Path, what: str, *, source: str | None = None) -> ImageFolder:
    """The images under ``folder`` (one listing; read them with :func:`read_image_folder`).

    ``source`` says where the folder was named (``data.positives in FILE``, ``--set ...``; default
    the option ``--WHAT``).

    Raises:
        DataError: the folder is empty as a value, does not exist, is a file, or holds no images
            (``what`` names the option; symbolic links to folders, which are not followed, are named).
    """
    option = f"--{what}"
    where = named_where(folder, source or option)
    if not str(folder).strip():
        raise DataError(f"{option} is empty", hint=f"{option} takes a folder of images; leave it out to use the default")
    path = Path(folder).expanduser()
    if path.is_file():
        raise DataError(f"{what} folder {folder} is a file, not a folder {where}", hint=f"{option} takes a folder of images")
    if not path.is_dir():
        raise DataError(f"{what} folder {folder} not found {where}", hint=f"{option} takes a folder of images")
    found = scan_inputs([path], recursive=True)
    links = tuple(s.path.name for s in found.skipped if "symbolic link to a folder" in s.reason)
    if not found.files:
        why = f" (symbolic links to folders are not followed: {', '.join(links[:3])})" if links else ""
        raise DataError(f"no images in the {what} folder {folder}{why}",
                        hint=f"{option} takes a folder of images ({', '.join(sorted(SUPPORTED_EXTENSIONS))}), searched recursively")
    return ImageFolder(tuple(item.path for item in found.files), links)


def read_image_folder(folder: ImageFolder) -> list[tuple[str, np.ndarray]]:
    """Decode every image of a scanned folder (sorted by path) to ``(name, (H, W, 3) RGB)``.

    Raises:
        ImageReadError: an unreadable or damaged file (named).
    """
    return [(str(path), read_image(path, strict=True).rgb) for path in folder.files]


class UnpairedPatchDataset(Dataset):
    """Map-style dataset of unpaired patches, indexed by patch keys.

    Items: ``{"low": (3, p, p), "positive": (3, p, p)}`` float32 in ``[0, 1]``, plus
    ``"negative"`` when ``negatives`` is given.

    Args:
        inputs: the low-light images; ``high`` is the input's own reference when known (only
            used to keep it, and its byte-identical copies, out of the input's positives).
        positives: normal-light images (see :func:`image_pool`).
        negatives: badly exposed images, or None (the step then makes its own).
        config: patch size and augmentation (``per_image`` is the epoch plan's).
        seed: seeds every draw, with the patch key.

    Raises:
        DataError: an image smaller than the patch size, or an input with no positive it may use.
    """

    def __init__(
        self,
        inputs: list[ImagePair],
        positives: ImagePool,
        negatives: ImagePool | None,
        config: PatchConfig,
        seed: int,
        *,
        multiple: int = 1,
    ) -> None:
        check_patch_size({p.name: p.low for p in inputs}, config.size, "low image", multiple=multiple)
        check_patch_size({positives.name(i): image for i, image in enumerate(positives.images)}, config.size, "positive",
                         multiple=multiple)
        if negatives is not None:
            check_patch_size({negatives.name(i): image for i, image in enumerate(negatives.images)}, config.size, "negative",
                             multiple=multiple)
        where = {digest: j for j, digest in enumerate(positives.digests)}
        # the one positive (pool images are distinct) an input must never get: its own reference
        self.excluded = [where.get(p.high_digest) for p in inputs]  # None: no reference, or none in the pool
        for pair, excluded in zip(inputs, self.excluded):
            if len(positives) - (excluded is not None) < 1:
                left = f"the only normal-light image left to draw is its own reference ({positives.name(excluded)})" \
                    if excluded is not None else "there are no normal-light images to draw"
                raise DataError(f"no positive for the input {pair.name}: {left}",
                                hint="add normal-light images to the positives (--positives DIR): an input is never "
                                     "given its own reference")
        self.inputs, self.positives, self.negatives = inputs, positives, negatives
        self.config, self.seed = config, seed

    def __len__(self) -> int:
        return len(self.inputs) * self.config.per_image

    def positive_index(self, index: int, patch_id: int) -> int:
        """Which positive the patch key draws: uniform over the pool without the input's own reference."""
        rng = np.random.default_rng([self.seed, index, patch_id, POSITIVE_STREAM])
        return self._positive_index(index, rng)

    def _positive_index(self, index: int, rng: np.random.Generator) -> int:
        excluded = self.excluded[index]
        j = int(rng.integers(0, len(self.positives) - (excluded is not None)))
        return j + 1 if excluded is not None and j >= excluded else j

    def __getitem__(self, key: PatchKey) -> dict[str, torch.Tensor]:
        index, patch_id = key
        size, augment = self.config.size, self.config.augment
        low, _ = random_patch(np.random.default_rng([self.seed, index, patch_id]), size, self.inputs[index].low, augment=augment)
        rng = np.random.default_rng([self.seed, index, patch_id, POSITIVE_STREAM])
        positive = self.positives.images[self._positive_index(index, rng)]
        item = {"low": to_tensor(low), "positive": to_tensor(random_patch(rng, size, positive, augment=augment)[0])}
        if self.negatives is not None:
            rng = np.random.default_rng([self.seed, index, patch_id, NEGATIVE_STREAM])
            negative = self.negatives.images[int(rng.integers(0, len(self.negatives)))]
            item["negative"] = to_tensor(random_patch(rng, size, negative, augment=augment)[0])
        return item
