"""``reidlab detect NAME ROOT``: detect faces in a dataset's splits (cached) and report rates."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import (
        add_dataset_options,
        fraction,
        open_fraction,
        positive_float,
        positive_int,
    )

    parser.add_argument("name", help="dataset name (see `reidlab datasets`)")
    parser.add_argument("root", help="dataset folder")
    add_dataset_options(parser)
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["query", "gallery"],
        choices=["train", "query", "gallery"],
        help="splits to run (default: query gallery)",
    )
    parser.add_argument(
        "--detector", default="centerface", help="centerface (default), mtcnn, oracle, onnx, torch"
    )
    parser.add_argument(
        "--model", help="onnx/torch: the detector file (see reidlab/faces/external.py)"
    )
    parser.add_argument("--upscale", type=positive_float, help="resize factor before detection")
    parser.add_argument("--threshold", type=fraction, help="score threshold")
    parser.add_argument(
        "--flip-tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="centerface: add a horizontally flipped pass (default on)",
    )
    parser.add_argument(
        "--box-scale", type=positive_float, help="enlarge boxes about their centres by this factor"
    )
    parser.add_argument(
        "--head-region",
        type=open_fraction,
        help="drop boxes whose centre is below this fraction of the crop height",
    )
    parser.add_argument(
        "--fail-closed",
        type=open_fraction,
        metavar="FRAC",
        help="images without a face get a head prior box of this height fraction",
    )
    parser.add_argument(
        "--cache-dir", help="detection cache (default $REIDLAB_CACHE/faces or ~/.cache)"
    )
    parser.add_argument(
        "--limit", type=positive_int, help="a seeded random subset of this many images per split"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --limit's subset (default 0)")
    parser.add_argument(
        "--masks", help="folder of parsing masks (LIP labels): also report face recall"
    )
    parser.add_argument("--out", help="write all detections to this parquet file")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from reidlab.commands.argtypes import dataset_options
    from reidlab.datasets import build_dataset
    from reidlab.faces import boxes_by_path, build_detector, detect_split
    from reidlab.faces.measure import parsing_recall, split_summary

    params = {
        "upscale": args.upscale,
        "threshold": args.threshold,
        "flip_tta": args.flip_tta,
        "head_region": args.head_region,
        "box_scale": args.box_scale,
        "path": args.model,
    }
    if args.detector == "oracle":
        params["root"] = args.root
    params = {k: v for k, v in params.items() if v is not None}
    ds = build_dataset(
        args.name, args.root, **dataset_options(args)
    )  # bad paths fail before the model loads
    det = build_detector(args.detector, **params)
    print(f"{det.name} {det.params_json()}")
    frames = []
    for split in args.splits:
        samples = ds.split(split)
        if args.limit and args.limit < len(samples):
            idx = np.sort(
                np.random.default_rng(args.seed).choice(len(samples), args.limit, replace=False)
            )
            samples = [samples[i] for i in idx]
        df = detect_split(
            det,
            samples,
            ds.root,
            cache_dir=args.cache_dir,
            fail_closed=args.fail_closed,
            progress=args.progress,
        )
        s = split_summary(df)
        line = (
            f"{split:8s} {s['images']:6d} images  face found in {s['detection_rate']:6.1%}  "
            f"fail-closed {s['fail_closed']:5d}  median box height {s['median_height']:.1f} px"
        )
        if args.masks:
            r = parsing_recall(
                boxes_by_path(df[~df["fail_closed"]], ds.root),
                [x.path for x in samples],
                args.masks,
            )
            line += f"  recall {r['recall']:.1%} (n={r['with_face']})  face-less boxed {r['faceless_box_rate']:.1%}"
        print(line)
        frames.append(df.assign(split=split))
    if args.out:
        pd.concat(frames, ignore_index=True).to_parquet(args.out, index=False)
        print(f"wrote {args.out}")
    return 0
