"""Measure the re-ID face localizer with the project's rules, choose thresholds, time it vs CenterFace.

Rules (as ``reidlab/faces/measure.py``; :func:`coverage` is checked against its ``mask_coverage``):

* a box **covers** a face when it contains >= 50% of the face's pixels (pixel centres inside the box,
  borders inclusive); a crop is a **hit** when one single box covers its face;
* **recall**: share of hits among crops with >= 20 face pixels; **face-less boxed**: share of crops with
  0 face pixels that get any box; **detection rate**: share of all crops with >= 1 box;
* **pixel coverage** (the anonymized region = soft mask >= ``mask_threshold``, dilated by ``dilate``
  px): the share of ALL parsed face pixels of ALL crops that lie inside the region (pooled);
  **over-blur**: the share of anonymized pixels that are not face pixels (pooled); **area**: mean share
  of the crop that is anonymized.

Protocol: thresholds are chosen on the **tune** identities (``train.split_ids``), numbers are
reported on the **test** identities, never tuned on. Downscaled variants: the crop is shrunk 2x
(64x32) or 4x (32x16) with ``cv2.INTER_AREA`` and given to the localizer, which resizes it back to its
128x64 input (bilinear); boxes come back in the small image's pixels and are scaled to 128x64 to be
compared with the full-resolution parsing mask.

Usage::

    python measure.py --weights weights.pt --out results.json            # tune + test tables
    OMP_NUM_THREADS=2 python measure.py --weights weights.pt --speed     # timing vs CenterFace
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MAIN = Path("/work/main")  # the reidlab checkout: CenterFace and the reference coverage rule

log = logging.getLogger("reidface.measure")


# ---------------------------------------------------------------------------------------------
# Network probabilities
def net_probs(net, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Face probabilities ``(N, H/4, W/4)`` of a FaceSegNet on uint8 ``(N, H, W, 3)`` images."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[s:s + batch])).permute(0, 3, 1, 2).float() / 255.0
            y = net(x)
            out.append(torch.sigmoid(y[0] if isinstance(y, tuple) else y)[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def downscale(images: np.ndarray, factor: int) -> list[np.ndarray]:
    """Shrink each image by an integer ``factor`` with ``cv2.INTER_AREA``."""
    import cv2

    return [cv2.resize(im, (im.shape[1] // factor, im.shape[0] // factor), interpolation=cv2.INTER_AREA)
            for im in images]


# ---------------------------------------------------------------------------------------------
# Box rules
def coverage(boxes: np.ndarray, mask: np.ndarray) -> float:
    """Largest fraction of ``mask``'s pixels (centres, borders inclusive) inside one box (0 if none)."""
    total = int(mask.sum())
    if total == 0 or len(boxes) == 0:
        return 0.0
    ys, xs = np.nonzero(mask)
    cx, cy = xs[None, :] + 0.5, ys[None, :] + 0.5
    b = np.asarray(boxes, np.float32)
    inside = (cx >= b[:, 0:1]) & (cx <= b[:, 2:3]) & (cy >= b[:, 1:2]) & (cy <= b[:, 3:4])
    return float(inside.sum(1).max()) / total


def box_metrics(boxes: list[np.ndarray], faces: np.ndarray, min_face_px: int = 20, cover: float = 0.5) -> dict:
    """Recall / face-less boxed / detection rate of per-crop boxes against 0/1 face masks."""
    npx = faces.reshape(len(faces), -1).sum(1)
    hit = np.array([coverage(b, f) >= cover if n >= min_face_px else False
                    for b, f, n in zip(boxes, faces, npx)])
    has_box = np.array([len(b) > 0 for b in boxes])
    with_face, faceless = npx >= min_face_px, npx == 0
    return {"recall": float(hit[with_face].mean()), "faceless_boxed": float(has_box[faceless].mean()),
            "detection_rate": float(has_box.mean()), "with_face": int(with_face.sum()),
            "faceless": int(faceless.sum())}


def boxes_at(probs, threshold, pixel_threshold, box_scale, size=(128, 64)) -> list[np.ndarray]:
    """Boxes (in ``size`` pixels) for every probability map with :func:`model.mask_to_boxes`."""
    from model import mask_to_boxes

    h, w = size
    return [mask_to_boxes(p, threshold, pixel_threshold=pixel_threshold, box_scale=box_scale,
                          cell=(h / p.shape[0], w / p.shape[1]), size=size) for p in probs]


def max_scores(probs) -> np.ndarray:
    return np.array([float(p.max()) for p in probs])


def curve(probs, faces, thresholds, pixel_threshold, box_scale) -> list[dict]:
    """Box metrics at each threshold (pixel threshold capped at the threshold)."""
    return [{"threshold": float(t), "pixel_threshold": float(min(pixel_threshold, t)),
             "box_scale": float(box_scale), **box_metrics(boxes_at(probs, t, pixel_threshold, box_scale), faces)}
            for t in thresholds]


def threshold_for_faceless(probs, faces, budget: float) -> float:
    """Smallest threshold with at most ``budget`` of the face-less crops boxed.

    A face-less crop gets a box exactly when its maximum probability is >= the threshold, so this only
    needs the maxima: the threshold is placed just above the ``floor(budget * n) + 1``-th largest one.
    """
    npx = faces.reshape(len(faces), -1).sum(1)
    m = np.sort(max_scores(probs)[npx == 0])[::-1]
    k = int(np.floor(budget * len(m)))
    if k >= len(m):
        return 0.0
    return float(np.nextafter(np.float32(m[k]), np.float32(np.inf)))


# ---------------------------------------------------------------------------------------------
# Pixel rules
def soft_masks(probs, size=(128, 64)) -> np.ndarray:
    """Bilinear upsampling of every probability map to ``size`` (cell centres aligned)."""
    import cv2

    return np.stack([cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for p in probs])


def pixel_metrics(masks: np.ndarray, faces: np.ndarray, mask_threshold: float, dilate: int) -> dict:
    """Face-pixel coverage, over-blur share and anonymized area of the region (see module doc)."""
    from model import anonymize_region

    regions = np.stack([anonymize_region(m, mask_threshold, dilate) for m in masks])
    f = faces.astype(bool)
    face_px, anon_px = int(f.sum()), int(regions.sum())
    inside = int((regions & f).sum())
    return {"mask_threshold": float(mask_threshold), "dilate": int(dilate),
            "face_px_covered": inside / face_px if face_px else float("nan"),
            "overblur": (anon_px - inside) / anon_px if anon_px else 0.0,
            "area": float(regions.mean()), "face_px": face_px}


def quick_metrics(probs, faces) -> dict:
    """Training-log metrics on one set: recall at <= 5% face-less boxed (threshold chosen on the SAME
    set, so optimistic: only to compare epochs), pixel coverage at 0.2 / 3 px."""
    t = threshold_for_faceless(probs, faces, 0.05)
    r = box_metrics(boxes_at(probs, t, 0.3, 1.2), faces)
    px = pixel_metrics(soft_masks(probs), faces, 0.2, 3)
    return {"thr5": t, "recall5": r["recall"], "fl5": r["faceless_boxed"], "pix": px["face_px_covered"],
            "overblur": px["overblur"]}


# ---------------------------------------------------------------------------------------------
# CenterFace (the project's default) for reference, union and timing
def centerface(threads: int = 1, **params):
    if str(MAIN) not in sys.path:
        sys.path.insert(0, str(MAIN))
    from reidlab.faces import build_detector

    return build_detector("centerface", threads=threads, **params)


def check_rule_against_reidlab(boxes, faces, n: int = 300) -> None:
    """Assert :func:`coverage` equals ``reidlab.faces.measure.mask_coverage`` on ``n`` crops."""
    if str(MAIN) not in sys.path:
        sys.path.insert(0, str(MAIN))
    from reidlab.faces.measure import mask_coverage

    for b, f in list(zip(boxes, faces))[:n]:
        assert abs(coverage(b, f.astype(bool)) - mask_coverage(b, f.astype(bool))) < 1e-9


# ---------------------------------------------------------------------------------------------
def evaluate(args) -> dict:
    import torch

    from model import ReidFaceLocalizer
    from train import load_market_train, split_ids, split_indices

    torch.set_num_threads(args.threads)
    data = load_market_train(cache=HERE / "cache" / "market_train.npz")
    split = split_ids(data["pids"], seed=0)
    idx = split_indices(data, split)
    res: dict = {"weights": str(args.weights), "sets": {k: {"ids": len(split[k]), "crops": len(v)}
                                                        for k, v in idx.items()}}
    faces = {p: data["faces"][idx[p]] for p in ("tune", "test")}
    # probability maps (and image-level probabilities) for tune/test x full, 2x, 4x x flip TTA off/on
    maps, score_maps = {}, {}
    for flip in (False, True):
        loc = ReidFaceLocalizer(args.weights, flip_tta=flip, score_mode="seg")
        modes = ("seg", "geo") if loc.net.cls is not None else ("seg",)
        for part in ("tune", "test"):
            ims = data["images"][idx[part]]
            for f in (1, 2, 4):
                m, c = loc.probabilities(list(ims) if f == 1 else downscale(ims, f))
                maps[(part, f, flip)] = np.stack(m)
                for mode in modes:
                    loc.params["score_mode"] = mode
                    score_maps[(part, f, flip, mode)] = np.stack([loc.score_map(a, b) for a, b in zip(m, c)])
                loc.params["score_mode"] = "seg"
    log.info("probabilities done")

    # 1) on tune, per (flip, mode): threshold for <= 5% face-less boxed, then pixel_threshold / box_scale
    configs = []
    for (part, f, flip, mode), sm in score_maps.items():
        if part != "tune" or f != 1:
            continue
        t5 = threshold_for_faceless(sm, faces["tune"], args.faceless_budget)
        grid = [{"pixel_threshold": pt, "box_scale": bs, **box_metrics(boxes_at(sm, t5, pt, bs), faces["tune"])}
                for pt in (0.1, 0.2, 0.3, 0.5) for bs in (1.0, 1.1, 1.2, 1.3, 1.5)]
        best = max(g["recall"] for g in grid)
        # the smallest box_scale within 0.2 points of the best recall (smaller boxes blur less)
        pick = min((g for g in grid if g["recall"] >= best - 0.002), key=lambda g: (g["box_scale"], -g["recall"]))
        configs.append({"flip_tta": flip, "score_mode": mode, "threshold": t5, **pick})
    res["tune_configs"] = configs
    # the default: best tune recall WITHOUT flip TTA (flip doubles the network time)
    chosen = max((c for c in configs if not c["flip_tta"]), key=lambda c: c["recall"])
    res["chosen"] = {k: chosen[k] for k in ("threshold", "pixel_threshold", "box_scale", "score_mode")}

    # 2) report every tune config on TEST (full res and 2x / 4x at the same threshold, and at a 2x/4x
    #    threshold chosen on tune 2x/4x)
    rows = []
    for c in configs:
        for f in (1, 2, 4):
            sm_test = score_maps[("test", f, c["flip_tta"], c["score_mode"])]
            r = box_metrics(boxes_at(sm_test, c["threshold"], c["pixel_threshold"], c["box_scale"]), faces["test"])
            rows.append({"flip_tta": c["flip_tta"], "score_mode": c["score_mode"], "scale": f,
                         "threshold": c["threshold"], "threshold_from": "tune x1", **r})
            if f > 1:
                tf = threshold_for_faceless(score_maps[("tune", f, c["flip_tta"], c["score_mode"])], faces["tune"],
                                            args.faceless_budget)
                r = box_metrics(boxes_at(sm_test, tf, c["pixel_threshold"], c["box_scale"]), faces["test"])
                rows.append({"flip_tta": c["flip_tta"], "score_mode": c["score_mode"], "scale": f,
                             "threshold": tf, "threshold_from": f"tune x{f}", **r})
    res["test_rows"] = rows
    # 3) recall / face-less curves over thresholds, chosen config, tune and test
    c = chosen
    ts = sorted({0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, round(c["threshold"], 4)})
    for part in ("tune", "test"):
        for f in (1, 2):
            res[f"curve_{part}_x{f}"] = curve(score_maps[(part, f, False, c["score_mode"])], faces[part], ts,
                                              c["pixel_threshold"], c["box_scale"])
    # 4) pixel coverage of the thresholded + dilated soft mask (per-cell probabilities, no image head)
    px_rows = []
    for part in ("tune", "test"):
        for flip in (False, True):
            for f in (1, 2):
                masks = soft_masks(maps[(part, f, flip)])
                for mt in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5):
                    for d in (0, 1, 2, 3, 4, 5, 6, 8):
                        px_rows.append({"set": part, "flip_tta": flip, "scale": f,
                                        **pixel_metrics(masks, faces[part], mt, d)})
    res["pixel"] = px_rows
    ok = [r for r in px_rows if r["set"] == "tune" and r["scale"] == 1 and not r["flip_tta"]
          and r["face_px_covered"] >= args.pixel_target]
    if ok:
        pk = min(ok, key=lambda r: r["overblur"])
        res["chosen"].update(mask_threshold=pk["mask_threshold"], dilate=pk["dilate"])
    # rule check against reidlab's mask_coverage on the first 300 test crops
    check_rule_against_reidlab(boxes_at(score_maps[("test", 1, False, c["score_mode"])], c["threshold"],
                                        c["pixel_threshold"], c["box_scale"]), faces["test"])
    if args.centerface:
        res["centerface"] = centerface_compare(data, idx, score_maps, faces, c)
    return res


def centerface_compare(data, idx, probs, faces, chosen) -> dict:
    """CenterFace default (threshold swept from its raw 0.05 boxes) on test ids, and the union."""
    from model import scale_boxes

    out = {}
    # our thresholds for the union: the chosen one and stricter ones (the union adds CenterFace's
    # false alarms, so our own share of the face-less budget must shrink)
    sm = probs[("tune", 1, False, chosen["score_mode"])]
    union_thresholds = sorted({chosen["threshold"]} | {threshold_for_faceless(sm, faces["tune"], b)
                                                        for b in (0.01, 0.02, 0.03, 0.04)})
    det = centerface(threads=0, threshold=0.05, box_scale=1.0)  # raw boxes; threshold/scale applied below
    for part in ("tune", "test"):
        ims = list(data["images"][idx[part]])
        t0 = time.time()
        raw = det.detect_batch(ims)
        log.info("centerface on %s: %d crops in %.1fs", part, len(ims), time.time() - t0)
        rows = []
        for tc in (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7):
            cf = [np.clip(scale_boxes(b[b[:, 4] >= tc], 1.3), 0, [64, 128, 64, 128, 1]) if len(b) else b[:0]
                  for b in raw]
            rows.append({"centerface_threshold": tc, **box_metrics(cf, faces[part])})
            # union with the learned boxes at a few thresholds of our own
            for t in union_thresholds:
                ours = boxes_at(probs[(part, 1, False, chosen["score_mode"])], t, chosen["pixel_threshold"],
                                chosen["box_scale"])
                uni = [np.concatenate([a, b]) for a, b in zip(ours, cf)]
                rows.append({"centerface_threshold": tc, "union_with_threshold": t, **box_metrics(uni, faces[part])})
        out[part] = rows
    return out


# ---------------------------------------------------------------------------------------------
def speed(args) -> dict:
    """Images/s on the same 512 Market-1501 query crops: localizer (boxes; boxes + soft masks) and
    CenterFace default, best of ``repeats``, same process, torch and onnxruntime at ``threads``."""
    import cv2
    import torch

    from model import ReidFaceLocalizer

    torch.set_num_threads(args.threads)
    paths = sorted((Path("/work/shared/market1501/query")).glob("*.jpg"))
    pick = np.random.default_rng(0).choice(len(paths), 512, replace=False)
    ims = [cv2.imread(str(paths[i]))[..., ::-1].copy() for i in sorted(pick)]
    assert all(im.shape == (128, 64, 3) for im in ims)
    loc = ReidFaceLocalizer(args.weights, batch_size=args.batch)

    def best(fn, repeats):
        fn(ims[:32])  # warm-up
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(ims)
            ts.append(time.perf_counter() - t)
        return len(ims) / min(ts)

    res = {"threads": args.threads, "crops": len(ims), "batch": args.batch}
    res["reidface_detect_batch"] = best(loc.detect_batch, args.repeats)
    res["reidface_predict_boxes_and_masks"] = best(loc.predict, args.repeats)
    res["reidface_network_only"] = best(lambda x: loc.probabilities(x), args.repeats)
    loc_flip = ReidFaceLocalizer(args.weights, batch_size=args.batch, flip_tta=True)
    res["reidface_detect_batch_flip_tta"] = best(loc_flip.detect_batch, args.repeats)

    # end to end: JPEG bytes -> decode -> localize -> blur the anonymized region -> JPEG bytes
    from model import anonymize_region

    bufs = [paths[i].read_bytes() for i in sorted(pick)]

    def pipeline(_):
        rgb = [np.ascontiguousarray(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1])
               for b in bufs]
        _, masks = loc.predict(rgb)
        out = []
        for im, m in zip(rgb, masks):
            region = anonymize_region(m)
            if region.any():
                im[region] = cv2.GaussianBlur(im, (0, 0), 3)[region]
            out.append(cv2.imencode(".jpg", im[..., ::-1])[1])
        return out

    res["pipeline_decode_localize_blur_encode"] = best(pipeline, args.repeats)
    if args.centerface:
        det = centerface(threads=args.threads)  # the default: 2x upscale, flip TTA, 0.45, x1.3
        res["centerface_default"] = best(det.detect_batch, max(1, args.repeats // 2))
        res["speedup_vs_centerface"] = res["reidface_detect_batch"] / res["centerface_default"]
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=str(HERE / "weights.pt"))
    ap.add_argument("--out", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed", action="store_true", help="timing only")
    ap.add_argument("--centerface", action="store_true", help="include CenterFace (slow)")
    ap.add_argument("--faceless-budget", type=float, default=0.05)
    ap.add_argument("--pixel-target", type=float, default=0.985, help="tune-set pixel coverage to reach")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    res = speed(args) if args.speed else evaluate(args)
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, list)}, indent=1)[:6000])


if __name__ == "__main__":
    main()
