"""Train the ``reidface`` localizer from parsing masks (``reidlab train-faces``), reproducibly.

The recipe of ``research/reidface/train.py`` (RESULTS.md there has every number), in the library:

* **Data** (:mod:`reidlab.faces.face_data`): the Market-1501 train crops that have a parsing
  mask; targets are the face pixels (LIP label 13) averaged over 4x4 cells, plus an image-level
  target ``min(1, face px / 20)`` of the augmented crop.
* **Split by identity** (:func:`~reidlab.faces.face_data.split_ids`, ``split_seed``): 20% of
  the ids test, 10% tune (the log's recall), the rest train; only train ids are trained on.
* **Loss**: BCE on the cells + ``cls_weight`` x BCE on the image-level logit.
* **Optimizer**: AdamW, one-cycle cosine schedule (10% warm-up, start lr / 20, end lr / 4000).
* **Determinism**: ``seed`` fixes the initial weights, the batch order and the augmentation;
  ``torch.use_deterministic_algorithms`` is on (warn-only on CUDA, where some backward kernels
  have no deterministic version). The same seed and thread count give the same weights; the
  defaults reproduce the shipped ``reidlab/faces/weights/reidface.pt`` bit for bit on CPU.

The network is :mod:`reidlab.faces.reidface`'s (one definition); the research ``model.py``
network is the same module tree (same parameter order, so the same initial weights for a seed)
except that without the image head it returns the logits alone, and the recipe always trains
the head. The research options not kept here (a Dice term, no image head) lost on tune metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidlab.config import check_config, setting
from reidlab.faces import face_data

log = logging.getLogger(__name__)

_POS = {"low": 0, "low_open": True}
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")  # buffers, not parameters
BUDGET = 0.05  # the log's recall is at <= 5% of the tune face-less crops boxed (RESULTS.md)


@dataclass
class FaceTrainConfig:
    """Everything a localizer training run depends on (recorded in its log)."""

    epochs: int = setting(24, "training epochs", **_POS)
    batch: int = setting(64, "crops per step", **_POS)
    lr: float = setting(3e-3, "peak learning rate (AdamW, one-cycle cosine)", **_POS)
    weight_decay: float = setting(1e-4, "AdamW weight decay", low=0)
    cls_weight: float = setting(0.5, "weight of the image-level 'has a face' loss", low=0)
    widths: tuple = setting(
        (12, 24, 48, 64), "channels at strides 2, 4, 8, 16", type=int, nargs=4, **_POS
    )
    seed: int = setting(0, "seed of the initial weights, batch order and augmentation", low=0)
    split_seed: int = setting(0, "seed of the identity split (0: research/reidface)", low=0)
    threads: int = setting(1, "torch CPU threads (the weights depend on it)", **_POS)
    device: str = setting("auto", "auto: CUDA when available", choices=("auto", "cpu", "cuda"))
    eval_every: int = setting(
        8, "tune-id recall every N epochs and at the end (0: end only)", low=0
    )
    limit: int | None = setting(
        None, "train on the first N train crops only (smoke runs)", type=int, optional=True, **_POS
    )

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"] = list(d["widths"])
        return d


def _detector_default(name: str):
    """A ``ReidFaceDetector`` default (threshold, pixel_threshold): the log measures what ships."""
    import inspect

    from reidlab.faces.reidface import ReidFaceDetector

    return inspect.signature(ReidFaceDetector.__init__).parameters[name].default


def resolve_device(name: str):
    """``auto`` / ``cpu`` / ``cuda`` -> a torch device (``cuda`` without one: ``ValueError``)."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_network(widths=(12, 24, 48, 64)):
    """A fresh trainable ``FaceSegNet`` (with the image head), channels-last, from torch's RNG."""
    import torch

    from reidlab.faces.reidface import network_class

    return network_class()(tuple(widths), cls_head=True).to(memory_format=torch.channels_last)


def _batch_tensors(images: np.ndarray, faces: np.ndarray, device):
    """uint8 NHWC crops and 0/1 masks -> input (channels-last), cell targets, image targets."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(face_data.cell_targets(faces))[:, None]
    npx = torch.from_numpy(faces.reshape(len(faces), -1).sum(1).astype(np.float32))
    return x.to(device), y.to(device), (npx / 20.0).clamp(max=1.0).to(device)


def face_loss(net, images: np.ndarray, faces: np.ndarray, cls_weight: float = 0.5):
    """The training loss of ``net`` on a batch (uint8 ``(B, 128, 64, 3)`` crops, 0/1 masks)."""
    import torch.nn.functional as F

    x, y, c = _batch_tensors(images, faces, next(net.parameters()).device)
    seg, cls = net(x)
    return F.binary_cross_entropy_with_logits(seg, y) + cls_weight * (
        F.binary_cross_entropy_with_logits(cls[:, 0], c)
    )


def predict_maps(net, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Cell face probabilities ``(N, 32, 16)`` and image-level probabilities ``(N,)`` (eval mode)."""
    import torch

    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    ps, cs = [], []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch])).permute(0, 3, 1, 2)
            seg, cls = net(x.float().div_(255.0).to(device))
            ps.append(torch.sigmoid(seg[:, 0]).cpu().numpy())
            cs.append(torch.sigmoid(cls[:, 0]).cpu().numpy())
    net.train(was_training)
    return np.concatenate(ps), np.concatenate(cs)


def tune_metrics(net, images: np.ndarray, faces: np.ndarray) -> dict:
    """Recall of the detector's boxes (score ``sqrt(p * c)``, its default pixel threshold) on
    crops with >= 20 face px, and the face-less share boxed (0 face px), at the shipped threshold
    and at the lowest threshold boxing <= 5% of these face-less crops (chosen on the same crops:
    slightly optimistic, for comparing runs). The rules are ``reidlab.faces.measure``'s."""
    from reidlab.faces.measure import mask_coverage
    from reidlab.faces.reidface import component_boxes

    p, c = predict_maps(net, images)
    score = np.sqrt(p * c[:, None, None].astype(np.float32))
    npx = faces.reshape(len(faces), -1).sum(1)
    with_face, faceless = npx >= 20, npx == 0
    peak = score.reshape(len(score), -1).max(1)
    # a face-less crop gets a box exactly when its peak score reaches the threshold
    m = np.sort(peak[faceless])[::-1]
    k = int(np.floor(BUDGET * len(m)))
    t5 = 0.0 if k >= len(m) else float(np.nextafter(np.float32(m[k]), np.float32(np.inf)))
    pixel_t = _detector_default("pixel_threshold")
    out = {}
    for key, t in (("default", float(_detector_default("threshold"))), ("at5", t5)):
        hits = [
            mask_coverage(component_boxes(s, t, pixel_t, (face_data.CELL,) * 2), f.astype(bool))
            >= 0.5
            for s, f in zip(score[with_face], faces[with_face])
        ]
        out[f"recall_{key}"] = float(np.mean(hits)) if hits else float("nan")
        out[f"faceless_boxed_{key}"] = float((peak[faceless] >= t).mean()) if m.size else 0.0
    return {"threshold_at5": t5, **out, "with_face": int(with_face.sum()), "faceless": len(m)}


def fit(
    images: np.ndarray,
    faces: np.ndarray,
    cfg: FaceTrainConfig,
    *,
    train_idx: np.ndarray | None = None,
    tune_idx: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[dict, list[dict]]:
    """Train a localizer on ``images[train_idx]`` (default: all; ``cfg.limit`` keeps the first N).

    Returns the CPU state dict and one row per epoch (mean loss, times, tune metrics when
    ``tune_idx`` is given, every step's loss when the run has at most 32 steps). Torch's thread
    count and determinism flag are restored afterwards.
    """
    import torch
    from tqdm.auto import tqdm

    train_idx = np.arange(len(images)) if train_idx is None else np.asarray(train_idx)
    if cfg.limit:
        train_idx = train_idx[: cfg.limit]
    steps = len(train_idx) // cfg.batch
    if steps == 0:
        raise ValueError(f"batch: {cfg.batch} is more than the {len(train_idx)} training crops")
    device = resolve_device(cfg.device)
    if device.type == "cuda":  # cuBLAS is deterministic only with a fixed workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    threads, det, det_warn = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    # the order of every random draw below is research/reidface/train.py's (bit-identical weights)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        aug = face_data.build_augment(cfg.seed)
        net = build_network(cfg.widths).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=cfg.lr,
            total_steps=steps * cfg.epochs,
            pct_start=0.1,
            anneal_strategy="cos",
            div_factor=20,
            final_div_factor=200,
        )
        rng = np.random.default_rng(cfg.seed)
        history: list[dict] = []
        t_start, cpu_start = time.time(), time.process_time()
        h, w = face_data.CROP_SIZE
        bar = tqdm(total=steps * cfg.epochs, desc="train-faces", unit="step", disable=not progress)
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            t0, losses = time.time(), []
            order = rng.permutation(train_idx)
            for s in range(steps):
                b = order[s * cfg.batch : (s + 1) * cfg.batch]
                ims = np.empty((len(b), h, w, 3), np.uint8)
                fcs = np.empty((len(b), h, w), np.uint8)
                for j, i in enumerate(b):
                    r = aug(image=images[i], mask=faces[i])
                    ims[j], fcs[j] = r["image"], r["mask"]
                loss = face_loss(net, ims, fcs, cfg.cls_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.update(1)
                rate = bar.n * cfg.batch / max(time.time() - t_start, 1e-9)
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}", img_s=f"{rate:.0f}")
            row = {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "epoch_s": time.time() - t0,
                "elapsed_s": time.time() - t_start,
                "cpu_s": time.process_time() - cpu_start,
            }
            if steps * cfg.epochs <= 32:  # smoke runs: every step, for checking them
                row["step_losses"] = losses
            last = epoch == cfg.epochs
            if tune_idx is not None and (last or (cfg.eval_every and epoch % cfg.eval_every == 0)):
                row["tune"] = tune_metrics(net, images[tune_idx], faces[tune_idx])
            history.append(row)
            log.info(
                "epoch %d/%d loss %.4f (%.1f s)", epoch, cfg.epochs, row["loss"], row["epoch_s"]
            )
        bar.close()
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
    return state, history


def save_weights(path: str | Path, state: dict, cfg: FaceTrainConfig) -> Path:
    """Write a weights file ``build_detector("reidface", weights=path)`` loads (tensors and plain
    values only: read with ``weights_only=True``) and check that it loads."""
    import torch

    from reidlab.faces.reidface import load_network

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "widths": list(cfg.widths),
            "cls_head": True,
            "state_dict": state,
            "seed": cfg.seed,
            "split_seed": cfg.split_seed,
            "epochs": cfg.epochs,
        },
        path,
    )
    load_network(str(path.resolve()))  # it loads (the cache is keyed by the file's mtime)
    return path


def train_faces(
    root: str | Path, out: str | Path, cfg: FaceTrainConfig | None = None, *, progress: bool = True
) -> dict:
    """Train on ``root`` (Market-1501 layout with ``bounding_box_train_parsing_pgt``), write the
    weights to ``out`` and the log to ``out`` with suffix ``.log.json``; returns the log.

    The log holds the recipe, the split (id lists and their hash), one row per epoch (loss,
    times, tune recall) and the wall and CPU time.
    """
    import torch

    from reidlab.hashing import file_hash, json_hash

    cfg = cfg or FaceTrainConfig()
    t_start, cpu_start = time.time(), time.process_time()
    data = face_data.load_parsed_crops(root, progress=progress)
    split = face_data.split_ids(data["pids"], seed=cfg.split_seed)
    idx = face_data.split_indices(data["pids"], split)
    log.info(
        "%d crops with masks; ids train/tune/test %d/%d/%d, crops %d/%d/%d",
        len(data["names"]),
        *(len(split[k]) for k in ("train", "tune", "test")),
        *(len(idx[k]) for k in ("train", "tune", "test")),
    )
    state, history = fit(
        data["images"],
        data["faces"],
        cfg,
        train_idx=idx["train"],
        tune_idx=idx["tune"],
        progress=progress,
    )
    out = save_weights(out, state, cfg)
    summary = {
        "recipe": cfg.to_dict(),
        "root": str(Path(root).resolve()),
        "crops": len(data["names"]),
        "split": {"split_seed": cfg.split_seed, "sha": json_hash(split), **split},
        "crops_per_part": {k: len(v) for k, v in idx.items()},
        "device": str(resolve_device(cfg.device)),
        "torch": torch.__version__,
        "history": history,
        "wall_s": time.time() - t_start,
        "cpu_s": time.process_time() - cpu_start,
        "weights": str(out),
        "weights_sha256": file_hash(out),
        "params": sum(v.numel() for k, v in state.items() if not k.endswith(_BN_STATS)),
    }
    out.with_suffix(".log.json").write_text(json.dumps(summary, indent=1))
    return summary
