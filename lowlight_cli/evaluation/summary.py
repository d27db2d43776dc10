"""Per-metric summaries and the report formats (JSON with inf/nan as strings, CSV)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import __version__
from .protocol import Protocol
from .scoring import ImageScores


@dataclass(frozen=True)
class MetricSummary:
    """Statistics of one metric over images with finite scores.

    ``count`` counts finite scores; infinite ones (identical images under PSNR) and NaN ones
    (NIQE of a flat image) are counted apart so the mean stays finite and honest; when every
    score is +inf (all images identical to their references) mean and median are inf.
    """

    mean: float
    median: float
    std: float
    count: int
    infinite: int = 0
    nan: int = 0

    def as_dict(self) -> dict:
        data = {"mean": self.mean, "median": self.median, "std": self.std, "count": self.count}
        if self.infinite:
            data["infinite"] = self.infinite
        if self.nan:
            data["nan"] = self.nan
        return data


def summarize(scores: Sequence[ImageScores], metrics: Sequence[str]) -> dict[str, MetricSummary]:
    """Mean, median, population std and count of each metric over the finite scores (images that
    failed have none)."""
    result = {}
    for name in metrics:
        values = np.array([s.values[name] for s in scores if name in s.values], dtype=np.float64)
        finite = values[np.isfinite(values)]
        # no finite score, every score +inf (identical images under PSNR): the mean is inf, not nan
        none = math.inf if not finite.size and values.size and bool((values == math.inf).all()) else math.nan
        result[name] = MetricSummary(
            mean=float(finite.mean()) if finite.size else none,
            median=float(np.median(finite)) if finite.size else none,
            std=float(finite.std()) if finite.size else math.nan,
            count=int(finite.size),
            infinite=int(np.isinf(values).sum()),
            nan=int(np.isnan(values).sum()),
        )
    return result


def json_number(value: float) -> float | str:
    """JSON has no inf/NaN: write them as the strings ``"inf"``, ``"-inf"`` and ``"nan"``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def json_report(protocol: Protocol, scores: Sequence[ImageScores], extra: dict | None = None) -> dict:
    """``{"version", "protocol", "summary", "images", "failed"}``: the stable JSON shape of ``lowlight evaluate``.

    An image that could not be scored is ``{"name", "error"}`` in ``images``, counted in ``failed``
    and left out of ``summary``; one scored with warnings (a partly decoded JPEG, an unreliable
    NIQE) has them as ``"warnings"``.
    """
    summary = summarize(scores, protocol.metrics)

    def image(s: ImageScores) -> dict:
        if s.error is not None:
            return {"name": s.name, "error": s.error}
        scored = {"name": s.name, **{k: json_number(v) for k, v in s.values.items()}}
        return {**scored, "warnings": list(s.warnings)} if s.warnings else scored

    return {
        "version": __version__,
        "protocol": protocol.as_dict(),
        "summary": {k: {kk: json_number(vv) for kk, vv in v.as_dict().items()} for k, v in summary.items()},
        "images": [image(s) for s in scores],
        "failed": sum(s.error is not None for s in scores),
        **(extra or {}),
    }


def csv_report(protocol: Protocol, scores: Sequence[ImageScores], unpaired: Sequence[tuple[str, str]] = (),
               predictions: str | None = None) -> str:
    """Per-image CSV; the first line is a ``# protocol: ...`` comment, then ``name,<metrics>,error,warnings``
    (``error`` is empty for scored images; failed ones have empty scores; ``warnings``, joined by
    ``"; "``, what an image was scored despite). ``unpaired``: ``(file,
    reason)`` of the files that had no partner, listed last with empty scores, so that a reader of
    the CSV alone sees that the set was partial. ``predictions``: what made them (``--model``
    mode), a second comment line ``# predictions: ...``."""
    buffer = io.StringIO()
    buffer.write(f"# lowlight {__version__}; protocol: {protocol.describe()}\n")
    if predictions:
        buffer.write(f"# predictions: {predictions}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", *protocol.metrics, "error", "warnings"])
    for s in scores:
        writer.writerow([s.name, *(repr(s.values[m]) if m in s.values else "" for m in protocol.metrics), s.error or "",
                         "; ".join(s.warnings)])
    for name, reason in unpaired:
        writer.writerow([name, *("" for _ in protocol.metrics), reason, ""])
    return buffer.getvalue()
