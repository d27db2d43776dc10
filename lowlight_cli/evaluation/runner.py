"""Score a pairing, optionally enhancing each input first with the same engine as ``enhance``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..errors import ImageError, MetricError, ModelOutputError
from ..inference import Enhancer
from ..io import read_image, to_float
from ..metrics import quantize
from .pairing import ImagePair, Pairing
from .scoring import ImageScores, Scorer


def score_pair(scorer: Scorer, pair: ImagePair, enhancer: Enhancer | None = None) -> ImageScores:
    """Score one pair; with ``enhancer`` the "prediction" file is the input, enhanced first.

    The enhanced output is rounded to the input's bit depth before scoring, i.e. it is scored
    as it would be saved.
    """
    image = read_image(pair.prediction)
    prediction = to_float(image.rgb)
    if enhancer is not None:
        levels = 255 if image.bit_depth == 8 else 65535
        prediction = quantize(torch.from_numpy(enhancer.enhance(prediction)), levels).numpy()
    reference = to_float(read_image(pair.reference).rgb) if pair.reference is not None else None
    return scorer.score(pair.name, prediction.astype(np.float64), reference, labels=(str(pair.prediction), str(pair.reference)))


def score_pairing(
    scorer: Scorer,
    pairing: Pairing,
    enhancer: Enhancer | None = None,
    on_pair: Callable[[ImagePair], None] | None = None,
) -> Iterator[ImageScores]:
    """Yield the scores of every pair in order; ``on_pair`` is called before each (for progress).

    A pair that cannot be scored (an unreadable file, an image too small for a metric, unusable
    model output) yields :class:`ImageScores` with ``error`` set, and the run goes on; other
    errors (e.g. a size mismatch, which means the folders do not correspond) propagate.
    """
    for pair in pairing.pairs:
        if on_pair:
            on_pair(pair)
        try:
            scores = score_pair(scorer, pair, enhancer)
        except ImageError as exc:  # names its file
            scores = ImageScores(pair.name, {}, error=str(exc))
        except (MetricError, ModelOutputError) as exc:
            scores = ImageScores(pair.name, {}, error=f"{pair.prediction}: {exc}")
        yield scores
