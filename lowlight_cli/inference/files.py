"""Enhancing files: plan input -> output paths, then read, enhance and write one file at a time."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DiskFullError, ImageError, ModelOutputError, UsageError
from ..io import DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, ImageData, InputFile, SkippedFile, output_path, read_image, read_size, write_image
from .engine import Enhancer, EventFn


@dataclass(frozen=True)
class FileJob:
    """One input image and where its enhanced version goes.

    ``megapixels``: the input's size from its header (0 when unreadable), to measure progress by.
    """

    source: InputFile
    target: Path
    megapixels: float = 0.0


@dataclass
class FileResult:
    """What happened to one file; ``status`` is ``written``, ``skipped`` or ``failed``;
    ``curve_scale``: the curve model's maps were estimated at ``1/curve_scale`` resolution (None:
    the model has no curves); ``tile``: the tile side it ran with (0: the whole image)."""

    job: FileJob
    status: str
    error: str | None = None
    hint: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0
    curve_scale: int | None = None
    tile: int | None = None

    def as_dict(self) -> dict:
        return {
            "input": str(self.job.source.path),
            "output": str(self.job.target),
            "status": self.status,
            "error": self.error,
            "hint": self.hint,
            "notes": self.notes,
            "seconds": round(self.seconds, 4),
            "megapixels": round(self.megapixels, 4),
            "curve_scale": self.curve_scale,
            "tile": self.tile,
        }


def drop_own_outputs(
    items: Sequence[InputFile],
    out_dir: Path,
    *,
    suffix: str = "",
    ext: str | None = None,
    mirror_tree: bool = True,
) -> tuple[list[InputFile], list[SkippedFile]]:
    """The inputs that are not outputs of this same run, and the ones that are.

    When the output folder is (or lies inside) an input folder, a rerun finds the last run's
    outputs among the inputs: ``a.png`` -> ``a_bright.png`` with ``--suffix _bright``, and
    ``a_bright.png`` would become ``a_bright_bright.png``. An input whose path is the output of
    another input of the run is such an output: it is passed over, not enhanced again.

    Only with a ``suffix``: without one, ``a.png`` beside ``a.jpg`` (``--ext png``) may be an
    original as well as an earlier output, and nothing tells them apart, so it stays an input and
    :func:`plan_jobs` refuses to write over it.
    """
    if not suffix:
        return list(items), []
    producers: dict[Path, list[InputFile]] = {}
    for item in items:
        producers.setdefault(output_path(item, out_dir, suffix=suffix, ext=ext, mirror_tree=mirror_tree).resolve(), []).append(item)
    kept, passed_over = [], []
    for item in items:
        others = [p for p in producers.get(item.path.resolve(), []) if p is not item]
        if others:
            passed_over.append(SkippedFile(item.path, "an earlier run's output", detail=f"written for {others[0].path.name}"))
        else:
            kept.append(item)
    return kept, passed_over


def plan_jobs(
    items: Sequence[InputFile],
    out_dir: Path,
    *,
    suffix: str = "",
    ext: str | None = None,
    mirror_tree: bool = True,
    target: Path | None = None,
) -> list[FileJob]:
    """Pair every input with its output path (and its size, read from the header).

    ``target``: the output file of a single input (``-o result.jpg``), instead of a path in ``out_dir``.

    Raises:
        UsageError: two inputs would write the same output (e.g. ``a.png`` and ``a.jpg`` with
            ``--ext png``), or an output would overwrite its own input or another input.
    """
    if target is not None and len(items) != 1:
        raise UsageError(f"-o {target} names one file, but {len(items)} images were found",
                         hint="give an output folder with -o (e.g. -o enhanced/) to enhance several")
    jobs = [
        FileJob(item, target or output_path(item, out_dir, suffix=suffix, ext=ext, mirror_tree=mirror_tree), _megapixels(item.path))
        for item in items
    ]
    for job in jobs:
        if job.target.suffix.lower() not in SUPPORTED_EXTENSIONS:  # an input named without an image extension
            raise UsageError(f"{job.source.path}: its output {job.target.name} would have no image extension to choose "
                             "its format by", hint="give --ext png (or jpg, tif, webp) to choose the outputs' format")
    seen: dict[Path, FileJob] = {}
    inputs = {item.path.resolve(): item for item in items}
    for job in jobs:
        key = job.target.resolve()
        other = inputs.get(key)
        if other is not None and other is not job.source:
            raise UsageError(f"{job.source.path} would be written to {job.target}, which is an input of this run "
                             "(an original, or an earlier run's output: nothing tells them apart)",
                             hint="write to another folder (-o DIR), or name the outputs with --suffix (e.g. _bright), "
                                  "which a rerun recognises")
        if key in seen:
            first = seen[key].source.path
            same_name = first.name == job.source.path.name  # the same name in two folders: a suffix renames both alike
            raise UsageError(
                f"{first} and {job.source.path} would both be written to {job.target}",
                hint=("enhance each folder into its own output folder (separate runs with their own -o)" if same_name
                      else "use --suffix, --ext auto, or separate runs"),
            )
        if key == job.source.path.resolve():
            raise UsageError(f"{job.target} would overwrite its own input", hint="choose another --output or a --suffix")
        seen[key] = job
    return jobs


def _megapixels(path: Path) -> float:
    size = read_size(path)
    return size[0] * size[1] / 1e6 if size else 0.0


def enhance_file(
    enhancer: Enhancer,
    job: FileJob,
    *,
    quality: int = 95,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_event: EventFn | None = None,
    read: Callable[..., ImageData] = read_image,
) -> FileResult:
    """Read ``job.source``, enhance it, write ``job.target`` atomically (bit depth, alpha, metadata kept).

    Image problems (unreadable input, unwritable output) and unusable model output (NaN, a flat
    image) are caught and returned as a ``failed`` result naming the file, so a batch goes on and
    nothing is written for it; anything else propagates. ``read``: how the file is read, called
    as ``read(path, max_pixels=...)`` (:meth:`lowlight_cli.io.prefetch.ImagePrefetch.take` hands
    out an image read ahead).
    """
    start = time.perf_counter()
    try:
        image = read(job.source.path, max_pixels=max_pixels)
        enhanced = enhancer.enhance_image(image, on_event)
        notes = write_image(job.target, dataclasses.replace(image, rgb=enhanced), quality=quality)
    except DiskFullError:
        raise  # every file after it would fail the same way, after its work: the batch stops here
    except ImageError as exc:
        return FileResult(job, "failed", error=str(exc), hint=exc.hint, seconds=time.perf_counter() - start)
    except ModelOutputError as exc:
        return FileResult(job, "failed", error=f"{job.source.path}: {exc}", hint=exc.hint, seconds=time.perf_counter() - start)
    return FileResult(
        job,
        "written",
        notes=notes,
        seconds=time.perf_counter() - start,
        megapixels=image.height * image.width / 1e6,
        curve_scale=enhancer.curves_ran_at,
        tile=enhancer.last_tile,
    )
