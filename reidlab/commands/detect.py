"""``reidlab detect NAME ROOT``: detect faces in a dataset's splits (cached) and report rates.

With ``--masks`` (parsing masks) it also reports face recall and, per anonymization mask (box and
ellipse at ``--mask-scale``, and segmentation for a detector that gives face maps), the share of
face pixels inside the anonymized region and the over-blur (:func:`reidlab.faces.measure.
pixel_coverage`, with the anonymizer's own mask code). Held-out reidface measurement::

    reidlab detect market1501 ../shared/market1501 --splits train --detector reidface \
        --masks ../shared/market1501/bounding_box_train_parsing_pgt \
        --pids research/reidface/split.json:test
"""

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
    parser.add_argument(
        "--pids",
        type=_pids,
        help="only crops of these person ids: comma-separated, or FILE.json[:KEY] holding a list "
        "(e.g. research/reidface/split.json:test)",
    )
    from reidlab.commands.anonymize import CLI_DEFAULTS  # (light: reidlab --help imports no torch)

    g = parser.add_argument_group("pixel coverage (with --masks)")
    g.add_argument(
        "--mask-scale",
        type=float,
        default=CLI_DEFAULTS["scale"],
        help="box / ellipse enlargement, as reidlab anonymize --scale "
        f"(default {CLI_DEFAULTS['scale']})",
    )
    g.add_argument(
        "--mask-threshold",
        type=float,
        help="segmentation: face-map threshold (default: the anonymizer's, reidlab anonymize "
        "--mask-threshold)",
    )
    g.add_argument(
        "--mask-dilate",
        type=int,
        help="segmentation: dilation in px (default: the anonymizer's, reidlab anonymize "
        "--mask-dilate)",
    )
    parser.add_argument("--out", help="write all detections to this parquet file")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def _pids(text: str) -> frozenset[int]:
    """``--pids``: ``1,2,3`` or ``FILE.json[:KEY]`` (a list of ids, or an object's list at KEY)."""
    import json
    from pathlib import Path

    if text.endswith(".json") or ".json:" in text:
        name, _, key = text.partition(".json")
        path, key = Path(name + ".json"), key.removeprefix(":")
        try:
            data = json.loads(path.read_text())
            ids = data[key] if key else data
            return frozenset(int(v) for v in ids)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise argparse.ArgumentTypeError(
                f"cannot read a list of person ids from {text}: {e}"
            ) from None
    try:
        return frozenset(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ids or FILE.json[:KEY], got {text!r}"
        ) from None


def _pixel_line(label: str, r: dict) -> str:
    return (
        f"  pixels {label:24s} face px covered {r['face_px_covered']:6.1%}  "
        f"over-blur {r['overblur']:6.1%}  area {r['area']:5.1%}  "
        f"({r['covered']} of {r['face_px']} face px, {r['crops']} crops)"
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from reidlab.anonymize.masks import (
        DEFAULT_MASK_DILATE,
        DEFAULT_MASK_THRESHOLD,
        check_segmentation_params,
    )
    from reidlab.commands.argtypes import dataset_options
    from reidlab.datasets import build_dataset
    from reidlab.faces import boxes_by_path, detect_split, detector_from_args
    from reidlab.faces.measure import parsing_recall, pixel_coverage, split_summary

    if args.mask_threshold is None:
        args.mask_threshold = DEFAULT_MASK_THRESHOLD
    if args.mask_dilate is None:
        args.mask_dilate = DEFAULT_MASK_DILATE
    check_segmentation_params(args.mask_threshold, args.mask_dilate)  # before any work
    if not args.mask_scale > 0:
        raise ValueError(f"--mask-scale must be > 0, got {args.mask_scale}")

    # bad paths fail before the model loads
    ds = build_dataset(args.name, args.root, **dataset_options(args))
    det = detector_from_args(args, root=ds.root)
    print(f"{det.name} {det.params_json()}")
    frames = []
    for split in args.splits:
        samples = ds.split(split)
        if args.pids is not None:
            samples = [x for x in samples if x.pid in args.pids]
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
        if args.masks:
            _print_pixels(args, det, df, samples, ds.root, pixel_coverage)
        frames.append(df.assign(split=split))
    if args.out:
        pd.concat(frames, ignore_index=True).to_parquet(args.out, index=False)
        print(f"wrote {args.out}")
    return 0


def _print_pixels(args, det, df, samples, root, pixel_coverage) -> None:
    """Pixel coverage lines of one split: box and ellipse, and segmentation where the detector gives
    face maps. The boxes are every row of the table (the fail-closed prior's too: what
    ``reidlab anonymize`` would anonymize)."""
    from reidlab.faces import boxes_by_path
    from reidlab.faces.cache import split_face_maps

    boxes = boxes_by_path(df, root)
    paths = [x.path for x in samples]
    for kind in ("box", "ellipse"):
        r = pixel_coverage(boxes, paths, args.masks, mask=kind, scale=args.mask_scale)
        print(_pixel_line(f"{kind} x{args.mask_scale:g}", r))
    if det.gives_maps:
        maps = split_face_maps(det, samples, root, cache_dir=args.cache_dir, progress=args.progress)
        r = pixel_coverage(
            boxes,
            paths,
            args.masks,
            mask="segmentation",
            scale=args.mask_scale,
            face_maps=maps,
            mask_threshold=args.mask_threshold,
            mask_dilate=args.mask_dilate,
        )
        print(_pixel_line(f"segmentation >={args.mask_threshold:g} +{args.mask_dilate}px", r))
