"""Exported models (ONNX Runtime, OpenVINO) give the features of the torch model they came from.

Offline part: the test builds a small torch network, exports it to ONNX (``torch.onnx.export``)
and to an OpenVINO IR (``openvino.convert_model``), in two input conventions (RGB [0, 1] with
ImageNet normalisation outside the graph; BGR 0-255 with the normalisation and the channel swap
inside, as the Open Model Zoo files), and checks that reidlab's features from each backend equal
the torch network's on the same anonymized batch. The MVN fix is checked against a numpy group
norm, on a graph where plain ONNX Runtime gives NaN.

Shared part (``shared``, ``slow``): every file in ``../shared/weights/omz`` evaluated by reidlab
on a few hundred Market-1501 crops gives the mAP of a direct run of its own runtime (plain
openvino with PIL preprocessing, written here) within 0.1 points.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from conftest import require_shared

from reidlab.models import ModelError, load_model
from reidlab.models.exported import load_exported, resolve_convention

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
H, W = 128, 64


def _net() -> torch.nn.Module:
    """A small re-ID-shaped network on ImageNet-normalised RGB: convs, BN, pooling, a linear."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 24),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        net[1].running_mean.copy_(torch.randn(8, generator=g) * 0.1)
        net[1].running_var.copy_(torch.rand(8, generator=g) + 0.5)
    return net.eval()


class _BuiltIn(torch.nn.Module):
    """The same network taking BGR 0-255: channel swap and normalisation inside the graph."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", MEAN * 255)
        self.register_buffer("std", STD * 255)

    def forward(self, bgr255):
        return self.net((bgr255.flip(1) - self.mean) / self.std)


def _export(module, path) -> None:
    with (
        warnings.catch_warnings()
    ):  # "legacy TorchScript-based ONNX export": offline, no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.rand(2, 3, H, W),),
            str(path),
            input_names=["data"],
            output_names=["embedding"],
            dynamic_axes={"data": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=13,
            dynamo=False,
        )


def _to_ir(onnx_path, xml_path, state_convention: bool) -> None:
    """ONNX -> OpenVINO IR; ``state_convention``: record Model Optimizer's conversion_parameters
    (BGR input, ImageNet mean/scale in 0-255) as the Open Model Zoo IRs carry them."""
    import openvino as ov

    m = ov.convert_model(str(onnx_path))
    if state_convention:
        m.set_rt_info("True", ["conversion_parameters", "reverse_input_channels"])
        m.set_rt_info("data[123.675,116.28,103.53]", ["conversion_parameters", "mean_values"])
        m.set_rt_info("data[58.395,57.12,57.375]", ["conversion_parameters", "scale_values"])
    ov.save_model(m, str(xml_path), compress_to_fp16=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("exported")
    net = _net()
    _export(net, d / "rgb.onnx")
    _export(_BuiltIn(net).eval(), d / "bgr255.onnx")
    _to_ir(d / "rgb.onnx", d / "rgb.xml", state_convention=False)
    _to_ir(d / "bgr255.onnx", d / "bgr255.xml", state_convention=True)
    assert not net.training  # the reference runs BN on its running statistics
    return d, net


@pytest.fixture(scope="module")
def batch():
    """An anonymized [0, 1] batch: 5 random images, faces blurred in two of them."""
    from reidlab.anonymize import Anonymizer

    g = torch.Generator().manual_seed(1)
    images = torch.rand(5, 3, H, W, generator=g)
    boxes = torch.zeros(5, 1, 4)
    boxes[0, 0] = torch.tensor([20.0, 4.0, 44.0, 30.0])
    boxes[3, 0] = torch.tensor([10.0, 8.0, 30.0, 28.0])
    valid = torch.tensor([[True], [False], [False], [True], [False]])
    anon = Anonymizer("blur")(images.clone(), boxes, valid)
    assert not torch.equal(anon, images)  # the anonymization did change the batch
    return anon


def _reference(net, images01):
    with torch.no_grad():
        return net((images01 - MEAN) / STD)


def _features(model, images01):
    from reidlab.evaluation import FeatureExtractor

    return FeatureExtractor(model)(images01)


RGB = {}  # rgb files: the default convention
BGR_ONNX = {"channels": "BGR", "value_range": 255, "builtin_normalization": True}


@pytest.mark.parametrize(
    "file, backend, options",
    [
        ("rgb.onnx", "onnxruntime", RGB),
        ("rgb.onnx", "openvino", RGB),
        ("rgb.xml", "openvino", RGB),
        ("bgr255.onnx", "onnxruntime", BGR_ONNX),
        ("bgr255.onnx", "openvino", BGR_ONNX),
        ("bgr255.xml", "openvino", {}),  # the IR states its convention: no options
    ],
)
def test_backends_match_the_torch_model(exported, batch, file, backend, options):
    d, net = exported
    model = load_model("toy", d / file, backend=backend, threads=1, **options)
    assert model.name == "toy" and model.input_size == (H, W)
    assert model.resize_mode == "antialias" and model.feature_dim == 24
    feats = _features(model, batch)
    ref = _reference(net, batch)
    assert feats.dtype == torch.float32 and feats.shape == ref.shape
    torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-4)
    info = model.export_info
    assert info["backend"] == backend
    assert info["sha256"] == hashlib.sha256((d / file).read_bytes()).hexdigest()
    if file == "bgr255.xml":
        assert info["input_convention"]["stated_by"]["channels"] == "file"
        assert info["input_convention"]["channels"] == "BGR"


def test_a_wrong_convention_changes_the_features(exported, batch):
    """The match above is not vacuous: the BGR 0-255 graph fed the default RGB [0, 1]
    normalised input gives other features."""
    d, net = exported
    model = load_model("toy", d / "bgr255.onnx", threads=1)
    assert not torch.allclose(_features(model, batch), _reference(net, batch), atol=1e-2)


def test_flip_and_batches_of_any_size(exported, batch):
    """Flip sums two forward passes; the last, smaller batch of a split works too."""
    from reidlab.evaluation import FeatureExtractor

    d, net = exported
    model = load_model("toy", d / "bgr255.xml")
    feats = FeatureExtractor(model, flip=True)(batch[:3])
    ref = _reference(net, batch[:3]) + _reference(net, batch[:3].flip(3))
    torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-4)


def _mvn_graph(path, eps_free: bool = True):
    """GroupNorm as torch exports it at opset 9: Reshape (1, C, H, W) -> (1, G, -1, 1), MVN over
    axes 2, 3, Reshape back. Input (1, 4, 1, 1), 2 groups of 2 values."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["r"]),
        helper.make_node("MeanVarianceNormalization", ["r"], ["n"], axes=[2, 3]),
        helper.make_node("Reshape", ["n", "s2"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1, 2, -1, 1], np.int64), "s1"),
        numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), "s2"),
    ]
    graph = helper.make_graph(
        nodes,
        "gn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    onnx.save(model, str(path))


def test_mvn_without_epsilon_is_fixed_for_onnxruntime(tmp_path):
    """Plain ONNX Runtime gives NaN for a group of equal values (0/0); reidlab's rewrite gives
    the group norm a numpy reference computes (0 for such a group)."""
    import onnxruntime as ort

    from reidlab.models.exported import _OrtRunner

    path = tmp_path / "gn.onnx"
    _mvn_graph(path)
    x = np.array([1.0, 3.0, 0.0, 0.0], np.float32).reshape(1, 4, 1, 1)  # group 2 all zero
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = plain.run(None, {"x": x})[0].ravel()
    assert np.isnan(raw[2:]).all()  # the defect the rewrite fixes
    runner = _OrtRunner(path, threads=1)
    got = runner.run(x).ravel()
    # numpy group norm: (v - mean) / std per group; the all-equal group is 0
    groups = x.ravel().reshape(2, 2).astype(np.float64)
    sd = groups.std(axis=1, keepdims=True)
    ref = np.where(sd > 0, (groups - groups.mean(axis=1, keepdims=True)) / np.maximum(sd, 1e-30), 0)
    np.testing.assert_allclose(got, ref.ravel(), rtol=1e-6, atol=1e-6)
    assert any("MeanVarianceNormalization" in f for f in runner.graph_fixes)


def test_non_finite_features_are_refused(tmp_path):
    """A graph whose output is NaN (log of a negative number) raises instead of reaching the
    metrics."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Neg", ["f"], ["n"]),
        helper.make_node("Abs", ["f"], ["a"]),
        helper.make_node("Sub", ["n", "a"], ["neg"]),
        helper.make_node("Log", ["neg"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["b", 3, H, W])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "n.onnx"
    )
    model = load_exported(tmp_path / "n.onnx")
    with pytest.raises(ModelError, match="non-finite features"):
        model(torch.rand(2, 3, H, W) + 0.5)


@pytest.mark.parametrize(
    "stated, given, phrase",
    [
        ({}, {"channels": "RGBA"}, "channels must be RGB or BGR"),
        ({}, {"value_range": 100}, "value_range must be 1"),
        ({}, {"builtin_normalization": True, "mean": (0.5, 0.5, 0.5)}, "built in"),
        ({}, {"std": (0.2, 0.0, 0.2)}, "std must be > 0"),
        ({"channels": "BGR"}, {"channels": "rgb"}, "the file states channels='BGR'"),
        ({"builtin_normalization": True}, {"mean": (0.5, 0.5, 0.5)}, "built in"),
    ],
)
def test_bad_or_contradictory_conventions(stated, given, phrase):
    with pytest.raises(ModelError, match=phrase):
        resolve_convention(stated, given, "model.xml")


def test_convention_sources_are_recorded():
    c = resolve_convention({"channels": "BGR"}, {"value_range": "0-255"}, "m.xml").as_dict()
    assert c["channels"] == "BGR" and c["value_range"] == 255.0
    assert c["stated_by"] == {
        "channels": "file",
        "value_range": "arguments",
        "builtin_normalization": "default",
        "mean": "default",
        "std": "default",
    }


def test_load_errors_are_one_line(exported, tmp_path):
    d, _ = exported
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "lonely.xml").write_text("<net/>")
    cases = [
        (lambda: load_exported(tmp_path / "none.onnx"), "found nothing"),
        (lambda: load_exported(tmp_path / "junk.onnx"), "not a readable ONNX model"),
        (lambda: load_exported(tmp_path / "lonely.xml"), "must sit beside"),
        (lambda: load_exported(d / "rgb.xml", backend="onnxruntime"), "openvino only"),
        (lambda: load_exported(d / "rgb.onnx", backend="tensorrt"), "backend must be one of"),
        (lambda: load_exported(d / "rgb.onnx", input_size=(256, 128)), "takes 128x64"),
        (lambda: load_exported(d / "bgr255.xml", channels="RGB"), "the file states channels"),
        (lambda: load_model("tiny", d / "rgb.pth", backend="openvino"), "exported models"),
        (lambda: load_model("toy", d / "rgb.onnx").train(), "inference-only"),
    ]
    for call, phrase in cases:
        with pytest.raises(ModelError, match=phrase) as e:
            call()
        assert "\n" not in str(e.value)


def test_cli_evaluates_an_exported_model(exported, synthetic_root, tmp_path, capsys):
    """``reidlab evaluate --weights FILE.xml`` runs and records backend, file hash and
    convention; flags for exported models with a checkpoint are one line and exit 2."""
    from reidlab.cli import main

    d, _ = exported
    out = tmp_path / "r.json"
    argv = ["evaluate", "--dataset", "synthetic", "--root", str(synthetic_root)]
    rc = main([*argv, "--weights", str(d / "bgr255.xml"), "--out", str(out), "--no-progress"])
    assert rc == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["model"] == "bgr255"
    info = settings["exported_model"]
    assert info["backend"] == "openvino"
    assert info["sha256"] == hashlib.sha256((d / "bgr255.xml").read_bytes()).hexdigest()
    assert info["input_convention"]["channels"] == "BGR"
    capsys.readouterr()
    assert main([*argv, "--model", "tiny", "--random-init", "--backend", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--backend" in err and "exported models only" in err and "\n" not in err


# ---- shared: the Open Model Zoo files against their own runtime ----------------------------------


def _market_subset(root, n_ids: int = 20):
    """Query: up to 2 crops of each of the first ``n_ids`` query identities; gallery: every
    gallery crop of those identities (same-camera ones are junk for the metric)."""
    from types import SimpleNamespace

    from reidlab.datasets import build_dataset

    ds = build_dataset("market1501", root)
    pids = sorted({s.pid for s in ds.query})[:n_ids]
    query = [s for p in pids for s in [q for q in ds.query if q.pid == p][:2]]
    gallery = [s for s in ds.gallery if s.pid in set(pids)]
    return SimpleNamespace(name="market1501-subset", root=root, query=query, gallery=gallery)


def _direct_features(path, samples, rgb_normalised: bool):
    """Features from plain OpenVINO, one image at a time, PIL bilinear resize to 256x128:
    BGR 0-255 for the IR files (their normalisation is built in), RGB /255 then ImageNet
    mean/std for the ONNX file."""
    import openvino as ov
    from PIL import Image

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    )
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for s in samples:
        img = Image.open(s.path).convert("RGB").resize((128, 256), Image.BILINEAR)
        a = np.asarray(img, np.float32)
        a = (a / 255.0 - mean) / std if rgb_normalised else a[:, :, ::-1]
        out.append(compiled(np.ascontiguousarray(a.transpose(2, 0, 1)[None]))[0].ravel())
    return np.stack(out)


def _direct_map(path, ds, rgb_normalised):
    from reidlab.evaluation.metrics import rank_metrics

    qf = _direct_features(path, ds.query, rgb_normalised).astype(np.float64)
    gf = _direct_features(path, ds.gallery, rgb_normalised).astype(np.float64)
    dist = (qf**2).sum(1)[:, None] + (gf**2).sum(1)[None] - 2 * qf @ gf.T  # squared euclidean
    ids = [
        np.array([getattr(s, k) for s in split])
        for split in (ds.query, ds.gallery)
        for k in ("pid", "camid")
    ]
    return 100 * rank_metrics(dist, ids[0], ids[2], ids[1], ids[3]).mAP


@pytest.mark.slow
@pytest.mark.shared
def test_omz_models_match_their_own_runtime():
    omz = require_shared("weights", "omz")
    market = require_shared("market1501")
    from reidlab.evaluation import evaluate

    ds = _market_subset(market)
    assert 200 <= len(ds.query) + len(ds.gallery) <= 500
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2-core shared machines: one thread per runtime
    try:
        for xml in sorted(omz.glob("*.xml")):
            ref = _direct_map(xml, ds, rgb_normalised=False)
            res = evaluate(load_model(xml.stem, xml, threads=1), ds, progress=False)
            assert abs(100 * res.metrics["mAP"] - ref) <= 0.1, (
                xml.name,
                100 * res.metrics["mAP"],
                ref,
            )
            assert ref > 20, (xml.name, ref)  # sensible features, not chance
        for onnx_file in sorted(omz.glob("*.onnx")):
            ref = _direct_map(onnx_file, ds, rgb_normalised=True)  # OpenVINO reads it as is
            for backend in ("onnxruntime", "openvino"):
                m = load_model(onnx_file.stem, onnx_file, backend=backend, threads=1)
                res = evaluate(m, ds, progress=False)
                got = 100 * res.metrics["mAP"]
                assert abs(got - ref) <= 0.1, (onnx_file.name, backend, got, ref)
    finally:
        torch.set_num_threads(threads)
