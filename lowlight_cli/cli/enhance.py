"""`lowlight enhance`: brighten photos, files and folders, tiled and batched."""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .. import __version__
from ..errors import DiskFullError, UsageError
from ..inference import Enhancer, InferenceConfig, Notice, TileProgress
from ..inference.files import FileJob, FileResult, drop_own_outputs, enhance_file, plan_jobs
from ..io import DEFAULT_MAX_PIXELS, SkippedFile, scan_inputs
from ..io.formats import SUPPORTED_EXTENSIONS, format_for_path
from ..io.read import TOO_LARGE_HINT
from ..io.prefetch import ImagePrefetch
from ..io.write import check_output_folder, remove_stale_temps
from .console import err, out
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, handle_errors, interrupt_text
from .loading import announce, describe_run, load_model, model_for_weights
from .options import (
    BatchSizeOpt,
    EnhanceBlacksOpt,
    EnhanceColourOpt,
    CompileOpt,
    DeviceOpt,
    EnhanceCurveScaleOpt,
    EnhanceModelOpt,
    EnhancePrecisionOpt,
    JsonOpt,
    NoPretrainedOpt,
    OutDirOpt,
    OverlapOpt,
    TileOpt,
    VerboseOpt,
    WeightsOpt,
    parse_curve_scale,
)

DEFAULT_MODEL = "crnet-curve-dn"  # bundled weights: weights/crnet-curve-dn-lol
EXT_CHOICES = ("auto", "png", "jpg", "tif", "webp")
EXT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}

EPILOG = """
Examples:\n
  lowlight enhance examples/ -o enhanced/\n
  lowlight enhance photo.jpg --model crnet --weights ckpt/\n
  lowlight enhance ~/Pictures/night --recursive -o out/ --tile 512 --batch-size 4 --device cuda
"""

# photos read ahead while the one before is enhanced: up to this size (an 8-bit 50 MP photo is 150 MB)
READ_AHEAD_MAX_MEGAPIXELS = 50.0
CLI_TOO_LARGE_HINT = "raise --max-pixels if you trust this file, or downscale it first"


@handle_errors
def enhance(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False,
                                                 readable=False)],  # an unreadable file is reported like any failed one
    output: OutDirOpt = Path("enhanced"),
    model: EnhanceModelOpt = None,
    weights: WeightsOpt = None,
    no_pretrained: NoPretrainedOpt = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders; mirror the tree under OUTPUT.")] = False,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended to each output file's stem.")] = "",
    ext: Annotated[str, typer.Option("--ext", help="Output format: auto (same as input), png, jpg (jpeg), tif (tiff) or webp.")] = "auto",
    quality: Annotated[Optional[int], typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality (lossy outputs only; default 95).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Leave existing outputs alone.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be written; write nothing.")] = False,
    device: DeviceOpt = "auto",
    precision: EnhancePrecisionOpt = "auto",
    tile: TileOpt = None,
    overlap: OverlapOpt = None,
    batch_size: BatchSizeOpt = 4,
    compile_: CompileOpt = False,
    curve_scale: EnhanceCurveScaleOpt = None,
    colour: EnhanceColourOpt = None,
    blacks: EnhanceBlacksOpt = None,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse images larger than this (decompression bombs).")] = DEFAULT_MAX_PIXELS,
    verbose: VerboseOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Enhance low-light photos. Bit depth, alpha, EXIF and ICC profiles are kept; writes are atomic.

    OUTPUT is a folder, or with one input image a file name (-o result.jpg; its extension sets the format).
    Ctrl-C or SIGTERM stops at once and leaves no half-written file; rerun with --skip-existing to do the rest.
    """
    if overwrite and skip_existing:
        raise UsageError("--overwrite and --skip-existing contradict each other")
    if "/" in suffix or "\\" in suffix or suffix in (".", ".."):
        raise UsageError(f"--suffix {suffix!r} is added to file names and may not hold a path",
                         hint="choose the output folder with -o; --suffix takes plain text such as _bright")
    ext = EXT_ALIASES.get(ext.lower(), ext.lower())
    if ext not in EXT_CHOICES:
        raise UsageError(f"unknown --ext {ext!r}", hint=f"use one of {', '.join(EXT_CHOICES)}")
    target = _output_file(output, ext=ext, suffix=suffix)
    found = scan_inputs(inputs, recursive=recursive, exclude=[output])  # a rerun must not take the last run's outputs
    if not found.files:
        _report_passed_over(found.skipped, [], verbose=verbose)
        raise UsageError("no images found in " + ", ".join(map(str, inputs)), hint="folders are scanned for png, jpg, tif, webp and bmp files; add --recursive for sub-folders")
    new_ext = None if ext == "auto" else f".{ext}"
    if target is None:  # outputs written among the inputs (-o the same folder, --suffix): a rerun passes them over
        found.files, own = drop_own_outputs(found.files, output, suffix=suffix, ext=new_ext, mirror_tree=recursive)
        found.skipped = sorted(found.skipped + own, key=lambda item: item.path)
        if not found.files:
            _report_passed_over(found.skipped, [], verbose=verbose)
            raise UsageError("every image found is an output of this same command", hint="choose another --output or --suffix")
    jobs = plan_jobs(found.files, output, suffix=suffix, ext=new_ext, mirror_tree=recursive, target=target)
    blocked = [j for j in jobs if j.target.is_dir()]
    if blocked:  # neither skipped as "existing" nor overwritable
        raise UsageError(f"{blocked[0].target} is a folder where an output file would go" + (f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""),
                         hint="move or rename that folder, or choose another --output")
    existing = [j for j in jobs if j.target.exists()]
    if existing and not (overwrite or skip_existing):
        shown = ", ".join(str(j.target) for j in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise UsageError(f"{len(existing)} output(s) exist: {shown}", hint="pass --overwrite to replace them or --skip-existing to keep them")
    skipped = {j.target for j in existing} if skip_existing else set()
    todo = [j for j in jobs if j.target not in skipped]
    check_output_folder(output if target is None else target.parent)  # a file, read-only folder or full disk: said now, not after all the work
    scale = parse_curve_scale(curve_scale)
    model, weights = model_for_weights(model, weights, DEFAULT_MODEL)
    net = load_model(model, weights, no_pretrained, scale)
    if scale is None and getattr(net, "supports_curve_scale", False) and net.info.enhance_auto_curve_scale:
        scale = "auto"  # the photo models: curves at reduced resolution above 8 MP unless told (docs/performance.md)
    if colour is None:  # the photo model keeps a photo's colour balance unless told (docs/photo-quality.md)
        colour = getattr(net.info, "enhance_colour", "model")
    if blacks is None:  # ... and keeps a dark photo's blacks unless told (docs/photo-quality.md)
        blacks = getattr(net.info, "enhance_blacks", "model")
    config = InferenceConfig(device=device, precision=precision, tile=tile, overlap=overlap, batch_size=batch_size,
                             compile=compile_, curve_scale="auto" if scale == "auto" else None, colour=colour,
                             blacks=blacks, cpu_bf16=True)
    enhancer = Enhancer(net, config)
    if dry_run:  # everything a run checks first has been checked (options, model, weights, device, output folder)
        _report_passed_over(found.skipped, [], verbose=verbose)
        _dry_run_report(jobs, skipped, model=model, enhancer=enhancer, json_output=json_output, ignored=found.skipped)
        raise typer.Exit(EXIT_OK)
    stale = [p for folder in sorted({j.target.parent for j in jobs}) for p in remove_stale_temps(folder)]
    megapixels = sum(j.megapixels for j in todo)
    run = describe_run(model, net, enhancer, explicit=weights is not None)
    announce(model, net, f"{run}: {len(todo)} image(s), {megapixels:.2f} MP")
    _report_passed_over(found.skipped, stale, verbose=verbose)
    if (exactness := enhancer.tile_exactness_note()) is not None:
        err.print(f"[yellow]note:[/] {escape(exactness)}")
    if quality is not None and todo and not any(format_for_path(j.target) in ("jpeg", "webp") for j in todo):
        err.print(f"[yellow]note:[/] --quality {quality} applies to JPEG and WebP outputs; these are "
                  f"{', '.join(sorted({format_for_path(j.target).upper() for j in todo}))} (--ext jpg or webp makes lossy ones)")
    quality = 95 if quality is None else quality
    results: list[FileResult] = []
    try:
        _run(enhancer, todo, results, quality=quality, max_pixels=max_pixels)
    except DiskFullError:  # the next images would fail the same way, after their work: stop, say what is kept
        written = sum(r.status == "written" for r in results)
        err.print(f"[red]the disk is full[/] at image {len(results) + 1} of {len(todo)}: {written} written to "
                  f"{escape(str(output))} are kept; nothing is left half-written")
        raise
    except KeyboardInterrupt as exc:
        written = sum(r.status == "written" for r in results)
        failed = sum(r.status == "failed" for r in results)
        err.print(f"[yellow]{escape(interrupt_text(exc))}[/] after {len(results)} of {len(todo)} image(s): {written} written to {escape(str(output))}"
                  + (f", {failed} failed" if failed else "") + "; nothing is left half-written")
        err.print(f"[dim]hint:[/] run the same command again with --skip-existing to enhance the other {len(todo) - len(results)}")
        if json_output:  # what was written before the stop (and what was skipped), for the script that asked
            done = results + [FileResult(j, "skipped") for j in jobs if j.target in skipped]
            typer.echo(json.dumps(_summary(done, model=model, enhancer=enhancer, ignored=found.skipped) | {"interrupted": True}, indent=2))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    results += [FileResult(j, "skipped") for j in jobs if j.target in skipped]
    _report(results, model=model, enhancer=enhancer, json_output=json_output, ignored=found.skipped)
    failed = sum(r.status == "failed" for r in results)
    written = sum(r.status == "written" for r in results)
    if failed:
        raise typer.Exit(EXIT_PARTIAL if written or len(results) > failed else EXIT_FAILURE)


def _dry_run_report(jobs: list[FileJob], skipped: set[Path], *, model: str, enhancer: Enhancer, json_output: bool,
                    ignored: list[SkippedFile] = ()) -> None:
    """What a run would write and skip: ``input -> output`` lines on stdout, or with ``--json`` one
    JSON object (``dry_run``, the model, and every job with its action)."""
    todo = [j for j in jobs if j.target not in skipped]
    if json_output:
        plan = [{"input": str(j.source.path), "output": str(j.target), "action": "skip" if j.target in skipped else "write"}
                for j in jobs]
        summary = {"dry_run": True, "model": model, "device": str(enhancer.device), "precision": enhancer.precision,
                   "to_write": len(todo), "to_skip": len(jobs) - len(todo), "jobs": plan, "ignored": _ignored(list(ignored))}
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for job in todo:
            out.print(f"{job.source.path} -> {job.target}", markup=False, highlight=False)
    err.print(f"dry run: {len(todo)} to write, {len(jobs) - len(todo)} to skip")


# image formats lowlight neither reads nor writes: -o photo.gif is a mistaken file name, not a folder to make
OTHER_IMAGE_EXTENSIONS = frozenset({".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".ico", ".svg",
                                    ".ppm", ".pgm", ".pnm", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf"})


def _output_file(output: Path, *, ext: str, suffix: str) -> Path | None:
    """``output`` when it names an image file rather than a folder (``-o result.jpg``), else None."""
    if output.suffix.lower() in OTHER_IMAGE_EXTENSIONS and not output.is_dir():
        raise UsageError(f"-o {output}: lowlight does not write {output.suffix} files",
                         hint=f"name a file ending in one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}, or a folder")
    if output.suffix.lower() not in SUPPORTED_EXTENSIONS or output.is_dir():
        return None
    if suffix:
        raise UsageError(f"--suffix names files in an output folder, but -o {output} is a file name",
                         hint="drop --suffix, or give a folder with -o")
    if ext != "auto" and format_for_path(output) != format_for_path(f"x.{ext}"):
        raise UsageError(f"--ext {ext} disagrees with the output file name {output.name}",
                         hint="the output file's extension sets its format; drop --ext or change the name")
    return output


def _report_passed_over(skipped: list[SkippedFile], stale: list[Path], *, verbose: bool) -> None:
    """Say what was found but not taken: a count by reason, every name with ``--verbose``."""
    counted = [s for s in skipped if not s.quiet]  # hidden files (.DS_Store, ...) only with --verbose
    if counted:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in Counter(s.reason for s in counted).most_common())
        more = "" if verbose else " (--verbose lists them)"
        folders = sum(s.path.is_dir() for s in counted)
        what = " and ".join(part for count, part in ((len(counted) - folders, f"{len(counted) - folders} file(s)"),
                                                     (folders, f"{folders} folder(s)")) if count)
        err.print(f"[yellow]ignored {what}:[/] {escape(reasons)}{more}")
    if stale:
        err.print(f"removed {len(stale)} temporary file(s) left by an interrupted run")
    if verbose:
        for item in skipped:
            detail = f" ({item.detail})" if item.detail else ""
            err.print(f"  ignored {item.path}: {item.reason}{detail}", markup=False, highlight=False)
        for path in stale:
            err.print(f"  removed {path}", markup=False, highlight=False)


READ_AHEAD_VARIABLE = "LOWLIGHT_READ_AHEAD"  # 1 or 0: read ahead, or not, whatever the device


def reads_ahead(enhancer: Enhancer) -> bool:
    """Whether to decode the next photo while one is enhanced: when the model runs on a GPU (or
    another device), whose work leaves the CPU idle. Not on the CPU, where torch's threads take
    every core: on a 2-core AMD EPYC Zen 3 a folder of four 12 MP JPEGs gained nothing beyond the
    machine's drift (faster in 0 of 4 rounds in one run, 2 of 4 in another) and peaked 135 MB
    higher (docs/performance.md, session 32). ``LOWLIGHT_READ_AHEAD=1`` or ``0`` decides instead."""
    setting = os.environ.get(READ_AHEAD_VARIABLE)
    if setting in ("0", "1"):
        return setting == "1"
    return enhancer.device.type != "cpu"


def _run(enhancer: Enhancer, jobs: list[FileJob], results: list[FileResult], *, quality: int, max_pixels: int) -> None:
    """Enhance ``jobs`` in order, appending to ``results`` (so an interrupt leaves the ones done).

    Progress counts megapixels (from the headers), so the time estimate holds when sizes vary. When
    the model runs off the CPU (:func:`reads_ahead`), once a photo is read the next is read on a
    background thread while this one is enhanced (photos up to :data:`READ_AHEAD_MAX_MEGAPIXELS`,
    so that at most one extra photo is held in memory; the first read, on this thread, has loaded
    the decoders' modules before any other thread reads).
    """
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.2f}/{task.total:.2f} MP"),
               TimeElapsedColumn(), TimeRemainingColumn())
    hints: set[str] = set()
    with Progress(*columns, console=err, transient=True) as progress:
        files_task = progress.add_task("images", total=sum(j.megapixels for j in jobs))
        tiles_task = progress.add_task("tiles", total=1, visible=False)

        def on_event(event: object) -> None:
            if isinstance(event, TileProgress):
                progress.update(tiles_task, completed=event.done, total=event.total, visible=event.total > 1)
            elif isinstance(event, Notice):
                progress.console.print(f"[yellow]note:[/] {escape(event.message)}")

        prefetch = ImagePrefetch()
        ahead = reads_ahead(enhancer)
        try:
            for number, job in enumerate(jobs, 1):
                progress.update(files_task, description=f"{number}/{len(jobs)} {escape(job.source.path.name)}")
                following = jobs[number] if number < len(jobs) else None
                # the next decodes once this one is read, while it is enhanced: a photo whose size is
                # known (a header that cannot be read gives 0) and within the cap
                then = (following.source.path if ahead and following is not None
                        and 0 < following.megapixels <= READ_AHEAD_MAX_MEGAPIXELS else None)
                result = enhance_file(enhancer, job, quality=quality, max_pixels=max_pixels, on_event=on_event,
                                      read=functools.partial(prefetch.take, then=then))
                results.append(result)
                if result.status == "failed":
                    progress.console.print(f"[red]failed:[/] {escape(result.error)}")
                    hint = CLI_TOO_LARGE_HINT if result.hint == TOO_LARGE_HINT else result.hint  # the flag, not the argument
                    if hint and hint not in hints:  # said once, not for every file
                        hints.add(hint)
                        progress.console.print(f"[dim]hint:[/] {escape(hint)}")
                # the note names the input too when the output is named otherwise (a damaged input is the input's fault)
                label = job.target.name if job.target.name == job.source.path.name else f"{job.source.path.name} -> {job.target.name}"
                for note in result.notes:
                    progress.console.print(f"[yellow]note:[/] {escape(label)}: {escape(note)}")
                progress.update(tiles_task, visible=False)
                progress.advance(files_task, job.megapixels)
        finally:  # a photo read ahead and not enhanced (an interrupt) is let go, once its decoder has given stderr back
            prefetch.discard(wait=True)


def _cli_hint(result: dict) -> dict:
    """A file's result with the hint the command gives (the option, not the library's argument)."""
    return result | {"hint": CLI_TOO_LARGE_HINT} if result.get("hint") == TOO_LARGE_HINT else result


def _ignored(skipped: list[SkippedFile]) -> list[dict]:
    """The files found and passed over, for ``--json`` (hidden ones, never counted, left out)."""
    return [{"path": str(s.path), "reason": s.reason, **({"detail": s.detail} if s.detail else {})}
            for s in skipped if not s.quiet]


def _summary(results: list[FileResult], *, model: str, enhancer: Enhancer, ignored: list[SkippedFile] = ()) -> dict:
    """The ``--json`` summary of a run: settings, counts by status, every file's result and the
    files passed over (``ignored``: unsupported, links, an earlier run's outputs, ...)."""
    return {
        "version": __version__,
        "model": model,
        "device": str(enhancer.device),
        "precision": enhancer.precision,
        "tile": enhancer.tile,
        "colour": enhancer.config.colour,
        "blacks": enhancer.config.blacks,
        **{s: sum(r.status == s for r in results) for s in ("written", "skipped", "failed")},
        "files": [_cli_hint(r.as_dict()) for r in results],
        "ignored": _ignored(list(ignored)),
    }


def _report(results: list[FileResult], *, model: str, enhancer: Enhancer, json_output: bool,
            ignored: list[SkippedFile] = ()) -> None:
    summary = _summary(results, model=model, enhancer=enhancer, ignored=ignored)
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    written = [r for r in results if r.status == "written"]
    seconds = sum(r.seconds for r in written)
    mp = sum(r.megapixels for r in written)
    rate = f", {mp / seconds:.2f} MP/s" if seconds > 0 else ""
    listed = " (listed above)" if summary["failed"] else ""
    err.print(f"{summary['written']} written, {summary['skipped']} skipped, {summary['failed']} failed{listed}{rate}")
