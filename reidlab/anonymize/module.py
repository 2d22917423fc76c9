"""The :class:`Anonymizer` module: one configured anonymization, applied to batches on their device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reidlab.anonymize.masks import MASK_SHAPES
from reidlab.anonymize.ops import FILL_MODES, blur_faces, fill_faces, pixelate_faces

__all__ = ["METHODS", "Anonymizer"]

METHODS = ("blur", "pixelate", "fill", "zero", "none")


class Anonymizer(nn.Module):
    r"""Anonymize the faces of a batch: ``anon(images, boxes, valid) -> images``.

    A thin module over :func:`~reidlab.anonymize.ops.blur_faces`,
    :func:`~reidlab.anonymize.ops.pixelate_faces` and :func:`~reidlab.anonymize.ops.fill_faces`;
    it holds no weights and runs on the device of its input.

    Args:
        method: ``"blur"``, ``"pixelate"``, ``"fill"``, ``"zero"`` (black) or ``"none"`` (identity,
            the control condition).
        mask: ``"box"`` or ``"ellipse"`` (inscribed in the scaled box).
        scale: box enlargement about its centre (detector boxes are tight; 1.2 also covers hair
            line and chin).
        feather: soft mask edge in pixels, inwards; ``feather_rel``: relative to the box's shorter side.
        sigma_rel: blur std relative to the face-box height. Default 0.2: on a 16 px Market1501
            face that is sigma 3.2 px, which removes all detail finer than about 2 cycles per face
            height (a Gaussian of std ``s`` attenuates frequency ``f`` by ``exp(-2 pi^2 s^2 f^2)``:
            eyes/mouth structure at ~4-8 cycles per face keeps < 0.2% of its contrast), about twice
            the equivalent std of deface's box blur (kernel = box/3); the face becomes a skin-toned blob
            while the head's overall colour stays, and the same holds for any face size.
        sigma: absolute blur std in pixels (overrides ``sigma_rel``).
        blocks: pixelation cells per side. Default 4 (a 16x12 Market face -> 4x3 px cells, at most
            16 colours per face), the setting of the reference study.
        fill: ``"constant"``, ``"mean"`` or ``"noise"`` for ``method="fill"``.
        color: fill colour in ``[0, 1]`` for ``fill="constant"``.
        seed: seed of the noise generator (``fill="noise"``); ``None`` = torch's global RNG.

    Shapes:
        images :math:`(B, C, H, W)` float in ``[0, 1]``; boxes :math:`(B, K, 4)` pixels (or a list of
        :math:`(K_i, 4)`); valid :math:`(B, K)` bool or ``None``; output like ``images``.

    Example:
        >>> anon = Anonymizer("pixelate", blocks=4)
        >>> x = torch.rand(2, 3, 128, 64)
        >>> y = anon(x, torch.tensor([[[26., 4., 38., 20.]]] * 2))
        >>> bool((y[:, :, 20:] == x[:, :, 20:]).all()), anon.settings()["method"]
        (True, 'pixelate')
    """

    def __init__(
        self,
        method: str = "blur",
        mask: str = "box",
        scale: float = 1.0,
        feather: float = 0.0,
        feather_rel: float = 0.0,
        sigma_rel: float = 0.2,
        sigma: float | None = None,
        blocks: int = 4,
        fill: str = "constant",
        color: float | Sequence[float] = (0.5, 0.5, 0.5),
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if mask not in MASK_SHAPES:
            raise ValueError(f"mask: expected one of {MASK_SHAPES}, got {mask!r}")
        if fill not in FILL_MODES:
            raise ValueError(f"fill: expected one of {FILL_MODES}, got {fill!r}")
        if scale <= 0 or feather < 0 or feather_rel < 0:
            raise ValueError(
                f"need scale > 0 and feather >= 0, got scale={scale}, feather={feather}, "
                f"feather_rel={feather_rel}"
            )
        if (sigma if sigma is not None else sigma_rel) <= 0:
            raise ValueError("blur strength must be > 0 (sigma_rel or sigma)")
        if int(blocks) < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        self.method = method
        self.mask = mask
        self.scale = float(scale)
        self.feather = float(feather)
        self.feather_rel = float(feather_rel)
        self.sigma_rel = float(sigma_rel)
        self.sigma = None if sigma is None else float(sigma)
        self.blocks = int(blocks)
        self.fill = fill
        self.color = tuple(float(c) for c in color) if isinstance(color, Sequence) else float(color)
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(int(self.seed))
        return self._generators[key]

    def forward(
        self,
        images: Tensor,
        boxes: Tensor | Sequence[Tensor],
        valid: Tensor | None = None,
        inplace: bool = False,
    ) -> Tensor:
        """Anonymize ``images`` :math:`(B, C, H, W)` at ``boxes``; see the class docstring."""
        if self.method == "none":
            return images
        common = {
            "mask": self.mask,
            "scale": self.scale,
            "feather": self.feather,
            "feather_rel": self.feather_rel,
            "inplace": inplace,
        }
        if self.method == "blur":
            return blur_faces(
                images, boxes, valid, sigma_rel=self.sigma_rel, sigma=self.sigma, **common
            )
        if self.method == "pixelate":
            return pixelate_faces(images, boxes, valid, blocks=self.blocks, **common)
        fill = "zero" if self.method == "zero" else self.fill
        return fill_faces(
            images,
            boxes,
            valid,
            fill=fill,
            color=self.color,
            generator=self._generator(images.device),
            **common,
        )

    def settings(self) -> dict:
        """The configuration as a JSON-serialisable dict (recorded with every result)."""
        s = {
            "method": self.method,
            "mask": self.mask,
            "scale": self.scale,
            "feather": self.feather,
            "feather_rel": self.feather_rel,
        }
        if self.method == "blur":
            s.update(
                sigma_rel=None if self.sigma is not None else self.sigma_rel,
                sigma=self.sigma,
                border="reflect101",
                truncate=3.0,
            )
        elif self.method == "pixelate":
            s.update(blocks=self.blocks, pooling="area")
        elif self.method == "fill":
            s.update(
                fill=self.fill,
                color=list(self.color) if isinstance(self.color, tuple) else self.color,
                seed=self.seed,
            )
        return s

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
