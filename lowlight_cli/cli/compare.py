"""`lowlight compare`: several models scored on one test set under one protocol, one table."""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..errors import LowlightError, UsageError, WeightsNotFoundError
from ..evaluation import Protocol, Scorer, summarize
from ..evaluation.scoring import ImageScores
from ..evaluation.summary import json_report
from ..hub import bundled_weights_names, is_hub_ref
from ..inference import Enhancer, InferenceConfig
from ..inference.engine import exported_precision
from ..inference.onnx_backend import is_onnx_path
from ..metrics import list_metrics, metric_info
from ..models import list_models
from ..models.official import importable_architectures
from .console import err, out, print_table
from .errors import EXIT_FAILURE, EXIT_PARTIAL, file_system_hint, handle_errors, report_error
from .evaluate import low_and_high, paired, parse_metric_list, refuse_unused_metric_options, score_with_progress
from .loading import LoadedModel, announce, describe_run, describe_weights, load_model, model_for_weights, run_precision
from .options import BlacksOpt, ColourOpt, DeviceOpt, JsonOpt, OverlapOpt, PrecisionOpt, TileOpt
from .report_file import check_report_destination, write_report

INPUT_ROW = "input"  # the first row: the low images scored as they are
DEFAULT_METRICS = ("psnr", "ssim")

EPILOG = """
Examples:\n
  lowlight compare crnet-curve-dn pie-lol scl-lle-lol --data LOL/test --metrics psnr ssim niqe\n
  lowlight compare crnet-curve-dn-lol runs/mine/best mine.onnx --data LOL/test --csv scores.csv\n
  lowlight compare crnet-curve-dn pie-lol --data night-photos/ --metrics niqe
"""


@dataclass
class Entry:
    """One model to compare: as the user named it, and what was loaded for it."""

    label: str
    name: str  # the model name it runs as (announce)
    model: LoadedModel | None  # dropped once its row is scored
    architecture: str
    weights: str
    inference: dict = dataclasses.field(default_factory=dict)  # device, precision, tile it ran with (tiles differ by model)


@dataclass(frozen=True)
class Row:
    """A row of the comparison: the model (None: the input as it is), its scores and their summary."""

    entry: Entry | None
    scores: list[ImageScores]
    summary: dict  # metric -> MetricSummary, summarised once

    @property
    def label(self) -> str:
        return INPUT_ROW if self.entry is None else self.entry.label

    @property
    def failed(self) -> int:
        return sum(s.error is not None for s in self.scores)

    @property
    def nan(self) -> int:
        return max((m.nan for m in self.summary.values()), default=0)


def _resolve(label: str, config: InferenceConfig) -> Entry:
    """A model by what its label names: an ONNX file, a registered model (its default weights), or
    weights (a bundled name, a checkpoint folder, hf-hub:...) whose checkpoint names the model."""
    models = list_models(include_test=True)
    if is_onnx_path(label) or label in models:
        name, weights = label, None
    else:
        bundled_names = bundled_weights_names()
        if not is_hub_ref(label) and label not in bundled_names and not Path(label).expanduser().exists():
            close = difflib.get_close_matches(label, list_models() + bundled_names, n=3)
            raise UsageError(f"{label} is not a model name, bundled weights, a checkpoint folder nor an .onnx file",
                             hint=(f"did you mean {' or '.join(close)}? " if close else "")
                             + "`lowlight models` lists the models and their bundled weights")
        name, weights = model_for_weights(None, label, "")
    try:
        net = load_model(name, weights, False)
    except WeightsNotFoundError as exc:
        if weights is not None or is_onnx_path(label):  # its own message names the file or folder
            raise
        # compare takes no --weights: name the checkpoint itself
        raise WeightsNotFoundError(
            f"{label} has no trained weights to compare",
            hint="name a checkpoint folder or bundled weights instead (`lowlight models` lists them)"
                 + (f"; the authors' checkpoint: lowlight import FILE.pth --arch {label} -o DIR, then compare DIR"
                    if label in importable_architectures() else ""),
        ) from None
    # tiling checked for every model before any runs, on the CPU: each goes to the device only for its own row
    Enhancer(net, dataclasses.replace(model_config(net, config), device="cpu"))
    return Entry(label, name, net, net.info.name, describe_weights(name, net, explicit=weights is not None))


def model_config(model: LoadedModel, config: InferenceConfig) -> InferenceConfig:
    """``config`` for one compared model: --precision is for the PyTorch models, and an exported
    graph runs at its own (alone, the Enhancer refuses an explicit other one)."""
    return dataclasses.replace(config, precision="auto") if exported_precision(model) else config


@handle_errors
def compare(
    entries: Annotated[list[str], typer.Argument(
        help="Models to compare: registered names (their default weights), bundled weights names, checkpoint folders, "
             "hf-hub:org/repo references or exported .onnx files.", show_default=False)],
    data: Annotated[Path, typer.Option("--data", help="DIR/low is enhanced by every model and DIR/high is the reference; "
                                                      "a folder of images alone takes no-reference metrics (niqe).")],
    metrics: Annotated[Optional[list[str]], typer.Option("--metrics", show_default=False,
                                                         help="Metrics: several after one flag, comma-separated or repeated. Default: psnr, ssim.")] = None,
    gt_mean: Annotated[bool, typer.Option("--gt-mean", help="Scale predictions to the reference's mean gray level first (full-reference metrics).")] = False,
    ssim_space: Annotated[str, typer.Option("--ssim-space", help="rgb, y or gray.")] = "rgb",
    niqe_space: Annotated[str, typer.Option("--niqe-space", help="y or gray.")] = "y",
    crop_border: Annotated[int, typer.Option("--crop-border", min=0, help="Pixels removed from each side before scoring.")] = 0,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="Write every model's per-image scores to this CSV file.")] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    tile: TileOpt = None,
    overlap: OverlapOpt = None,
    colour: ColourOpt = "model",
    blacks: BlacksOpt = "model",
) -> None:
    """Score several models on one test set under one protocol: a row per model, the input first.

    Every model enhances the same images with the same settings, and each output is scored as it
    would be saved, as in `lowlight evaluate --model`. Images a model cannot score are listed, left
    out of its means, and the exit code is 3.
    """
    known_metrics = set(list_metrics())
    models = set(list_models(include_test=True))
    # `--metrics psnr ssim`: click takes the second name as an entry; a metric name is never a model's
    extra = [e for e in entries if e.lower() in known_metrics and e not in models and not Path(e).exists()]
    labels = [e for e in entries if e not in extra]
    names = parse_metric_list(list(metrics or []) + extra) if metrics or extra else list(DEFAULT_METRICS)
    if not labels:
        raise UsageError("no models to compare", hint="e.g. lowlight compare crnet-curve-dn pie-lol --data LOL/test")
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise UsageError(f"{twice[0]} is named twice", hint="name each model once")
    if csv_path is not None:
        check_report_destination(csv_path, "--csv", json_output=json_output)
    protocol = Protocol(tuple(names), gt_mean=gt_mean, ssim_space=ssim_space.lower(), niqe_space=niqe_space.lower(),
                        crop_border=crop_border)
    refuse_unused_metric_options(protocol, ssim_space=ssim_space, niqe_space=niqe_space)
    low, high = low_and_high(data)
    if protocol.needs_reference and high is None:
        full = [m for m in protocol.metrics if metric_info(m).full_reference]
        raise UsageError(f"{', '.join(full)} {'needs' if len(full) == 1 else 'need'} references and --data {data} has no high/ folder",
                         hint="give a folder holding low/ and high/, or use --metrics niqe alone")
    pairing = paired(low, high if protocol.needs_reference else None, what="low image", searches_subfolders=False)

    config = InferenceConfig(device=device, precision=precision, tile=tile, overlap=overlap, colour=colour, blacks=blacks)
    loaded = [_resolve(label, config) for label in labels]  # every name checked before the first model runs
    scorer = Scorer(protocol)
    scores = score_with_progress(scorer, pairing, None, INPUT_ROW)
    rows = [Row(None, scores, summarize(scores, protocol.metrics))]
    for i, entry in enumerate(loaded, start=1):
        enhancer = Enhancer(entry.model, model_config(entry.model, config))
        entry.inference = {"device": str(enhancer.device), "precision": run_precision(entry.model, enhancer),
                           "tile": enhancer.tile, "overlap": enhancer.config.overlap, "colour": enhancer.config.colour,
                           "blacks": enhancer.config.blacks}
        announce(entry.name, entry.model, f"[{i}/{len(loaded)}] {entry.label}: {describe_run(entry.name, entry.model, enhancer)}")
        if precision != "auto" and enhancer.precision != precision:  # an exported graph's own (model_config)
            err.print(f"[yellow]note:[/] {escape(entry.label)} runs in the precision it was exported with "
                      f"({enhancer.precision}), not --precision {precision}, which the other models take")
        scores = score_with_progress(scorer, pairing, enhancer, entry.label)
        entry.inference["curve_scale"] = enhancer.curves_ran_at  # the last image's (auto may vary it)
        rows.append(Row(entry, scores, summarize(scores, protocol.metrics)))
        entry.model = enhancer = None  # one model on the device at a time

    unpaired = [(str(path), "unpaired: no reference") for path in pairing.unpaired_predictions]
    unpaired += [(str(path), "unpaired: no low image") for path in pairing.unpaired_references]
    csv_problem = None
    if csv_path is not None:
        try:
            write_report(csv_path, _csv(protocol, rows, unpaired).encode())
            err.print(f"per-image scores written to {csv_path}", markup=False, highlight=False)
        except OSError as exc:
            csv_problem = LowlightError(f"could not write --csv {csv_path}: {exc.strerror or exc}",
                                        hint=f"{file_system_hint(exc)}, or give --csv another path")
    if json_output:
        typer.echo(json.dumps(_json(protocol, rows, data, colour, [path for path, _ in unpaired]), indent=2))
    else:
        _table(protocol, rows, data, f"colour {colour}" + ("" if blacks == "model" else f", blacks {blacks}"))
    if csv_problem is not None:
        report_error(csv_problem)
        raise typer.Exit(EXIT_FAILURE)
    _exit_status(rows, len(pairing.pairs), len(unpaired))


def _exit_status(rows: list[Row], pairs: int, unpaired: int) -> None:
    """As ``evaluate`` per row: every model with no score at all fails the run (exit 1); a row whose
    means cover part of the set (images not scored, nan scores) or unpaired files make it partial (exit 3)."""
    if not any(all(m.count or m.infinite for m in row.summary.values()) for row in rows if row.entry is not None):
        report_error(LowlightError(f"no model could score the {pairs} image(s) (listed above)", hint="see each image's reason above"))
        raise typer.Exit(EXIT_FAILURE)
    partial = [f"{row.label} ({', '.join(part for part in (f'{row.failed} not scored' if row.failed else '', f'{row.nan} nan' if row.nan else '') if part)})"
               for row in rows if row.failed or row.nan]
    if partial:
        err.print(escape(f"some rows' means cover part of the {pairs} images: {'; '.join(partial)}"))
    if unpaired:
        err.print(f"{unpaired} image(s) had no partner (listed above): the means cover the {pairs} pairs only")
    if partial or unpaired:
        raise typer.Exit(EXIT_PARTIAL)


def _best(protocol: Protocol, rows: list[Row]) -> dict[str, float]:
    """Per metric, the best mean among the models (the input row does not compete). A mean leaves out
    infinite scores (an output identical to its reference), so means whose models have different
    numbers of them are not comparable: such a metric has no best."""
    best = {}
    unranked = _unranked(protocol, rows)
    for name in protocol.metrics:
        if name in unranked:
            continue
        means = [m for m in (row.summary[name].mean for row in rows if row.entry is not None) if math.isfinite(m)]
        if means:
            best[name] = max(means) if metric_info(name).higher_is_better else min(means)
    return best


def _unranked(protocol: Protocol, rows: list[Row]) -> list[str]:
    """The metrics whose models' means leave out different numbers of infinite scores."""
    return [name for name in protocol.metrics
            if len({row.summary[name].infinite for row in rows if row.entry is not None}) > 1]


def _table(protocol: Protocol, rows: list[Row], data: Path, settings: str) -> None:
    best, unranked = _best(protocol, rows), _unranked(protocol, rows)
    none_best = (f" (none for {', '.join(unranked)}: the means leave out different numbers of infinite scores, "
                 "outputs identical to their references)") if unranked else ""
    table = Table(title=f"lowlight compare on {escape(str(data))}",
                  caption=f"protocol: {escape(protocol.describe())}; {settings}; outputs rounded to each input's bit depth; "
                          f"the best model's mean in bold{none_best}")
    table.add_column("model")
    table.add_column("architecture")
    table.add_column("weights")
    for name in protocol.metrics:
        table.add_column(f"{name} {'↑' if metric_info(name).higher_is_better else '↓'}", justify="right")
    table.add_column("images", justify="right")
    for row in rows:
        cells = []
        for name in protocol.metrics:
            mean = row.summary[name].mean
            text = f"{mean:.4f}" if math.isfinite(mean) else str(mean)
            text = f"[bold]{text}[/]" if row.entry is not None and best.get(name) == mean else text
            infinite = row.summary[name].infinite
            cells.append(text + (f" (+{infinite} inf)" if infinite and math.isfinite(mean) else ""))
        images = f"{len(row.scores) - row.failed}/{len(row.scores)}" + (f" ({row.nan} nan)" if row.nan else "")
        if row.entry is None:
            table.add_row(INPUT_ROW, "-", "the low images as they are", *cells, images)
        else:
            table.add_row(escape(row.entry.label), escape(row.entry.architecture), escape(row.entry.weights), *cells, images)
    print_table(out, table)


def _json(protocol: Protocol, rows: list[Row], data: Path, colour: str, unpaired: list[str]) -> dict:
    return {
        "version": __version__,
        "protocol": protocol.as_dict(),
        "data": str(data),
        "colour": colour,
        "unpaired": unpaired,
        "rows": [
            {"model": row.label,
             "architecture": None if row.entry is None else row.entry.architecture,
             "weights": None if row.entry is None else row.entry.weights,
             "inference": None if row.entry is None else row.entry.inference,
             **{k: v for k, v in json_report(protocol, row.scores).items() if k not in ("version", "protocol")}}
            for row in rows
        ],
    }


def _csv(protocol: Protocol, rows: list[Row], unpaired: list[tuple[str, str]]) -> str:
    """A line per model and image, ``model,name,<metrics>,error,warnings`` (as ``evaluate``'s CSV, with
    the model first), after comment lines with the protocol and what each model ran with; the files
    that had no partner last, with their reason as the error."""
    buffer = io.StringIO()
    buffer.write(f"# lowlight {__version__} compare; protocol: {protocol.describe()}\n")
    for entry in (row.entry for row in rows if row.entry is not None):
        settings = ", ".join(f"{k} {v}" for k, v in entry.inference.items())
        buffer.write(f"# {entry.label}: {entry.architecture}, {entry.weights}; {settings}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "name", *protocol.metrics, "error", "warnings"])
    for row in rows:
        for s in row.scores:
            writer.writerow([row.label, s.name,
                             *(repr(s.values[m]) if m in s.values else "" for m in protocol.metrics), s.error or "",
                             "; ".join(s.warnings)])
    for name, reason in unpaired:
        writer.writerow(["", name, *("" for _ in protocol.metrics), reason, ""])
    return buffer.getvalue()
