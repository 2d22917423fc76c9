"""Write an anonymized copy of a dataset folder, with a manifest, and verify such a copy.

:func:`export_dataset` walks every image file under ``SRC`` (dataset-agnostic: the relative paths,
folder layout and file names are kept, so torchreid / fast-reid read the copy unchanged), detects
faces, anonymizes them in batches with :class:`~reidlab.anonymize.Anonymizer`, and writes each
output atomically (temporary file + ``os.replace``, with the permissions of a plain file under the
process umask, e.g. 0644). Non-image files (``readme.txt``, ...) are copied;
``Thumbs.db`` / ``.DS_Store`` are skipped. A per-file record is appended to a JSONL journal
(``DST/.reidlab-anonymize.jsonl``) once its output is completely written, so an interrupted run
(^C, SIGKILL, a full disk) resumes without redoing finished files; at the end the journal is
finalised into ``DST/manifest.json``.

Resume trusts nothing it can check: each journaled output must still have its recorded size and
sha256, and each journaled source its recorded sha256 (``check_hashes=False``: sizes only), else the
file is redone (counted in ``manifest["resume"]`` and logged). A source that became unreadable gets
its old output removed and is listed as corrupt; a deleted source's output is removed.

Fail closed: a face source that returns an unusable box for a crop (NaN/inf, inverted, far outside
the image, wrong shape) does not get that crop skipped or the run aborted: the crop gets the head
prior box (the configured ``fail_closed`` prior, else :class:`~reidlab.faces.prior.HeadPrior`'s
default) and is listed with the rows as given (``invalid_boxes``). A full destination disk
(ENOSPC / EDQUOT) stops the run with one :class:`ExportError` naming the destination; nothing is
journaled that was not fully written, so the same command resumes after making room.

The manifest:

* ``detector``: name and parameters; ``fail_closed``: the head prior used where nothing was found;
* ``anonymizer``: :meth:`Anonymizer.settings`; ``output``: format and quality;
* ``versions``: torch, kornia, opencv, numpy, reidlab;
* ``files``: per output file its source path, source and output sha256, output ``size`` (bytes),
  the boxes used (``x1, y1, x2, y2, score``, original pixels), whether the fail-closed prior was used,
  and, only where the face source's boxes were unusable, ``invalid_boxes`` (the rows as given;
  non-finite numbers as the strings ``"nan"``, ``"inf"``, ``"-inf"``); with ``mask="segmentation"``
  also ``mask_from`` (``"segmentation"``: the face map's pixels, or ``"boxes"``: the fallback) and,
  for an unusable map, ``invalid_map`` (why); the config then has ``face_maps`` (how maps are
  resized and what replaces a missing one), and the anonymizer's settings the threshold and
  dilation;
* ``copied``: non-image files with their sha256 and size; ``corrupt``: unreadable source files
  (skipped, never silently dropped) with the reason and ``kind`` (``"image"`` or ``"other"``);
* ``counts`` (including ``invalid_boxes``), ``resume`` (what the resume check found:
  ``redone_output_mismatch``, ``redone_source_changed``, ``removed_source_deleted``,
  ``retried_unreadable``, ``kept``, ``checked_hashes``) and ``timing`` (seconds per stage).

``SRC`` is only ever read. ``DST`` may not be ``SRC``, lie inside it, or contain it (symlinks resolved).

Output format: ``"source"`` re-encodes each image in its own format (JPEG at ``quality``, default 95:
note that re-encoding a JPEG changes every pixel slightly) or ``"png"`` (lossless: every pixel outside
the face masks is bit-identical to the decoded source; the file extension becomes ``.png``, so loaders
that glob ``*.jpg`` need telling). Images are written as 3-channel RGB (grey/alpha sources are expanded).

:func:`verify_export` checks a copy against its manifest: every listed file present with its size
(where recorded) and sha256, and no image file the manifest does not list.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from reidlab.batching import batches_by_shape
from reidlab.datasets.base import IMAGE_EXTENSIONS
from reidlab.errors import ImageReadError, ReidlabError
from reidlab.hashing import file_hash

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
JOURNAL = ".reidlab-anonymize.jsonl"
SKIP_NAMES = {"thumbs.db", ".ds_store", "desktop.ini"}
FORMATS = ("source", "png")

# (absolute source paths, decoded RGB uint8 images) -> one (K, 4) or (K, 5) float array per image
FaceFn = Callable[[Sequence[str], Sequence[np.ndarray]], Sequence[np.ndarray]]
# (absolute source paths, decoded RGB uint8 images) -> one (h, w) face map (or None) per image
MapFn = Callable[[Sequence[str], Sequence[np.ndarray]], Sequence[np.ndarray | None]]


class ExportError(ReidlabError):
    """The anonymized copy cannot be written as asked (bad DST, changed settings on resume, a full
    destination disk, ...)."""


# errors of a full destination: stop with one clear message instead of a traceback
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


# ---------------------------------------------------------------- helpers


def _umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (no window in which
    another thread would create files under a different umask)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    The file gets ``mode`` (default ``0o666 & ~umask``, what ``open(path, "w")`` would give):
    ``mkstemp`` creates 0600 files, which would make a released dataset unreadable to others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_tmp(name: str) -> bool:
    """A leftover temporary file of :func:`_atomic_write` (``.NAME.XXXXXXXX.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _remove_leftover_tmp(dst: Path) -> int:
    """Remove temporary files an interrupted (killed, disk-full) run left in ``dst``."""
    n = 0
    for dirpath, _dirs, names in os.walk(dst):
        for name in names:
            if _is_tmp(name):
                Path(dirpath, name).unlink(missing_ok=True)
                n += 1
    return n


def versions() -> dict:
    import cv2
    import kornia
    import torch

    import reidlab

    return {
        "reidlab": reidlab.__version__,
        "torch": torch.__version__,
        "kornia": kornia.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def check_destination(src: str | Path, dst: str | Path) -> tuple[Path, Path]:
    """Resolved ``(src, dst)``; raise :class:`ExportError` if DST is SRC, inside it, or contains it."""
    s, d = Path(src).resolve(), Path(dst).resolve()
    if not s.is_dir():
        raise ExportError(
            f"source {src}: expected a dataset folder, found {'a file' if s.exists() else 'nothing'}"
        )
    if d == s or s in d.parents:
        raise ExportError(
            f"destination {dst} (resolved {d}) is the source folder {s} or inside it; "
            "choose a folder outside the source: the source is never modified"
        )
    if d in s.parents:
        raise ExportError(
            f"destination {dst} (resolved {d}) contains the source folder {s}; choose another folder"
        )
    return s, d


def walk_files(src: Path) -> tuple[list[str], list[str]]:
    """Relative paths (POSIX, sorted) of the image files and of the other files under ``src``."""
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower() in SKIP_NAMES or name.endswith(".tmp"):
                continue
            rel = (Path(dirpath) / name).relative_to(src).as_posix()
            if rel in (MANIFEST, JOURNAL):
                continue  # an earlier copy's bookkeeping is not data
            (images if Path(name).suffix.lower() in IMAGE_EXTENSIONS else others).append(rel)
    return images, others


def output_name(rel: str, fmt: str) -> str:
    return str(Path(rel).with_suffix(".png").as_posix()) if fmt == "png" else rel


def encode(image: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """Encode an RGB uint8 image by file extension (JPEG ``quality``; PNG lossless)."""
    import cv2

    ext = ext.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ExportError(f"OpenCV could not encode an image as {ext}")
    return buf.tobytes()


# ---------------------------------------------------------------- face sources


def detector_faces(detector) -> FaceFn:
    """A :data:`FaceFn` from a :mod:`reidlab.faces` detector (path-aware ones, the oracle, use the paths)."""
    return lambda paths, images: detector.detect_batch(list(images), list(paths))


def detector_maps(detector) -> MapFn:
    """A :data:`MapFn` from a detector that gives per-pixel face maps (reidface); another raises
    its "gives boxes only" :class:`~reidlab.faces.base.DetectorError` here, before any work."""
    if not getattr(detector, "gives_maps", False):
        detector.face_maps([])
    return lambda paths, images: detector.face_maps(list(images))


def _face_map(
    raw, height: int, width: int, threshold: float
) -> tuple[np.ndarray | None, bool, str | None]:
    """``(map, has_face, None)`` for a usable face map of one image (``has_face``: something is
    at or above ``threshold`` after the anonymizer's resize, i.e. the map, not the boxes, will be
    used), or ``(None, False, why)`` for an unusable one (the image then gets its boxes)."""
    from reidlab.anonymize.masks import segmentation_masks

    if raw is None:  # no map for this image: its boxes, nothing to report
        return None, False, None
    try:
        m = np.asarray(raw, dtype=np.float32)
        seg, _ = segmentation_masks([m], (height, width), threshold, 0)
    except (TypeError, ValueError) as e:
        return None, False, str(e)
    return m, bool(seg.any()), None


def boxes_faces(boxes: dict[str, np.ndarray]) -> FaceFn:
    """A :data:`FaceFn` from precomputed boxes ``{absolute path: (K, 4|5)}`` (missing path = no face),
    e.g. :func:`reidlab.faces.boxes_by_path` of a cached detection table or synthetic ground truth."""
    table = {os.path.realpath(k): np.asarray(v, np.float32) for k, v in boxes.items()}
    empty = np.zeros((0, 4), np.float32)
    return lambda paths, images: [table.get(os.path.realpath(p), empty) for p in paths]


def _jsonable(value):
    """``value`` (array, nested lists, numbers) as JSON-safe data: non-finite floats as strings."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else "inf" if v > 0 else "-inf")
    return repr(value)[:200]


def _face_boxes(raw, height: int, width: int) -> tuple[np.ndarray | None, object]:
    """``(boxes (K, 5) float32, None)`` for a usable answer of a face source for one image, or
    ``(None, rows as given, JSON-safe)`` for an unusable one.

    Usable: empty (no face), or shape ``(K, >=4)`` (or one ``(4,)``/``(5,)`` box) of finite numbers
    with ``x2 >= x1``, ``y2 >= y1`` and every coordinate within one image size of the image
    (``-W <= x <= 2W``, ``-H <= y <= 2H``: detectors clip their boxes to the image, so anything
    further out is a unit or overflow bug, not a face). A 4-column box gets score 1.
    """
    try:
        a = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return None, _jsonable(raw if isinstance(raw, (list, tuple)) else repr(raw))
    if a.size == 0 and a.ndim >= 1:
        return np.zeros((0, 5), np.float32), None
    if a.ndim == 1 and a.shape[0] in (4, 5):
        a = a[None]
    if a.ndim != 2 or a.shape[1] < 4:
        return None, _jsonable(a)
    a = a[:, :5]
    xs, ys = a[:, [0, 2]], a[:, [1, 3]]
    ok = (
        np.isfinite(a).all()
        and bool((a[:, 2] >= a[:, 0]).all() and (a[:, 3] >= a[:, 1]).all())
        and bool(
            ((xs >= -width) & (xs <= 2 * width)).all()
            and ((ys >= -height) & (ys <= 2 * height)).all()
        )
    )
    if not ok:
        return None, _jsonable(np.asarray(raw, dtype=np.float64))
    if a.shape[1] == 4:
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    return a.astype(np.float32), None


# ---------------------------------------------------------------- export


def _read_journal(path: Path) -> tuple[dict | None, dict[str, dict]]:
    """The journal's header and its last record per source path (later lines win)."""
    header, records = None, {}
    if not path.exists():
        return header, records
    with open(path, "rb") as f:
        for raw in f:
            line = raw.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
                if not isinstance(r, dict) or (
                    r.get("type") != "header" and not {"rel", "type"} <= r.keys()
                ):
                    raise ValueError("not a journal record")
            except ValueError:  # (a line glued onto a partial one is invalid JSON too)
                log.warning("%s: ignoring a truncated journal line (interrupted write)", path)
                continue
            if r.get("type") == "header":
                header = r
            else:
                records[r["rel"]] = r
    return header, records


def _open_journal(path: Path) -> int:
    """An append-only descriptor of the journal (unbuffered: a record is on file, whole, or not at all
    as far as this process knows; no buffer is left to flush into a full disk at close)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                last = f.read(1)
            if last != b"\n":
                # a killed or disk-full run left a partial last line: end it, so the next record does
                # not glue onto it (the partial line is ignored on reading, its file redone)
                _write_all(fd, b"\n")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a short write is followed by the real error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fingerprint(path: Path) -> dict:
    """``{"src_size", "src_sha256"}`` of a source, or ``{}`` if it cannot be read."""
    try:
        return {"src_size": path.stat().st_size, "src_sha256": file_hash(path, "sha256")}
    except OSError:
        return {}


def _source_changed(path: Path, r: dict, check_hashes: bool) -> bool:
    """Whether the source ``path`` differs from the journal record ``r`` (sha256; with
    ``check_hashes=False`` the size, when the record has it) or cannot be read any more."""
    try:
        if not check_hashes and r.get("src_size") is not None:
            with open(path, "rb") as f:  # readable at all?
                return os.fstat(f.fileno()).st_size != r["src_size"]
        return r.get("src_sha256") is None or file_hash(path, "sha256") != r["src_sha256"]
    except OSError:
        return True


def _output_intact(path: Path, r: dict, check_hashes: bool) -> bool:
    """Whether the output ``path`` still is what the journal record ``r`` says was written: its size
    (records of older versions have none: then the sha256 is checked whatever ``check_hashes``)
    and, with ``check_hashes``, its sha256."""
    try:
        size = path.stat().st_size
        if r.get("size") is not None and size != r["size"]:
            return False
        if check_hashes or r.get("size") is None:
            return file_hash(path, "sha256") == r.get("sha256")
        return True
    except OSError:
        return False


def _check_resume(
    src: Path,
    dst: Path,
    fmt: str,
    images: list[str],
    others: list[str],
    done: dict[str, dict],
    check_hashes: bool,
) -> tuple[dict[str, dict], dict, list[dict]]:
    """Which journaled files are really done: ``(kept records, counts, tombstone records to journal)``.

    A record is kept only if its source is unchanged and its output intact; otherwise the file is
    redone. Outputs of sources that no longer exist are removed (and a ``removed`` record journaled,
    so a later resume does not count them again).
    """
    stats = {
        "kept": 0,
        "redone_output_mismatch": 0,
        "redone_source_changed": 0,
        "removed_source_deleted": 0,
        "retried_unreadable": 0,
        "checked_hashes": bool(check_hashes),
    }
    present = set(images) | set(others)
    wanted = {output_name(r, fmt) for r in images} | set(others)
    kept: dict[str, dict] = {}
    tombstones = []
    for rel, r in done.items():
        if rel not in present:
            if r["type"] != "removed":
                out = r.get("out")
                if (
                    out and out not in wanted
                ):  # (never remove the output of a file that still exists)
                    (dst / out).unlink(missing_ok=True)
                stats["removed_source_deleted"] += 1
                tombstones.append({"type": "removed", "rel": rel})
        elif r["type"] == "removed":
            continue  # a source that reappeared: redo it
        elif r["type"] == "corrupt":
            if _source_changed(src / rel, r, check_hashes):
                stats["retried_unreadable"] += (
                    1  # changed, or never readable enough to fingerprint: retry
                )
            else:
                kept[rel] = r
        elif _source_changed(src / rel, r, check_hashes):
            stats["redone_source_changed"] += 1
        elif not _output_intact(dst / r["out"], r, check_hashes):
            stats["redone_output_mismatch"] += 1
        else:
            kept[rel] = r
    stats["kept"] = len(kept)
    return kept, stats, tombstones


def _output_collisions(images: list[str], fmt: str) -> None:
    seen: dict[str, str] = {}
    for rel in images:
        out = output_name(rel, fmt)
        if out in seen:
            raise ExportError(
                f"source images {seen[out]} and {rel} would both be written as {out} "
                f"(format {fmt!r}); rename one or use --format source"
            )
        seen[out] = rel


def export_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    faces: FaceFn,
    anonymizer,
    maps: MapFn | None = None,
    detector_info: dict | None = None,
    fail_closed=None,
    fmt: str = "source",
    quality: int = 95,
    batch_size: int = 64,
    dataset: str | None = None,
    progress: bool = True,
    torch_threads: int | None = 1,
    check_hashes: bool = True,
) -> dict:
    """Write an anonymized copy of ``src`` into ``dst`` and return the manifest (also written).

    Args:
        src: dataset folder (read only). dst: output folder (created; resumed if a journal exists).
        faces: face boxes per batch, see :data:`FaceFn` (:func:`detector_faces`, :func:`boxes_faces`).
            An unusable answer for an image (NaN/inf, inverted, far outside the image, wrong shape)
            gets that image the head prior box, flagged ``invalid_boxes`` in the manifest.
        anonymizer: an :class:`~reidlab.anonymize.Anonymizer` (its ``settings()`` go in the manifest).
        maps: per-pixel face maps per batch, see :data:`MapFn` (:func:`detector_maps`); required
            by an anonymizer with ``mask="segmentation"`` and not called otherwise. An image whose
            map is missing or unusable (wrong shape, larger than the image, not probabilities in
            [0, 1]), or has nothing above the threshold, gets its boxes' mask (the detected boxes,
            else the fail-closed prior where set); the manifest says per file which
            (``mask_from``) and lists unusable maps (``invalid_map``).
        detector_info: ``{"name": ..., "params": {...}}`` for the manifest.
        fail_closed: ``None`` or a :class:`reidlab.faces.prior.HeadPrior` option (float = height
            fraction): images with no face get the head prior box instead, marked ``fail_closed``.
        fmt: ``"source"`` or ``"png"``. quality: JPEG quality for ``"source"``.
        batch_size: images per anonymization batch.
        torch_threads: torch intra-op threads during the anonymization step (restored after;
            ``None`` = leave as is). Default 1: a batch of small crops is a few ms of work, and
            intra-op parallelism only adds synchronisation; on a busy machine (detector threads,
            other jobs) it made the step 20-100x slower in our measurements.
        check_hashes: on resume, check every journaled output and source by sha256 (default);
            ``False``: by size only (outputs) and size + readability (sources), much faster on a
            large dataset. Either way a mismatch is redone and counted in ``manifest["resume"]``.

    Raises:
        ExportError: DST is/inside/contains SRC, unknown format, DST holds a journal written
            with other settings, two sources map to one output name, the face source answers for
            a different number of images than asked, or the destination is full (ENOSPC/EDQUOT:
            free space and run again to resume).
    """
    from reidlab.faces.prior import HeadPrior

    if fmt not in FORMATS:
        raise ExportError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if not 0 <= int(quality) <= 100:
        raise ExportError(f"quality must be in [0, 100], got {quality}")
    if int(batch_size) < 1:
        raise ExportError(f"batch_size must be >= 1, got {batch_size}")
    src, dst = check_destination(src, dst)
    segmentation = getattr(anonymizer, "values", {}).get("mask") == "segmentation"
    if segmentation and maps is None:
        raise ExportError(
            "mask segmentation needs face maps: pass maps=detector_maps(detector) with a detector "
            "that gives them (reidface)"
        )
    prior = HeadPrior.from_option(fail_closed)
    config = {
        "source": str(src),
        "dataset": dataset,
        "detector": detector_info or {"name": "given", "params": {}},
        "fail_closed": None
        if prior is None
        else {"height": prior.height, "width": prior.width, "top": prior.top},
        "anonymizer": anonymizer.settings(),
        "output": {"format": fmt, "quality": int(quality) if fmt == "source" else None},
    }
    if segmentation:  # (only then: the configs of box-mask exports stay as they were, for resume)
        config["face_maps"] = {
            "resize": "bilinear (align_corners=False) to the image size, never shrunk",
            "fallback": "the image's boxes (detected, else the fail-closed prior) where the map "
            "is missing, unusable or has nothing above mask_threshold",
        }
    try:
        return _export(
            src,
            dst,
            config,
            faces,
            maps if segmentation else None,
            anonymizer,
            prior,
            fmt,
            quality,
            int(batch_size),
            progress,
            torch_threads,
            check_hashes,
        )
    except OSError as e:
        if e.errno not in _DISK_FULL:
            raise
        where = f" writing {e.filename}" if e.filename else ""
        raise ExportError(
            f"destination {dst} is full ({e.strerror or 'no space left on device'}{where}); "
            "every file finished so far is journaled: free space, then run the same command "
            "again to resume"
        ) from None


def _export(
    src: Path,
    dst: Path,
    config: dict,
    faces: FaceFn,
    maps: MapFn | None,
    anonymizer,
    prior,
    fmt: str,
    quality: int,
    batch_size: int,
    progress: bool,
    torch_threads: int | None,
    check_hashes: bool,
) -> dict:
    import torch
    from tqdm.auto import tqdm

    from reidlab.faces.prior import HeadPrior, head_prior_box
    from reidlab.imageio import read_rgb

    dst.mkdir(parents=True, exist_ok=True)
    jpath = dst / JOURNAL
    header, done = _read_journal(jpath)
    if header is not None and header.get("config") != config:
        raise ExportError(
            f"{dst} holds an unfinished or finished export made with other settings "
            f"({jpath}); use an empty destination folder"
        )
    images, others = walk_files(src)
    if not images:
        raise ExportError(f"source {src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    _output_collisions(images, fmt)
    if jpath.exists():
        n_tmp = _remove_leftover_tmp(dst)
        if n_tmp:
            log.info("removed %d temporary files an interrupted run left in %s", n_tmp, dst)
    n_journaled = sum(1 for r in done.values() if r["type"] != "removed")
    done, resume, tombstones = _check_resume(src, dst, fmt, images, others, done, check_hashes)
    how = "sha256" if check_hashes else "size"
    if resume["redone_output_mismatch"]:
        log.warning(
            "resuming %s: %d finished outputs are missing or no longer match the journal (by %s): "
            "redoing them",
            dst,
            resume["redone_output_mismatch"],
            how,
        )
    if resume["redone_source_changed"]:
        log.warning(
            "resuming %s: %d sources changed or became unreadable since they were exported (by %s): "
            "redoing them",
            dst,
            resume["redone_source_changed"],
            how,
        )
    if resume["removed_source_deleted"]:
        log.warning(
            "resuming %s: %d sources were deleted since they were exported: removed their outputs",
            dst,
            resume["removed_source_deleted"],
        )
    if resume["retried_unreadable"]:
        log.info(
            "resuming %s: retrying %d source files that were unreadable",
            dst,
            resume["retried_unreadable"],
        )
    # the manifest is rewritten at the end: until then there is no claim that the copy is complete
    (dst / MANIFEST).unlink(missing_ok=True)
    timing = {"decode": 0.0, "detect": 0.0, "anonymize": 0.0, "encode_write": 0.0, "hash": 0.0}
    if n_journaled:
        log.info(
            "resuming %s: %d of %d files already done (checked by %s)",
            dst,
            len(done),
            len(images) + len(others),
            how,
        )

    fd = _open_journal(jpath)
    try:

        def record(r: dict) -> None:
            _write_all(fd, (json.dumps(r) + "\n").encode())
            if r["type"] != "removed":
                done[r["rel"]] = r

        if header is None:
            _write_all(fd, (json.dumps({"type": "header", "config": config}) + "\n").encode())
        for r in tombstones:
            record(r)

        for rel in others:
            if rel in done:
                continue
            try:
                data = (src / rel).read_bytes()
            except OSError as e:
                log.warning("skipping unreadable source file %s: %s", src / rel, e)
                (dst / rel).unlink(missing_ok=True)  # a stale copy of an earlier run
                record({"type": "corrupt", "kind": "other", "rel": rel, "error": str(e)})
                continue
            _atomic_write(dst / rel, data)
            digest = hashlib.sha256(data).hexdigest()
            record(
                {
                    "type": "copy",
                    "rel": rel,
                    "out": rel,
                    "src_sha256": digest,
                    "sha256": digest,
                    "size": len(data),
                    "src_size": len(data),
                }
            )

        todo = [r for r in images if r not in done]
        bar = tqdm(
            total=len(images),
            initial=len(images) - len(todo),
            desc="anonymize",
            unit="img",
            disable=not progress,
        )
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            t = time.perf_counter()
            decoded: list[tuple[str, np.ndarray]] = []
            for rel in chunk:
                try:
                    decoded.append((rel, read_rgb(src / rel)))
                except (ImageReadError, OSError) as e:
                    log.warning("skipping unreadable source image %s: %s", src / rel, e)
                    (dst / output_name(rel, fmt)).unlink(
                        missing_ok=True
                    )  # never leave an earlier output
                    record(
                        {
                            "type": "corrupt",
                            "kind": "image",
                            "rel": rel,
                            "error": str(e),
                            **_fingerprint(src / rel),
                        }
                    )
            timing["decode"] += time.perf_counter() - t
            if not decoded:
                bar.update(len(chunk))
                continue
            t = time.perf_counter()
            paths = [str(src / r) for r, _ in decoded]
            answer = faces(paths, [im for _, im in decoded])
            try:
                answer = list(answer)
            except TypeError:
                answer = None
            if answer is None or len(answer) != len(decoded):
                got = "no list" if answer is None else f"{len(answer)} box sets"
                raise ExportError(
                    f"the face source answered {got} for {len(decoded)} images ({paths[0]}, ...): "
                    "it must return one (K, 4|5) array per image"
                )
            face_maps: list = [None] * len(decoded)
            map_used: list[bool] = [False] * len(decoded)
            map_invalid: list[str | None] = [None] * len(decoded)
            if maps is not None:
                got_maps = list(maps(paths, [im for _, im in decoded]))
                if len(got_maps) != len(decoded):
                    raise ExportError(
                        f"the face-map source answered {len(got_maps)} maps for {len(decoded)} "
                        f"images ({paths[0]}, ...): it must return one (h, w) map per image"
                    )
                thr = anonymizer.values["mask_threshold"]
                for i, ((_, im), raw) in enumerate(zip(decoded, got_maps)):
                    m, has, why = _face_map(raw, im.shape[0], im.shape[1], thr)
                    face_maps[i], map_used[i] = m, has
                    if m is None:
                        map_invalid[i] = why
                n_bad_maps = sum(1 for v in map_invalid if v is not None)
                if n_bad_maps:
                    i = next(i for i, v in enumerate(map_invalid) if v is not None)
                    log.warning(
                        "the face-map source gave unusable maps for %d of %d images (e.g. %s: %s);"
                        " they get their boxes' mask instead (invalid_map in the manifest)",
                        n_bad_maps,
                        len(decoded),
                        paths[i],
                        map_invalid[i],
                    )
            timing["detect"] += time.perf_counter() - t
            used, prior_used, detected, invalid = [], [], [], []
            for (rel, im), raw in zip(decoded, answer):
                h, w = im.shape[:2]
                b, bad = _face_boxes(raw, h, w)
                invalid.append(bad)
                if b is None:  # fail closed: the head prior, whatever fail_closed says
                    used.append(head_prior_box(h, w, prior or HeadPrior())[None])
                    prior_used.append(True)
                    detected.append(0)
                elif len(b) == 0 and prior is not None:
                    used.append(head_prior_box(h, w, prior)[None])
                    prior_used.append(True)
                    detected.append(0)
                else:
                    used.append(b)
                    prior_used.append(False)
                    detected.append(len(b))
            n_bad = sum(1 for v in invalid if v is not None)
            if n_bad:
                i = next(i for i, v in enumerate(invalid) if v is not None)
                log.warning(
                    "the face source returned unusable boxes for %d of %d images (e.g. %s: %s); "
                    "they get the head prior box instead (listed as invalid_boxes in the manifest)",
                    n_bad,
                    len(decoded),
                    paths[i],
                    json.dumps(invalid[i])[:200],
                )
            t = time.perf_counter()
            outputs: list[np.ndarray | None] = [None] * len(decoded)
            threads = torch.get_num_threads()
            if torch_threads:
                torch.set_num_threads(torch_threads)
            try:
                with torch.no_grad():
                    for idx in batches_by_shape(decoded, lambda d: d[1].shape):
                        batch = torch.from_numpy(np.stack([decoded[i][1] for i in idx])).permute(
                            0, 3, 1, 2
                        )
                        x = batch.float().div_(255.0)
                        y = anonymizer(
                            x,
                            [torch.from_numpy(used[i][:, :4]) for i in idx],
                            face_maps=None
                            if maps is None
                            else [
                                None if face_maps[i] is None else torch.from_numpy(face_maps[i])
                                for i in idx
                            ],
                        )
                        out = (
                            y.mul(255.0)
                            .round_()
                            .clamp_(0, 255)
                            .to(torch.uint8)
                            .permute(0, 2, 3, 1)
                            .numpy()
                        )
                        for j, i in enumerate(idx):
                            outputs[i] = out[j]
            finally:
                torch.set_num_threads(threads)
            timing["anonymize"] += time.perf_counter() - t
            for i, (rel, _) in enumerate(decoded):
                out_rel = output_name(rel, fmt)
                t = time.perf_counter()
                data = encode(outputs[i], Path(out_rel).suffix, quality)
                _atomic_write(dst / out_rel, data)
                t2 = time.perf_counter()
                timing["encode_write"] += t2 - t
                rec = {
                    "type": "image",
                    "rel": rel,
                    "out": out_rel,
                    **_fingerprint(src / rel),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "detected": detected[i],
                    "fail_closed": prior_used[i],
                    "boxes": np.round(used[i].astype(np.float64), 3).tolist(),
                }
                if invalid[i] is not None:
                    rec["invalid_boxes"] = invalid[i]
                if maps is not None:
                    rec["mask_from"] = "segmentation" if map_used[i] else "boxes"
                    if map_invalid[i] is not None:
                        rec["invalid_map"] = map_invalid[i]
                timing["hash"] += time.perf_counter() - t2
                record(rec)  # only now: the output is completely on disk
            bar.update(len(chunk))
        bar.close()
    finally:
        os.close(fd)

    manifest = _finalise(dst, config, images, others, done, timing, resume)
    c = manifest["counts"]
    log.info(
        "anonymized %d images into %s: %d without a detected face (%d got the fail-closed prior), "
        "%d with unusable face boxes (head prior), %d corrupt source files skipped",
        c["images_written"],
        dst,
        c["without_face"],
        c["fail_closed"],
        c["invalid_boxes"],
        c["corrupt"],
    )
    return manifest


def _finalise(
    dst: Path,
    config: dict,
    images: list[str],
    others: list[str],
    done: dict,
    timing: dict,
    resume: dict,
) -> dict:
    files, copied, corrupt = {}, {}, []
    for kind, rels in (("image", images), ("other", others)):
        for rel in rels:
            r = done[rel]
            if r["type"] == "corrupt":
                corrupt.append({"path": rel, "error": r["error"], "kind": kind})
            elif kind == "other":
                copied[r["out"]] = {
                    "sha256": r["sha256"],
                    **({"size": r["size"]} if "size" in r else {}),
                }
            else:
                files[r["out"]] = {
                    "source": rel,
                    "src_sha256": r.get("src_sha256"),
                    "sha256": r["sha256"],
                    **({"size": r["size"]} if "size" in r else {}),
                    "boxes": r["boxes"],
                    "detected": r["detected"],
                    "fail_closed": r["fail_closed"],
                    **({"invalid_boxes": r["invalid_boxes"]} if "invalid_boxes" in r else {}),
                    **{k: r[k] for k in ("mask_from", "invalid_map") if k in r},
                }
    n_face = sum(1 for f in files.values() if f["detected"] > 0)
    manifest = {
        "format_version": 1,
        "tool": "reidlab anonymize",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **config,
        "versions": versions(),
        "counts": {
            "source_images": len(images),
            "images_written": len(files),
            "with_face": n_face,
            "without_face": len(files) - n_face,
            "fail_closed": sum(1 for f in files.values() if f["fail_closed"]),
            "invalid_boxes": sum(1 for f in files.values() if "invalid_boxes" in f),
            "corrupt": len(corrupt),
            "copied": len(copied),
            **(
                {
                    "mask_from_segmentation": sum(
                        1 for f in files.values() if f.get("mask_from") == "segmentation"
                    ),
                    "invalid_map": sum(1 for f in files.values() if "invalid_map" in f),
                }
                if "face_maps" in config
                else {}
            ),
        },
        "resume": resume,
        "timing_s_this_run": {k: round(v, 3) for k, v in timing.items()},
        "files": files,
        "copied": copied,
        "corrupt": corrupt,
    }
    _atomic_write(dst / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


# ---------------------------------------------------------------- verify


def verify_export(dst: str | Path, check_hashes: bool = True) -> list[str]:
    """Problems found comparing ``dst`` with its manifest (empty list = the copy is intact).

    Checks: manifest present and readable; every listed file present, with its size where the
    manifest records it and its sha256 (``check_hashes``); the counts agree with the lists; no image
    file in ``dst`` that the manifest does not list.
    """
    dst = Path(dst)
    mpath = dst / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
        files, copied = manifest["files"], manifest["copied"]
    except (OSError, ValueError, KeyError) as e:
        return [
            f"{mpath}: cannot read the manifest ({e}); is {dst} an export written by reidlab anonymize?"
        ]
    problems = []
    for rel, entry in list(files.items()) + list(copied.items()):
        p = dst / rel
        if not p.is_file():
            problems.append(f"missing: {rel}")
            continue
        size = p.stat().st_size
        if entry.get("size") is not None and size != entry["size"]:
            problems.append(
                f"size mismatch: {rel} ({size} bytes, the manifest says {entry['size']})"
            )
        elif check_hashes and file_hash(p, "sha256") != entry["sha256"]:
            problems.append(f"checksum mismatch: {rel}")
    c = manifest.get("counts", {})
    corrupt = manifest.get("corrupt", [])
    corrupt_images = sum(1 for e in corrupt if e.get("kind", "image") == "image")
    if c.get("images_written") != len(files):
        problems.append(
            f"count mismatch: manifest counts {c.get('images_written')} images, lists {len(files)}"
        )
    if c.get("source_images") != len(files) + corrupt_images:
        problems.append(
            f"count mismatch: {c.get('source_images')} source images != {len(files)} written + "
            f"{corrupt_images} corrupt"
        )
    present, _ = walk_files(dst)
    for rel in sorted(set(present) - set(files)):
        problems.append(f"not in manifest: {rel}")
    return problems


__all__ = [
    "FORMATS",
    "JOURNAL",
    "MANIFEST",
    "ExportError",
    "FaceFn",
    "MapFn",
    "boxes_faces",
    "check_destination",
    "detector_faces",
    "detector_maps",
    "export_dataset",
    "verify_export",
    "walk_files",
]
