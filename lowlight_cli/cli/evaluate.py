"""`lowlight evaluate`: paper-grade scores with the protocol printed beside them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import DataError, LowlightError, UsageError
from ..evaluation import Protocol, Scorer, pair_by_stem, summarize
from ..evaluation.pairing import Pairing
from ..evaluation.runner import score_pairing
from ..evaluation.scoring import ImageScores
from ..evaluation.summary import csv_report, json_report
from ..inference import Enhancer, InferenceConfig
from ..metrics import list_metrics, metric_info
from .console import err, out
from .errors import EXIT_FAILURE, EXIT_PARTIAL, file_system_hint, handle_errors, report_error
from .loading import announce, describe_run, describe_weights, load_model, model_for_weights
from .options import BlacksOpt, ColourOpt, CompileOpt, CurveScaleOpt, DeviceOpt, JsonOpt, NoPretrainedOpt, OverlapOpt, PrecisionOpt, TileOpt, WeightsOpt
from .report_file import check_report_destination, write_report

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


def refuse_unused_metric_options(protocol: Protocol, *, ssim_space: str = "rgb", niqe_space: str = "y", lpips_net: str = "alex",
                                 lpips_weights: str | None = None, ref: bool = False) -> None:
    """A metric's own option given (away from its default) with none of its metrics asked for would
    be ignored: refused, as ``--gt-mean`` is (``evaluate`` and ``compare``).

    Raises:
        UsageError: names the option and the metrics asked for.
    """
    names = protocol.metrics
    unused = {"--ssim-space": ssim_space.lower() != "rgb" and "ssim" not in names,
              "--niqe-space": niqe_space.lower() != "y" and "niqe" not in names,
              "--lpips-net": lpips_net.lower() != "alex" and "lpips" not in names,
              "--lpips-weights": lpips_weights is not None and "lpips" not in names,
              "--ref": ref and not protocol.needs_reference}
    given = [flag for flag, on in unused.items() if on]
    if given:
        metric = {"--ssim-space": "ssim", "--niqe-space": "niqe", "--lpips-net": "lpips", "--lpips-weights": "lpips"}.get(given[0])
        raise UsageError(f"{given[0]} applies to {metric if metric else 'full-reference metrics (psnr, ssim, lpips)'}, "
                         f"and --metrics asks for {', '.join(names)}",
                         hint=f"add {metric} to --metrics or drop {given[0]}" if metric else f"add psnr or ssim to --metrics, or drop {given[0]}")


def low_and_high(data: Path) -> tuple[Path, Path | None]:
    """``--data DIR``'s low images and references: ``DIR/low`` and ``DIR/high``, or ``DIR`` itself
    and none (``evaluate --model``, ``compare``).

    Raises:
        DataError: no such folder. UsageError: a dataset's root (``DIR/test/low``), not a split.
    """
    if not data.is_dir():
        raise DataError(f"--data {data}: no such folder", hint="give a folder holding low/ and high/, or the low images themselves")
    if not (data / "low").is_dir() and any((data / split / "low").is_dir() for split in ("test", "train")):
        split = "test" if (data / "test" / "low").is_dir() else "train"
        raise UsageError(f"--data {data} holds a dataset's splits, not low/ and high/", hint=f"use --data {data / split}")
    low = data / "low" if (data / "low").is_dir() else data
    high = data / "high" if (data / "high").is_dir() else None
    return low, high


def paired(pred: Path, ref: Path | None, *, recursive: bool = False, what: str = "prediction",
           searches_subfolders: bool = True) -> Pairing:
    """Pair ``pred`` with ``ref`` by stem and say each file without a partner (``what`` names a
    prediction in the message), and the sub-folders not searched (``searches_subfolders``: the
    command can, with ``-r``). (``--csv`` naming one of the images is refused before, by
    :func:`check_report_destination`: an existing file that is not a report is never replaced.)

    Raises:
        DataError: no pair at all.
    """
    pairing = pair_by_stem(pred, ref, recursive=recursive)
    if pairing.unsearched_folders:
        names = ", ".join(str(path) for path in pairing.unsearched_folders[:3])
        more = f" and {len(pairing.unsearched_folders) - 3} more" if len(pairing.unsearched_folders) > 3 else ""
        err.print(f"[yellow]note:[/] {len(pairing.unsearched_folders)} sub-folder(s) not searched, their images not scored: "
                  f"{escape(names)}{more}" + (" (-r searches them)" if searches_subfolders else ""))
    for path in pairing.unpaired_predictions:
        err.print(f"[yellow]unpaired:[/] {escape(str(path))} has no reference")
    for path in pairing.unpaired_references:
        err.print(f"[yellow]unpaired:[/] reference {escape(str(path))} has no {what}")
    if not pairing.pairs:
        raise DataError(f"no {what}/reference pairs", hint="pairing is by file stem: 1.png pairs with 1.jpg")
    return pairing


def score_with_progress(scorer: Scorer, pairing: Pairing, enhancer: Enhancer | None, label: str | None = None) -> list[ImageScores]:
    """Every pair's scores, with a progress bar on a terminal and each warning and failure said as
    it comes (``label``: the model, before each image's name, as ``compare`` runs several)."""
    scores = []
    prefix = "" if label is None else f"{label}: "
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as progress:  # piped: no bar, no blank line
        task = progress.add_task(escape(label or "scoring"), total=len(pairing.pairs))
        for result in score_pairing(scorer, pairing, enhancer, lambda pair: progress.update(task, description=escape(prefix + pair.name))):
            for note in result.warnings:
                progress.console.print(f"[yellow]warning:[/] {escape(prefix + result.name)}: {escape(note)}")
            if result.error is not None:
                progress.console.print(f"[red]failed:[/] {escape(prefix + result.error)}")
            scores.append(result)
            progress.advance(task)
    return scores


@handle_errors
def evaluate(
    ctx: typer.Context,
    pred: Annotated[Optional[Path], typer.Option("--pred", help="Folder of enhanced images to score.")] = None,
    ref: Annotated[Optional[Path], typer.Option("--ref", help="Folder of reference images (paired by file stem).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Enhance --data with this model first.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="With --model: DIR/low (or DIR) is enhanced, DIR/high is the reference (--ref overrides it).")] = None,
    metrics: Annotated[list[str], typer.Option("--metrics", help="Metrics: several after one flag, comma-separated or repeated.")] = ["psnr", "ssim"],  # noqa: B006
    gt_mean: Annotated[bool, typer.Option("--gt-mean", help="Scale predictions to the reference's mean gray level first (for the full-reference metrics; NIQE scores them as they are).")] = False,
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
    blacks: BlacksOpt = "model",
) -> None:
    """Score images with PSNR, SSIM and NIQE under an explicit protocol.

    An image that cannot be scored (unreadable, too small for NIQE) is listed with its error in the output, CSV and JSON, left out of the means, and the exit code is 3.
    """
    names = parse_metric_list(list(metrics) + list(ctx.args))
    stray = [a for a in ctx.args if a.startswith("-")]
    if stray:
        raise UsageError(f"unknown option {stray[0]}", hint="see lowlight evaluate --help")
    known = set(list_metrics())
    paths = [a for a in list(metrics) + list(ctx.args) if a.strip() and a.lower() not in known and (os.sep in a or Path(a).exists())]
    if paths:  # an argument after --metrics (or alone) that names a file or folder, not a metric
        raise UsageError(f"{paths[0]} is not a metric name: folders and images are given with an option",
                         hint="lowlight evaluate --pred DIR --ref DIR, or --model NAME --data DIR")
    if csv_path is not None:  # said now, not after the scoring
        check_report_destination(csv_path, "--csv", json_output=json_output)
    protocol = Protocol(
        tuple(names), gt_mean=gt_mean, ssim_space=ssim_space.lower(), niqe_space=niqe_space.lower(), crop_border=crop_border,
        lpips_net=lpips_net.lower(), lpips_weights=lpips_weights,
    )
    refuse_unused_metric_options(protocol, ssim_space=ssim_space, niqe_space=niqe_space, lpips_net=lpips_net,
                                 lpips_weights=lpips_weights, ref=ref is not None)
    if model is None and weights is None:  # scoring files as they are: the enhancing options would be ignored
        enhancing = {"--data": data is not None, "--no-pretrained": no_pretrained, "--device": device != "auto",
                     "--precision": precision != "auto", "--tile": tile is not None, "--overlap": overlap is not None,
                     "--compile": compile_, "--curve-scale": curve_scale is not None, "--batch-size": batch_size is not None}
        given = [flag for flag, on in enhancing.items() if on]
        if given:
            raise UsageError(f"{given[0]} applies when evaluate enhances a folder itself (--model NAME --data DIR)",
                             hint=f"drop {given[0]} to score --pred as it is" if pred is not None else
                             "add --model NAME (or --weights CHECKPOINT) to enhance and score the folder, "
                             "or score images as they are with --pred DIR --ref DIR")
    enhancer = None
    enhances = model is not None or weights is not None  # the model itself is settled after the checks below
    if model is None and weights is not None and pred is not None:
        raise UsageError("--weights applies when evaluate enhances a folder itself (--data)",
                         hint="score existing predictions with --pred/--ref alone, or enhance with --weights W --data DIR")
    if colour != "model" and not enhances:
        raise UsageError("--colour applies when evaluate enhances with --model", hint="e.g. lowlight evaluate --model crnet-curve-dn --data LOL/test --colour input")
    if blacks != "model" and not enhances:
        raise UsageError("--blacks applies when evaluate enhances with --model", hint="e.g. lowlight evaluate --model crnet-curve-dn --data LOL/test --blacks keep")
    if enhances:
        if pred is not None or data is None:
            flag = "--model" if model is not None else "--weights"
            raise UsageError(f"{flag} needs --data (and no --pred)", hint="e.g. lowlight evaluate --model crnet --data LOL/test")
        low, high = low_and_high(data)
        pred, ref = low, ref or high
    elif pred is None:
        raise UsageError("nothing to score", hint="give --pred DIR [--ref DIR], or --model NAME --data DIR")
    if protocol.needs_reference and ref is None:  # before a model is loaded and announced
        full = [m for m in protocol.metrics if metric_info(m).full_reference]
        hint = (f"--data {data} has no high/ folder: pass --ref DIR (or use --metrics niqe alone)" if enhances
                else "pass --ref DIR (or use --metrics niqe alone)")
        raise UsageError(f"{', '.join(full)} {'needs' if len(full) == 1 else 'need'} references", hint=hint)
    if enhances:
        if model is None:  # as enhance: the architecture the checkpoint names (a hub checkpoint is fetched here)
            model, weights = model_for_weights(None, weights, "")
        config = InferenceConfig(device=device, precision=precision, tile=tile, overlap=overlap,
                                 batch_size=4 if batch_size is None else batch_size, compile=compile_, colour=colour, blacks=blacks)
        net = load_model(model, weights, no_pretrained, curve_scale)
        enhancer = Enhancer(net, config)
        announce(model, net, f"enhancing {pred} with {describe_run(model, net, enhancer, explicit=weights is not None)}")

    pairing = paired(pred, ref if protocol.needs_reference else None, recursive=recursive)
    scores = score_with_progress(Scorer(protocol), pairing, enhancer)

    extra: dict = {"model": model, "pred": str(pred), "ref": None if ref is None else str(ref),
                   "unpaired": [str(p) for p in pairing.unpaired_predictions + pairing.unpaired_references]}
    if enhancer is not None:  # what made the predictions: the weights, and precision and tiling move scores slightly
        extra["architecture"] = net.info.name
        extra["weights"] = describe_weights(model, net, explicit=weights is not None)
        extra["weights_path"] = None if getattr(net, "checkpoint_dir", None) is None else str(net.checkpoint_dir)
        curve_scale = enhancer.curves_ran_at
        extra["inference"] = {"device": str(enhancer.device), "precision": enhancer.precision, "tile": enhancer.tile,
                              "overlap": enhancer.config.overlap, "curve_scale": curve_scale,
                              "compiled": enhancer.config.compile, "colour": enhancer.config.colour,
                              "blacks": enhancer.config.blacks}
        tiles = f"tiles of {enhancer.tile} px (overlap {enhancer.config.overlap})" if enhancer.tile else "whole images"
        predictions = (f"{net.info.name} ({extra['weights']}), {enhancer.device} {enhancer.precision}, {tiles}"
                       + (f", curve scale {curve_scale}" if curve_scale is not None else "")
                       + f", colour {enhancer.config.colour}, blacks {enhancer.config.blacks}, rounded to each input's bit depth")
    csv_problem = None
    if csv_path is not None:
        try:
            unpaired = [(str(p), "unpaired: no reference") for p in pairing.unpaired_predictions]
            unpaired += [(str(p), "unpaired: no prediction") for p in pairing.unpaired_references]
            write_report(csv_path, csv_report(protocol, scores, unpaired,
                                              predictions if enhancer is not None else None).encode())
            err.print(f"per-image scores written to {csv_path}", markup=False, highlight=False)
        except OSError as exc:  # the scores are printed all the same; the failure is said after them
            csv_problem = LowlightError(f"could not write --csv {csv_path}: {exc.strerror or exc}",
                                        hint=f"{file_system_hint(exc)}, or give --csv another path")
            extra["csv_error"] = csv_problem.message
    if json_output:
        typer.echo(json.dumps(json_report(protocol, scores, extra), indent=2))
    else:  # the table's caption names what made the predictions too, as compare's does
        _table(protocol, scores, predictions if enhancer is not None else None)
    if csv_problem is not None:
        report_error(csv_problem)
        raise typer.Exit(EXIT_FAILURE)
    failed = sum(s.error is not None for s in scores)
    if failed == len(scores):
        report_error(LowlightError(f"none of the {failed} image(s) could be scored (listed above)",
                                   hint="see each image's reason above"))
        raise typer.Exit(EXIT_FAILURE)
    if failed:
        err.print(f"{failed} of {len(scores)} image(s) could not be scored: left out of the summary")
        raise typer.Exit(EXIT_PARTIAL)
    summary = summarize(scores, protocol.metrics)
    empty = [name for name, s in summary.items() if s.count == 0 and s.infinite == 0]
    if empty:  # every value NaN: there is no score to report
        report_error(LowlightError(f"no image has a {', '.join(empty)} score (every value is nan; warnings above)",
                                   hint="flat or featureless images have no NIQE; score photos"))
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


def _table(protocol: Protocol, scores: list, predictions: str | None = None) -> None:
    summary = summarize(scores, protocol.metrics)
    made = f"; predictions: {predictions}" if predictions else ""
    table = Table(title="lowlight evaluate", caption=f"protocol: {escape(protocol.describe())}{escape(made)}")
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
