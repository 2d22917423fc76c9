"""The study's experiment grid: models x anonymization conditions x seeds -> a flat results table.

One call, :func:`run_experiment`, does what the reference study did:

1. detect faces once per split (or take ground truth on synthetic data), cached;
2. per model and seed, train on original data (or load given weights);
3. evaluate on original data, on fully anonymized query+gallery for each method, and on
   anonymized queries only (a partly anonymized dataset, where the anonymization itself can
   become a matching cue);
4. retrain on anonymized training data (the study's retraining condition) and evaluate on
   anonymized data;
5. per condition, measure the coverage cue (:mod:`reidlab.evaluation.coverage`): the share of
   crops the anonymizer changes, and whether anonymized queries' wrong matches are anonymized
   crops more often than chance. ``full_coverage=True`` anonymizes every crop (detector boxes
   where found, the head prior elsewhere), which removes that cue.

Anonymization happens on the fly, in memory, on the model's device (see ``reidlab.anonymize``),
so conditions differ only inside the face masks. Every row records its settings; per-query APs
are kept for paired statistics (``reidlab.stats``).

A cell that fails (a model that cannot be built or trained, an anonymizer that raises, ...) does
not stop the grid: its row gets ``status="failed"`` and the ``error``, its metrics are NaN, and
the other cells run. :func:`check_complete` raises afterwards, so a notebook or script that ends
with it fails *after* writing every result.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reidlab.errors import ReidlabError
from reidlab.evaluation.config import EvalConfig

log = logging.getLogger(__name__)


class ExperimentError(ReidlabError):
    """Some cells of the grid failed (their rows hold the errors)."""


@dataclass
class ExperimentConfig:
    """Settings of one experiment grid (all recorded in every results row).

    ``eval``: how every cell is evaluated (:class:`~reidlab.evaluation.EvalConfig`, or a dict of
    its fields; its ``device`` is also where models are trained).
    ``mask="segmentation"`` anonymizes the pixels of the detector's face maps (thresholded at the
    methods' ``mask_threshold``, dilated by ``mask_dilate``; set them in ``method_settings``), an
    image without a face in its map its boxes; the detector must give maps (reidface).
    """

    dataset: str = "synthetic"
    root: str | None = None
    dataset_options: dict = field(default_factory=dict)
    models: tuple[str, ...] = ("tiny",)
    weights: dict = field(default_factory=dict)  # model -> checkpoint; absent: train
    methods: tuple[str, ...] = ("blur", "pixelate", "fill", "zero")
    method_settings: dict = field(default_factory=dict)  # method -> Anonymizer kwargs
    mask: str = "box"
    scale: float = 1.2
    query_only: bool = True  # also anonymize queries only
    retrain: tuple[str, ...] = ("blur",)  # methods to retrain on
    detector: str = "oracle"  # "oracle" = ground truth (synthetic)
    detector_params: dict = field(default_factory=dict)
    fail_closed: float | None = None
    full_coverage: bool = False  # every crop boxed: detections, else fail_closed's head prior
    trust_checkpoint: bool = False  # allow pickled objects in weights files
    seeds: tuple[int, ...] = (0,)
    recipe: str = "tiny"  # reidlab.training.RECIPES entry
    epochs: int | None = None  # None: the recipe's
    train_options: dict = field(default_factory=dict)  # extra TrainConfig fields
    eval: EvalConfig = field(default_factory=EvalConfig)
    out_dir: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.eval, dict):
            self.eval = EvalConfig().replace(**self.eval)
        if self.mask == "segmentation":
            from reidlab.faces.base import detector_class

            if not detector_class(self.detector).gives_maps:
                raise ReidlabError(
                    f"mask='segmentation' needs per-pixel face maps, but detector "
                    f"{self.detector!r} gives boxes only; use detector='reidface' or another mask"
                )


def face_boxes_for(
    dataset, cfg: ExperimentConfig, splits=None, progress: bool = True
) -> tuple[dict, dict]:
    """Face boxes for the splits the grid anonymizes (cached; ``"oracle"`` = ground truth), and
    facts about them: :func:`reidlab.faces.dataset_boxes` with the experiment's detector (and
    ``full_coverage``: every image gets a box). By default the train split is detected only when
    a model is retrained on anonymized data."""
    from reidlab.faces import dataset_boxes

    if splits is None:
        splits = ("train", "query", "gallery") if cfg.retrain else ("query", "gallery")
    return dataset_boxes(
        dataset,
        cfg.detector,
        splits=splits,
        params=cfg.detector_params,
        cache_dir=cfg.cache_dir,
        fail_closed=cfg.fail_closed,
        full_coverage=cfg.full_coverage,
        progress=progress,
    )


def face_maps_for(
    dataset, cfg: ExperimentConfig, splits=None, progress: bool = True
) -> dict | None:
    """Per-pixel face maps for the splits the grid anonymizes when ``cfg.mask ==
    "segmentation"`` (:func:`reidlab.faces.dataset.dataset_face_maps`, cached beside the boxes;
    the same splits as :func:`face_boxes_for`), else ``None``."""
    if cfg.mask != "segmentation":
        return None
    from reidlab.faces.dataset import dataset_face_maps

    if splits is None:
        splits = ("train", "query", "gallery") if cfg.retrain else ("query", "gallery")
    return dataset_face_maps(
        dataset,
        cfg.detector,
        splits=splits,
        params=cfg.detector_params,
        cache_dir=cfg.cache_dir,
        progress=progress,
    )


def _anon_settings(method: str, cfg: ExperimentConfig) -> dict:
    """Anonymizer keyword settings for ``method`` (shared by evaluation and retraining)."""
    return {"method": method, "mask": cfg.mask, "scale": cfg.scale} | dict(
        cfg.method_settings.get(method, {})
    )


def _segmentation_columns(method: str, cfg: ExperimentConfig) -> dict:
    """``mask_threshold`` and ``mask_dilate`` of a cell's anonymizer (the defaults for the
    original condition) when the grid's mask is ``"segmentation"``; else no columns (the box
    grid's rows stay as they were)."""
    if cfg.mask != "segmentation":
        return {}
    from reidlab.anonymize.masks import DEFAULT_MASK_DILATE, DEFAULT_MASK_THRESHOLD

    given = (
        dict(cfg.method_settings.get(method, {})) if method in (*cfg.methods, *cfg.retrain) else {}
    )
    return {
        "mask_threshold": given.get("mask_threshold", DEFAULT_MASK_THRESHOLD),
        "mask_dilate": given.get("mask_dilate", DEFAULT_MASK_DILATE),
    }


def _anonymizer(method: str, cfg: ExperimentConfig):
    from reidlab.anonymize import Anonymizer

    return Anonymizer(**_anon_settings(method, cfg))


def _train_config(
    model_name: str,
    seed: int,
    cfg: ExperimentConfig,
    boxes,
    method,
    progress: bool = False,
    maps: dict | None = None,
):
    """The TrainConfig of one grid cell: ``cfg.recipe`` with the grid's settings, trained on
    original data (``method`` None) or anonymized with ``method`` (with ``maps``, the face maps
    of ``mask="segmentation"``)."""
    from reidlab.paths import runs_dir
    from reidlab.training import TrainConfig

    out = Path(cfg.out_dir or runs_dir() / "experiment") / "models"
    anon = _anon_settings(method, cfg) if method else None
    return TrainConfig.from_recipe(
        cfg.recipe,
        model=model_name,
        dataset=cfg.dataset,
        root=str(cfg.root),
        dataset_options=dict(cfg.dataset_options),
        seed=seed,
        out_dir=str(out / f"{model_name}-seed{seed}-{method or 'original'}"),
        device=cfg.eval.device,
        anonymizer=anon,
        boxes=boxes if anon else None,
        face_maps=maps if anon else None,
        final_eval=False,
        progress=progress,
        **({"epochs": cfg.epochs} if cfg.epochs else {}) | dict(cfg.train_options),
    )


def _train(
    model_name: str,
    seed: int,
    cfg: ExperimentConfig,
    boxes: dict | None,
    method: str | None,
    progress: bool = False,
    maps: dict | None = None,
):
    from reidlab.training import train

    tc = _train_config(model_name, seed, cfg, boxes, method, progress, maps)
    model = train(tc, return_model=True)
    model = model["model_object"]
    model.eval()
    return model


def _load(model_name: str, weights, trust_checkpoint: bool = False):
    """A checkpoint for a registry model, or an exported ONNX / OpenVINO file (or a mapping
    ``{"path": ..., **options}``): :func:`reidlab.models.load_model`."""
    from reidlab.models import load_model

    return load_model(model_name, weights, trust_checkpoint=trust_checkpoint)


METRIC_COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP", "n_queries")
CUE_TOPK = 10  # the coverage cue looks at each query's 10 nearest valid gallery items
_PERCENT = ("mAP", "mINP", "rank1", "rank5", "rank10", "rank20")


def result_columns(result, model) -> dict:
    """A cell's columns from its :class:`~reidlab.evaluation.EvalResult`: ``result.to_row()``
    (every metric and setting, flattened) with the metrics in percent, plus ``n_queries``
    (valid queries), ``ap_definition`` and the model's ``pretrained`` source."""
    row = result.to_row()
    for k in _PERCENT:
        if k in row:
            row[k] = 100 * row[k]
    return row | {
        "n_queries": row["num_valid_queries"],
        "ap_definition": row["ap"],
        "pretrained": getattr(model, "pretrained_source", "n/a"),
    }


def failed_cells(results):
    """The rows of a results table whose cell failed (empty when every cell ran)."""
    if "status" not in results.columns:
        return results.iloc[:0]
    return results[results["status"] != "ok"]


def check_complete(results) -> None:
    """Raise :class:`ExperimentError` naming every failed cell of ``results`` (call it last)."""
    bad = failed_cells(results)
    if len(bad):
        lines = "; ".join(
            f"{r.model} seed {r.seed} {r.condition}: {r.error}" for r in bad.itertuples()
        )
        raise ExperimentError(f"{len(bad)} of {len(results)} grid cells failed: {lines}")


def coverage_table(results):
    """The coverage cue of every anonymized condition beside the original ranking's.

    One row per (model, seed, condition other than ``original``) of :func:`run_experiment`'s
    ``results``: ``model, seed, condition, anonymized, full_coverage, anon_share_query,
    anon_share_gallery``, then ``wrong_top10_anon_share`` and its ``_chance`` from the original
    ranking of the same model and seed (``*_original``: the crops the anonymizer would change,
    before it does) and from the condition's own ranking. A share above its chance share: the
    anonymized queries' wrong matches are drawn to anonymized crops. (A retrained condition is
    set beside the original model's original ranking.)
    """
    import pandas as pd

    share, chance = f"wrong_top{CUE_TOPK}_anon_share", f"wrong_top{CUE_TOPK}_anon_share_chance"
    keys = ["model", "seed"]
    cols = keys + ["condition", "anonymized", "full_coverage", "anon_share_query"]
    cols += ["anon_share_gallery", share, chance]
    order = cols[:-2] + [f"{share}_original", f"{chance}_original", share, chance]
    if results.empty or share not in results.columns:
        return pd.DataFrame(columns=order)
    ok = results[results["status"] == "ok"]
    orig = ok[ok["condition"] == "original"][keys + [share, chance]].rename(
        columns={share: f"{share}_original", chance: f"{chance}_original"}
    )
    have = [c for c in cols if c in ok.columns]  # a table from before full_coverage has none
    out = ok[ok["condition"] != "original"][have].merge(orig, on=keys, how="left")
    return out[[c for c in order if c in out.columns]].reset_index(drop=True)


def timing_columns(results) -> list[str]:
    """The wall-time columns of a results table (``runtime.*_seconds``,
    ``runtime.images_per_second``): facts about the machine's load, not about the model."""
    return [
        c
        for c in results.columns
        if c.startswith("runtime.") and c.endswith(("_seconds", "_per_second"))
    ]


def write_results(results, out_dir) -> None:
    """``results.csv`` without the wall-time columns (so two runs with the same seeds give
    identical files) and ``timings.csv`` with them, keyed like the results rows."""
    out = Path(out_dir)
    timing = timing_columns(results)
    keys = [c for c in ("dataset", "model", "seed", "condition") if c in results.columns]
    results.drop(columns=timing).to_csv(out / "results.csv", index=False)
    results[keys + timing].to_csv(out / "timings.csv", index=False)


def run_experiment(cfg: ExperimentConfig, progress: bool = True):
    """Run the grid; returns ``(results, per_query)`` DataFrames (also written to ``out_dir``).

    ``results``: one flat row per (model, seed, condition): the grid's columns (model, seed,
    condition, method, anonymized, train_data, dataset, mask, mask_scale, face_rate_*,
    detector, full_coverage; with ``mask="segmentation"`` also mask_threshold, mask_dilate),
    ``status`` (``"ok"`` or ``"failed"``), ``error``, mAP,
    rank-1/5/10, mINP (in %, NaN for a failed cell), n_queries, the coverage cue
    (:func:`reidlab.evaluation.coverage.cue_columns`: ``anon_share_query``,
    ``anon_share_gallery``, ``wrong_top10_anon_share``, ``wrong_top10_anon_share_chance``,
    ``wrong_top10_count``, ``anon_queries``; fractions, computed with the crops that have a face
    box, i.e. that the condition's anonymizer changes, or would change in a split it leaves
    original), then every setting the evaluation recorded (:func:`result_columns`).
    ``per_query``: one row per (model, seed, condition, query) with AP, first-hit rank and the
    ten nearest valid gallery indices (``top_gallery``), for
    paired tests. :func:`coverage_table` puts each condition's cue beside the original ranking's.
    """
    import numpy as np
    import pandas as pd

    from reidlab.datasets import build_dataset, resolve_root
    from reidlab.evaluation import evaluate
    from reidlab.evaluation.coverage import result_coverage_cue

    cfg.root = str(resolve_root(cfg.dataset, cfg.root))
    ds = build_dataset(cfg.dataset, cfg.root, **cfg.dataset_options)
    boxes, face_info = face_boxes_for(ds, cfg, progress=progress)
    maps = face_maps_for(ds, cfg, progress=progress)  # None unless mask="segmentation"
    rows, per_query = [], []
    grid = {  # the grid's own columns, in every row (the evaluation's come from its result)
        "dataset": cfg.dataset,
        "mask": cfg.mask,
        "mask_scale": cfg.scale,
        **{k: v for k, v in face_info.items() if k.startswith("face_rate")},
        "detector": cfg.detector,
        "full_coverage": face_info["full_coverage"],
    }

    def row(model_name, seed, condition, method, anonymized, train_data) -> dict:
        return (
            {
                "model": model_name,
                "seed": seed,
                "condition": condition,
                "method": method,
                "anonymized": anonymized,
                "train_data": train_data,
            }
            | grid
            | _segmentation_columns(method, cfg)
        )

    def record(model, cell: dict, q_anon, g_anon, feature_cache: dict):
        res = evaluate(
            model,
            ds,
            cfg.eval,
            boxes=boxes,
            **({"face_maps": maps} if maps is not None else {}),
            query_anonymizer=q_anon,
            gallery_anonymizer=g_anon,
            progress=progress,
            feature_cache=feature_cache,
            label=f"{cell['model']} seed {cell['seed']} {cell['condition']}",
            keep_topk=CUE_TOPK,
        )
        found = result_columns(res, model)
        ok = {"status": "ok", "error": ""} | {k: found.pop(k) for k in METRIC_COLUMNS}
        cue = result_coverage_cue(res)
        rows.append(cell | ok | cue | {k: v for k, v in found.items() if k not in cell})
        pq = res.per_query
        per_query.append(
            pd.DataFrame(
                {
                    "model": cell["model"],
                    "seed": cell["seed"],
                    "condition": cell["condition"],
                    "query": np.arange(len(pq["ap"])),
                    "ap": np.where(pq["valid"], pq["ap"], np.nan),
                    "first_hit_rank": pq["first_hit_rank"],
                    # each query's 10 nearest valid gallery indices (-1 padding): ranked figures
                    # come from here, not from a second evaluation
                    "top_gallery": list(pq["top_gallery"]),
                }
            )
        )
        line = (
            f"{cell['model']} seed {cell['seed']} {cell['condition']}: mAP {rows[-1]['mAP']:.2f} "
            f"rank-1 {rows[-1]['rank1']:.2f}"
        )
        log.info(line)
        if progress:  # the console sees every cell's result, not only a configured log
            from tqdm.auto import tqdm

            tqdm.write(line)

    def failed(cell: dict, error: BaseException) -> None:
        msg = f"{type(error).__name__}: {' '.join(str(error).split())}"
        log.error("%s seed %d %s failed: %s", cell["model"], cell["seed"], cell["condition"], msg)
        rows.append(
            cell | {"status": "failed", "error": msg, **{k: float("nan") for k in METRIC_COLUMNS}}
        )

    def cell_safe(make_model, cells: list[tuple[dict, object, object]]) -> None:
        """Evaluate ``cells`` with the model ``make_model()`` gives; any failure is recorded per cell."""
        try:
            model = make_model()
        except Exception as e:  # noqa: BLE001 (a failed cell must not stop the grid)
            for cell, _, _ in cells:
                failed(cell, e)
            return
        feature_cache: dict = {}  # this model's un-anonymized features, extracted once
        for cell, q_anon, g_anon in cells:
            try:
                record(
                    model,
                    cell,
                    q_anon() if q_anon else None,
                    g_anon() if g_anon else None,
                    feature_cache,
                )
            except Exception as e:  # noqa: BLE001
                failed(cell, e)

    for model_name in cfg.models:
        seeds = cfg.seeds
        if model_name in cfg.weights and not cfg.retrain:
            seeds = cfg.seeds[:1]  # given weights, nothing trained: every seed would repeat seed 0
        for seed in seeds:
            if model_name in cfg.weights:

                def make(model_name=model_name):
                    return _load(model_name, cfg.weights[model_name], cfg.trust_checkpoint)
            else:

                def make(model_name=model_name, seed=seed):
                    return _train(model_name, seed, cfg, boxes, None, progress)

            cells = [(row(model_name, seed, "original", "none", "none", "original"), None, None)]
            for method in cfg.methods:
                anon = lambda method=method: _anonymizer(method, cfg)
                cells.append(
                    (row(model_name, seed, method, method, "query+gallery", "original"), anon, anon)
                )
                if cfg.query_only:
                    cells.append(
                        (
                            row(
                                model_name,
                                seed,
                                f"{method} (query only)",
                                method,
                                "query",
                                "original",
                            ),
                            anon,
                            None,
                        )
                    )
            cell_safe(make, cells)
            for method in cfg.retrain:
                anon = lambda method=method: _anonymizer(method, cfg)
                cell_safe(
                    lambda method=method, model_name=model_name, seed=seed: _train(
                        model_name, seed, cfg, boxes, method, progress, maps
                    ),
                    [
                        (
                            row(
                                model_name,
                                seed,
                                f"{method} (retrained)",
                                method,
                                "query+gallery",
                                f"anonymized:{method}",
                            ),
                            anon,
                            anon,
                        )
                    ],
                )
    results = pd.DataFrame(rows)
    pq = pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame()
    if cfg.out_dir:
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_results(results, out)
        coverage_table(results).to_csv(out / "coverage.csv", index=False)
        pq.to_parquet(out / "per_query.parquet", index=False)
        import json

        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    return results, pq
