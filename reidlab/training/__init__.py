"""Training re-ID models on original or anonymized data.

>>> from reidlab.training import TrainConfig, train
>>> result = train(TrainConfig(model="tiny", dataset="synthetic", epochs=5, out_dir="runs/x"))  # doctest: +SKIP
>>> result["metrics"]["mAP"]                                                                   # doctest: +SKIP

Submodules: :mod:`.config` (:class:`TrainConfig`, :data:`RECIPES`), :mod:`.loop` (:func:`train`
and its parts: setup, resume, one training step, checkpoints), :mod:`.losses`, :mod:`.sampler`,
:mod:`.transforms`, :mod:`.ddp`. Heavy imports (torch, albumentations, kornia) happen inside
the functions.
"""

from __future__ import annotations

from reidlab.training.config import RECIPES, TrainConfig, TrainingError
from reidlab.training.loop import lr_factor, train

__all__ = ["RECIPES", "TrainConfig", "TrainingError", "lr_factor", "train"]
