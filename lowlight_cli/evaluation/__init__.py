"""Scoring enhanced images under an explicit protocol: pairing, scoring, summaries, reports."""

from __future__ import annotations

from .pairing import ImagePair, Pairing, pair_by_stem
from .protocol import Protocol
from .runner import SetScores, score_test_set
from .scoring import ImageScores, Scorer
from .summary import MetricSummary, summarize

__all__ = [
    "ImagePair",
    "ImageScores",
    "MetricSummary",
    "Pairing",
    "Protocol",
    "Scorer",
    "SetScores",
    "pair_by_stem",
    "score_test_set",
    "summarize",
]
