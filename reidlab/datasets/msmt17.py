"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

``version="v1"`` or ``version="v2"`` is a required, explicit choice. V2 is the re-release
whose images have the faces masked (blurred) by the authors; V1 has the original pixels.

Layout (``ROOT``, ``ROOT/msmt17`` or ``ROOT`` being the ``MSMT17_V*`` folder itself)::

    ROOT/MSMT17_V1/                      ROOT/MSMT17_V2/
      train/0000/0000_000_01_0303morning_0008_0.jpg   mask_train_v2/0000/...
      test/...                                        mask_test_v2/...
      list_train.txt list_val.txt                     list_train.txt list_val.txt
      list_query.txt list_gallery.txt                 list_query.txt list_gallery.txt

Each list line is ``<path relative to the train/test folder> <pid>``. The camera is the third
``_`` field of the file name (``01``..``15``), made 0-based. pids are the listed values
(train and test pids are both numbered from 0 but are different people).

The training split is ``list_train`` + ``list_val`` by default (``include_val=True``): that is
the paper's 32,621-image training set. torchreid's default uses ``list_train`` only (30,248).

Counts (V1, paper): train 32,621 images / 1,041 ids, query 11,659 / 3,060, gallery 82,161 /
3,060, 15 cameras.
"""

from __future__ import annotations

import logging
from pathlib import Path

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

VERSIONS = {
    "v1": ("MSMT17_V1", "train", "test"),
    "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
}
LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")


def _camid(rel_path: str) -> int | None:
    """0-based camera of ``0000/0000_000_01_0303morning_0008_0.jpg`` (third field, 1..15)."""
    parts = Path(rel_path).name.split("_")
    if len(parts) < 3 or not parts[2].isdigit():
        return None
    cam = int(parts[2])
    return cam - 1 if 1 <= cam <= 15 else None


def read_list(list_path: Path, image_dir: Path, *, strict: bool) -> tuple[list[Sample], int]:
    """Samples of one ``list_*.txt`` (``<relative path> <pid>`` per line); ``(samples, skipped)``."""
    if not list_path.is_file():
        raise DatasetError(
            f"msmt17: list file {list_path} is missing; expected "
            f"{', '.join(LISTS)} in {list_path.parent}"
        )
    samples, bad = [], []
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"msmt17: cannot read list file {list_path} as text: {e}") from e
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        cam = _camid(fields[0]) if len(fields) == 2 else None
        if cam is None or not fields[1].lstrip("-").isdigit():
            bad.append(f"line {lineno}: {line.strip()[:80]}")
            continue
        samples.append(Sample(str(image_dir / fields[0]), int(fields[1]), cam))
    if bad:
        msg = (
            f"msmt17: {len(bad)} line(s) of {list_path} do not parse: {quote_names(bad)}; "
            "expected '<folder>/<pid>_<n>_<camera 01-15>_<...>.jpg <pid>'"
        )
        if strict:
            raise DatasetError(msg + " (pass strict=False / --no-strict to skip them)")
        log.warning("%s; skipped", msg)
    return samples, len(bad)


def load(
    root: str | Path,
    *,
    version: str | None = None,
    include_val: bool = True,
    strict: bool = True,
    verify_images: bool = False,
    **options,
) -> ReIDDataset:
    """Load MSMT17 ``version`` ("v1" or "v2", required) from ``root``.

    Args:
        include_val: add ``list_val`` to the training split (the paper's training set).
        strict: raise on unparseable list lines (default); False skips them with a warning.
        verify_images: decode every image and report all unreadable ones (slow).

    Raises:
        DatasetError: no or unknown version, missing folders/lists/images, bad lines, empty splits.
    """
    check_options("msmt17", options)
    if version is None:
        raise DatasetError(
            "msmt17: choose version='v1' or version='v2' (--version on the "
            "command line); V2 has the faces masked, V1 does not"
        )
    v = str(version).lower()
    if v not in VERSIONS:
        raise DatasetError(f"msmt17: unknown version {version!r}; expected 'v1' or 'v2'")
    main, train_dir, test_dir = VERSIONS[v]
    base = find_layout(root, [main, f"msmt17/{main}", ""], [train_dir, test_dir, *LISTS], "msmt17")
    lists, skipped = {}, {}
    for name, folder in (
        ("train", train_dir),
        ("val", train_dir),
        ("query", test_dir),
        ("gallery", test_dir),
    ):
        lists[name], skipped[name] = read_list(
            base / f"list_{name}.txt", base / folder, strict=strict
        )
    train = lists["train"] + (lists["val"] if include_val else [])
    check_files_exist(
        train + lists["query"] + lists["gallery"],
        dataset="msmt17",
        listed_in=f"the list files of {base}",
    )
    info = {
        "version": v,
        "faces_masked": v == "v2",
        "include_val": include_val,
        "layout": str(base),
        "camids": "third name field 01..15 -> 0..14",
        "skipped_unparseable": skipped,
    }
    return finalize(
        "msmt17",
        base,
        train,
        lists["query"],
        lists["gallery"],
        info,
        verify_images=verify_images,
        where={
            "train": str(base / "list_train.txt"),
            "query": str(base / "list_query.txt"),
            "gallery": str(base / "list_gallery.txt"),
        },
    )
