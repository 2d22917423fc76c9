"""The training loop: :class:`TrainConfig` and :func:`train`.

One epoch = ``iters_per_epoch`` PK batches. Per batch, on the model's device: (optional)
face anonymization from cached boxes on the [0, 1] images, normalisation with the model's
mean/std, random erasing, forward (AMP and channels_last on CUDA only), label-smoothed CE +
batch-hard triplet (+ center) loss. Per epoch: the LR schedule steps, a line goes to
``metrics.jsonl`` and a resumable checkpoint to ``checkpoint.pth`` (rank 0 only). At the end,
:func:`reidlab.evaluation.evaluate` on query/gallery.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidlab.errors import ReidlabError

log = logging.getLogger(__name__)


class TrainingError(ReidlabError):
    """Training cannot run as configured (bad option, out of memory, missing boxes, ...)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (serialised into checkpoints and results).

    ``anonymizer``: ``reidlab.anonymize.Anonymizer`` keyword settings (e.g. ``{"method": "blur"}``)
    or None. ``boxes``: face boxes for it: a ``{abs_path: (K, 4)}`` dict, ``"oracle"`` (the
    synthetic dataset's ground truth), or a detections parquet file (``reidlab.faces`` table).
    ``triplet_margin=None`` selects the soft-margin triplet. ``milestones`` are epochs (default
    50% and 75% of ``epochs``). ``iters_per_epoch`` None = one pass over the train images.
    """

    model: str = "tiny"
    dataset: str = "synthetic"
    root: str | None = None
    dataset_options: dict = field(default_factory=dict)
    pretrained: bool | str = False
    trust_checkpoint: bool = (
        False  # a pretrained file with pickled objects beyond tensors (runs its code)
    )
    input_size: list[int] | None = None
    epochs: int = 20
    iters_per_epoch: int | None = None
    batch_p: int = 8
    batch_k: int = 4
    optimizer: str = "adam"
    lr: float = 3.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: list[int] | None = None
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_factor: float = 0.01
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    triplet_margin: float | None = 0.3
    center_loss_weight: float = 0.0
    center_lr: float = 0.5
    flip_p: float = 0.5
    pad: int = 10
    random_erasing: float = 0.5
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    sync_bn: bool = False
    device: str | None = None
    num_workers: int = 0
    out_dir: str = "runs/train"
    resume: bool | str = False
    anonymizer: dict | None = None
    boxes: Any = None
    max_faces: int = 4
    eval_every: int = 0
    final_eval: bool = True
    eval_options: dict = field(default_factory=dict)
    progress: bool = True
    cpu_threads: int | None = None

    def to_dict(self) -> dict:
        """JSON-safe dict (a boxes dict is summarised as its image count)."""
        d = dataclasses.asdict(self)
        if isinstance(self.boxes, dict):
            d["boxes"] = f"<dict of {len(self.boxes)} images>"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
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


def _from_recipe(cls, name: str, **overrides) -> TrainConfig:
    if name not in RECIPES:
        raise TrainingError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return cls.from_dict({**RECIPES[name], **overrides})


TrainConfig.from_recipe = classmethod(_from_recipe)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """LR multiplier for 0-based ``epoch``: linear warm-up from ``warmup_factor`` over
    ``warmup_epochs``, then ``step`` (x ``gamma`` at each milestone), ``cosine`` (to 0 at
    ``epochs``) or ``constant``."""
    w = cfg.warmup_epochs
    if epoch < w:
        a = epoch / w
        return cfg.warmup_factor * (1 - a) + a
    if cfg.schedule == "step":
        ms = cfg.milestones
        if ms is None:  # 50% and 75% of the run, never before the first epoch ends
            ms = [max(1, int(0.5 * cfg.epochs)), max(1, int(0.75 * cfg.epochs))]
        return cfg.gamma ** sum(1 for m in ms if epoch >= m)
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - w, 1)
        return 0.5 * (1 + math.cos(math.pi * (epoch - w) / span))
    if cfg.schedule == "constant":
        return 1.0
    raise TrainingError(
        f"unknown schedule {cfg.schedule!r}; expected 'step', 'cosine' or 'constant'"
    )


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_root(cfg: TrainConfig) -> str:
    if cfg.root:
        return str(cfg.root)
    if cfg.dataset == "synthetic":
        from reidlab.datasets.synthetic import ensure_synthetic

        return str(ensure_synthetic())
    raise TrainingError(f"dataset {cfg.dataset!r} needs a root folder (--root)")


def _resolve_boxes(cfg: TrainConfig, root: str):
    b = cfg.boxes
    if b is None and cfg.anonymizer is not None:
        if cfg.dataset != "synthetic":
            raise TrainingError(
                "anonymized training needs face boxes: pass boxes= (a dict, a "
                "detections parquet from reidlab.faces, or 'oracle' for synthetic)"
            )
        log.info("anonymizer set without boxes: using the synthetic dataset's ground-truth faces")
        b = "oracle"
    if b is None or isinstance(b, dict):
        return b
    if b == "oracle":
        from reidlab.datasets.synthetic import load_face_boxes

        return load_face_boxes(root)
    p = Path(b)
    if p.suffix == ".parquet" and p.is_file():
        import pandas as pd

        from reidlab.faces import boxes_by_path

        return boxes_by_path(pd.read_parquet(p), root)
    raise TrainingError(
        f"boxes: expected a dict, 'oracle' or a detections .parquet file, got {b!r}"
    )


def _device(cfg: TrainConfig, local_rank: int):
    import torch

    if cfg.device:
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _oom_error(e: BaseException, cfg: TrainConfig) -> TrainingError:
    return TrainingError(
        f"out of memory training {cfg.model} with batch P={cfg.batch_p} x K={cfg.batch_k} at "
        f"input {cfg.input_size or 'default'} (amp={cfg.amp}): lower --batch-p / --batch-k, enable "
        f"AMP (--amp), or use a smaller model / input size. ({e})"
    )


def _evaluate(model, dataset, cfg: TrainConfig, device, boxes, anonymizer) -> dict:
    from reidlab.evaluation import evaluate

    opts = dict(cfg.eval_options)
    if anonymizer is not None and opts.pop("anonymize_eval", False):
        opts.update(boxes=boxes, query_anonymizer=anonymizer, gallery_anonymizer=anonymizer)
    res = evaluate(model, dataset, device=device, progress=False, **opts)
    model.train(False)
    return {k: float(v) for k, v in res.metrics.items() if isinstance(v, (int, float))}


def train(config: TrainConfig | dict, *, return_model: bool = False) -> dict:
    """Train a re-ID model; returns ``{"metrics", "history", "paths", "config", ...}``.

    Runs distributed when ``torch.distributed`` is initialised (see :mod:`reidlab.training.ddp`):
    DDP wrapper, per-rank PK batches, only rank 0 writes files and evaluates.

    Raises:
        TrainingError: bad options, missing boxes, out of memory (with advice).
    """
    import torch

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    threads = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(int(cfg.cpu_threads))
    try:
        return _train(cfg, return_model=return_model)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, *, return_model: bool = False) -> dict:
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from reidlab.datasets import build_dataset
    from reidlab.datasets.base import Sample
    from reidlab.loading import ReIDImageDataset
    from reidlab.models import build_model
    from reidlab.models.checkpoint import save_checkpoint
    from reidlab.training.losses import ReIDLoss
    from reidlab.training.sampler import PKBatchSampler
    from reidlab.training.transforms import PairAugment, build_random_erasing

    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", rank)) if distributed else 0
    main = rank == 0
    if cfg.optimizer.lower() not in ("adam", "adamw", "sgd"):
        raise TrainingError(
            f"unknown optimizer {cfg.optimizer!r}; expected 'adam', 'adamw' or 'sgd'"
        )
    lr_factor(0, cfg)  # validates the schedule name early
    device = _device(cfg, local_rank)
    cuda = device.type == "cuda"
    out = Path(cfg.out_dir)
    if main:
        out.mkdir(parents=True, exist_ok=True)

    root = _resolve_root(cfg)
    dataset = build_dataset(cfg.dataset, root, **cfg.dataset_options)
    boxes = _resolve_boxes(cfg, root)
    pids = sorted({s.pid for s in dataset.train})
    if not pids:
        raise TrainingError(f"{dataset.name} at {root}: the train split is empty")
    label = {p: i for i, p in enumerate(pids)}
    train_samples = [Sample(s.path, label[s.pid], s.camid) for s in dataset.train]

    seed_everything(cfg.seed)
    model = build_model(
        cfg.model,
        num_classes=len(pids),
        pretrained=cfg.pretrained,
        input_size=tuple(cfg.input_size) if cfg.input_size else None,
        trust_checkpoint=cfg.trust_checkpoint,
    )
    size = model.input_size
    model.to(device)
    if distributed and cfg.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    core = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None, find_unused_parameters=False
        )
    seed_everything(cfg.seed * 1000 + rank)  # per-rank augmentation randomness

    anonymizer = None
    if cfg.anonymizer is not None:
        from reidlab.anonymize import Anonymizer

        anonymizer = Anonymizer(**cfg.anonymizer).to(device)

    aug = PairAugment(size, flip_p=cfg.flip_p, pad=cfg.pad, seed=cfg.seed * 1000 + rank)
    data = ReIDImageDataset(
        train_samples, size=size, boxes=boxes, max_faces=cfg.max_faces, transform=aug
    )
    sampler = PKBatchSampler(
        [s.pid for s in train_samples],
        cfg.batch_p,
        cfg.batch_k,
        num_batches=cfg.iters_per_epoch,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
    )
    loader = DataLoader(
        data,
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=cuda,
        persistent_workers=cfg.num_workers > 0,
    )
    eraser = build_random_erasing(cfg.random_erasing)
    mean = torch.tensor(core.pixel_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(core.pixel_std, device=device).view(1, 3, 1, 1)

    criterion = ReIDLoss(
        len(pids),
        _triplet_dim(core),
        cfg.label_smoothing,
        cfg.triplet_weight,
        cfg.triplet_margin,
        cfg.center_loss_weight,
    ).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    name = cfg.optimizer.lower()
    if name == "sgd":
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    elif name == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    center_opt = (
        torch.optim.SGD(criterion.center.parameters(), lr=cfg.center_lr)
        if criterion.center is not None
        else None
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, cfg))
    amp_on = bool(cfg.amp and cuda)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_on)

    ckpt_path = out / "checkpoint.pth"
    start_epoch, history = 0, []
    if cfg.resume:
        rp = ckpt_path if cfg.resume is True else Path(cfg.resume)
        if not rp.is_file():
            raise TrainingError(f"resume: expected a checkpoint file at {rp}, found nothing")
        # weights_only=True: save_checkpoint stores only tensors, containers and plain numbers
        try:
            ck = torch.load(rp, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 (one line, no unpickling of foreign objects)
            from reidlab.models.checkpoint import _one_line

            raise TrainingError(
                f"resume: {rp} is not a reidlab training checkpoint readable with "
                f"weights_only=True ({_one_line(e)})"
            ) from None
        need = ("state_dict", "optimizer", "scheduler", "epoch")
        if not isinstance(ck, dict) or any(k not in ck for k in need):
            raise TrainingError(
                f"resume: {rp} is not a reidlab training checkpoint (expected keys "
                f"{', '.join(need)}; a weights-only file can't resume training)"
            )
        core.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        if center_opt is not None and ck.get("center") is not None:
            criterion.center.load_state_dict(ck["center"])
            center_opt.load_state_dict(ck["center_optimizer"])
        start_epoch = int(ck["epoch"])
        history = list(ck.get("history", []))
        if "torch_rng" in ck and rank == 0:
            torch.set_rng_state(ck["torch_rng"].cpu())
        log.info("resumed from %s after epoch %d", rp, start_epoch)

    log.info(
        "training %s on %s (%d ids, %d images) for %d epochs on %s, world size %d, source %s",
        cfg.model,
        dataset.name,
        len(pids),
        len(train_samples),
        cfg.epochs,
        device,
        world,
        core.pretrained_source,
    )
    metrics_file = out / "metrics.jsonl"
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        model.train()
        sums: dict[str, float] = {}
        n_img, t0 = 0, time.perf_counter()
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (main and cfg.progress),
            leave=False,
        )
        for batch in bar:
            try:
                images = batch["image"].to(device, non_blocking=True)
                targets = torch.as_tensor(batch["pid"], device=device)
                if anonymizer is not None:
                    with torch.no_grad():
                        # the collated batch is ours: anonymize in place (the fast path)
                        images = anonymizer(
                            images,
                            batch["boxes"].to(device),
                            batch["valid"].to(device),
                            inplace=True,
                        )
                x = (images - mean) / std
                if eraser is not None:
                    x = eraser(x)
                if cuda and cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, enabled=amp_on):
                    outputs = model(x)
                loss, parts = criterion(outputs, targets)
                opt.zero_grad(set_to_none=True)
                if center_opt is not None:
                    center_opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                if center_opt is not None:
                    for p in criterion.center.parameters():  # undo the loss weight (BoT recipe)
                        if p.grad is not None:
                            p.grad.mul_(1.0 / cfg.center_loss_weight)
                    center_opt.step()
                scaler.update()
            except torch.OutOfMemoryError as e:
                raise _oom_error(e, cfg) from e
            if not math.isfinite(float(loss.detach())):
                raise TrainingError(f"loss became {float(loss)} at epoch {epoch + 1}: lower --lr")
            n_img += images.shape[0]
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v * images.shape[0]
            dt = time.perf_counter() - t0
            bar.set_postfix(
                loss=f"{float(loss.detach()):.3f}", img_s=f"{n_img * world / max(dt, 1e-9):.0f}"
            )
        dt = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            "images": n_img * world,
            "seconds": round(dt, 3),
            "images_per_s": round(n_img * world / max(dt, 1e-9), 2),
            **{k: v / max(n_img, 1) for k, v in sums.items()},
        }
        sched.step()
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs and main:
            row["eval"] = _evaluate(core, dataset, cfg, device, boxes, anonymizer)
        history.append(row)
        if main:
            with metrics_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            save_checkpoint(
                ckpt_path,
                core,
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                scaler=scaler.state_dict(),
                epoch=epoch + 1,
                config=cfg.to_dict(),
                history=history,
                torch_rng=torch.get_rng_state(),
                center=criterion.center.state_dict() if criterion.center is not None else None,
                center_optimizer=center_opt.state_dict() if center_opt is not None else None,
            )
        log.info(
            "epoch %d: %s",
            epoch + 1,
            {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in row.items()},
        )
    if distributed:
        dist.barrier()

    result: dict[str, Any] = {
        "config": cfg.to_dict(),
        "history": history,
        "metrics": {},
        "seed": cfg.seed,
        "model": core.name,
        "input_size": list(size),
        "num_classes": len(pids),
        "pretrained_source": core.pretrained_source,
        "world_size": world,
        "device": str(device),
        "augment": aug.settings,
        "anonymizer": anonymizer.settings() if anonymizer is not None else None,
        "paths": {
            "out_dir": str(out),
            "checkpoint": str(ckpt_path),
            "metrics": str(metrics_file),
            "model": str(out / "model.pth"),
            "result": str(out / "result.json"),
        },
    }
    if main:
        if cfg.final_eval:
            result["metrics"] = _evaluate(core, dataset, cfg, device, boxes, anonymizer)
        save_checkpoint(
            out / "model.pth",
            core,
            model_name=core.name,
            num_classes=len(pids),
            input_size=list(size),
            config=cfg.to_dict(),
        )
        (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    if return_model:
        result["model_object"] = core
    return result


def _triplet_dim(model) -> int:
    """Width of the features the center loss sees (MGN: one 256-d branch feature)."""
    return int(getattr(model, "triplet_dim", model.feature_dim))
