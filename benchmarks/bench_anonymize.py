"""Batched anonymization ops vs a per-image OpenCV loop on Market1501-sized batches.

    python -m benchmarks anonymize [--quick] [--batch 256] [--threads N]

Each of 256 crops of 128x64 (float32 RGB in [0, 1]) has one head-sized face box (about 12x16 px,
jittered). Both sides do the same operation on the same data and return new images:
    baseline  per image (HWC float32 arrays, OpenCV's best case): copy, crop the box region, cv2.GaussianBlur (same sigma and kernel size,
              BORDER_REFLECT_101) / cv2.resize INTER_AREA to 4x4 + INTER_NEAREST back / fill, paste
    tensor    the same per-image loop behind the Anonymizer's interface: clone the (B, 3, H, W) batch,
              per image crop (to HWC), the same OpenCV call, paste back
    ours      one call of reidlab.anonymize.Anonymizer on the (B, 3, 128, 64) tensor, as a copy and
              in place (the data-loading path without autograd: feature extraction and the training
              loop own each collated batch, so they can anonymize it in place)
The copy of the whole 25 MB batch bounds 'ours copy' (its speed is printed above the table): on a
2-core CPU it costs about as much as the OpenCV loop spends on all 256 tiny crops.
The table gives images/s (best of the repeats, like timeit) and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def _make_batch(batch: int, seed: int = 0):
    import numpy as np
    import torch

    g = np.random.default_rng(seed)
    images = torch.from_numpy(g.random((batch, 3, 128, 64), dtype=np.float32))
    x1 = 26 + g.integers(-3, 4, batch)
    y1 = 4 + g.integers(-3, 4, batch)
    boxes = np.stack([x1, y1, x1 + 12, y1 + 16], axis=1).astype(np.float32)[:, None, :]
    return images, torch.from_numpy(boxes), torch.ones(batch, 1, dtype=torch.bool)


def _baseline(method: str, sigma_rel: float, blocks: int):
    import cv2

    def run(hwc_images, boxes):
        out = []
        for img, b in zip(hwc_images, boxes):
            o = img.copy()
            x1, y1, x2, y2 = (int(v) for v in b[0])
            crop = o[y1:y2, x1:x2]
            if method == "blur":
                s = sigma_rel * (y2 - y1)
                k = 2 * max(1, math.ceil(3 * s)) + 1
                o[y1:y2, x1:x2] = cv2.GaussianBlur(
                    crop, (k, k), s, borderType=cv2.BORDER_REFLECT_101
                )
            elif method == "pixelate":
                small = cv2.resize(crop, (blocks, blocks), interpolation=cv2.INTER_AREA)
                o[y1:y2, x1:x2] = cv2.resize(
                    small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST
                )
            elif method == "fill":
                o[y1:y2, x1:x2] = np.float32(0.5)
            else:
                o[y1:y2, x1:x2] = 0
            out.append(o)
        return out

    return run


def _baseline_tensor(method: str, sigma_rel: float, blocks: int):
    """The same loop behind the Anonymizer's interface: (B, 3, H, W) tensor in, new tensor out."""
    per_crop = _baseline(method, sigma_rel, blocks)

    def run(images, boxes):
        out = images.clone()
        arr = out.numpy()
        for i, b in enumerate(boxes):
            x1, y1, x2, y2 = (int(v) for v in b[0])
            crop = np.ascontiguousarray(arr[i, :, y1:y2, x1:x2].transpose(1, 2, 0))
            full = np.zeros((y2, x2, 3), np.float32)  # reuse the per-image code on a tight canvas
            full[y1:y2, x1:x2] = crop
            arr[i, :, y1:y2, x1:x2] = per_crop([full], b[None])[0][y1:y2, x1:x2].transpose(2, 0, 1)
        return out

    return run


def _time(fn, repeats: int, sync=None) -> float:
    fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return min(times)  # best of N (like timeit): the least disturbed run on a shared machine


def main(argv: list[str]) -> None:
    import torch

    ap = argparse.ArgumentParser(prog="python -m benchmarks anonymize")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 20
    images, boxes, valid = _make_batch(args.batch)
    hwc = [np.ascontiguousarray(im.permute(1, 2, 0).numpy()) for im in images]
    sigma_rel, blocks = 0.2, 4
    print(
        f"batch {args.batch} x 3x128x64 float32, one ~12x16 face box each, torch threads "
        f"{torch.get_num_threads()}, best of {repeats}"
    )
    clone = _time(lambda: images.clone(), repeats)
    print(
        f"(the batch copy alone, images.clone(): {args.batch / clone:.0f} img/s, an upper bound for 'ours copy')"
    )
    print(
        f"{'method':9s} {'opencv loop':>12s} {'loop tensor':>12s} {'ours copy':>10s} {'ratio':>6s} {'vs tensor':>9s} "
        f"{'ours inplace':>13s} {'ratio':>6s}"
        + ("  cuda img/s" if torch.cuda.is_available() else "")
    )
    for method in ("blur", "pixelate", "fill", "zero"):
        print(
            _row(method, args.batch, repeats, images, boxes, valid, hwc, sigma_rel, blocks),
            flush=True,
        )


def _row(method, n, repeats, images, boxes, valid, hwc, sigma_rel, blocks) -> str:
    import torch

    from reidlab.anonymize import METHODS, Anonymizer

    settings = {
        "sigma_rel": sigma_rel,
        "blocks": blocks,
        "fill": "constant",
        "color": (0.5, 0.5, 0.5),
    }
    anon = Anonymizer(method, **METHODS[method].select(settings))
    bnp = boxes.numpy()
    loop, loop_tensor = (
        _baseline(method, sigma_rel, blocks),
        _baseline_tensor(method, sigma_rel, blocks),
    )
    # same result check: the implementations agree on this batch
    ref = np.stack(loop(hwc, bnp))
    err = float(np.abs(ref - anon(images, boxes, valid).permute(0, 2, 3, 1).numpy()).max())
    assert err < 1e-5, f"{method}: batched op and OpenCV loop differ by {err}"
    assert float(np.abs(loop_tensor(images, bnp).permute(0, 2, 3, 1).numpy() - ref).max()) < 1e-6
    base = _time(lambda: loop(hwc, bnp), repeats)
    tbase = _time(lambda: loop_tensor(images, bnp), repeats)
    copy = _time(lambda: anon(images, boxes, valid), repeats)
    work = images.clone()
    inplace = _time(lambda: anon(work, boxes, valid, inplace=True), repeats)
    line = (
        f"{method:9s} {n / base:12.0f} {n / tbase:12.0f} {n / copy:10.0f} {base / copy:5.1f}x "
        f"{tbase / copy:8.1f}x {n / inplace:13.0f} {base / inplace:5.1f}x"
    )
    if torch.cuda.is_available():
        gi, gb, gv = images.cuda(), boxes.cuda(), valid.cuda()
        line += f"  {n / _time(lambda: anon(gi, gb, gv), repeats, torch.cuda.synchronize):10.0f}"
    return line


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
