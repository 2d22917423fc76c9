"""``reidlab train``: train a re-ID model on original or on-the-fly anonymized data.

One flag per :class:`~reidlab.training.TrainConfig` setting, made from the field's description
(:mod:`reidlab.config`); the settings without one plain value (pretrained weights, the
anonymizer, boxes, resume, the dataset options) have their flags written here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import add_dataset_options, positive_float
    from reidlab.config import add_config_arguments
    from reidlab.training.config import TrainConfig

    p.add_argument(
        "--config", help="JSON file of TrainConfig fields (command-line options override it)"
    )
    p.add_argument(
        "--recipe", help="named starting settings: tiny (fast CPU), bot (strong baseline)"
    )
    p.add_argument("--out", dest="out_dir", required=True, help="output folder")
    add_dataset_options(p)
    p.add_argument("--pretrained", help="'imagenet' (timm cache) or a weights file")
    from reidlab.anonymize.methods import available_methods

    methods = [m for m in available_methods() if m != "none"]
    p.add_argument(
        "--anonymize",
        metavar="METHOD",
        choices=methods,
        help=f"train on anonymized faces: {', '.join(methods)} (the method's defaults)",
    )
    p.add_argument("--anon-scale", type=positive_float, help="face box enlargement for --anonymize")
    p.add_argument(
        "--boxes", help="face boxes for --anonymize: 'oracle' (synthetic) or a detections .parquet"
    )
    p.add_argument(
        "--resume", action="store_true", default=None, help="continue from OUT/checkpoint.pth"
    )
    add_config_arguments(
        p.add_argument_group("training settings (default: the recipe's, else TrainConfig's)"),
        TrainConfig,
        exclude=("out_dir",),
    )


def run(args: argparse.Namespace) -> int:
    from reidlab.commands.argtypes import dataset_options
    from reidlab.config import config_from_args
    from reidlab.training import TrainConfig, train

    cfg = {}
    if args.recipe:
        cfg = TrainConfig.from_recipe(args.recipe).to_dict()
    if args.config:
        TrainConfig.from_json(args.config)  # validates names
        cfg.update(json.loads(Path(args.config).read_text()))
    if args.dataset_options:
        cfg["dataset_options"] = {**cfg.get("dataset_options", {}), **dataset_options(args)}
    if args.pretrained:
        cfg["pretrained"] = (
            True if args.pretrained.lower() in ("imagenet", "true", "1") else args.pretrained
        )
    if args.anonymize:
        anon = {"method": args.anonymize}
        if args.anon_scale:
            anon["scale"] = args.anon_scale
        cfg["anonymizer"] = anon
    for name in ("boxes", "resume"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    result = train(config_from_args(TrainConfig, args, base=TrainConfig.from_dict(cfg)))
    m = result["metrics"]
    print(json.dumps({k: m[k] for k in ("mAP", "rank1", "mINP") if k in m}))
    print(f"results in {result['paths']['out_dir']}")
    return 0
