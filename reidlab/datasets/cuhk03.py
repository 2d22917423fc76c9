"""CUHK03 (Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person
Re-identification", CVPR 2014) under the *new protocol* of Zhong et al., "Re-ranking Person
Re-identification with k-reciprocal Encoding", CVPR 2017: 767 train ids / 700 test ids.

``variant="labeled"`` (hand-drawn boxes) or ``variant="detected"`` (DPM boxes) is a required,
explicit choice: results on the two differ by several mAP points and are not comparable.

Layout (the one torchreid prepares; ``ROOT`` or ``ROOT/cuhk03``)::

    ROOT/
      cuhk03_new_protocol_config_labeled.mat    # Zhong et al.'s split file (MATLAB v5)
      cuhk03_new_protocol_config_detected.mat
      images_labeled/1_001_1_01.png ...         # extracted from cuhk-03.mat
      images_detected/1_001_1_01.png ...

Each ``.mat`` holds ``filelist`` (image names), ``labels`` (person id per image) and 1-based
``train_idx``, ``query_idx``, ``gallery_idx``. Names are ``<pair>_<person>_<view>_<image>.png``
(camera pair 1-5, person in that pair, view 1-2, image 01-10). As in torchreid the camid is the
view made 0-based (0 or 1): each person is filmed by one camera pair, so "other view" is
"other camera" for every query. pids are the raw ``labels`` values in every split.

Counts: labeled train 7,368 images / 767 ids, query 1,400 / 700, gallery 5,328 / 700;
detected train 7,365 / 767, query 1,400 / 700, gallery 5,332 / 700.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from reidlab.datasets.base import ReIDDataset, Sample
from reidlab.datasets.parsing import (
    check_files_exist,
    check_options,
    finalize,
    find_layout,
    quote_names,
)
from reidlab.errors import DatasetError

log = logging.getLogger(__name__)

VARIANTS = ("labeled", "detected")
NAME = re.compile(r"^(\d+)_(\d+)_([12])_(\d+)\.png$", re.IGNORECASE)
_FIELDS = ("filelist", "labels", "train_idx", "query_idx", "gallery_idx")


def _names(arr) -> list[str]:
    """Image names from a loadmat ``filelist`` (a cell array of strings, or a char matrix)."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "U":  # char matrix: loadmat gives one padded string per row
        return [str(x).strip() for x in arr.ravel()]
    return [str(np.asarray(x).ravel()[0]).strip() for x in arr.ravel()]


def read_protocol(mat_path: Path) -> dict[str, np.ndarray | list[str]]:
    """Read a ``cuhk03_new_protocol_config_*.mat``: names, labels and 0-based split indices."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(mat_path))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise DatasetError(f"cuhk03: {mat_path} is a MATLAB v7.3 file; expected v5 ({e})") from e
    except Exception as e:  # scipy raises ValueError/TypeError/OSError on non-MAT input
        raise DatasetError(f"cuhk03: cannot read {mat_path} as a MATLAB file: {e}") from e
    missing = [f for f in _FIELDS if f not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(
            f"cuhk03: {mat_path} lacks field(s) {', '.join(missing)}; "
            f"expected {', '.join(_FIELDS)}, found {', '.join(found) or 'none'}"
        )
    try:
        names = _names(mat["filelist"])
        labels = np.asarray(mat["labels"]).ravel().astype(np.int64)
        idx = {
            k: np.asarray(mat[k]).ravel().astype(np.int64) - 1  # 1-based in MATLAB
            for k in ("train_idx", "query_idx", "gallery_idx")
        }
    except (ValueError, TypeError, IndexError) as e:
        raise DatasetError(
            f"cuhk03: {mat_path}: malformed field ({e}); expected a cell array "
            "filelist and numeric labels / *_idx"
        ) from e
    if len(labels) != len(names):
        raise DatasetError(
            f"cuhk03: {mat_path}: {len(names)} names in filelist but "
            f"{len(labels)} labels; expected one label per image"
        )
    out: dict = {"filelist": names, "labels": labels}
    for key, ix in idx.items():
        if ix.size and (ix.min() < 0 or ix.max() >= len(names)):
            raise DatasetError(f"cuhk03: {mat_path}: {key} holds indices outside 1..{len(names)}")
        out[key] = ix
    return out


def load(
    root: str | Path,
    *,
    variant: str | None = None,
    strict: bool = True,
    verify_images: bool = False,
    **options,
) -> ReIDDataset:
    """Load CUHK03 (new protocol, 767/700) from ``root``.

    Args:
        root: folder holding the ``.mat`` split files and ``images_<variant>/``.
        variant: ``"labeled"`` or ``"detected"``; required.
        strict: raise on image names that do not parse (default); False skips them, warning.
        verify_images: decode every image and report all unreadable ones (slow).

    Raises:
        DatasetError: no or unknown variant, missing files, bad .mat, bad names, empty splits.
    """
    check_options("cuhk03", options)
    if variant is None:
        raise DatasetError(
            "cuhk03: choose variant='labeled' or variant='detected' "
            "(--variant on the command line); their results are not comparable"
        )
    if variant not in VARIANTS:
        raise DatasetError(f"cuhk03: unknown variant {variant!r}; expected one of {VARIANTS}")
    mat_name = f"cuhk03_new_protocol_config_{variant}.mat"
    img_name = f"images_{variant}"
    base = find_layout(root, ["", "cuhk03"], [mat_name, img_name], "cuhk03")
    mat_path, img_dir = base / mat_name, base / img_name
    proto = read_protocol(mat_path)
    names, labels = proto["filelist"], proto["labels"]

    bad, parsed = [], {}
    for i, n in enumerate(names):
        m = NAME.match(n)
        if m:
            parsed[i] = int(m.group(3)) - 1
        else:
            bad.append(n)
    if bad:
        msg = (
            f"cuhk03: {len(bad)} name(s) in {mat_path} do not parse: {quote_names(bad)}; "
            "expected <pair>_<person>_<view 1|2>_<image>.png like 1_001_1_01.png"
        )
        if strict:
            raise DatasetError(msg + " (pass strict=False / --no-strict to skip them)")
        log.warning("%s; skipped", msg)

    splits: dict[str, list[Sample]] = {}
    for split in ("train", "query", "gallery"):
        splits[split] = [
            Sample(str(img_dir / names[i]), int(labels[i]), parsed[i])
            for i in proto[f"{split}_idx"].tolist()
            if i in parsed
        ]
    check_files_exist(
        splits["train"] + splits["query"] + splits["gallery"],
        dataset="cuhk03",
        listed_in=f"{mat_path} (expected under {img_dir})",
    )
    info = {
        "variant": variant,
        "protocol": "new (Zhong et al. CVPR 2017, 767/700)",
        "split_file": str(mat_path),
        "camids": "view within the camera pair, 0-based (as torchreid)",
        "skipped_unparseable": len(bad),
    }
    return finalize(
        "cuhk03",
        base,
        splits["train"],
        splits["query"],
        splits["gallery"],
        info,
        verify_images=verify_images,
        where={s: str(mat_path) for s in splits},
    )
