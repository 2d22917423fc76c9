"""The interactive explorer: tune anonymization with sliders and watch the faces change.

:func:`explorer` loads a handful of crops and their face boxes once (detections are computed
once at a low threshold and filtered by the threshold slider, so moving a slider only re-runs
the batched anonymization and one small figure: live on CPU). Headless (papermill, CI), call
:func:`static_settings_figure` instead, which renders a few settings side by side.

The controls come from the anonymization method registry (:mod:`reidlab.anonymize.methods`): a
method dropdown, one control per common setting and one per setting of each method (a
:class:`reidlab.params.Param` with a ``widget``), shown while that method is selected; a newly
registered method appears here without a change to this module.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np


def default_settings() -> list[dict]:
    """One setting per registered method (but ``none``: the originals are shown anyway) at its
    controls' initial values, e.g. ``{"method": "blur", "sigma_rel": 0.25}``: the rows of
    :func:`static_settings_figure`."""
    from reidlab.anonymize.methods import METHODS

    out = []
    for m in METHODS.values():
        if m.name == "none":
            continue
        s = {"method": m.name}
        for p in m.params:
            if p.widget is not None and p.nargs is None:
                value = p.widget.get("value", p.default)
                if value is not None:
                    s[p.name] = value
        out.append(s)
    return out


@dataclass
class ExplorerData:
    """Crops as a ``(B, 3, H, W)`` float tensor in [0, 1] plus raw detections ``(K, 5)`` each."""

    images: object
    detections: list[np.ndarray]
    paths: list[str] = field(default_factory=list)

    def boxes(self, threshold: float, max_faces: int = 4):
        """Padded ``(B, K, 4)`` boxes and ``(B, K)`` validity for detections >= threshold
        (``K = max_faces``; an image's first ``max_faces`` such detections)."""
        import torch

        from reidlab.boxes import pad_boxes

        boxes, valid = pad_boxes(self.detections, max_faces, min_score=threshold, dtype=np.float32)
        dev = self.images.device
        return torch.from_numpy(boxes).to(dev), torch.from_numpy(valid).to(dev)


def load_explorer_data(
    dataset,
    n: int = 8,
    detector: str = "centerface",
    split: str = "query",
    seed: int = 0,
    min_threshold: float = 0.05,
    **detector_params,
) -> ExplorerData:
    """Pick ``n`` crops (seeded) from ``dataset.<split>`` and detect faces once at ``min_threshold``.

    ``detector="oracle"`` uses the dataset's ground-truth boxes (synthetic data) with score 1.
    """
    import torch

    from reidlab.faces.options import detector_from_config
    from reidlab.imageio import read_rgb

    samples = dataset.split(split)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(samples), size=min(n, len(samples)), replace=False).tolist())
    paths = [samples[i].path for i in pick]
    arrays = [read_rgb(p) for p in paths]
    det = detector_from_config(
        detector, {"threshold": min_threshold, **detector_params}, root=dataset.root
    )
    dets = det.detect_batch(
        arrays, paths
    )  # the images are decoded already; the oracle uses the paths
    h, w = arrays[0].shape[:2]
    imgs, boxes = [], []
    for a, d in zip(arrays, dets):
        d = np.asarray(d, np.float32).reshape(-1, 5).copy()
        if a.shape[:2] != (h, w):  # one batch needs one size: resize, and move the boxes with it
            import cv2

            d[:, [0, 2]] *= w / a.shape[1]
            d[:, [1, 3]] *= h / a.shape[0]
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        imgs.append(torch.from_numpy(a).permute(2, 0, 1).float() / 255)
        boxes.append(d)
    return ExplorerData(torch.stack(imgs), boxes, paths)


def anonymize_with(data: ExplorerData, threshold: float = 0.5, **settings):
    """Anonymize the explorer's crops with ``Anonymizer(**settings)`` at a detection threshold."""
    import torch

    from reidlab.anonymize import Anonymizer

    boxes, valid = data.boxes(threshold)
    with torch.no_grad():
        return Anonymizer(**settings)(data.images, boxes, valid)


def _label(settings: dict) -> str:
    rest = " ".join(f"{k}={v}" for k, v in settings.items() if k != "method")
    return settings.get("method", "") + (f"\n{rest}" if rest else "")


def static_settings_figure(
    data: ExplorerData,
    settings=None,
    threshold: float = 0.5,
    max_images: int = 8,
    draw_boxes: bool = True,
):
    """Original crops (with the boxes used) and one row per anonymization setting (default:
    :func:`default_settings`, one per registered method)."""
    from reidlab.plots import draw_boxes as _draw
    from reidlab.plots import side_by_side

    if settings is None:
        settings = default_settings()
    variants = {_label(s): anonymize_with(data, threshold, **s) for s in settings}
    fig = side_by_side(data.images, variants, max_images=max_images)
    if draw_boxes:
        boxes, valid = data.boxes(threshold)
        for c, ax in enumerate(fig.axes[: min(max_images, len(data.images))]):
            _draw(ax, boxes[c][valid[c]].cpu().numpy())
    return fig


def param_control(param, widgets=None):
    """The ipywidgets control of a :class:`reidlab.params.Param` (its :attr:`~Param.widget` options:
    ``label``, ``value`` (initial; default the param's default), ``min``, ``max``, ``step``), or
    ``None`` when it has none (``widget=None``, a tuple-valued or an unset optional param).

    bool -> Checkbox, choices -> Dropdown, int -> IntSlider, float -> FloatSlider; a slider's range
    is the param's range unless ``min`` / ``max`` narrow it (an open-ended range needs them, else
    it runs to ``max(1, 4 * default)``).
    """
    if param.widget is None or param.nargs is not None:
        return None
    if widgets is None:
        import ipywidgets as widgets
    opts = dict(param.widget)
    label = opts.pop("label", param.name)
    value = opts.pop("value", param.default)
    if value is None:
        return None
    common = {"value": value, "description": label, "style": {"description_width": "initial"}}
    if param.type is bool:
        return widgets.Checkbox(**common)
    if param.choices is not None:
        return widgets.Dropdown(options=list(param.choices), **common)
    if param.type not in (int, float):
        return None
    step = opts.pop("step", 1 if param.type is int else None)
    lo = opts.pop("min", None)
    hi = opts.pop("max", None)
    if lo is None:
        lo = param.low if param.low is not None else min(0, value)
        if param.low_open and param.low is not None:
            lo += step if step else 0.01
    if hi is None:
        hi = param.high if param.high is not None else max(1, 4 * abs(value))
        if param.high_open and param.high is not None:
            hi -= step if step else 0.01
    if param.type is int:
        return widgets.IntSlider(min=int(lo), max=int(hi), step=int(step), **common, **opts)
    step = step if step is not None else (hi - lo) / 100
    return widgets.FloatSlider(min=lo, max=hi, step=step, **common, **opts)


@dataclass
class ExplorerControls:
    """The explorer's anonymization controls, all generated from the method registry: the method
    dropdown, one control per common setting (:data:`~reidlab.anonymize.methods.COMMON_PARAMS`)
    and, per method, one control per setting that has one (:attr:`Param.widget`), shown only while
    that method is selected. :meth:`settings` is the ``Anonymizer`` keyword dict they describe."""

    method: object
    common: dict
    per_method: dict  # method name -> {param name: control}

    @classmethod
    def build(cls, method: str = "blur", widgets=None) -> ExplorerControls:
        if widgets is None:
            import ipywidgets as widgets
        from reidlab.anonymize.methods import COMMON_PARAMS, METHODS

        names = list(METHODS)
        dropdown = widgets.Dropdown(
            options=names, value=method if method in names else names[0], description="method"
        )
        common = {p.name: c for p in COMMON_PARAMS if (c := param_control(p, widgets)) is not None}
        per = {
            m.name: {p.name: c for p in m.params if (c := param_control(p, widgets)) is not None}
            for m in METHODS.values()
        }
        self = cls(dropdown, common, per)
        dropdown.observe(lambda _: self.show_selected(), names="value")
        self.show_selected()
        return self

    def show_selected(self) -> None:
        """Show the selected method's controls, hide the other methods'."""
        for name, controls in self.per_method.items():
            for c in controls.values():
                c.layout.display = "" if name == self.method.value else "none"

    def settings(self) -> dict:
        s = {"method": self.method.value}
        s.update({k: c.value for k, c in self.common.items()})
        s.update({k: c.value for k, c in self.per_method.get(self.method.value, {}).items()})
        return s

    @property
    def widgets(self) -> list:
        """Every control: the method, its settings' (all methods', visible or not), the common."""
        own = [c for controls in self.per_method.values() for c in controls.values()]
        return [self.method, *own, *self.common.values()]


def explorer(data: ExplorerData, threshold: float = 0.5):
    """An ipywidgets app: the method, its settings (blur sigma relative to face height, pixel blocks,
    fill, ...: every setting of the registry with a control), mask shape and scale, feather, and
    the detector threshold. Returns the widget to display."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    controls = ExplorerControls.build(widgets=W)
    thr = W.FloatSlider(
        value=threshold, min=0.05, max=0.95, step=0.05, description="det. threshold"
    )
    out = W.Image(format="png")
    status = W.HTML()

    def render(*_):
        fig = static_settings_figure(data, [controls.settings()], threshold=thr.value)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        out.value = buf.getvalue()
        n = sum(
            int((np.asarray(d).reshape(-1, 5)[:, 4] >= thr.value).any()) for d in data.detections
        )
        status.value = (
            f"{n} of {len(data.detections)} crops have a face at threshold {thr.value:.2f}"
        )

    for w in (*controls.widgets, thr):
        w.observe(render, names="value")
    render()
    return W.HBox([W.VBox([*controls.widgets, thr, status]), out])
