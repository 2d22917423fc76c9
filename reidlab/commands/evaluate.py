"""``reidlab evaluate``: evaluate a re-ID model on a dataset's query/gallery split."""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p) -> None:
    from reidlab.commands.argtypes import add_dataset_options, positive_int
    from reidlab.config import add_config_arguments
    from reidlab.evaluation import EvalConfig

    p.add_argument("--dataset", required=True, help="dataset name (see `reidlab datasets`)")
    p.add_argument("--root", required=True, help="dataset folder")
    add_dataset_options(p)
    p.add_argument("--model", required=True, help="model name (reidlab.models.list_models())")
    p.add_argument(
        "--weights",
        help="checkpoint file (a torchreid/reidlab state dict); required unless --random-init",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="evaluate the randomly initialised model (a chance-level reference)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a checkpoint that holds pickled Python objects beyond tensors (runs code "
        "from the file: only for files from a source you trust); recorded in the result",
    )
    add_config_arguments(
        p.add_argument_group("evaluation settings"), EvalConfig, exclude=("feature_layer",)
    )
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--out", help="write the full result (settings, per-query AP) as JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args) -> int:
    import torch

    from reidlab.commands.argtypes import dataset_options
    from reidlab.config import config_from_args
    from reidlab.datasets import build_dataset
    from reidlab.errors import ReidlabError
    from reidlab.evaluation import EvalConfig, evaluate
    from reidlab.models import build_model, load_checkpoint

    if not args.weights and not args.random_init:
        raise ReidlabError(
            "give --weights FILE (a trained checkpoint); evaluating a randomly "
            "initialised model needs --random-init"
        )
    if args.weights and args.random_init:
        raise ReidlabError("--weights and --random-init exclude each other")
    if args.weights and not Path(args.weights).is_file():
        raise ReidlabError(f"weights file {args.weights} does not exist")
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = build_dataset(args.dataset, args.root, **dataset_options(args))
    model = build_model(args.model, num_classes=0, pretrained=False)
    report = {}
    if args.weights:
        report = load_checkpoint(model, args.weights, trust_checkpoint=args.trust_checkpoint)
    model.eval()
    result = evaluate(
        model,
        dataset,
        config_from_args(EvalConfig, args),
        progress=not args.no_progress,
        checkpoint=args.weights,
        extra_settings={
            "checkpoint_trusted": bool(report.get("trusted", False)),
            "random_init": bool(args.random_init),
        },
    )
    print(result.summary())
    shown = {k: v for k, v in result.settings.items()}
    print(json.dumps(shown, indent=1))
    if args.out:
        result.to_json(args.out)
        print(f"wrote {args.out}")
    return 0
