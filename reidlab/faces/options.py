"""Building a detector from command-line flags or a configuration dict: one place, one default.

Every setting is described once, as a :class:`reidlab.params.Param` (its check, its flag, its help);
its DEFAULT is not restated here: a setting that is not given is not passed, so the backend's own
default applies (the class signature is the one place it is written: CenterFace ``upscale=2.0,
threshold=0.45, flip_tta=True, box_scale=1.3``). The help lines quote those defaults from the
signatures.

* :func:`add_detector_arguments` ``(parser_or_group)``: ``--detector --model --upscale --threshold
  --flip-tta/--no-flip-tta --box-scale --head-region --fail-closed --full-coverage --threads``
  (all default to ``None`` = "not given"; ``--full-coverage`` is a switch that fills
  ``fail_closed`` with the default head prior when ``--fail-closed`` is not given, so every command
  that reads ``args.fail_closed`` gives every image a box);
* :func:`detector_from_args` ``(args, root=None)`` and :func:`detector_from_config`
  ``(name, params, root=None)`` build the detector with only the settings given; a backend that
  answers by path (the oracle) gets ``root``;
* bad values: ``ValueError`` from the flag (one argparse line, exit 2) or
  :class:`~reidlab.faces.base.DetectorError` from the config (one line from the CLI).

>>> det = detector_from_config("centerface", {"threshold": 0.5})         # doctest: +SKIP
>>> det = detector_from_config("oracle", {}, root="/data/synthetic")     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping

from reidlab.faces.base import (
    Detector,
    DetectorError,
    accepted_params,
    available_detectors,
    detector_class,
)
from reidlab.faces.prior import HeadPrior
from reidlab.params import Param

DEFAULT_DETECTOR = "centerface"

DETECTOR = Param(
    "detector",
    str,
    DEFAULT_DETECTOR,
    "face detector",
    choices=tuple(available_detectors()),
)
MODEL = Param(
    "model",
    str,
    None,
    "the detector's model file: onnx/torch (required, see reidlab/faces/external.py), "
    "centerface (another CenterFace ONNX file)",
    optional=True,
)

# The settings every command shares; ``None`` default = "the backend's own".
DETECTOR_PARAMS: tuple[Param, ...] = (
    Param("upscale", float, None, "resize factor before detection", low=0, low_open=True),
    Param("threshold", float, None, "score threshold", low=0, high=1),
    Param("flip_tta", bool, None, "also run the horizontally flipped images (centerface)"),
    Param(
        "box_scale",
        float,
        None,
        "enlarge the detector's boxes about their centres by this factor",
        low=0,
        low_open=True,
    ),
    Param(
        "head_region",
        float,
        None,
        "drop boxes whose centre is below this fraction of the crop height",
        low=0,
        high=1,
        low_open=True,
        optional=True,
    ),
    Param(
        "threads",
        int,
        None,
        "onnxruntime intra-op threads, 0 = onnxruntime's choice (centerface, onnx)",
        low=0,
    ),
)

# Not a detector setting but given with them: images without a face get the head prior box.
FAIL_CLOSED = Param(
    "fail_closed",
    float,
    None,
    "images without a face get a head prior box covering this top fraction of the crop "
    "(default off)",
    low=0,
    high=1,
    low_open=True,
    optional=True,
)

# The study's full-coverage switch: every crop gets a box (detections, else the head prior), so
# every crop of an anonymized split is anonymized. One code path with fail_closed: it only turns
# the prior on (reidlab.faces.dataset.coverage_prior; ExperimentConfig.full_coverage).
FULL_COVERAGE = Param(
    "full_coverage",
    bool,
    False,
    "anonymize every crop: detector boxes where found, the head prior (--fail-closed's, "
    f"default {HeadPrior().height:g} of the height) for every crop without one",
)

_BY_NAME = {p.name: p for p in (MODEL, *DETECTOR_PARAMS, FAIL_CLOSED)}


class _FullCoverageAction(argparse.Action):
    """``--full-coverage``: ``full_coverage=True`` and, unless ``--fail-closed`` gives a height
    (before or after it), ``fail_closed`` = the default head prior's height."""

    def __init__(self, option_strings, dest, fail_closed_dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=False, **kw)
        self.fail_closed_dest = fail_closed_dest

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        if getattr(namespace, self.fail_closed_dest, None) is None:
            setattr(namespace, self.fail_closed_dest, HeadPrior().height)


def backend_defaults(name: str) -> dict:
    """``{setting: default}`` of backend ``name``'s constructor (the one place defaults live)."""
    return {
        k: p.default
        for k, p in accepted_params(detector_class(name)).items()
        if p.default is not p.empty
    }


def _default_note(param: Param) -> str:
    """``" (default: the detector's own; centerface 0.45, mtcnn 0.7)"`` from the signatures."""
    shown, off = [], False
    for name in available_detectors():
        d = backend_defaults(name)
        if param.name not in d or name == "oracle":
            continue
        v = d[param.name]
        if v is None:
            off = True
        else:
            shown.append(f"{name} {('on' if v else 'off') if isinstance(v, bool) else v}")
    if shown:
        return f" (default: the detector's own; {', '.join(shown)})"
    return " (default off)" if off else ""


def add_detector_arguments(parser, *, exclude: Iterable[str] = (), dest_prefix: str = "") -> None:
    """Add the detector flags to ``parser`` (or an argument group); every default is ``None``.

    ``exclude``: names of settings to leave out (e.g. ``{"fail_closed"}``, which leaves out
    ``--full-coverage`` too). ``--detector``'s default is ``None`` too;
    :func:`detector_from_args` reads it as :data:`DEFAULT_DETECTOR`. ``--full-coverage``
    (:data:`FULL_COVERAGE`, default ``False``) sets ``fail_closed`` when it is not given.
    """
    exclude = set(exclude)
    if "detector" not in exclude:
        parser.add_argument(
            DETECTOR.cli_flag,
            dest=dest_prefix + "detector",
            choices=DETECTOR.choices,
            default=None,
            help=f"{DETECTOR.help}: {', '.join(DETECTOR.choices)} (default {DEFAULT_DETECTOR})",
        )
    if "model" not in exclude:
        parser.add_argument(
            MODEL.cli_flag, dest=dest_prefix + "model", metavar="FILE", help=MODEL.help
        )
    for p in (*DETECTOR_PARAMS, FAIL_CLOSED):
        if p.name in exclude:
            continue
        kw: dict = {"dest": dest_prefix + p.name, "default": None}
        if p.type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = p.parse
            kw["metavar"] = "FRAC" if p.high == 1 else ("N" if p.type is int else "X")
        note = "" if p is FAIL_CLOSED else _default_note(p)
        parser.add_argument(p.cli_flag, help=(p.help + note).replace("%", "%%"), **kw)
    if not exclude & {"fail_closed", "full_coverage"}:
        parser.add_argument(
            FULL_COVERAGE.cli_flag,
            dest=dest_prefix + FULL_COVERAGE.name,
            action=_FullCoverageAction,
            fail_closed_dest=dest_prefix + FAIL_CLOSED.name,
            help=FULL_COVERAGE.help,
        )


def detector_settings(args: argparse.Namespace, dest_prefix: str = "") -> tuple[str, dict]:
    """``(name, {setting: value})`` of the detector flags that were given (``None`` = not given)."""
    name = getattr(args, dest_prefix + "detector", None) or DEFAULT_DETECTOR
    params = {}
    for p in (MODEL, *DETECTOR_PARAMS):
        v = getattr(args, dest_prefix + p.name, None)
        if v is not None:
            params[p.name] = v
    return name, params


def detector_from_args(
    args: argparse.Namespace, root=None, *, dest_prefix: str = "", **extra
) -> Detector:
    """The detector the flags of :func:`add_detector_arguments` describe; ``root``: the dataset
    folder for a backend that answers by path (the oracle). ``extra``: more backend keywords
    (``batch_size=...``), overridden by the flags."""
    name, params = detector_settings(args, dest_prefix)
    return detector_from_config(name, {**extra, **params}, root=root)


def detector_from_config(
    name: str | None = None, params: Mapping | None = None, root=None
) -> Detector:
    """Build detector ``name`` (``None``: :data:`DEFAULT_DETECTOR`) from a settings dict.

    ``None`` values are dropped (= the backend's default). The shared settings
    (:data:`DETECTOR_PARAMS`) are checked with their :class:`~reidlab.params.Param`; ``model``
    becomes the backend's model-file keyword (``path`` for onnx/torch, ``onnx_path`` for
    centerface); other keys go to the backend as they are (``nms_iou``, ``batch_size``,
    ``min_face_size``, ...). A backend with ``needs_paths`` (the oracle) gets ``root`` unless
    ``params`` has ``root`` or ``boxes``.

    Raises:
        DetectorError: unknown detector, a setting the backend does not take, a bad value.
    """
    from reidlab import faces  # looked up at call time (tests may replace build_detector)

    name = name or DEFAULT_DETECTOR
    kw = {k: v for k, v in dict(params or {}).items() if v is not None}
    if "fail_closed" in kw:
        raise DetectorError(
            f"{name}: fail_closed is not a detector setting; pass it to detect_split / "
            "dataset_boxes (fail_closed=...)"
        )
    for k in list(kw):
        if k in _BY_NAME:
            try:
                kw[k] = _BY_NAME[k].check(kw[k])
            except ValueError as e:
                raise DetectorError(f"{name}: {e}") from None
    try:
        cls = detector_class(name)
    except DetectorError:
        cls = None  # let build_detector say so (or a replacement answer)
    if cls is not None:
        if "model" in kw:
            if cls.model_param is None:
                raise DetectorError(f"{cls.name}: takes no model file (--model / model=)")
            kw[cls.model_param] = kw.pop("model")
        if cls.needs_paths and "root" not in kw and "boxes" not in kw and root is not None:
            kw["root"] = str(root)
    return faces.build_detector(name, **kw)
