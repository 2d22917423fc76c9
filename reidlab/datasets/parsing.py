"""Helpers every loader shares: name parsing, layout finding, checks, relabelling.

Loaders keep *raw* person ids in every split (the number written in the file name or list),
so a query's pid can be looked up in the original dataset. Training needs contiguous class
indices: call :func:`relabel` on the train split (it maps sorted raw pids to ``0..N-1`` and
returns the mapping, which a checkpoint should store).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from reidlab.datasets.base import IMAGE_EXTENSIONS, ReIDDataset, Sample, list_images
from reidlab.errors import DatasetError, ImageReadError

log = logging.getLogger(__name__)

SPLITS = ("train", "query", "gallery")

# How many offending names an error message quotes before saying "and N more".
_QUOTE = 5

# Market-1501 / DukeMTMC-reID names: ``0002_c1s1_000451_03.jpg``, ``0001_c2_f0046182.jpg``.
# The same pattern torchreid and fast-reid use, anchored at the start of the file name.
MARKET_STYLE = re.compile(r"^([-\d]+)_c(\d)")

Parser = Callable[[str], "tuple[int, int] | None"]


def quote_names(names: Sequence[str], limit: int = _QUOTE) -> str:
    """``'a', 'b', 'c' and 7 more`` for error messages."""
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def describe_folder(path: Path, limit: int = 12) -> str:
    """What a folder holds, for error messages: ``'a/', 'b.txt'`` or ``nothing``."""
    path = Path(path)
    if not path.is_dir():
        return "nothing (no such folder)" if not path.exists() else "a file, not a folder"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return quote_names(entries, limit) if entries else "nothing (empty folder)"


def check_options(dataset: str, options: dict) -> None:
    """Raise a DatasetError naming options a loader does not take (instead of a TypeError)."""
    if options:
        raise DatasetError(
            f"{dataset}: unknown option(s) {', '.join(sorted(options))}; "
            "see `reidlab datasets` and data/README.md for each loader's options"
        )


def find_layout(
    root: str | Path, candidates: Iterable[str], required: Sequence[str], dataset: str
) -> Path:
    """Return the first ``root/<candidate>`` that holds every path in ``required``.

    ``candidates`` are sub-paths tried in order ("" is ``root`` itself). When none fits, the
    DatasetError names the folders tried, what was expected and what ``root`` holds.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{dataset}: dataset root {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"{dataset}: dataset root {root} is a file; expected a folder")
    tried = []
    for cand in candidates:
        base = root / cand if cand else root
        if all((base / r).exists() for r in required):
            return base.resolve()
        tried.append(base)
    best = max(tried, key=lambda b: sum((b / r).exists() for r in required))
    missing = [r for r in required if not (best / r).exists()]
    raise DatasetError(
        f"{dataset}: expected {', '.join(required)} under {root} "
        f"(also tried {', '.join(str(t) for t in tried[1:]) or 'no other folder'}); "
        f"{best} lacks {', '.join(missing)} and holds {describe_folder(best)}"
    )


def parse_market_style(name: str, num_cameras: int) -> tuple[int, int] | None:
    """``(pid, camid)`` of a Market-1501 / DukeMTMC-reID file name, or None if it does not parse.

    ``0002_c1s1_000451_03.jpg -> (2, 0)``: pid as written (``-1`` junk, ``0`` distractor kept),
    camera ``c1..c{num_cameras}`` made 0-based.
    """
    m = MARKET_STYLE.match(name)
    if not m:
        return None
    try:
        pid, cam = int(m.group(1)), int(m.group(2))
    except ValueError:  # e.g. "--_c1"
        return None
    if pid < -1 or not 1 <= cam <= num_cameras:
        return None
    return pid, cam - 1


def parse_names(
    files: Sequence[Path],
    parse: Parser,
    *,
    dataset: str,
    where: str,
    expected: str,
    strict: bool,
) -> tuple[list[Sample], list[str]]:
    """Parse each file name into a Sample; returns ``(samples, skipped_names)``.

    With ``strict`` an unparseable name raises a DatasetError quoting the first few offending
    names, ``where`` they are and the ``expected`` pattern; otherwise they are skipped with a
    logged warning.
    """
    samples, bad = [], []
    for f in files:
        r = parse(f.name)
        if r is None:
            bad.append(f.name)
        else:
            samples.append(Sample(str(f), int(r[0]), int(r[1])))
    if bad:
        msg = (
            f"{dataset}: {len(bad)} file name(s) in {where} do not parse: {quote_names(bad)}; "
            f"expected {expected}"
        )
        if strict:
            raise DatasetError(msg + " (pass strict=False / --no-strict to skip them)")
        log.warning("%s; skipped", msg)
    return samples, bad


def read_split_folder(
    folder: Path, parse: Parser, *, dataset: str, split: str, expected: str, strict: bool
) -> tuple[list[Sample], list[str]]:
    """All image files of one split folder, parsed; non-image files (Thumbs.db) are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"{dataset}: {split} split folder {folder} is missing; "
            f"{folder.parent} holds {describe_folder(folder.parent)}"
        )
    return parse_names(
        list_images(folder),
        parse,
        dataset=dataset,
        where=str(folder),
        expected=expected,
        strict=strict,
    )


def drop_junk(samples: list[Sample], junk_pid: int = -1) -> tuple[list[Sample], int]:
    """Remove samples whose pid is ``junk_pid``; returns ``(kept, number_dropped)``."""
    kept = [s for s in samples if s.pid != junk_pid]
    return kept, len(samples) - len(kept)


def check_files_exist(samples: Sequence[Sample], *, dataset: str, listed_in: str) -> None:
    """Raise a DatasetError naming listed image files that are not on disk."""
    missing = [s.path for s in samples if not Path(s.path).is_file()]
    if missing:
        raise DatasetError(
            f"{dataset}: {len(missing)} image file(s) listed in {listed_in} are missing: "
            f"{quote_names(missing)}"
        )


def relabel(samples: Sequence[Sample]) -> tuple[list[Sample], dict[int, int]]:
    """Map raw pids to contiguous class indices ``0..N-1`` (sorted by raw pid), for training.

    Returns the relabelled samples (same order, same paths and camids) and the mapping
    ``{raw_pid: label}``.

    >>> relabel([Sample("a", 7, 0), Sample("b", 2, 1), Sample("c", 7, 1)])[1]
    {2: 0, 7: 1}
    """
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return [s._replace(pid=mapping[s.pid]) for s in samples], mapping


def verify_image_files(
    paths: Iterable[str], *, dataset: str = "dataset", progress: bool = False
) -> None:
    """Decode every image with :func:`reidlab.imageio.read_rgb`; raise one DatasetError listing
    all unreadable / corrupt / empty files (slow: it reads every file)."""
    from tqdm.auto import tqdm

    from reidlab.imageio import read_rgb

    paths = list(dict.fromkeys(paths))
    bad: list[str] = []
    for p in tqdm(paths, desc=f"verify {dataset}", unit="img", disable=not progress):
        try:
            read_rgb(p)
        except ImageReadError as e:
            bad.append(f"{p} ({e})")
    if bad:
        raise DatasetError(
            f"{dataset}: {len(bad)} of {len(paths)} image file(s) are unreadable:\n  "
            + "\n  ".join(bad)
        )
    log.info("%s: all %d images decode", dataset, len(paths))


def finalize(
    name: str,
    root: Path,
    train: list[Sample],
    query: list[Sample],
    gallery: list[Sample],
    info: dict,
    *,
    verify_images: bool = False,
    allow_empty: Sequence[str] = (),
    where: dict[str, str] | None = None,
) -> ReIDDataset:
    """Build the ReIDDataset after the checks every loader makes.

    Raises a DatasetError for an empty split (unless named in ``allow_empty``) and, with
    ``verify_images``, for unreadable images; warns about queries without a gallery match
    (:meth:`ReIDDataset.check_query_in_gallery`).
    """
    where = where or {}
    for split, samples in zip(SPLITS, (train, query, gallery)):
        if not samples and split not in allow_empty:
            src = where.get(split)
            held = (
                f", which holds {describe_folder(Path(src))}" if src and Path(src).is_dir() else ""
            )
            raise DatasetError(
                f"{name}: the {split} split is empty"
                + (f" (from {src}{held})" if src else "")
                + f"; expected image files ({', '.join(IMAGE_EXTENSIONS)}) with parseable names"
            )
    info.setdefault("pids", "raw (as in file names / lists); use reidlab.datasets.relabel(train)")
    ds = ReIDDataset(
        name=name, root=Path(root), train=train, query=query, gallery=gallery, info=info
    )
    if verify_images:
        verify_image_files((s.path for s in train + query + gallery), dataset=name)
        info["images_verified"] = True
    ds.check_query_in_gallery()
    log.debug("%s", ds.summary())
    return ds


def load_market_style(
    name: str,
    root: str | Path,
    *,
    inner: str,
    outer: str,
    num_cameras: int,
    example: str,
    strict: bool,
    verify_images: bool,
) -> ReIDDataset:
    """Loader shared by Market-1501 and DukeMTMC-reID (same folder names, same name pattern).

    Junk images (pid -1) are dropped from every split (counted in ``info['junk_dropped']``);
    distractors (pid 0) stay in the gallery (counted in ``info['distractors']``).
    """
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    base = find_layout(root, ["", inner, outer, f"{outer}/{inner}"], list(folders.values()), name)
    expected = f"names like {example} (pid_c<camera 1-{num_cameras}>...)"
    splits, junk, skipped = {}, {}, {}
    for split, folder in folders.items():
        s, bad = read_split_folder(
            base / folder,
            lambda n: parse_market_style(n, num_cameras),
            dataset=name,
            split=split,
            expected=expected,
            strict=strict,
        )
        splits[split], junk[split] = drop_junk(s)
        skipped[split] = len(bad)
    info = {
        "layout": str(base),
        "junk_dropped": junk,
        "distractors": sum(1 for s in splits["gallery"] if s.pid == 0),
        "skipped_unparseable": skipped,
        "camids": f"c1..c{num_cameras} -> 0..{num_cameras - 1}",
    }
    return finalize(
        name,
        base,
        splits["train"],
        splits["query"],
        splits["gallery"],
        info,
        verify_images=verify_images,
        where={k: str(base / v) for k, v in folders.items()},
    )
