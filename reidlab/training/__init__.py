"""Training re-ID models on original or anonymized data.

>>> from reidlab.training import TrainConfig, train
>>> result = train(TrainConfig(model="tiny", dataset="synthetic", epochs=5, out_dir="runs/x"))  # doctest: +SKIP
>>> result["metrics"]["mAP"]                                                                   # doctest: +SKIP

Heavy imports (torch, albumentations, kornia) happen inside the submodules.
"""

from __future__ import annotations

from reidlab.training.loop import RECIPES, TrainConfig, TrainingError, lr_factor, train

__all__ = ["RECIPES", "TrainConfig", "TrainingError", "lr_factor", "train"]
