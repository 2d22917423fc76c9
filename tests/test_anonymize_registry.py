"""The method registry: a method added through one register_method call reaches the Anonymizer,
the ``reidlab anonymize`` flags and the explorer's controls; settings of another method are refused."""

from __future__ import annotations

import json

import pytest
import torch

from reidlab.anonymize import Anonymizer, available_methods, map_faces, register_method
from reidlab.anonymize.methods import METHODS, unregister_method
from reidlab.cli import build_parser, main
from reidlab.params import Param


def invert_faces(images, boxes, valid=None, strength=1.0, **common):
    """The toy method: ``x + strength * (1 - 2x)`` inside the mask."""
    return map_faces(images, boxes, valid, lambda w, i: w + strength * (1 - 2 * w), **common)


@pytest.fixture
def invert():
    m = register_method(
        "invert",
        invert_faces,
        (
            Param(
                "strength",
                float,
                1.0,
                "how far towards the negative",
                low=0,
                high=1,
                widget={"step": 0.05},
            ),
        ),
        "push face pixels towards their negative",
    )
    yield m
    unregister_method("invert")
    assert "invert" not in METHODS


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 16, generator=g)
    boxes = torch.tensor([[[2.0, 3.0, 10.0, 13.0]], [[4.0, 1.0, 14.0, 9.0]]])
    return x, boxes, torch.ones(2, 1, dtype=torch.bool)


# ---------------------------------------------------------------- the Anonymizer


def test_registered_method_works_in_the_anonymizer(invert):
    x, boxes, valid = _batch()
    a = Anonymizer("invert", strength=0.5, scale=1.0)
    y = a(x, boxes, valid)
    s = a.settings()
    assert s == {
        "method": "invert",
        "mask": "box",
        "scale": 1.0,
        "feather": 0.0,
        "feather_rel": 0.0,
        "strength": 0.5,
    }
    assert json.loads(json.dumps(s)) == s
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[0, :, 3:13, 2:10] = True
    inside[1, :, 1:9, 4:14] = True
    assert torch.equal(y[~inside], x[~inside])  # outside the masks: bit-identical
    assert torch.allclose(y[inside], (x + 0.5 * (1 - 2 * x))[inside])
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        Anonymizer("invert", strength=2)
    with pytest.raises(ValueError, match="strength is a setting of invert, not of blur"):
        Anonymizer("blur", strength=0.5)
    assert "invert" in available_methods()


def test_builtin_settings_are_recorded_as_before():
    assert Anonymizer("blur").settings() == {
        "method": "blur",
        "mask": "box",
        "scale": 1.0,
        "feather": 0.0,
        "feather_rel": 0.0,
        "sigma_rel": 0.2,
        "sigma": None,
        "border": "reflect101",
        "sigma_rel_of": "detected box height, before the mask's scale",
        "truncate": 3.0,
    }
    assert Anonymizer("blur", sigma=2.0).settings()["sigma_rel"] is None
    cfg = {"method": "pixelate", "blocks": 8, "scale": 1.2}  # as TrainConfig.anonymizer holds it
    s = Anonymizer(**cfg).settings()
    assert s["blocks"] == 8 and s["pooling"] == "area" and s["scale"] == 1.2
    s = Anonymizer("fill", fill="noise", seed=3).settings()
    assert (s["fill"], s["color"], s["seed"]) == ("noise", [0.5, 0.5, 0.5], 3)
    assert set(Anonymizer("zero").settings()) == {
        "method",
        "mask",
        "scale",
        "feather",
        "feather_rel",
    }


@pytest.mark.parametrize(
    "method,settings,message",
    [
        ("blur", {"blocks": 8}, "blocks is a setting of pixelate, not of blur"),
        ("pixelate", {"sigma_rel": 0.3}, "sigma_rel is a setting of blur, not of pixelate"),
        ("zero", {"color": (0, 0, 0)}, "color is a setting of fill, not of zero"),
        ("blur", {"colour": 1}, "unknown anonymization setting 'colour'"),
        ("smudge", {}, "method: expected one of blur, pixelate"),
        ("blur", {"sigma": -3}, "sigma must be > 0"),
        ("fill", {"fill": "blue"}, "fill must be one of constant, mean, noise"),
        ("fill", {"color": (0.5, 0.5)}, "color must be 3 values"),
        ("blur", {"mask": "circle"}, "mask must be one of box, ellipse"),
        ("blur", {"scale": 0}, "scale must be > 0"),
        ("blur", {"feather": -1}, "feather must be >= 0"),
    ],
)
def test_bad_settings_raise_naming_them(method, settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Anonymizer(method, **settings)


def test_register_refuses_clashes(invert):
    with pytest.raises(ValueError, match="already registered"):
        register_method("invert", invert_faces)
    with pytest.raises(ValueError, match="common, reserved or repeated"):
        register_method("other", invert_faces, (Param("scale", float, 1.0),))
    with pytest.raises(ValueError, match="defined differently"):
        register_method("other", invert_faces, (Param("strength", int, 1),))
    assert "other" not in METHODS
    select = METHODS["pixelate"].select({"blocks": 8, "sigma_rel": 0.3, "scale": 1.2})
    assert select == {"blocks": 8, "scale": 1.2}


# ---------------------------------------------------------------- the command line


def test_registered_method_is_a_cli_choice_with_its_flag(invert, capsys):
    with pytest.raises(SystemExit) as e:
        main(["anonymize", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "{blur,pixelate,fill,zero,none,invert}" in out and "--strength STRENGTH" in out


def test_cli_settings_from_flags(invert):
    from reidlab.commands.anonymize import anonymizer_settings

    parser = build_parser(["anonymize"])
    args = parser.parse_args(["anonymize", "s", "d", "--method", "invert", "--strength", "0.25"])
    assert anonymizer_settings(args) == {"method": "invert", "scale": 1.2, "strength": 0.25}
    args = parser.parse_args(["anonymize", "s", "d", "--method", "fill", "--color", "0", "1", "0"])
    s = anonymizer_settings(args)
    assert s == {"method": "fill", "scale": 1.2, "seed": 0, "color": (0.0, 1.0, 0.0)}
    assert Anonymizer(**s).settings()["color"] == [0.0, 1.0, 0.0]
    args = parser.parse_args(["anonymize", "s", "d"])  # today's defaults
    assert (
        Anonymizer(**anonymizer_settings(args)).settings()
        == Anonymizer("blur", scale=1.2).settings()
    )


@pytest.mark.parametrize(
    "extra,phrase",
    [
        ("--blocks 8 --method blur", "--blocks is a setting of --method pixelate"),
        (
            "--sigma 2 --method pixelate",
            "--sigma is a setting of --method blur, not of --method pixelate",
        ),
        ("--strength 0.5 --method zero", "--strength is a setting of --method invert"),
        ("--method invert --strength 2", "must be in [0, 1]"),
    ],
)
def test_cli_refuses_a_flag_of_another_method(invert, extra, phrase, tmp_path, capsys):
    argv = ["anonymize", str(tmp_path / "nope"), str(tmp_path / "out"), *extra.split()]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("reidlab anonymize: error:") and phrase in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_exports_with_a_registered_method(invert, synthetic_root, tmp_path):
    dst = tmp_path / "anon"
    argv = [
        "anonymize",
        str(synthetic_root),
        str(dst),
        "--detector",
        "oracle",
        "--method",
        "invert",
        "--strength",
        "0.75",
        "--format",
        "png",
        "--no-progress",
    ]
    assert main(argv) == 0
    m = json.loads((dst / "manifest.json").read_text())
    assert m["anonymizer"]["method"] == "invert" and m["anonymizer"]["strength"] == 0.75
    assert m["anonymizer"]["scale"] == 1.2


# ---------------------------------------------------------------- the explorer


def test_registered_method_gets_explorer_controls(invert):
    pytest.importorskip("ipywidgets")
    from reidlab.widgets import ExplorerControls

    c = ExplorerControls.build()
    assert c.method.options == available_methods()
    assert set(c.per_method) == set(available_methods())
    strength = c.per_method["invert"]["strength"]
    assert strength.description == "strength" and strength.value == 1.0
    assert (strength.min, strength.max, strength.step) == (0.0, 1.0, 0.05)
    assert strength.layout.display == "none"  # blur is selected
    assert c.per_method["blur"]["sigma_rel"].layout.display == ""
    c.method.value = "invert"
    assert strength.layout.display == "" and c.per_method["blur"]["sigma_rel"].layout.display == (
        "none"
    )
    strength.value = 0.4
    s = c.settings()
    assert s == {
        "method": "invert",
        "mask": "box",
        "scale": 1.2,
        "feather": 0.0,
        "strength": 0.4,
    }
    x, boxes, valid = _batch()
    assert torch.equal(
        Anonymizer(**s)(x, boxes, valid),
        Anonymizer("invert", strength=0.4, scale=1.2)(x, boxes, valid),
    )
    assert strength in c.widgets
    from reidlab.widgets import default_settings

    assert default_settings()[-1] == {"method": "invert", "strength": 1.0}


@pytest.mark.parametrize(
    "settings",
    [
        {"method": "blur", "sigma": 2.0, "mask": "ellipse"},
        {"method": "blur", "sigma_rel": 0.3, "truncate": 4.0},
        {"method": "pixelate", "blocks": 8, "scale": 1.2},
        {"method": "fill", "fill": "noise", "seed": 3, "color": (0.1, 0.2, 0.3)},
        {"method": "zero", "feather_rel": 0.1},
        {"method": "none"},
    ],
)
def test_recorded_settings_rebuild_the_same_anonymizer(settings):
    a = Anonymizer(**settings)
    recorded = json.loads(json.dumps(a.settings()))  # as a manifest holds them
    b = Anonymizer(**recorded)
    assert b.settings() == a.settings()
    x, boxes, valid = _batch()
    assert torch.equal(a(x, boxes, valid), b(x, boxes, valid))
    if settings["method"] == "blur":
        with pytest.raises(ValueError, match="border of blur is fixed at 'reflect101'"):
            Anonymizer(**{**recorded, "border": "constant"})
