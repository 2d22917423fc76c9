"""Model registry, forward shapes, input-size checks, checkpoint loading, pretrained fallback."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import require_shared

from reidlab.models import ModelError, build_model, default_input_size, list_models, load_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on the shared 2-core machines two threads ran these convnets several
    times slower (thread contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


EXPECTED_DIM = {
    "bot_r50": 2048,
    "pcb_r50": 1536,
    "mgn_r50": 2048,
    "mobilenetv3_l": 1280,
    "tiny": 128,
}
DEFAULT_SIZE = {"pcb_r50": (384, 128), "mgn_r50": (384, 128), "tiny": (128, 64)}  # others 256x128
# CPU time: one ResNet-50 runs at its full 384x128 input; the others at a smaller valid size
TEST_SIZE = {"pcb_r50": None, "mgn_r50": (192, 64), "tiny": None}


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_shapes(name):
    torch.manual_seed(0)
    assert default_input_size(name) == DEFAULT_SIZE.get(name, (256, 128))
    m = build_model(name, num_classes=7, input_size=TEST_SIZE.get(name, (128, 64)))
    assert m.name == name and m.pretrained_source == "scratch"
    assert m.pixel_mean == (0.485, 0.456, 0.406) and m.pixel_std == (0.229, 0.224, 0.225)
    h, w = m.input_size
    x = torch.rand(2, 3, h, w)
    m.train()
    with torch.no_grad():
        out = m(x)
    logits = out["logits"] if isinstance(out["logits"], list) else [out["logits"]]
    assert all(lg.shape == (2, 7) for lg in logits)
    feats = out["features"] if isinstance(out["features"], list) else [out["features"]]
    assert all(f.shape[0] == 2 and f.ndim == 2 for f in feats)
    m.eval()
    with torch.no_grad():
        f = m(x)
    dim = EXPECTED_DIM.get(name, 512)  # OSNet: 512
    assert f.shape == (2, dim) == (2, m.feature_dim)
    assert torch.isfinite(f).all()
    if name.startswith("osnet"):
        assert (f >= 0).all()  # torchreid's fc ends in ReLU; features are not normalised


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError) as e:
        build_model("resnet9000")
    for n in ("bot_r50", "osnet_x0_25", "tiny", "pcb_r50"):
        assert n in str(e.value)


def test_input_size_incompatible_with_stripes():
    with pytest.raises(ModelError, match="6 equal stripes"):
        build_model("pcb_r50", input_size=(256, 128))
    with pytest.raises(ModelError, match="too small"):
        build_model("tiny", input_size=(16, 8))
    m = build_model("tiny", input_size=(64, 32))
    assert m.input_size == (64, 32)
    assert build_model("tiny").input_size == (128, 64)


def test_pcb_head_rejects_uneven_feature_map():
    from reidlab.models.heads import PCBHead

    head = PCBHead(32, 5, parts=6, reduce_dim=8).eval()
    assert head(torch.rand(2, 32, 12, 4)).shape == (2, 48)
    with pytest.raises(ModelError, match="stripes"):
        head(torch.rand(2, 32, 16, 4))


def _randomised(model):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    return model


def test_torchreid_checkpoint_round_trip_module_prefix_and_classifier_drop(tmp_path):
    src = _randomised(build_model("tiny", num_classes=9))
    sd = {"module." + k: v for k, v in src.state_dict().items()}
    path = tmp_path / "model.pth.tar"
    torch.save({"state_dict": sd, "epoch": 3, "rank1": 0.5}, path)
    dst = build_model("tiny", num_classes=4)
    report = load_checkpoint(dst, path)
    assert report["format"] == "torchreid"
    assert report["dropped_classifier"] == ["neck.classifier.weight"]
    assert report["missing"] == ["neck.classifier.weight"] and report["unexpected"] == []
    for k, v in dst.state_dict().items():
        if "classifier" not in k:
            assert torch.equal(v, src.state_dict()[k]), k
    # a plain state dict of the same size loads the classifier too
    torch.save(src.state_dict(), tmp_path / "plain.pth")
    dst2 = build_model("tiny", num_classes=9)
    r2 = load_checkpoint(dst2, tmp_path / "plain.pth")
    assert r2["format"] == "plain" and r2["missing"] == [] and r2["dropped_classifier"] == []
    assert torch.equal(dst2.neck.classifier.weight, src.neck.classifier.weight)


def test_fastreid_checkpoint_maps_onto_bnneck(tmp_path):
    src = _randomised(build_model("tiny", num_classes=6))
    fr = {}
    for k, v in src.state_dict().items():
        k = k.replace("neck.bn.", "heads.bottleneck.0.").replace(
            "neck.classifier.weight", "heads.weight"
        )
        fr[k] = v
    torch.save({"model": fr, "iteration": 10}, tmp_path / "model_final.pth")
    dst = build_model("tiny", num_classes=6)
    r = load_checkpoint(dst, tmp_path / "model_final.pth")
    assert r["format"] == "fast-reid" and r["missing"] == [] and r["unexpected"] == []
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k


def test_foreign_checkpoint_error_lists_keys(tmp_path):
    torch.save(build_model("osnet_x0_25", num_classes=3).state_dict(), tmp_path / "osnet.pth")
    with pytest.raises(ModelError, match="missing .*unexpected .*conv1"):
        load_checkpoint(build_model("tiny", num_classes=3), tmp_path / "osnet.pth")
    with pytest.raises(ModelError, match="expected a file"):
        load_checkpoint(build_model("tiny"), tmp_path / "nope.pth")


def test_osnet_loads_torchreid_weights_strictly():
    path = require_shared("weights", "osnet_x0_25_market1501.pth")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    m = build_model("osnet_x0_25", num_classes=751)
    m.load_state_dict(raw, strict=True)  # torchreid's names and shapes, every key
    assert set(m.state_dict()) == set(raw)
    r = load_checkpoint(build_model("osnet_x0_25", num_classes=0), path)
    assert r["dropped_classifier"] == ["classifier.bias", "classifier.weight"] or sorted(
        r["dropped_classifier"]
    ) == ["classifier.bias", "classifier.weight"]
    assert [k for k in r["missing"] if "classifier" not in k] == [] and r["unexpected"] == []
    m2 = build_model("osnet_x0_25", pretrained=str(path))
    assert m2.pretrained_source == f"file:{path}"
    assert torch.equal(m2.conv1.conv.weight, raw["conv1.conv.weight"])


def test_pretrained_offline_falls_back_to_scratch(monkeypatch, caplog):
    from reidlab.models import baselines

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(baselines, "_cached_hub_file", lambda repo: None)
    with caplog.at_level(logging.WARNING):
        _, src = baselines.create_timm("resnet10t", pretrained=True, num_classes=0)
    assert src == "scratch"
    assert any("FROM SCRATCH" in r.getMessage() for r in caplog.records)


def test_pretrained_from_local_file(tmp_path):
    import timm

    from reidlab.models import baselines

    ref = _randomised(timm.create_model("resnet10t", pretrained=False))
    torch.save(ref.state_dict(), tmp_path / "r10t.pth")
    m, src = baselines.create_timm(
        "resnet10t", pretrained=str(tmp_path / "r10t.pth"), num_classes=0
    )
    assert src == f"file:{tmp_path / 'r10t.pth'}"
    assert torch.equal(m.conv1[0].weight, ref.conv1[0].weight)
    with pytest.raises(ModelError, match="expected a file"):
        baselines.create_timm("resnet10t", pretrained=str(tmp_path / "missing.pth"))
