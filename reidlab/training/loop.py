"""The training loop: :func:`train`, and its parts, each usable alone.

One epoch = ``iters_per_epoch`` PK batches. Per batch, on the model's device: (optional)
face anonymization from cached boxes on the [0, 1] images, normalisation with the model's
mean/std, random erasing, forward (AMP and channels_last on CUDA only), label-smoothed CE +
batch-hard triplet (+ center) loss. Per epoch: the LR schedule steps, a line goes to
``metrics.jsonl`` and a resumable checkpoint to ``checkpoint.pth`` (rank 0 only). At the end,
:func:`reidlab.evaluation.evaluate` on query/gallery.

The parts: :func:`setup` builds data, model, loss and optimizers into a :class:`Run`;
:func:`resume` restores a checkpoint into it; :func:`train_epoch` runs one epoch of
:func:`train_step` (one batch: forward, loss, backward, :func:`apply_gradients`);
:func:`save_epoch_checkpoint` and :func:`save_final` write the files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidlab.training.config import RECIPES, TrainConfig, TrainingError

log = logging.getLogger(__name__)

__all__ = [
    "RECIPES",
    "Run",
    "Step",
    "TrainConfig",
    "TrainingError",
    "apply_gradients",
    "lr_factor",
    "resume",
    "save_epoch_checkpoint",
    "save_final",
    "seed_everything",
    "setup",
    "train",
    "train_epoch",
    "train_step",
]


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


def _resolve_boxes(cfg: TrainConfig, dataset):
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
        from reidlab.faces import dataset_boxes

        return dataset_boxes(dataset, "oracle", splits=("train",), progress=False)[0]
    p = Path(b)
    if p.suffix == ".parquet" and p.is_file():
        import pandas as pd

        from reidlab.faces import boxes_by_path

        return boxes_by_path(pd.read_parquet(p), dataset.root)
    raise TrainingError(
        f"boxes: expected a dict, 'oracle' or a detections .parquet file, got {b!r}"
    )


def _resolve_maps(cfg: TrainConfig):
    """Per-pixel face maps for an anonymizer with ``mask="segmentation"``: ``cfg.face_maps``
    (``{abs_path: (h, w)}``, set by :func:`reidlab.experiment.run_experiment`), else ``None``
    (the anonymizer then uses the boxes of every image: fail closed). Box masks get ``None``."""
    maps = cfg.face_maps
    if cfg.anonymizer is None or cfg.anonymizer.get("mask") != "segmentation":
        return None
    if maps is None:
        log.warning("mask='segmentation' without face maps: every image uses its boxes' mask")
        return None
    if not isinstance(maps, dict):
        raise TrainingError(f"face_maps: expected a {{path: (h, w) map}} dict, got {type(maps)}")
    return maps


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


def _triplet_dim(model) -> int:
    """Width of the features the center loss sees (MGN: one 256-d branch feature)."""
    return int(getattr(model, "triplet_dim", model.feature_dim))


# ---------------------------------------------------------------- one step
@dataclass
class Step:
    """What one optimisation step needs (:func:`setup` builds it; a test can build its own).

    ``model``: the module called on the batch (the DDP wrapper when distributed); ``mean``,
    ``std``: ``(1, 3, 1, 1)`` tensors on ``device``; ``amp``: autocast; ``channels_last``: the
    input's memory format; ``scaler``: a ``torch.amp.GradScaler`` (disabled without AMP).
    """

    model: Any
    criterion: Any
    opt: Any
    scaler: Any
    device: Any
    mean: Any
    std: Any
    amp: bool = False
    channels_last: bool = False
    eraser: Any = None
    anonymizer: Any = None
    center_opt: Any = None
    center_loss_weight: float = 0.0


def apply_gradients(scaler, opt, center_opt=None, center_loss_weight: float = 0.0) -> None:
    """The optimizer updates after ``scaler.scale(loss).backward()``.

    ``scaler.step(opt)`` unscales ``opt``'s gradients and skips the step when one is inf/NaN.
    The centre-loss optimizer goes through the scaler the same way: its gradients are unscaled
    first, then divided by the centre loss weight (the centres learn at ``center_lr`` whatever
    the weight, as in the BoT recipe), and ``scaler.step`` skips it on inf/NaN; so under AMP it
    neither sees gradients multiplied by the scale factor nor steps when the scaler skips.
    Without AMP (a disabled scaler) these are plain ``step()`` calls. Then the scale is updated.
    """
    scaler.step(opt)
    if center_opt is not None:
        scaler.unscale_(center_opt)
        for group in center_opt.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.mul_(1.0 / center_loss_weight)
        scaler.step(center_opt)
    scaler.update()


def train_step(step: Step, batch: dict) -> tuple[Any, dict[str, float], int]:
    """One optimisation step on ``batch`` (``image`` in [0, 1], ``pid``, ``boxes``, ``valid``,
    and with face maps ``face_map``, ``has_map``: passed to the anonymizer as ``face_maps``).

    Returns ``(loss, parts, images)``: the detached loss tensor, the loss parts as floats and
    the number of images.
    """
    import torch

    from reidlab.loading import batch_face_maps

    s = step
    images = batch["image"].to(s.device, non_blocking=True)
    targets = torch.as_tensor(batch["pid"], device=s.device)
    if s.anonymizer is not None:
        with torch.no_grad():
            # the collated batch is ours: anonymize in place (the fast path)
            kw = {"inplace": True}
            if "face_map" in batch:  # mask="segmentation": the maps augmented with the images
                kw["face_maps"] = batch_face_maps(batch, s.device)
            images = s.anonymizer(
                images, batch["boxes"].to(s.device), batch["valid"].to(s.device), **kw
            )
    x = (images - s.mean) / s.std
    if s.eraser is not None:
        x = s.eraser(x)
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(s.device.type, enabled=s.amp):
        outputs = s.model(x)
    loss, parts = s.criterion(outputs, targets)
    s.opt.zero_grad(set_to_none=True)
    if s.center_opt is not None:
        s.center_opt.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    apply_gradients(s.scaler, s.opt, s.center_opt, s.center_loss_weight)
    return loss.detach(), parts, int(images.shape[0])


# ---------------------------------------------------------------- setup
@dataclass
class Run:
    """Everything :func:`setup` builds for one training run."""

    cfg: TrainConfig
    device: Any
    rank: int
    world: int
    distributed: bool
    out: Path
    dataset: Any
    boxes: dict | None
    num_classes: int
    num_images: int
    core: Any  # the model itself (no DDP wrapper)
    aug: Any
    sampler: Any
    loader: Any
    sched: Any
    step: Step

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and evaluates."""
        return self.rank == 0


def _build_model(cfg: TrainConfig, num_classes: int, device, distributed: bool):
    """``(core, model)``: the model built from ``cfg.seed`` on ``device``, and what the step
    calls (its DDP wrapper when distributed)."""
    import torch

    from reidlab.models import build_model

    seed_everything(cfg.seed)
    core = build_model(
        cfg.model,
        num_classes=num_classes,
        pretrained=cfg.pretrained,
        input_size=tuple(cfg.input_size) if cfg.input_size else None,
        trust_checkpoint=cfg.trust_checkpoint,
    )
    core.to(device)
    if distributed and cfg.sync_bn:
        core = torch.nn.SyncBatchNorm.convert_sync_batchnorm(core)
    if device.type == "cuda" and cfg.channels_last:
        core = core.to(memory_format=torch.channels_last)
    model = core
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            core,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=False,
        )
    return core, model


def _build_loader(cfg: TrainConfig, samples, core, boxes, rank: int, world: int, cuda: bool):
    """``(augment, PK sampler, DataLoader)`` over the relabelled train ``samples``, resized to
    ``core``'s input the way it is evaluated (:func:`reidlab.resize.resize_mode_for`)."""
    from torch.utils.data import DataLoader

    from reidlab.loading import ReIDImageDataset
    from reidlab.resize import resize_mode_for
    from reidlab.training.sampler import PKBatchSampler
    from reidlab.training.transforms import PairAugment

    size, mode = core.input_size, resize_mode_for(core)
    aug = PairAugment(
        size, flip_p=cfg.flip_p, pad=cfg.pad, seed=cfg.seed * 1000 + rank, resize_mode=mode
    )
    maps = _resolve_maps(cfg)
    data = ReIDImageDataset(
        samples,
        size=size,
        boxes=boxes,
        max_faces=cfg.max_faces,
        transform=aug,
        maps=maps,
        resize_mode=mode,
    )
    sampler = PKBatchSampler(
        [s.pid for s in samples],
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
    return aug, sampler, loader


def _build_optimizers(cfg: TrainConfig, model, criterion):
    """``(optimizer, centre optimizer or None, LR scheduler)``."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    center_opt = (
        torch.optim.SGD(criterion.center.parameters(), lr=cfg.center_lr)
        if criterion.center is not None
        else None
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, cfg))
    return opt, center_opt, sched


def setup(cfg: TrainConfig) -> Run:
    """Build the dataset, model, data pipeline, loss and optimizers of a run.

    Random draws in a fixed order (what makes a run repeatable): the model is built after
    ``seed_everything(seed)``, everything after it (anonymizer, augmentation, erasing, the
    centre-loss centres) after ``seed_everything(seed * 1000 + rank)``.
    """
    import torch
    import torch.distributed as dist

    from reidlab.datasets import build_dataset, relabel, resolve_root
    from reidlab.training.losses import ReIDLoss
    from reidlab.training.transforms import build_random_erasing

    distributed = dist.is_available() and dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", rank)) if distributed else 0
    lr_factor(0, cfg)  # a schedule name set after construction fails here, not mid-run
    device = _device(cfg, local_rank)
    cuda = device.type == "cuda"
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    root = str(resolve_root(cfg.dataset, cfg.root or None))
    dataset = build_dataset(cfg.dataset, root, **cfg.dataset_options)
    boxes = _resolve_boxes(cfg, dataset)
    train_samples, labels = relabel(dataset.train)
    if not labels:
        raise TrainingError(f"{dataset.name} at {root}: the train split is empty")

    core, model = _build_model(cfg, len(labels), device, distributed)
    seed_everything(cfg.seed * 1000 + rank)  # per-rank augmentation randomness
    anonymizer = None
    if cfg.anonymizer is not None:
        from reidlab.anonymize import Anonymizer

        anonymizer = Anonymizer(**cfg.anonymizer).to(device)
    aug, sampler, loader = _build_loader(cfg, train_samples, core, boxes, rank, world, cuda)
    eraser = build_random_erasing(cfg.random_erasing)
    mean = torch.tensor(core.pixel_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(core.pixel_std, device=device).view(1, 3, 1, 1)
    criterion = ReIDLoss(
        len(labels),
        _triplet_dim(core),
        cfg.label_smoothing,
        cfg.triplet_weight,
        cfg.triplet_margin,
        cfg.center_loss_weight,
    ).to(device)
    opt, center_opt, sched = _build_optimizers(cfg, model, criterion)
    amp = bool(cfg.amp and cuda)
    step = Step(
        model=model,
        criterion=criterion,
        opt=opt,
        scaler=torch.amp.GradScaler("cuda", enabled=amp),
        device=device,
        mean=mean,
        std=std,
        amp=amp,
        channels_last=cuda and cfg.channels_last,
        eraser=eraser,
        anonymizer=anonymizer,
        center_opt=center_opt,
        center_loss_weight=cfg.center_loss_weight,
    )
    return Run(
        cfg=cfg,
        device=device,
        rank=rank,
        world=world,
        distributed=distributed,
        out=out,
        dataset=dataset,
        boxes=boxes,
        num_classes=len(labels),
        num_images=len(train_samples),
        core=core,
        aug=aug,
        sampler=sampler,
        loader=loader,
        sched=sched,
        step=step,
    )


# ---------------------------------------------------------------- resume and checkpoints
def resume(run: Run) -> tuple[int, list[dict]]:
    """Restore ``run.cfg.resume``'s checkpoint into ``run``; returns ``(epochs done, history)``."""
    import torch

    cfg, s = run.cfg, run.step
    rp = run.out / "checkpoint.pth" if cfg.resume is True else Path(cfg.resume)
    if not rp.is_file():
        raise TrainingError(f"resume: expected a checkpoint file at {rp}, found nothing")
    # weights_only=True: save_checkpoint stores only tensors, containers and plain numbers
    try:
        ck = torch.load(rp, map_location=run.device, weights_only=True)
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
    run.core.load_state_dict(ck["state_dict"])
    s.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    if ck.get("scaler"):
        s.scaler.load_state_dict(ck["scaler"])
    if s.center_opt is not None and ck.get("center") is not None:
        s.criterion.center.load_state_dict(ck["center"])
        s.center_opt.load_state_dict(ck["center_optimizer"])
    if "torch_rng" in ck and run.rank == 0:
        torch.set_rng_state(ck["torch_rng"].cpu())
    log.info("resumed from %s after epoch %d", rp, int(ck["epoch"]))
    return int(ck["epoch"]), list(ck.get("history", []))


def save_epoch_checkpoint(run: Run, epoch: int, history: list[dict]) -> Path:
    """``out/checkpoint.pth`` after ``epoch`` (1-based): everything :func:`resume` restores."""
    import torch

    from reidlab.models.checkpoint import save_checkpoint

    s = run.step
    center = s.criterion.center
    return save_checkpoint(
        run.out / "checkpoint.pth",
        run.core,
        optimizer=s.opt.state_dict(),
        scheduler=run.sched.state_dict(),
        scaler=s.scaler.state_dict(),
        epoch=epoch,
        config=run.cfg.to_dict(),
        history=history,
        torch_rng=torch.get_rng_state(),
        center=center.state_dict() if center is not None else None,
        center_optimizer=s.center_opt.state_dict() if s.center_opt is not None else None,
    )


def save_final(run: Run, result: dict) -> None:
    """``out/model.pth`` (the weights, loadable by ``load_checkpoint``) and ``out/result.json``."""
    from reidlab.models.checkpoint import save_checkpoint

    save_checkpoint(
        run.out / "model.pth",
        run.core,
        model_name=run.core.name,
        num_classes=run.num_classes,
        input_size=list(run.core.input_size),
        config=run.cfg.to_dict(),
    )
    (run.out / "result.json").write_text(json.dumps(result, indent=2, default=str))


# ---------------------------------------------------------------- the loop
def _evaluate(run: Run) -> dict:
    """Metrics on query/gallery with ``cfg.eval`` (on the training device unless it names one)."""
    from reidlab.evaluation import evaluate

    cfg, anonymizer = run.cfg, run.step.anonymizer
    anon = {}
    if anonymizer is not None and cfg.anonymize_eval:
        anon = {
            "boxes": run.boxes,
            "face_maps": _resolve_maps(cfg),
            "query_anonymizer": anonymizer,
            "gallery_anonymizer": anonymizer,
        }
    res = evaluate(
        run.core,
        run.dataset,
        cfg.eval,
        device=cfg.eval.device or str(run.device),
        progress=False,
        **anon,
    )
    run.core.train(False)
    return {k: float(v) for k, v in res.metrics.items() if isinstance(v, (int, float))}


def _epoch_bar(run: Run, start_epoch: int):
    """The run's progress: one bar over epochs (loss and img/s of the last epoch, tqdm's ETA),
    labelled with the model, seed and training data; the batch bar of each epoch sits under it."""
    from tqdm.auto import tqdm

    cfg = run.cfg
    data = f"anonymized:{cfg.anonymizer['method']}" if cfg.anonymizer else "original"
    return tqdm(
        total=cfg.epochs,
        initial=start_epoch,
        desc=f"train {cfg.model} seed {cfg.seed} on {data}",
        unit="epoch",
        disable=not (run.main and cfg.progress),
        dynamic_ncols=True,
    )


def train_epoch(run: Run, epoch: int) -> dict:
    """Train 0-based ``epoch``; returns its ``metrics.jsonl`` row (before any evaluation)."""
    import torch
    from tqdm.auto import tqdm

    cfg, world = run.cfg, run.world
    run.sampler.set_epoch(epoch)
    run.step.model.train()
    sums: dict[str, float] = {}
    n_img, t0 = 0, time.perf_counter()
    bar = tqdm(
        run.loader,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not (run.main and cfg.progress),
        leave=False,
        position=1,
    )
    for batch in bar:
        try:
            loss, parts, n = train_step(run.step, batch)
        except torch.OutOfMemoryError as e:
            raise _oom_error(e, cfg) from e
        value = float(loss)
        if not math.isfinite(value):
            raise TrainingError(f"loss became {value} at epoch {epoch + 1}: lower --lr")
        n_img += n
        for k, v in {"loss": value, **parts}.items():
            sums[k] = sums.get(k, 0.0) + v * n
        dt = time.perf_counter() - t0
        bar.set_postfix(loss=f"{value:.3f}", img_s=f"{n_img * world / max(dt, 1e-9):.0f}")
    dt = time.perf_counter() - t0
    return {
        "epoch": epoch + 1,
        "lr": run.step.opt.param_groups[0]["lr"],
        "images": n_img * world,
        "seconds": round(dt, 3),
        "images_per_s": round(n_img * world / max(dt, 1e-9), 2),
        **{k: v / max(n_img, 1) for k, v in sums.items()},
    }


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
    import torch.distributed as dist

    run = setup(cfg)
    start_epoch, history = resume(run) if cfg.resume else (0, [])
    log.info(
        "training %s on %s (%d ids, %d images) for %d epochs on %s, world size %d, source %s",
        cfg.model,
        run.dataset.name,
        run.num_classes,
        run.num_images,
        cfg.epochs,
        run.device,
        run.world,
        run.core.pretrained_source,
    )
    metrics_file = run.out / "metrics.jsonl"
    bar = _epoch_bar(run, start_epoch)
    for epoch in range(start_epoch, cfg.epochs):
        row = train_epoch(run, epoch)
        run.sched.step()
        bar.update(1)
        bar.set_postfix(loss=f"{row.get('loss', float('nan')):.3f}", img_s=row["images_per_s"])
        periodic = cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs
        if periodic and run.main:
            row["eval"] = _evaluate(run)
        history.append(row)
        if run.main:
            with metrics_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            save_epoch_checkpoint(run, epoch + 1, history)
        log.info(
            "epoch %d: %s",
            epoch + 1,
            {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in row.items()},
        )
    bar.close()
    if run.distributed:
        dist.barrier()

    anonymizer = run.step.anonymizer
    result: dict[str, Any] = {
        "config": cfg.to_dict(),
        "history": history,
        "metrics": {},
        "seed": cfg.seed,
        "model": run.core.name,
        "input_size": list(run.core.input_size),
        "num_classes": run.num_classes,
        "pretrained_source": run.core.pretrained_source,
        "world_size": run.world,
        "device": str(run.device),
        "augment": run.aug.settings,
        "anonymizer": anonymizer.settings() if anonymizer is not None else None,
        "paths": {
            "out_dir": str(run.out),
            "checkpoint": str(run.out / "checkpoint.pth"),
            "metrics": str(metrics_file),
            "model": str(run.out / "model.pth"),
            "result": str(run.out / "result.json"),
        },
    }
    if run.main:
        if cfg.final_eval:
            result["metrics"] = _evaluate(run)
        save_final(run, result)
    if return_model:
        result["model_object"] = run.core
    return result
