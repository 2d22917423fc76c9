"""Content hashes: of files (caches, manifests, detector files) and of JSON-able settings (cache keys).

One implementation, streamed in 1 MiB blocks so large files never sit in memory whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_hash(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes (``algorithm``: any :mod:`hashlib` name; sha256 for manifests,
    sha1 for the detection cache keys). Raises ``OSError`` when the file cannot be read."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_hash(obj, length: int = 12) -> str:
    """Short sha1 of ``obj`` as canonical JSON (sorted keys): a stable key for a configuration."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:length]
