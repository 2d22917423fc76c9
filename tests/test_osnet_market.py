"""OSNet x0.25 with torchreid's Market-1501 weights reproduces the model zoo's numbers.

Published (torchreid model zoo): mAP 75.0, rank-1 91.2 at 256x128, ImageNet normalisation,
squared euclidean distance on un-normalised features, no flip, no re-ranking, standard AP.
A reference pipeline measured 74.94 / 91.18. This checks the architecture end to end: a wrong
layer, name or activation would not load strictly or would not reach these numbers.
"""

from __future__ import annotations

import pytest
from conftest import require_shared

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def test_osnet_x0_25_market1501_matches_model_zoo():
    weights = require_shared("weights", "osnet_x0_25_market1501.pth")
    market = require_shared("market1501")
    import torch

    from reidlab.datasets import build_dataset
    from reidlab.evaluation import evaluate
    from reidlab.models import build_model, load_checkpoint

    model = build_model("osnet_x0_25", num_classes=751)
    report = load_checkpoint(model, weights)
    assert (
        report["missing"] == []
        and report["unexpected"] == []
        and report["dropped_classifier"] == []
    )
    model.eval()
    ds = build_dataset("market1501", market)
    # On the project's shared 2-core machines one torch thread ran OSNet 6x faster than two
    # (60 vs 9.4 crops/s at batch 64; thread contention), so this check pins one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = evaluate(
            model,
            ds,
            distance="euclidean",
            normalize=False,
            flip=False,
            ap="standard",
            rerank=False,
            size=(256, 128),
            progress=False,
            checkpoint=str(weights),
        )
    finally:
        torch.set_num_threads(threads)
    mAP, r1 = 100 * res.metrics["mAP"], 100 * res.metrics["rank1"]
    assert abs(mAP - 75.0) <= 1.0, (mAP, r1)
    assert abs(r1 - 91.2) <= 1.0, (mAP, r1)
