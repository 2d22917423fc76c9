""":class:`EvalConfig`: the settings of :func:`reidlab.evaluation.evaluate`, described once.

Each field's type, range or choices and help line is a :class:`reidlab.params.Param` (see
:mod:`reidlab.config`): the same description checks values here, makes ``reidlab evaluate``'s
flags, and is embedded in the experiment (``ExperimentConfig.eval``) and training
(``TrainConfig.eval``) configurations.

>>> EvalConfig(distance="cosine", k1=5).replace(rerank=True).k1
5
>>> EvalConfig(k1=0)
Traceback (most recent call last):
...
ValueError: k1 must be > 0, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from reidlab.config import check_config, replace_config, setting

_POS = {"low": 0, "low_open": True}


@dataclass
class EvalConfig:
    """How query and gallery features become distances and rank metrics (Market-1501 protocol).

    ``size``, ``mean``, ``std`` None: the model's ``input_size``, ``pixel_mean``, ``pixel_std``
    (else 256x128 and ImageNet statistics). ``device`` None: the model's device. ``amp``
    (autocast, CUDA only) also takes True (= ``"auto"``) and False (= ``"off"``).
    """

    distance: str = setting(
        "euclidean", "squared euclidean or 1 - cosine", choices=("euclidean", "cosine")
    )
    normalize: bool = setting(False, "L2-normalise features")
    flip: bool = setting(False, "add horizontally flipped images' features")
    ap: str = setting(
        "standard",
        "AP definition: standard (torchreid/fast-reid) or Market MATLAB trapezoid",
        choices=("standard", "trapezoid"),
    )
    rerank: bool = setting(False, "k-reciprocal re-ranking (with --k1, --k2, --lambda)")
    k1: int = setting(20, "re-ranking k1", **_POS)
    k2: int = setting(6, "re-ranking k2", **_POS)
    lambda_value: float = setting(
        0.3, "re-ranking weight of the original distance", low=0, high=1, flag="--lambda"
    )
    size: tuple[int, int] | None = setting(
        None,
        "input height and width (default: the model's)",
        type=int,
        nargs=2,
        optional=True,
        **_POS,
    )
    mean: tuple[float, float, float] | None = setting(
        None, "per-channel pixel mean (default: the model's)", type=float, nargs=3, optional=True
    )
    std: tuple[float, float, float] | None = setting(
        None,
        "per-channel pixel std (default: the model's)",
        type=float,
        nargs=3,
        optional=True,
        **_POS,
    )
    batch_size: int = setting(64, "images per batch", **_POS)
    num_workers: int = setting(0, "DataLoader workers", low=0)
    device: str | None = setting(
        None, "torch device (default: the model's)", type=str, optional=True
    )
    amp: str = setting(
        "auto", "autocast on CUDA (auto = fp16)", choices=("auto", "fp16", "bf16", "off")
    )
    max_rank: int = setting(50, "length of the CMC curve", **_POS)
    cmc_mode: str = setting("market", "CMC protocol", choices=("market", "single_gallery_shot"))
    seed: int = setting(0, "seed of the single-gallery-shot sampling")
    feature_layer: str | None = setting(
        None, "recorded: the layer the features come from", type=str, optional=True
    )

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool) or self.amp is None:
            self.amp = "auto" if self.amp else "off"
        check_config(self)

    def replace(self, **changes) -> EvalConfig:
        """A copy with ``changes`` (field names; an unknown name is a ``TypeError``)."""
        return replace_config(self, **changes)
