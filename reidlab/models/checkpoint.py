"""Load foreign re-ID checkpoints (torchreid, fast-reid, reidlab's own) into reidlab models.

``load_checkpoint(model, path)`` accepts:

- torchreid: a plain state dict, or a dict with ``state_dict`` (``save_checkpoint`` output),
  keys with or without the ``module.`` prefix DataParallel adds;
- fast-reid: a dict with ``model``, keys under ``backbone.`` / ``heads.`` (the BNNeck head of
  fast-reid's Baseline maps onto reidlab's BoT: ``heads.bottleneck.0`` -> ``neck.bn``,
  ``heads.weight``/``heads.classifier.weight`` -> ``neck.classifier.weight``);
- reidlab training checkpoints (``state_dict`` key plus optimizer, epoch, config).

Classifier weights whose shape differs (another dataset's identities) are dropped with a logged
message; any other missing, unexpected or mis-shaped key raises a :class:`ModelError` listing them
(unless ``strict_backbone=False``, which loads what fits and reports the rest).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from reidlab.models.heads import ModelError

log = logging.getLogger(__name__)

_CLASSIFIER_WORDS = ("classifier",)


def _is_classifier(key: str) -> bool:
    return any(w in key for w in _CLASSIFIER_WORDS)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a checkpoint file and its detected format ('torchreid', 'fast-reid', 'plain')."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint: expected a file at {path}, found {'a folder' if path.exists() else 'nothing'}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path))), "plain"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (old torchreid checkpoints pickle numpy scalars)
        log.info("%s: not loadable with weights_only=True, loading it as a full pickle", path)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    fmt = "plain"
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj, fmt = obj["state_dict"], "torchreid"
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj, fmt = obj["model"], "fast-reid"
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"checkpoint {path}: expected a state dict (name -> tensor), "
                         f"optionally under 'state_dict' or 'model'; found {type(obj).__name__}")
    return dict(obj), fmt


def _strip(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {(k.removeprefix(prefix)): v for k, v in sd.items()}


_FASTREID_HEADS = {
    "heads.bottleneck.0.": "neck.bn.",
    "heads.classifier.": "neck.classifier.",
    "heads.weight": "neck.classifier.weight",
}


def _candidates(sd: dict[str, torch.Tensor]):
    """Key renamings to try; the one matching most of the model's keys wins."""
    base = _strip(sd, "module.")
    yield "none", base
    fr = {}
    for k, v in base.items():
        for a, b in _FASTREID_HEADS.items():
            if k.startswith(a):
                k = b + k[len(a):]
                break
        fr[k] = v
    yield "fast-reid heads", fr
    yield "strip backbone.", _strip(base, "backbone.")
    yield "add backbone.", {("backbone." + k): v for k, v in base.items()}


def load_checkpoint(model: nn.Module, path: str | Path, strict_backbone: bool = True) -> dict:
    """Load a checkpoint into ``model`` in place and return a report dict.

    Report keys: ``path``, ``format``, ``renaming``, ``loaded`` (count), ``dropped_classifier``,
    ``missing`` (model keys left at init, dropped classifier included), ``unexpected``,
    ``mismatched`` (lists of key names).
    """
    raw, fmt = read_state_dict(path)
    own = model.state_dict()
    best_name, best, best_hits = "none", {}, -1
    for name, sd in _candidates(raw):
        hits = sum(1 for k, v in sd.items() if k in own and own[k].shape == v.shape)
        if hits > best_hits:
            best_name, best, best_hits = name, sd, hits
    dropped, mismatched, keep = [], [], {}
    for k, v in best.items():
        if k in own and own[k].shape != v.shape:
            (dropped if _is_classifier(k) else mismatched).append(k)
        elif k in own:
            keep[k] = v
    unexpected = sorted(k for k in best if k not in own)
    # left at their initial values (includes dropped classifier weights)
    missing = sorted(k for k in own if k not in keep and not k.endswith("num_batches_tracked"))
    if dropped:
        log.info("%s: dropped classifier weights of another size (%s): %s", path,
                 ", ".join(f"{tuple(best[k].shape)} vs {tuple(own[k].shape)}" for k in dropped), dropped)
    bad_missing = [k for k in missing if not _is_classifier(k) and k not in mismatched]
    bad_unexpected = [k for k in unexpected if not _is_classifier(k)]
    if strict_backbone and (bad_missing or bad_unexpected or mismatched):
        def show(xs):
            return f"{len(xs)} ({', '.join(xs[:8])}{', ...' if len(xs) > 8 else ''})"

        raise ModelError(
            f"checkpoint {path} ({fmt}) does not fit {type(model).__name__}: "
            f"missing {show(bad_missing)}; unexpected {show(bad_unexpected)}; "
            f"shape mismatch {show(mismatched)}"
        )
    model.load_state_dict(keep, strict=False)
    report = {
        "path": str(path), "format": fmt, "renaming": best_name, "loaded": len(keep),
        "dropped_classifier": dropped, "missing": missing, "unexpected": unexpected,
        "mismatched": mismatched,
    }
    log.info("loaded %d tensors from %s (%s, renaming: %s)", len(keep), path, fmt, best_name)
    return report


def save_checkpoint(path: str | Path, model: nn.Module, **extra) -> Path:
    """Save ``{"state_dict": model weights (no DDP prefix), **extra}`` (torchreid-compatible)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = model.module if hasattr(model, "module") else model
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": m.state_dict(), **extra}, tmp)
    tmp.replace(path)
    return path
