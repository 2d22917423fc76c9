"""Exported re-ID models (ONNX, OpenVINO IR) as reidlab feature extractors.

:func:`load_exported` turns a model file into a torch module that evaluation
(:func:`reidlab.evaluation.evaluate`, ``extract_features``, ``FeatureExtractor``), the experiment
grid and the notebooks use like any reidlab model: it carries ``name``, ``input_size``,
``pixel_mean``, ``pixel_std``, ``feature_dim``, ``resize_mode = "antialias"`` and maps a
normalised float batch ``(B, 3, H, W)`` to ``(B, D)`` float32 features on the batch's device.
Anonymization still happens in torch on [0, 1] images before that.

Backends: ``.onnx`` runs on ONNX Runtime (``backend="onnxruntime"``, the default) or OpenVINO
(``backend="openvino"``); ``.xml`` (OpenVINO IR, ``.bin`` beside it) runs on OpenVINO. Both on
the CPU, in float32, with ``threads`` intra-op threads (default ``torch.get_num_threads()``).

Input convention (:class:`InputConvention`): what the graph's input holds. reidlab feeds
``(img01 - pixel_mean) / pixel_std`` (RGB); the wrapper undoes that and gives the graph
``order((img01 * value_range - m) / s)`` with ``m, s = mean * value_range, std * value_range``
when the graph expects normalised input, ``0, 1`` when its normalisation is built in, and
``order`` swapping RGB to BGR when the graph wants BGR. ``pixel_mean``/``pixel_std`` are chosen
so that this is the identity or a pure scale (the features are then exact, not re-rounded), so
an exported model's normalisation is fixed by its graph: evaluation must not override it.

Where the convention comes from, in order: the file (an OpenVINO IR converted by Model Optimizer
records ``mean_values``/``scale_values``/``reverse_input_channels`` in its ``rt_info``, as the Open
Model Zoo files do: BGR 0-255, normalisation built in), then the arguments (which may not
contradict the file), then the default: RGB, [0, 1] then ImageNet mean/std outside the graph
(torchreid's convention). The result records the convention and where each part came from.

ONNX Runtime and ``MeanVarianceNormalization``: the ONNX op has no epsilon (``(x - mean) /
sqrt(var)``) and ONNX Runtime computes it literally, so a group whose values are all equal gives
0/0 = NaN. Torch's GroupNorm exported at opset 9 becomes ``Reshape -> MVN -> Reshape`` (the Open
Model Zoo 0267 ONNX file: 12 such nodes over 2-value groups of a 1x1 pooled map, where a ReLU
often leaves both values 0, so every feature came out NaN). OpenVINO's ONNX reader adds
``eps = 1e-9`` outside the square root. Before running a graph on ONNX Runtime, each MVN node is
replaced, in memory, by the same computation with that epsilon (``_fix_mvn``), so both backends
agree; the fix is recorded in ``export_info["graph_fixes"]``. Non-finite features from any backend
raise a :class:`ModelError` rather than reaching the metrics.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reidlab.models.heads import ModelError

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "openvino")
EXPORTED_SUFFIXES = (".onnx", ".xml")
CHANNEL_ORDERS = ("RGB", "BGR")
_RANGES = {"0-1": 1.0, "0-255": 255.0, "1": 1.0, "255": 255.0}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# epsilon OpenVINO's ONNX frontend gives MeanVarianceNormalization (outside the square root)
MVN_EPS = 1e-9


def is_exported_file(path) -> bool:
    """True for a path whose suffix names an exported model (``.onnx``, ``.xml``)."""
    return isinstance(path, (str, Path)) and Path(path).suffix.lower() in EXPORTED_SUFFIXES


@dataclass(frozen=True)
class InputConvention:
    """What an exported graph's input holds (see the module docstring).

    ``channels``: "RGB" or "BGR"; ``value_range``: 1.0 (pixels in [0, 1]) or 255.0;
    ``builtin_normalization``: the graph normalises its input itself (it takes raw pixels);
    ``mean``/``std``: RGB, in [0, 1] units, applied outside the graph when it does not;
    ``stated_by``: per field, "file", "arguments" or "default".
    """

    channels: str = "RGB"
    value_range: float = 1.0
    builtin_normalization: bool = False
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD
    stated_by: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict:
        d = asdict(self)
        d["stated_by"] = dict(self.stated_by)
        builtin = self.builtin_normalization
        d["mean"] = None if builtin else list(self.mean)
        d["std"] = None if builtin else list(self.std)
        return d


def _check_given(given: Mapping) -> dict:
    """The convention arguments that are set, validated and normalised."""
    out = {}
    for k, v in given.items():
        if v is None:
            continue
        if k == "channels":
            if str(v).upper() not in CHANNEL_ORDERS:
                raise ModelError(f"channels must be RGB or BGR, got {v!r}")
            v = str(v).upper()
        elif k == "value_range":
            key = str(v).strip().removesuffix(".0")
            if key not in _RANGES:
                raise ModelError(f"value_range must be 1 (0-1) or 255 (0-255), got {v!r}")
            v = _RANGES[key]
        elif k == "builtin_normalization":
            v = bool(v)
        elif k in ("mean", "std"):
            try:
                v = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                raise ModelError(f"{k} must be three numbers (RGB, [0, 1] units), got {v!r}")
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise ModelError(f"{k} must be three finite numbers (RGB, [0, 1] units), got {v}")
            if k == "std" and min(v) <= 0:
                raise ModelError(f"std must be > 0, got {v}")
        else:  # pragma: no cover (callers pass only the fields above)
            raise ModelError(f"unknown input convention field {k!r}")
        out[k] = v
    if out.get("builtin_normalization") and ("mean" in out or "std" in out):
        raise ModelError(
            "mean/std given for a graph whose normalisation is built in "
            "(builtin_normalization=True): give one or the other"
        )
    return out


def resolve_convention(stated: Mapping, given: Mapping, what: str) -> InputConvention:
    """The convention from what the file states and what the caller gave (``what`` names the
    file in errors). A given value that contradicts the file's is a :class:`ModelError`."""
    given = _check_given(given)
    for k, v in given.items():
        if k in stated and stated[k] != v:
            raise ModelError(
                f"{what}: the file states {k}={stated[k]!r} (its conversion_parameters) but "
                f"{k}={v!r} was given; leave it out or use a file converted that way"
            )
    if stated.get("builtin_normalization") and ("mean" in given or "std" in given):
        raise ModelError(
            f"{what}: the file's normalisation is built in (mean_values/scale_values in its "
            "conversion_parameters); mean/std cannot be given"
        )
    fields = ("channels", "value_range", "builtin_normalization", "mean", "std")
    values, by = {}, []
    for k in fields:
        if k in stated:
            values[k], src = stated[k], "file"
        elif k in given:
            values[k], src = given[k], "arguments"
        else:
            src = "default"
        if k in ("mean", "std") and values.get("builtin_normalization"):
            src = "not used (built in)"
        by.append((k, src))
    return InputConvention(**values, stated_by=tuple(by))


def _parse_values(text: str | None, input_name: str) -> tuple[float, ...] | None:
    """``"data[123.675,116.28,103.53]"`` (Model Optimizer's syntax; also ``"[...]"`` or several
    ``name[...]`` entries) -> the values for ``input_name``."""
    if not text:
        return None
    entries = re.findall(r"([^\[\],]*)\[([^\]]*)\]", text)
    for name, vals in entries:
        if name.strip() in ("", input_name):
            return tuple(float(x) for x in vals.split(",") if x.strip())
    return None


def ir_convention(ov_model, input_name: str) -> dict:
    """What an OpenVINO model's ``rt_info`` states about its input (Model Optimizer's
    ``conversion_parameters``: ``reverse_input_channels``, ``mean_values``, ``scale_values``,
    ``layout``). Empty when it states nothing (e.g. a model converted by ``ovc``)."""

    def rt(key: str) -> str | None:
        path = ["conversion_parameters", key]
        return ov_model.get_rt_info(path).astype(str) if ov_model.has_rt_info(path) else None

    stated: dict = {}
    layout = rt("layout")
    if layout and re.search(r"\bnhwc\b|\(nhwc\)", layout.lower()):
        raise ModelError(
            f"layout {layout!r}: reidlab feeds NCHW input; NHWC graphs are not supported"
        )
    reverse = rt("reverse_input_channels")
    if reverse is not None and reverse.strip().lower() == "true":
        # Model Optimizer swaps the channels first, then applies mean/scale in the source
        # model's order; source re-ID models (torch) take RGB, so the IR takes BGR
        stated["channels"] = "BGR"
    mean = _parse_values(rt("mean_values"), input_name)
    scale = _parse_values(rt("scale_values"), input_name)
    if mean is not None or scale is not None:
        stated["builtin_normalization"] = True
        big = max([abs(v) for v in (mean or ()) + (scale or ())] or [0.0])
        stated["value_range"] = 255.0 if big > 1.0 else 1.0
    return stated


# ---- ONNX graph preparation for ONNX Runtime ---------------------------------------------------


def _opset(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def _fix_mvn(model, eps: float = MVN_EPS) -> int:
    """Replace every ``MeanVarianceNormalization`` node by ``(x - mean) / (sqrt(var) + eps)``
    with the same axes (see the module docstring); returns how many were replaced.

    Written out here because neither onnx nor onnxruntime offers an epsilon for this op; the
    form (eps outside the square root) is what OpenVINO's ONNX reader does."""
    from onnx import helper, numpy_helper

    new_opset = _opset(model) >= 18  # ReduceMean takes axes as an input from opset 18
    nodes, n_fixed = [], 0
    for node in model.graph.node:
        if node.op_type != "MeanVarianceNormalization" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        axes = [0, 2, 3]
        for a in node.attribute:
            if a.name == "axes":
                axes = list(a.ints)
        x, y = node.input[0], node.output[0]

        def t(s: str, y=y) -> str:
            return f"{y}__reidlab_mvn_{s}"

        def mean_of(src: str, dst: str, axes=axes) -> list:
            if new_opset:
                return [helper.make_node("ReduceMean", [src, t("axes")], [dst], keepdims=1)]
            return [helper.make_node("ReduceMean", [src], [dst], axes=axes, keepdims=1)]

        nodes += [
            *mean_of(x, t("mean")),
            helper.make_node("Sub", [x, t("mean")], [t("centred")]),
            helper.make_node("Mul", [t("centred"), t("centred")], [t("sq")]),
            *mean_of(t("sq"), t("var")),
            helper.make_node("Sqrt", [t("var")], [t("sd")]),
            helper.make_node("Add", [t("sd"), t("eps")], [t("den")]),
            helper.make_node("Div", [t("centred"), t("den")], [y]),
        ]
        model.graph.initializer.append(numpy_helper.from_array(np.array(eps, np.float32), t("eps")))
        if new_opset:
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(axes, np.int64), t("axes"))
            )
        n_fixed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return n_fixed


def _free_batch_dim(model) -> bool:
    """Make a fixed batch dimension of the graph's input and outputs symbolic (so ONNX Runtime
    accepts batches of any size); True if anything changed."""
    changed = False
    for v in list(model.graph.input) + list(model.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
            changed = True
    return changed


# ---- runners -------------------------------------------------------------------------------------


class _Runner:
    """One backend's session: ``run(x (B, 3, H, W) float32) -> (B, ...) float32``."""

    backend = ""
    version = ""
    input_name = ""
    input_shape: tuple = ()  # None for dynamic dims
    output_dim: int | None = None
    per_sample = False  # the graph only takes batches of 1
    graph_fixes: tuple[str, ...] = ()

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, x: np.ndarray) -> np.ndarray:
        if not self.per_sample and x.shape[0] > 1:
            try:
                out = self._run(x)
                if out.shape[0] == x.shape[0]:
                    return out
                why = f"output has {out.shape[0]} rows for a batch of {x.shape[0]}"
            except Exception as e:  # noqa: BLE001 (a graph with batch 1 baked in: fall back)
                why = " ".join(str(e).split())[:160]
            log.warning(
                "%s: batches of more than one image fail (%s); running one image at a time",
                self.backend,
                why,
            )
            self.per_sample = True
        if x.shape[0] > 1:
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        return self._run(x)


def _dims(shape) -> list:
    return [int(d) if isinstance(d, int) and d > 0 else None for d in shape]


class _OrtRunner(_Runner):
    def __init__(self, path: Path, threads: int):
        import onnx
        import onnxruntime as ort

        self.backend, self.version = "onnxruntime", ort.__version__
        try:
            model = onnx.load(str(path))
        except Exception as e:  # noqa: BLE001 (DecodeError and friends: one line)
            raise ModelError(
                f"{path}: not a readable ONNX model ({type(e).__name__}: {' '.join(str(e).split())})"
            )
        self.graph_fixes = []
        n = _fix_mvn(model)
        if n:
            self.graph_fixes.append(
                f"{n} MeanVarianceNormalization nodes rewritten with eps {MVN_EPS:g} outside the "
                "square root (ONNX Runtime computes the op without epsilon: 0/0 = NaN)"
            )
        if _free_batch_dim(model):
            self.graph_fixes.append("fixed batch dimension made symbolic")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # "Removing initializer ...": unused tensors, not errors
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({' '.join(str(e).split())})")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one image input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_shape = _dims(inputs[0].shape)
        self.output_name = outputs[0].name
        self.output_dim = _dims(outputs[0].shape)[-1] if len(outputs[0].shape) >= 2 else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


class _OpenVinoRunner(_Runner):
    def __init__(self, path: Path, threads: int):
        import openvino as ov

        self.backend, self.version = "openvino", ov.get_version()
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ModelError(
                f"{path}: the weights file {path.with_suffix('.bin').name} must sit beside the .xml"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{path}: OpenVINO cannot read it ({' '.join(str(e).split())[:200]})")
        if len(model.inputs) != 1:
            raise ModelError(f"{path}: expected one image input, found {len(model.inputs)}")
        inp = model.inputs[0]
        self.input_name = inp.get_any_name()
        self.stated = ir_convention(model, self.input_name)
        pshape = inp.get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in pshape]
        self.graph_fixes = []
        if self.input_shape and self.input_shape[0] is not None:
            try:
                model.reshape({self.input_name: ov.PartialShape([-1, *pshape[1:]])})
                self.graph_fixes.append("fixed batch dimension made dynamic")
            except Exception as e:  # noqa: BLE001 (a graph that cannot reshape: one at a time)
                log.info("%s: keeping batch %s (%s)", path, self.input_shape[0], e)
                self.per_sample = self.input_shape[0] == 1
        out = model.outputs[0].get_partial_shape()
        self.output_dim = (
            out[len(out) - 1].get_length()
            if len(out) >= 2 and out[len(out) - 1].is_static
            else None
        )
        config = {
            "INFERENCE_NUM_THREADS": int(threads),
            "NUM_STREAMS": 1,
            # float32 always: on CPUs with bf16/AMX OpenVINO would otherwise pick bf16
            "INFERENCE_PRECISION_HINT": "f32",
        }
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as e:  # noqa: BLE001
            raise ModelError(
                f"{path}: OpenVINO cannot compile it ({' '.join(str(e).split())[:200]})"
            )
        self.request = self.compiled.create_infer_request()

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: x})[self.compiled.output(0)])


# ---- the model -----------------------------------------------------------------------------------


def _module_base():
    import torch.nn

    return torch.nn.Module


class ExportedModel(_module_base()):
    """A model file run by ONNX Runtime or OpenVINO behind a torch module interface (inference
    only). Build it with :func:`load_exported`. ``export_info`` holds what the results record:
    backend and its version, file and sha256 (and the IR's ``.bin``), threads, convention, graph
    fixes."""

    def __init__(self, runner: _Runner, *, name, path, input_size, convention, info):
        super().__init__()
        self.runner = runner
        self.name = name
        self.path = str(path)
        self.input_size = tuple(input_size)
        self.convention = convention
        self.backend = runner.backend
        self.feature_dim = runner.output_dim
        self.num_classes = 0
        self.resize_mode = "antialias"
        self.checkpoint_trusted = False  # nothing is unpickled
        self.export_info = info
        self.pretrained_source = f"{runner.backend}:{path} sha256:{info['sha256']}"
        if convention.builtin_normalization:  # reidlab only scales to [0, 1]; x * range follows
            self.pixel_mean, self.pixel_std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        else:  # reidlab's normalisation is the graph's: x goes in as it is
            self.pixel_mean, self.pixel_std = tuple(convention.mean), tuple(convention.std)
        self.training = False

    def train(self, mode: bool = True):
        if mode:
            raise ModelError(
                f"{self.name}: an exported model ({self.backend}) is inference-only and cannot "
                "be trained"
            )
        return super().train(False)

    def graph_input(self, x):
        """The graph's input for reidlab's normalised batch ``x`` (torch, same device)."""
        import torch

        mean = torch.as_tensor(self.pixel_mean, dtype=torch.float32, device=x.device)
        std = torch.as_tensor(self.pixel_std, dtype=torch.float32, device=x.device)
        c = self.convention
        # reidlab fed (img01 - pixel_mean) / pixel_std; the graph wants (img01 * r - m) / s
        if c.builtin_normalization:
            m, s = torch.zeros(3), torch.ones(3)
        else:
            m = torch.as_tensor(c.mean) * c.value_range
            s = torch.as_tensor(c.std) * c.value_range
        m, s = m.to(x.device, torch.float32), s.to(x.device, torch.float32)
        gain = (std * c.value_range / s).view(1, 3, 1, 1)
        shift = ((mean * c.value_range - m) / s).view(1, 3, 1, 1)
        x = x.float()
        if bool((shift != 0).any()) or bool((gain != 1).any()):
            x = x * gain + shift
        if c.channels == "BGR":
            x = x.flip(1)
        return x

    def forward(self, x):
        import torch

        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected a (B, 3, H, W) batch, got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.input_size:
            raise ModelError(
                f"{self.name}: the graph takes {self.input_size[0]}x{self.input_size[1]} input, "
                f"got {x.shape[-2]}x{x.shape[-1]} (an exported model's input size is fixed)"
            )
        arr = np.ascontiguousarray(self.graph_input(x).detach().cpu().numpy(), dtype=np.float32)
        out = np.asarray(self.runner.run(arr), dtype=np.float32).reshape(arr.shape[0], -1)
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise ModelError(
                f"{self.name}: {self.backend} returned non-finite features for {int(bad.sum())} "
                f"of {len(out)} images ({self.path}); try the other backend"
            )
        return torch.from_numpy(out).to(x.device)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, backend={self.backend!r}, path={self.path!r}"


def _default_threads() -> int:
    import torch

    return torch.get_num_threads()


def load_exported(
    path,
    *,
    name: str | None = None,
    backend: str | None = None,
    channels: str | None = None,
    value_range: float | str | None = None,
    builtin_normalization: bool | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: tuple[int, int] | None = None,
    threads: int | None = None,
) -> ExportedModel:
    """An exported model file as a reidlab model (see the module docstring).

    Args:
        path: ``.onnx`` or ``.xml`` (OpenVINO IR; its ``.bin`` beside it).
        name: the model's name in results (default: the file's stem).
        backend: "onnxruntime" or "openvino"; default "onnxruntime" for ``.onnx`` and
            "openvino" for ``.xml`` (an IR runs on OpenVINO only).
        channels, value_range, builtin_normalization, mean, std: the input convention
            (:class:`InputConvention`) where the file does not state it; contradicting the file
            is an error. ``mean``/``std`` are RGB in [0, 1] units.
        input_size: ``(H, W)``; needed only when the graph's spatial size is dynamic, and must
            equal it when fixed.
        threads: the runtime's intra-op threads (default ``torch.get_num_threads()``).

    Raises:
        ModelError: one line: a missing or unreadable file, an unknown backend or convention, a
            convention that contradicts the file, an input that is not one NCHW 3-channel image.
    """
    from reidlab.hashing import file_hash

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EXPORTED_SUFFIXES:
        raise ModelError(f"{p}: an exported model is a .onnx or .xml (OpenVINO IR) file")
    if not p.is_file():
        found = "a folder" if p.exists() else "nothing"
        raise ModelError(f"exported model: expected a file at {p}, found {found}")
    backend = (backend or ("openvino" if suffix == ".xml" else "onnxruntime")).lower()
    if backend not in BACKENDS:
        raise ModelError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if suffix == ".xml" and backend != "openvino":
        raise ModelError(f"{p}: an OpenVINO IR (.xml) runs on openvino only, not {backend}")
    threads = int(threads) if threads is not None else _default_threads()
    if threads < 1:
        raise ModelError(f"threads must be >= 1, got {threads}")
    runner = _OrtRunner(p, threads) if backend == "onnxruntime" else _OpenVinoRunner(p, threads)
    stated = getattr(runner, "stated", {})
    convention = resolve_convention(
        stated,
        {
            "channels": channels,
            "value_range": value_range,
            "builtin_normalization": builtin_normalization,
            "mean": mean,
            "std": std,
        },
        str(p),
    )
    shape = runner.input_shape
    if len(shape) != 4 or shape[1] not in (3, None):
        raise ModelError(
            f"{p}: input {runner.input_name!r} has shape {shape}; reidlab feeds one NCHW "
            "3-channel image batch"
        )
    graph_hw = tuple(shape[2:])
    if input_size is not None:
        size = tuple(int(s) for s in input_size)
        if None not in graph_hw and size != graph_hw:
            raise ModelError(
                f"{p}: the graph takes {graph_hw[0]}x{graph_hw[1]} input; input_size "
                f"{size[0]}x{size[1]} was given"
            )
    elif None in graph_hw:
        raise ModelError(
            f"{p}: the graph's input size is dynamic ({shape}); give input_size (H, W)"
        )
    else:
        size = graph_hw
    files = {str(p): file_hash(p)}
    if suffix == ".xml":
        files[str(p.with_suffix(".bin"))] = file_hash(p.with_suffix(".bin"))
    info = {
        "backend": backend,
        "backend_version": runner.version,
        "file": str(p),
        "sha256": files[str(p)],
        "files_sha256": files,
        "threads": threads,
        "input_name": runner.input_name,
        "input_convention": convention.as_dict(),
        "graph_fixes": list(runner.graph_fixes),
        "precision": "f32",
    }
    model = ExportedModel(
        runner,
        name=name or p.stem,
        path=p,
        input_size=size,
        convention=convention,
        info=info,
    )
    log.info(
        "loaded %s on %s %s (%s %s, normalisation %s; %d threads)",
        p,
        backend,
        runner.version,
        convention.channels,
        "0-255" if convention.value_range == 255 else "0-1",
        "built in" if convention.builtin_normalization else "outside",
        threads,
    )
    return model


__all__ = [
    "BACKENDS",
    "EXPORTED_SUFFIXES",
    "ExportedModel",
    "InputConvention",
    "is_exported_file",
    "load_exported",
    "resolve_convention",
]
