"""Write an anonymized copy of a dataset folder, with a manifest, and verify such a copy.

:func:`export_dataset` walks every image file under ``SRC`` (dataset-agnostic: the relative paths,
folder layout and file names are kept, so torchreid / fast-reid read the copy unchanged), detects
faces, anonymizes them in batches with :class:`~reidlab.anonymize.Anonymizer`, and writes each
output atomically (temporary file + ``os.replace``). Non-image files (``readme.txt``, ...) are copied;
``Thumbs.db`` / ``.DS_Store`` are skipped. A per-file record is appended to a JSONL journal
(``DST/.reidlab-anonymize.jsonl``) as each file is finished, so an interrupted run resumes without
redoing finished files; at the end the journal is finalised into ``DST/manifest.json``:

* ``detector``: name and parameters; ``fail_closed``: the head prior used where nothing was found;
* ``anonymizer``: :meth:`Anonymizer.settings`; ``output``: format and quality;
* ``versions``: torch, kornia, opencv, numpy, reidlab;
* ``files``: per output file its source path, source and output sha256, the boxes used
  (``x1, y1, x2, y2, score``, original pixels) and whether the fail-closed prior was used;
* ``copied``: non-image files with their sha256; ``corrupt``: unreadable source images (skipped,
  never silently dropped) with the reason; ``counts`` and ``timing`` (seconds per stage).

``SRC`` is only ever read. ``DST`` may not be ``SRC``, lie inside it, or contain it (symlinks resolved).

Output format: ``"source"`` re-encodes each image in its own format (JPEG at ``quality``, default 95:
note that re-encoding a JPEG changes every pixel slightly) or ``"png"`` (lossless: every pixel outside
the face masks is bit-identical to the decoded source; the file extension becomes ``.png``, so loaders
that glob ``*.jpg`` need telling). Images are written as 3-channel RGB (grey/alpha sources are expanded).

:func:`verify_export` checks a copy against its manifest: every listed file present with its sha256,
and no image file the manifest does not list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from reidlab.datasets.base import IMAGE_EXTENSIONS
from reidlab.errors import ImageReadError, ReidlabError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
JOURNAL = ".reidlab-anonymize.jsonl"
SKIP_NAMES = {"thumbs.db", ".ds_store", "desktop.ini"}
FORMATS = ("source", "png")

# (absolute source paths, decoded RGB uint8 images) -> one (K, 4) or (K, 5) float array per image
FaceFn = Callable[[Sequence[str], Sequence[np.ndarray]], Sequence[np.ndarray]]


class ExportError(ReidlabError):
    """The anonymized copy cannot be written as asked (bad DST, changed settings on resume, ...)."""


# ---------------------------------------------------------------- helpers


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict:
    import cv2
    import kornia
    import torch

    import reidlab

    return {"reidlab": reidlab.__version__, "torch": torch.__version__, "kornia": kornia.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__}


def check_destination(src: str | Path, dst: str | Path) -> tuple[Path, Path]:
    """Resolved ``(src, dst)``; raise :class:`ExportError` if DST is SRC, inside it, or contains it."""
    s, d = Path(src).resolve(), Path(dst).resolve()
    if not s.is_dir():
        raise ExportError(f"source {src}: expected a dataset folder, found {'a file' if s.exists() else 'nothing'}")
    if d == s or s in d.parents:
        raise ExportError(f"destination {dst} (resolved {d}) is the source folder {s} or inside it; "
                          "choose a folder outside the source: the source is never modified")
    if d in s.parents:
        raise ExportError(f"destination {dst} (resolved {d}) contains the source folder {s}; choose another folder")
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
    """A :data:`FaceFn` from a :mod:`reidlab.faces` detector (the oracle answers by path)."""
    if getattr(detector, "name", "") == "oracle":
        return lambda paths, images: detector.detect_paths(list(paths))
    return lambda paths, images: detector.detect_batch(list(images))


def boxes_faces(boxes: dict[str, np.ndarray]) -> FaceFn:
    """A :data:`FaceFn` from precomputed boxes ``{absolute path: (K, 4|5)}`` (missing path = no face),
    e.g. :func:`reidlab.faces.boxes_by_path` of a cached detection table or synthetic ground truth."""
    table = {os.path.realpath(k): np.asarray(v, np.float32) for k, v in boxes.items()}
    empty = np.zeros((0, 4), np.float32)
    return lambda paths, images: [table.get(os.path.realpath(p), empty) for p in paths]


def _with_scores(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float32).reshape(-1, np.asarray(b).shape[-1] if np.asarray(b).size else 4)
    if b.shape[1] == 4:
        b = np.concatenate([b, np.ones((len(b), 1), np.float32)], axis=1)
    return b[:, :5]


# ---------------------------------------------------------------- export


def _read_journal(path: Path) -> tuple[dict | None, dict[str, dict]]:
    header, records = None, {}
    if not path.exists():
        return header, records
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                log.warning("%s: ignoring a truncated journal line (interrupted write)", path)
                continue
            if r.get("type") == "header":
                header = r
            else:
                records[r["rel"]] = r
    return header, records


def export_dataset(
    src: str | Path,
    dst: str | Path,
    *,
    faces: FaceFn,
    anonymizer,
    detector_info: dict | None = None,
    fail_closed=None,
    fmt: str = "source",
    quality: int = 95,
    batch_size: int = 64,
    dataset: str | None = None,
    progress: bool = True,
    torch_threads: int | None = 1,
) -> dict:
    """Write an anonymized copy of ``src`` into ``dst`` and return the manifest (also written).

    Args:
        src: dataset folder (read only). dst: output folder (created; resumed if a journal exists).
        faces: face boxes per batch, see :data:`FaceFn` (:func:`detector_faces`, :func:`boxes_faces`).
        anonymizer: an :class:`~reidlab.anonymize.Anonymizer` (its ``settings()`` go in the manifest).
        detector_info: ``{"name": ..., "params": {...}}`` for the manifest.
        fail_closed: ``None`` or a :class:`reidlab.faces.prior.HeadPrior` option (float = height
            fraction): images with no face get the head prior box instead, marked ``fail_closed``.
        fmt: ``"source"`` or ``"png"``. quality: JPEG quality for ``"source"``.
        batch_size: images per anonymization batch.
        torch_threads: torch intra-op threads during the anonymization step (restored after;
            ``None`` = leave as is). Default 1: a batch of small crops is a few ms of work, and
            intra-op parallelism only adds synchronisation; on a busy machine (detector threads,
            other jobs) it made the step 20-100x slower in our measurements.

    Raises:
        ExportError: DST is/inside/contains SRC, unknown format, or DST holds a journal written
            with other settings.
    """
    import torch
    from tqdm.auto import tqdm

    from reidlab.faces.prior import HeadPrior, head_prior_box
    from reidlab.imageio import read_rgb

    if fmt not in FORMATS:
        raise ExportError(f"format: expected one of {FORMATS}, got {fmt!r}")
    if not 0 <= int(quality) <= 100:
        raise ExportError(f"quality must be in [0, 100], got {quality}")
    src, dst = check_destination(src, dst)
    prior = HeadPrior.from_option(fail_closed)
    config = {
        "source": str(src),
        "dataset": dataset,
        "detector": detector_info or {"name": "given", "params": {}},
        "fail_closed": None if prior is None else {"height": prior.height, "width": prior.width, "top": prior.top},
        "anonymizer": anonymizer.settings(),
        "output": {"format": fmt, "quality": int(quality) if fmt == "source" else None},
    }
    dst.mkdir(parents=True, exist_ok=True)
    jpath = dst / JOURNAL
    header, done = _read_journal(jpath)
    if header is not None and header["config"] != config:
        raise ExportError(f"{dst} holds an unfinished or finished export made with other settings "
                          f"({jpath}); use an empty destination folder")
    done = {rel: r for rel, r in done.items()
            if r["type"] == "corrupt" or (dst / r["out"]).exists()}
    images, others = walk_files(src)
    if not images:
        raise ExportError(f"source {src}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    timing = {"decode": 0.0, "detect": 0.0, "anonymize": 0.0, "encode_write": 0.0, "hash": 0.0}
    skipped = sum(1 for r in images + others if r in done)
    if skipped:
        log.info("resuming %s: %d of %d files already done", dst, skipped, len(images) + len(others))

    with open(jpath, "a") as journal:
        if header is None:
            journal.write(json.dumps({"type": "header", "config": config}) + "\n")
            journal.flush()

        def record(r: dict) -> None:
            journal.write(json.dumps(r) + "\n")
            journal.flush()
            done[r["rel"]] = r

        for rel in others:
            if rel in done:
                continue
            data = (src / rel).read_bytes()
            _atomic_write(dst / rel, data)
            digest = hashlib.sha256(data).hexdigest()
            record({"type": "copy", "rel": rel, "out": rel, "src_sha256": digest, "sha256": digest})

        todo = [r for r in images if r not in done]
        bar = tqdm(total=len(images), initial=len(images) - len(todo), desc="anonymize", unit="img",
                   disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            t = time.perf_counter()
            decoded: list[tuple[str, np.ndarray]] = []
            for rel in chunk:
                try:
                    decoded.append((rel, read_rgb(src / rel)))
                except (ImageReadError, OSError) as e:
                    log.warning("skipping unreadable source image %s: %s", src / rel, e)
                    record({"type": "corrupt", "rel": rel, "error": str(e)})
            timing["decode"] += time.perf_counter() - t
            if not decoded:
                bar.update(len(chunk))
                continue
            t = time.perf_counter()
            found = [_with_scores(b) for b in faces([str(src / r) for r, _ in decoded], [im for _, im in decoded])]
            timing["detect"] += time.perf_counter() - t
            used, prior_used = [], []
            for (_, im), b in zip(decoded, found):
                if len(b) == 0 and prior is not None:
                    used.append(head_prior_box(im.shape[0], im.shape[1], prior)[None])
                    prior_used.append(True)
                else:
                    used.append(b)
                    prior_used.append(False)
            t = time.perf_counter()
            outputs: list[np.ndarray | None] = [None] * len(decoded)
            by_shape: dict[tuple, list[int]] = {}
            for i, (_, im) in enumerate(decoded):
                by_shape.setdefault(im.shape, []).append(i)
            threads = torch.get_num_threads()
            if torch_threads:
                torch.set_num_threads(torch_threads)
            try:
                with torch.no_grad():
                    for idx in by_shape.values():
                        batch = torch.from_numpy(np.stack([decoded[i][1] for i in idx])).permute(0, 3, 1, 2)
                        x = batch.float().div_(255.0)
                        y = anonymizer(x, [torch.from_numpy(used[i][:, :4]) for i in idx])
                        out = y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
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
                rec = {"type": "image", "rel": rel, "out": out_rel, "src_sha256": sha256_file(src / rel),
                       "sha256": hashlib.sha256(data).hexdigest(), "detected": len(found[i]),
                       "fail_closed": prior_used[i], "boxes": np.round(used[i].astype(np.float64), 3).tolist()}
                timing["hash"] += time.perf_counter() - t2
                record(rec)
            bar.update(len(chunk))
        bar.close()

    manifest = _finalise(dst, config, images, others, done, timing)
    c = manifest["counts"]
    log.info("anonymized %d images into %s: %d without a detected face (%d got the fail-closed prior), "
             "%d corrupt source files skipped", c["images_written"], dst, c["without_face"], c["fail_closed"],
             c["corrupt"])
    return manifest


def _finalise(dst: Path, config: dict, images: list[str], others: list[str], done: dict, timing: dict) -> dict:
    files, copied, corrupt = {}, {}, []
    for rel in images:
        r = done[rel]
        if r["type"] == "corrupt":
            corrupt.append({"path": rel, "error": r["error"]})
        else:
            files[r["out"]] = {"source": rel, "src_sha256": r["src_sha256"], "sha256": r["sha256"],
                               "boxes": r["boxes"], "detected": r["detected"], "fail_closed": r["fail_closed"]}
    for rel in others:
        r = done[rel]
        copied[r["out"]] = {"sha256": r["sha256"]}
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
            "corrupt": len(corrupt),
            "copied": len(copied),
        },
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

    Checks: manifest present and readable; every listed file present with its sha256; the counts
    agree with the lists; no image file in ``dst`` that the manifest does not list.
    """
    dst = Path(dst)
    mpath = dst / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
        files, copied = manifest["files"], manifest["copied"]
    except (OSError, ValueError, KeyError) as e:
        return [f"{mpath}: cannot read the manifest ({e}); is {dst} an export written by reidlab anonymize?"]
    problems = []
    for rel, entry in list(files.items()) + list(copied.items()):
        p = dst / rel
        if not p.is_file():
            problems.append(f"missing: {rel}")
        elif check_hashes and sha256_file(p) != entry["sha256"]:
            problems.append(f"checksum mismatch: {rel}")
    c = manifest.get("counts", {})
    if c.get("images_written") != len(files):
        problems.append(f"count mismatch: manifest counts {c.get('images_written')} images, lists {len(files)}")
    if c.get("source_images") != len(files) + len(manifest.get("corrupt", [])):
        problems.append(f"count mismatch: {c.get('source_images')} source images != {len(files)} written + "
                        f"{len(manifest.get('corrupt', []))} corrupt")
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
    "boxes_faces",
    "check_destination",
    "detector_faces",
    "export_dataset",
    "sha256_file",
    "verify_export",
    "walk_files",
]
