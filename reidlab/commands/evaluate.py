"""``reidlab evaluate``: evaluate a re-ID model on a dataset's query/gallery split.

A trained model is ``--model NAME --weights FILE``: a checkpoint (``.pth``, ``.safetensors``)
goes into the registry architecture NAME; an exported model (``.onnx`` on ONNX Runtime or
OpenVINO, ``.xml`` OpenVINO IR) runs on its runtime, NAME being only its label in the results
(default: the file's name). See ``docs/models.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

_EXPORTED_FLAGS = (
    "backend",
    "input_channels",
    "input_range",
    "builtin_normalization",
    "input_mean",
    "input_std",
)


def add_arguments(p) -> None:
    from reidlab.commands.argtypes import add_dataset_options, positive_float, positive_int
    from reidlab.config import add_config_arguments
    from reidlab.evaluation import EvalConfig

    p.add_argument("--dataset", required=True, help="dataset name (see `reidlab datasets`)")
    p.add_argument("--root", required=True, help="dataset folder")
    add_dataset_options(p)
    p.add_argument(
        "--model",
        help="model name (reidlab.models.list_models()); with an exported --weights file, any "
        "label for the results (default: the file's name)",
    )
    p.add_argument(
        "--weights",
        help="checkpoint file (a torchreid/reidlab state dict) or an exported model (.onnx, "
        ".xml OpenVINO IR with its .bin beside it); required unless --random-init",
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
    g = p.add_argument_group(
        "exported models (--weights FILE.onnx or FILE.xml)",
        "the input convention where the file does not state it (an OpenVINO IR from Model "
        "Optimizer states it, as the Open Model Zoo files do); default RGB, [0, 1], ImageNet "
        "mean/std applied outside the graph",
    )
    g.add_argument(
        "--backend",
        choices=("onnxruntime", "openvino"),
        help="runtime (default: onnxruntime for .onnx, openvino for .xml)",
    )
    g.add_argument("--input-channels", choices=("RGB", "BGR"), help="channel order of the input")
    g.add_argument("--input-range", choices=("1", "255"), help="pixel range: 0-1 or 0-255")
    g.add_argument(
        "--builtin-normalization",
        action="store_true",
        default=None,
        help="the graph normalises its input itself (it takes raw pixels)",
    )
    g.add_argument(
        "--input-mean", type=float, nargs=3, help="RGB mean in [0, 1] units, applied outside"
    )
    g.add_argument(
        "--input-std", type=positive_float, nargs=3, help="RGB std in [0, 1] units, applied outside"
    )
    add_config_arguments(
        p.add_argument_group("evaluation settings"), EvalConfig, exclude=("feature_layer",)
    )
    p.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (and an exported model's runtime)"
    )
    p.add_argument("--out", help="write the full result (settings, per-query AP) as JSON here")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _exported_options(args) -> dict:
    return {
        "backend": args.backend,
        "channels": args.input_channels,
        "value_range": args.input_range,
        "builtin_normalization": args.builtin_normalization,
        "mean": args.input_mean,
        "std": args.input_std,
        "threads": args.threads,
    }


def run(args) -> int:
    import torch

    from reidlab.commands.argtypes import dataset_options
    from reidlab.config import config_from_args
    from reidlab.datasets import build_dataset
    from reidlab.errors import ReidlabError
    from reidlab.evaluation import EvalConfig, evaluate
    from reidlab.models import build_model, is_exported_file, load_model

    exported = bool(args.weights) and is_exported_file(args.weights)
    if not args.weights and not args.random_init:
        raise ReidlabError(
            "give --weights FILE (a trained checkpoint or an exported .onnx/.xml model); "
            "evaluating a randomly initialised model needs --random-init"
        )
    if args.weights and args.random_init:
        raise ReidlabError("--weights and --random-init exclude each other")
    if args.weights and not Path(args.weights).is_file():
        raise ReidlabError(f"weights file {args.weights} does not exist")
    if not args.model and not exported:
        raise ReidlabError(
            "give --model NAME (see reidlab.models.list_models()); only an exported --weights "
            "file (.onnx, .xml) names itself"
        )
    given = [f for f in _EXPORTED_FLAGS if getattr(args, f) is not None]
    if given and not exported:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        raise ReidlabError(f"{flags}: for exported models only (--weights FILE.onnx or .xml)")
    config = config_from_args(EvalConfig, args)
    if exported and (config.mean is not None or config.std is not None):
        raise ReidlabError(
            "--mean/--std: an exported model's normalisation is fixed by its graph; give "
            "its input convention with --input-mean/--input-std or --builtin-normalization"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = build_dataset(args.dataset, args.root, **dataset_options(args))
    if exported:
        model = load_model(
            args.model or Path(args.weights).stem, args.weights, **_exported_options(args)
        )
        if config.size is not None and tuple(config.size) != model.input_size:
            h, w = model.input_size
            raise ReidlabError(f"--size: the exported graph takes {h}x{w} input")
    elif args.weights:
        model = load_model(args.model, args.weights, trust_checkpoint=args.trust_checkpoint)
    else:
        model = build_model(args.model, num_classes=0, pretrained=False).eval()
    extra = {
        "checkpoint_trusted": bool(getattr(model, "checkpoint_trusted", False)),
        "random_init": bool(args.random_init),
    }
    if exported:
        extra["exported_model"] = model.export_info
    result = evaluate(
        model,
        dataset,
        config,
        progress=not args.no_progress,
        checkpoint=args.weights,
        extra_settings=extra,
    )
    print(result.summary())
    shown = {k: v for k, v in result.settings.items()}
    print(json.dumps(shown, indent=1))
    if args.out:
        result.to_json(args.out)
        print(f"wrote {args.out}")
    return 0
