"""`lowlight train`: a registered method (CRNet supervised or MCMT, SCL-LLE, PIE, Semi-LLIE), resumable, distributed under torchrun."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from ..data.patches import MIN_PATCH_SIZE
from ..data.splits import Split
from ..errors import UsageError
from ..models import MODELS
from ..models.complexity import measure_complexity
from ..training import (
    METHODS,
    InfoEvent,
    Method,
    PaceEvent,
    PlanEvent,
    StepEvent,
    TickEvent,
    Trainer,
    TrainConfig,
    ValidationEvent,
    build_config,
    load_config,
)
from ..training.config import DATA_FOLDER_OPTIONS, parse_assignment, set_value
from ..training.data import DATA_RECORD
from ..training.methods import DATA_KINDS
from ..training.validation import check_val_every
from .console import err, out
from .errors import handle_errors
from .options import check_fraction, check_positive

EPILOG = """
Examples:\n
  lowlight train --model crnet --data LOL/ --out runs/crnet-full\n
  lowlight train --semi --labeled-frac 0.1 --data LOL/ --out runs/crnet-semi10\n
  lowlight train --method scl-lle --data LOL/ --set scl_lle.tv=100\n
  lowlight train --method pie --data LOL/ --positives photos/well-exposed/\n
  lowlight train --method semi-llie --labeled-frac 0.1 --data LOL/\n
  lowlight train --list-methods;  lowlight train --method pie --explain\n
  lowlight train --config configs/crnet-semi.yaml --set optim.lr=2e-4\n
  lowlight train --resume runs/crnet-semi10\n
  torchrun --nproc_per_node 2 -m lowlight_cli train --semi --labeled-frac 0.1 --data LOL/
"""

Opt = typer.Option
CPU_MODEL = "crnet-curve"  # the model sized for training on a CPU
METHOD_HELP = ("Training method (default crnet, or mcmt with --semi): "
               + "; ".join(f"{n}: {METHODS.get(n).summary}" for n in METHODS)
               + ". --list-methods lists them, --explain describes one.")


@handle_errors
def train(
    method: Annotated[Optional[str], Opt("--method", help=METHOD_HELP)] = None,
    model: Annotated[Optional[str], Opt("--model", "-m", help="Model to train (default: the method's, crnet for crnet and mcmt).")] = None,
    data: Annotated[Optional[str], Opt("--data", help="Dataset folder (low/ and high/, or LOL's train/low, train/high; the unpaired methods also take a plain folder of low-light images), or 'synthetic' (default $LOWLIGHT_DATA or ./data/LOL).")] = None,
    out: Annotated[Optional[Path], Opt("--out", "-o", help="Run folder (default runs/<model>-<full|semiNN|unpaired>).")] = None,
    semi: Annotated[Optional[bool], Opt("--semi/--supervised", help="Multi-consistency mean teacher on labeled + unlabeled images (= --method mcmt).")] = None,
    labeled_frac: Annotated[Optional[float], Opt("--labeled-frac", callback=check_fraction, help="Fraction of training images whose reference is used, in (0, 1]; the others, and low images without a reference, are the unlabeled data (--semi).")] = None,
    positives: Annotated[Optional[str], Opt("--positives", help="Unpaired methods: folder of normal-light images to draw positives from (default: the training references, never an input's own).")] = None,
    negatives: Annotated[Optional[str], Opt("--negatives", help="Unpaired methods: folder of badly exposed images to draw negatives from (default: made with curves).")] = None,
    config: Annotated[Optional[Path], Opt("--config", help="YAML config file (sections model, data, optim, loss, teacher, run, and the method's: scl_lle, pie, semi_llie, skf).")] = None,
    assignments: Annotated[Optional[list[str]], Opt("--set", help="Override a config value: --set optim.lr=2e-4 (repeatable).")] = None,
    resume: Annotated[Optional[Path], Opt("--resume", help="Continue the run in this folder exactly where it stopped (with --data/--positives/--negatives where its images moved).")] = None,
    epochs: Annotated[Optional[int], Opt("--epochs", min=1, help="Passes over the training images (the labeled ones; the unpaired methods: the low-light inputs) (default: the method's; crnet 100, as in the paper; --method X --explain).")] = None,
    max_steps: Annotated[Optional[int], Opt("--max-steps", min=0, help="Stop after N optimiser steps (smoke runs; 0 = no limit).")] = None,
    batch_size: Annotated[Optional[int], Opt("--batch-size", "-b", min=1, help="Training patches per step and process (labeled ones; the unpaired methods: inputs, each with its positive) (default: the method's).")] = None,
    patch_size: Annotated[Optional[int], Opt("--patch-size", min=MIN_PATCH_SIZE, help="Side of the square training patches in pixels (default: the method's; crnet 96).")] = None,
    patches_per_image: Annotated[Optional[int], Opt("--patches-per-image", min=1, help="Patches drawn from each training image per epoch (default: the method's; crnet 30, scl-lle and pie 1).")] = None,
    lr: Annotated[Optional[float], Opt("--lr", callback=check_positive, help="Adam learning rate, > 0 (default: the method's; crnet 5e-4, halved at epochs 20, 40, 60, 90).")] = None,
    val_every: Annotated[Optional[int], Opt("--val-every", min=0, help="Steps between validations (default: each epoch; runs with validation pairs only).")] = None,
    seed: Annotated[Optional[int], Opt("--seed", min=0, help="Seeds initialisation, patches and noise, and the labeled split (default 0).")] = None,
    device: Annotated[Optional[str], Opt("--device", help="auto, cpu, cuda, cuda:N or mps.")] = None,
    precision: Annotated[Optional[str], Opt("--precision", help="auto, fp32, fp16 or bf16 (auto: bf16/fp16 autocast on CUDA, fp32 on the CPU; ask for bf16 on CPUs with AVX512-BF16 or AMX).")] = None,
    workers: Annotated[Optional[int], Opt("--workers", min=0, help="Data-loader worker processes.")] = None,
    compile_: Annotated[Optional[bool], Opt("--compile/--no-compile", help="torch.compile the student (faster steps after a slow first one; CPU: needs a C++ compiler).")] = None,
    list_methods: Annotated[bool, Opt("--list-methods", help="List the training methods and exit.")] = False,
    explain: Annotated[bool, Opt("--explain", help="Describe the method (--method, or the config's): losses, data, defaults, loss-section keys; then exit.")] = False,
) -> None:
    """Train an enhancement model with a registered method: CRNet supervised (crnet) or with the mean teacher (mcmt, --semi), DCE-Net unpaired (scl-lle, pie), Semi-LLIE's Mamba backbone with its semantic mean teacher (semi-llie), or SKF's semantic guidance (skf); --list-methods lists them."""
    if list_methods:
        _list_methods()
        return
    for option, value in (("--positives", positives), ("--negatives", negatives), ("--data", data)):
        if value is not None and not value.strip():
            raise UsageError(f"{option} is empty", hint=f"{option} takes a folder; leave it out for the default")
    flags = {
        "run.method": method, "model.name": model, "data.root": data, "run.semi": semi, "data.labeled_frac": labeled_frac,
        "data.positives": positives, "data.negatives": negatives,
        "optim.epochs": epochs, "optim.max_steps": max_steps, "data.batch_size": batch_size,
        "data.patch_size": patch_size, "data.patches_per_image": patches_per_image, "optim.lr": lr,
        "run.val_every": val_every, "run.seed": seed, "run.device": device, "run.precision": precision,
        "data.workers": workers, "run.compile": compile_,
    }
    if resume is not None:
        fixed = {"--config": config, "--method": method, "--model": model, "--semi/--supervised": semi,
                 "--labeled-frac": labeled_frac}  # --data, --positives, --negatives: the same images, moved
        given = [flag for flag, value in fixed.items() if value is not None]
        if given:
            raise UsageError(f"--resume continues a run as it was configured: {', '.join(given)} cannot be given with it",
                             hint=RESUME_HINT)
        if out is not None and out.resolve() != resume.resolve():
            raise UsageError(f"--resume continues {resume} in place; it cannot write to --out {out}",
                             hint=f"to branch from it, start a new run: --config {resume / 'config.yaml'} "
                                  f"--set model.init_from={resume / 'last'} --out {out}")
        _check_run_folder(resume)
        cfg = load_config(resume / "config.yaml")
        saved = _flat(cfg.as_dict())  # method sections by their names (pie.tv), as --set spells them
        for key, value in flags.items():
            if value is not None:
                # a folder named at resume is stored absolute: the next resume may start anywhere
                set_value(cfg, key, _absolute(value) if key in DATA_FOLDERS else value)
        for text in assignments or []:
            key, value = parse_assignment(text)
            set_value(cfg, key, _absolute(value) if key in DATA_FOLDERS and isinstance(value, str) else value)
        now = _flat(cfg.as_dict())
        moved = [k for k in DATA_FOLDERS if now.get(k) != saved.get(k)]
        if moved and not (resume / DATA_RECORD).is_file():
            raise UsageError(f"{resume} predates data.json, which would check that the moved folders hold the same images: "
                             f"{', '.join(moved)} cannot change for it",
                             hint="resume it once from where it started (relative folders are from there); "
                                  "that writes data.json, after which its folders may move")
        changed = sorted(k for k, v in now.items() if v != saved.get(k) and k not in RESUMABLE)
        if changed:  # the optimiser, its schedule and the data plan come back from last/: a new value would only be written down
            raise UsageError(f"--resume continues {resume} exactly as it was configured; {', '.join(changed)} cannot change",
                             hint=RESUME_HINT + f"; to change them, start a new stage: --config {resume / 'config.yaml'} "
                                  f"--set model.init_from={resume / 'last'} --out NEW")
        if now["run.val_every"] != saved["run.val_every"]:  # given at this resume (what the run started with stays)
            check_val_every(cfg.run.val_every, validated=_validated(resume))
        run_dir = resume
    else:
        cfg = build_config(yaml_path=config, flags=flags, assignments=assignments)
        if semi is False and METHODS.get(cfg.method).uses_unlabeled:  # the method from --method, the file or --set
            raise UsageError(f"--supervised contradicts method {cfg.method}, which trains on unlabeled images too",
                             hint="drop --supervised, or train --method crnet")
        if out is not None:
            cfg.run.out = str(out)
        elif "run.out" not in cfg.origins:  # named by the config file or --set: kept
            cfg.run.out = f"runs/{cfg.model.name}-{_run_tag(cfg, METHODS.get(cfg.method))}"
        run_dir = Path(cfg.run.out)
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--out {run_dir} is a file, not a folder", hint="choose a folder for the run with --out")
        if run_dir.is_dir() and not (run_dir / "config.yaml").is_file() and any(run_dir.iterdir()):
            raise UsageError(f"--out {run_dir} holds other files and no run",
                             hint="choose a new or empty folder: a run writes config.yaml, split.json, last/, best/ there")
    cfg.validate(saved_run=resume is not None)
    if explain:
        _explain(METHODS.get(cfg.method))
        return
    main = os.environ.get("RANK", "0") == "0"
    # a folder holding a run is refused here (Trainer); a new run that fails before it trained takes its folder away (Trainer.fit)
    trainer = Trainer(cfg, run_dir, resume=resume is not None)
    if main:
        err.print(f"training {cfg.model.name} ({_mode(cfg, trainer.method)}) on {trainer.device} ({trainer.precision}) -> {escape(str(run_dir))}")
    _fit(trainer, show=main, cpu_alternative=cpu_alternative(cfg) if trainer.device.type == "cpu" else None)
    if main:
        if (run_dir / "best").is_dir():
            err.print(f"done: best checkpoint {escape(str(run_dir / 'best'))} (use it with lowlight enhance --weights)")
        elif not _validated(run_dir):  # unpaired data without references: nothing to validate on
            final = run_dir / "final" if (run_dir / "final").is_dir() else run_dir / "last"  # final/: the exported teacher
            err.print(f"done: the final weights are in {escape(str(final))} (no validation pairs, so no best "
                      "checkpoint; use it with lowlight enhance --weights)")
        else:  # no validation gave a finite score to keep
            err.print(f"done, but no validation scored: no best checkpoint; the last weights are in {escape(str(run_dir / 'last'))}")
    if trainer.ctx.enabled:
        _end_torchrun_worker()


RESUME_HINT = ("only --epochs, --max-steps, --val-every, --device, --precision, --compile and --workers may change on resume, "
               "and --data, --positives and --negatives may point to the run's images where they are now")
# what a resume may change: the schedule's length, when to validate, log and save, and where it runs;
# everything else (optimiser, data plan, losses, model) is restored from last/ or fixed by the split
RESUMABLE = frozenset({"optim.epochs", "optim.max_steps", "run.val_every", "run.save_every", "run.log_every",
                       "run.device", "run.precision", "run.compile", "data.workers",
                       # where the images are (relative paths are from where the run started): the run's
                       # data.json and split.json make sure that they are the same images
                       "data.root", "data.positives", "data.negatives"})


DATA_FOLDERS = tuple(DATA_FOLDER_OPTIONS)  # the config keys of the data folders


def _absolute(folder: str) -> str:
    """A folder as an absolute path without ``..``, so that a resumed run finds it from anywhere, even
    once the folder it was named through is gone; links are kept, not followed (a dataset reached
    through a link that is re-pointed later is found where the link points then). ``synthetic``
    and empty values as they are."""
    return folder if folder in ("", "synthetic") else os.path.abspath(Path(folder).expanduser())


def _flat(tree: dict, prefix: str = "") -> dict:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_run_folder(folder: Path) -> None:
    """``folder`` is a run folder ``lowlight train`` made (it holds ``config.yaml``); else a usage error."""
    if not folder.is_dir():
        raise UsageError(f"--resume {folder}: " + ("not a folder" if folder.exists() else "no such folder"),
                         hint="--resume takes the run folder a training wrote (its --out, e.g. runs/crnet-full)")
    if not (folder / "config.yaml").is_file():
        inside = " (this is a checkpoint inside a run: resume its parent folder)" if (folder / "model.safetensors").is_file() else ""
        raise UsageError(f"--resume {folder}: not a run folder, it holds no config.yaml{inside}",
                         hint="--resume takes the run folder a training wrote (its --out, e.g. runs/crnet-full)")


def _validated(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` validates: its split holds validation pairs (True where the
    split cannot be read: the training names a missing or damaged split.json)."""
    try:
        return bool(Split.load(run_dir / "split.json").validation)
    except (OSError, ValueError, KeyError, TypeError):
        return True


def _run_tag(cfg: TrainConfig, method: Method) -> str:
    """The default run folder's suffix: ``full`` (every label), ``supNN`` (supervised on NN% of
    them), ``semiNN`` (semi-supervised on NN% labels) or ``unpaired``; NN keeps the digits that tell
    fractions apart (``semi2.5``, not ``semi2``)."""
    if method.unpaired:
        return "unpaired"
    share = _percent(cfg.data.labeled_frac)
    if method.uses_unlabeled and cfg.data.unlabeled_batch_size > 0:
        return f"semi{share}"
    return "full" if cfg.data.labeled_frac >= 1.0 else f"sup{share}"


def _mode(cfg: TrainConfig, method: Method) -> str:
    """``supervised on 100% labels``, ``semi-supervised MCMT on 10% labels``, ``PIE, unpaired``."""
    if method.unpaired:
        return f"{method.title}, unpaired"
    # a semi-supervised method with its unlabeled stream switched off (data.unlabeled_batch_size 0)
    # trains on the labels alone: say so, it is the comparison run
    unlabeled = method.uses_unlabeled and cfg.data.unlabeled_batch_size > 0
    kind = f"semi-supervised {method.title}" if unlabeled else "supervised" + ("" if method.name == "crnet" else f" {method.title}")
    return f"{kind} on {_percent(cfg.data.labeled_frac)}% labels"


def _percent(fraction: float) -> str:
    """``10``, ``2.5``, ``0.01`` (percent): whole where exact, else enough digits not to show 0."""
    return f"{fraction * 100:.3g}"


def _list_methods() -> None:
    """The registered methods, one per line, on stdout."""
    width = max(len(n) for n in METHODS)
    for name in METHODS:
        m = METHODS.get(name)
        out.print(f"{name:<{width}}  {m.data:<16}  {m.summary}", markup=False)
    out.print("\nlowlight train --method NAME --explain describes one.", markup=False)


def _yaml_value(value: object) -> str:
    """A config value as one would write it in YAML: ``[relu1_2, relu2_2]``, ``""``."""
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return '""' if value == "" else str(value)


def _explain(method: Method) -> None:
    """What ``method`` trains, on which data, with which defaults and loss-section keys, on stdout."""
    models = ", ".join(n for n in MODELS.names() if MODELS.get(n).info.family in method.families)
    section = dataclasses.asdict(method.losses())
    lines = [
        f"{method.name}: {method.summary}",
        f"models: {models} (default {method.default_model})",
        f"data: {method.data} ({DATA_KINDS[method.data]})",
        f"EMA teacher: {'kept and exported' if method.teacher else 'none (--set run.export=teacher keeps one)'}",
        "",
        method.doc.rstrip(),
        "",
        "method defaults: " + (", ".join(f"{k}={_yaml_value(v)}" for k, v in method.defaults.items()) or "none"),
        f"loss section '{method.section}' (YAML '{method.section}: {{key: value}}', or --set {method.section}.KEY=VALUE):",
        *(f"  {key} = {_yaml_value(value)}" + ("  (not read by this method; the section is shared)" if key in method.unread else "")
          for key, value in section.items()),
    ]
    out.print("\n".join(lines), markup=False)


def _end_torchrun_worker() -> None:
    """End a torchrun worker whose training succeeded, skipping the interpreter's shutdown.

    Seen in CI and in a fresh clone (gloo on 2 CPU cores, now and then in the torchrun test):
    a worker that had finished, written its files and left the process group still aborted while
    the interpreter shut down ("terminate called without an active exception", SIGABRT), and
    torchrun reported the job as failed. Everything is written and closed at this point.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cpu_alternative(cfg: TrainConfig) -> str | None:
    """:data:`CPU_MODEL` when the method can train it and the configured model costs over twice as much per
    pixel (to suggest on a CPU; a model within a factor of two of it is a CPU model too)."""
    if cfg.model.name == CPU_MODEL or MODELS.get(CPU_MODEL).info.family not in METHODS.get(cfg.method).families:
        return None

    def macs(name: str, kwargs: dict) -> float:
        return measure_complexity(MODELS.get(name).build(**kwargs), size=64).macs_per_pixel

    return CPU_MODEL if macs(cfg.model.name, cfg.model.kwargs) > 2 * macs(CPU_MODEL, {}) else None


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _fit(trainer: Trainer, *, show: bool, cpu_alternative: str | None) -> None:
    # step count and times first, the loss terms last and cut to what fits: at 80 columns the terms
    # would otherwise squeeze the count and the remaining time to "..."
    columns = (TextColumn("{task.description}", table_column=Column(no_wrap=True)), BarColumn(bar_width=16),
               MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)))
    with Progress(*columns, console=err, disable=not show, expand=True) as progress:  # expand: the terms take what is left
        task = progress.add_task("steps", total=None, info="", visible=False)  # shown once the run knows its steps

        def on_event(event: object) -> None:
            if isinstance(event, PlanEvent):
                progress.update(task, completed=event.start_step, total=event.total_steps, visible=True)
            elif isinstance(event, PaceEvent):
                epoch = event.seconds_per_step * event.steps_per_epoch
                progress.console.print(f"pace: {event.seconds_per_step:.2f} s per step, about {duration(epoch)} per epoch "
                                       f"({event.steps_per_epoch} steps), {duration(event.seconds_per_step * event.steps_left)} to go")
                if cpu_alternative:
                    progress.console.print(f"[yellow]note:[/] {trainer.config.model.name} is sized for GPUs; on this CPU, "
                                           f"--model {cpu_alternative} trains far faster")
            elif isinstance(event, TickEvent):
                progress.update(task, completed=event.step, description=f"epoch {event.epoch + 1}")  # counted from 1, as --epochs
            elif isinstance(event, StepEvent):
                terms = " ".join(f"{k} {v:.4f}" for k, v in event.terms.items() if k != "unlabeled")
                info = f"{terms} lr {event.lr:.2e} {event.patches_per_s:.0f} patches/s"
                progress.update(task, completed=event.step, total=event.total_steps, info=info, description=f"epoch {event.epoch + 1}")
            elif isinstance(event, ValidationEvent):
                star = " (best)" if event.best else ""
                progress.console.print(f"step {event.step}: validation PSNR {event.psnr:.2f} dB, SSIM {event.ssim:.4f}, "
                                       f"PSNR after GT-mean scaling {event.psnr_gt_mean:.2f} dB{star}")
            elif isinstance(event, InfoEvent):
                progress.console.print(escape(event.message))

        trainer.fit(on_event)  # SIGTERM arrives as KeyboardInterrupt (handle_errors): a resumable state is saved
