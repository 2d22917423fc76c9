"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

Layout (any of): ``ROOT/{bounding_box_train,query,bounding_box_test}/``,
``ROOT/Market-1501-v15.09.15/...`` or ``ROOT/market1501/[Market-1501-v15.09.15/]...``.
Names ``0002_c1s1_000451_03.jpg``: pid, camera ``c1..c6`` (made 0-based), sequence, frame, box.

* pid ``-1`` (junk: bad detections) is dropped from every split, as torchreid and fast-reid do;
  ``info['junk_dropped']`` counts them per split (3,819 in the real gallery).
* pid ``0`` (distractors: background / partial bodies) stays in the gallery;
  ``info['distractors']`` counts them (2,798 in the real gallery).
* pids stay raw in every split (train too); relabel for training with
  :func:`reidlab.datasets.relabel`.
* non-image files (``Thumbs.db``) are ignored.

Real counts: train 12,936 images / 751 ids, query 3,368 / 750 ids, gallery 15,913 / 751 ids
(the 750 query ids plus distractor id 0), 6 cameras; no query lacks a cross-camera match.
"""

from __future__ import annotations

from pathlib import Path

from reidlab.datasets.base import ReIDDataset
from reidlab.datasets.parsing import check_options, load_market_style


def load(
    root: str | Path, *, strict: bool = True, verify_images: bool = False, **options
) -> ReIDDataset:
    """Load Market-1501 from ``root``.

    Args:
        root: the dataset folder (see the module docstring for accepted layouts).
        strict: raise on an unparseable file name (default); False skips it with a warning.
        verify_images: decode every image and report all unreadable ones (slow).

    Raises:
        DatasetError: missing split folders, unparseable names, empty splits, bad images.
    """
    check_options("market1501", options)
    return load_market_style(
        "market1501",
        root,
        inner="Market-1501-v15.09.15",
        outer="market1501",
        num_cameras=6,
        example="0002_c1s1_000451_03.jpg",
        strict=strict,
        verify_images=verify_images,
    )
