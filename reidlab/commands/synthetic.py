"""``reidlab synthetic ROOT``: generate the built-in synthetic dataset and print its summary."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import fraction, nonneg_int, positive_int
    from reidlab.datasets.synthetic import DEFAULTS

    parser.add_argument(
        "root",
        nargs="?",
        default=None,
        help="output folder (default: data/synthetic/<config hash>, or under "
        "$REIDLAB_DATA); reused when it already holds the same config",
    )
    parser.add_argument(
        "--num-ids",
        type=positive_int,
        default=DEFAULTS["num_ids"],
        help="identities, half train half test (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--num-cameras", type=positive_int, default=DEFAULTS["num_cameras"])
    parser.add_argument(
        "--size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        default=list(DEFAULTS["size"]),
        help="crop size (default 128 64)",
    )
    parser.add_argument(
        "--images-per-camera",
        type=positive_int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=list(DEFAULTS["images_per_id_per_camera"]),
        help="images per identity per camera (default 2 5)",
    )
    parser.add_argument(
        "--query-per-id",
        type=nonneg_int,
        default=DEFAULTS["query_per_id"],
        help="test cameras giving one query image each (default %(default)s)",
    )
    parser.add_argument(
        "--uniform-fraction",
        type=fraction,
        default=DEFAULTS["uniform_fraction"],
        help="fraction of identities wearing a shared uniform, so only head and "
        "build tell them apart: 0 = faces barely matter, 1 = faces matter "
        "(default %(default)s)",
    )
    parser.add_argument("--num-uniforms", type=positive_int, default=DEFAULTS["num_uniforms"])
    parser.add_argument("--side-fraction", type=fraction, default=DEFAULTS["side_fraction"])
    parser.add_argument("--back-fraction", type=fraction, default=DEFAULTS["back_fraction"])
    parser.add_argument(
        "--num-distractors",
        type=nonneg_int,
        default=DEFAULTS["num_distractors"],
        help="pid 0 gallery images (default %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if ROOT already holds this config"
    )


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from reidlab.datasets.synthetic import (
        default_root,
        ensure_synthetic,
        load,
        normalize_config,
        read_config,
    )

    config = {
        "num_ids": args.num_ids,
        "seed": args.seed,
        "num_cameras": args.num_cameras,
        "size": tuple(args.size),
        "images_per_id_per_camera": tuple(args.images_per_camera),
        "query_per_id": args.query_per_id,
        "uniform_fraction": args.uniform_fraction,
        "num_uniforms": args.num_uniforms,
        "side_fraction": args.side_fraction,
        "back_fraction": args.back_fraction,
        "num_distractors": args.num_distractors,
    }
    if args.force:
        target = Path(args.root) if args.root else default_root(normalize_config(**config))
        if read_config(target) is not None:  # only ever delete a synthetic dataset folder
            shutil.rmtree(target)
    t0 = time.perf_counter()
    root = ensure_synthetic(args.root, progress=True, **config)
    dt = time.perf_counter() - t0
    ds = load(root)
    cfg = ds.info["config"]
    print(ds.summary())
    print(f"  face boxes {ds.info['face_boxes']}")
    print(
        f"  seed {cfg['seed']}, uniform_fraction {cfg['uniform_fraction']}, "
        f"generator {cfg['generator_version']}, config {cfg['config_hash']} ({dt:.1f} s)"
    )
    return 0
