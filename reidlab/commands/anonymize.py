"""``reidlab anonymize SRC DST``: write an anonymized copy of a dataset folder, with a manifest.

Example (Market-1501 query, CenterFace at 2x, fail-closed head prior for crops without a face)::

    reidlab anonymize ../shared/market1501 /data/market1501_blur --dataset market1501 \\
        --method blur --detector centerface --upscale 2 --threshold 0.5 --fail-closed 0.3 \\
        --mask ellipse --scale 1.2
    reidlab verify /data/market1501_blur

Exactly the predicted face pixels (reidface's face map >= 0.02, dilated 2 px; crops whose map has
nothing above the threshold get their boxes, or the head prior with --fail-closed)::

    reidlab anonymize ../shared/market1501 /data/market1501_seg --detector reidface \
        --mask segmentation --mask-threshold 0.02 --mask-dilate 2
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import (
        add_dataset_options,
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
    from reidlab.faces.options import add_detector_arguments

    add_detector_arguments(parser.add_argument_group("face detection"))
    _add_anonymization_arguments(parser)
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


# where the command's defaults differ from the library's: detector boxes are tight (scale 1.2),
# and an exported dataset must be reproducible (the noise of --fill noise is seeded)
CLI_DEFAULTS = {"scale": 1.2, "seed": 0}
DEST = "anon_"  # the settings' argparse dests: anon_<name>, apart from the command's other flags


def _cli_param(p):
    import dataclasses

    return dataclasses.replace(p, default=CLI_DEFAULTS[p.name]) if p.name in CLI_DEFAULTS else p


class _Flags:
    """An argument group whose flags show ``SIGMA_REL``, not the prefixed dest, as metavar."""

    def __init__(self, group):
        self.group = group

    def add_argument(self, *flags, **kw):
        if "metavar" not in kw and "choices" not in kw and "action" not in kw:
            kw["metavar"] = kw["dest"].removeprefix(DEST).upper()
        return self.group.add_argument(*flags, **kw)


def _add_anonymization_arguments(parser: argparse.ArgumentParser) -> None:
    """--method and every setting's flag, generated from the method registry: the common
    settings in one group, each method's own in a group of its own (flags default to None, so
    :func:`anonymizer_settings` can tell given from not given)."""
    from reidlab.anonymize.methods import COMMON_PARAMS, METHODS
    from reidlab.params import add_param_arguments

    a = parser.add_argument_group("anonymization")
    a.add_argument(
        "--method",
        default="blur",
        choices=list(METHODS),
        help="; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()).replace("%", "%%")
        + " (default blur)",
    )
    add_param_arguments(_Flags(a), [_cli_param(p) for p in COMMON_PARAMS], dest_prefix=DEST)
    added: set[str] = set()
    for m in METHODS.values():
        own = [_cli_param(p) for p in m.params if p.name not in added]
        added.update(p.name for p in own)
        if own:
            g = parser.add_argument_group(f"--method {m.name}")
            add_param_arguments(_Flags(g), own, dest_prefix=DEST)


def anonymizer_settings(args: argparse.Namespace) -> dict:
    """``Anonymizer`` keyword settings from the parsed flags: the given ones, else the command's
    defaults (:data:`CLI_DEFAULTS`) for the chosen method. A flag of another method given
    explicitly is an error (``--blocks 8 --method blur``), not silently ignored."""
    from reidlab.anonymize.methods import COMMON_PARAMS, METHODS
    from reidlab.errors import ReidlabError

    method = METHODS[args.method]
    takes = {p.name for p in COMMON_PARAMS + method.params}
    settings = {"method": args.method}
    for name in dict.fromkeys(p.name for m in METHODS.values() for p in m.all_params):
        value = getattr(args, DEST + name, None)
        if value is None:
            if name in takes and name in CLI_DEFAULTS:
                settings[name] = CLI_DEFAULTS[name]
            continue
        if name not in takes:
            flag = next(p.cli_flag for m in METHODS.values() for p in m.params if p.name == name)
            others = [m.name for m in METHODS.values() if name in m.param_names]
            own = " ".join(p.cli_flag for p in method.params) or "no flags of its own"
            raise ReidlabError(
                f"{flag} is a setting of --method {' / '.join(others)}, not of --method "
                f"{method.name} (which takes {own}); drop it or change --method"
            )
        settings[name] = tuple(value) if isinstance(value, list) else value
    return settings


def _quality(text: str) -> int:
    from reidlab.commands.argtypes import nonneg_int

    q = nonneg_int(text)
    if q > 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100], got {text}")
    return q


def run(args: argparse.Namespace) -> int:
    from reidlab.anonymize import Anonymizer
    from reidlab.anonymize.export import (
        check_destination,
        detector_faces,
        detector_maps,
        export_dataset,
    )
    from reidlab.commands.argtypes import dataset_options
    from reidlab.errors import ReidlabError
    from reidlab.faces.options import detector_from_args

    settings = anonymizer_settings(args)  # first: a flag of another method is a usage error
    check_destination(args.src, args.dst)
    if args.dataset:
        from reidlab.datasets import build_dataset

        print(build_dataset(args.dataset, args.src, **dataset_options(args)).summary())
    elif args.dataset_options:
        raise ReidlabError(
            "--dataset-option needs --dataset NAME (the loader that takes the options)"
        )
    det = detector_from_args(args, root=args.src)
    anon = Anonymizer(**settings)
    # --mask segmentation: the detector's face maps (one line, exit 2, for a boxes-only detector)
    maps = detector_maps(det) if anon.values["mask"] == "segmentation" else None
    m = export_dataset(
        args.src,
        args.dst,
        faces=detector_faces(det),
        maps=maps,
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
    if "mask_from_segmentation" in c:
        print(
            f"face-map pixels anonymized in {c['mask_from_segmentation']} images, the boxes in "
            f"the others ({c['invalid_map']} with an unusable map)"
        )
    if c["corrupt"]:
        print(f"{c['corrupt']} unreadable source images skipped (listed in manifest.json):")
        for e in m["corrupt"]:
            print(f"  {e['path']}: {e['error']}")
    t = m["timing_s_this_run"]
    print("seconds per stage this run: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    return 0
