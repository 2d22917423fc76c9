"""The interactive explorer: tune anonymization with sliders and watch the faces change.

:func:`explorer` loads a handful of crops and their face boxes once (detections are computed
once at a low threshold and filtered by the threshold slider, so moving a slider only re-runs
the batched anonymization and one small figure: live on CPU). Headless (papermill, CI), call
:func:`static_settings_figure` instead, which renders a few settings side by side.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

DEFAULT_SETTINGS = (
    {"method": "blur", "sigma_rel": 0.25},
    {"method": "pixelate", "blocks": 4},
    {"method": "fill", "fill": "mean"},
    {"method": "zero"},
)


@dataclass
class ExplorerData:
    """Crops as a ``(B, 3, H, W)`` float tensor in [0, 1] plus raw detections ``(K, 5)`` each."""

    images: object
    detections: list[np.ndarray]
    paths: list[str] = field(default_factory=list)

    def boxes(self, threshold: float, max_faces: int = 4):
        """Padded ``(B, K, 4)`` boxes and ``(B, K)`` validity for detections >= threshold."""
        import torch

        b = len(self.detections)
        boxes = torch.zeros(b, max_faces, 4)
        valid = torch.zeros(b, max_faces, dtype=torch.bool)
        for i, d in enumerate(self.detections):
            d = np.asarray(d, dtype=np.float32).reshape(-1, 5)
            d = d[d[:, 4] >= threshold][:max_faces]
            boxes[i, : len(d)] = torch.from_numpy(d[:, :4])
            valid[i, : len(d)] = True
        return boxes.to(self.images.device), valid.to(self.images.device)


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

    from reidlab.faces import build_detector
    from reidlab.imageio import read_rgb

    samples = dataset.split(split)
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(samples), size=min(n, len(samples)), replace=False).tolist())
    paths = [samples[i].path for i in pick]
    arrays = [read_rgb(p) for p in paths]
    if detector == "oracle":  # ground truth is looked up by path
        dets = build_detector("oracle", root=dataset.root, **detector_params).detect_paths(paths)
    else:  # the images are already decoded: detect on them instead of reading them again
        dets = build_detector(detector, threshold=min_threshold, **detector_params).detect_batch(
            arrays
        )
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
    settings=DEFAULT_SETTINGS,
    threshold: float = 0.5,
    max_images: int = 8,
    draw_boxes: bool = True,
):
    """Original crops (with the boxes used) and one row per anonymization setting."""
    from reidlab.plots import draw_boxes as _draw
    from reidlab.plots import side_by_side

    variants = {_label(s): anonymize_with(data, threshold, **s) for s in settings}
    fig = side_by_side(data.images, variants, max_images=max_images)
    if draw_boxes:
        boxes, valid = data.boxes(threshold)
        for c, ax in enumerate(fig.axes[: min(max_images, len(data.images))]):
            _draw(ax, boxes[c][valid[c]].cpu().numpy())
    return fig


def explorer(data: ExplorerData, threshold: float = 0.5):
    """An ipywidgets app: method, strength (blur sigma relative to face height, pixel blocks),
    mask shape and scale, feather, and detector threshold. Returns the widget to display."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    method = W.Dropdown(
        options=["blur", "pixelate", "fill", "zero", "none"], value="blur", description="method"
    )
    sigma = W.FloatSlider(value=0.25, min=0.02, max=1.0, step=0.01, description="sigma / face h")
    blocks = W.IntSlider(value=4, min=1, max=16, description="pixel blocks")
    fill = W.Dropdown(options=["mean", "constant", "noise"], value="mean", description="fill")
    mask = W.Dropdown(options=["box", "ellipse"], value="box", description="mask")
    scale = W.FloatSlider(value=1.2, min=0.8, max=2.0, step=0.05, description="box scale")
    feather = W.FloatSlider(value=0.0, min=0.0, max=6.0, step=0.5, description="feather px")
    thr = W.FloatSlider(
        value=threshold, min=0.05, max=0.95, step=0.05, description="det. threshold"
    )
    out = W.Image(format="png")
    status = W.HTML()

    def settings() -> dict:
        s = {
            "method": method.value,
            "mask": mask.value,
            "scale": scale.value,
            "feather": feather.value,
        }
        if method.value == "blur":
            s["sigma_rel"] = sigma.value
        elif method.value == "pixelate":
            s["blocks"] = blocks.value
        elif method.value == "fill":
            s["fill"] = fill.value
        return s

    def render(*_):
        fig = static_settings_figure(data, [settings()], threshold=thr.value)
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

    for w in (method, sigma, blocks, fill, mask, scale, feather, thr):
        w.observe(render, names="value")
    render()
    controls = W.VBox([method, sigma, blocks, fill, mask, scale, feather, thr, status])
    return W.HBox([controls, out])
