"""Every subcommand answers bad input with one line on stderr and exit code 2, never a traceback.

The table runs ``reidlab.cli.main`` in-process (a subprocess per case would cost ~2 s of imports
each); two cases also run as real processes to check what a shell sees.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from reidlab.cli import main


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_errors")
    (d / "garbage.pth").write_bytes(b"\x00not a checkpoint\xff" * 10)
    (d / "empty.pth").write_bytes(b"")
    (d / "src").mkdir()
    return d


# (argv with {d} for the fixture folder, a phrase the error line must contain)
BAD = [
    # datasets
    ("datasets market1501 {d}/nope", "does not exist"),
    ("datasets market1501", "give the dataset folder"),
    ("datasets cuhk03 {d}/nope --dataset-option variant", "KEY=VALUE"),
    ("datasets viper {d}/nope --split-index -1", "must be >= 0"),
    ("datasets market1501 {d}/src --dataset-option colour=red", "colour"),
    # synthetic
    ("synthetic {d}/syn --num-ids 0", "must be > 0"),
    ("synthetic {d}/syn --uniform-fraction 1.5", "must be in [0, 1]"),
    ("synthetic {d}/syn --size 0 64", "must be > 0"),
    ("synthetic {d}/syn --num-cameras 12", "num_cameras"),
    # detect
    ("detect market1501 {d}/nope", "does not exist"),
    ("detect market1501 {d}/nope --threshold 2", "must be in [0, 1]"),
    ("detect market1501 {d}/nope --upscale 0", "must be > 0"),
    ("detect market1501 {d}/nope --limit 0", "must be > 0"),
    ("detect market1501 {d}/nope --box-scale -1", "must be > 0"),
    ("detect market1501 {d}/nope --fail-closed 0", "must be in (0, 1]"),
    ("detect market1501 {d}/nope --threshold nan", "finite"),
    # anonymize
    ("anonymize {d}/src {d}/out --sigma-rel -0.2", "must be > 0"),
    ("anonymize {d}/src {d}/out --sigma -3", "must be > 0"),
    ("anonymize {d}/src {d}/out --blocks -4", "must be > 0"),
    ("anonymize {d}/src {d}/out --scale -1", "must be > 0"),
    ("anonymize {d}/src {d}/out --feather -2", "must be >= 0"),
    ("anonymize {d}/src {d}/out --batch-size 0", "must be > 0"),
    ("anonymize {d}/src {d}/out --color 2 2 2", "must be in [0, 1]"),
    ("anonymize {d}/src {d}/out --quality 101", "[0, 100]"),
    ("anonymize {d}/src {d}/out --method bogus", "invalid choice"),
    ("anonymize {d}/nope {d}/out", "expected a dataset folder"),
    ("anonymize {d}/src {d}/src/out", "inside it"),
    ("anonymize {d}/src {d}/out --dataset-option variant=labeled", "needs --dataset"),
    # verify
    ("verify {d}/nope", "holds no manifest.json"),
    ("verify {d}/src", "holds no manifest.json"),
    # evaluate
    ("evaluate --dataset market1501 --root {d}/src --model tiny --size 0 0", "must be > 0"),
    ("evaluate --dataset market1501 --root {d}/src --model tiny --batch-size 0", "must be > 0"),
    ("evaluate --dataset market1501 --root {d}/src --model tiny", "--random-init"),
    (
        "evaluate --dataset market1501 --root {d}/src --model tiny --weights {d}/nope.pth",
        "does not exist",
    ),
    ("evaluate --dataset market1501 --root {d}/src --model tiny --k1 0", "must be > 0"),
    ("evaluate --dataset market1501 --root {d}/src --model tiny --lambda 2", "must be in [0, 1]"),
    ("evaluate --dataset market1501 --root {d}/nope --model tiny --random-init", "does not exist"),
    # train
    ("train --out {d}/t --epochs 0", "must be > 0"),
    ("train --out {d}/t --lr -1", "must be > 0"),
    ("train --out {d}/t --batch-p 0", "must be > 0"),
    ("train --out {d}/t --anonymize bogus", "invalid choice"),
    ("train --out {d}/t --config {d}/nope.json", "nope.json"),
    ("train --out {d}/t --dataset-option =x", "KEY=VALUE"),
    # study
    ("study -p novalue", "KEY=VALUE"),
    ("study --tolerance -1", "must be > 0"),
    ("study {d}/nope.ipynb", "no such notebook"),
    # top level
    ("no-such-command", "invalid choice"),
]


@pytest.mark.parametrize("argv,phrase", BAD, ids=[a for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv, phrase, paths, capsys):
    args = argv.format(d=paths).split()
    try:
        code = main(args)
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}; stderr: {err}"
    assert "Traceback" not in err
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, f"expected one error line, got: {err!r}"
    assert errors[0].startswith(f"reidlab {args[0]}: error:") or args[0] == "no-such-command", (
        errors[0]
    )
    assert phrase in errors[0], errors[0]


@pytest.mark.parametrize(
    "argv,phrase",
    [
        ("anonymize {d}/src {d}/out --sigma -3", "must be > 0"),
        (
            "evaluate --dataset synthetic --root {s} --model tiny --weights {d}/garbage.pth",
            "garbage.pth",
        ),
        (
            "evaluate --dataset synthetic --root {s} --model tiny --weights {d}/empty.pth",
            "empty.pth",
        ),
    ],
)
def test_bad_input_in_a_real_process(argv, phrase, paths, synthetic_root):
    r = subprocess.run(
        [sys.executable, "-m", "reidlab.cli", *argv.format(d=paths, s=synthetic_root).split()],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err_lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(err_lines) == 1 and "error:" in err_lines[0] and phrase in err_lines[0], r.stderr
