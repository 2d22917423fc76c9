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

**Safety.** Files are read with ``torch.load(weights_only=True)`` only: tensors, containers and
plain numbers, no code runs. A checkpoint that pickles other Python objects (old torchreid
``.pth.tar`` files pickle numpy scalars such as ``best_rank1``) is refused with a
:class:`ModelError` unless the caller opts in with ``trust_checkpoint=True`` (CLI:
``--trust-checkpoint``): only then is it unpickled with ``weights_only=False``, which runs
whatever code the file holds, with a logged warning, and the report records ``trusted: True``.
Empty, truncated, text or other non-checkpoint files give a one-line :class:`ModelError` too.
:func:`save_checkpoint` writes only what ``weights_only=True`` reads back.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reidlab.models.heads import ModelError

log = logging.getLogger(__name__)

_CLASSIFIER_WORDS = ("classifier",)


def _is_classifier(key: str) -> bool:
    return any(w in key for w in _CLASSIFIER_WORDS)


def _one_line(e: BaseException, limit: int = 160) -> str:
    """``Type: first words of the message`` on one line (no ANSI codes, newlines or tabs)."""
    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    msg = " ".join(msg.split())
    if len(msg) > limit:
        msg = msg[: limit - 3].rstrip() + "..."
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}


def _pickle_globals(f) -> list[str]:
    """``module.name`` of every class/function one pickle in ``f`` refers to, read statically
    (``pickletools``: nothing is executed). Raises if ``f`` does not hold a complete pickle."""
    import pickletools

    found: list[str] = []
    stack: list = []  # recent pushed values, enough to resolve STACK_GLOBAL
    memo: dict = {}
    for op, arg, _ in pickletools.genops(f):
        name = op.name
        if name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif name == "STACK_GLOBAL":
            if len(stack) >= 2 and all(isinstance(x, str) for x in stack[-2:]):
                found.append(f"{stack[-2]}.{stack[-1]}")
            else:
                found.append("<unknown global>")
            del stack[-2:]
        if name in _STRING_OPS:
            stack.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        else:
            stack.append(None)
        del stack[:-2]
    return found


def _unsafe_globals(names: list[str]) -> list[str]:
    """The names among ``names`` that ``torch.load(weights_only=True)`` does not allow."""
    try:
        from torch import _weights_only_unpickler as wou

        allowed = set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except Exception:  # noqa: BLE001 (private torch API: fall back to "not torch's own")
        allowed = {n for n in names if n.startswith(("torch.", "collections.OrderedDict"))}
    return sorted(set(names) - allowed)


_LEGACY_MAGIC = getattr(torch.serialization, "MAGIC_NUMBER", 0x1950A86A20F9469CFC6C)


def _starts_with_legacy_magic(f) -> bool:
    """Consume the first pickle of ``f``; True if it is the magic number legacy ``torch.save``
    writes first. Raises if ``f`` does not start with a complete pickle."""
    import pickletools

    found = False
    for op, arg, _ in pickletools.genops(f):  # to its STOP, so that f is at the next pickle
        found = found or (op.name in ("LONG1", "LONG4", "LONG") and arg == _LEGACY_MAGIC)
    return found


def _shown(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def _why_unreadable(path: Path, err: BaseException) -> tuple[str, bool]:
    """Why ``torch.load(weights_only=True)`` refused ``path``: ``(one-line reason, holds_objects)``.

    The file is only parsed (``pickletools``), never unpickled. ``holds_objects`` is True when
    it is a well-formed ``torch.save`` file that refers to Python objects beyond tensors (what
    ``trust_checkpoint=True`` would unpickle); False for anything else (empty, text, random
    bytes, truncated, a plain pickle that ``torch.load`` can't read at all).
    """
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)", False
    with path.open("rb") as f:
        head = f.read(4)
    try:
        if head.startswith(b"PK"):  # torch.save's zip format
            try:
                with zipfile.ZipFile(path) as z:
                    pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                    if not pkl:
                        return (
                            f"a zip archive without data.pkl, not a torch.save checkpoint "
                            f"({size} bytes)"
                        ), False
                    names = _pickle_globals(io.BytesIO(z.read(pkl[0])))
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                return (
                    f"a damaged zip archive: truncated or corrupt "
                    f"({size} bytes; {_one_line(e, 80)})"
                ), False
        else:  # legacy torch.save: pickles in a row (magic number first), then raw storage bytes
            names = []
            # mmap: a garbage length field makes file.read(n) allocate n bytes; mmap.read does not
            with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as f:
                if not _starts_with_legacy_magic(f):
                    f.seek(0)
                    refs = _unsafe_globals(_pickle_globals(f))
                    what = f" (it refers to {_shown(refs)})" if refs else ""
                    return (
                        f"a plain Python pickle{what}, not a torch.save checkpoint ({size} bytes)",
                        False,
                    )
                while f.tell() < size:
                    try:
                        names += _pickle_globals(f)
                    except Exception:  # noqa: BLE001 (storage bytes after the pickles)
                        break
    except Exception as e:  # noqa: BLE001 (not a complete pickle: not a checkpoint)
        with path.open("rb") as f:
            start = f.read(64)
        try:
            text = start.decode("utf-8")
            looks_text = all(ch.isprintable() or ch in "\r\n\t" for ch in text)
        except UnicodeDecodeError:
            looks_text = False
        kind = "a text file" if looks_text else "neither a zip archive nor a complete pickle"
        return f"not a PyTorch checkpoint: {kind} ({size} bytes; {_one_line(e, 80)})", False
    unsafe = _unsafe_globals(names)
    if unsafe or isinstance(err, pickle.UnpicklingError):
        return (
            f"holds pickled Python objects beyond tensors ({_shown(unsafe) or _one_line(err, 80)}); "
            f"unpickling them can run arbitrary code from the file"
        ), True
    return f"damaged or truncated ({size} bytes; {_one_line(err)})", False


def _load_torch_file(path: Path, trust_checkpoint: bool) -> tuple[object, bool]:
    """``(object, trusted)``: ``torch.load`` with ``weights_only=True``. With ``trust_checkpoint``
    a well-formed ``torch.save`` file that needs more is unpickled with ``weights_only=False``
    (``trusted`` True); files that are not checkpoints are refused either way, unpickled never."""
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4 ...": the error says more
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            return torch.load(path, map_location="cpu", weights_only=True), False
    except Exception as e:  # noqa: BLE001 (every failure becomes one ModelError line)
        err = e
    try:
        reason, objects = _why_unreadable(path, err)
    except Exception:  # noqa: BLE001 (the diagnosis must not hide the refusal)
        reason, objects = f"not loadable with weights_only=True ({_one_line(err)})", False
    if not objects:
        raise ModelError(f"checkpoint {path}: {reason}") from None
    if not trust_checkpoint:
        raise ModelError(
            f"checkpoint {path}: {reason}: if you trust its source, pass "
            f"trust_checkpoint=True (CLI: --trust-checkpoint) to load it with "
            f"weights_only=False"
        ) from None
    log.warning(
        "%s: %s; unpickling it with weights_only=False because trust_checkpoint=True", path, reason
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False), True
    except Exception as e:  # noqa: BLE001
        raise ModelError(
            f"checkpoint {path}: not loadable even with trust_checkpoint=True ({_one_line(e)})"
        ) from None


def _read(
    path: str | Path, trust_checkpoint: bool = False
) -> tuple[dict[str, torch.Tensor], str, bool]:
    """:func:`read_state_dict` plus whether the unsafe (``weights_only=False``) load was used."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"checkpoint: expected a file at {path}, found {'a folder' if path.exists() else 'nothing'}"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path))), "plain", False
        except Exception as e:  # noqa: BLE001 (SafetensorError and friends: one line)
            raise ModelError(
                f"checkpoint {path}: not a readable safetensors file ({_one_line(e)})"
            ) from None
    obj, trusted = _load_torch_file(path, trust_checkpoint)
    fmt = "plain"
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj, fmt = obj["state_dict"], "torchreid"
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj, fmt = obj["model"], "fast-reid"
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(
            f"checkpoint {path}: expected a state dict (name -> tensor), "
            f"optionally under 'state_dict' or 'model'; found {type(obj).__name__}"
        )
    return dict(obj), fmt, trusted


def read_state_dict(
    path: str | Path, trust_checkpoint: bool = False
) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a checkpoint file and its detected format ('torchreid', 'fast-reid', 'plain').

    Read with ``torch.load(weights_only=True)``; ``trust_checkpoint=True`` allows a file that
    pickles other Python objects to be unpickled with ``weights_only=False`` (runs code from
    the file: only for files from a source you trust).

    Raises:
        ModelError: one line: no such file, a folder, a file that is not a checkpoint (empty,
            text, truncated, random bytes), one that holds pickled Python objects beyond
            tensors (without ``trust_checkpoint``), or no state dict inside.
    """
    sd, fmt, _ = _read(path, trust_checkpoint)
    return sd, fmt


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
                k = b + k[len(a) :]
                break
        fr[k] = v
    yield "fast-reid heads", fr
    yield "strip backbone.", _strip(base, "backbone.")
    yield "add backbone.", {("backbone." + k): v for k, v in base.items()}


def load_checkpoint(
    model: nn.Module, path: str | Path, strict_backbone: bool = True, trust_checkpoint: bool = False
) -> dict:
    """Load a checkpoint into ``model`` in place and return a report dict.

    ``trust_checkpoint``: allow a file that pickles Python objects beyond tensors (old torchreid
    ``.pth.tar``) to be unpickled with ``weights_only=False``; this runs any code the file holds,
    so only for files from a source you trust. Without it such a file raises :class:`ModelError`.

    Report keys: ``path``, ``format``, ``renaming``, ``loaded`` (count), ``dropped_classifier``,
    ``missing`` (model keys left at init, dropped classifier included), ``unexpected``,
    ``mismatched`` (lists of key names), ``trusted`` (True only when the file was actually
    unpickled with ``weights_only=False``, which needs ``trust_checkpoint=True``; False when the
    safe load sufficed, even if trust was allowed).
    """
    raw, fmt, trusted = _read(path, trust_checkpoint)
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
        log.info(
            "%s: dropped classifier weights of another size (%s): %s",
            path,
            ", ".join(f"{tuple(best[k].shape)} vs {tuple(own[k].shape)}" for k in dropped),
            dropped,
        )
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
        "path": str(path),
        "format": fmt,
        "renaming": best_name,
        "loaded": len(keep),
        "dropped_classifier": dropped,
        "missing": missing,
        "unexpected": unexpected,
        "mismatched": mismatched,
        "trusted": trusted,
    }
    log.info("loaded %d tensors from %s (%s, renaming: %s)", len(keep), path, fmt, best_name)
    return report


def _weights_only_safe(x):
    """``x`` with numpy scalars as Python numbers, numpy arrays as tensors and paths as strings
    (containers rebuilt), so that ``torch.load(weights_only=True)`` reads it back."""
    if isinstance(x, dict):
        out = {k: _weights_only_safe(v) for k, v in x.items()}
        return OrderedDict(out) if isinstance(x, OrderedDict) else out
    if isinstance(x, list):
        return [_weights_only_safe(v) for v in x]
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_weights_only_safe(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return (
            torch.from_numpy(np.array(x))
            if x.dtype.kind in "biufc"
            else _weights_only_safe(x.tolist())
        )
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def save_checkpoint(path: str | Path, model: nn.Module, **extra) -> Path:
    """Save ``{"state_dict": model weights (no DDP prefix), **extra}`` (torchreid-compatible).

    ``extra`` is stored with numpy scalars / arrays and paths converted to Python numbers,
    tensors and strings, so the file loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = model.module if hasattr(model, "module") else model
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": m.state_dict(), **_weights_only_safe(extra)}, tmp)
    tmp.replace(path)
    return path
