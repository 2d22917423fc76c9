"""Your own re-ID data, in one of two forms.

**Folders** (``ROOT`` is a folder)::

    ROOT/train/    0001_0_anything.jpg ...   (optional: without it, train is empty)
    ROOT/query/    <pid>_<cam>[_<anything>].<jpg|jpeg|png|bmp>
    ROOT/gallery/  ...

``pid`` and ``cam`` are integers; ``cam`` is taken as written and must already be 0-based
(``0003_0_x.jpg`` is camera 0). pid ``-1`` marks junk and is dropped (as in Market-1501);
other pids are kept raw. Non-image files are ignored.

**CSV** with columns ``path,pid,camid`` (paths relative to the CSV file's folder, or absolute;
camid 0-based), either

* one file with an extra ``split`` column (``train``/``query``/``gallery``): pass the ``.csv``
  file itself as ``ROOT``; or
* one file per split, ``ROOT/{train,query,gallery}.csv`` (``train.csv`` optional).

A folder holding ``query.csv`` is read as CSV, otherwise as folders.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from reidlab.datasets.base import ReIDDataset, Sample
from reidlab.datasets.parsing import (
    SPLITS,
    check_files_exist,
    check_options,
    describe_folder,
    drop_junk,
    finalize,
    quote_names,
    read_split_folder,
)
from reidlab.errors import DatasetError

log = logging.getLogger(__name__)

NAME = re.compile(r"^(-?\d+)_(\d+)(?:_|\.)")
COLUMNS = ("path", "pid", "camid")


def _parse(name: str) -> tuple[int, int] | None:
    m = NAME.match(name)
    return (int(m.group(1)), int(m.group(2))) if m and int(m.group(1)) >= -1 else None


def read_csv(csv_path: Path, *, with_split: bool, strict: bool) -> dict[str, list[Sample]]:
    """Samples of a ``path,pid,camid[,split]`` CSV, grouped by split (or all under ``"all"``)."""
    need = COLUMNS + (("split",) if with_split else ())
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in need if c not in header]
            if missing:
                raise DatasetError(
                    f"custom: {csv_path} lacks column(s) {', '.join(missing)}; "
                    f"expected a header {','.join(need)}, found "
                    f"{','.join(header) or 'no header'}"
                )
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"custom: cannot read {csv_path} as a CSV file: {e}") from e
    out: dict[str, list[Sample]] = {}
    bad = []
    for lineno, r in enumerate(rows, 2):
        split = r.get("split", "all").lower() if with_split else "all"
        try:
            pid, camid = int(r["pid"]), int(r["camid"])
            ok = (
                bool(r["path"])
                and camid >= 0
                and pid >= -1
                and split in (SPLITS if with_split else ("all",))
            )
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"line {lineno}: {','.join(r.get(c, '') for c in need)}")
            continue
        p = Path(r["path"]).expanduser()
        p = p if p.is_absolute() else csv_path.parent / p
        out.setdefault(split, []).append(Sample(str(p.resolve()), pid, camid))
    if bad:
        msg = (
            f"custom: {len(bad)} row(s) of {csv_path} are invalid: {quote_names(bad)}; "
            "expected a path, integer pid (>= -1), integer camid (>= 0)"
            + (", split train|query|gallery" if with_split else "")
        )
        if strict:
            raise DatasetError(msg + " (pass strict=False / --no-strict to skip them)")
        log.warning("%s; skipped", msg)
    return out


def load(
    root: str | Path, *, strict: bool = True, verify_images: bool = False, **options
) -> ReIDDataset:
    """Load a custom dataset from a folder tree or CSV file(s) (see the module docstring).

    Raises:
        DatasetError: missing folders/files, unparseable names or rows, empty query/gallery.
    """
    check_options("custom", options)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"custom: {root} does not exist; expected a folder or a .csv file")
    splits: dict[str, list[Sample]] = {}
    where: dict[str, str] = {}
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(
                f"custom: {root} is a file but not a .csv; expected a folder "
                "with train/query/gallery, or a CSV path,pid,camid,split"
            )
        splits = read_csv(root, with_split=True, strict=strict)
        where = {s: str(root) for s in SPLITS if s in splits or s != "train"}
        base, form = root.parent.resolve(), "csv (one file, split column)"
        listed = str(root)
    elif (root / "query.csv").is_file():
        for split in SPLITS:
            f = root / f"{split}.csv"
            if f.is_file():
                splits[split] = read_csv(f, with_split=False, strict=strict).get("all", [])
                where[split] = str(f)
            elif split != "train":
                raise DatasetError(
                    f"custom: {f} is missing; expected query.csv and gallery.csv "
                    f"(and optionally train.csv) in {root}, found "
                    f"{describe_folder(root)}"
                )
        base, form = root.resolve(), "csv (one file per split)"
        listed = f"the CSV files in {root}"
    elif root.is_dir():
        present = [s for s in SPLITS if (root / s).is_dir()]
        if "query" not in present or "gallery" not in present:
            raise DatasetError(
                f"custom: expected folders query/ and gallery/ (and optionally train/) or "
                f"query.csv and gallery.csv in {root}; found {describe_folder(root)}"
            )
        for split in present:
            samples, _ = read_split_folder(
                root / split,
                _parse,
                dataset="custom",
                split=split,
                strict=strict,
                expected="names like 0001_0_x.jpg (<pid>_<0-based camera>[_<anything>])",
            )
            splits[split] = samples
            where[split] = str(root / split)
        base, form, listed = root.resolve(), "folders", ""
    junk = {}
    for split in SPLITS:
        splits[split], junk[split] = drop_junk(splits.get(split, []))
    if listed:
        check_files_exist(
            splits["train"] + splits["query"] + splits["gallery"],
            dataset="custom",
            listed_in=listed,
        )
    info = {
        "form": form,
        "junk_dropped": junk,
        "camids": "as written (0-based expected)",
        "has_train": bool(splits["train"]) or "train" in where,
    }
    return finalize(
        "custom",
        base,
        splits["train"],
        splits["query"],
        splits["gallery"],
        info,
        verify_images=verify_images,
        allow_empty=() if "train" in where else ("train",),
        where=where,
    )
