"""The dataset contract shared by every loader.

A split is an ordered list of :class:`Sample` ``(path, pid, camid)``: ``path`` is an absolute
path string, ``pid`` and ``camid`` are ints, camids 0-based. A :class:`ReIDDataset` carries the
three splits plus its name, root and the facts of parsing (junk dropped, files ignored, ...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from reidlab.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class Sample(NamedTuple):
    """One image of a split: absolute path, person id, 0-based camera id."""

    path: str
    pid: int
    camid: int


@dataclass
class ReIDDataset:
    """Train / query / gallery splits of one dataset plus the facts of parsing it."""

    name: str
    root: Path
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    info: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Sample]:
        if name not in ("train", "query", "gallery"):
            raise DatasetError(f"unknown split {name!r}; expected 'train', 'query' or 'gallery'")
        return getattr(self, name)

    @property
    def num_cameras(self) -> int:
        return len({s.camid for s in self.train + self.query + self.gallery})

    def stats(self) -> dict:
        """Counts per split: images, identities, cameras (a dict, for tables and tests)."""
        out = {}
        for name in ("train", "query", "gallery"):
            s = self.split(name)
            out[name] = {
                "images": len(s),
                "ids": len({x.pid for x in s}),
                "cameras": len({x.camid for x in s}),
            }
        return out

    def summary(self) -> str:
        st = self.stats()
        lines = [f"{self.name} at {self.root}"]
        for k, v in st.items():
            lines.append(
                f"  {k:8s} {v['images']:6d} images  {v['ids']:5d} ids  {v['cameras']:2d} cams"
            )
        return "\n".join(lines)

    def relpath(self, path: str) -> str:
        """Path relative to the dataset root (as stored in detection caches and manifests)."""
        return str(Path(path).resolve().relative_to(Path(self.root).resolve()))

    def check_query_in_gallery(self) -> int:
        """Warn about (and count) query identities that have no gallery image from another camera."""
        gal = {}
        for s in self.gallery:
            gal.setdefault(s.pid, set()).add(s.camid)
        missing = sum(1 for q in self.query if not (gal.get(q.pid, set()) - {q.camid}))
        if missing:
            log.warning(
                "%s: %d of %d queries have no gallery match from another camera "
                "(they are skipped by evaluation and counted there)",
                self.name,
                missing,
                len(self.query),
            )
        self.info["queries_without_match"] = missing
        return missing


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` (sorted by name), ignoring non-image files such as Thumbs.db."""
    return sorted(
        p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
