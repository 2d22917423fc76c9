"""Evaluation: feature extraction, distances, re-ranking, re-ID metrics, results.

>>> from reidlab.evaluation import rank_metrics
>>> m = rank_metrics([[0.2, 0.1, 0.4]], [7], [7, 3, 7], [0], [1, 1, 2])
>>> round(m.mAP, 4)   # positives at ranks 2 and 3: (1/2 + 2/3) / 2
0.5833

Submodules (imported on first use, so ``import reidlab.evaluation`` stays cheap):
:mod:`.metrics` (CMC, mAP, mINP, per-query AP), :mod:`.distance`, :mod:`.rerank`,
:mod:`.features`, :mod:`.result` (:class:`EvalResult`), :mod:`.config` (:class:`EvalConfig`, the
settings of :func:`evaluate`), :mod:`.evaluate`, :mod:`.coverage` (the coverage cue: is being
anonymized itself a matching cue?).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "rank_metrics": "metrics",
    "RankMetrics": "metrics",
    "positive_ranks": "metrics",
    "single_gallery_shot_cmc": "metrics",
    "pairwise_distance": "distance",
    "re_ranking": "rerank",
    "re_ranking_features": "rerank",
    "extract_features": "features",
    "forward_features": "features",
    "FeatureExtractor": "features",
    "EvalResult": "result",
    "coverage_cue": "coverage",
    "result_coverage_cue": "coverage",
    "top_valid_matches": "coverage",
}

# ``evaluate`` is both a submodule and its function: import it now (NumPy only, no torch) so the
# package attribute is the function, not the module a later submodule import would set.
from reidlab.evaluation.config import EvalConfig
from reidlab.evaluation.evaluate import evaluate

__all__ = [
    "EvalConfig",
    "EvalResult",
    "FeatureExtractor",
    "RankMetrics",
    "coverage_cue",
    "evaluate",
    "extract_features",
    "forward_features",
    "pairwise_distance",
    "positive_ranks",
    "rank_metrics",
    "re_ranking",
    "re_ranking_features",
    "result_coverage_cue",
    "single_gallery_shot_cmc",
    "top_valid_matches",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = importlib.import_module(f"reidlab.evaluation.{_EXPORTS[name]}")
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reidlab.evaluation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
