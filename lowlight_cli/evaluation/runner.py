"""Score a pairing, optionally enhancing each input first with the same engine as ``enhance``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImageError, MetricError, ModelOutputError, SizeMismatchError
from ..inference import Enhancer
from ..io import read_image, to_float
from .pairing import ImagePair, Pairing, pair_by_stem
from .protocol import Protocol
from .scoring import ImageScores, Scorer
from .summary import summarize


def score_pair(scorer: Scorer, pair: ImagePair, enhancer: Enhancer | None = None) -> ImageScores:
    """Score one pair; with ``enhancer`` the "prediction" file is the input, enhanced first.

    The enhanced output is what ``lowlight enhance`` would save with the same settings (the
    enhancer's integer path, :meth:`~lowlight_cli.inference.Enhancer.enhance_image`: rounded to
    the input's bit depth, a gray photo kept gray, transparent pixels and a truncated file's
    filler not steering the rest).
    """
    image = read_image(pair.prediction)
    damaged = [f"{pair.prediction}: {image.damage_note}"] if image.damage_note else []
    damaged += _transparency_note(pair.prediction, image, enhanced=enhancer is not None)
    if enhancer is None:
        prediction = to_float(image.rgb, np.float64)  # scored in float64: exact k / 255 and k / 65535
    else:
        saved = enhancer.enhance_image(image)  # as lowlight enhance runs it
        prediction = to_float(saved, np.float64)  # the codes it would be saved as, exactly
    reference, reference_gray = None, False
    if pair.reference is not None:
        reference_image = read_image(pair.reference)
        reference_gray = reference_image.gray
        if reference_image.damage_note:
            damaged.append(f"{pair.reference}: {reference_image.damage_note}")
        damaged += _transparency_note(pair.reference, reference_image)
        reference = to_float(reference_image.rgb, np.float64)
    scores = scorer.score(pair.name, prediction, reference, labels=(str(pair.prediction), str(pair.reference)),
                          one_channel=(image.gray, reference_gray))  # enhancing keeps a gray photo gray
    scores.warnings[:0] = damaged
    return scores


def _transparency_note(path: Path, image: object, *, enhanced: bool = False) -> list[str]:
    """A warning for an image with (partly) transparent pixels: scores see its colour channels only
    (``enhanced``: an input enhanced first, whose fully transparent pixels come out as ``enhance``
    saves them, in the colour of the nearest visible pixel)."""
    alpha = getattr(image, "alpha", None)
    if alpha is None or bool((alpha == np.iinfo(alpha.dtype).max).all()):
        return []
    share = float((alpha < np.iinfo(alpha.dtype).max).mean())
    filled = "; its fully transparent pixels scored as lowlight enhance saves them (the colour of the nearest visible pixel)"
    return [f"{path}: {100 * share:.1f}% of its pixels are (partly) transparent; scored on its colour channels, alpha ignored"
            + (filled if enhanced and bool((alpha == 0).any()) else "")]


def score_pairing(
    scorer: Scorer,
    pairing: Pairing,
    enhancer: Enhancer | None = None,
    on_pair: Callable[[ImagePair], None] | None = None,
) -> Iterator[ImageScores]:
    """Yield the scores of every pair in order; ``on_pair`` is called before each (for progress).

    A pair that cannot be scored (an unreadable file, images of different sizes, an image too small
    for a metric, unusable model output) yields :class:`ImageScores` with ``error`` set, and the run
    goes on; other errors propagate.
    """
    for pair in pairing.pairs:
        if on_pair:
            on_pair(pair)
        try:
            scores = score_pair(scorer, pair, enhancer)
        except ImageError as exc:  # names its file
            scores = ImageScores(pair.name, {}, error=str(exc))
        except SizeMismatchError as exc:  # names both files
            scores = ImageScores(pair.name, {}, error=str(exc))
        except (MetricError, ModelOutputError) as exc:
            scores = ImageScores(pair.name, {}, error=f"{pair.prediction}: {exc}")
        yield scores


@dataclass(frozen=True)
class SetScores:
    """Mean scores over a whole test set (every pair scored), with the protocol that produced them."""

    means: dict[str, float]
    images: int
    protocol: str
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)  # pair name -> metric -> score


def score_test_set(
    low: Path,
    high: Path,
    enhancer: Enhancer | None,
    metrics: tuple[str, ...] = ("psnr", "ssim", "niqe"),
    *,
    names: Collection[str] | None = None,
) -> SetScores:
    """Score the inputs of ``low`` (enhanced first with ``enhancer``, or as they are) against ``high``.

    For statements about a whole test set (model cards, tables): every pair must score.
    ``names``: score only the pairs of these names (a check of recorded per-image scores on part of
    the set); every name must be a pair of the set.

    Raises:
        MetricError: some pair could not be scored (the message counts them and names one), or a
            name in ``names`` is not a pair of the set.
        ValueError: ``names`` is empty or a single string.
    """
    protocol = Protocol(metrics)
    pairing = pair_by_stem(low, high)
    if names is not None:
        if isinstance(names, str) or not names:
            raise ValueError(f"names takes a collection of one pair name or more, got {names!r}")
        names = set(names)
        missing = sorted(names - {pair.name for pair in pairing.pairs})
        if missing:
            raise MetricError(f"{low} has no pair named {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        pairing = Pairing([pair for pair in pairing.pairs if pair.name in names])
    scores = list(score_pairing(Scorer(protocol), pairing, enhancer))
    failed = [s.error for s in scores if s.error is not None]
    if failed:
        raise MetricError(f"{len(failed)} test image(s) could not be scored, e.g. {failed[0]}")
    summary = summarize(scores, protocol.metrics)
    return SetScores({name: summary[name].mean for name in protocol.metrics}, len(scores), protocol.describe(),
                     {s.name: dict(s.values) for s in scores})
