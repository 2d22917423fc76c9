"""Drawing for the synthetic dataset: identities, cameras and one pedestrian crop (numpy + OpenCV).

Everything is drawn on a canvas ``ss`` times the output size (supersampling) and shrunk with
``cv2.INTER_AREA``, so edges are anti-aliased and the face's shading stays smooth. The face is not
a flat cartoon: it is an analytic field (a skin ellipse with a radial shading gradient, soft
Gaussian blobs for eye sockets, sclera, iris, brows, nose shadow, nostrils and mouth, a hair cap),
because CenterFace does not fire on flat cartoon faces but does on smoothly shaded ones (see
docs/architecture.md, "Findings the design rests on", and the measurements in data/synthetic.md).

Coordinates are in *output* pixels (continuous: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``)
unless a name says ``_c`` (canvas pixels, ``= output * ss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

VIEWS = ("front", "side", "back")
PATTERNS = ("plain", "stripes", "checks")
BAGS = ("none", "backpack", "shoulder")
HAIR_STYLES = ("short", "long", "cropped")

# Skin tones (RGB) from dark to light; an identity's skin is interpolated along this ramp.
_SKIN_RAMP = np.array(
    [[92, 58, 40], [141, 85, 56], [198, 134, 95], [224, 172, 130], [241, 200, 170]], np.float32
)
_HAIR = np.array(
    [
        [25, 20, 18],
        [60, 40, 28],
        [105, 70, 40],
        [165, 125, 75],
        [200, 170, 110],
        [120, 115, 110],
        [70, 35, 25],
    ],
    np.float32,
)


@dataclass(frozen=True)
class FaceLook:
    """Per-identity face and hair (all lengths relative to the face ellipse's half axes)."""

    skin: tuple[float, float, float]  # RGB 0-255
    hair: tuple[float, float, float]  # RGB 0-255
    hair_style: str  # one of HAIR_STYLES
    aspect: float  # face ellipse height / width (1.2-1.45)
    eye_dx: float  # half eye spacing, in half-widths
    eye_y: float  # eye height, in half-heights (negative = up)
    eye_size: float  # eye blob scale (0.8-1.25)
    brow_gap: float  # brow above eye, in half-heights
    nose_len: float  # in half-heights
    mouth_y: float  # in half-heights
    mouth_w: float  # mouth width scale (0.75-1.3)
    iris: tuple[float, float, float]
    lips: tuple[float, float, float]
    hairline: float  # fringe edge at the face centre, in half-heights


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic person look like themself in every camera."""

    pid: int
    face: FaceLook
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    shoes: tuple[float, float, float]
    pattern: str  # one of PATTERNS (on the top)
    pattern_color: tuple[float, float, float]
    pattern_period: float  # in output px
    bag: str  # one of BAGS
    bag_color: tuple[float, float, float]
    face_height: float  # base face height at 128 px crop height (output px)
    build: float  # shoulder width factor (0.85-1.15)
    uniform: int  # uniform group index, -1 = own clothes


@dataclass(frozen=True)
class Camera:
    """Per-camera look: illumination, colour cast, blur, noise, framing and background."""

    index: int
    gain: float
    cast: tuple[float, float, float]
    blur: float  # Gaussian sigma in output px (0 = none)
    noise: float  # Gaussian noise std (0-255 scale)
    scale: float  # multiplies every face/body size in this camera
    top_margin: float  # head top, fraction of crop height
    background: np.ndarray  # (Hc + margin, Wc + margin, 3) uint8 RGB, canvas px


# ----------------------------------------------------------------------------- sampling


def _color(rng: np.random.Generator, sat=(0.25, 0.95), val=(0.2, 0.95)) -> tuple[float, ...]:
    """A random RGB colour (0-255) from HSV ranges."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32
    )
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(float(c) for c in rgb)


def sample_face(rng: np.random.Generator) -> FaceLook:
    t = rng.uniform(0, len(_SKIN_RAMP) - 1)
    i = min(int(t), len(_SKIN_RAMP) - 2)
    skin = _SKIN_RAMP[i] * (1 - (t - i)) + _SKIN_RAMP[i + 1] * (t - i)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.15)
    return FaceLook(
        skin=tuple(float(c) for c in skin),
        hair=tuple(float(min(c, 255)) for c in hair),
        hair_style=HAIR_STYLES[rng.choice(3, p=[0.5, 0.3, 0.2])],
        aspect=float(rng.uniform(1.2, 1.42)),
        eye_dx=float(rng.uniform(0.36, 0.46)),
        eye_y=float(rng.uniform(-0.18, -0.04)),
        eye_size=float(rng.uniform(0.85, 1.2)),
        brow_gap=float(rng.uniform(0.16, 0.24)),
        nose_len=float(rng.uniform(0.8, 1.2)),
        mouth_y=float(rng.uniform(0.45, 0.58)),
        mouth_w=float(rng.uniform(0.8, 1.25)),
        iris=_color(rng, sat=(0.3, 0.8), val=(0.1, 0.4)),
        lips=tuple(float(c) for c in np.array(skin) * np.array([0.85, 0.55, 0.55])),
        hairline=float(rng.uniform(-0.72, -0.55)),
    )


def sample_clothes(rng: np.random.Generator) -> dict:
    """Top/bottom/shoe colours, top pattern and bag: the body's share of identity."""
    return {
        "top": _color(rng),
        "bottom": _color(rng, sat=(0.1, 0.7), val=(0.15, 0.75)),
        "shoes": _color(rng, sat=(0.0, 0.4), val=(0.05, 0.5)),
        "pattern": PATTERNS[rng.choice(3, p=[0.5, 0.3, 0.2])],
        "pattern_color": _color(rng),
        "pattern_period": float(rng.uniform(3.0, 6.0)),
        "bag": BAGS[rng.choice(3, p=[0.6, 0.25, 0.15])],
        "bag_color": _color(rng, val=(0.1, 0.6)),
    }


def _background(rng: np.random.Generator, h: int, w: int, ss: int) -> np.ndarray:
    """A textured street-like background (wall + floor) of ``h x w`` canvas px, RGB uint8."""
    kind = rng.integers(3)
    wall = np.array(_color(rng, sat=(0.05, 0.5), val=(0.3, 0.85)), np.float32)
    floor = np.array(_color(rng, sat=(0.0, 0.3), val=(0.25, 0.7)), np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = wall
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / ss
    if kind == 0:  # bricks
        bh, bw = rng.uniform(3, 6), rng.uniform(8, 14)
        row = np.floor(yy / bh)
        shift = (row % 2) * bw / 2
        mortar = ((yy % bh) < 0.6) | (((xx + shift) % bw) < 0.6)
        img *= (1 - 0.25 * mortar)[..., None]
    elif kind == 1:  # shop fronts: vertical bands of colour
        edges = np.cumsum(rng.uniform(6, 20, size=40))
        band = np.searchsorted(edges, xx)
        cols = np.stack([_color(rng, sat=(0.05, 0.6), val=(0.3, 0.9)) for _ in range(41)])
        img = cols[band].astype(np.float32)
    # low-frequency noise texture on everything
    small = rng.normal(0, 1, size=(max(h // (6 * ss), 2), max(w // (6 * ss), 2), 1))
    smooth = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img *= (1 + 0.12 * smooth)[..., None] if smooth.ndim == 2 else (1 + 0.12 * smooth)
    horizon = int(h * rng.uniform(0.55, 0.75))
    fl = np.empty((h - horizon, w, 3), np.float32)
    fl[:] = floor
    fy, fx = yy[horizon:], xx[horizon:]
    tiles = (np.floor(fx / rng.uniform(6, 12)) + np.floor(fy / rng.uniform(3, 6))) % 2
    fl *= (1 - rng.uniform(0.0, 0.15) * tiles)[..., None]
    img[horizon:] = fl
    return np.clip(img, 0, 255).astype(np.uint8)


def sample_camera(rng: np.random.Generator, index: int, size: tuple[int, int], ss: int) -> Camera:
    h, w = size
    margin = (h // 4) * ss, (w // 4) * ss
    return Camera(
        index=index,
        gain=float(rng.uniform(0.7, 1.2)),
        cast=tuple(float(c) for c in rng.uniform(0.85, 1.15, size=3)),
        blur=float(rng.choice([0.0, 0.0, rng.uniform(0.3, 0.8)])),
        noise=float(rng.uniform(1.5, 5.0)),
        scale=float(rng.uniform(0.9, 1.1)),
        top_margin=float(rng.uniform(0.02, 0.06)),
        background=_background(rng, h * ss + margin[0], w * ss + margin[1], ss),
    )


# ----------------------------------------------------------------------------- the face


def _gauss(u, v, mu, mv, su, sv):
    return np.exp(-(((u - mu) / su) ** 2 + ((v - mv) / sv) ** 2) * 0.5)


def _ramp(d, width):
    """Soft step: 0 for d <= -width/2, 1 for d >= width/2 (anti-aliased edge of ``width`` px)."""
    return np.clip(d / width + 0.5, 0.0, 1.0)


def render_head(
    canvas: np.ndarray,
    face: FaceLook,
    view: str,
    facing: int,
    cx: float,
    cy: float,
    face_h: float,
    ss: int,
) -> tuple[float, float, float, float] | None:
    """Draw a head (face + hair) in place on ``canvas`` (``(Hc, Wc, 3)`` float32 RGB, canvas px).

    ``(cx, cy)`` is the face ellipse centre and ``face_h`` its height, both in output px;
    ``facing`` is +1 (looking right) or -1 (only matters for side views).

    Returns the face box ``(x1, y1, x2, y2)`` in output px: the tight box of the visible face
    skin (alpha >= 0.5, hair excluded) on the canvas grid, i.e. accurate to ``1/ss`` px; None for
    back views (no face visible).
    """
    b = face_h / 2 * ss  # half height, canvas px
    a = b / face.aspect  # half width
    ccx, ccy = cx * ss, cy * ss
    long_hair = face.hair_style == "long"
    x0 = int(np.floor(ccx - 1.45 * a))
    x1 = int(np.ceil(ccx + 1.45 * a))
    y0 = int(np.floor(ccy - 1.35 * b))
    y1 = int(np.ceil(ccy + (1.6 if long_hair else 1.05) * b))
    hc, wc = canvas.shape[:2]
    px0, py0, px1, py1 = max(x0, 0), max(y0, 0), min(x1, wc), min(y1, hc)
    if px1 <= px0 or py1 <= py0:
        return None
    xs = (np.arange(px0, px1, dtype=np.float32) + 0.5 - ccx) / a
    ys = (np.arange(py0, py1, dtype=np.float32) + 0.5 - ccy) / b
    u, v = np.meshgrid(xs, ys)
    edge = 1.2 / b  # soft edge width in face units (about 1.2 canvas px)
    patch = canvas[py0:py1, px0:px1]
    hair = np.array(face.hair, np.float32)
    skin = np.array(face.skin, np.float32)

    # hair volume behind the face: a slightly larger, raised ellipse (+ long hair down the sides)
    hu, hv = u / 1.12, (v + 0.12) / 1.13
    hair_a = _ramp(1 - np.sqrt(hu**2 + hv**2), edge)
    if long_hair:
        side = _ramp(1.22 - np.abs(u), edge * 1.5) * _ramp(1.55 - v, edge) * (v > 0)
        hair_a = np.maximum(hair_a, side)
    if face.hair_style == "cropped":
        hair_a = hair_a * _ramp(-(v - (face.hairline - 0.05)), 0.3)  # only a thin cap on top
    hair_shade = (0.85 + 0.25 * np.clip(-v, -1, 1) * 0.5 - 0.15 * (u**2))[..., None]
    hair_rgb = hair * hair_shade
    # sheen streaks so the hair is not flat
    hair_rgb = hair_rgb * (1 + 0.08 * np.sin(u * 9.0 + v * 3.0))[..., None]

    r = np.sqrt(u**2 + v**2)
    if view == "back":
        skin_a = np.zeros_like(u)
        hair_a = np.maximum(hair_a, _ramp(1 - r, edge))
        face_rgb = np.zeros_like(patch)
    else:
        skin_a = _ramp(1 - r, edge)
        # radial shading: lit from the front/top, darker towards the rim and the chin
        shade = 1.08 - 0.32 * r**2 - 0.06 * v
        rgb = skin * shade[..., None]
        if view == "side":
            s = 0.32 * facing  # features shift towards the facing side
            fu = (u - s) / 0.78  # and are foreshortened
        else:
            fu = u
        es = face.eye_size
        dark = np.zeros_like(u)
        for k, sgn in enumerate((-1.0, 1.0)):
            w_eye = 1.0
            if view == "side" and sgn != facing:
                w_eye = 0.55  # the far eye is partly hidden
            ex, ey = sgn * face.eye_dx, face.eye_y
            dark += w_eye * 0.62 * _gauss(fu, v, ex, ey, 0.2 * es, 0.14 * es)  # socket
            brow = _gauss(fu, v, ex, ey - face.brow_gap, 0.19, 0.05)
            rgb = rgb * (1 - w_eye * 0.7 * brow[..., None]) + (w_eye * 0.7 * brow[..., None]) * (
                hair * 0.7
            )
            sclera = w_eye * 0.85 * _gauss(fu, v, ex, ey, 0.12 * es, 0.055 * es)
            rgb = rgb * (1 - sclera[..., None]) + sclera[..., None] * np.float32(235)
            iris = (
                w_eye
                * 0.95
                * _gauss(fu, v, ex + 0.01 * facing * (view == "side"), ey, 0.055 * es, 0.055 * es)
            )
            rgb = rgb * (1 - iris[..., None]) + iris[..., None] * np.array(face.iris, np.float32)
        nose_y = face.eye_y + 0.22 * face.nose_len
        dark += 0.22 * _gauss(fu, v, 0.07, nose_y, 0.06, 0.16 * face.nose_len)  # nose side
        dark += 0.35 * _gauss(fu, v, 0.0, face.eye_y + 0.42 * face.nose_len, 0.11, 0.04)
        light = 0.12 * _gauss(fu, v, -0.04, nose_y, 0.05, 0.15)  # bridge
        rgb = rgb * (1 - dark[..., None]) * (1 + light[..., None])
        mouth = 0.85 * _gauss(fu, v, 0.0, face.mouth_y, 0.2 * face.mouth_w, 0.05)
        rgb = rgb * (1 - mouth[..., None]) + mouth[..., None] * np.array(face.lips, np.float32)
        line = 0.55 * _gauss(fu, v, 0.0, face.mouth_y, 0.16 * face.mouth_w, 0.018)
        rgb = rgb * (1 - line[..., None])
        face_rgb = rgb
        # fringe: hair over the top of the face (and over the back half of a side view)
        fringe = _ramp(face.hairline + 0.22 * u**2 - v, edge * 2)
        if face.hair_style == "cropped":
            fringe = _ramp(face.hairline - 0.1 + 0.22 * u**2 - v, edge * 2)
        if view == "side":
            fringe = np.maximum(fringe, _ramp(-(u * facing) - 0.3, edge * 2))
        skin_vis = skin_a * (1 - fringe)
        hair_a = np.maximum(hair_a * (1 - skin_a), skin_a * fringe)
        skin_a = skin_vis

    out = patch * (1 - hair_a[..., None]) + hair_rgb * hair_a[..., None]
    if view != "back":
        out = out * (1 - skin_a[..., None]) + face_rgb * skin_a[..., None]
    canvas[py0:py1, px0:px1] = out
    if view == "back":
        return None
    rows = np.flatnonzero((skin_a >= 0.5).any(axis=1))
    cols = np.flatnonzero((skin_a >= 0.5).any(axis=0))
    if not len(rows):
        return None
    return (
        (px0 + cols[0]) / ss,
        (py0 + rows[0]) / ss,
        (px0 + cols[-1] + 1) / ss,
        (py0 + rows[-1] + 1) / ss,
    )


# ----------------------------------------------------------------------------- the body


def _poly(canvas, pts, color, ss):
    cv2.fillPoly(
        canvas,
        [np.round(np.asarray(pts) * ss * 16).astype(np.int32)],
        color,
        lineType=cv2.LINE_AA,
        shift=4,
    )


def _line(canvas, p, q, color, width, ss):
    cv2.line(
        canvas,
        tuple(round(float(c) * ss * 16) for c in p),
        tuple(round(float(c) * ss * 16) for c in q),
        color,
        max(round(float(width) * ss), 1),
        lineType=cv2.LINE_AA,
        shift=4,
    )


def _ellipse(canvas, c, axes, color, ss):
    cv2.ellipse(
        canvas,
        tuple(round(float(x) * ss * 16) for x in c),
        tuple(round(float(x) * ss * 16) for x in axes),
        0,
        0,
        360,
        color,
        -1,
        lineType=cv2.LINE_AA,
        shift=4,
    )


def render_person(
    ident: Identity,
    cam: Camera,
    view: str,
    rng: np.random.Generator,
    size: tuple[int, int],
    ss: int,
    face_range: tuple[float, float],
) -> tuple[np.ndarray, tuple[float, float, float, float] | None, float]:
    """Render one crop of ``ident`` seen by ``cam``.

    Returns ``(image, face_box, face_height)``: an RGB uint8 ``(H, W, 3)`` image before JPEG,
    the face box ``(x1, y1, x2, y2)`` in output px (None for back views) and the face ellipse
    height in output px.
    """
    h, w = size
    unit = h / 128.0  # sizes are defined at 128 px height
    bg = cam.background
    oy = int(rng.integers(0, bg.shape[0] - h * ss + 1))
    ox = int(rng.integers(0, bg.shape[1] - w * ss + 1))
    canvas = bg[oy : oy + h * ss, ox : ox + w * ss].astype(np.float32)
    canvas *= np.float32(rng.uniform(0.9, 1.1))
    facing = 1 if rng.random() < 0.5 else -1

    face_h = ident.face_height * cam.scale * rng.uniform(0.92, 1.08)
    face_h = float(np.clip(face_h, face_range[0], face_range[1])) * unit
    cx = w / 2 + rng.normal(0, 1.2) * unit
    head_top = (cam.top_margin + rng.uniform(-0.01, 0.02)) * h
    cy = head_top + face_h * 0.6
    b = face_h / 2
    feet = h * rng.uniform(0.95, 0.995)
    shoulder_y = cy + b * 1.45
    hip_y = shoulder_y + (feet - shoulder_y) * 0.42
    sw = ident.build * (0.2 * w + 0.55 * b / 1.3)  # shoulder half width
    if view == "side":
        sw *= 0.62
    hw = sw * 0.78
    lean = rng.normal(0, 0.8) * unit
    top_c, bot_c = ident.top, ident.bottom
    skin = ident.face.skin

    # backpack behind the body (visible around the torso in front/side views)
    if ident.bag == "backpack" and view == "side":
        bx = cx - facing * sw * 1.3
        _poly(
            canvas,
            [
                (bx - sw * 0.55, shoulder_y + 1),
                (bx + sw * 0.55, shoulder_y + 1),
                (bx + sw * 0.6, hip_y - 2),
                (bx - sw * 0.6, hip_y - 2),
            ],
            ident.bag_color,
            ss,
        )
    # legs
    stride = (rng.uniform(0.15, 0.45) if view == "side" else rng.uniform(0.0, 0.12)) * (
        feet - hip_y
    )
    leg_w = hw * (0.55 if view != "side" else 0.75)
    for sgn in (-1, 1):
        hx = cx + lean + sgn * hw * (0.45 if view != "side" else 0.1)
        fx = hx + sgn * stride * (1 if view == "side" else 0.3)
        _poly(
            canvas,
            [
                (hx - leg_w / 2, hip_y - 1),
                (hx + leg_w / 2, hip_y - 1),
                (fx + leg_w * 0.4, feet - 2 * unit),
                (fx - leg_w * 0.4, feet - 2 * unit),
            ],
            bot_c,
            ss,
        )
        _ellipse(
            canvas,
            (fx + (facing * 1.5 * unit if view == "side" else 0), feet - 1.5 * unit),
            (leg_w * 0.55 + unit, 1.7 * unit),
            ident.shoes,
            ss,
        )
    # hips (a band of the bottom colour) and torso
    _poly(
        canvas,
        [
            (cx + lean - hw, hip_y - 3 * unit),
            (cx + lean + hw, hip_y - 3 * unit),
            (cx + lean + hw * 1.05, hip_y + 4 * unit),
            (cx + lean - hw * 1.05, hip_y + 4 * unit),
        ],
        bot_c,
        ss,
    )
    torso = [
        (cx - sw, shoulder_y + 1.5 * unit),
        (cx - sw * 0.8, shoulder_y - 0.5 * unit),
        (cx + sw * 0.8, shoulder_y - 0.5 * unit),
        (cx + sw, shoulder_y + 1.5 * unit),
        (cx + lean + hw, hip_y + 1.0 * unit),
        (cx + lean - hw, hip_y + 1.0 * unit),
    ]
    _draw_top(canvas, torso, ident, ss)
    # neck (under the head)
    _poly(
        canvas,
        [
            (cx - b * 0.28, cy + b * 0.6),
            (cx + b * 0.28, cy + b * 0.6),
            (cx + b * 0.3, shoulder_y + 0.5),
            (cx - b * 0.3, shoulder_y + 0.5),
        ],
        tuple(c * 0.8 for c in skin),
        ss,
    )
    # arms
    arm_w = sw * 0.32
    swing = rng.uniform(-0.25, 0.25) * (hip_y - shoulder_y)
    arms = (-1, 1) if view != "side" else (facing,)
    for sgn in arms:
        sx = cx + sgn * (sw - arm_w * 0.45) if view != "side" else cx + facing * sw * 0.1
        hand = (
            sx + sgn * arm_w * 0.4 + (swing * facing if view == "side" else 0),
            hip_y + (hip_y - shoulder_y) * 0.15,
        )
        _line(canvas, (sx, shoulder_y + arm_w * 0.5), hand, top_c, arm_w, ss)
        _ellipse(canvas, hand, (arm_w * 0.5, arm_w * 0.55), skin, ss)
    # bags
    if ident.bag == "backpack":
        if view == "back":
            _poly(
                canvas,
                [
                    (cx - sw * 0.7, shoulder_y + 2 * unit),
                    (cx + sw * 0.7, shoulder_y + 2 * unit),
                    (cx + sw * 0.75, hip_y - 1 * unit),
                    (cx - sw * 0.75, hip_y - 1 * unit),
                ],
                ident.bag_color,
                ss,
            )
        elif view == "front":
            for sgn in (-1, 1):
                _line(
                    canvas,
                    (cx + sgn * sw * 0.55, shoulder_y),
                    (cx + sgn * sw * 0.6, hip_y - 4 * unit),
                    ident.bag_color,
                    1.2 * unit,
                    ss,
                )
    elif ident.bag == "shoulder":
        side = -1 if view == "back" else 1
        bx = cx + side * sw * 1.05
        _line(
            canvas, (cx - side * sw * 0.6, shoulder_y), (bx, hip_y), ident.bag_color, 1.0 * unit, ss
        )
        _poly(
            canvas,
            [
                (bx - 3.5 * unit, hip_y - 2 * unit),
                (bx + 3.5 * unit, hip_y - 2 * unit),
                (bx + 3.5 * unit, hip_y + 5 * unit),
                (bx - 3.5 * unit, hip_y + 5 * unit),
            ],
            ident.bag_color,
            ss,
        )

    box = render_head(canvas, ident.face, view, facing, cx, cy, face_h, ss)
    img = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    return img, box, face_h


def _draw_top(canvas, pts, ident: Identity, ss: int) -> None:
    """Fill the torso polygon with the top's colour and pattern (stripes / checks)."""
    if ident.pattern == "plain":
        _poly(canvas, pts, ident.top, ss)
        return
    arr = np.asarray(pts, np.float64) * ss
    x0, y0 = np.floor(arr.min(0)).astype(int)
    x1, y1 = np.ceil(arr.max(0)).astype(int) + 1
    hc, wc = canvas.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, wc), min(y1, hc)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(
        mask, [np.round((arr - (x0, y0)) * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4
    )
    yy = (np.arange(y0, y1, dtype=np.float32) / ss)[:, None]
    xx = (np.arange(x0, x1, dtype=np.float32) / ss)[None, :]
    p = ident.pattern_period
    alt = (yy % p) < p / 2
    if ident.pattern == "checks":
        alt = alt ^ ((xx % p) < p / 2)
    else:
        alt = np.broadcast_to(alt, mask.shape)
    fill = np.where(
        alt[..., None], np.array(ident.pattern_color, np.float32), np.array(ident.top, np.float32)
    )
    region = canvas[y0:y1, x0:x1]
    canvas[y0:y1, x0:x1] = region * (1 - mask[..., None]) + fill * mask[..., None]


def finish(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """Apply the camera's illumination, colour cast, blur and sensor noise; RGB uint8 out."""
    out = img * (np.float32(cam.gain * rng.uniform(0.93, 1.07)) * np.array(cam.cast, np.float32))
    sigma = cam.blur + rng.uniform(0.0, 0.3)
    if sigma > 0.25:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(cam.noise)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
