"""`lowlight evaluate`: paper-grade scores with the protocol printed beside them."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.markup import escape

from ..errors import DataError, UsageError
from ..evaluation import Protocol, Scorer, pair_by_stem, summarize
from ..evaluation.runner import score_pairing
from ..evaluation.summary import csv_report, json_report
from ..inference import InferenceConfig
from ..metrics import metric_info
from ..models.checkpoint import atomic_write_bytes
from .console import err, out
from .errors import EXIT_FAILURE, EXIT_PARTIAL, FILE_SYSTEM_HINT, handle_errors
from .loading import announce, build_enhancer, describe_run, describe_weights, load_model, model_for_weights
from .options import ColourOpt, CompileOpt, CurveScaleOpt, DeviceOpt, JsonOpt, NoPretrainedOpt, OverlapOpt, PrecisionOpt, TileOpt, WeightsOpt

EPILOG = """
Examples:\n
  lowlight evaluate --pred results/ --ref LOL/test/high --metrics psnr ssim niqe\n
  lowlight evaluate --model crnet --data LOL/test --metrics psnr ssim niqe --csv scores.csv\n
  lowlight evaluate --pred results/ --metrics niqe --json > niqe.json\n
  lowlight evaluate --pred a/ --ref b/ --metrics psnr,ssim --gt-mean --ssim-space y
"""


def parse_metric_list(values: list[str]) -> list[str]:
    """Flatten ``--metrics psnr ssim``, ``--metrics psnr,ssim``, ``--metrics "psnr ssim"`` and repeated ``--metrics`` forms."""
    names = [part.lower() for value in values for part in value.replace(",", " ").split()]
    return [n for n in names if n]


@handle_errors
def evaluate(
    ctx: typer.Context,
    pred: Annotated[Optional[Path], typer.Option("--pred", help="Folder of enhanced images to score.")] = None,
    ref: Annotated[Optional[Path], typer.Option("--ref", help="Folder of reference images (paired by file stem).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Enhance --data with this model first.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="With --model: DIR/low (or DIR) is enhanced, DIR/high is the reference (--ref overrides it).")] = None,
    metrics: Annotated[list[str], typer.Option("--metrics", help="Metrics: several after one flag, comma-separated or repeated.")] = ["psnr", "ssim"],  # noqa: B006
    gt_mean: Annotated[bool, typer.Option("--gt-mean", help="Scale predictions to the reference's mean gray level first.")] = False,
    ssim_space: Annotated[str, typer.Option("--ssim-space", help="rgb, y or gray.")] = "rgb",
    niqe_space: Annotated[str, typer.Option("--niqe-space", help="y or gray.")] = "y",
    crop_border: Annotated[int, typer.Option("--crop-border", min=0, help="Pixels removed from each side before scoring.")] = 0,
    lpips_net: Annotated[str, typer.Option("--lpips-net", help="LPIPS backbone: alex or vgg.")] = "alex",
    lpips_weights: Annotated[Optional[str], typer.Option("--lpips-weights", help="LPIPS weights: folder, file or hf-hub id (default $LOWLIGHT_LPIPS_WEIGHTS).")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Pair files in sub-folders too (stem includes the sub-folder).")] = False,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write per-image scores to this CSV file.")] = None,
    json_output: JsonOpt = False,
    weights: WeightsOpt = None,
    no_pretrained: NoPretrainedOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overlap: OverlapOpt = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Tiles per forward pass (with --model; default 4).")] = None,
    compile_: CompileOpt = False,
    curve_scale: CurveScaleOpt = None,
    colour: ColourOpt = "model",
) -> None:
    """Score images with PSNR, SSIM and NIQE under an explicit protocol.

    An image that cannot be scored (unreadable, too small for NIQE) is listed with its error in the output, CSV and JSON, left out of the means, and the exit code is 3.
    """
    names = parse_metric_list(list(metrics) + list(ctx.args))
    stray = [a for a in ctx.args if a.startswith("-")]
    if stray:
        raise UsageError(f"unknown option {stray[0]}", hint="see lowlight evaluate --help")
    if csv_path is not None:  # said now, not after the scoring
        check_report_destination(csv_path, "--csv")
    protocol = Protocol(
        tuple(names), gt_mean=gt_mean, ssim_space=ssim_space.lower(), niqe_space=niqe_space.lower(), crop_border=crop_border,
        lpips_net=lpips_net.lower(), lpips_weights=lpips_weights,
    )
    if model is None and weights is None:  # scoring files as they are: the enhancing options would be ignored
        enhancing = {"--data": data is not None, "--no-pretrained": no_pretrained, "--device": device != "auto",
                     "--precision": precision != "auto", "--tile": tile is not None, "--overlap": overlap is not None,
                     "--compile": compile_, "--curve-scale": curve_scale is not None, "--batch-size": batch_size is not None}
        given = [flag for flag, on in enhancing.items() if on]
        if given:
            raise UsageError(f"{given[0]} applies when evaluate enhances a folder itself (--model NAME --data DIR)",
                             hint=f"drop {given[0]} to score --pred as it is")
    enhancer = None
    if model is None and weights is not None:
        if pred is not None:
            raise UsageError("--weights applies when evaluate enhances a folder itself (--data)",
                             hint="score existing predictions with --pred/--ref alone, or enhance with --weights W --data DIR")
        model, weights = model_for_weights(None, weights, "")  # as enhance: the architecture the checkpoint names
    if colour != "model" and model is None:
        raise UsageError("--colour applies when evaluate enhances with --model", hint="e.g. lowlight evaluate --model crnet-curve-dn --data LOL/test --colour input")
    if model is not None:
        if pred is not None or data is None:
            raise UsageError("--model needs --data (and no --pred)", hint="e.g. lowlight evaluate --model crnet --data LOL/test")
        if not data.is_dir():
            raise UsageError(f"--data {data}: no such folder", hint="give a folder holding low/ and high/, or the low images themselves")
        if not (data / "low").is_dir() and any((data / split / "low").is_dir() for split in ("test", "train")):
            split = "test" if (data / "test" / "low").is_dir() else "train"
            raise UsageError(f"--data {data} holds a dataset's splits, not low/ and high/", hint=f"use --data {data / split}")
        low = data / "low" if (data / "low").is_dir() else data
        high = data / "high" if (data / "high").is_dir() else None
        pred, ref = low, ref or high
        config = InferenceConfig(device=device, precision=precision, tile=tile, overlap=overlap,
                                 batch_size=4 if batch_size is None else batch_size, compile=compile_, colour=colour)
        net = load_model(model, weights, no_pretrained, curve_scale)
        enhancer = build_enhancer(net, config)
        announce(model, net, f"enhancing {pred} with {describe_run(model, net, enhancer, explicit=weights is not None)}")
    elif pred is None:
        raise UsageError("nothing to score", hint="give --pred DIR [--ref DIR], or --model NAME --data DIR")
    if protocol.needs_reference and ref is None:
        full = [m for m in protocol.metrics if metric_info(m).full_reference]
        raise UsageError(f"{', '.join(full)} {'needs' if len(full) == 1 else 'need'} references",
                         hint="pass --ref DIR (or use --metrics niqe alone)")

    pairing = pair_by_stem(pred, ref if protocol.needs_reference else None, recursive=recursive)
    if csv_path is not None:
        check_not_an_input(csv_path, pairing)
    for path in pairing.unpaired_predictions:
        err.print(f"[yellow]unpaired:[/] {escape(str(path))} has no reference")
    for path in pairing.unpaired_references:
        err.print(f"[yellow]unpaired:[/] reference {escape(str(path))} has no prediction")
    if not pairing.pairs:
        raise DataError("no prediction/reference pairs", hint="pairing is by file stem: 1.png pairs with 1.jpg")

    scorer = Scorer(protocol)
    scores = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("scoring", total=len(pairing.pairs))
        for result in score_pairing(scorer, pairing, enhancer, lambda pair: progress.update(task, description=escape(pair.name))):
            for note in result.warnings:
                progress.console.print(f"[yellow]warning:[/] {escape(result.name)}: {escape(note)}")
            if result.error is not None:
                progress.console.print(f"[red]failed:[/] {escape(result.error)}")
            scores.append(result)
            progress.advance(task)

    extra: dict = {"model": model, "pred": str(pred), "ref": None if ref is None else str(ref),
                   "unpaired": [str(p) for p in pairing.unpaired_predictions + pairing.unpaired_references]}
    if enhancer is not None:  # what made the predictions: the weights, and precision and tiling move scores slightly
        extra["architecture"] = net.info.name
        extra["weights"] = describe_weights(model, net, explicit=weights is not None)
        extra["weights_path"] = None if getattr(net, "checkpoint_dir", None) is None else str(net.checkpoint_dir)
        extra["inference"] = {"device": str(enhancer.device), "precision": enhancer.precision, "tile": enhancer.tile,
                              "overlap": enhancer.config.overlap, "curve_scale": enhancer.config.curve_scale,
                              "compiled": enhancer.config.compile, "colour": enhancer.config.colour}
    csv_problem = None
    if csv_path is not None:
        try:
            unpaired = [(str(p), "unpaired: no reference") for p in pairing.unpaired_predictions]
            unpaired += [(str(p), "unpaired: no prediction") for p in pairing.unpaired_references]
            write_report(csv_path, csv_report(protocol, scores, unpaired).encode())
            err.print(f"per-image scores written to {csv_path}", markup=False, highlight=False)
        except OSError as exc:  # the scores are printed all the same; the failure is said after them
            csv_problem = f"could not write --csv {csv_path}: {exc.strerror or exc}"
            extra["csv_error"] = csv_problem
    if json_output:
        typer.echo(json.dumps(json_report(protocol, scores, extra), indent=2))
    else:
        _table(protocol, scores)
    if csv_problem is not None:
        err.print(f"[bold red]error:[/] {escape(csv_problem)}", markup=True, highlight=False)
        err.print(f"[dim]hint:[/] {FILE_SYSTEM_HINT}, or give --csv another path", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILURE)
    failed = sum(s.error is not None for s in scores)
    if failed == len(scores):
        err.print(f"[bold red]error:[/] none of the {failed} image(s) could be scored (listed above)", markup=True, highlight=False)
        err.print("[dim]hint:[/] see each image's reason above", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILURE)
    if failed:
        err.print(f"{failed} of {len(scores)} image(s) could not be scored: left out of the summary")
        raise typer.Exit(EXIT_PARTIAL)
    summary = summarize(scores, protocol.metrics)
    empty = [name for name, s in summary.items() if s.count == 0 and s.infinite == 0]
    if empty:  # every value NaN: there is no score to report
        err.print(f"[bold red]error:[/] no image has a {', '.join(empty)} score (every value is nan; warnings above)",
                  markup=True, highlight=False)
        err.print("[dim]hint:[/] flat or featureless images have no NIQE; score photos", markup=True, highlight=False)
        raise typer.Exit(EXIT_FAILURE)
    nan = {name: s.nan for name, s in summary.items() if s.nan}
    if nan:  # part of the set has no score: the means cover the rest only
        counts = ", ".join(f"{n} without {name}" for name, n in nan.items())
        err.print(f"{counts} (nan, warnings above): the means cover the other images only")
        raise typer.Exit(EXIT_PARTIAL)
    unpaired = len(pairing.unpaired_predictions) + len(pairing.unpaired_references)
    if unpaired:  # the means cover part of the set: a script must not take them for the whole
        err.print(f"{unpaired} image(s) had no partner (listed above): the means cover the {len(scores)} pairs only")
        raise typer.Exit(EXIT_PARTIAL)


def _table(protocol: Protocol, scores: list) -> None:
    summary = summarize(scores, protocol.metrics)
    table = Table(title="lowlight evaluate", caption=f"protocol: {protocol.describe()}")
    for col in ("metric", "mean", "median", "std", "count", "better"):
        table.add_column(col, justify="left" if col in ("metric", "better") else "right")
    for name, s in summary.items():
        count = str(s.count) + (f" (+{s.infinite} inf)" if s.infinite else "") + (f" (+{s.nan} nan)" if s.nan else "")
        better = "higher" if metric_info(name).higher_is_better else "lower"
        table.add_row(name, f"{s.mean:.4f}", f"{s.median:.4f}", f"{s.std:.4f}", count, better)
    out.print(table)
    failed = [s for s in scores if s.error is not None]
    if failed:
        errors = Table(title="not scored")
        errors.add_column("image")
        errors.add_column("error")
        for s in failed:
            errors.add_row(escape(s.name), escape(s.error))
        out.print(errors)


def check_report_destination(path: Path, option: str) -> None:
    """Refuse, before any work, a report path that cannot be written: a folder, a missing or
    read-only folder to put it in. A link is followed; a special file (``/dev/stdout``, a pipe)
    and this process's own standard output or error (``/dev/stdout`` redirected to a file) are
    written as they are."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder", hint=f"give a file name, e.g. {option} {path / 'scores.csv'}")
    if _special_file(path) or _standard_stream(path) is not None:
        return  # a device, a pipe, or where this process's output goes: written straight through
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist", hint="create it first, or give another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: folder {folder} is not writable", hint="give a path in a folder you can write to")


def _special_file(path: Path) -> bool:
    """``path`` (links followed) exists and is neither a regular file nor a folder: a device, a pipe."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _standard_stream(path: Path) -> int | None:
    """1 or 2 when ``path`` is the file this process's standard output or error goes to (``--csv
    /dev/stdout > scores.txt``): it must be written through that descriptor, never replaced."""
    try:
        target = os.stat(path)
    except OSError:
        return None
    for fd in (1, 2):
        try:
            stream = os.fstat(fd)
        except OSError:
            continue
        if (stream.st_dev, stream.st_ino) == (target.st_dev, target.st_ino):
            return fd
    return None


def check_not_an_input(path: Path, pairing) -> None:
    """Refuse a report path that is one of the images of the pairing (scored or unpaired: it would
    be overwritten), compared by file identity, so links and other spellings count."""
    try:
        target = os.stat(path)
    except OSError:
        return  # a new file is no image of the set
    images = [image for pair in pairing.pairs for image in (pair.prediction, pair.reference) if image is not None]
    for image in [*images, *pairing.unpaired_predictions, *pairing.unpaired_references]:
        try:
            same = os.path.samestat(os.stat(image), target)
        except OSError:
            continue
        if same:
            raise UsageError(f"--csv {path} is one of the images being scored ({image})", hint="give the scores another file name")


def write_report(path: Path, data: bytes) -> None:
    """Write a report: through this process's own standard output or error when the path is
    where one goes, through a link to its target, straight into a special file (a pipe), and
    atomically into a regular file (a reader never sees half of it)."""
    fd = _standard_stream(path)
    if fd is not None:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        pending = memoryview(data)
        while pending:
            pending = pending[os.write(fd, pending):]
        return
    if _special_file(path):
        with open(path, "wb") as stream:
            stream.write(data)
        return
    try:
        atomic_write_bytes(Path(os.path.realpath(path)), data)
    except OSError as exc:  # name the user's path, not the temporary file beside it
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
