"""The one fit loop: data, model, optimiser, schedule, steps, validation, checkpoints, resume.

``Trainer(config, run_dir).fit(on_event)`` trains until ``optim.epochs`` or ``optim.max_steps``;
``resume=True`` continues exactly from ``run_dir/last``. Under torchrun it runs DDP; only rank 0
writes files. Ctrl-C saves a resumable state before the KeyboardInterrupt propagates.

What is trained is the configured method's (:mod:`.methods`): it decides the data
(:func:`.data.training_data`), whether an EMA teacher is kept, and builds the step object the loop
calls; the step may own frozen networks, which are never saved with the model, and the model may
run frozen networks of its own (SKF's segmentation network), which get their trained weights here.

A step may also own trainable state beside the model (SKF's discriminator and its optimiser). It
then has ``after_step()``, which the loop calls after every optimiser step of the model (the step
updates its own state there; interrupts are held meanwhile), optionally ``before_update()``, called
before the held section (gradients of its own, whose all-reduce under torchrun must stay
interruptible), and ``state_dict()`` / ``load_state_dict()``: the loop saves that
state with the run's resumable state (``last/train_state.pt``, key ``step``) and restores it on
resume, so resume stays exact for it too.
"""

from __future__ import annotations

import json
import os
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .. import __version__
from ..data.pairs import (SYNTHETIC, ImagePair, PairPaths, find_pairs, load_pairs, references_without_low, resolve_data_root,
                          synthetic_pairs)
from ..data.patches import plan_epoch
from ..data.splits import Split, has_validation, labeled_wanted, make_split, validation_cap
from ..data.unpaired import scan_image_folder
from ..errors import CheckpointError, ConfigError, DataError, TrainingError, UsageError, WeightsError
from ..hub import is_hub_ref, resolve_weights
from ..inference.compilation import check_compile_toolchain
from ..inference.precision import resolve_precision
from ..models import MODELS, load_frozen_networks, save_checkpoint
from ..models.checkpoint import atomic_write_bytes, load_state_dict_file, load_weights_strict, read_config
from . import distributed
from .config import DATA_FOLDER_OPTIONS, DataSection, TrainConfig, save_config
from .data import DATA_RECORD, data_record, record_difference, references_added, training_data
from .ema import EMA
from ..interrupts import deferred_interrupts
from .events import InfoEvent, PaceEvent, PlanEvent, StepEvent, TickEvent, ValidationEvent
from .logging import RunLog
from .methods import METHODS, StepContext, TrainingStep
from .state import (EMA_NAME, Progress, find_last, load_rank_rng, load_run_state, progress_dict, rng_state, save_rank_rng,
                    save_run_state, set_rng_state)
from .steps import StagesForward, training_forwards
from .steps import SupervisedStep  # noqa: F401 - crnet's step, kept reachable here: tests interrupt runs through it
from .validation import check_val_every, check_validation_sizes, validate

EventFn = Callable[[object], None]
PACE_STEPS = 3  # steps timed, after the first, for the PaceEvent
MIN_LOSS_SCALE = 1e-4  # fp16: the GradScaler halves its scale at each skipped step; this far down (30 skips in a row from 65536), nothing is learning


def gradient_norm(model: torch.nn.Module) -> torch.Tensor:
    """The total 2-norm of the model's gradients, computed without touching them (the check
    before each optimiser step when no clipping computes it anyway)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def trained_at_all(run_dir: Path) -> bool:
    """Whether a run folder records any training: a checkpoint, or a step in its log."""
    if any((run_dir / name).exists() for name in ("last", "last.old", "best", "final")):
        return True
    log = run_dir / "log.jsonl"
    return log.is_file() and '"kind": "step"' in log.read_text(errors="replace")


def _a_few(names: list) -> str:
    """``a, b, c and 4 more``: the first three of ``names`` for a message, and how many others."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(str(n) for n in names[:3]) + more


class Trainer:
    """Trains one model as ``config`` says, writing to ``run_dir``.

    Args:
        config: a :class:`TrainConfig` (validated here; :func:`build_config` gives one).
        run_dir: run folder (config, split, logs, ``last/`` and ``best/`` checkpoints).
        resume: continue from ``run_dir/last`` (same split, RNG, optimiser state).

    Like a training script, it seeds torch's global random generator (``run.seed``, or the resumed
    run's saved state) and leaves it where training left it.

    Raises:
        UsageError: ``run_dir`` already holds a run (its ``last/``) and ``resume`` is False.
        CheckpointError: ``resume`` is True and ``run_dir`` holds no resumable state.
        ConfigError: a value of the config that is invalid or of the wrong type; a model with nothing to train; ``run.val_every`` for a new run whose data gives no
            validation pairs (told from the data's files, before anything is decoded or written).
        DataError: with ``run.val_every``, a data folder that is missing or holds no images (else said by :meth:`fit`).
        TypeError: ``config`` is not a :class:`TrainConfig` (a dict, say).
    """

    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool = False) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer takes a TrainConfig, got {type(config).__name__}: build_config(yaml_path=PATH_OR_NONE, "
                            "assignments=['model.name=crnet-s', ...]) gives one (from a YAML file and/or key=value settings)")
        config.validate(saved_run=resume)  # a config built by hand is checked here as build_config checks its own
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        # a new run would write over this one's weights and log (last.old: a state caught between two renames)
        if not resume and any((self.run_dir / name).exists() for name in ("last", "last.old")):
            raise UsageError(f"{self.run_dir} already holds a run",
                             hint=f"continue it with --resume {self.run_dir} (Trainer(..., resume=True)), or choose another --out")
        if not resume and trained_at_all(self.run_dir):  # best/ or logged steps, but no state was saved (a full disk)
            raise UsageError(f"{self.run_dir} holds a run that trained but saved no resumable state (no last/): "
                             "a new run there would mix its log and best/ with that one's",
                             hint="choose another --out, or delete the folder to start over")
        if resume:
            find_last(self.run_dir)  # nothing to resume: said before a split or data record is written there
        self.ctx, self.device = distributed.setup(config.run.device)
        self.precision = resolve_precision(config.run.precision, self.device)
        if config.run.compile:
            check_compile_toolchain(self.device)
        self.method = METHODS.get(config.method)
        self.entry = MODELS.get(config.model.name)
        if not self.entry.info.needs_weights:
            raise ConfigError(f"model {config.model.name!r} has nothing to train")
        self.frozen_networks: dict[str, str] = {}  # what the model's and the step's frozen networks were loaded from
        self._step_state: dict | None = None  # a resumed run's saved step state
        self._saved_world_size: int | None = None  # how many processes saved the resumed state
        self._keeps_teacher = self._has_validation = False  # set by fit()
        self._validation_due = False  # the resumed state's last validation was cut off: run it first
        self.data_summary = ""  # what the run trains on, for the provenance
        self.labeled_pairs: int | None = None
        self._found: tuple[Path | str, list[PairPaths]] | None = None  # see _find_data
        if not resume and config.run.val_every:
            self._check_val_every()

    # ---- data -----------------------------------------------------------------------------
    def _find_data(self) -> tuple[Path | str, list[PairPaths]]:
        """The data folder (or ``synthetic``) and its training files (none for ``synthetic``), found once:
        a resume's relative folders are settled first (:meth:`_find_relative_folders`)."""
        if self._found is None:
            try:
                root = resolve_data_root(self.config.data.root or None, source=self.config.origins.get("data.root"))
            except DataError as exc:
                if self.resume:  # the default folder ($LOWLIGHT_DATA, ./data/LOL); named ones: _check_folders_are_there
                    exc.hint = ("check that path; if the images moved, name their folder where it is now: "
                                f"--resume {self.run_dir} --data DIR")
                raise
            if not self.config.data.root and root != SYNTHETIC:
                # found through $LOWLIGHT_DATA or the default: written into the run's config, so that a
                # resume (in another shell, from another folder) reads the same folder
                self.config.data.root = os.path.abspath(root)
            paths = [] if root == SYNTHETIC else find_pairs(Path(root), "train", plain_folder=self.method.unpaired)
            self._found = root, paths
        return self._found

    def _check_val_every(self) -> None:
        """A new run that will have no validation refuses ``run.val_every`` (:func:`check_val_every`), told
        from the files before the run starts. A resume keeps the value it started with; the CLI
        checks one given at resume against the run's split."""
        root, paths = self._find_data()
        references = self.config.data.synthetic_count if root == SYNTHETIC else sum(p.high is not None for p in paths)
        check_val_every(self.config.run.val_every,
                        validated=has_validation(references, validation_required=not self.method.unpaired))

    def _load_pairs(self, on_event: EventFn) -> list[ImagePair]:
        root, paths = self._find_data()
        if root == SYNTHETIC:
            pairs = synthetic_pairs(self.config.data.synthetic_count, seed=self.config.data_seed)
        else:
            pairs = load_pairs(paths)
        labeled = sum(p.labeled for p in pairs)
        alone = [p.name for p in pairs if not p.labeled]  # named: a reference missing by mistake is seen at once
        named = f"; without one: {_a_few(alone)}" if alone and labeled else ""
        on_event(InfoEvent(f"data: {len(pairs)} training images ({labeled} with references{named}) from {root}"))
        if root != SYNTHETIC:
            spare = references_without_low(Path(root), "train")
            if spare:
                on_event(InfoEvent(f"{len(spare)} reference(s) have no low-light image of the same file stem and are not "
                                   f"used: {_a_few(spare)}"))
        return pairs

    def _split(self, pairs: list[ImagePair], emit: EventFn) -> Split:
        path = self.run_dir / "split.json"
        if self.resume and not path.is_file():  # a new split would validate on trained images: refused, as a damaged one
            raise DataError(f"{path} is missing: the run's split (which images it trains and validates on) is gone",
                            hint=f"put it back to resume this run, or start a new one (--set model.init_from={self.run_dir / 'last'})")
        if self.resume:
            try:
                split = Split.load(path)
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path} is damaged: the run's split cannot be read",
                                hint=f"start a new run (--set model.init_from={self.run_dir / 'last'}) instead of resuming") from None
            present = {pair.name for pair in pairs}
            referenced = {pair.name for pair in pairs if pair.labeled}
            for role in ("validation", "labeled", "unlabeled"):
                needed = present if role == "unlabeled" else referenced  # validation and labeled images need their references
                missing = [name for name in getattr(split, role) if name not in needed]
                if missing:
                    raise DataError(
                        f"{path} holds {role} image(s) that {self.config.data.root or 'the data folder'} no longer has"
                        f"{'' if role == 'unlabeled' else ' (with their references)'}: {_a_few(missing)}",
                        hint="put them back to resume this run, or start a new one on the data as it is now")
            in_split = set(split.labeled) | set(split.unlabeled) | set(split.validation)
            added = [pair.name for pair in pairs if pair.name not in in_split]
            if added:  # the split is the run's: images added since it started are not trained on
                emit(InfoEvent(f"{len(added)} image(s) in the data folder are not part of this run (added since it started) "
                               f"and are not trained on: {_a_few(added)}; to train on them, start a new "
                               f"run (--set model.init_from={self.run_dir / 'last'})"))
            return split
        d = self.config.data
        split = make_split(pairs, labeled_frac=d.labeled_frac, val_count=d.val_count, seed=self.config.data_seed,
                           validation_required=not self.method.unpaired, hold_out=d.hold_out)
        asked = labeled_wanted(d.labeled_frac, len(pairs))
        if not self.method.unpaired and d.labeled_frac < 1.0 and len(split.labeled) < asked:
            emit(InfoEvent(f"--labeled-frac {d.labeled_frac:g} asks for {asked} labeled pairs of {len(pairs)} images, but only "
                           f"{len(split.labeled)} pairs with references are left outside validation: all of them are labeled "
                           f"({len(split.labeled) / len(pairs):.1%} of the images; the checkpoint records both)"))
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            split.save(path)
        return split

    def _saved_record(self) -> dict | None:
        """A resumed run's ``data.json`` (None: a run made before the file, or a new run).

        Raises:
            DataError: the file is damaged.
        """
        path = self.run_dir / DATA_RECORD
        if not (self.resume and path.is_file()):
            return None
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict):
                raise ValueError("not a data record")
            return saved
        except (OSError, ValueError):  # JSONDecodeError is a ValueError
            raise DataError(f"{path} is damaged: it cannot tell whether this is the run's data",
                            hint=f"start a new run (--set model.init_from={self.run_dir / 'last'}) instead of resuming") from None

    def _check_folders_are_there(self) -> None:
        """A resume whose data folders moved names every missing one at once (not one per attempt),
        with the options that name them again (the default data folder, when ``data.root`` is
        unset, is checked by :meth:`_find_data`)."""
        d = self.config.data
        missing = [(DATA_FOLDER_OPTIONS[f"data.{name}"], value) for name in ("root", "positives", "negatives")
                   if (value := getattr(d, name)) and value != SYNTHETIC and not Path(value).expanduser().exists()]
        if missing:
            raise DataError(f"the run's {' and '.join(f'{option} folder {value}' for option, value in missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not found",
                            hint="check the path; if the images moved, name their folder(s) where they are now: --resume "
                                 f"{self.run_dir} " + " ".join(f"{option} DIR" for option, _ in missing))

    def _find_relative_folders(self, saved: dict, emit: EventFn) -> None:
        """A resumed run's relative data folders are from where it started (``saved`` says where):
        found from there when the current folder has no such path."""
        started = saved.get("started_in")
        if not isinstance(started, str):
            return
        d = self.config.data
        for key in ("root", "positives", "negatives"):
            value = getattr(d, key)
            if value and value != SYNTHETIC and not Path(value).is_absolute() and not Path(value).exists():
                there = Path(started) / value
                if there.exists():
                    setattr(d, key, str(there))
                    emit(InfoEvent(f"data.{key} {value} is taken from where the run started: {there}"))

    def _check_data_record(self, pairs: list[ImagePair], data, split: Split, saved: dict | None, emit: EventFn) -> None:
        """A run writes what its images are (``data.json``); a resume must find the same ones as
        ``saved``, wherever ``--data``, ``--positives`` and ``--negatives`` now point. A run older
        than the file gets it at its first resume (whose data the CLI does not let move)."""
        record = data_record(pairs, data, split)
        if saved is not None:
            try:
                difference = record_difference(saved, record)
            except (ValueError, TypeError, AttributeError):
                raise DataError(f"{self.run_dir / DATA_RECORD} is damaged: it cannot tell whether this is the run's data",
                                hint=f"start a new run (--set model.init_from={self.run_dir / 'last'}) instead of resuming") from None
            if difference:
                raise DataError(f"{self.run_dir} cannot resume on this data: {difference}",
                                hint="put the run's images back as they were, or start a new run "
                                     f"(--set model.init_from={self.run_dir / 'last'}) on the data as it is now")
            added = references_added(saved, pairs, split)
            if added:  # as images added since the start: the split is the run's, said rather than passed over
                emit(InfoEvent(f"{len(added)} image(s) this run trains without a reference have one now (added since it "
                               f"started), which it does not use: {_a_few(added)}; to train with them, start "
                               f"a new run (--set model.init_from={self.run_dir / 'last'})"))
        elif self.ctx.is_main:
            record["started_in"] = str(Path.cwd())  # what relative folders in config.yaml are relative to
            atomic_write_bytes(self.run_dir / DATA_RECORD, (json.dumps(record) + "\n").encode())

    # ---- model and optimiser ----------------------------------------------------------------
    def _build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.config.run.seed)  # same initialisation on every rank
        model = self.entry.build(**self.config.model.kwargs)
        if self.config.model.init_from:
            init = self._warm_start_folder(self.config.model.init_from)
            try:
                load_weights_strict(model, load_state_dict_file(init / "model.safetensors"), str(init),
                                    allow_missing=model.warm_start_additions)
            except CheckpointError as exc:
                trained = read_config(init).get("architecture")
                if trained in (None, self.config.model.name):
                    raise
                raise ConfigError(f"model.init_from {init} holds {trained} weights; this run trains {self.config.model.name}, "
                                  f"which they do not fit ({exc.message})",
                                  hint=f"warm-start from a {self.config.model.name} checkpoint (or train --model {trained})") from None
        if self.config.model.curve_scales and not getattr(model, "supports_curve_scale", False):
            raise ConfigError(f"model.curve_scales needs a curve model; {self.config.model.name} has no curve output")
        # the model's own frozen networks (never in its checkpoints): trained weights, or stand-ins
        self.frozen_networks.update(load_frozen_networks(model, stand_in=self.config.run.stand_in_priors))
        model = model.to(self.device)
        if self.config.run.channels_last and self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model.train()

    @staticmethod
    def _warm_start_folder(init_from: str) -> Path:
        """``model.init_from``'s checkpoint folder: a folder (relative to the current one), a bundled
        weights name or ``hf-hub:org/repo``, found and verified as ``enhance --weights`` finds them."""
        try:
            return resolve_weights("", init_from)
        except WeightsError as exc:
            relative = "" if Path(init_from).expanduser().is_absolute() or is_hub_ref(init_from) else \
                f" (relative paths are from the current folder, {Path.cwd()})"
            raise ConfigError(f"model.init_from: {exc.message}{relative}",
                              hint=exc.hint or "a checkpoint folder (a run's best/ or last/), a bundled weights name "
                                               "(`lowlight models` lists them) or hf-hub:org/repo") from None

    def _build_step(self, ema: EMA | None, teacher_forward: Callable | None, emit: EventFn) -> TrainingStep:
        context = StepContext(self.config.method_loss, self.config, self.device, ema, teacher_forward,
                              distributed=self.ctx.enabled)
        with torch.random.fork_rng(devices=[]):  # initialising frozen networks must not move the training RNG
            step = self.method.build_step(context)
        self.frozen_networks.update(context.networks)
        if self.frozen_networks:  # the model's and the step's
            emit(InfoEvent("frozen networks: " + ", ".join(f"{k} ({v})" for k, v in self.frozen_networks.items())))
        return step

    def _lr_factor(self, steps_per_epoch: int) -> Callable[[int], float]:
        o = self.config.optim
        bounds = [m * steps_per_epoch for m in o.milestones]
        return lambda step: o.gamma ** sum(step >= b for b in bounds)

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self, on_event: EventFn | None = None) -> Progress:
        """Train; returns the final :class:`Progress`. Events go to ``on_event`` (rank 0 only).

        Under torchrun the process joins the process group here and leaves it when training ends
        well; after an error or an interrupt the group is left to the process's exit.

        A new run whose folder this call created and that fails (or is interrupted) before it
        trained at all (images smaller than the patch, a missing frozen network, ...) takes its
        folder away again, so that no ``config.yaml`` / ``split.json`` is left for a later
        ``--resume`` to trip over; a run that logged a step or saved a checkpoint keeps it (the
        record of why a long run failed), and so does a folder that existed before.
        """
        created = not self.resume and not self.run_dir.exists()
        try:
            return self._fit(on_event)
        except BaseException:
            if created and self.ctx.is_main and self.run_dir.is_dir() and not trained_at_all(self.run_dir):
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    def _fit(self, on_event: EventFn | None) -> Progress:
        distributed.join(self.ctx, self.device)
        emit = on_event if (on_event and self.ctx.is_main) else (lambda e: None)
        cfg = self.config
        saved = self._saved_record()  # read once: where relative folders are from, and what the data was
        if saved is not None:
            self._find_relative_folders(saved, emit)
        if self.resume:
            self._check_folders_are_there()
        folders = {}  # listed once, here: said before the data set is decoded
        for folder, what in ((cfg.data.positives, "positives"), (cfg.data.negatives, "negatives")):
            if folder:  # a resumed run's missing folders were named above
                folders[what] = scan_image_folder(folder, what, source=cfg.origins.get(f"data.{what}"))
        pairs = self._load_pairs(emit)
        split = self._split(pairs, emit)
        if not split.labeled and not split.unlabeled:
            raise DataError(f"no images left to train on: all {len(pairs)} are held out for validation "
                            "(with the images that share their references)",
                            hint="add training images of other scenes (pairs whose reference is a validation pair's are held out with it)")
        # a run made before data.json resumes on the pools it drew from then
        data = training_data(self.method, cfg, pairs, split, legacy_pools=self.resume and saved is None, folders=folders)
        if self.method.uses_unlabeled and cfg.data.unlabeled_batch_size > 0 and not data.extra:
            # told from the data: low images without references are unlabeled at any --labeled-frac
            raise DataError(f"semi-supervised training needs unlabeled data: all {len(split.labeled)} training images "
                            f"keep their references (--labeled-frac {cfg.data.labeled_frac:g}) and none comes without one",
                            hint="lower --labeled-frac (e.g. --semi --labeled-frac 0.1), or add low-light images without "
                                 "references to the data folder's low/")
        self._check_data_record(pairs, data, split, saved, emit)
        check_validation_sizes(data.validation)
        self.data_summary = data.summary
        self.labeled_pairs = None if self.method.unpaired else len(split.labeled)  # what labeled_frac gave
        emit(InfoEvent(data.summary))
        references = sum(1 for p in pairs if p.labeled)
        # set by the user (or, built in code, away from the default): the default is capped on small sets without a word
        asked = "data.val_count" in cfg.origins or cfg.data.val_count != DataSection().val_count
        if asked and data.validation and not self.resume and cfg.data.val_count > validation_cap(references):
            emit(InfoEvent(f"data.val_count {cfg.data.val_count} capped at {validation_cap(references)}: at most a fifth "
                           f"of the {references} pairs with references (at least 1) are held out, so that most stay "
                           "for training (pairs sharing a reference with a held-out one are held out with it)"))
        if cfg.data.seed < 0 and data.validation and not self.resume:  # a replication with another run.seed would validate elsewhere
            emit(InfoEvent(f"validation split drawn with run.seed {cfg.run.seed} (data.seed unset): "
                           "set data.seed to keep these validation pairs when changing run.seed"))
        world = self.ctx.world_size
        steps_per_epoch = (len(data.batched) * cfg.data.patches_per_image // cfg.data.batch_size) // world
        if steps_per_epoch < 1:
            raise ConfigError("fewer training patches than one batch per process", hint="lower --batch-size or raise --patches-per-image")
        total_steps = cfg.optim.epochs * steps_per_epoch
        if cfg.optim.max_steps:
            total_steps = min(total_steps, cfg.optim.max_steps)

        model = self._build_model()
        keep_ema = self.method.teacher or cfg.export_weights == "teacher"  # supervised runs may export an EMA too
        self._keeps_teacher, self._has_validation = keep_ema, bool(data.validation)
        ema = EMA(model, cfg.teacher.ema_decay, warmup=cfg.teacher.warmup) if keep_ema else None
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor(steps_per_epoch))
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        progress = Progress()
        if self.resume:  # restores the RNG too
            progress = self._restore(model, ema, optimizer, scheduler, scaler)
            if progress.step >= total_steps and not self._validation_due:
                raise ConfigError(f"{self.run_dir} is already at step {progress.step}, and its schedule ends at step {total_steps}",
                                  hint="raise --epochs or --max-steps to train it further")
            emit(InfoEvent(f"resumed at step {progress.step} (epoch {progress.epoch + 1}, after {progress.batch_in_epoch} of its batches)"
                           + ("; the validation of that step, cut off, runs first" if self._validation_due else "")))
            saved_world = self._saved_world_size
            if saved_world is not None and saved_world != self.ctx.world_size:
                emit(InfoEvent(f"the run was saved by {saved_world} process(es) and resumes with {self.ctx.world_size}: "
                               "steps, epochs and the data position are counted per process, so from here batches may be "
                               "skipped or repeated, the schedule's steps shift against epochs, and this resume is not "
                               "bit for bit; resume with the saved number for an exact continuation"))
            unsaved = self._unsaved_ranks(progress.step) if self.ctx.is_main and saved_world == self.ctx.world_size else []
            if unsaved:
                emit(InfoEvent(f"process(es) {', '.join(map(str, unsaved))} have no random state saved for step "
                               f"{progress.step} by a job of {self.ctx.world_size} processes (they stopped before saving "
                               "it, or the run was saved by another number of processes): they go on with fresh random "
                               "streams of their own, so this resume is not bit for bit"))
        else:
            torch.manual_seed(cfg.run.seed + 1000 * (self.ctx.rank + 1))  # teacher noise differs per process
            if self.ctx.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.is_main:
            save_config(cfg, self.run_dir / "config.yaml")

        student = StagesForward(model)
        if self.ctx.enabled:
            student = DistributedDataParallel(student, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # compiled after the DDP wrap, as torch.compile asks; the model and teacher modules stay plain
        student, teacher_forward = training_forwards(student, ema, semi=self.method.teacher, compile=cfg.run.compile)
        step_fn = self._build_step(ema, teacher_forward, emit)
        if self.resume:
            self._restore_step(step_fn)
        after_step = getattr(step_fn, "after_step", None)
        before_update = getattr(step_fn, "before_update", None)
        log = RunLog(self.run_dir, enabled=self.ctx.is_main, resumed_at=progress.step if self.resume else None)
        val_every = cfg.run.val_every or steps_per_epoch
        save_every = cfg.run.save_every or val_every
        # validation_due: the validation of the step done was cut off by an interrupt (the resume runs it first)
        state = dict(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler, scaler=scaler, progress=progress,
                     step=step_fn, validation_due=self._validation_due)
        patches_per_step = (cfg.data.batch_size + (cfg.data.unlabeled_batch_size if data.extra else 0)) * world
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        emit(PlanEvent(progress.step, total_steps, steps_per_epoch))
        pace_step, pace_time = progress.step + 1, 0.0  # the pace is timed from the end of the first step
        # the random state at the last step boundary: a Ctrl-C inside a step (fetching its batch, forward,
        # backward) saves this one, so the resumed run redraws the step's noise and negatives as a straight
        # run draws them; the step's updates and counter move together (deferred_interrupts)
        boundary_rng = rng_state()
        try:
            if state["validation_due"] and data.validation:  # as the straight run did after this step
                self._validate(state, data.validation, log, emit)
                self._save(state)
            while progress.step < total_steps:
                batches = plan_epoch(data.batched, data.extra, per_image=cfg.data.patches_per_image,
                                     batch_size=cfg.data.batch_size, unlabeled_batch_size=cfg.data.unlabeled_batch_size,
                                     seed=cfg.run.seed, epoch=progress.epoch)
                mine = batches[: steps_per_epoch * world][self.ctx.rank :: world]
                loader = DataLoader(data.dataset, batch_sampler=mine[progress.batch_in_epoch :], num_workers=cfg.data.workers,
                                    collate_fn=_collate, pin_memory=self.device.type == "cuda",
                                    # its own generator: creating a loader must not draw from the global RNG,
                                    # or a resumed run (one more loader) would drift from a straight one
                                    generator=torch.Generator().manual_seed(cfg.run.seed + progress.epoch))
                tick = time.perf_counter()
                for batch in loader:
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                    with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        out = step_fn(student, batch)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(out.loss).backward()
                    if cfg.optim.grad_clip:
                        scaler.unscale_(optimizer)
                        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                    elif not scaler.is_enabled():
                        norm = gradient_norm(model)
                    if not scaler.is_enabled():  # fp16's scaler skips such steps itself (checked below)
                        self._check_finite(norm, out.loss, progress.step + 1)  # before the step: the weights stay finite
                    if before_update is not None:  # the step's own gradients (SKF's discriminator): a collective
                        before_update()           # under torchrun, so outside the held section (Ctrl-C stops it)
                    with deferred_interrupts():  # the updates and the counter move together, or not at all
                        scaler.step(optimizer)
                        scaler.update()
                        scheduler.step()
                        if ema is not None:
                            ema.update(model)
                        if after_step is not None:  # the step's own update (e.g. SKF's discriminator)
                            after_step()
                        progress.step += 1
                        progress.batch_in_epoch += 1
                        boundary_rng = rng_state()
                        # due with the step that makes it due: an interrupt from here on saves it as due
                        state["validation_due"] = bool(data.validation) and (
                            progress.step % val_every == 0 or progress.step == total_steps)
                    if scaler.is_enabled() and scaler.get_scale() < MIN_LOSS_SCALE:
                        raise TrainingError(f"fp16 training skipped step after step for non-finite gradients (loss scale "
                                            f"{scaler.get_scale():.1e} at step {progress.step}): training diverged",
                                            hint=self._divergence_hint())
                    emit(TickEvent(progress.step, progress.epoch))
                    if progress.step == pace_step:
                        pace_time = time.perf_counter()
                    elif progress.step == pace_step + PACE_STEPS:
                        seconds = (time.perf_counter() - pace_time) / PACE_STEPS
                        emit(PaceEvent(seconds, steps_per_epoch, total_steps - progress.step))
                    if progress.step % cfg.run.log_every == 0 or progress.step == total_steps:
                        rate = patches_per_step * cfg.run.log_every / max(1e-9, time.perf_counter() - tick)
                        tick = time.perf_counter()
                        event = StepEvent(progress.step, total_steps, progress.epoch, out.terms, scheduler.get_last_lr()[0], rate)
                        log.write({"kind": "step", **asdict(event)})
                        emit(event)
                    if state["validation_due"]:
                        self._validate(state, data.validation, log, emit)
                    if progress.step % save_every == 0 or progress.step == total_steps:
                        self._save(state)
                    if progress.step >= total_steps:
                        break
                else:
                    with deferred_interrupts():  # the epoch and its batch position move together
                        progress.epoch += 1
                        progress.batch_in_epoch = 0
        except (KeyboardInterrupt, BrokenPipeError):  # a BrokenPipeError: the reader of the progress went (`| head`)
            self._save(state, rng=boundary_rng)
            try:
                emit(InfoEvent(f"interrupted: resumable state saved in {self.run_dir / 'last'}"))
            except BrokenPipeError:
                pass  # nobody left to tell
            raise
        finally:
            log.close()
        if self.ctx.enabled:  # every process must end with the same weights; record the proof
            sums = distributed.gather_checksums(model, self.ctx)
            teacher_sums = distributed.gather_checksums(ema.teacher, self.ctx) if ema is not None else []
            own = getattr(step_fn, "state_dict", None)
            step_sums = distributed.gather_values(state_checksum(own()), self.ctx, self.device) if own is not None else []
            log = RunLog(self.run_dir, enabled=self.ctx.is_main)
            log.write({"kind": "ddp_checksums", "step": progress.step, "checksums": sums, "teacher_checksums": teacher_sums,
                       "step_checksums": step_sums})
            log.close()
        distributed.leave(self.ctx)
        return progress

    # ---- helpers ----------------------------------------------------------------------------
    def _check_finite(self, gradient_norm: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        """Stop with :class:`TrainingError` before an optimiser step whose gradients are not finite
        (Adam would turn every weight NaN). Under torchrun the gradients are already the
        processes' average, so every process sees the same verdict without another collective."""
        if torch.isfinite(gradient_norm).item():
            return
        raise TrainingError(
            f"the gradients became {gradient_norm.item()} at step {step} (loss {loss.detach().float().item():.4g}): "
            f"training diverged{self._kept_state()}", hint=self._divergence_hint())

    def _kept_state(self) -> str:
        last = self.run_dir / "last"
        return f"; {last} holds the last state saved before it, which may already be far off" if last.is_dir() else ""

    def _divergence_hint(self) -> str:
        return (f"train again with a lower learning rate (optim.lr is {self.config.optim.lr:g}) "
                "or clip gradients (--set optim.grad_clip=1)")

    def _export_model(self, state: dict) -> torch.nn.Module:
        ema = state["ema"]
        return ema.teacher if (ema is not None and self.config.export_weights == "teacher") else state["model"]

    def _provenance(self, progress: Progress, *, state_folder: bool = False) -> dict:
        """The checkpoint's provenance: of the exported weights (``best/``, ``final/``), or with
        ``state_folder`` of ``last/``, whose ``model.safetensors`` is always the student (the teacher,
        when kept, is ``ema.safetensors``) and whose validation scores are those of ``best/``."""
        c = self.config
        scores = {
            "val_psnr": progress.best_psnr if math.isfinite(progress.best_psnr) else None,
            "val_ssim": progress.best_ssim if math.isfinite(progress.best_ssim) else None,
        }
        if state_folder:  # last/ is not the validated checkpoint: its scores say whose they are
            scores = {"best_" + k: v for k, v in scores.items()}
            scores["best_step"] = progress.best_step if scores["best_val_psnr"] is not None else None
        weights = "student" if state_folder else self.config.export_weights
        return {
            "software": f"lowlight {__version__}",
            "trained_with": "lowlight train",
            "method": self.method.name,
            "semi": c.run.semi,
            "labeled_frac": c.data.labeled_frac,
            **({"labeled_pairs": self.labeled_pairs} if self.labeled_pairs is not None else {}),
            "data": c.data.root or "default",
            "training_data": self.data_summary,
            "step": progress.step,
            "epoch": progress.epoch,
            "weights": weights,
            **({"teacher_weights": EMA_NAME} if state_folder and self._keeps_teacher else {}),
            **scores,
            "selected_on": self.config.run.select_on,
            **({"frozen_networks": self.frozen_networks} if self.frozen_networks else {}),
        }

    def _validate(self, state: dict, val_pairs: list[ImagePair], log: "RunLog", emit: EventFn) -> None:
        """Score the held-out pairs, then (interrupts held: all of it or none) keep ``best/``, log the
        scores and mark the step's validation done (``state["validation_due"]``)."""
        progress: Progress = state["progress"]
        model = self._export_model(state)
        scores = validate(model, val_pairs, self.device, self.ctx, self.entry.info.input_multiple)
        with deferred_interrupts():
            if self.config.run.select_on == "ssim":
                best = scores.ssim > progress.best_ssim
            else:
                best = scores.psnr > progress.best_psnr
            if best:
                progress.best_psnr, progress.best_ssim, progress.best_step = scores.psnr, scores.ssim, progress.step
                if self.ctx.is_main:
                    save_checkpoint(model, self.run_dir / "best", architecture=self.config.model.name,
                                    kwargs=self.config.model.kwargs, provenance=self._provenance(progress))
            event = ValidationEvent(progress.step, scores.psnr, scores.ssim, best, scores.psnr_gt_mean)
            log.write({"kind": "validation", **asdict(event)})
            state["validation_due"] = False
        emit(event)

    def _save(self, state: dict, rng: dict | None = None) -> None:
        """Write ``last/``; ``rng``: the random state to record, when not the present one (a step cut off).
        Under torchrun each other process writes its own random state (:func:`save_rank_rng`)."""
        progress: Progress = state["progress"]
        if not self.ctx.is_main:
            save_rank_rng(self.run_dir, self.ctx.rank, progress.step, rng if rng is not None else rng_state(),
                          self.ctx.world_size)
            return
        trainer_state = {
            "optimizer": state["optimizer"].state_dict(),
            "scheduler": state["scheduler"].state_dict(),
            "scaler": state["scaler"].state_dict(),
            "rng": rng if rng is not None else rng_state(),
            "progress": progress_dict(progress),
            "ema_updates": state["ema"].updates if state["ema"] is not None else 0,
            "world_size": self.ctx.world_size,
            "validation_due": bool(state.get("validation_due")),
        }
        own = getattr(state["step"], "state_dict", None)
        if own is not None:
            trainer_state["step"] = own()
        save_run_state(self.run_dir, student=state["model"], teacher=state["ema"].teacher if state["ema"] else None,
                       architecture=self.config.model.name, kwargs=self.config.model.kwargs,
                       provenance=self._provenance(progress, state_folder=True), trainer_state=trainer_state)
        if not self._has_validation and state["ema"] is not None and self.config.export_weights == "teacher":
            # nothing chooses a best/: the exported teacher goes to final/ with every save (last/ holds the student)
            save_checkpoint(state["ema"].teacher, self.run_dir / "final", architecture=self.config.model.name,
                            kwargs=self.config.model.kwargs, provenance=self._provenance(progress))

    def _restore(self, model, ema, optimizer, scheduler, scaler) -> Progress:
        folder = find_last(self.run_dir)
        student, teacher, trainer = load_run_state(folder)
        load_weights_strict(model, student, str(folder))
        if ema is not None:
            if teacher is None:
                raise ConfigError(f"{folder} has no teacher (EMA) weights: the run kept none",
                                  hint="resume with the run's own config (run.export, run.semi)")
            load_weights_strict(ema.teacher, teacher, str(folder))
            ema.updates = int(trainer["ema_updates"])
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        scaler.load_state_dict(trainer["scaler"])
        progress = Progress(**trainer["progress"])
        set_rng_state(trainer["rng"])
        if self.ctx.rank > 0:  # each process its own stream: saved with the state, or a fresh one of its own
            own = load_rank_rng(self.run_dir, self.ctx.rank, progress.step, self.ctx.world_size)
            if own is not None:
                set_rng_state(own)
            else:
                torch.manual_seed(fresh_rank_seed(self.config.run.seed, self.ctx.rank, progress.step))
        self._step_state = trainer.get("step")
        self._saved_world_size = trainer.get("world_size")  # None: saved before it was recorded
        self._validation_due = bool(trainer.get("validation_due", False))
        return progress

    def _unsaved_ranks(self, step: int) -> list[int]:
        """The other processes whose random state at ``step`` was not saved (they resume on a fresh stream)."""
        return [rank for rank in range(1, self.ctx.world_size)
                if load_rank_rng(self.run_dir, rank, step, self.ctx.world_size) is None]

    def _restore_step(self, step: TrainingStep) -> None:
        """Give a step with trainable state of its own the state saved with the run (see the module docstring)."""
        load = getattr(step, "load_state_dict", None)
        if load is None:
            return
        if self._step_state is None:
            raise ConfigError(f"{find_last(self.run_dir)} holds no state of the {self.method.name} step "
                              "(it was saved by a step without any)", hint="resume with the run's own config")
        load(self._step_state)


def fresh_rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of process ``rank`` resumed at ``step`` without its saved random state: its own
    (never another process's stream, as a new run's ``seed + 1000 * (rank + 1)``)."""
    return (seed + 1000 * (rank + 1) + 1_000_003 * step) % (2**63)


def state_checksum(state: object) -> float:
    """Sum of every floating-point tensor in a nested state (dicts, lists, tensors), in float64:
    processes that hold the same state give the same number."""
    if isinstance(state, torch.Tensor):
        return float(state.detach().double().sum()) if state.is_floating_point() else 0.0
    if isinstance(state, dict):
        return sum(state_checksum(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_checksum(v) for v in state)
    return 0.0


def describe_run(run_dir: Path) -> dict:
    """The last step and best validation of a run folder (for reports)."""
    folder = find_last(run_dir)
    state = torch.load(folder / "train_state.pt", map_location="cpu", weights_only=True)
    return json.loads(json.dumps(state["progress"]))
