"""``reidlab detect NAME ROOT``: detect faces in a dataset's splits (cached) and report rates."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import add_dataset_options, positive_int
    from reidlab.faces.options import add_detector_arguments

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
    add_detector_arguments(parser.add_argument_group("face detection"))
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
    from reidlab.faces import boxes_by_path, detect_split, detector_from_args
    from reidlab.faces.measure import parsing_recall, split_summary

    # bad paths fail before the model loads
    ds = build_dataset(args.name, args.root, **dataset_options(args))
    det = detector_from_args(args, root=ds.root)
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
            line += (
                f"  recall {r['recall']:.1%} ({r['recalled']} of {r['with_face']})"
                f"  face-less boxed {r['faceless_box_rate']:.1%}"
                f" ({r['faceless_boxed']} of {r['faceless']})"
            )
        print(line)
        frames.append(df.assign(split=split))
    if args.out:
        pd.concat(frames, ignore_index=True).to_parquet(args.out, index=False)
        print(f"wrote {args.out}")
    return 0
