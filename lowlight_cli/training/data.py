"""What a method trains on: the patch dataset and the images each epoch batches, from the split.

The fit loop asks :func:`training_data` once per run; the method's :attr:`~.methods.Method.data`
decides the composition:

- ``paired``: patches of the labeled pairs (low + reference);
- ``paired+unlabeled``: the same, plus patches of unlabeled images stripped of any reference;
- ``unpaired``: patches of every training low image, each with a normal-light positive drawn at
  random (never its own reference, see :mod:`lowlight_cli.data.unpaired`), and negatives from
  ``data.negatives`` when given.

Validation is the same for all: PSNR on the held-out pairs of the split (the unpaired methods
also train on data with fewer than 2 references, without validation).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from ..data.pairs import ImagePair
from ..data.patches import PatchConfig, PatchDataset
from ..data.splits import Split
from ..data.unpaired import ImageFolder, UnpairedPatchDataset, image_pool, read_image_folder, scan_image_folder
from ..errors import DataError
from .config import TrainConfig
from .methods import Method


@dataclass
class TrainingData:
    """A run's data.

    Attributes:
        dataset: map-style dataset indexed by patch keys.
        batched: dataset image indices whose patches fill each epoch's batches (``data.batch_size``).
        extra: image indices drawn for ``data.unlabeled_batch_size`` more patches per batch (MCMT), or empty.
        validation: held-out pairs.
        summary: what the run sees, in one line, for the log.
    """

    dataset: Dataset
    batched: list[int]
    extra: list[int]
    validation: list[ImagePair]
    summary: str


DATA_RECORD = "data.json"  # in the run folder: what the run's images are, so that a resume can tell


def data_record(pairs: list[ImagePair], data: TrainingData, split: Split) -> dict:
    """The pixel digests of a run's images (low, and the reference where the split uses it: labeled
    and validation pairs; by name) and of its positives and negatives pools as ``[file, digest]``
    in their order: a resume must see the same images, wherever they now are (the files' names
    only make the messages). ``with_reference`` names the images that had a reference (see
    :func:`references_added`)."""
    referenced = set(split.labeled) | set(split.validation)
    record: dict = {"images": {p.name: [p.low_digest, p.high_digest if p.name in referenced else None] for p in pairs},
                    # which images had a reference: one added later to an image trained without is then said
                    "with_reference": sorted(p.name for p in pairs if p.labeled)}
    for pool in ("positives", "negatives"):
        found = getattr(data.dataset, pool, None)
        if found is not None:
            record[pool] = [[found.name(i), digest] for i, digest in enumerate(found.digests)]
    return record


def references_added(saved: dict, pairs: list[ImagePair], split: Split) -> list[str]:
    """Images the run trains without a reference (``split.unlabeled``) that have one now but had
    none when it started: the run keeps its split, so such a reference is not used. Empty for a
    record written before ``with_reference`` (it cannot tell)."""
    before = saved.get("with_reference")
    if not isinstance(before, list):
        return []
    now = {p.name for p in pairs if p.labeled}
    return sorted(name for name in split.unlabeled if name in now and name not in set(before))


def record_difference(saved: dict, now: dict) -> str | None:
    """What differs between a run's saved :func:`data_record` and the data as read now (None: nothing).

    Raises:
        ValueError: ``saved`` is not a data record (a damaged file).
    """
    if not isinstance(saved, dict) or not isinstance(saved.get("images", {}), dict):
        raise ValueError("not a data record")
    saved_images, images = saved.get("images", {}), now.get("images", {})
    changed = [name for name, digests in saved_images.items() if name in images and images[name] != digests]
    if changed:
        name = changed[0]
        part = "its reference" if images[name][0] == saved_images[name][0] else "the low-light image"
        return f"{len(changed)} image(s) changed since the run started (e.g. {name}: {part})"
    for pool in ("positives", "negatives"):
        before = [digest for _, digest in saved.get(pool) or []]
        entries = now.get(pool) or []
        after = [digest for _, digest in entries]
        if before == after:
            continue
        if sorted(before) == sorted(after):  # the draws follow the pool's order (sorted by path)
            return f"the {pool} are the same images in another order (renamed files?)"
        new = [name for name, digest in entries if digest not in set(before)]
        gone = len(set(before) - set(after))
        example = f"e.g. {new[0]} is new or changed" if new else f"{gone} image(s) are gone"
        return f"the {pool} changed since the run started ({len(before)} images then, {len(after)} now; {example})"
    return None


def training_data(method: Method, config: TrainConfig, pairs: list[ImagePair], split: Split, *,
                  legacy_pools: bool = False, folders: dict[str, ImageFolder] | None = None) -> TrainingData:
    """The dataset and epoch composition of ``method`` over ``pairs`` split by ``split``.

    ``legacy_pools``: the positives and negatives pools as runs made before ``data.json`` drew
    them (only validation references withheld, from the positives alone), so that such a run
    resumes on the same pools.

    ``folders``: ``data.positives`` and ``data.negatives`` as already scanned (keys ``positives``,
    ``negatives``; see :func:`~lowlight_cli.data.unpaired.scan_image_folder`); scanned here otherwise.

    Raises:
        DataError: images smaller than the patch size, unreadable or empty ``data.positives`` /
            ``data.negatives`` folders, an input without any allowed positive.
    """
    d = config.data
    by_name = {p.name: p for p in pairs}
    validation = [by_name[n] for n in split.validation]
    patches = PatchConfig(d.patch_size, d.patches_per_image, d.augment, d.identity_prob, d.dim_prob,
                          tuple(d.dim_exposure))
    if method.unpaired:
        return _unpaired(config, [by_name[n] for n in split.labeled + split.unlabeled], validation, patches, legacy_pools,
                         folders or {})
    # labeled pairs first, then unlabeled images stripped of any reference they had (only when drawn:
    # a supervised run does not size-check or patch images it never trains on)
    draws_unlabeled = method.uses_unlabeled and d.unlabeled_batch_size > 0
    train_pairs = [by_name[n] for n in split.labeled] + [ImagePair(n, by_name[n].low, None) for n in split.unlabeled
                                                         if draws_unlabeled]
    labeled = list(range(len(split.labeled)))
    unlabeled = list(range(len(split.labeled), len(train_pairs)))
    used = (" (used)" if draws_unlabeled else " (not used: data.unlabeled_batch_size is 0)" if method.uses_unlabeled
            else " (not used: supervised)")
    summary = f"split: {len(split.labeled)} labeled, {len(split.unlabeled)} unlabeled{used}, {len(validation)} validation"
    dataset = PatchDataset(train_pairs, patches, config.run.seed, multiple=config.patch_multiple)
    return TrainingData(dataset, labeled, unlabeled, validation, summary)


def _unpaired(config: TrainConfig, inputs: list[ImagePair], validation: list[ImagePair], patches: PatchConfig,
              legacy_pools: bool, folders: dict[str, ImageFolder]) -> TrainingData:
    d = config.data
    scanned = {what: folders.get(what) or scan_image_folder(folder, what)
               for what, folder in (("positives", d.positives), ("negatives", d.negatives)) if folder}
    # a validated scene is never a positive nor a negative: neither its reference nor its low image
    withheld = [p.high_digest for p in validation] + ([] if legacy_pools else [p.low_digest for p in validation])
    if d.positives:
        read = read_image_folder(scanned["positives"])
        positives = image_pool(read, withheld)
        source = f"{d.positives}"
        if not len(positives):
            raise DataError(f"every image of the positives folder {d.positives} ({len(read)}) is withheld: a validation "
                            "pair's reference or low image, so that no validated scene is trained on",
                            hint="add other normal-light images to --positives")
        lows = {p.low_digest for p in inputs}
        as_input = [name for name, digest in zip(positives.names, positives.digests) if digest in lows]
        if as_input:
            raise DataError(f"{len(as_input)} of the positives are low-light inputs of this run (e.g. {as_input[0]})",
                            hint="--positives takes normal-light images, not the folder of the inputs")
    else:
        referenced = [p for p in inputs if p.high is not None]
        positives = image_pool([(f"the reference of {p.name}", p.high) for p in referenced], withheld,
                               digests=[p.high_digest for p in referenced])
        source = "the references of the training pairs"
        if not len(positives):
            raise DataError("no normal-light positives: the training images have no references"
                            + (" outside the validation pairs" if validation else ""),
                            hint="pass --positives DIR, a folder of well-exposed photos")
    negatives = image_pool(read_image_folder(scanned["negatives"]), () if legacy_pools else withheld) if d.negatives else None
    if negatives is not None:
        if not len(negatives):
            raise DataError(f"every image of the negatives folder {d.negatives} is withheld: a validation pair's "
                            "reference or low image",
                            hint="add badly exposed images to --negatives, or leave it out to make negatives with curves")
        drawn = set(positives.digests)
        both = [name for name, digest in zip(negatives.names, negatives.digests) if digest in drawn]
        if both:
            raise DataError(f"{len(both)} image(s) are both positives and negatives (e.g. {both[0]})",
                            hint="--negatives takes badly exposed images, --positives well-exposed ones")
    unfollowed = [f"{what} {', '.join(found.unfollowed_links[:3])}" for what, found in scanned.items() if found.unfollowed_links]
    dataset = UnpairedPatchDataset(inputs, positives, negatives, patches, config.run.seed, multiple=config.patch_multiple)
    own = sum(e is not None for e in dataset.excluded)
    made = f"{len(negatives)} from {d.negatives}" if negatives is not None else "made by the method with curves"
    checked = (f"{len(validation)} held-out pairs for validation" if validation
               else "no validation (fewer than 2 references): the final weights are "
               + ("final/ (the EMA teacher; last/ holds the student)" if config.export_weights == "teacher" else "last/"))
    summary = (f"unpaired: {len(inputs)} low-light inputs, {len(positives)} distinct normal-light positives from {source} "
               f"drawn at random ({own} inputs have their own reference among them, never drawn for them), "
               f"negatives {made}; {checked}"
               + (f"; symbolic links to folders not followed: {'; '.join(unfollowed)}" if unfollowed else ""))
    return TrainingData(dataset, list(range(len(inputs))), [], validation, summary)
