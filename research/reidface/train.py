"""Train the re-ID face localizer (``model.FaceSegNet``) on Market-1501 parsing masks, from scratch.

Recipe (every choice is a CLI default; RESULTS.md records the exact command):

* **Data**: ``market1501/bounding_box_train`` crops (128x64 JPEG) that have a parsing mask in
  ``bounding_box_train_parsing_pgt`` (12,350 of 12,936; the 586 without one are not used). Target: the
  face pixels (LIP label 13) averaged over 4x4 cells -> a soft ``(32, 16)`` target in ``[0, 1]``.
* **Split by identity** (:func:`split_ids`): the 751 person ids (first 4 characters of the file name),
  sorted, permuted with ``numpy.random.default_rng(seed)``; the first 20% (round(0.2*751) = 150 ids) are
  **test** (numbers reported), the next 10% (75 ids) are **tune** (thresholds chosen there, also the
  training log's checkpoint metric), the remaining 526 ids are **train**. No id is in two parts. The
  lists are written to ``split.json`` next to the weights.
* **Augmentation** (albumentations, seeded): horizontal flip; affine scale 0.75-1.25, shift +-8%,
  rotation +-8 deg; colour jitter / gamma / 5% gray; Gaussian or motion blur (25%); downscale 2x-4x and
  back up (30%, image only); JPEG quality 30-95 (50%); light Gaussian noise (15%).
* **Loss**: BCE with the soft cell targets (``--dice-weight`` adds a batch soft-Dice term; 0 by
  default: Dice made the probabilities saturate near 0/1, which hurt the low-threshold pixel
  coverage and gave no better box trade-off) + 0.5 x BCE of an image-level "has a face" logit
  (``--cls-head``, target ``min(1, face px / 20)`` of the augmented crop; on by default).
* **Optimizer**: AdamW (lr 3e-3, weight decay 1e-4), batch 64, one-cycle cosine schedule (10% warm-up).
* **Determinism**: ``--seed`` fixes the batch order, the augmentation and the initial weights,
  ``--split-seed`` the identity split; ``torch.use_deterministic_algorithms(True)``. Runs with the same seed AND the same thread count give
  the same weights (the thread count may change float summation order).

Usage::

    OMP_NUM_THREADS=1 python train.py --epochs 24 --threads 1 --out weights.pt
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

MARKET = Path("/work/shared/market1501")
FACE_LABEL = 13
HERE = Path(__file__).resolve().parent

log = logging.getLogger("reidface.train")


# ---------------------------------------------------------------------------------------------
# Data
def load_market_train(root: Path = MARKET, cache: Path | None = None) -> dict:
    """All train crops with a parsing mask: images ``(N, 128, 64, 3)`` RGB uint8, face masks ``(N, 128,
    64)`` uint8 0/1, ``pids`` (str), ``names`` (file stems), sorted by file name.

    ``cache``: an ``.npz`` written on the first call and read afterwards (decoding takes ~10 s).
    """
    import cv2

    if cache is not None and Path(cache).is_file():
        z = np.load(cache)
        return {k: z[k] for k in z.files}
    img_dir, mask_dir = root / "bounding_box_train", root / "bounding_box_train_parsing_pgt"
    names = sorted(p.stem for p in img_dir.glob("*.jpg") if (mask_dir / (p.stem + ".png")).is_file())
    images = np.zeros((len(names), 128, 64, 3), np.uint8)
    faces = np.zeros((len(names), 128, 64), np.uint8)
    for i, n in enumerate(names):
        im = cv2.imread(str(img_dir / (n + ".jpg")), cv2.IMREAD_COLOR)
        m = cv2.imread(str(mask_dir / (n + ".png")), cv2.IMREAD_UNCHANGED)
        if im.shape[:2] != (128, 64) or m.shape[:2] != (128, 64):
            raise ValueError(f"{n}: expected 128x64, got {im.shape} / {m.shape}")
        images[i] = im[..., ::-1]
        faces[i] = m == FACE_LABEL
    data = {"images": images, "faces": faces, "pids": np.array([n[:4] for n in names]), "names": np.array(names)}
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **data)
    return data


def split_ids(pids, seed: int = 0, test_frac: float = 0.2, tune_frac: float = 0.1) -> dict[str, list[str]]:
    """Identity-disjoint split: ``{"test": [...], "tune": [...], "train": [...]}`` (sorted id lists).

    Ids are sorted, permuted with ``np.random.default_rng(seed).permutation``; the first
    ``round(test_frac * n)`` are test, the next ``round(tune_frac * n)`` tune, the rest train.
    """
    ids = sorted({str(p) for p in pids})
    perm = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_test, n_tune = round(test_frac * len(ids)), round(tune_frac * len(ids))
    return {"test": sorted(perm[:n_test]), "tune": sorted(perm[n_test:n_test + n_tune]),
            "train": sorted(perm[n_test + n_tune:])}


def split_indices(data: dict, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Row indices of ``data`` for each part of ``split``."""
    return {k: np.nonzero(np.isin(data["pids"], v))[0] for k, v in split.items()}


def build_augment(seed: int):
    """The training augmentation (albumentations ``Compose`` seeded with ``seed``)."""
    import albumentations as A
    import cv2

    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.75, 1.25), translate_percent={"x": (-0.08, 0.08), "y": (-0.08, 0.08)},
                 rotate=(-8, 8), border_mode=cv2.BORDER_REFLECT_101, p=0.8),
        A.ColorJitter(brightness=(0.7, 1.3), contrast=(0.7, 1.3), saturation=(0.6, 1.4), hue=(-0.05, 0.05),
                      p=0.8),
        A.RandomGamma(gamma_limit=(70, 140), p=0.3),
        A.ToGray(p=0.05),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)),
                 A.MotionBlur(blur_limit=(3, 5))], p=0.25),
        A.Downscale(scale_range=(0.25, 0.5),
                    interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}, p=0.3),
        A.ImageCompression(quality_range=(30, 95), p=0.5),
        A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
    ], seed=seed)


def cell_targets(faces: np.ndarray, stride: int = 4) -> np.ndarray:
    """``(B, H, W)`` 0/1 masks -> ``(B, H/stride, W/stride)`` float32 face fraction per cell."""
    b, h, w = faces.shape
    return faces.reshape(b, h // stride, stride, w // stride, stride).mean(axis=(2, 4), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Training
def dice_bce(logits, target, dice_weight: float = 1.0):
    """BCE with soft targets + (1 - soft Dice) pooled over the batch."""
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = logits.sigmoid()
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice_weight * dice, bce.detach(), dice.detach()


def train(args) -> dict:
    import torch
    import torch.nn.functional as F

    import measure
    from model import FaceSegNet, load_net

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    t_start, cpu_start = time.time(), time.process_time()

    data = load_market_train(cache=Path(args.cache) if args.cache else None)
    split = split_ids(data["pids"], seed=args.split_seed)
    idx = split_indices(data, split)
    log.info("crops with masks: %d; ids train/tune/test = %d/%d/%d; crops %d/%d/%d (%.1fs)", len(data["names"]),
             len(split["train"]), len(split["tune"]), len(split["test"]), len(idx["train"]), len(idx["tune"]),
             len(idx["test"]), time.time() - t_start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "split.json").write_text(json.dumps({"split_seed": args.split_seed, **split}, indent=0))

    train_idx = idx["train"]
    if args.limit:
        train_idx = train_idx[: args.limit]
    aug = build_augment(args.seed)
    net = FaceSegNet(tuple(args.widths), cls_head=args.cls_head).to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in net.parameters())
    steps_per_epoch = len(train_idx) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1,
                                                anneal_strategy="cos", div_factor=20, final_div_factor=200)
    log.info("net widths=%s params=%d; %d epochs x %d steps, batch %d, threads %d", args.widths, n_params,
             args.epochs, steps_per_epoch, args.batch, args.threads)
    rng = np.random.default_rng(args.seed)
    history = []
    for epoch in range(args.epochs):
        net.train()
        t0 = time.time()
        order = rng.permutation(train_idx)
        t_aug = 0.0
        losses = []
        for s in range(steps_per_epoch):
            b = order[s * args.batch:(s + 1) * args.batch]
            ta = time.time()
            ims = np.empty((len(b), 128, 64, 3), np.uint8)
            fcs = np.empty((len(b), 128, 64), np.uint8)
            for j, i in enumerate(b):
                r = aug(image=data["images"][i], mask=data["faces"][i])
                ims[j], fcs[j] = r["image"], r["mask"]
            x = torch.from_numpy(ims).permute(0, 3, 1, 2).float().div_(255.0)
            y = torch.from_numpy(cell_targets(fcs))[:, None]
            t_aug += time.time() - ta
            pred = net(x)
            if args.cls_head:
                seg, cls = pred
                npx = torch.from_numpy(fcs.reshape(len(b), -1).sum(1).astype(np.float32))
                loss, bce, dice = dice_bce(seg, y, args.dice_weight)
                loss = loss + args.cls_weight * F.binary_cross_entropy_with_logits(
                    cls[:, 0], (npx / 20.0).clamp(max=1.0))
            else:
                loss, bce, dice = dice_bce(pred, y, args.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append((loss.item(), bce.item(), dice.item()))  # Dice is logged even when unweighted
        l_mean = np.mean(losses, axis=0)
        row = {"epoch": epoch + 1, "loss": float(l_mean[0]), "bce": float(l_mean[1]), "dice": float(l_mean[2]),
               "epoch_s": time.time() - t0, "aug_s": t_aug, "elapsed_s": time.time() - t_start,
               "cpu_s": time.process_time() - cpu_start}
        if args.eval_every and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            net.eval()
            probs = measure.net_probs(net, data["images"][idx["tune"]])
            row.update(measure.quick_metrics(probs, data["faces"][idx["tune"]]))
        history.append(row)
        log.info("epoch %s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in row.items()))
    train_s = time.time() - t_start
    net.eval()
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    torch.save({"widths": list(args.widths), "cls_head": bool(args.cls_head), "state_dict": state, "seed": args.seed,
                "split_seed": args.split_seed, "epochs": args.epochs}, out)
    load_net(out)  # the file must load with weights_only=True
    summary = {"args": vars(args), "train_s": train_s, "cpu_s": time.process_time() - cpu_start,
               "params": n_params, "bytes": out.stat().st_size,
               "history": history}
    out.with_suffix(".log.json").write_text(json.dumps(summary, indent=1))
    log.info("saved %s (%d bytes) after %.1f s", out, out.stat().st_size, train_s)
    return summary


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="weights.pt")
    ap.add_argument("--seed", type=int, default=0, help="augmentation, batch order, initial weights")
    ap.add_argument("--split-seed", type=int, default=0, help="identity split (keep 0: RESULTS.md)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--dice-weight", type=float, default=0.0)
    ap.add_argument("--widths", type=int, nargs=4, default=[12, 24, 48, 64])
    ap.add_argument("--cls-head", action=argparse.BooleanOptionalAction, default=True,
                    help="also train an image-level face logit (--no-cls-head: segmentation only)")
    ap.add_argument("--cls-weight", type=float, default=0.5)
    ap.add_argument("--eval-every", type=int, default=5, help="tune-id metrics every N epochs (0 = never)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N train crops (smoke tests)")
    ap.add_argument("--cache", default=str(HERE / "cache" / "market_train.npz"),
                    help="decoded-data cache ('' = none)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    train(args)


if __name__ == "__main__":
    main()
