"""Seeded labeled / unlabeled / validation splits, written to the run folder so runs reproduce."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .pairs import ImagePair


@dataclass(frozen=True)
class Split:
    """Image names by role.

    Attributes:
        labeled: pairs whose reference is used.
        unlabeled: low images used without reference (pairs that lost theirs, images that had none).
        validation: held-out pairs from the training set, never trained on.
    """

    labeled: tuple[str, ...]
    unlabeled: tuple[str, ...]
    validation: tuple[str, ...]
    seed: int
    labeled_frac: float

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Split":
        raw = json.loads(path.read_text())
        return cls(tuple(raw["labeled"]), tuple(raw["unlabeled"]), tuple(raw["validation"]), raw["seed"], raw["labeled_frac"])


def has_validation(references: int, *, validation_required: bool = True) -> bool:
    """Whether :func:`make_split` holds out validation pairs from data with ``references`` pairs with
    references (without ``validation_required``, data with fewer than 2 has none; with it, such
    data is refused). Tells it from the files found, before any image is decoded."""
    return validation_required or references >= 2


def validation_cap(references: int) -> int:
    """The most pairs ``data.val_count`` may hold out of ``references`` pairs with references: a
    fifth (at least one), so that a small set keeps 80% of its pairs for training."""
    return max(1, references // 5)


HOLD_OUTS = ("scene", "pair")


def labeled_wanted(labeled_frac: float, images: int) -> int:
    """How many labeled pairs ``labeled_frac`` of ``images`` asks for: ``ceil(labeled_frac * images)``
    (10% of LOL's 485 images = 49); :func:`make_split` labels as many as there are, at most."""
    return math.ceil(labeled_frac * images - 1e-9)


def make_split(pairs: list[ImagePair], *, labeled_frac: float, val_count: int, seed: int,
               validation_required: bool = True, hold_out: str = "scene") -> Split:
    """Split training pairs into validation, labeled and unlabeled sets.

    ``val_count`` pairs with references are held out first (at most a fifth of them), together with
    every pair whose reference is pixel-identical to a held-out one: LOL shoots some scenes at several
    exposures with one reference, and a scene must not be both validated and trained on (the
    unlabeled images of pairs whose references are absent cannot be checked). ``hold_out="pair"``
    holds out the drawn pairs alone and trains on the other exposures of their scenes: validation
    then measures what LOL-v1's test set does, the recall of scenes trained on (13 of its 15 low
    images repeat a training capture; docs/crnet-training.md). The labeled set then has
    ``ceil(labeled_frac * len(pairs))`` pairs (10% of LOL's 485 images = 49), drawn from the
    remaining pairs with references (all of them when that many do not exist). Every other
    training image is unlabeled. Draws use ``numpy.random.default_rng(seed)``.

    With ``validation_required`` False (the unpaired methods, which need no references to train),
    data with fewer than 2 pairs with references gives a split without validation: every image
    is unlabeled.

    Raises:
        ConfigError: ``labeled_frac`` outside (0, 1], or an unknown ``hold_out``.
        DataError: too few pairs with references.
    """
    if not 0.0 < labeled_frac <= 1.0:
        raise ConfigError(f"labeled fraction must be in (0, 1], got {labeled_frac}")
    if hold_out not in HOLD_OUTS:
        raise ConfigError(f"unknown hold-out {hold_out!r}", hint=f"one of: {', '.join(HOLD_OUTS)}")
    rng = np.random.default_rng(seed)
    with_ref = [p.name for p in pairs if p.labeled]
    if not has_validation(len(with_ref), validation_required=validation_required):
        return Split((), tuple(p.name for p in pairs), (), seed, labeled_frac)
    if len(with_ref) < 2:
        raise DataError(f"need at least 2 pairs with references (training + validation), found {len(with_ref)}",
                        hint="references are paired with low images by file stem (low/1.png with high/1.png); "
                             "the paired methods validate on held-out pairs (the unpaired ones train without)")
    val_count = min(val_count, validation_cap(len(with_ref)))
    order = [with_ref[i] for i in rng.permutation(len(with_ref))]
    scene = {p.name: (p.high_digest if hold_out == "scene" else p.name) for p in pairs if p.labeled}
    held_scenes = {scene[n] for n in order[:val_count]}
    validation = sorted(n for n in order if scene[n] in held_scenes)
    candidates = [n for n in order if scene[n] not in held_scenes]
    wanted = min(len(candidates), labeled_wanted(labeled_frac, len(pairs)))
    labeled = set(candidates[:wanted])
    held = set(validation)
    unlabeled = [p.name for p in pairs if p.name not in labeled and p.name not in held]
    return Split(tuple(p.name for p in pairs if p.name in labeled), tuple(unlabeled), tuple(validation), seed, labeled_frac)
