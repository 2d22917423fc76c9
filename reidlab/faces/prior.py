"""Fail-closed head prior: where a detector finds nothing in a pedestrian crop, assume the head.

For privacy a missed face is worse than an over-blurred hat. With ``fail_closed`` enabled,
:func:`reidlab.faces.detect_split` gives every image without a detection one prior box covering the
top ``height`` fraction of the crop, horizontally centred, ``width`` fraction wide. Such rows carry
``fail_closed=True`` and score 0 so they can be counted and told apart.

>>> head_prior_box(128, 64, HeadPrior(height=0.25, width=0.5))
array([16., 0., 48., 32., 0.], dtype=float32)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from reidlab.errors import ReidlabError


@dataclass(frozen=True)
class HeadPrior:
    """Prior head box as fractions of the crop: top ``top``..``top + height``, centred, ``width`` wide."""

    height: float = 0.3
    width: float = 0.6
    top: float = 0.0

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not 0.0 <= v <= 1.0:
                raise ReidlabError(f"HeadPrior.{k} must be a fraction in [0, 1], got {v}")
        if self.height <= 0 or self.width <= 0 or self.top + self.height > 1.0:
            raise ReidlabError(
                f"HeadPrior {self} must have height, width > 0 and top + height <= 1"
            )

    @classmethod
    def from_option(cls, option) -> HeadPrior | None:
        """``None``/``False`` -> None; a float -> that height; a dict or HeadPrior -> as given."""
        if option is None or option is False:
            return None
        if isinstance(option, HeadPrior):
            return option
        if isinstance(option, dict):
            return cls(**option)
        if option is True:
            return cls()
        return cls(height=float(option))


def head_prior_box(height: int, width: int, prior: HeadPrior) -> np.ndarray:
    """The prior box ``(5,)`` float32 ``x1, y1, x2, y2, score=0`` for an image of ``height x width``."""
    bw = prior.width * width
    x1 = (width - bw) / 2
    y1 = prior.top * height
    return np.array([x1, y1, x1 + bw, y1 + prior.height * height, 0.0], dtype=np.float32)
