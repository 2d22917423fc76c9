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
    pids: list[int] = field(default_factory=list)
    camids: list[int] = field(default_factory=list)
    gallery: ExplorerData | None = None  # a small gallery for the live ranking (queries: these)

    def boxes(self, threshold: float, max_faces: int = 4):
        """Padded ``(B, K, 4)`` boxes and ``(B, K)`` validity for detections >= threshold
        (``K = max_faces``; an image's first ``max_faces`` such detections)."""
        import torch

        from reidlab.boxes import pad_boxes

        boxes, valid = pad_boxes(self.detections, max_faces, min_score=threshold, dtype=np.float32)
        dev = self.images.device
        return torch.from_numpy(boxes).to(dev), torch.from_numpy(valid).to(dev)


def _load_crops(dataset, samples, detector, min_threshold, detector_params) -> ExplorerData:
    """Decode ``samples`` into one batch (resized to the first one's size, boxes moved with it)
    and detect faces once at ``min_threshold``."""
    import torch

    from reidlab.faces.options import detector_from_config
    from reidlab.imageio import read_rgb

    paths = [s.path for s in samples]
    arrays = [read_rgb(p) for p in paths]
    det = detector_from_config(
        detector, {"threshold": min_threshold, **detector_params}, root=dataset.root
    )
    dets = det.detect_batch(arrays, paths)  # decoded already; the oracle uses the paths
    h, w = arrays[0].shape[:2]
    imgs, boxes = [], []
    for a, d in zip(arrays, dets):
        d = np.asarray(d, np.float32).reshape(-1, 5).copy()
        if a.shape[:2] != (h, w):  # one batch needs one size: resize, and move the boxes with it
            from reidlab.resize import resize_boxes, resize_image

            d[:, :4] = resize_boxes(d[:, :4], a.shape[:2], (h, w))
            a = resize_image(a, (h, w))
        imgs.append(torch.from_numpy(a).permute(2, 0, 1).float() / 255)
        boxes.append(d)
    return ExplorerData(
        torch.stack(imgs),
        boxes,
        paths,
        [int(s.pid) for s in samples],
        [int(s.camid) for s in samples],
    )


def load_explorer_data(
    dataset,
    n: int = 8,
    detector: str = "centerface",
    split: str = "query",
    seed: int = 0,
    min_threshold: float = 0.05,
    face_threshold: float = 0.5,
    gallery: int = 0,
    **detector_params,
) -> ExplorerData:
    """Pick ``n`` crops (seeded) from ``dataset.<split>``, crops with a face first, and detect
    faces once at ``min_threshold``.

    Faces first: the detector runs on up to ``4 n`` seeded candidates and the crops with a
    detection scoring ``>= face_threshold`` are taken before the others (a crop without a face
    shows nothing of anonymization). ``gallery > 0`` also loads a gallery of that many crops
    (every gallery crop of the picked identities, then seeded distractors) as ``data.gallery``,
    for :func:`live_ranking`. ``detector="oracle"`` uses the dataset's ground-truth boxes
    (synthetic data) with score 1.
    """
    samples = dataset.split(split)
    rng = np.random.default_rng(seed)
    pool = rng.permutation(len(samples))[: min(len(samples), 4 * n)].tolist()
    cand = _load_crops(
        dataset, [samples[i] for i in pool], detector, min_threshold, detector_params
    )
    has_face = [bool((d[:, 4] >= face_threshold).any()) for d in cand.detections]
    keep = sorted(
        sorted(range(len(pool)), key=lambda i: (not has_face[i], i))[:n], key=lambda i: pool[i]
    )
    data = ExplorerData(
        cand.images[keep],
        [cand.detections[i] for i in keep],
        [cand.paths[i] for i in keep],
        [cand.pids[i] for i in keep],
        [cand.camids[i] for i in keep],
    )
    if gallery > 0:
        pids = set(data.pids)
        g = dataset.split("gallery")
        same = [i for i, s in enumerate(g) if s.pid in pids]
        rest = [i for i in rng.permutation(len(g)).tolist() if g[i].pid not in pids]
        pick = sorted((same + rest)[: max(gallery, 1)])
        data.gallery = _load_crops(
            dataset, [g[i] for i in pick], detector, min_threshold, detector_params
        )
    return data


def anonymize_with(data: ExplorerData, threshold: float = 0.5, **settings):
    """Anonymize the explorer's crops with ``Anonymizer(**settings)`` at a detection threshold."""
    import torch

    from reidlab.anonymize import Anonymizer

    boxes, valid = data.boxes(threshold)
    with torch.no_grad():
        return Anonymizer(**settings)(data.images, boxes, valid)


def setting_label(settings: dict) -> str:
    """A row label: the method, then one ``name=value`` per line, numbers to 3 significant digits
    (``scale=1.2``, not ``scale=1.2000000000000002``)."""
    from reidlab.plots import fmt_value

    rest = [f"{k}={fmt_value(v)}" for k, v in settings.items() if k != "method"]
    return "\n".join([str(settings.get("method", "")), *rest])


#: The explorer's figures: pixels per inch and inches per crop height; a 2:1 re-ID crop is then
#: shown EXPLORER_CROP_IN * EXPLORER_DPI / 2 = 140 px wide.
EXPLORER_DPI = 100
EXPLORER_CROP_IN = 2.8


def static_settings_figure(
    data: ExplorerData,
    settings=None,
    threshold: float = 0.5,
    max_images: int = 8,
    draw_boxes: bool = True,
):
    """Original crops (with the boxes used) and one row per anonymization setting (default:
    :func:`default_settings`, one per registered method)."""
    from matplotlib.patches import Patch

    from reidlab.plots import draw_boxes as _draw
    from reidlab.plots import fmt_value, side_by_side

    if settings is None:
        settings = default_settings()
    variants = {setting_label(s): anonymize_with(data, threshold, **s) for s in settings}
    n = min(max_images, len(data.images))
    faces = sum(bool((np.asarray(d)[:, 4] >= threshold).any()) for d in data.detections[:n])
    fig = side_by_side(
        data.images,
        variants,
        max_images=max_images,
        scale=EXPLORER_CROP_IN,
        title=f"Original crops (top row) and each anonymization setting below; {faces} of {n} "
        f"crops have a face at detector threshold {fmt_value(threshold)}",
        legend=[Patch(fill=False, edgecolor="lime", label="detected face box (top row)")]
        if draw_boxes
        else None,
    )
    if draw_boxes:
        boxes, valid = data.boxes(threshold)
        for c, ax in enumerate(fig.axes[:n]):
            _draw(ax, boxes[c][valid[c]].cpu().numpy())
    return fig


def live_ranking(
    data: ExplorerData,
    model,
    settings: dict,
    threshold: float = 0.5,
    query: int | None = None,
    topk: int = 10,
    distance: str = "euclidean",
) -> dict:
    """mAP of ``model`` on the explorer's small subset (its crops as queries, ``data.gallery`` as
    gallery), original and with query and gallery anonymized by ``settings`` at ``threshold``,
    and the ranked lists of crop ``query`` (default: the first with a face at ``threshold``) in
    both, as rows for :func:`reidlab.plots.ranked_rows`.

    Returns:
        ``{"mAP_original", "mAP", "n_queries", "n_gallery", "rows"}`` (mAP in points).
    """
    import torch

    from reidlab.evaluation import pairwise_distance, rank_metrics
    from reidlab.evaluation.coverage import top_valid_matches
    from reidlab.evaluation.features import forward_features
    from reidlab.resize import resize_batch, resize_mode_for

    if data.gallery is None:
        raise ValueError("live_ranking needs data with a gallery: load_explorer_data(gallery=N)")
    g = data.gallery
    if query is None:
        faces = data.boxes(threshold)[1].any(dim=1).tolist()
        query = faces.index(True) if True in faces else 0
    mean = getattr(model, "pixel_mean", (0.485, 0.456, 0.406))
    std = getattr(model, "pixel_std", (0.229, 0.224, 0.225))
    size = tuple(getattr(model, "input_size", data.images.shape[-2:]))
    q_pids, g_pids = np.asarray(data.pids), np.asarray(g.pids)
    q_cams, g_cams = np.asarray(data.camids), np.asarray(g.camids)

    def feats(images):
        x = images
        if tuple(x.shape[-2:]) != size:
            x = resize_batch(x, size, resize_mode_for(model))
        with torch.no_grad():
            return forward_features(model.eval(), x, mean, std)

    out, rows = {"n_queries": len(q_pids), "n_gallery": len(g_pids)}, []
    for name, q_img, g_img in (
        ("original", data.images, g.images),
        (
            setting_label(settings).replace("\n", " "),
            anonymize_with(data, threshold, **settings),
            anonymize_with(g, threshold, **settings),
        ),
    ):
        dist = pairwise_distance(feats(q_img), feats(g_img), metric=distance)
        m = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
        out["mAP_original" if name == "original" else "mAP"] = 100 * float(m.mAP)
        d = np.asarray(dist.detach().cpu()) if hasattr(dist, "detach") else np.asarray(dist)
        top = top_valid_matches(
            d[query : query + 1],
            q_pids[query : query + 1],
            g_pids,
            q_cams[query : query + 1],
            g_cams,
            k=topk,
        )[0]
        top = top[top >= 0]
        anon = name != "original"
        _, g_valid = g.boxes(threshold)
        _, q_valid = data.boxes(threshold)
        rows.append(
            {
                "label": name,
                "query_image": q_img[query],
                "query_pid": int(q_pids[query]),
                "query_marked": anon and bool(q_valid[query].any()),
                "gallery": [g_img[i] for i in top],
                "match": (g_pids[top] == q_pids[query]).tolist(),
                "marked": [anon and bool(g_valid[i].any()) for i in top],
            }
        )
    out["rows"] = rows
    return out


def ranking_figure(result: dict, topk: int = 10):
    """:func:`reidlab.plots.ranked_rows` of a :func:`live_ranking` result, its mAPs in the title."""
    from reidlab.plots import ranked_rows

    return ranked_rows(
        result["rows"],
        topk=topk,
        title=f"One query's top {topk} in a {result['n_gallery']}-crop gallery; mAP over "
        f"{result['n_queries']} queries: original {result['mAP_original']:.1f}, anonymized "
        f"{result['mAP']:.1f} ({result['mAP'] - result['mAP_original']:+.1f} points)",
    )


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
            options=names,
            value=method if method in names else names[0],
            description="method",
            style={"description_width": "initial"},
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


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=EXPLORER_DPI)
    plt.close(fig)
    return buf.getvalue()


def png_width(png: bytes) -> int:
    """The pixel width of a PNG (its IHDR chunk: bytes 16-19, big-endian)."""
    return int.from_bytes(png[16:20], "big")


def _fix_size(image) -> None:
    """Show an Image widget at its PNG's own pixel width: never squeezed by the HBox's flex layout
    (or by a long label)."""
    w = png_width(image.value)
    image.width = str(w)
    image.layout.min_width = f"{w}px"


def explorer(data: ExplorerData, threshold: float = 0.5, model=None, topk: int = 10):
    """An ipywidgets app: the method, its settings (blur sigma relative to face height, pixel blocks,
    fill, ...: every setting of the registry with a control), mask shape and scale, feather, and
    the detector threshold. With a ``model`` and ``data.gallery``, also one query's ranked list and
    the subset's mAP, original vs anonymized, updated as the sliders move. Returns the widget.

    The images are shown at their pixel size (no shrinking as labels grow): a crop is about
    140 px wide (:data:`EXPLORER_CROP_IN`, :data:`EXPLORER_DPI`).
    """
    import ipywidgets as W

    controls = ExplorerControls.build(widgets=W)
    thr = W.FloatSlider(
        value=threshold,
        min=0.05,
        max=0.95,
        step=0.05,
        description="detector threshold",
        style={"description_width": "initial"},
    )
    out = W.Image(format="png")
    ranking = W.Image(format="png")
    status = W.HTML()
    live = model is not None and data.gallery is not None

    def render(*_):
        fig = static_settings_figure(data, [controls.settings()], threshold=thr.value)
        out.value = _png(fig)
        _fix_size(out)
        n = sum(
            int((np.asarray(d).reshape(-1, 5)[:, 4] >= thr.value).any()) for d in data.detections
        )
        status.value = (
            f"{n} of {len(data.detections)} crops have a face at threshold {thr.value:.2f}"
        )
        if live:
            res = live_ranking(data, model, controls.settings(), thr.value, topk=topk)
            ranking.value = _png(ranking_figure(res, topk=topk))
            _fix_size(ranking)
            status.value += (
                f"<br>mAP on {res['n_queries']} queries x {res['n_gallery']} gallery crops: "
                f"original {res['mAP_original']:.1f}, anonymized {res['mAP']:.1f}"
            )

    for w in (*controls.widgets, thr):
        w.observe(render, names="value")
    render()
    panel = W.VBox([*controls.widgets, thr, status], layout=W.Layout(min_width="300px"))
    images = W.VBox([out, ranking] if live else [out])
    return W.HBox([panel, images])
