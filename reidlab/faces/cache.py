"""Run a detector over a split, cached by image content: :func:`detect_split`, :func:`boxes_by_path`.

Cache layout (one folder per detector configuration, so changing a parameter invalidates only that
configuration)::

    <cache_dir>/<detector.name>-<detector.key>/
        config.json        name + params, for people reading the folder
        images.parquet     sha1, height, width of every image processed (including those with no face)
        boxes.parquet      sha1, x1, y1, x2, y2, score (one row per detected box)
        maps.npz           per-pixel face maps of detectors that give them (:func:`split_face_maps`)
        .lock              taken (fcntl.flock) around every read and read-merge-write

``maps.npz`` (numpy, read with ``allow_pickle=False``) holds, per map size ``h x w``, the arrays
``sha1_<h>x<w>`` (``S40``, the images' SHA-1) and ``maps_<h>x<w>`` (``(N, h, w)`` uint16): each
probability at the detector's own resolution (reidface: 32x16, 1 KB an image before compression)
as ``ceil(p * 65535)``, rounded *up* so that a decoded map (``q / 65535``) is never below the
network's (a threshold on the cached map never drops a face pixel the live map would have kept)
and at most 1.5e-5 above it. (uint8 ``ceil(p * 255)`` was measured first: its up to 0.004 excess
at the 0.02 threshold widened reidface's held-out segmentation region from 9.7% to 10.0% of the
crop area, over-blur 78.4% -> 78.9%; uint16 gives the live maps' numbers.)

Entries are keyed by the SHA-1 of the file bytes, not by path: a changed file gets a new hash and is
the only one re-run; a renamed or copied file is not re-run. Fail-closed prior boxes are never cached
(they are cheap and depend on the option, not the detector). Backends that answer by path
(``needs_paths``, the oracle) or are not ``cacheable`` are never cached.

Robustness: new entries are written every ``save_every`` images (not only at the end), so an
interrupted run keeps what it had saved; each write re-reads the folder under an exclusive lock and
merges, so processes sharing a cache folder never drop each other's entries. ``boxes.parquet`` is
replaced before ``images.parquet``, and boxes of images not listed are ignored on reading, so a kill
between the two renames leaves a consistent cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reidlab.faces.base import Detector, DetectorError
from reidlab.faces.prior import HeadPrior, head_prior_box
from reidlab.hashing import file_hash

log = logging.getLogger(__name__)

COLUMNS = ["path", "sha1", "x1", "y1", "x2", "y2", "score", "detector", "params", "fail_closed"]


def default_cache_dir() -> Path:
    """``<cache>/faces``: :func:`reidlab.paths.cache_dir` is ``$REIDLAB_CACHE`` or ``~/.cache/reidlab``."""
    from reidlab.paths import cache_dir

    return cache_dir() / "faces"


SAVE_EVERY = 2000  # images detected between two writes of the cache


def file_sha1(path: str | Path) -> str:
    """SHA-1 hex digest of a file's bytes; :class:`~reidlab.errors.ImageReadError` if unreadable."""
    from reidlab.errors import ImageReadError

    try:
        return file_hash(path, "sha1")
    except OSError as e:
        raise ImageReadError(f"cannot read image file {path}: {e}") from e


@contextlib.contextmanager
def cache_lock(folder: Path, exclusive: bool = True):
    """Hold ``folder/.lock`` (``fcntl.flock``: exclusive for writers, shared for readers).

    Advisory and per open file, so it serialises processes (and threads with their own open) that
    use this function; released when the block ends or the process dies. Without ``fcntl``
    (Windows), or where the lock file cannot be created (a read-only cache), it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / ".lock", "a+b")  # noqa: SIM115 - closed below
    except OSError as e:
        log.debug("no lock on %s (%s): reading without it", folder, e)
        yield
        return
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _sample_path(s) -> str:
    return str(s.path if hasattr(s, "path") else s)


def _read_tables(folder: Path | None):
    """(images, boxes) tables of one configuration's cache folder; empty ones when absent/None.

    The caller holds the lock. Boxes of images not in ``images.parquet`` are dropped (a write
    interrupted between the two renames).
    """
    import pandas as pd

    if (
        folder is not None
        and (folder / "images.parquet").is_file()
        and (folder / "boxes.parquet").is_file()
    ):
        images = pd.read_parquet(folder / "images.parquet")
        boxes = pd.read_parquet(folder / "boxes.parquet")
        return images, boxes[boxes["sha1"].isin(images["sha1"])].reset_index(drop=True)
    return _empty_tables()


def _load_cache(folder: Path | None):
    """(images, boxes) tables of a cache folder, read under a shared lock."""
    if folder is None or not folder.is_dir():
        return _empty_tables()
    with cache_lock(folder, exclusive=False):
        return _read_tables(folder)


def _empty_tables():
    import pandas as pd

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


def _new_tables(new_images: list, new_boxes: list):
    import pandas as pd

    add_i = pd.DataFrame(new_images, columns=["sha1", "height", "width"])
    add_b = pd.DataFrame(new_boxes, columns=["sha1", "x1", "y1", "x2", "y2", "score"])
    cols = ["x1", "y1", "x2", "y2", "score"]
    add_b[cols] = add_b[cols].astype("float32")
    return add_i, add_b


def _union(images, boxes, add_i, add_b):
    """``images``/``boxes`` plus the entries of ``add_i``/``add_b`` whose image is not yet in them."""
    import pandas as pd

    fresh = ~add_i["sha1"].isin(images["sha1"])
    if not fresh.any():
        return images, boxes
    add_i = add_i[fresh]
    add_b = add_b[add_b["sha1"].isin(add_i["sha1"])]
    images = pd.concat([images, add_i], ignore_index=True) if len(images) else add_i
    if len(add_b):
        boxes = pd.concat([boxes, add_b], ignore_index=True) if len(boxes) else add_b
    return images.reset_index(drop=True), boxes.reset_index(drop=True)


def _save_cache(folder: Path, detector: Detector, add_i, add_b):
    """Merge new entries into the folder's tables under the exclusive lock; the merged tables.

    Entries another process wrote meanwhile are kept (the union); for an image both processes
    detected, the one on disk stays (the detector is deterministic).
    """
    with cache_lock(folder, exclusive=True):
        images, boxes = _read_tables(folder)
        images, boxes = _union(images, boxes, add_i, add_b)
        (folder / "config.json").write_text(
            json.dumps({"name": detector.name, "params": detector.params}, sort_keys=True, indent=1)
        )
        # temp files then rename: a reader never sees a half-written file; boxes first (see above)
        for name, df in (("boxes", boxes), ("images", images)):
            tmp = folder / f".{name}.parquet.tmp"
            df.to_parquet(tmp, index=False)
            tmp.replace(folder / f"{name}.parquet")
    return images, boxes


def detect_split(
    detector: Detector,
    samples: Sequence,
    root: str | Path,
    cache_dir: str | Path | None | bool = None,
    fail_closed=None,
    batch_size: int = 64,
    progress: bool = True,
    save_every: int = SAVE_EVERY,
):
    """Detect faces in every image of ``samples`` (Samples or paths), cached by content hash.

    Args:
        detector: any :class:`~reidlab.faces.base.Detector`.
        samples: ``Sample`` objects (their ``.path``) or path strings, absolute or relative to ``root``.
        root: the dataset root; the ``path`` column is relative to it.
        cache_dir: cache folder (``None`` = :func:`default_cache_dir`, ``False`` = no cache).
        fail_closed: ``None`` (off), a float (height fraction of the head prior), a dict or a
            :class:`~reidlab.faces.prior.HeadPrior`: images with no detection get the prior box.
        batch_size: images per ``detect_batch`` call (it gets the images and their paths).
        progress: show a tqdm bar.
        save_every: write new entries to the cache after about this many detected images (and
            at the end), so an interruption loses at most that many.

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

    # Results are keyed by content hash, so identical files are detected once; a backend that
    # answers by path (the oracle) is keyed by path instead and never cached.
    by_path = detector.needs_paths
    keys = [os.path.realpath(p) for p in abs_paths] if by_path else shas
    use_cache = cache_dir is not False and detector.cacheable and not by_path
    folder = None
    if use_cache:
        folder = Path(cache_dir if cache_dir not in (None, True) else default_cache_dir())
        folder = folder / f"{detector.name}-{detector.key}"
    images_df, boxes_df = _load_cache(folder)
    known = set(images_df["sha1"])
    todo: dict[str, str] = {}
    for p, k in zip(abs_paths, keys):
        if k not in known and k not in todo:
            todo[k] = p
    hits = len(abs_paths) - sum(1 for k in keys if k in todo)
    log.info(
        "%s: %d images, %d cached, %d to detect", detector.name, len(abs_paths), hits, len(todo)
    )

    new_images: list = []
    new_boxes: list = []

    def flush():
        nonlocal images_df, boxes_df
        if not new_images:
            return
        add_i, add_b = _new_tables(new_images, new_boxes)
        if folder is not None:
            images_df, boxes_df = _save_cache(folder, detector, add_i, add_b)
        images_df, boxes_df = _union(images_df, boxes_df, add_i, add_b)
        new_images.clear()
        new_boxes.clear()

    items = list(todo.items())
    bar = tqdm(total=len(items), desc=f"faces ({detector.name})", disable=not progress)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        imgs = [read_rgb(p) for _, p in chunk]
        dets = detector.detect_batch(imgs, [p for _, p in chunk])
        for (k, _), img, d in zip(chunk, imgs, dets):
            new_images.append((k, img.shape[0], img.shape[1]))
            for row in np.asarray(d, dtype=np.float32).reshape(-1, 5):
                new_boxes.append((k, *row.tolist()))
        bar.update(len(chunk))
        if folder is not None and len(new_images) >= save_every:
            flush()
    bar.close()
    flush()

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
    for rel, h, k in zip(rels, shas, keys):
        b = by_sha.get(k)
        if b is not None and len(b):
            n_face += 1
            rows.extend((rel, h, *r.tolist(), False) for r in b)
        elif prior is not None:
            n_prior += 1
            rows.append((rel, h, *head_prior_box(*sizes[k], prior).tolist(), True))
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


MAPS_FILE = "maps.npz"


MAP_SCALE = 65535  # uint16 codes per unit probability


def encode_maps(maps: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] as uint16 ``ceil(p * 65535)`` (rounded up: see the module doc)."""
    m = np.asarray(maps, dtype=np.float64)
    if not np.isfinite(m).all() or m.min(initial=0) < 0 or m.max(initial=0) > 1:
        raise DetectorError("face maps must hold finite probabilities in [0, 1]")
    return np.ceil(m * MAP_SCALE).clip(0, MAP_SCALE).astype(np.uint16)


def decode_maps(codes: np.ndarray) -> np.ndarray:
    """uint16 codes of :func:`encode_maps` as float32 probabilities ``q / 65535`` (computed in
    float64, then rounded up to float32 where rounding would go below the code's value)."""
    exact = np.asarray(codes, dtype=np.float64) / MAP_SCALE
    out = exact.astype(np.float32)
    return np.where(out < exact, np.nextafter(out, np.float32(2)), out).astype(np.float32)


def _read_maps(folder: Path | None) -> dict[str, np.ndarray]:
    """``{sha1: uint16 (h, w)}`` of a cache folder's ``maps.npz`` (the caller holds the lock)."""
    path = None if folder is None else folder / MAPS_FILE
    if path is None or not path.is_file():
        return {}
    out: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            if key.startswith("sha1_"):
                shas, maps = z[key], z["maps_" + key[5:]]
                if maps.dtype != np.uint16 or len(maps) != len(shas):
                    # another encoding (an older version): computed again, never misread
                    log.warning(
                        "%s: ignoring %s (%s), not this version's maps", path, key, maps.dtype
                    )
                    continue
                out.update(zip(shas.astype(str).tolist(), maps))
    return out


def _save_maps(folder: Path, detector: Detector, new: dict[str, np.ndarray]) -> dict:
    """Merge ``new`` ``{sha1: uint16 map}`` into the folder's ``maps.npz`` under the exclusive lock
    (entries on disk win: the detector is deterministic); the merged maps."""
    with cache_lock(folder, exclusive=True):
        maps = _read_maps(folder)
        for k, v in new.items():
            maps.setdefault(k, v)
        groups: dict[tuple, list] = {}
        for k, v in maps.items():
            groups.setdefault(v.shape, []).append(k)
        arrays = {}
        for (h, w), keys in groups.items():
            arrays[f"sha1_{h}x{w}"] = np.array(keys, dtype="S40")
            arrays[f"maps_{h}x{w}"] = np.stack([maps[k] for k in keys]).astype(np.uint16)
        (folder / "config.json").write_text(
            json.dumps({"name": detector.name, "params": detector.params}, sort_keys=True, indent=1)
        )
        tmp = folder / f".{MAPS_FILE}.tmp"
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **arrays)
        tmp.replace(folder / MAPS_FILE)
    return maps


def split_face_maps(
    detector: Detector,
    samples: Sequence,
    root: str | Path,
    cache_dir: str | Path | None | bool = None,
    batch_size: int = 64,
    progress: bool = True,
    save_every: int = SAVE_EVERY,
) -> dict[str, np.ndarray]:
    """Per-pixel face maps of every image of ``samples``, cached by content hash beside the boxes.

    Args:
        detector: a detector that gives maps (:attr:`~reidlab.faces.base.Detector.gives_maps`,
            reidface); another raises :class:`~reidlab.faces.base.DetectorError`.
        samples, root, cache_dir, batch_size, progress, save_every: as in :func:`detect_split`.

    Returns:
        ``{absolute path: float32 (h, w)}`` at the detector's resolution, decoded from the cached
        uint16 form (:func:`decode_maps`, never below the network's probability; the live maps of
        images computed now are encoded and decoded alike, so a result never depends on the cache).
    """
    from tqdm.auto import tqdm

    from reidlab.imageio import read_rgb

    if not detector.gives_maps:
        detector.face_maps([])  # raises the detector's own "boxes only" error
    root = Path(root)
    paths = [_sample_path(s) for s in samples]
    abs_paths = [p if os.path.isabs(p) else str(root / p) for p in paths]
    shas = [
        file_sha1(p) for p in tqdm(abs_paths, desc="hashing", disable=not progress, leave=False)
    ]
    folder = None
    if cache_dir is not False and detector.cacheable and not detector.needs_paths:
        folder = Path(cache_dir if cache_dir not in (None, True) else default_cache_dir())
        folder = folder / f"{detector.name}-{detector.key}"
    maps: dict[str, np.ndarray] = {}
    if folder is not None and folder.is_dir():
        with cache_lock(folder, exclusive=False):
            maps = _read_maps(folder)
    todo: dict[str, str] = {}
    for p, k in zip(abs_paths, shas):
        if k not in maps and k not in todo:
            todo[k] = p
    log.info("%s maps: %d images, %d to compute", detector.name, len(abs_paths), len(todo))
    new: dict[str, np.ndarray] = {}
    items = list(todo.items())
    bar = tqdm(total=len(items), desc=f"face maps ({detector.name})", disable=not progress)
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        got = detector.face_maps([read_rgb(p) for _, p in chunk])
        for (k, _), m in zip(chunk, got):
            new[k] = encode_maps(m)
        bar.update(len(chunk))
        if folder is not None and len(new) >= save_every:
            maps = _save_maps(folder, detector, new)
            new = {}
    bar.close()
    if folder is not None and new:
        maps = _save_maps(folder, detector, new)
    else:
        maps.update(new)
    return {p: decode_maps(maps[k]) for p, k in zip(abs_paths, shas)}


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
