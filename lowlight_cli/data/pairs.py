"""Find and load low/high image pairs: LOL layout, flat layout, or synthetic."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..io import SUPPORTED_EXTENSIONS, read_image
from .synthetic import SAMPLE_PHOTOS, DarkeningModel, darken, sample_photo

SYNTHETIC = "synthetic"
DEFAULT_DATA = Path("data/LOL")


@dataclass(frozen=True)
class PairPaths:
    """A low-light image and its reference (None when the image is unlabeled)."""

    name: str
    low: Path
    high: Path | None


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of an image's pixels (``(H, W, C)`` array, any dtype): equal digests = byte-identical images."""
    return hashlib.sha256(np.ascontiguousarray(pixels)).hexdigest()


@dataclass
class ImagePair:
    """Decoded pixels: ``low`` and ``high`` ``(H, W, 3)`` uint8/uint16 RGB; ``high`` None when unlabeled.

    The pixels are never changed in place: their digests (:attr:`low_digest`, :attr:`high_digest`)
    are computed once, on first use, however many checks of a training start ask for them.
    """

    name: str
    low: np.ndarray
    high: np.ndarray | None

    @property
    def labeled(self) -> bool:
        return self.high is not None

    @functools.cached_property
    def low_digest(self) -> str:
        """:func:`pixel_digest` of ``low``."""
        return pixel_digest(self.low)

    @functools.cached_property
    def high_digest(self) -> str | None:
        """:func:`pixel_digest` of ``high``; None when unlabeled."""
        return pixel_digest(self.high) if self.high is not None else None


def named_where(folder: str | Path, source: str) -> str:
    """``(SOURCE, read from the current folder CWD)`` for a relative ``folder``, ``(SOURCE)`` otherwise:
    how a missing folder's message says where it was named (a config file's relative paths are read
    from the current folder, not the file's)."""
    relative = "" if Path(folder).expanduser().is_absolute() else f", read from the current folder {Path.cwd()}"
    return f"({source}{relative})"


def resolve_data_root(data: str | Path | None, *, source: str | None = None) -> Path | str:
    """Where the training data is: ``--data``, else ``$LOWLIGHT_DATA``, else ``./data/LOL``.

    ``source`` says where ``data`` was named (``data.root in FILE``, ``--set data.root``; default
    ``--data``), for the message when it is not there.

    Returns the path, or the string ``"synthetic"``.

    Raises:
        DataError: the folder does not exist (the message says where it was named and how to point at one).
    """
    if data is not None and str(data) == SYNTHETIC:
        return SYNTHETIC
    chosen = Path(data).expanduser() if data is not None else Path(os.environ.get("LOWLIGHT_DATA", DEFAULT_DATA)).expanduser()
    if not chosen.is_dir():
        named = (source or "--data") if data is not None else ("$LOWLIGHT_DATA" if "LOWLIGHT_DATA" in os.environ else "the default ./data/LOL")
        raise DataError(
            f"dataset folder {chosen} " + ("is a file, not a folder" if chosen.exists() else "not found") + f" {named_where(chosen, named)}",
            hint="pass --data DIR (LOL layout DIR/train/{low,high} or DIR/{low,high}), set LOWLIGHT_DATA, "
            "or use --data synthetic for a smoke run" + ("" if chosen.is_absolute() else
                                                          "; or run from the folder the relative path is meant from"),
        )
    return chosen


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS and not path.name.startswith("."):
            if path.stem in found:
                raise DataError(f"two images share the stem {path.stem!r} in {folder}",
                                hint="images are named by their file stem (low and reference pair by it): rename or remove one")
            found[path.stem] = path
    return found


def _natural_key(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def find_pairs(root: Path, split: str = "train", *, plain_folder: bool = False) -> list[PairPaths]:
    """Pair ``low`` and ``high`` images by stem under ``root/split/`` (LOL layout) or ``root/`` (flat).

    Low images without a reference are returned with ``high=None`` (unlabeled data); references
    without a low image are not used (:func:`references_without_low` lists them). ``plain_folder`` (the unpaired methods): a ``root`` without a
    ``low`` folder is itself the folder of low-light images (no references).

    Raises:
        DataError: no ``low`` folder, or no images in it.
    """
    base = root / split if (root / split / "low").is_dir() else root
    if plain_folder and not (base / "low").is_dir() and root.is_dir():
        if (base / "high").is_dir():  # half a paired layout, not a plain folder
            raise DataError(f"{base} has a high/ folder but no low/ one",
                            hint=f"put the low-light images in {base / 'low'} (references pair with them by file stem)")
        lows = _images_by_stem(root)
        if lows:
            return [PairPaths(n, lows[n], None) for n in sorted(lows, key=_natural_key)]
    lows = _images_by_stem(base / "low")
    if not lows:
        also = (f", or a folder of low-light images ({root} itself holds none; its sub-folders are not searched)"
                if plain_folder else
                f"; {root} holds images itself: a plain folder of low-light images trains only the unpaired methods "
                "(--method scl-lle or pie)" if root.is_dir() and _images_by_stem(root) else "")
        raise DataError(
            f"no low-light images in {base / 'low'}",
            hint=f"expected {root}/{split}/low and {root}/{split}/high (LOL layout) or {root}/low and {root}/high{also}",
        )
    highs = _images_by_stem(base / "high")
    return [PairPaths(n, lows[n], highs.get(n)) for n in sorted(lows, key=_natural_key)]


def references_without_low(root: Path, split: str = "train") -> list[Path]:
    """The references under the folder :func:`find_pairs` reads that no low image pairs with (by stem):
    they are not used, and a training run says so."""
    base = root / split if (root / split / "low").is_dir() else root
    lows, highs = _images_by_stem(base / "low"), _images_by_stem(base / "high")
    return [highs[n] for n in sorted(set(highs) - set(lows), key=_natural_key)]


def load_pairs(paths: list[PairPaths], on_progress: Callable[[int, int], None] | None = None) -> list[ImagePair]:
    """Decode every pair into memory (LOL's 485 training images take about 350 MB).

    Raises:
        ImageReadError: an unreadable or damaged file (named); DataError: a pair's sizes differ.
    """
    pairs = []
    for i, p in enumerate(paths):
        low = read_image(p.low, strict=True).rgb
        high = read_image(p.high, strict=True).rgb if p.high is not None else None
        if high is not None and high.shape != low.shape:
            raise DataError(f"{p.low} and {p.high} differ in size: {low.shape[:2]} vs {high.shape[:2]}",
                            hint="a low image and its reference are the same shot at the same size; fix or remove this pair")
        pairs.append(ImagePair(p.name, low, high))
        if on_progress:
            on_progress(i + 1, len(paths))
    return pairs


def synthetic_pairs(count: int = 12, size: tuple[int, int] = (192, 256), seed: int = 0) -> list[ImagePair]:
    """A small paired set from scikit-image's sample photos: random crops, darkened with noise.

    Each pair: a ``size`` (H, W) crop of a sample photo (uint8) as the reference, and its darkened
    version (exposure drawn in [0.02, 0.1]) as the low image. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(count):
        photo = sample_photo(SAMPLE_PHOTOS[i % len(SAMPLE_PHOTOS)])
        h, w = size
        scale = max(h / photo.shape[0], w / photo.shape[1], 1.0)
        if scale > 1.0:
            photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        top = int(rng.integers(0, photo.shape[0] - h + 1))
        left = int(rng.integers(0, photo.shape[1] - w + 1))
        high = np.ascontiguousarray(photo[top : top + h, left : left + w])
        model = DarkeningModel(exposure=float(rng.uniform(0.02, 0.1)))
        low = darken(high.astype(np.float32) / 255.0, model, rng)
        pairs.append(ImagePair(f"synthetic-{i:03d}", np.round(low * 255).astype(np.uint8), high))
    return pairs
