"""``reidlab anonymize SRC DST``: write an anonymized copy of a dataset folder, with a manifest.

Example (Market-1501 query, CenterFace at 2x, fail-closed head prior for crops without a face)::

    reidlab anonymize ../shared/market1501 /data/market1501_blur --dataset market1501 \\
        --method blur --detector centerface --upscale 2 --threshold 0.5 --fail-closed 0.3 \\
        --mask ellipse --scale 1.2
    reidlab verify /data/market1501_blur
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import (
        add_dataset_options,
        fraction,
        nonneg_float,
        open_fraction,
        positive_float,
        positive_int,
    )

    parser.add_argument("src", help="dataset folder (read only)")
    parser.add_argument("dst", help="output folder (outside SRC); an interrupted run resumes here")
    parser.add_argument(
        "--dataset",
        help="dataset name: validates SRC's layout with its loader "
        "(all image files under SRC are anonymized either way)",
    )
    add_dataset_options(parser)
    g = parser.add_argument_group("face detection")
    g.add_argument(
        "--detector", default="centerface", help="centerface (default), mtcnn, oracle, onnx, torch"
    )
    g.add_argument("--model", help="onnx/torch: the detector file")
    g.add_argument(
        "--upscale",
        type=positive_float,
        default=2.0,
        help="resize factor before detection (default 2)",
    )
    g.add_argument("--threshold", type=fraction, default=0.5, help="score threshold (default 0.5)")
    g.add_argument(
        "--box-scale",
        type=positive_float,
        help="the detector's own box enlargement (default: the detector's default, recorded in "
        "the manifest); --scale below applies on top of it",
    )
    g.add_argument(
        "--fail-closed",
        type=open_fraction,
        metavar="FRAC",
        help="images without a face get a head prior box covering this top fraction of the crop",
    )
    a = parser.add_argument_group("anonymization")
    a.add_argument("--method", default="blur", choices=["blur", "pixelate", "fill", "zero", "none"])
    a.add_argument("--mask", default="box", choices=["box", "ellipse"])
    a.add_argument(
        "--scale",
        type=positive_float,
        default=1.2,
        help="enlarge boxes about their centre (default 1.2: detector boxes are tight)",
    )
    a.add_argument(
        "--feather", type=nonneg_float, default=0.0, help="soft mask edge in px (inwards)"
    )
    a.add_argument(
        "--sigma-rel",
        type=positive_float,
        default=0.2,
        help="blur std / face-box height (default 0.2)",
    )
    a.add_argument(
        "--sigma", type=positive_float, help="absolute blur std in px (overrides --sigma-rel)"
    )
    a.add_argument(
        "--blocks", type=positive_int, default=4, help="pixelation cells per side (default 4)"
    )
    a.add_argument("--fill", default="constant", choices=["constant", "mean", "noise"])
    a.add_argument(
        "--color",
        type=fraction,
        nargs=3,
        default=(0.5, 0.5, 0.5),
        metavar=("R", "G", "B"),
        help="fill colour, each channel in [0, 1] (default 0.5 0.5 0.5)",
    )
    a.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    o = parser.add_argument_group("output")
    o.add_argument(
        "--format",
        default="source",
        choices=["source", "png"],
        help="source: same format and names (JPEG at --quality); png: lossless, .png names",
    )
    o.add_argument("--quality", type=_quality, default=95, help="JPEG quality 0..100 (default 95)")
    o.add_argument(
        "--batch-size", type=positive_int, default=128, help="images per batch (default 128)"
    )
    o.add_argument(
        "--no-hash",
        dest="check_hashes",
        action="store_false",
        help="on resume, check earlier outputs and sources by size only (default: sha256)",
    )
    o.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _quality(text: str) -> int:
    from reidlab.commands.argtypes import nonneg_int

    q = nonneg_int(text)
    if q > 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100], got {text}")
    return q


def run(args: argparse.Namespace) -> int:
    from reidlab.anonymize import Anonymizer
    from reidlab.anonymize.export import check_destination, detector_faces, export_dataset
    from reidlab.commands.argtypes import dataset_options
    from reidlab.errors import ReidlabError
    from reidlab.faces import build_detector

    check_destination(args.src, args.dst)
    if args.dataset:
        from reidlab.datasets import build_dataset

        print(build_dataset(args.dataset, args.src, **dataset_options(args)).summary())
    elif args.dataset_options:
        raise ReidlabError(
            "--dataset-option needs --dataset NAME (the loader that takes the options)"
        )
    params = {
        "upscale": args.upscale,
        "threshold": args.threshold,
        "path": args.model,
        "box_scale": args.box_scale,
    }
    if args.detector == "oracle":
        params["root"] = args.src
    det = build_detector(args.detector, **{k: v for k, v in params.items() if v is not None})
    anon = Anonymizer(
        args.method,
        mask=args.mask,
        scale=args.scale,
        feather=args.feather,
        sigma_rel=args.sigma_rel,
        sigma=args.sigma,
        blocks=args.blocks,
        fill=args.fill,
        color=tuple(args.color),
        seed=args.seed,
    )
    m = export_dataset(
        args.src,
        args.dst,
        faces=detector_faces(det),
        detector_info={"name": det.name, "params": det.params},
        anonymizer=anon,
        fail_closed=args.fail_closed,
        fmt=args.format,
        quality=args.quality,
        batch_size=args.batch_size,
        dataset=args.dataset,
        progress=args.progress,
        check_hashes=args.check_hashes,
    )
    c = m["counts"]
    print(f"wrote {c['images_written']} images to {args.dst} ({c['copied']} other files copied)")
    print(
        f"faces detected in {c['with_face']}, none in {c['without_face']} "
        f"({c['fail_closed']} anonymized with the fail-closed head prior)"
    )
    if c["corrupt"]:
        print(f"{c['corrupt']} unreadable source images skipped (listed in manifest.json):")
        for e in m["corrupt"]:
            print(f"  {e['path']}: {e['error']}")
    t = m["timing_s_this_run"]
    print("seconds per stage this run: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    return 0
