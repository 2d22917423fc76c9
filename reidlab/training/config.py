""":class:`TrainConfig` (everything a training run depends on) and the named :data:`RECIPES`.

Each scalar field is described once by a :class:`reidlab.params.Param` (see :mod:`reidlab.config`):
the same description checks values in ``__post_init__`` and makes ``reidlab train``'s flags.
The evaluation after (or during) training is an embedded :class:`~reidlab.evaluation.EvalConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidlab.config import check_config, setting
from reidlab.errors import ReidlabError
from reidlab.evaluation.config import EvalConfig


class TrainingError(ReidlabError):
    """Training cannot run as configured (bad option, out of memory, missing boxes, ...)."""


_POS = {"low": 0, "low_open": True}


@dataclass
class TrainConfig:
    """Everything a training run depends on (serialised into checkpoints and results).

    ``anonymizer``: ``reidlab.anonymize.Anonymizer`` keyword settings (e.g. ``{"method": "blur"}``)
    or None. ``boxes``: face boxes for it: a ``{abs_path: (K, 4)}`` dict, ``"oracle"`` (the
    synthetic dataset's ground truth), or a detections parquet file (``reidlab.faces`` table).
    ``pretrained``: False, True (ImageNet) or a weights file. ``triplet_margin=None`` selects the
    soft-margin triplet. ``milestones`` are epochs (default 50% and 75% of ``epochs``).
    ``resume``: True (``out_dir/checkpoint.pth``) or a checkpoint file. ``eval``: the settings
    of the evaluation on query/gallery (its ``device`` None: the training device);
    ``anonymize_eval``: that evaluation anonymizes query and gallery with ``anonymizer``.
    """

    model: str = setting("tiny", "model name (reidlab.models.list_models())")
    dataset: str = setting("synthetic", "dataset name (see `reidlab datasets`)")
    root: str | None = setting(
        None,
        "dataset folder (synthetic: generated and cached when omitted)",
        type=str,
        optional=True,
    )
    dataset_options: dict = field(default_factory=dict)
    pretrained: bool | str = False
    trust_checkpoint: bool = setting(
        False,
        "allow a pretrained file that holds pickled Python objects beyond tensors (runs code "
        "from the file: only for files from a source you trust)",
    )
    input_size: tuple[int, int] | None = setting(
        None,
        "input height and width (default: the model's)",
        type=int,
        nargs=2,
        optional=True,
        **_POS,
    )
    epochs: int = setting(20, "training epochs", **_POS)
    iters_per_epoch: int | None = setting(
        None,
        "PK batches per epoch (default: one pass over the train images)",
        type=int,
        optional=True,
        flag="--iters",
        **_POS,
    )
    batch_p: int = setting(8, "identities per batch", **_POS)
    batch_k: int = setting(4, "images per identity", **_POS)
    optimizer: str = setting("adam", "optimizer", choices=("adam", "adamw", "sgd"))
    lr: float = setting(3.5e-4, "learning rate", **_POS)
    momentum: float = setting(0.9, "SGD momentum", low=0, high=1)
    weight_decay: float = setting(5e-4, "weight decay", low=0)
    schedule: str = setting("step", "LR schedule", choices=("step", "cosine", "constant"))
    milestones: list[int] | None = None
    gamma: float = setting(0.1, "LR factor at each milestone (step schedule)", **_POS)
    warmup_epochs: int = setting(0, "warm-up epochs", low=0, flag="--warmup")
    warmup_factor: float = setting(0.01, "LR factor at the start of the warm-up", low=0, high=1)
    label_smoothing: float = setting(0.1, "label smoothing", low=0, high=1, high_open=True)
    triplet_weight: float = setting(1.0, "batch-hard triplet loss weight", low=0)
    triplet_margin: float | None = setting(
        0.3,
        "triplet margin (null in a config file: soft margin)",
        type=float,
        optional=True,
        low=0,
    )
    center_loss_weight: float = setting(0.0, "centre loss weight (0: no centre loss)", low=0)
    center_lr: float = setting(0.5, "SGD learning rate of the class centres", **_POS)
    flip_p: float = setting(0.5, "horizontal flip probability", low=0, high=1)
    pad: int = setting(10, "pad-and-random-crop margin in pixels", low=0)
    random_erasing: float = setting(0.5, "random erasing probability", low=0, high=1)
    seed: int = setting(0, "random seed")
    amp: bool = setting(True, "mixed precision on CUDA")
    channels_last: bool = setting(True, "channels_last memory format on CUDA")
    sync_bn: bool = setting(False, "synchronised batch norm when distributed")
    device: str | None = setting(
        None, "cpu, cuda, cuda:1 (default: cuda when available)", type=str, optional=True
    )
    num_workers: int = setting(0, "DataLoader workers", low=0, flag="--workers")
    out_dir: str = setting("runs/train", "output folder", flag="--out")
    resume: bool | str = False
    anonymizer: dict | None = None
    boxes: Any = None
    face_maps: Any = None  # {abs_path: (h, w) map} for an anonymizer with mask="segmentation"
    max_faces: int = setting(4, "face boxes kept per image", **_POS)
    eval_every: int = setting(0, "also evaluate every N epochs (0: never)", low=0)
    final_eval: bool = setting(True, "evaluate on query/gallery after training")
    anonymize_eval: bool = setting(
        False, "evaluate on query and gallery anonymized like the training images"
    )
    eval: EvalConfig = field(default_factory=EvalConfig)
    progress: bool = setting(True, "progress bars")
    cpu_threads: int | None = setting(
        None, "torch CPU threads while training", type=int, optional=True, **_POS
    )

    def __post_init__(self) -> None:
        if isinstance(self.eval, dict):
            self.eval = EvalConfig().replace(**self.eval)
        check_config(self)

    def to_dict(self) -> dict:
        """JSON-safe dict (a boxes or face-maps dict is summarised as its image count)."""
        d = dataclasses.asdict(self)
        for name in ("boxes", "face_maps"):
            if isinstance(getattr(self, name), dict):
                d[name] = f"<dict of {len(getattr(self, name))} images>"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The config from a dict of its fields (``to_dict``'s output, a JSON config file).

        Unknown names raise :class:`TrainingError`. A file from before ``eval`` existed may
        still hold ``eval_options`` (evaluate() keywords, plus ``anonymize_eval``).
        """
        d = dict(d)
        if "eval_options" in d:
            old = dict(d.pop("eval_options") or {})
            d.setdefault("anonymize_eval", bool(old.pop("anonymize_eval", False)))
            d["eval"] = {**old, **dict(d.get("eval") or {})}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TrainingError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        if not p.is_file():
            raise TrainingError(f"training config: expected a JSON file at {p}, found nothing")
        return cls.from_dict(json.loads(p.read_text()))

    @classmethod
    def from_recipe(cls, name: str, **overrides) -> TrainConfig:
        """The named recipe (:data:`RECIPES`) with ``overrides`` (field names)."""
        if name not in RECIPES:
            raise TrainingError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
        return cls.from_dict({**RECIPES[name], **overrides})


# Named starting points (TrainConfig.from_recipe("tiny", epochs=12, ...)).
RECIPES: dict[str, dict] = {
    # measured on a 40-id synthetic set, 2 CPU cores: mAP about 0.30 vs 0.065 at random init
    "tiny": {
        "model": "tiny",
        "epochs": 8,
        "iters_per_epoch": 8,
        "batch_p": 8,
        "batch_k": 4,
        "lr": 1e-2,
        "schedule": "cosine",
        "pad": 4,
        "random_erasing": 0.0,
    },
    # the strong baseline (Luo et al. 2019): Adam 3.5e-4, 120 epochs, warm-up 10, steps at 40/70
    "bot": {
        "model": "bot_r50",
        "pretrained": True,
        "epochs": 120,
        "batch_p": 16,
        "batch_k": 4,
        "lr": 3.5e-4,
        "schedule": "step",
        "milestones": [40, 70],
        "warmup_epochs": 10,
        "warmup_factor": 0.01,
        "label_smoothing": 0.1,
        "triplet_margin": 0.3,
        "random_erasing": 0.5,
        "pad": 10,
    },
}
