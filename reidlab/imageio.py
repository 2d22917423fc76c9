"""Reading images the one way reidlab does it: RGB uint8 ``(H, W, 3)`` numpy arrays.

OpenCV decodes (fast, and the same decoder the exporter uses to encode); grayscale is
expanded to 3 channels, alpha is dropped, and unreadable/corrupt/empty files raise
:class:`~reidlab.errors.ImageReadError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidlab.errors import ImageReadError


def read_rgb(path: str | Path) -> np.ndarray:
    """Read ``path`` as an RGB uint8 array of shape ``(H, W, 3)``.

    Raises:
        ImageReadError: the file is missing, empty, not an image, or decodes to 0 pixels.
    """
    import cv2

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"cannot read image file {path}: {e}") from e
    if data.size == 0:
        raise ImageReadError(f"image file {path} is empty (0 bytes)")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageReadError(f"image file {path} is corrupt or not an image OpenCV can decode")
    return to_rgb_uint8(img, bgr=True, name=str(path))


def to_rgb_uint8(img: np.ndarray, bgr: bool = False, name: str = "image") -> np.ndarray:
    """Normalise any 2-D/3-D array (gray, gray+alpha, RGB, RGBA; uint8/uint16/float) to RGB uint8."""
    import cv2

    img = np.asarray(img)
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(np.asarray(img, dtype=np.float64).round(), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{name}: expected an image of shape (H, W[, 1-4]), got {img.shape}")
    c = img.shape[2]
    if c in (1, 2):
        return cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2RGB)
    if c == 4:
        img = np.ascontiguousarray(img[..., :3])
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)
