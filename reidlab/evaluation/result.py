"""An evaluation result: metrics + the settings that produced them + per-query arrays.

Metrics are fractions in [0, 1] (``mAP = 0.7494``), as torchreid returns them; multiply by 100
for the percentages papers print. Serialises to JSON (``to_json`` / ``from_json``) and to one
flat dict for a pandas results table (``to_row``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PER_QUERY_KEYS = ("ap", "inp", "first_hit_rank", "num_positives", "valid", "pid", "camid", "path")
# kept by ``evaluate(..., keep_topk=k)``, for the coverage cue (reidlab.evaluation.coverage)
TOPK_QUERY_KEYS = ("top_gallery", "boxed")
PER_GALLERY_KEYS = ("pid", "camid", "boxed")
_BOOL_KEYS = ("valid", "boxed")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else x
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _arrays(d: dict) -> dict[str, np.ndarray]:
    """Per-query or per-gallery JSON lists back to arrays of their dtypes."""
    out = {}
    for k, v in d.items():
        if k in ("ap", "inp"):
            out[k] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
        elif k in _BOOL_KEYS:
            out[k] = np.asarray(v, dtype=bool)
        elif k == "path":
            out[k] = np.asarray(v, dtype=object)
        else:
            out[k] = np.asarray(v, dtype=np.int64)
    return out


@dataclass
class EvalResult:
    """Result of :func:`reidlab.evaluation.evaluate`.

    Attributes:
        metrics: ``mAP``, ``mINP``, ``rank1``, ``rank5``, ``rank10``, ``rank20``, ``cmc``
            (list, ranks 1..max_rank), ``num_valid_queries``, ``num_skipped_queries``.
        settings: everything that produced the numbers (distance, normalize, flip, ap, rerank
            and its params, input size, mean/std, checkpoint, model, dataset, anonymization of
            query and gallery, feature layer, ...).
        per_query: arrays of length Q in query order: ``ap``, ``inp`` (NaN when skipped),
            ``first_hit_rank`` (1-based, -1 when skipped), ``num_positives``, ``valid``,
            ``pid``, ``camid``, ``path``; with ``evaluate(..., keep_topk=k)`` also
            ``top_gallery`` (``(Q, k)`` gallery indices of each query's k nearest items after the
            Market-1501 rule, ``-1`` padding) and ``boxed`` (the crop has a face box: the
            query anonymizer anonymizes it, or would).
        per_gallery: with ``keep_topk``: arrays of length G in gallery order: ``pid``,
            ``camid``, ``boxed``; else empty.
    """

    metrics: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    per_query: dict[str, np.ndarray] = field(default_factory=dict)
    per_gallery: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mAP(self) -> float:
        return float(self.metrics["mAP"])

    @property
    def rank1(self) -> float:
        return float(self.metrics["rank1"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": _jsonable(self.metrics),
            "settings": _jsonable(self.settings),
            "per_query": _jsonable(self.per_query),
            "per_gallery": _jsonable(self.per_gallery),
        }

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """The result as JSON text (NaN written as null); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> EvalResult:
        """Read a result from a JSON file path or JSON text."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text()
        d = json.loads(text)
        pq, pg = _arrays(d.get("per_query", {})), _arrays(d.get("per_gallery", {}))
        metrics = dict(d["metrics"])
        for k in ("mAP", "mINP"):
            if metrics.get(k) is None:
                metrics[k] = float("nan")
        return cls(metrics=metrics, settings=d.get("settings", {}), per_query=pq, per_gallery=pg)

    def to_row(self, prefix_settings: bool = False) -> dict[str, Any]:
        """One flat dict (scalars only) for a pandas results table.

        Scalar metrics, then settings flattened with ``.`` (``query_anonymization.method``);
        lists become JSON strings; the CMC curve and per-query arrays are left out.
        """
        row: dict[str, Any] = {k: v for k, v in self.metrics.items() if k != "cmc"}

        def flat(prefix: str, obj: Any) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    flat(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(obj, (list, tuple, np.ndarray)):
                row[prefix] = json.dumps(_jsonable(obj))
            else:
                row[prefix] = _jsonable(obj)

        flat("settings" if prefix_settings else "", self.settings)
        return row

    def summary(self) -> str:
        """A short human-readable line of the main metrics (percentages)."""
        m = self.metrics
        return (
            f"mAP {100 * m['mAP']:.2f}  rank-1 {100 * m['rank1']:.2f}  rank-5 {100 * m['rank5']:.2f}"
            f"  rank-10 {100 * m['rank10']:.2f}  mINP {100 * m['mINP']:.2f}  "
            f"({m['num_valid_queries']} queries, {m['num_skipped_queries']} skipped)"
        )
