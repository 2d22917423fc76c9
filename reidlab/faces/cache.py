"""Run a detector over a split, cached by image content: :func:`detect_split`, :func:`boxes_by_path`.

Cache layout (one folder per detector configuration, so changing a parameter invalidates only that
configuration)::

    <cache_dir>/<detector.name>-<detector.key>/
        config.json        name + params, for people reading the folder
        images.parquet     sha1, height, width of every image processed (including those with no face)
        boxes.parquet      sha1, x1, y1, x2, y2, score (one row per detected box)

Entries are keyed by the SHA-1 of the file bytes, not by path: a changed file gets a new hash and is
the only one re-run; a renamed or copied file is not re-run. Fail-closed prior boxes are never cached
(they are cheap and depend on the option, not the detector).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidlab.faces.base import Detector
from reidlab.faces.prior import HeadPrior, head_prior_box

log = logging.getLogger(__name__)

COLUMNS = ["path", "sha1", "x1", "y1", "x2", "y2", "score", "detector", "params", "fail_closed"]


def default_cache_dir() -> Path:
    """``<cache>/faces``: :func:`reidlab.paths.cache_dir` is ``$REIDLAB_CACHE`` or ``~/.cache/reidlab``."""
    from reidlab.paths import cache_dir

    return cache_dir() / "faces"


def file_sha1(path: str | Path) -> str:
    """SHA-1 hex digest of a file's bytes."""
    from reidlab.errors import ImageReadError

    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise ImageReadError(f"cannot read image file {path}: {e}") from e


def _sample_path(s) -> str:
    return str(s.path if hasattr(s, "path") else s)


def _load_cache(folder: Path | None):
    """(images, boxes) tables of one configuration's cache folder; empty ones when absent/None."""
    import pandas as pd

    if (
        folder is not None
        and (folder / "images.parquet").is_file()
        and (folder / "boxes.parquet").is_file()
    ):
        return pd.read_parquet(folder / "images.parquet"), pd.read_parquet(folder / "boxes.parquet")
    return (
        pd.DataFrame(
            {
                "sha1": pd.Series(dtype=str),
                "height": pd.Series(dtype="int64"),
                "width": pd.Series(dtype="int64"),
            }
        ),
        pd.DataFrame(
            {
                "sha1": pd.Series(dtype=str),
                **{c: pd.Series(dtype="float32") for c in ("x1", "y1", "x2", "y2", "score")},
            }
        ),
    )


def _save_cache(folder: Path, detector: Detector, images, boxes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps({"name": detector.name, "params": detector.params}, sort_keys=True, indent=1)
    )
    # write to temp files then rename, so an interrupted run never leaves a half-written cache
    for name, df in (("images", images), ("boxes", boxes)):
        tmp = folder / f".{name}.parquet.tmp"
        df.to_parquet(tmp, index=False)
        tmp.replace(folder / f"{name}.parquet")


def detect_split(
    detector: Detector,
    samples: Sequence,
    root: str | Path,
    cache_dir: str | Path | None | bool = None,
    fail_closed=None,
    batch_size: int = 64,
    progress: bool = True,
):
    """Detect faces in every image of ``samples`` (Samples or paths), cached by content hash.

    Args:
        detector: any :class:`~reidlab.faces.base.Detector`.
        samples: ``Sample`` objects (their ``.path``) or path strings, absolute or relative to ``root``.
        root: the dataset root; the ``path`` column is relative to it.
        cache_dir: cache folder (``None`` = :func:`default_cache_dir`, ``False`` = no cache).
        fail_closed: ``None`` (off), a float (height fraction of the head prior), a dict or a
            :class:`~reidlab.faces.prior.HeadPrior`: images with no detection get the prior box.
        batch_size: images per ``detect_batch`` call.
        progress: show a tqdm bar.

    Returns:
        DataFrame with columns ``path, sha1, x1, y1, x2, y2, score, detector, params, fail_closed``, one
        row per (image, box), in the order of ``samples``. ``df.attrs`` holds ``num_images``,
        ``num_with_face``, ``num_fail_closed`` and ``cache_hits`` / ``cache_misses`` (images).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from reidlab.imageio import read_rgb

    root = Path(root)
    prior = HeadPrior.from_option(fail_closed)
    paths = [_sample_path(s) for s in samples]
    abs_paths = [p if os.path.isabs(p) else str(root / p) for p in paths]
    rels = [os.path.relpath(p, root) for p in abs_paths]
    shas = [
        file_sha1(p) for p in tqdm(abs_paths, desc="hashing", disable=not progress, leave=False)
    ]

    use_cache = cache_dir is not False and detector.cacheable
    folder = None
    if use_cache:
        folder = Path(cache_dir if cache_dir not in (None, True) else default_cache_dir())
        folder = folder / f"{detector.name}-{detector.key}"
    images_df, boxes_df = _load_cache(folder)
    known = set(images_df["sha1"])
    todo: dict[str, str] = {}
    for p, h in zip(abs_paths, shas):
        if h not in known and h not in todo:
            todo[h] = p
    hits = len(abs_paths) - sum(1 for h in shas if h in todo)
    log.info(
        "%s: %d images, %d cached, %d to detect", detector.name, len(abs_paths), hits, len(todo)
    )

    new_images, new_boxes = [], []
    items = list(todo.items())
    bar = tqdm(total=len(items), desc=f"faces ({detector.name})", disable=not progress)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        imgs = [read_rgb(p) for _, p in chunk]
        if (
            hasattr(detector, "detect_paths")
            and type(detector).detect_paths is not Detector.detect_paths
        ):
            dets = detector.detect_paths([p for _, p in chunk])  # path-aware backends (oracle)
        else:
            dets = detector.detect_batch(imgs)
        for (h, _), img, d in zip(chunk, imgs, dets):
            new_images.append((h, img.shape[0], img.shape[1]))
            for row in np.asarray(d, dtype=np.float32).reshape(-1, 5):
                new_boxes.append((h, *row.tolist()))
        bar.update(len(chunk))
    bar.close()
    if new_images:
        add_i = pd.DataFrame(new_images, columns=["sha1", "height", "width"])
        add_b = pd.DataFrame(new_boxes, columns=["sha1", "x1", "y1", "x2", "y2", "score"])
        add_b[["x1", "y1", "x2", "y2", "score"]] = add_b[["x1", "y1", "x2", "y2", "score"]].astype(
            "float32"
        )
        images_df = pd.concat([images_df, add_i], ignore_index=True) if len(images_df) else add_i
        boxes_df = pd.concat([boxes_df, add_b], ignore_index=True) if len(boxes_df) else add_b
        if folder:
            _save_cache(folder, detector, images_df, boxes_df)

    # assemble the per-path table in sample order
    by_sha: dict[str, np.ndarray] = {
        h: g[["x1", "y1", "x2", "y2", "score"]].to_numpy(np.float32)
        for h, g in boxes_df.groupby("sha1")
    }
    sizes = {
        h: (int(a), int(b))
        for h, a, b in images_df[["sha1", "height", "width"]].itertuples(index=False)
    }
    params = detector.params_json()
    rows = []
    n_face = n_prior = 0
    for rel, h in zip(rels, shas):
        b = by_sha.get(h)
        if b is not None and len(b):
            n_face += 1
            rows.extend((rel, h, *r.tolist(), False) for r in b)
        elif prior is not None:
            n_prior += 1
            rows.append((rel, h, *head_prior_box(*sizes[h], prior).tolist(), True))
    df = pd.DataFrame(
        [(r[0], r[1], *r[2:7], detector.name, params, r[7]) for r in rows], columns=COLUMNS
    )
    df = df.astype({c: "float32" for c in ("x1", "y1", "x2", "y2", "score")}).astype(
        {"fail_closed": bool}
    )
    df.attrs.update(
        num_images=len(rels),
        num_with_face=n_face,
        num_fail_closed=n_prior,
        cache_hits=hits,
        cache_misses=len(todo),
        detector=detector.name,
        params=params,
    )
    if prior is not None:
        df.attrs["prior"] = json.dumps(prior.__dict__)
        log.info(
            "fail-closed: %d of %d images had no detection and got the head prior",
            n_prior,
            len(rels),
        )
    return df


def fail_closed_summary(df) -> dict:
    """Counts from a :func:`detect_split` table: images, with a face, needing the prior, their share."""
    n = int(df.attrs.get("num_images", df["path"].nunique()))
    k = int(df.attrs.get("num_fail_closed", df.loc[df["fail_closed"], "path"].nunique()))
    return {
        "images": n,
        "with_face": int(df.attrs.get("num_with_face", n - k)),
        "fail_closed": k,
        "fail_closed_rate": k / n if n else 0.0,
    }


def boxes_by_path(df, root: str | Path) -> dict[str, np.ndarray]:
    """``{absolute path: (K, 4) float32 boxes}`` from a :func:`detect_split` table (all its rows).

    Paths absent from ``df`` (no face, no prior) are absent from the dict; loaders treat that as K=0.
    """
    root = Path(root)
    out: dict[str, np.ndarray] = {}
    if len(df) == 0:
        return out
    for rel, g in df.groupby("path", sort=False):
        out[str(root / rel)] = g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    return out
