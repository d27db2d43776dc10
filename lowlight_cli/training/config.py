"""Typed training configuration: defaults < the method's defaults < YAML file < command-line flags
and ``--set key=value``.

Validated once, here; nothing below sees a raw dict. Besides the fixed sections, each training
method (:mod:`lowlight_cli.training.methods`) declares a typed loss section named after it
(``scl_lle: {tv: 200}``, ``--set pie.texture=5``); CRNet's methods keep ``loss``. The resolved
configuration is written to the run folder (``config.yaml``) and read back by ``--resume``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.splits import HOLD_OUTS
from ..errors import ConfigError
from ..inference.device import is_device_spelling
from ..inference.precision import PRECISIONS
from ..models import MODELS
from ..models.base import check_curve_scale
from .config_values import coerce
from .methods import METHODS, Method, loss_sections, methods_of_section


@dataclass
class ModelSection:
    """Which network to train.

    Attributes:
        name: registered model name (``crnet``, ``crnet-s``, ...).
        kwargs: architecture overrides (e.g. ``{"channels": 16}``), recorded in the checkpoint.
        init_from: checkpoint to warm-start from: a folder (a run's ``best``), a bundled weights name
            (``crnet-s-lol``) or ``hf-hub:org/repo``, found as ``enhance --weights`` finds them. Every tensor in it
            must fit the model; only modules the checkpoint lacks (``context.`` of a model with
            ``global_context``) keep their initialisation. Empty: random initialisation.
        curve_scales: CRNet curve models, method ``crnet`` (ours): the curve scales the body is
            trained at, in turn, one per step (``[1, 2]``: every other step runs the body on a
            half-size copy, as ``--curve-scale 2`` does at inference), so one set of weights
            serves both. Empty: the model's own scale only. Validation and the saved checkpoint
            use the model's own scale (1).
    """

    name: str = "crnet"
    kwargs: dict = field(default_factory=dict)
    init_from: str = ""
    curve_scales: tuple = ()


@dataclass
class DataSection:
    """Training data.

    Attributes:
        root: dataset folder (LOL layout or flat ``low``/``high``), ``synthetic``, or empty for
            ``$LOWLIGHT_DATA`` / ``./data/LOL``.
        labeled_frac: fraction of the training images whose reference is used.
        val_count: pairs held out of the training set for validation.
        hold_out: ``scene`` holds out every pair of a drawn pair's scene (its reference) too, so
            validation measures new scenes; ``pair`` holds out the drawn pairs alone, so validation
            measures what LOL-v1's test set does, the recall of scenes trained on (ours; see
            :func:`lowlight_cli.data.splits.make_split`).
        patch_size, patches_per_image, augment: patch sampling (SPEC: 30 patches per image).
        identity_prob: share of labeled patches trained as reference -> reference (ours; 0 = off):
            teaches the model to leave well-exposed photos alone.
        dim_prob, dim_exposure: share of the other labeled patches whose input is the reference
            under-exposed by an exposure in ``dim_exposure`` (ours; 0 = off; see
            :class:`lowlight_cli.data.patches.PatchConfig`).
        batch_size: labeled patches per step (per process under torchrun).
        unlabeled_batch_size: unlabeled patches per step in semi-supervised training.
        workers: data-loader worker processes (0 loads in the training process).
        synthetic_count: image pairs of ``--data synthetic``.
        seed: seeds the labeled / unlabeled / validation split (and ``--data synthetic``'s pairs);
            -1 uses ``run.seed``. Set it to vary ``run.seed`` over the same labeled images.
        positives: unpaired methods: a folder of normal-light images to draw positives from
            (empty: the references of the training pairs, never an input's own).
        negatives: unpaired methods: a folder of badly exposed images to draw negatives from
            (empty: the method makes them with curves).
    """

    root: str = ""
    labeled_frac: float = 1.0
    val_count: int = 15
    hold_out: str = "scene"
    patch_size: int = 96
    patches_per_image: int = 30
    augment: bool = True
    identity_prob: float = 0.0
    dim_prob: float = 0.0
    dim_exposure: tuple = (0.2, 0.6)
    batch_size: int = 16
    unlabeled_batch_size: int = 16
    workers: int = 0
    synthetic_count: int = 24
    seed: int = -1
    positives: str = ""
    negatives: str = ""


@dataclass
class OptimSection:
    """Adam and the step schedule (SPEC: lr 5e-4 halved at epochs 20, 40, 60, 90; 100 epochs)."""

    lr: float = 5e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    epochs: int = 100
    milestones: tuple = (20, 40, 60, 90)
    gamma: float = 0.5
    max_steps: int = 0
    grad_clip: float = 0.0


@dataclass
class LossSection:
    """Loss weights (SPEC: all 1) and the teacher's input noise (ours: sigma 0.02).

    ``lambda_final_l1`` (ours, default 0 = the paper's loss) adds an L1 term on the final image.
    ``consistency_rampup`` (ours, default 0 = the paper's constant ``lambda_c``): over this many
    optimiser steps the consistency weight rises from ``lambda_c * exp(-5)`` to ``lambda_c`` along
    Mean Teacher's sigmoid ramp-up ``exp(-5 (1 - t/T)^2)`` (Tarvainen and Valpola, 2017).
    """

    lambda_ms: float = 1.0
    lambda_final_l1: float = 0.0
    lambda_mc: float = 1.0
    lambda_c: float = 1.0
    teacher_noise: float = 0.02
    consistency_rampup: int = 0


@dataclass
class TeacherSection:
    """Mean teacher: EMA decay (paper 0.99) with the warm-up ``min(1 - 1/(t+1), decay)``."""

    ema_decay: float = 0.99
    warmup: bool = True


@dataclass
class RunSection:
    """How the run is carried out.

    Attributes:
        method: the training method (``lowlight train --list-methods``); empty: ``mcmt`` when
            ``semi`` is set, else ``crnet``. The resolved name is written back.
        semi: multi-consistency mean teacher on labeled + unlabeled images (the ``mcmt`` method);
            after validation: whether the method trains on unlabeled images.
        out: run folder.
        seed: seeds patches, initialisation and noise, and the split unless ``data.seed`` is set.
        device, precision: as in ``lowlight enhance`` (``auto`` = bf16/fp16 autocast on CUDA; ``bf16`` also on
            CPUs with native bf16).
        val_every: optimiser steps between validations (0: at the end of each epoch).
        select_on: the validation score that picks the ``best/`` checkpoint: ``psnr`` (default) or
            ``ssim``.
        log_every: steps between log lines.
        save_every: steps between resumable checkpoints (0: with each validation).
        export: which weights the best checkpoint holds: ``teacher`` (EMA) or ``student``;
            ``auto`` = teacher for semi-supervised runs, student otherwise. ``teacher`` in a
            supervised run (ours) keeps an EMA of the student (``teacher.ema_decay``) and exports it.
        channels_last: use channels-last memory format on CUDA.
        compile: run the student's forward (and so its backward) through ``torch.compile`` (ours;
            off by default). The first step compiles for a while; on the CPU it needs a C++ compiler.
            Validation, the teacher and saved checkpoints use the plain model.
        stand_in_priors: build the frozen networks of the losses as seeded random stand-ins
            (tests and smoke runs only: the checkpoint's provenance says so).
    """

    method: str = ""
    semi: bool = False
    out: str = "runs/crnet"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    val_every: int = 0
    select_on: str = "psnr"
    log_every: int = 10
    save_every: int = 0
    export: str = "auto"
    channels_last: bool = True
    compile: bool = False
    stand_in_priors: bool = False


def method_name(method: str | None, semi: bool) -> str:
    """A run's method from its ``run.method`` and ``run.semi`` (also for a saved config read as a
    plain mapping, as the scripts that card and tabulate runs read it): ``run.method``, else
    ``mcmt`` with ``run.semi``, else ``crnet``."""
    return method or ("mcmt" if semi else "crnet")


@dataclass
class TrainConfig:
    """The whole training configuration.

    ``method_sections`` holds the loss sections of methods beyond the fixed ones (``scl_lle``,
    ``pie``), by section name, as their typed dataclasses; use :attr:`method_loss`.
    """

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    run: RunSection = field(default_factory=RunSection)
    method_sections: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the keys the user set, as against defaults, and where (see :func:`build_config`): not a
        # field, so never saved nor compared
        self.origins: dict[str, str] = {}

    @classmethod
    def for_method(cls, name: str) -> "TrainConfig":
        """The defaults of method ``name``: its default model and :attr:`Method.defaults`.

        Raises:
            UnknownNameError: no such method (with "did you mean").
        """
        method = METHODS.get(name)
        config = cls()
        config.model.name = method.default_model
        for key, value in method.defaults.items():
            set_value(config, key, value)
        return config

    @property
    def method(self) -> str:
        """The method's name: ``run.method``, else ``mcmt`` with ``run.semi``, else ``crnet``."""
        return method_name(self.run.method, self.run.semi)

    @property
    def method_loss(self) -> Any:
        """The typed loss section of the method being trained (``loss`` for crnet and mcmt)."""
        section = METHODS.get(self.method).section
        if section in _FIXED_SECTIONS:
            return getattr(self, section)
        return self.method_sections.setdefault(section, METHODS.get(self.method).losses())

    @property
    def data_seed(self) -> int:
        """The seed of the split (and of synthetic data): ``data.seed``, else ``run.seed``."""
        return self.data.seed if self.data.seed >= 0 else self.run.seed

    def validate(self, *, saved_run: bool = False) -> "TrainConfig":
        """Check every value once; raises :class:`ConfigError` naming the key.

        ``saved_run``: the config of a run being resumed, whose keys that its method never reads are
        let through (they were ignored, not refused, before session 27: refusing them now would
        leave such a run impossible to resume, since a resume may not change them).
        """
        self._check_types()
        checks = [
            (0.0 < self.data.labeled_frac <= 1.0, "data.labeled_frac must be in (0, 1]"),
            (self.data.val_count >= 1, "data.val_count must be >= 1"),
            (self.data.hold_out in HOLD_OUTS, f"data.hold_out must be one of: {', '.join(HOLD_OUTS)}"),
            (self.data.patch_size >= 16, "data.patch_size must be >= 16"),
            (self.data.patches_per_image >= 1, "data.patches_per_image must be >= 1"),
            (0.0 <= self.data.identity_prob < 1.0, "data.identity_prob must be in [0, 1)"),
            (0.0 <= self.data.dim_prob < 1.0, "data.dim_prob must be in [0, 1)"),
            (len(self.data.dim_exposure) == 2 and 0.0 < self.data.dim_exposure[0] <= self.data.dim_exposure[1] <= 1.0,
             "data.dim_exposure must be [lowest, highest] with 0 < lowest <= highest <= 1"),
            (self.data.batch_size >= 1, "data.batch_size must be >= 1"),
            (self.data.unlabeled_batch_size >= 0, "data.unlabeled_batch_size must be >= 0"),
            (self.data.workers >= 0, "data.workers must be >= 0"),
            (self.data.seed >= -1, "data.seed must be >= 0, or -1 for run.seed"),
            (0 < self.optim.lr < math.inf, "optim.lr must be > 0 and finite"),
            (len(self.optim.betas) == 2 and all(0.0 <= b < 1.0 for b in self.optim.betas),
             "optim.betas must be two numbers in [0, 1), e.g. [0.9, 0.999]"),
            (0.0 <= self.optim.weight_decay < math.inf, "optim.weight_decay must be >= 0"),
            (0.0 < self.optim.gamma < math.inf, "optim.gamma (the learning rate's factor at each milestone) must be > 0"),
            (0.0 <= self.optim.grad_clip < math.inf, "optim.grad_clip must be >= 0 (0 = off)"),
            (all(float(m).is_integer() and m >= 1 for m in self.optim.milestones), "optim.milestones must be whole epochs >= 1"),
            (all(0.0 <= w < math.inf for w in (self.loss.lambda_ms, self.loss.lambda_final_l1, self.loss.lambda_mc, self.loss.lambda_c)),
             "loss weights (loss.lambda_*) must be >= 0"),
            (self.optim.epochs >= 1, "optim.epochs must be >= 1"),
            (self.optim.max_steps >= 0, "optim.max_steps must be >= 0"),
            (0.0 < self.teacher.ema_decay < 1.0, "teacher.ema_decay must be in (0, 1)"),
            (self.loss.teacher_noise >= 0, "loss.teacher_noise must be >= 0"),
            (self.loss.consistency_rampup >= 0, "loss.consistency_rampup must be >= 0 (steps; 0 = off)"),
            (self.run.val_every >= 0 and self.run.log_every >= 1, "run.val_every >= 0 and run.log_every >= 1"),
            (self.run.save_every >= 0, "run.save_every must be >= 0 (0 = at each validation)"),
            (self.run.export in ("auto", "teacher", "student"), "run.export must be auto, teacher or student"),
            (self.run.select_on in ("psnr", "ssim"), "run.select_on must be psnr or ssim"),
            (self.run.precision in PRECISIONS, f"run.precision must be one of: {', '.join(PRECISIONS)}"),
            (is_device_spelling(self.run.device), "run.device must be auto, cpu, cuda, cuda:N or mps"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.optim.milestones = tuple(int(m) for m in self.optim.milestones)  # 30.0 from "--set optim.milestones=30.0"
        method = self._validate_method(saved_run=saved_run)
        return self

    def _check_types(self) -> None:
        """Each section's plain values have their field's type, and are made plain Python values (a
        config built by hand, not through :func:`build_config`, may hold ``"32"`` for 32, or numpy
        numbers and paths, which are taken)."""
        def plain(kind: str, value: object) -> object:
            is_bool = isinstance(value, (bool, np.bool_))
            if kind == "bool" and is_bool:
                return bool(value)
            if kind == "int" and isinstance(value, numbers.Integral) and not is_bool:
                return int(value)
            if kind == "float" and isinstance(value, numbers.Real) and not is_bool:
                return float(value)
            if kind == "str" and isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
            if kind == "tuple" and isinstance(value, (tuple, list)):
                return value
            raise TypeError
        for section_name in ("model", "data", "optim", "loss", "teacher", "run"):
            section = getattr(self, section_name)
            for item in dataclasses.fields(section):
                kind = item.type if isinstance(item.type, str) else getattr(item.type, "__name__", "")
                if kind not in ("int", "float", "bool", "str", "tuple"):
                    continue
                value = getattr(section, item.name)
                try:
                    setattr(section, item.name, plain(kind, value))
                except TypeError:
                    raise ConfigError(f"{section_name}.{item.name} must be {'a number' if kind == 'float' else kind}, "
                                      f"got {value!r} ({type(value).__name__})") from None

    def _refuse_ignored_keys(self, method: Method) -> None:
        """Refuse ``loss`` and ``teacher`` values the method would never read (they were ignored)."""
        changed = lambda section, defaults: [f.name for f in dataclasses.fields(section)  # noqa: E731
                                             if getattr(section, f.name) != getattr(defaults, f.name)]
        loss_keys = changed(self.loss, LossSection())
        if method.section != "loss" and loss_keys:
            raise ConfigError(f"loss.{loss_keys[0]} configures CRNet's losses (methods crnet and mcmt); "
                              f"{method.name} reads its own section, {method.section}",
                              hint=f"set {method.section}.* instead (lowlight train --method {method.name} --explain)")
        mcmt_only = ("lambda_mc", "lambda_c", "teacher_noise", "consistency_rampup")
        if method.section == "loss" and not method.teacher and (keys := [k for k in loss_keys if k in mcmt_only]):
            raise ConfigError(f"loss.{keys[0]} is for the mean teacher (mcmt, --semi), not {method.name}",
                              hint="drop it, or train with --semi")
        if not method.teacher and self.export_weights != "teacher" and (keys := changed(self.teacher, TeacherSection())):
            raise ConfigError(f"teacher.{keys[0]} configures an EMA teacher, which this {method.name} run does not keep",
                              hint="drop it, or keep one with --set run.export=teacher")

    def _validate_method(self, *, saved_run: bool = False) -> Method:
        """Resolve ``run.method`` (written back, with ``run.semi`` to match) and check what depends on it."""
        method = METHODS.get(self.method)
        if self.run.semi and not method.uses_unlabeled:
            raise ConfigError(f"run.semi (--semi) is the mcmt method, not {method.name}",
                              hint="drop --semi, or use --method mcmt")
        self.run.method, self.run.semi = method.name, method.uses_unlabeled
        if self.model.name in method.variants:  # a plug-in method on a plain enhancer trains its variant
            self.model.name = method.variants[self.model.name]
        family = MODELS.get(self.model.name).info.family
        if family not in method.families:
            trainable = ", ".join(n for n in MODELS.names() if MODELS.get(n).info.family in method.families)
            raise ConfigError(f"method {method.name} trains {'/'.join(method.families)} models, not {self.model.name} ({family})",
                              hint=f"--model one of {trainable}")
        if method.unpaired and (self.data.labeled_frac < 1.0 or self.data.identity_prob > 0 or self.data.dim_prob > 0):
            key = ("labeled_frac" if self.data.labeled_frac < 1.0
                   else "identity_prob" if self.data.identity_prob > 0 else "dim_prob")
            flag = {"labeled_frac": "--labeled-frac"}.get(key, f"--set data.{key}")
            raise ConfigError(f"data.{key} is for paired methods: {method.name} trains unpaired on every training image",
                              hint=f"drop {flag}; a paired method uses it (--method crnet or mcmt, semi-llie, skf)")
        for key in ("positives", "negatives"):
            if getattr(self.data, key) and not method.unpaired:
                unpaired = ", ".join(n for n in METHODS.names() if METHODS.get(n).unpaired)
                raise ConfigError(f"data.{key} (--{key}) is for unpaired methods ({unpaired}), not {method.name}",
                                  hint=f"drop --{key}: {method.name} learns from the pairs of --data")
        if self.model.curve_scales:
            if method.name != "crnet":
                raise ConfigError(f"model.curve_scales is for the crnet method (CRNet curve models), not {method.name}")
            self.model.curve_scales = tuple(check_curve_scale(s, "model.curve_scales entries") for s in self.model.curve_scales)
            multiple = self.patch_multiple
            if self.data.patch_size % multiple:
                raise ConfigError(f"data.patch_size {self.data.patch_size} must be a multiple of {multiple} "
                                  f"({self.model.name} at curve scale {max(self.model.curve_scales)})")
        elif self.data.patch_size % (multiple := MODELS.get(self.model.name).info.input_multiple):
            nearest = max(multiple, round(self.data.patch_size / multiple) * multiple)
            raise ConfigError(f"data.patch_size {self.data.patch_size} must be a multiple of {multiple}, "
                              f"as every size {self.model.name} takes", hint=f"e.g. data.patch_size {nearest}")
        if not saved_run:
            self._refuse_ignored_keys(method)
        for section in self.method_sections:
            if section != method.section:
                owners = ", ".join(methods_of_section(section))
                raise ConfigError(f"section {section!r} configures {owners}, but this run trains {method.name}",
                                  hint=f"drop it, or --method {owners.split(', ')[0]}")
        check = getattr(self.method_loss, "validate", None)
        if check is not None:
            check(method.section)
        return method

    def as_dict(self) -> dict[str, Any]:
        """Every section as a plain mapping (method sections by their names), for YAML and provenance."""
        fixed = {name: dataclasses.asdict(getattr(self, name)) for name in _FIXED_SECTIONS}
        return {**fixed, **{name: dataclasses.asdict(section) for name, section in self.method_sections.items()}}

    @property
    def patch_multiple(self) -> int:
        """What ``data.patch_size`` must be a multiple of: the model's input multiple, times the
        largest curve scale trained (``model.curve_scales``)."""
        return MODELS.get(self.model.name).info.input_multiple * max(self.model.curve_scales or (1,))

    @property
    def export_weights(self) -> str:
        """``teacher`` or ``student``: the weights exported as the run's best checkpoint."""
        if self.run.export != "auto":
            return self.run.export
        return "teacher" if METHODS.get(self.method).teacher else "student"


_FIXED_SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "method_sections")


def _section_fields(section: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(section)}


def _section(config: TrainConfig, name: str) -> Any | None:
    """The section ``name`` of ``config`` (a method's loss section is created on first use); None if unknown."""
    if name in _FIXED_SECTIONS:
        return getattr(config, name)
    losses = loss_sections().get(name)
    return None if losses is None else config.method_sections.setdefault(name, losses())


def set_value(config: TrainConfig, key: str, value: Any) -> None:
    """Set ``section.field`` (e.g. ``optim.lr``, ``scl_lle.tv``) with type checking; unknown keys raise."""
    parts = key.split(".")
    section = _section(config, parts[0]) if len(parts) == 2 else None
    if section is None:
        sections = ", ".join([*_FIXED_SECTIONS, *(s for s in loss_sections() if s not in _FIXED_SECTIONS)])
        raise ConfigError(f"unknown config key {key!r}", hint=f"keys look like section.field, sections: {sections}")
    fields = _section_fields(section)
    if parts[1] not in fields:
        close = difflib.get_close_matches(parts[1], list(fields), n=1)
        guess = f"did you mean {parts[0]}.{close[0]}? " if close else ""
        raise ConfigError(f"unknown config key {key!r}", hint=f"{guess}{parts[0]} has: {', '.join(fields)}")
    setattr(section, parts[1], coerce(value, fields[parts[1]].type, key))


# the command-line options that set the data folders, for messages about where a folder was named
DATA_FOLDER_OPTIONS = {"data.root": "--data", "data.positives": "--positives", "data.negatives": "--negatives"}


def merge_mapping(config: TrainConfig, mapping: dict[str, Any], source: str) -> None:
    """Apply a nested mapping ``{section: {field: value}}`` (a YAML file's content)."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: expected a mapping of sections")
    for section, values in mapping.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping")
        for name, value in values.items():
            set_value(config, f"{section}.{name}", value)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file; :class:`ConfigError` if missing or malformed."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found",
                          hint="check the path; the project's configs are in its configs/ folder") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder", hint="give a YAML file, e.g. configs/crnet-lol.yaml") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (UTF-8)", hint="give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})",
                          hint="each section is a mapping, e.g. optim: {lr: 2e-4, epochs: 60}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path} holds a {type(data).__name__}, not sections", hint="e.g. optim: {lr: 2e-4}")
    return data or {}


def parse_assignment(text: str) -> tuple[str, str]:
    """``"optim.lr=2e-4"`` -> ``("optim.lr", "2e-4")``."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}", hint="e.g. --set optim.lr=2e-4")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def build_config(
    *,
    yaml_path: Path | None = None,
    flags: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
    saved_run: bool = False,
) -> TrainConfig:
    """Defaults, then the method's defaults, then the YAML file, then command-line flags, then ``--set``.

    The config's ``origins`` say where each key the user set came from, as messages name it:
    ``data.root in FILE``, ``--data`` (a flag) or ``--set data.root``.

    The method is read from the layers above its defaults first (``run.method``, or ``run.semi``),
    so that e.g. ``--method scl-lle`` brings SCL-LLE's optimiser settings, which the file, the
    flags and ``--set`` may still override.
    """
    mapping = load_yaml(yaml_path) if yaml_path is not None else None

    def layered(config: TrainConfig) -> TrainConfig:
        if mapping is not None:
            merge_mapping(config, mapping, str(yaml_path))
            config.origins.update({f"{section}.{name}": f"{section}.{name} in {yaml_path}"
                                   for section, values in mapping.items() for name in values})
        for key, value in (flags or {}).items():
            if value is not None:
                set_value(config, key, value)
                config.origins[key] = DATA_FOLDER_OPTIONS.get(key, f"the {key} option")
        for text in assignments or []:
            key, value = parse_assignment(text)
            set_value(config, key, value)
            config.origins[key] = f"--set {key}"
        return config

    probe = layered(TrainConfig())
    return layered(TrainConfig.for_method(probe.method)).validate(saved_run=saved_run)


def save_config(config: TrainConfig, path: Path) -> None:
    """Write the resolved configuration as YAML (tuples as lists)."""
    import yaml

    from ..models.checkpoint import atomic_write_bytes

    data = {k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()} for k, v in config.as_dict().items()}
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())


def load_config(path: Path) -> TrainConfig:
    """Read a resolved configuration written by :func:`save_config` (older runs' files too), to resume it."""
    return build_config(yaml_path=path, saved_run=True)
