"""``reidlab train``: train a re-ID model on original or on-the-fly anonymized data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import (
        add_dataset_options,
        nonneg_int,
        positive_float,
        positive_int,
    )

    p.add_argument(
        "--config", help="JSON file of TrainConfig fields (command-line options override it)"
    )
    p.add_argument(
        "--recipe", help="named starting settings: tiny (fast CPU), bot (strong baseline)"
    )
    p.add_argument(
        "--model",
        help="model name (default tiny); see `python -c 'import reidlab.models as m; print(m.list_models())'`",
    )
    p.add_argument("--dataset", help="dataset name (default synthetic)")
    p.add_argument("--root", help="dataset folder (synthetic: generated and cached when omitted)")
    add_dataset_options(p)
    p.add_argument("--epochs", type=positive_int)
    p.add_argument(
        "--iters", type=positive_int, dest="iters_per_epoch", help="PK batches per epoch"
    )
    p.add_argument("--batch-p", type=positive_int, dest="batch_p", help="identities per batch")
    p.add_argument("--batch-k", type=positive_int, dest="batch_k", help="images per identity")
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    p.add_argument("--schedule", choices=["step", "cosine", "constant"])
    p.add_argument("--warmup", type=nonneg_int, dest="warmup_epochs", help="warm-up epochs")
    p.add_argument("--seed", type=int)
    p.add_argument("--pretrained", help="'imagenet' (timm cache) or a weights file")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        default=None,
        help="allow a --pretrained file that holds pickled Python objects beyond tensors (runs "
        "code from the file: only for files from a source you trust)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--workers", type=nonneg_int, dest="num_workers")
    p.add_argument(
        "--no-amp", action="store_false", dest="amp", default=None, help="disable AMP on CUDA"
    )
    p.add_argument(
        "--anonymize",
        metavar="METHOD",
        choices=["blur", "pixelate", "fill", "zero"],
        help="train on anonymized faces: blur, pixelate, fill, zero",
    )
    p.add_argument("--anon-scale", type=positive_float, help="face box enlargement for --anonymize")
    p.add_argument(
        "--boxes", help="face boxes for --anonymize: 'oracle' (synthetic) or a detections .parquet"
    )
    p.add_argument("--eval-every", type=nonneg_int, dest="eval_every")
    p.add_argument(
        "--resume", action="store_true", default=None, help="continue from OUT/checkpoint.pth"
    )
    p.add_argument("--out", dest="out_dir", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from reidlab.commands.argtypes import dataset_options
    from reidlab.training import TrainConfig, train

    cfg = {}
    if args.recipe:
        cfg = TrainConfig.from_recipe(args.recipe).to_dict()
    if args.config:
        TrainConfig.from_json(args.config)  # validates names
        cfg.update(json.loads(Path(args.config).read_text()))
    for name in (
        "model",
        "dataset",
        "root",
        "epochs",
        "iters_per_epoch",
        "batch_p",
        "batch_k",
        "lr",
        "optimizer",
        "schedule",
        "warmup_epochs",
        "seed",
        "device",
        "num_workers",
        "amp",
        "eval_every",
        "resume",
        "out_dir",
        "boxes",
        "trust_checkpoint",
    ):
        v = getattr(args, name, None)
        if v is not None:
            cfg[name] = v
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
    result = train(TrainConfig.from_dict(cfg))
    m = result["metrics"]
    print(json.dumps({k: m[k] for k in ("mAP", "rank1", "mINP") if k in m}))
    print(f"results in {result['paths']['out_dir']}")
    return 0
