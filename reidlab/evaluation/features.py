"""Feature extraction: images -> (optionally anonymized) -> normalised -> model -> features.

One path for a whole split (:func:`extract_features`, a DataLoader over
:class:`reidlab.loading.ReIDImageDataset`) and one for ad-hoc inputs (:class:`FeatureExtractor`:
paths, RGB arrays or tensors, torchreid-style). Both share :func:`forward_features`.

Images are resized to the model's input in the model's resize mode
(:func:`reidlab.resize.resize_mode_for`: PIL-like antialiasing for torchreid-style models).
Order of operations per batch, on the model's device:
``[0, 1] RGB image -> anonymizer(images, boxes, valid) -> (x - mean) / std -> model`` and,
with ``flip=True``, ``f(x) + f(hflip(x))`` - the *sum*, as Person_reID_baseline and torchreid's
demo code do (fast-reid averages; rankings and normalised features are identical either way) -
then, with ``normalize=True``, L2 normalisation of the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# (images (B,3,H,W) [0,1], boxes (B,K,4), valid (B,K) bool) -> images
Anonymizer = Callable[[Any, Any, Any], Any]


def _model_device(model):
    import torch

    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _resolve_amp(amp, device) -> Any:
    """None (no autocast) or the autocast dtype; autocast only on CUDA."""
    import torch

    if amp in (False, None, "off", "none", "fp32"):
        return None
    if device.type != "cuda":
        if amp not in ("auto", True):
            log.debug("amp=%r ignored on %s: autocast is used on CUDA only", amp, device)
        return None
    if amp in ("auto", True, "fp16", "float16"):
        return torch.float16
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    raise ValueError(f"amp must be 'auto', 'fp16', 'bf16' or False, got {amp!r}")


def _resolve_channels_last(channels_last, model) -> bool:
    """``"auto"``: True (oneDNN on CPU and cuDNN on CUDA both run convs faster in NHWC; on
    2 CPU cores OSNet x0.25 went 1.5-2x faster), else ``bool(channels_last)``. Converts the model."""
    import torch

    cl = True if channels_last == "auto" else bool(channels_last)
    model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    return cl


def _forward_checked(model, images, mean, std, opts: dict):
    """:func:`forward_features` with ``opts``; if channels_last was chosen automatically and the
    model cannot take it (a ``view`` on a non-contiguous map), fall back to NCHW for good."""
    import torch

    try:
        return forward_features(model, images, mean, std, **opts["kw"], channels_last=opts["cl"])
    except RuntimeError as e:
        if not (opts["cl"] and opts["auto"]):
            raise
        log.warning("model failed in channels_last (%s); using contiguous NCHW instead", e)
        model.to(memory_format=torch.contiguous_format)
        opts["cl"] = False
        return forward_features(model, images, mean, std, **opts["kw"], channels_last=False)


def _as_features(out) -> Any:
    """The feature tensor of a model output: a tensor, a dict's 'features', or a tuple's first."""
    if isinstance(out, Mapping):
        if "features" not in out:
            raise ValueError(
                f"model returned a dict without 'features' (keys {sorted(out)}); "
                "call model.eval() or return (B, D) features"
            )
        out = out["features"]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out.flatten(1) if out.ndim > 2 else out


def forward_features(
    model,
    images,
    mean,
    std,
    *,
    flip: bool = False,
    normalize: bool = False,
    amp_dtype=None,
    channels_last: bool = False,
):
    """Features of a batch of ``[0, 1]`` RGB images.

    Args:
        model: in eval mode; maps ``(B, 3, H, W)`` normalised images to ``(B, D)`` features.
        images: ``(B, 3, H, W)`` float in [0, 1] on the model's device.
        mean, std: ``(3,)`` tensors (or sequences) for ``(x - mean) / std``.
        flip: add the features of the horizontally flipped images (sum, not mean).
        normalize: L2-normalise the final features.
        amp_dtype: autocast dtype (CUDA) or None.
        channels_last: convert the input to channels_last memory format.

    Returns:
        ``(B, D)`` float32 features on the images' device.
    """
    import torch

    mean = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    x = (images - mean) / std
    views = [x, x.flip(3)] if flip else [x]
    feats = None
    for v in views:
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        if amp_dtype is not None:
            with torch.autocast(device_type=v.device.type, dtype=amp_dtype):
                f = _as_features(model(v))
        else:
            f = _as_features(model(v))
        f = f.float()
        feats = f if feats is None else feats + f
    if normalize:
        feats = torch.nn.functional.normalize(feats, dim=1)
    return feats


def extract_features(
    model,
    samples: Sequence,
    *,
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
    flip: bool = False,
    normalize: bool = False,
    boxes: Mapping[str, np.ndarray] | None = None,
    anonymizer: Anonymizer | None = None,
    device=None,
    num_workers: int = 0,
    amp="auto",
    channels_last="auto",
    progress: bool = True,
    desc: str | None = None,
    resize_mode: str | None = None,
    face_maps: Mapping[str, np.ndarray] | None = None,
):
    """Features of a split, in sample order.

    Args:
        model: ``(B, 3, H, W) -> (B, D)`` in eval mode (it is put in eval mode here).
        samples: the split, ``Sample(path, pid, camid)`` items.
        size: ``(H, W)`` input size; mean, std: per-channel normalisation of [0, 1] RGB.
        batch_size, num_workers: DataLoader settings (workers decode and resize JPEGs).
        flip: sum of the features of the image and its horizontal flip.
        normalize: L2-normalise features (after flip).
        boxes: face boxes per absolute path (original pixels), passed to the anonymizer.
        anonymizer: ``anonymizer(images, boxes, valid) -> images`` applied on the device to
            [0, 1] images before normalisation (e.g. :class:`reidlab.anonymize.Anonymizer`).
        device: where to compute; default the model's device. The model is moved there.
        amp: ``"auto"``/``"fp16"``/``"bf16"``/False: autocast dtype, used on CUDA only.
        channels_last: ``"auto"`` (= True, falling back to NCHW if the model fails), True or
            False. NHWC changes features only by float rounding (~1e-6 relative).
        progress: show a tqdm bar; desc: its label.
        resize_mode: ``"antialias"`` or ``"bilinear"`` (:mod:`reidlab.resize`); default the
            model's (:func:`reidlab.resize.resize_mode_for`).
        face_maps: per-pixel face maps per absolute path (``mask="segmentation"``), fitted to the
            input size by the loader and passed as ``anonymizer(..., face_maps=...)`` (``None``
            for an image without a map). ``None``: the anonymizer is called without them.

    Returns:
        ``(N, D)`` float32 tensor on the compute device.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from reidlab.loading import ReIDImageDataset, batch_face_maps
    from reidlab.resize import resize_mode_for

    device = torch.device(device) if device is not None else _model_device(model)
    model.to(device).eval()
    amp_dtype = _resolve_amp(amp, device)
    opts = {
        "cl": _resolve_channels_last(channels_last, model),
        "auto": channels_last == "auto",
        "kw": {"flip": flip, "normalize": normalize, "amp_dtype": amp_dtype},
    }
    mode = resize_mode if resize_mode is not None else resize_mode_for(model)
    maps = face_maps if anonymizer is not None else None  # loaded only when used
    ds = ReIDImageDataset(samples, size=tuple(size), boxes=boxes, resize_mode=mode, maps=maps)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.tensor(std, dtype=torch.float32, device=device)
    out = []
    nb = device.type == "cuda"  # non_blocking copies from pinned memory
    # the collated batch is ours: a reidlab Anonymizer may work in place (its fast path)
    from reidlab.anonymize import Anonymizer

    anon_kw = {"inplace": True} if isinstance(anonymizer, Anonymizer) else {}
    with torch.inference_mode():
        bar = tqdm(total=len(ds), desc=desc or "features", unit="img", disable=not progress)
        try:
            for batch in loader:
                images = batch["image"].to(device, non_blocking=nb)
                if anonymizer is not None:
                    if maps is not None:
                        anon_kw["face_maps"] = batch_face_maps(batch, device)
                    images = anonymizer(
                        images,
                        batch["boxes"].to(device, non_blocking=nb),
                        batch["valid"].to(device, non_blocking=nb),
                        **anon_kw,
                    )
                out.append(_forward_checked(model, images, mean_t, std_t, opts))
                bar.update(images.shape[0])
        finally:
            bar.close()
    if not out:
        raise ValueError("extract_features got an empty split (no samples)")
    return torch.cat(out, 0)


class FeatureExtractor:
    """torchreid-style callable: ``extractor(inputs) -> (B, D)`` features.

    ``inputs``: a path or list of paths, an RGB uint8 ``(H, W, 3)`` array or a list of them, or a
    float tensor ``(B, 3, H, W)`` / ``(3, H, W)`` of [0, 1] RGB images (any size: it is
    resized in ``resize_mode``, default the model's, see :mod:`reidlab.resize`). Normalisation,
    flip, L2 normalisation and autocast as in :func:`extract_features`. Size and mean/std default
    to the model's ``input_size``/``pixel_mean``/``pixel_std``.

    Example:
        >>> extractor = FeatureExtractor(model, normalize=True)   # doctest: +SKIP
        >>> extractor(["a.jpg", "b.jpg"]).shape                    # doctest: +SKIP
        torch.Size([2, 512])
    """

    def __init__(
        self,
        model,
        size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device=None,
        flip: bool = False,
        normalize: bool = False,
        amp="auto",
        channels_last="auto",
        resize_mode: str | None = None,
    ):
        import torch

        from reidlab.resize import check_mode, resize_mode_for

        self.model = model
        self.resize_mode = check_mode(resize_mode) if resize_mode else resize_mode_for(model)
        self.size = tuple(size or model.input_size)
        self.mean = tuple(mean or model.pixel_mean)
        self.std = tuple(std or model.pixel_std)
        self.device = torch.device(device) if device is not None else _model_device(model)
        model.to(self.device).eval()
        self.opts = {
            "cl": _resolve_channels_last(channels_last, model),
            "auto": channels_last == "auto",
            "kw": {
                "flip": flip,
                "normalize": normalize,
                "amp_dtype": _resolve_amp(amp, self.device),
            },
        }

    def _to_batch(self, inputs):
        import torch

        from reidlab.imageio import read_rgb, to_rgb_uint8
        from reidlab.resize import resize_batch, resize_image

        h, w = self.size
        if isinstance(inputs, torch.Tensor):
            x = inputs[None] if inputs.ndim == 3 else inputs
            return resize_batch(x.to(self.device, torch.float32), (h, w), self.resize_mode)
        if isinstance(inputs, (str, np.ndarray)) and not (
            isinstance(inputs, np.ndarray) and inputs.ndim == 4
        ):
            inputs = [inputs]
        imgs = []
        for item in inputs:
            img = read_rgb(item) if isinstance(item, str) else to_rgb_uint8(item)
            imgs.append(resize_image(img, (h, w), self.resize_mode))
        arr = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
        return arr.to(self.device)

    def __call__(self, inputs):
        import torch

        with torch.inference_mode():
            return _forward_checked(
                self.model, self._to_batch(inputs), self.mean, self.std, self.opts
            )
