"""Re-ID models: a registry of baselines (timm backbones + re-ID heads) and OSNet.

>>> from reidlab.models import build_model, list_models
>>> m = build_model("tiny", num_classes=10).eval()          # doctest: +SKIP
>>> m(torch.zeros(2, 3, *m.input_size)).shape                # doctest: +SKIP
torch.Size([2, 128])

Every model carries ``name``, ``input_size`` ``(H, W)``, ``pixel_mean``/``pixel_std`` (ImageNet,
applied by the caller to [0, 1] RGB), ``feature_dim``, ``num_classes``, ``pretrained_source``
("scratch", "timm:<hub id>", "file:<path>") and ``checkpoint_trusted`` (True only when a weights
file was unpickled with ``weights_only=False`` under ``trust_checkpoint=True``). ``train()``
mode returns a dict (``logits``: a tensor or a list for multi-part models; ``features`` for the
triplet loss); ``eval()`` mode returns the ``(B, feature_dim)`` features evaluation compares
(BoT/efficient/tiny: BNNeck output after BN; OSNet: the pooled 512-d ``fc`` feature,
un-normalised, as torchreid evaluates; PCB: concatenated stripe features; MGN: concatenated
branch features).

Exported models (``.onnx`` on ONNX Runtime or OpenVINO, ``.xml`` OpenVINO IR) carry the same
attributes (``reidlab.models.exported``, ``docs/models.md``). :func:`load_model` is the one entry
point for "this model with these weights": a checkpoint goes into the named architecture, an
exported file becomes a model of its own under that name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from reidlab.models.heads import ModelError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _bot(timm_name: str, last_stride_1: bool = True):
    def build(num_classes, pretrained):
        from reidlab.models.baselines import BNNeckModel, create_timm, set_last_stride_1

        bb, src = create_timm(timm_name, pretrained, num_classes=0)
        if last_stride_1:
            set_last_stride_1(bb)
        return BNNeckModel(bb, num_classes), src

    return build


def _pcb(num_classes, pretrained):
    from reidlab.models.baselines import PCB, create_timm, set_last_stride_1

    bb, src = create_timm("resnet50", pretrained, num_classes=0)
    set_last_stride_1(bb)
    return PCB(bb, num_classes), src


def _mgn(num_classes, pretrained):
    from reidlab.models.baselines import MGN, create_timm

    bb, src = create_timm("resnet50", pretrained, num_classes=0)
    return MGN(bb, num_classes), src


def _tiny(num_classes, pretrained):
    from reidlab.models.baselines import BNNeckModel, tiny_backbone

    if pretrained:
        log.warning("tiny has no ImageNet weights; building it from scratch")
    return BNNeckModel(tiny_backbone(), num_classes), "scratch"


def _osnet(width: str, IN: bool = False):
    def build(num_classes, pretrained):
        from reidlab.models.osnet import build_osnet

        m = build_osnet(width, num_classes, IN=IN)
        if pretrained is True:
            log.warning(
                "NO IMAGENET WEIGHTS for %s offline (torchreid downloads them from Google Drive): "
                "building it FROM SCRATCH; pass pretrained='/path/to/%s_imagenet.pth'",
                width,
                width,
            )
            return m, "scratch"
        return m, "scratch"

    return build


# name -> (builder(num_classes, pretrained) -> (module, source), default input size, stripes, help)
_REGISTRY: dict[str, tuple[Callable, tuple[int, int], int, str]] = {
    "bot_r50": (
        _bot("resnet50"),
        (256, 128),
        1,
        "BoT strong baseline: ResNet-50, last stride 1, BNNeck",
    ),
    "pcb_r50": (_pcb, (384, 128), 6, "PCB: ResNet-50, last stride 1, 6 horizontal stripes"),
    "mgn_r50": (_mgn, (384, 128), 6, "MGN: ResNet-50, global + 2-part + 3-part branches"),
    "mobilenetv3_l": (
        _bot("mobilenetv3_large_100", last_stride_1=False),
        (256, 128),
        1,
        "efficient: timm mobilenetv3_large_100 + BNNeck",
    ),
    "osnet_x1_0": (_osnet("osnet_x1_0"), (256, 128), 1, "OSNet x1.0 (torchreid layout)"),
    "osnet_x0_75": (_osnet("osnet_x0_75"), (256, 128), 1, "OSNet x0.75 (torchreid layout)"),
    "osnet_x0_5": (_osnet("osnet_x0_5"), (256, 128), 1, "OSNet x0.5 (torchreid layout)"),
    "osnet_x0_25": (_osnet("osnet_x0_25"), (256, 128), 1, "OSNet x0.25 (torchreid layout)"),
    "osnet_ibn_x1_0": (
        _osnet("osnet_x1_0", IN=True),
        (256, 128),
        1,
        "OSNet-IBN x1.0 (torchreid layout)",
    ),
    "tiny": (
        _tiny,
        (128, 64),
        1,
        "tiny 4-stage ResNet (16-128 ch) + BNNeck, for tests and CPU studies",
    ),
}

# feature-map stride of each family, for input-size checks of striped models
_STRIDE = {"pcb_r50": 16, "mgn_r50": 16}


def list_models() -> list[str]:
    """Names :func:`build_model` accepts."""
    return sorted(_REGISTRY)


def default_input_size(name: str) -> tuple[int, int]:
    """The ``(H, W)`` a model is built for unless ``input_size`` is given."""
    if name.lower() not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name.lower()][1]


def _check_input_size(name: str, size: tuple[int, int], stripes: int) -> None:
    h, w = size
    if h < 32 or w < 16:
        raise ModelError(f"{name}: input size {h}x{w} is too small (need at least 32x16)")
    if stripes > 1:
        stride = _STRIDE.get(name, 16)
        if h % (stride * stripes):
            raise ModelError(
                f"{name}: input height {h} gives a feature map of {h / stride:g} rows, which does "
                f"not split into {stripes} equal stripes; use a height that is a multiple of "
                f"{stride * stripes} (default {_REGISTRY[name][1][0]}x{_REGISTRY[name][1][1]})"
            )


def build_model(
    name: str,
    num_classes: int = 0,
    pretrained: bool | str | Path = False,
    input_size: tuple[int, int] | None = None,
    trust_checkpoint: bool = False,
):
    """Build a re-ID model by name (see :func:`list_models`).

    Args:
        name: registry name, e.g. ``"bot_r50"``, ``"osnet_x0_25"``, ``"tiny"``.
        num_classes: training identities (0 for inference-only models).
        pretrained: False (scratch), True (ImageNet weights from timm's cache; falls back to
            scratch with a warning when unavailable), or a weights file (timm backbones: an
            ImageNet ``.pth``/``.safetensors`` through timm; OSNet: a torchreid checkpoint).
        input_size: ``(H, W)`` overriding the model's default.
        trust_checkpoint: OSNet weights files only (read by :func:`load_checkpoint`): allow a
            file that pickles Python objects beyond tensors to be unpickled with
            ``weights_only=False`` (runs code from the file). timm backbones read their file
            through timm, always with ``weights_only=True``.

    The model's ``checkpoint_trusted`` attribute is True when its weights file was actually
    unpickled with ``weights_only=False``.

    Raises:
        ModelError: unknown name (lists the known ones), an input size the model can't use, or
            a weights file that can't be loaded safely (see :func:`load_checkpoint`).
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    builder, default_size, stripes, _ = _REGISTRY[key]
    size = tuple(int(s) for s in (input_size or default_size))
    _check_input_size(key, size, stripes)
    osnet_file = key.startswith("osnet") and pretrained not in (True, False, None)
    model, source = builder(int(num_classes), False if osnet_file else pretrained)
    trusted = False
    if osnet_file:
        from reidlab.models.checkpoint import load_checkpoint

        trusted = load_checkpoint(model, pretrained, trust_checkpoint=trust_checkpoint)["trusted"]
        source = f"file:{pretrained}"
    model.name = key
    model.input_size = size
    model.pixel_mean = IMAGENET_MEAN
    model.pixel_std = IMAGENET_STD
    model.num_classes = int(num_classes)
    model.pretrained_source = source
    model.checkpoint_trusted = bool(trusted)
    return model


def load_checkpoint(
    model, path, strict_backbone: bool = True, trust_checkpoint: bool = False
) -> dict:
    """See :func:`reidlab.models.checkpoint.load_checkpoint` (report key ``trusted``)."""
    from reidlab.models.checkpoint import load_checkpoint as _load

    return _load(model, path, strict_backbone=strict_backbone, trust_checkpoint=trust_checkpoint)


def is_exported_file(path) -> bool:
    """True for a weights path that is an exported model (``.onnx``, ``.xml``), not a checkpoint."""
    from reidlab.models.exported import is_exported_file as _is

    return _is(path)


def load_model(name: str, weights, trust_checkpoint: bool = False, **exported_options):
    """A model with trained weights, in eval mode: the one way the CLI and the grid load one.

    Args:
        name: a registry name (:func:`list_models`) for a checkpoint; for an exported file any
            label (it becomes the model's ``name`` in results).
        weights: a checkpoint (``.pth``, ``.pth.tar``, ``.safetensors``: built as ``name`` and
            loaded with :func:`load_checkpoint`), an exported model file (``.onnx``, ``.xml``:
            :func:`reidlab.models.exported.load_exported`), or a mapping
            ``{"path": file, **options}`` whose options are those of ``load_exported``
            (e.g. ``{"path": "m.onnx", "backend": "openvino"}``; JSON-able, so it fits
            ``ExperimentConfig.weights``).
        trust_checkpoint: checkpoints only (see :func:`load_checkpoint`).
        **exported_options: ``load_exported`` keywords (backend, channels, value_range,
            builtin_normalization, mean, std, input_size, threads); only for exported files.

    Raises:
        ModelError: one line (unknown name, unreadable file, options that do not apply).
    """
    from collections.abc import Mapping

    if isinstance(weights, Mapping):
        opts = dict(weights)
        if "path" not in opts:
            raise ModelError(f"{name}: a weights mapping needs 'path' (got keys {sorted(opts)})")
        weights = opts.pop("path")
        exported_options = opts | {k: v for k, v in exported_options.items() if v is not None}
    exported_options = {k: v for k, v in exported_options.items() if v is not None}
    if is_exported_file(weights):
        from reidlab.models.exported import load_exported

        try:
            model = load_exported(weights, name=name, **exported_options)
        except TypeError as e:
            raise ModelError(f"{name}: {e}") from None
        return model.eval()
    if exported_options:
        raise ModelError(
            f"{name}: {', '.join(sorted(exported_options))} apply to exported models (.onnx, "
            f".xml) only, not to the checkpoint {weights}"
        )
    model = build_model(name, num_classes=0, pretrained=False)
    report = load_checkpoint(model, weights, trust_checkpoint=trust_checkpoint)
    model.checkpoint_trusted = bool(report["trusted"])
    model.pretrained_source = f"file:{weights}"
    return model.eval()


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelError",
    "build_model",
    "default_input_size",
    "is_exported_file",
    "list_models",
    "load_checkpoint",
    "load_model",
]
