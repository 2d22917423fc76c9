"""Data for training the ``reidface`` localizer: parsed crops, the identity split, augmentation.

The crops are a Market-1501-layout ``bounding_box_train`` folder; their face masks come from the
human-parsing PNGs beside it (``bounding_box_train_parsing_pgt``, LIP label 13 = face, same file
stem). Only crops that have a mask are used. Person ids are the first 4 characters of the file
name, kept as strings (``"0002"``), as in ``research/reidface/split.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidlab.errors import DatasetError

IMAGES = "bounding_box_train"
MASKS = "bounding_box_train_parsing_pgt"
CROP_SIZE = (128, 64)  # (H, W): Market-1501's crop size, the network's input
CELL = 4  # the network predicts one face fraction per 4x4 cell


def parsed_crop_names(root: str | Path) -> list[str]:
    """Sorted file stems of the crops in ``root/bounding_box_train`` that have a parsing mask.

    Raises :class:`DatasetError` naming the expected folder when either folder is missing or no
    crop has a mask.
    """
    root = Path(root)
    img_dir, mask_dir = root / IMAGES, root / MASKS
    for d, what in ((img_dir, "train crops"), (mask_dir, "parsing masks (LIP labels, PNG)")):
        if not d.is_dir():
            raise DatasetError(f"expected a folder of {what} at {d}")
    names = sorted(
        p.stem for p in img_dir.glob("*.jpg") if (mask_dir / (p.stem + ".png")).is_file()
    )
    if not names:
        raise DatasetError(
            f"no crop in {img_dir} has a parsing mask (same stem, .png) in {mask_dir}"
        )
    return names


def load_parsed_crops(
    root: str | Path, names: list[str] | None = None, *, progress: bool = True
) -> dict[str, np.ndarray]:
    """The crops with a parsing mask (all, or ``names``), sorted by name.

    Returns ``images`` ``(N, 128, 64, 3)`` RGB uint8, ``faces`` ``(N, 128, 64)`` uint8 0/1,
    ``pids`` (str, first 4 characters of the name) and ``names`` (file stems). A crop or mask of
    another size is a :class:`DatasetError` naming the file.
    """
    from tqdm.auto import tqdm

    from reidlab.faces.measure import read_face_mask
    from reidlab.imageio import read_rgb

    root = Path(root)
    names = parsed_crop_names(root) if names is None else sorted(names)
    h, w = CROP_SIZE
    images = np.zeros((len(names), h, w, 3), np.uint8)
    faces = np.zeros((len(names), h, w), np.uint8)
    for i, n in enumerate(tqdm(names, desc="train-faces: read crops", disable=not progress)):
        im = read_rgb(root / IMAGES / f"{n}.jpg")
        m = read_face_mask(root / MASKS / f"{n}.png")
        if im.shape[:2] != (h, w) or m.shape != (h, w):
            raise DatasetError(
                f"{root / IMAGES / n}.jpg: expected a {h}x{w} crop and mask, got "
                f"{im.shape[0]}x{im.shape[1]} / {m.shape[0]}x{m.shape[1]}"
            )
        images[i], faces[i] = im, m
    return {
        "images": images,
        "faces": faces,
        "pids": np.array([n[:4] for n in names]),
        "names": np.array(names),
    }


def split_ids(
    pids, seed: int = 0, test_frac: float = 0.2, tune_frac: float = 0.1
) -> dict[str, list[str]]:
    """Identity-disjoint split ``{"test", "tune", "train"}`` of the distinct ``pids`` (sorted lists).

    The distinct ids (as strings) are sorted and permuted with
    ``numpy.random.default_rng(seed).permutation``; the first ``round(test_frac * n)`` are test,
    the next ``round(tune_frac * n)`` tune, the rest train. With Market-1501's 751 train ids and
    the default seed this is ``research/reidface/split.json`` (150 / 75 / 526 ids).
    """
    if not (0 <= test_frac and 0 <= tune_frac and test_frac + tune_frac <= 1):
        raise ValueError(
            f"split fractions must be >= 0 and sum to <= 1, got test {test_frac}, tune {tune_frac}"
        )
    ids = sorted({str(p) for p in pids})
    perm = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_test, n_tune = round(test_frac * len(ids)), round(tune_frac * len(ids))
    return {
        "test": sorted(perm[:n_test]),
        "tune": sorted(perm[n_test : n_test + n_tune]),
        "train": sorted(perm[n_test + n_tune :]),
    }


def split_indices(pids: np.ndarray, split: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Row indices (ascending) of ``pids`` in each part of ``split``."""
    pids = np.asarray(pids).astype(str)
    return {k: np.nonzero(np.isin(pids, v))[0] for k, v in split.items()}


def build_augment(seed: int):
    """The training augmentation: an albumentations ``Compose`` seeded with ``seed`` (geometry is
    applied to the face mask too; blur, downscale, JPEG and noise to the image only)."""
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.75, 1.25),
                translate_percent={"x": (-0.08, 0.08), "y": (-0.08, 0.08)},
                rotate=(-8, 8),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.8,
            ),
            A.ColorJitter(
                brightness=(0.7, 1.3),
                contrast=(0.7, 1.3),
                saturation=(0.6, 1.4),
                hue=(-0.05, 0.05),
                p=0.8,
            ),
            A.RandomGamma(gamma_limit=(70, 140), p=0.3),
            A.ToGray(p=0.05),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)),
                    A.MotionBlur(blur_limit=(3, 5)),
                ],
                p=0.25,
            ),
            A.Downscale(
                scale_range=(0.25, 0.5),
                interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR},
                p=0.3,
            ),
            A.ImageCompression(quality_range=(30, 95), p=0.5),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.15),
        ],
        seed=seed,
    )


def cell_targets(faces: np.ndarray, stride: int = CELL) -> np.ndarray:
    """``(B, H, W)`` 0/1 masks -> ``(B, H/stride, W/stride)`` float32 face fraction per cell."""
    b, h, w = faces.shape
    cells = faces.reshape(b, h // stride, stride, w // stride, stride)
    return cells.mean(axis=(2, 4), dtype=np.float32)
