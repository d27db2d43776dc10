"""How LOL-v1 pairs are matched to each other: the thresholds and measures the LOL scripts share.

Light on purpose (numpy, OpenCV and the library's PSNR): ``lol_training_fit.py`` reads a few CSV
files and should not load the training machinery that ``memorisation_probe.py`` needs.

- ``layout``: an exposure-invariant thumbnail of a low image; two rooms are one when the cosine
  similarity of their layouts reaches ``SAME_ROOM``.
- ``SAME_CAPTURE_DB``: two low images this close (PSNR) are a repeat of one capture.
- ``SAME_REFERENCE_DB``: two references this close (PSNR) are one reference.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from lowlight_cli.metrics import psnr

THUMB = (32, 24)  # width, height
SAME_ROOM = 0.9  # layout similarity from which two LOL low images are the same room (lol_neighbours.py)
SAME_REFERENCE_DB = 25.0  # two references this close (PSNR) count as one reference
SAME_CAPTURE_DB = 35.0  # two low images this close (PSNR) count as a repeat of one capture


def layout(image: np.ndarray) -> np.ndarray:
    """Exposure-invariant layout of an ``(H, W, 3)`` uint8 image: the log of a 32x24 area thumbnail,
    minus its mean (a global gain drops out), as a unit vector."""
    thumb = cv2.resize(image.astype(np.float32) / 255, THUMB, interpolation=cv2.INTER_AREA)
    log = np.log(thumb + 0.01)
    log -= log.mean()
    return (log / (np.linalg.norm(log) + 1e-9)).ravel()


def nearest(query: np.ndarray, library: np.ndarray) -> tuple[int, float]:
    """Index and cosine similarity of the row of ``library`` (unit vectors) nearest ``query``."""
    similarity = library @ query
    index = int(np.argmax(similarity))
    return index, float(similarity[index])


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two ``(H, W, 3)`` uint8 images (``lowlight_cli.metrics.psnr``); inf where they are equal."""
    tensor = lambda image: torch.from_numpy(image).permute(2, 0, 1)[None].double()  # noqa: E731
    return float(psnr(tensor(a), tensor(b), data_range=255.0)[0])
