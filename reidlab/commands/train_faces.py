"""``reidlab train-faces``: train the ``reidface`` face localizer on parsing masks (the recipe).

With the defaults it reproduces the shipped ``reidlab/faces/weights/reidface.pt`` (CPU, 1
thread); ``data/faces.md`` (the reidface model card) has the data, split, recipe and numbers::

    reidlab train-faces --root ../shared/market1501 --out runs/reidface.pt
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reidlab.config import add_config_arguments
    from reidlab.faces.training import FaceTrainConfig

    p.add_argument(
        "--root",
        help="Market-1501-layout folder with bounding_box_train and "
        "bounding_box_train_parsing_pgt (default: market1501 in the data folder)",
    )
    p.add_argument(
        "--out",
        help="weights file to write; the log goes beside it as .log.json "
        "(default: train-faces/reidface.pt in the runs folder)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_config_arguments(
        p.add_argument_group("recipe (default: the shipped weights' recipe)"), FaceTrainConfig
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reidlab import paths
    from reidlab.config import config_from_args
    from reidlab.faces import face_data
    from reidlab.faces.training import FaceTrainConfig, resolve_device, train_faces

    cfg = config_from_args(FaceTrainConfig, args)
    root = Path(args.root) if args.root else paths.data_dir() / "market1501"
    face_data.parsed_crop_names(root)  # a missing folder fails here, naming it, before any work
    resolve_device(cfg.device)  # so does --device cuda without CUDA
    out = Path(args.out) if args.out else paths.runs_dir() / "train-faces" / "reidface.pt"
    s = train_faces(root, out, cfg, progress=args.progress)
    last = s["history"][-1]
    tune = last.get("tune", {})
    print(
        f"wrote {s['weights']} (sha256 {s['weights_sha256'][:16]}) and "
        f"{Path(s['weights']).with_suffix('.log.json')}"
    )
    print(
        f"{cfg.epochs} epochs on {s['device']} in {s['wall_s']:.0f} s (CPU {s['cpu_s']:.0f} s); "
        f"final loss {last['loss']:.4f}; tune recall {tune.get('recall_default', float('nan')):.1%} "
        f"at {tune.get('faceless_boxed_default', float('nan')):.1%} face-less boxed "
        "(shipped threshold)"
    )
    return 0
