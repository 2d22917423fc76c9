"""VIPeR (Gray et al., "Evaluating Appearance Models for Recognition, Reacquisition, and
Tracking", PETS 2007): 632 people, one image from each of two cameras.

Layout (``ROOT``, ``ROOT/VIPeR`` or ``ROOT/viper/VIPeR``)::

    ROOT/cam_a/000_45.bmp ...   # <pid>_<viewing angle>.bmp, 632 files
    ROOT/cam_b/000_90.bmp ...   # the same 632 pids

pid is the number before the first ``_`` (raw, not contiguous); cam_a -> camid 0,
cam_b -> camid 1. Every pid must appear exactly once in each camera.

Splits: the protocol is 10 random halvings of the ids into 316 train / 316 test. reidlab draws
them from ``numpy.random.default_rng(seed)`` (``seed`` defaults to :data:`DEFAULT_SEED`) over
the sorted pid list, one ``rng.permutation`` per split in order 0..9, so split ``k`` is identical
on every install; ``info`` records ``seed`` and ``split_index``. Train holds both images of the
train ids; query = cam_a images of the test ids, gallery = cam_b images (``swap=True`` reverses
them). torchreid instead saves 20 unseeded splits: its split ``2k`` is "cam_a query" and ``2k+1``
the same ids with "cam_b query"; reidlab's ``(split_index=k, swap=False/True)`` is the same
pair of protocols with reproducible ids (not torchreid's ids, which differ per install).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from reidlab.datasets.base import ReIDDataset, Sample, list_images
from reidlab.datasets.parsing import (
    check_options,
    finalize,
    find_layout,
    parse_names,
    quote_names,
)
from reidlab.errors import DatasetError

DEFAULT_SEED = 20070101  # fixed once; changing it changes every published reidlab VIPeR split
NUM_SPLITS = 10
NAME = re.compile(r"^(\d+)_")


def _parse(name: str, camid: int) -> tuple[int, int] | None:
    m = NAME.match(name)
    return (int(m.group(1)), camid) if m else None


def split_pids(
    pids: list[int], split_index: int, seed: int = DEFAULT_SEED
) -> tuple[list[int], list[int]]:
    """``(train_pids, test_pids)`` of split ``split_index`` (sorted lists, halves of ``pids``).

    With an odd number of ids the test half gets the extra one.
    """
    if not 0 <= split_index < NUM_SPLITS:
        raise DatasetError(
            f"viper: split_index {split_index} out of range; expected 0..{NUM_SPLITS - 1}"
        )
    pids = sorted(pids)
    rng = np.random.default_rng(seed)
    for _ in range(split_index + 1):
        order = rng.permutation(len(pids))
    n_train = len(pids) // 2
    train = sorted(pids[i] for i in order[:n_train])
    test = sorted(pids[i] for i in order[n_train:])
    return train, test


def load(
    root: str | Path,
    *,
    split_index: int = 0,
    seed: int = DEFAULT_SEED,
    swap: bool = False,
    strict: bool = True,
    verify_images: bool = False,
    **options,
) -> ReIDDataset:
    """Load VIPeR split ``split_index`` (0..9) from ``root``.

    Args:
        split_index: which of the 10 seeded 316/316 splits.
        seed: the split seed (default :data:`DEFAULT_SEED`; recorded in ``info``).
        swap: query from cam_b and gallery from cam_a (the "B->A" protocol).
        strict: raise on unparseable names (default); False skips them with a warning.
        verify_images: decode every image and report all unreadable ones (slow).
    """
    check_options("viper", options)
    base = find_layout(root, ["", "VIPeR", "viper/VIPeR"], ["cam_a", "cam_b"], "viper")
    by_cam: list[dict[int, Sample]] = []
    for camid, cam in enumerate(("cam_a", "cam_b")):
        samples, _ = parse_names(
            list_images(base / cam),
            lambda n, c=camid: _parse(n, c),
            dataset="viper",
            where=str(base / cam),
            expected="names like 000_45.bmp (<pid>_<angle>.bmp)",
            strict=strict,
        )
        seen: dict[int, Sample] = {}
        dup = []
        for s in samples:
            if s.pid in seen:
                dup.append(Path(s.path).name)
            else:
                seen[s.pid] = s
        if dup:
            raise DatasetError(
                f"viper: {base / cam} holds several images of the same pid: "
                f"{quote_names(dup)}; expected one image per person per camera"
            )
        by_cam.append(seen)
    a, b = by_cam
    only = sorted(set(a) ^ set(b))
    if only:
        raise DatasetError(
            f"viper: {len(only)} pid(s) appear in only one of cam_a/cam_b "
            f"({quote_names([str(p) for p in only])}); expected each person in both"
        )
    if not a:
        raise DatasetError(
            f"viper: no images in {base / 'cam_a'} and {base / 'cam_b'}; "
            "expected .bmp files like 000_45.bmp"
        )
    train_pids, test_pids = split_pids(list(a), split_index, seed)
    train = [s for p in train_pids for s in (a[p], b[p])]
    qcam, gcam = (b, a) if swap else (a, b)
    query = [qcam[p] for p in test_pids]
    gallery = [gcam[p] for p in test_pids]
    info = {
        "seed": seed,
        "split_index": split_index,
        "num_splits": NUM_SPLITS,
        "swap": swap,
        "query_camera": "cam_b" if swap else "cam_a",
        "gallery_camera": "cam_a" if swap else "cam_b",
        "test_pids": test_pids,
        "layout": str(base),
    }
    return finalize("viper", base, train, query, gallery, info, verify_images=verify_images)
