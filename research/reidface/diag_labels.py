"""Exploration: where do the face-less false alarms come from? (head cut by the top border or not)."""
import cv2
import numpy as np
import torch

import measure
from model import ReidFaceLocalizer
from train import HERE, MARKET, load_market_train, split_ids, split_indices

torch.set_num_threads(1)
d = load_market_train(cache=HERE / "cache" / "market_train.npz")
idx = split_indices(d, split_ids(d["pids"], 0))
loc = ReidFaceLocalizer(HERE / "weights.pt")
for part in ("tune", "test"):
    ii = idx[part]
    fc = d["faces"][ii]
    npx = fc.reshape(len(fc), -1).sum(1)
    lab = np.stack([cv2.imread(str(MARKET / "bounding_box_train_parsing_pgt" / (n + ".png")), cv2.IMREAD_UNCHANGED)
                    for n in d["names"][ii]])
    head = np.isin(lab, (1, 2, 4, 13))  # hat, hair, sunglasses, face
    cut = head[:, :3].any(axis=(1, 2))  # head touches the top 3 rows
    nohead = ~head.any(axis=(1, 2))
    m, c = loc.probabilities(list(d["images"][ii]))
    boxes = [loc.boxes_from_prob(a, 128, 64, b) for a, b in zip(m, c)]
    has = np.array([len(b) > 0 for b in boxes])
    fl = npx == 0
    print(f"{part}: face-less {fl.sum()}; boxed {has[fl].sum()} ({has[fl].mean():.1%})")
    for name, sel in (("head cut by top border", cut), ("no head labels at all", nohead),
                      ("head fully inside", ~cut & ~nohead)):
        s = fl & sel
        print(f"  {name:24s}: {s.sum():4d} face-less crops, {has[s].sum():3d} boxed ({has[s].mean() if s.sum() else 0:.1%})")
    wf = npx >= 20
    r = measure.box_metrics(boxes, fc)
    keep = ~(fl & cut)
    r2 = measure.box_metrics([b for b, k in zip(boxes, keep) if k], fc[keep])
    print(f"  recall {r['recall']:.1%} / face-less boxed {r['faceless_boxed']:.1%}; "
          f"without head-cut face-less crops: {r2['faceless_boxed']:.1%} face-less boxed")
