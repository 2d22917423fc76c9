"""The built-in synthetic re-ID dataset: procedural pedestrians in Market-1501 layout, no downloads.

:func:`generate` draws a deterministic, seeded dataset on disk::

    ROOT/bounding_box_train/0002_c1s1_000451_01.jpg   train identities (half of them)
    ROOT/query/...                                    one image per test id per camera, for up
                                                      to ``query_per_id`` cameras
    ROOT/bounding_box_test/...                        every other test image (+ pid 0 distractors)
    ROOT/face_boxes.json                              ground-truth face box of every image
    ROOT/config.json                                  every setting, the seed, the generator version

Names follow Market-1501 (``pid_c<cam>s1_<frame>_01.jpg``, cameras ``c1..cN``), so the Market
loader's conventions apply: :func:`load` returns raw pids, 0-based camids, pid 0 distractors in
the gallery. Train and test identities are disjoint.

**Identity.** Each identity has a body (top and bottom colours, a top pattern: plain / stripes /
checks, shoe colour, sometimes a backpack or shoulder bag, build) and a head (skin tone, hair colour
and style, face shape, eye spacing / height / size, brow gap, nose length, mouth position and
width, iris and lip colour, and a base face size that stands for body height: the crop always spans
the person, so a tall person has a small head in it).

**The identity knob, ``uniform_fraction``.** ``round(uniform_fraction * num_ids)`` identities,
picked by the seed, wear one of ``num_uniforms`` uniforms (assigned round-robin, so the groups are
as equal as possible; the uniform wearers are spread over train and test by the same random
pick). A uniform fixes *all* clothing: top colour, pattern (and its colour and period), bottom,
shoes and bag. Two people in the same uniform differ only in the head (face, skin, hair) and in
face size / build. The other identities draw their own clothes independently (they may still
collide by chance: a few dozen colours are distinguishable at 128x64).

* ``uniform_fraction = 0``: clothing identifies almost everyone; faces barely matter.
* ``uniform_fraction -> 1``: most people are one of a few uniforms; only the head (face, hair)
  and build tell them apart: faces matter, and face anonymization should hurt re-ID.

**Cameras** differ in gain, colour cast, blur, noise, framing (face size, head position) and a
textured background (bricks / shop fronts / plain wall over a tiled floor). **Views**: each image
is ``front``, ``side`` (a 3/4 profile: features shifted and foreshortened, the far eye dimmed,
hair over the back of the head) or ``back`` (hair only, no face box), with probabilities
``1 - side_fraction - back_fraction``, ``side_fraction``, ``back_fraction``. Per image: position
and size jitter, stride and arm swing, brightness jitter, sensor noise, JPEG.

**Face boxes** are the tight box of the visible face skin (hair excluded, alpha >= 0.5 on the
supersampled canvas, so accurate to ``1/supersample`` px) in output pixels ``x1, y1, x2, y2``
(``x2``/``y2`` exclusive edges). Faces are shaded analytic fields (see ``synthetic_render``),
which CenterFace detects (recall by view and size: data/synthetic.md).

Determinism: every image has its own random stream, seeded from ``(seed, pid, camera, index)``,
so the same settings give the same bytes for every file (OpenCV's JPEG encoder, fixed quality,
baseline, no optimisation), on any machine with the same OpenCV/libjpeg.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from reidlab.datasets.base import ReIDDataset
from reidlab.errors import DatasetError

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
FACE_BOXES = "face_boxes.json"
CONFIG = "config.json"

#: Every setting of :func:`generate` with its default (``ensure_synthetic`` hashes these).
DEFAULTS: dict = {
    "num_ids": 100,
    "seed": 0,
    "size": (128, 64),
    "num_cameras": 6,
    "cameras_per_id": (2, 6),
    "images_per_id_per_camera": (2, 5),
    "query_per_id": 2,
    "uniform_fraction": 0.5,
    "num_uniforms": 3,
    "side_fraction": 0.3,
    "back_fraction": 0.3,
    "face_height": (10.0, 24.0),
    "num_distractors": 0,
    "jpeg_quality": 95,
    "supersample": 2,
}


def _pair(x, name: str, lo: float, hi: float, integer: bool = True) -> tuple:
    """Validate an int (or float) or a ``(min, max)`` pair within ``[lo, hi]``."""
    t = tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    if len(t) != 2 or not all(isinstance(v, (int, float)) for v in t):
        raise DatasetError(f"synthetic: {name} must be a number or a (min, max) pair, got {x!r}")
    t = tuple(int(v) for v in t) if integer else tuple(float(v) for v in t)
    if not (lo <= t[0] <= t[1] <= hi):
        raise DatasetError(f"synthetic: {name}={x!r} must satisfy {lo} <= min <= max <= {hi}")
    return t


def normalize_config(**settings) -> dict:
    """Defaults updated by ``settings``, validated and normalised (JSON-ready: lists)."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise DatasetError(
            f"synthetic: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(DEFAULTS)}"
        )
    c = {**DEFAULTS, **settings}
    if not 2 <= int(c["num_ids"]) <= 9999:
        raise DatasetError(f"synthetic: num_ids must be in 2..9999, got {c['num_ids']}")
    if not 1 <= int(c["num_cameras"]) <= 9:
        raise DatasetError(
            "synthetic: num_cameras must be in 1..9 (Market names hold one digit), "
            f"got {c['num_cameras']}"
        )
    nc = int(c["num_cameras"])
    if "cameras_per_id" not in settings:
        c["cameras_per_id"] = (min(2, nc), nc)
    c["cameras_per_id"] = _pair(c["cameras_per_id"], "cameras_per_id", 1, nc)
    c["images_per_id_per_camera"] = _pair(
        c["images_per_id_per_camera"], "images_per_id_per_camera", 1, 1000
    )
    c["face_height"] = _pair(c["face_height"], "face_height", 4, 64, integer=False)
    size = c["size"]
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, int) and 32 <= v <= 1024 for v in size)
    ):
        raise DatasetError(f"synthetic: size must be (H, W) ints in 32..1024, got {size!r}")
    for k in ("uniform_fraction", "side_fraction", "back_fraction"):
        if not 0.0 <= float(c[k]) <= 1.0:
            raise DatasetError(f"synthetic: {k} must be in [0, 1], got {c[k]}")
    if float(c["side_fraction"]) + float(c["back_fraction"]) > 1.0:
        raise DatasetError("synthetic: side_fraction + back_fraction must be <= 1")
    if int(c["num_uniforms"]) < 1 or int(c["query_per_id"]) < 0 or int(c["num_distractors"]) < 0:
        raise DatasetError(
            "synthetic: need num_uniforms >= 1, query_per_id >= 0 and num_distractors >= 0"
        )
    if not 50 <= int(c["jpeg_quality"]) <= 100 or not 1 <= int(c["supersample"]) <= 8:
        raise DatasetError("synthetic: need 50 <= jpeg_quality <= 100 and 1 <= supersample <= 8")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.items()}
    out["size"] = list(size)
    for k in (
        "num_ids",
        "seed",
        "num_cameras",
        "query_per_id",
        "num_uniforms",
        "num_distractors",
        "jpeg_quality",
        "supersample",
    ):
        out[k] = int(c[k])
    for k in ("uniform_fraction", "side_fraction", "back_fraction"):
        out[k] = float(c[k])
    return out


def config_hash(config: dict) -> str:
    """Short hash of a normalised config plus the generator version (names the cache folder)."""
    blob = json.dumps({**config, "generator_version": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def generate(
    root: str | Path,
    num_ids: int = 100,
    seed: int = 0,
    size: tuple[int, int] = (128, 64),
    num_cameras: int = 6,
    *,
    overwrite: bool = False,
    progress: bool = False,
    **settings,
) -> Path:
    """Draw a synthetic dataset into ``root`` (created; must be empty unless ``overwrite``).

    Args:
        root: output folder.
        num_ids: identities (2..9999); train gets ``ceil(num_ids / 2)``, test the rest.
        seed: the one seed every random choice derives from.
        size: output crop ``(H, W)``; sizes are defined at 128 px height and scale with ``H``.
        num_cameras: cameras (1..9).
        overwrite: allow a non-empty ``root`` (its split folders and sidecars are replaced).
        progress: show a tqdm bar.
        **settings: the other keys of :data:`DEFAULTS`:
            ``cameras_per_id`` (min, max) cameras each identity appears in (default (2, N));
            ``images_per_id_per_camera`` int or (min, max), default (2, 5);
            ``query_per_id`` test cameras giving one query image each (default 2);
            ``uniform_fraction`` (0..1, default 0.5) and ``num_uniforms`` (default 3): the identity
            knob, see the module docstring;
            ``side_fraction``, ``back_fraction`` view probabilities (default 0.3 each);
            ``face_height`` (min, max) face height in px at 128 px crop height (default (10, 24));
            ``num_distractors`` pid 0 gallery images (default 0);
            ``jpeg_quality`` (default 95); ``supersample`` canvas factor (default 2).

    Returns:
        ``root`` as a Path.

    Raises:
        DatasetError: a bad setting, or ``root`` is a non-empty folder and ``overwrite`` is False.
    """
    cfg = normalize_config(
        num_ids=num_ids, seed=seed, size=size, num_cameras=num_cameras, **settings
    )
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"synthetic: output root {root} is a file; expected a folder")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DatasetError(
                f"synthetic: output folder {root} is not empty; pass overwrite=True "
                "or choose an empty folder"
            )
        for name in list(SPLIT_FOLDERS.values()):
            shutil.rmtree(root / name, ignore_errors=True)
    for name in SPLIT_FOLDERS.values():
        (root / name).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = _draw(root, cfg, progress)
    counts = {split: sum(1 for r in records if r["split"] == split) for split in SPLIT_FOLDERS}
    keys = ("path", "pid", "camid", "view", "uniform", "face_height", "box")
    side = {
        "generator_version": GENERATOR_VERSION,
        "box_format": "x1, y1, x2, y2 in output pixels (x2/y2 exclusive edges); null = no face",
        "images": [{k: r[k] for k in keys} for r in records],
    }
    (root / FACE_BOXES).write_text(json.dumps(side, indent=0))
    meta = {
        **cfg,
        "generator_version": GENERATOR_VERSION,
        "config_hash": config_hash(cfg),
        "counts": counts,
    }
    (root / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
    log.info(
        "synthetic: %d images (%s) in %.1f s at %s",
        len(records),
        counts,
        time.perf_counter() - t0,
        root,
    )
    return root


def _draw(root: Path, cfg: dict, progress: bool) -> list[dict]:
    """Render and write every image; returns one record per image (see ``face_boxes.json``)."""
    import cv2
    from tqdm.auto import tqdm

    from reidlab.datasets import synthetic_render as R

    seed, n, nc = cfg["seed"], cfg["num_ids"], cfg["num_cameras"]
    size, ss = tuple(cfg["size"]), cfg["supersample"]
    fr = tuple(cfg["face_height"])
    pids = np.arange(1, n + 1)
    perm = _rng(seed, 1).permutation(pids)
    train_ids = set(perm[: math.ceil(n / 2)].tolist())
    # the identity knob: who wears which uniform
    n_uni = round(cfg["uniform_fraction"] * n)
    wearers = _rng(seed, 2).permutation(pids)[:n_uni].tolist()
    uniforms = [R.sample_clothes(_rng(seed, 2, u)) for u in range(cfg["num_uniforms"])]
    uniform_of = {pid: i % cfg["num_uniforms"] for i, pid in enumerate(wearers)}
    cams = [R.sample_camera(_rng(seed, 4, c), c, size, ss) for c in range(nc)]
    views = R.VIEWS
    p_views = [
        1 - cfg["side_fraction"] - cfg["back_fraction"],
        cfg["side_fraction"],
        cfg["back_fraction"],
    ]
    enc = [
        int(cv2.IMWRITE_JPEG_QUALITY),
        cfg["jpeg_quality"],
        int(cv2.IMWRITE_JPEG_OPTIMIZE),
        0,
        int(cv2.IMWRITE_JPEG_PROGRESSIVE),
        0,
    ]
    frame = [0] * nc
    records: list[dict] = []

    def identity(pid: int, r: np.random.Generator) -> R.Identity:
        face = R.sample_face(r)
        clothes = R.sample_clothes(r)
        u = uniform_of.get(pid, -1) if pid else -1
        if u >= 0:
            clothes = uniforms[u]
        fh = float(np.exp(r.uniform(np.log(fr[0]), np.log(fr[1]))))
        return R.Identity(
            pid=pid,
            face=face,
            face_height=fh,
            build=float(r.uniform(0.85, 1.15)),
            uniform=u,
            **clothes,
        )

    def shoot(ident: R.Identity, c: int, r: np.random.Generator, split: str) -> None:
        view = views[int(r.choice(3, p=p_views))]
        img, box, fh = R.render_person(ident, cams[c], view, r, size, ss, fr)
        img = R.finish(img, cams[c], r)
        frame[c] += 1
        name = f"{ident.pid:04d}_c{c + 1}s1_{25 * frame[c]:06d}_01.jpg"
        rel = f"{SPLIT_FOLDERS[split]}/{name}"
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), enc)
        if not ok:
            raise DatasetError(f"synthetic: OpenCV failed to encode {rel}")
        (root / rel).write_bytes(buf.tobytes())
        if box is not None:
            h, w = size
            box = [
                round(min(max(box[0], 0.0), w), 3),
                round(min(max(box[1], 0.0), h), 3),
                round(min(max(box[2], 0.0), w), 3),
                round(min(max(box[3], 0.0), h), 3),
            ]
        records.append(
            {
                "path": rel,
                "pid": ident.pid,
                "camid": c,
                "view": view,
                "uniform": ident.uniform,
                "face_height": round(fh, 3),
                "box": box,
                "split": split,
            }
        )

    for pid in tqdm(pids.tolist(), desc="synthetic ids", disable=not progress):
        ident = identity(pid, _rng(seed, 3, pid))
        r = _rng(seed, 5, pid)
        k = int(r.integers(cfg["cameras_per_id"][0], cfg["cameras_per_id"][1] + 1))
        id_cams = sorted(r.choice(nc, size=k, replace=False).tolist())
        counts = {
            c: int(
                r.integers(
                    cfg["images_per_id_per_camera"][0], cfg["images_per_id_per_camera"][1] + 1
                )
            )
            for c in id_cams
        }
        query_at: dict[int, int] = {}
        if pid not in train_ids and cfg["query_per_id"] > 0:
            # queries only from cameras that keep a gallery image, like Market's
            ok = [c for c in id_cams if counts[c] >= 2] or id_cams[:1]
            qc = r.choice(len(ok), size=min(cfg["query_per_id"], len(ok)), replace=False)
            query_at = {ok[i]: int(r.integers(counts[ok[i]])) for i in sorted(qc.tolist())}
        for c in id_cams:
            for j in range(counts[c]):
                split = (
                    "train" if pid in train_ids else "query" if query_at.get(c) == j else "gallery"
                )
                shoot(ident, c, _rng(seed, 6, pid, c, j), split)
    for d in range(cfg["num_distractors"]):
        r = _rng(seed, 8, d)
        ident = identity(0, r)
        shoot(ident, int(r.integers(nc)), r, "gallery")
    return records


# ----------------------------------------------------------------------------- cache


def default_root(config: dict) -> Path:
    """``<data>/synthetic/<hash>``: ``<data>`` is :func:`reidlab.paths.data_dir` (``$REIDLAB_DATA``,
    the checkout's ``data/``, or the user data folder)."""
    from reidlab.paths import data_dir

    return data_dir() / "synthetic" / config_hash(config)


def read_config(root: str | Path) -> dict | None:
    """The ``config.json`` of a generated dataset, or None if absent/unreadable."""
    p = Path(root) / CONFIG
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def ensure_synthetic(root: str | Path | None = None, *, progress: bool = False, **config) -> Path:
    """Return a synthetic dataset folder for ``config``, generating it only if needed.

    ``root`` defaults to :func:`default_root` (a folder named by the config's hash). The dataset
    is regenerated when ``root`` lacks it or holds one made with other settings (or another
    generator version). Generation writes into a temporary sibling folder and renames it into
    place, so an interrupted run never leaves a half dataset at ``root``.
    """
    cfg = normalize_config(**config)
    root = Path(root) if root is not None else default_root(cfg)
    have = read_config(root)
    want_hash = config_hash(cfg)
    if (
        have
        and have.get("config_hash") == want_hash
        and have.get("generator_version") == GENERATOR_VERSION
        and (root / FACE_BOXES).is_file()
    ):
        log.debug("synthetic: reusing %s", root)
        return root
    if root.exists() and not root.is_dir():
        raise DatasetError(f"synthetic: {root} is a file; expected a dataset folder")
    if root.exists() and any(root.iterdir()) and have is None:
        raise DatasetError(
            f"synthetic: {root} holds files but no {CONFIG}; refusing to replace "
            "a folder that is not a synthetic dataset"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        generate(tmp, progress=progress, **cfg)
        if root.exists():  # an older config: swap it out, then delete it
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            root.rename(old / "dataset")
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                tmp.rename(root)
            except OSError:
                # another process finished the same folder first (rename onto a non-empty
                # folder fails): keep theirs if it holds this config
                theirs = read_config(root)
                if not theirs or theirs.get("config_hash") != want_hash:
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic: dataset %s ready at %s", want_hash, root)
    return root


# ----------------------------------------------------------------------------- loading


def load(
    root: str | Path,
    *,
    distractors: bool = True,
    strict: bool = True,
    verify_images: bool = False,
    **options,
) -> ReIDDataset:
    """Load a generated synthetic dataset (Market-1501 naming; pids raw, camids 0-based).

    Args:
        root: a folder written by :func:`generate` / :func:`ensure_synthetic`.
        distractors: keep pid 0 gallery images (if any were generated).
        strict, verify_images: as for the Market-1501 loader.

    ``info`` adds ``face_boxes`` (path of the sidecar, read it with :func:`load_face_boxes`),
    ``config`` (the generation settings) and ``generator_version``.
    """
    from reidlab.datasets.parsing import check_options, load_market_style

    check_options("synthetic", options)
    cfg = read_config(root)
    if cfg is None:
        raise DatasetError(
            f"synthetic: {Path(root) / CONFIG} is missing or unreadable; expected "
            "a folder written by reidlab.datasets.synthetic.generate "
            "(or `reidlab synthetic ROOT`)"
        )
    ds = load_market_style(
        "synthetic",
        root,
        inner="",
        outer="",
        num_cameras=cfg["num_cameras"],
        example="0002_c1s1_000451_01.jpg",
        strict=strict,
        verify_images=verify_images,
    )
    if not distractors:
        ds.gallery = [s for s in ds.gallery if s.pid != 0]
        ds.info["distractors"] = 0
    ds.info.update(
        face_boxes=str(Path(ds.root) / FACE_BOXES),
        config=cfg,
        generator_version=cfg.get("generator_version"),
    )
    return ds


def read_face_records(root: str | Path) -> list[dict]:
    """The records of ``face_boxes.json``, one per image.

    Keys: ``path`` (relative to root), ``pid``, ``camid`` (0-based), ``view``, ``uniform`` (uniform
    group, -1 = own clothes), ``face_height`` (face ellipse height, px) and ``box``
    (``[x1, y1, x2, y2]`` or None).
    """
    p = Path(root) / FACE_BOXES
    try:
        return json.loads(p.read_text())["images"]
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(
            f"synthetic: cannot read face boxes from {p}: {e}; expected the "
            "sidecar written by generate()"
        ) from e


def load_face_boxes(root: str | Path) -> dict[str, np.ndarray]:
    """Ground-truth face boxes: ``{absolute image path: (K, 4) float32 x1, y1, x2, y2}``.

    ``K`` is 1 for front and side views and 0 (shape ``(0, 4)``) for back views. Paths are
    resolved like the loader's ``Sample.path``.
    """
    base = Path(root).resolve()
    out = {}
    for r in read_face_records(root):
        box = r["box"]
        out[str(base / r["path"])] = (
            np.asarray([box], np.float32) if box is not None else np.zeros((0, 4), np.float32)
        )
    return out
