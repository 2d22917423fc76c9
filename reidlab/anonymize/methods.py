"""The anonymization methods: one registry entry each, from which everything else follows.

A :class:`Method` is a name, the op that does the work, its settings as
:class:`reidlab.params.Param` descriptions, and a one-line summary. From the registry
(:data:`METHODS`) the :class:`~reidlab.anonymize.Anonymizer` takes its checks, its ``forward`` and
its recorded ``settings()``; ``reidlab anonymize`` its ``--method`` choices and per-method flags; the
explorer (:mod:`reidlab.widgets`) its method dropdown and one control per setting.

Adding a method is one function and one :func:`register_method` call, e.g.::

    def invert_faces(images, boxes, valid=None, strength=1.0, **common):
        return map_faces(images, boxes, valid, lambda w, i: w + strength * (1 - 2 * w), **common)

    register_method(
        "invert", invert_faces,
        (Param("strength", float, 1.0, "how far towards the negative", low=0, high=1,
               widget={"step": 0.05}),),
        "push face pixels towards their negative",
    )

The op is called as ``op(images, boxes, valid, mask=, scale=, feather=, feather_rel=, inplace=,
**params)`` with every :data:`COMMON_PARAMS` value and the method's own param values (checked by
:meth:`Param.check`) as keywords; it returns the anonymized ``(B, C, H, W)`` images with pixels
outside the masks bit-identical (:func:`~reidlab.anonymize.ops.map_faces` and the engine under the
built-in ops guarantee that). One convention: a param named ``seed`` reaches the op as
``generator``, a :class:`torch.Generator` on the images' device seeded with it and kept across
calls (``None``: torch's global RNG).

>>> sorted(available_methods())
['blur', 'fill', 'none', 'pixelate', 'zero']
>>> [p.name for p in METHODS["pixelate"].params]
['blocks']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reidlab.anonymize.masks import (
    DEFAULT_MASK_DILATE,
    DEFAULT_MASK_THRESHOLD,
    MASK_KINDS,
    MAX_DILATE,
)
from reidlab.anonymize.ops import blur_faces, fill_faces, pixelate_faces, zero_faces
from reidlab.params import Param

__all__ = [
    "COMMON_PARAMS",
    "METHODS",
    "Method",
    "available_methods",
    "get_method",
    "register_method",
    "unregister_method",
]

#: Settings every method takes: where the mask is and what it looks like.
COMMON_PARAMS: tuple[Param, ...] = (
    Param(
        "mask",
        str,
        "box",
        "mask: the (scaled) box, the ellipse inscribed in it, or segmentation (exactly the pixels "
        "of the detector's face map, thresholded and dilated; images without one get their boxes)",
        choices=MASK_KINDS,
        widget={"label": "mask"},
    ),
    Param(
        "scale",
        float,
        1.0,
        "enlarge boxes about their centre (1.2 also covers hair line and chin)",
        low=0,
        low_open=True,
        widget={"min": 0.8, "max": 2.0, "step": 0.05, "label": "box scale", "value": 1.2},
    ),
    Param(
        "feather",
        float,
        0.0,
        "soft mask edge in px (inwards)",
        low=0,
        widget={"max": 6.0, "step": 0.5, "label": "feather px"},
    ),
    Param(
        "feather_rel",
        float,
        0.0,
        "soft mask edge relative to the scaled box's shorter side (adds to --feather)",
        low=0,
    ),
    Param(
        "mask_threshold",
        float,
        DEFAULT_MASK_THRESHOLD,
        "--mask segmentation: a pixel is face where the face map is >= this probability",
        low=0,
        low_open=True,
        high=1,
    ),
    Param(
        "mask_dilate",
        int,
        DEFAULT_MASK_DILATE,
        "--mask segmentation: dilate the thresholded face map by this many px (square kernel)",
        low=0,
        high=MAX_DILATE,
    ),
)

#: Common settings that only mean something for ``mask="segmentation"``: recorded only then (so
#: the recorded settings of box and ellipse masks are what they were before segmentation existed).
SEGMENTATION_ONLY = ("mask_threshold", "mask_dilate")

COMMON_NAMES = tuple(p.name for p in COMMON_PARAMS)

# names a method's param may not take: the op's own arguments and the Anonymizer's attributes
_RESERVED = {"method", "images", "boxes", "valid", "inplace", "generator", "settings", "values"}


@dataclass(frozen=True, eq=False)
class Method:
    """One anonymization method.

    Attributes:
        name: what ``method=`` / ``--method`` / the dropdown call it.
        op: ``op(images, boxes, valid, *, mask, scale, feather, feather_rel, inplace, **params)``.
        params: the method's own settings (besides :data:`COMMON_PARAMS`).
        summary: one line for help texts.
        recorded: constant facts of the implementation recorded with the settings (blur's
            ``border="reflect101"``), so a result says how it was made.
        overrides: ``{"sigma": "sigma_rel"}``: when ``sigma`` is given (not ``None``),
            ``sigma_rel`` does not apply and is recorded as ``None``.
    """

    name: str
    op: Callable
    params: tuple[Param, ...] = ()
    summary: str = ""
    recorded: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def all_params(self) -> tuple[Param, ...]:
        """:data:`COMMON_PARAMS` followed by the method's own."""
        return COMMON_PARAMS + self.params

    def takes(self) -> str:
        own = ", ".join(self.param_names) or "no settings of its own"
        return f"{self.name} takes {own}, and the common {', '.join(COMMON_NAMES)}"

    def select(self, settings: Mapping[str, Any]) -> dict:
        """The entries of ``settings`` this method takes (common or its own): for a caller that
        sweeps methods with one set of knobs, ``Anonymizer(m, **METHODS[m].select(knobs))``."""
        names = set(COMMON_NAMES) | set(self.param_names)
        return {k: v for k, v in settings.items() if k in names}

    def resolve(self, settings: Mapping[str, Any]) -> dict:
        """Every setting's value (given, else the default), checked; ``ValueError`` naming a bad
        value, a setting of another method, or an unknown setting.

        Recorded settings resolve to themselves (``Anonymizer(**a.settings())`` rebuilds ``a``,
        e.g. from a manifest): a :attr:`recorded` fact is accepted at its value, and an
        overridden setting recorded as ``None`` takes its default.
        """
        own = set(COMMON_NAMES) | set(self.param_names)
        settings = dict(settings)
        for given, unused in self.overrides.items():
            if settings.get(given) is not None and unused in settings and settings[unused] is None:
                del settings[unused]
        for key in list(settings):
            if key in own:
                continue
            if key in self.recorded:
                if settings[key] != self.recorded[key]:
                    raise ValueError(
                        f"{key} of {self.name} is fixed at {self.recorded[key]!r}, "
                        f"got {settings[key]!r}"
                    )
                del settings[key]
                continue
            others = [m.name for m in METHODS.values() if key in m.param_names]
            if others:
                raise ValueError(
                    f"{key} is a setting of {' and '.join(others)}, not of {self.name} "
                    f"({self.takes()})"
                )
            raise ValueError(f"unknown anonymization setting {key!r} ({self.takes()})")
        return {p.name: p.check(settings.get(p.name, p.default)) for p in self.all_params}

    def record(self, values: Mapping[str, Any]) -> dict:
        """The JSON-able settings to record: ``method``, every param's value (tuples as lists,
        overridden ones as ``None``; :data:`SEGMENTATION_ONLY` ones only for segmentation masks),
        then the :attr:`recorded` facts."""
        out: dict[str, Any] = {"method": self.name}
        for p in self.all_params:
            if p.name in SEGMENTATION_ONLY and values.get("mask") != "segmentation":
                continue
            v = values[p.name]
            out[p.name] = list(v) if isinstance(v, tuple) else v
        for given, unused in self.overrides.items():
            if values.get(given) is not None:
                out[unused] = None
        out.update(self.recorded)
        return out


#: The registry: method name -> :class:`Method`, in registration order.
METHODS: dict[str, Method] = {}


def register_method(
    name: str,
    op: Callable,
    params: tuple[Param, ...] | list[Param] = (),
    summary: str = "",
    *,
    recorded: Mapping[str, Any] | None = None,
    overrides: Mapping[str, str] | None = None,
    replace: bool = False,
) -> Method:
    """Add a method to :data:`METHODS` (``replace=True`` to redefine one) and return it.

    Raises ``ValueError`` for a bad name, a param name that is common, reserved or repeated, or
    one that another method defines differently (methods share a command-line flag per name).
    """
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"method name: expected letters, digits, - or _, got {name!r}")
    if name in METHODS and not replace:
        raise ValueError(f"method {name!r} is already registered (replace=True to redefine it)")
    if not callable(op):
        raise TypeError(f"method {name!r}: op must be callable, got {op!r}")
    params = tuple(params)
    seen: set[str] = set()
    for p in params:
        if not isinstance(p, Param):
            raise TypeError(f"method {name!r}: params must be reidlab.params.Param, got {p!r}")
        if p.name in COMMON_NAMES or p.name in _RESERVED or p.name in seen:
            raise ValueError(
                f"method {name!r}: param name {p.name!r} is common, reserved or repeated"
            )
        seen.add(p.name)
        for other in METHODS.values():
            if other.name == name:
                continue
            for q in other.params:
                if q.name == p.name and q != p:
                    raise ValueError(
                        f"method {name!r}: param {p.name!r} is defined differently by method "
                        f"{other.name!r}; use the same Param or another name"
                    )
    for given, unused in (overrides or {}).items():
        if given not in seen or unused not in seen:
            raise ValueError(f"method {name!r}: overrides name unknown params {given}, {unused}")
    m = Method(name, op, params, summary, dict(recorded or {}), dict(overrides or {}))
    METHODS[name] = m
    return m


def unregister_method(name: str) -> None:
    """Remove a method from the registry (tests, plugins that clean up)."""
    METHODS.pop(name, None)


def available_methods() -> tuple[str, ...]:
    """The registered method names, in registration order."""
    return tuple(METHODS)


def get_method(name: str) -> Method:
    """The registry entry of ``name``; ``ValueError`` listing the methods if there is none."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {name!r}") from None


def _identity(images, boxes, valid=None, **_):
    """The control condition: the images themselves."""
    return images


# ---------------------------------------------------------------- the built-in methods

register_method(
    "blur",
    blur_faces,
    (
        Param(
            "sigma_rel",
            float,
            0.2,
            "blur std / height of the face box as detected (after the detector's box_scale, "
            "before the mask's scale)",
            low=0,
            low_open=True,
            widget={
                "min": 0.02,
                "max": 1.0,
                "step": 0.01,
                "label": "sigma / face h",
                "value": 0.25,
            },
        ),
        Param(
            "sigma",
            float,
            None,
            "absolute blur std in px (overrides --sigma-rel)",
            low=0,
            low_open=True,
            optional=True,
        ),
        Param("truncate", float, 3.0, "blur kernel radius in sigmas", low=0, low_open=True),
    ),
    "Gaussian blur, its strength relative to each face's height",
    recorded={
        "border": "reflect101",
        "sigma_rel_of": "detected box height, before the mask's scale",
    },
    overrides={"sigma": "sigma_rel"},
)
register_method(
    "pixelate",
    pixelate_faces,
    (
        Param(
            "blocks",
            int,
            4,
            "pixelation cells per side",
            low=0,
            low_open=True,
            widget={"min": 1, "max": 16, "label": "pixel blocks"},
        ),
    ),
    "mosaic of blocks x blocks area-averaged cells",
    recorded={"pooling": "area"},
)
register_method(
    "fill",
    fill_faces,
    (
        Param(
            "fill",
            str,
            "constant",
            "what fills the mask: a constant colour, the image's mean colour, or noise",
            choices=("constant", "mean", "noise"),
            widget={"label": "fill", "value": "mean"},
        ),
        Param(
            "color",
            float,
            (0.5, 0.5, 0.5),
            "fill colour (R G B), each channel in [0, 1], for --fill constant",
            low=0,
            high=1,
            nargs=3,
        ),
        Param("seed", int, None, "noise seed (--fill noise)", optional=True),
    ),
    "fill with a constant colour, the image's mean colour, or noise",
)
register_method("zero", zero_faces, (), "black out the faces")
register_method("none", _identity, (), "no anonymization (the control condition)")
