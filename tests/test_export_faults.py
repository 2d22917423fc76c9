"""Fault injection on `reidlab anonymize` (the CLI, as a subprocess): SIGKILL at random points, damaged
outputs and changed / unreadable / deleted sources, and a full destination disk. After each fault a
re-run must complete and `reidlab verify` pass, and every output must equal both an independent
reference (the decoded source with the face region zeroed) and, byte for byte, a fresh export of the
same sources into a clean folder.

Marked slow: each CLI run spends most of its ~5 s importing torch on a shared 2-core machine
(about 50 s for the file in all).

The data: a few hundred random Market-like crops (32x16 and 64x32, PNG and JPEG) with ground-truth
face boxes in ``face_boxes.json`` (what the oracle detector reads), so no detection model is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from reidlab.anonymize.export import JOURNAL, MANIFEST
from reidlab.errors import ImageReadError
from reidlab.imageio import read_rgb

REPO = Path(__file__).resolve().parents[1]
N_IMAGES = 300
FAIL_CLOSED = 0.3  # head prior: top 30% of the crop, centred, 60% wide (HeadPrior's default width)
ARGS = [
    "--detector",
    "oracle",
    "--method",
    "zero",
    "--scale",
    "1.0",
    "--fail-closed",
    str(FAIL_CLOSED),
    "--format",
    "png",
    "--batch-size",
    "8",
    "--no-progress",
]


# ---------------------------------------------------------------- data and independent reference


def _make_source(root: Path) -> None:
    """``N_IMAGES`` random crops in Market-1501 layout, face boxes in ``face_boxes.json``.

    Boxes have integer corners (pixel centres are at .5, so no region edge is a floating-point tie);
    every tenth crop has no face (the fail-closed prior applies).
    """
    rng = np.random.default_rng(0)
    records = []
    splits = ["bounding_box_train", "query", "bounding_box_test"]
    for i in range(N_IMAGES):
        h, w = (32, 16) if i % 3 else (64, 32)
        ext = ".jpg" if i % 4 == 0 else ".png"
        rel = f"{splits[i % 3]}/{i % 50 + 1:04d}_c{i % 6 + 1}s1_{i:06d}_00{ext}"
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        _write_image(root / rel, img)
        box = None
        if i % 10:
            bw, bh = int(rng.integers(3, w // 2)), int(rng.integers(3, h // 3))
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h // 3))
            box = [x1, y1, x1 + bw, y1 + bh]
        records.append({"path": rel, "box": box})
    (root / "face_boxes.json").write_text(json.dumps({"images": records}))


def _write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _expected_pixels(src: Path, rel: str, box) -> np.ndarray:
    """The decoded source with every pixel whose centre lies in the face box (or, without a face,
    in the head prior box) set to 0: what ``--method zero --scale 1.0`` must produce."""
    img = read_rgb(src / rel).copy()
    h, w = img.shape[:2]
    if box is None:
        x1, x2, y1, y2 = 0.2 * w, 0.8 * w, 0.0, FAIL_CLOSED * h
    else:
        x1, y1, x2, y2 = box
    cols = (np.arange(w) + 0.5 >= x1) & (np.arange(w) + 0.5 < x2)
    rows = (np.arange(h) + 0.5 >= y1) & (np.arange(h) + 0.5 < y2)
    img[np.ix_(rows, cols)] = 0
    return img


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "market"
    _make_source(root)
    return root


@pytest.fixture
def src(pristine, tmp_path):
    """A private copy of the source (scenarios modify it)."""
    root = tmp_path / "market"
    shutil.copytree(pristine, root)
    return root


# ---------------------------------------------------------------- running the CLI


def _env() -> dict:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    env.pop("PYTHONWARNINGS", None)
    return env


def _cmd(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reidlab.cli", "anonymize", str(src), str(dst), *ARGS, *extra]


def _anonymize(src: Path, dst: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(src, dst, *extra), env=_env(), capture_output=True, text=True, timeout=120, check=False
    )


def _outputs(dst: Path) -> int:
    return sum(
        1
        for _d, _s, names in os.walk(dst)
        for n in names
        if n.endswith(".png") and not n.startswith(".")
    )


def _kill_after(src: Path, dst: Path, n_outputs: int, delay: float = 0.0) -> int:
    """Start the export and SIGKILL it once ``n_outputs`` outputs exist, then ``delay`` seconds more
    (``0`` = at once); return its exit status (``-SIGKILL``, or 0 if it finished first)."""
    proc = subprocess.Popen(
        _cmd(src, dst), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    t0 = time.monotonic()
    reached = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < 60:
            if reached is None and _outputs(dst) >= n_outputs:
                reached = time.monotonic()
            if reached is not None and time.monotonic() - reached >= delay:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return proc.returncode


def _verify(dst: Path) -> int:
    from reidlab.cli import main

    return main(["verify", str(dst)])


# ---------------------------------------------------------------- checks


def _journal_records(dst: Path) -> dict[str, dict]:
    records = {}
    for line in (dst / JOURNAL).read_bytes().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill: ignored by the exporter too
        if r.get("type") != "header":
            records[r["rel"]] = r
    return records


def _assert_journal_truthful(dst: Path) -> None:
    """Nothing is journaled as done that is not: every recorded output is on disk, whole."""
    if not (dst / JOURNAL).exists():
        return
    for rel, r in _journal_records(dst).items():
        if r["type"] in ("image", "copy"):
            data = (dst / r["out"]).read_bytes()
            assert len(data) == r["size"] and hashlib.sha256(data).hexdigest() == r["sha256"], rel


def _assert_export_correct(src: Path, dst: Path, fresh: Path) -> None:
    """verify passes; every output equals the independent reference and, byte for byte, a fresh export."""
    from reidlab.cli import main

    assert _verify(dst) == 0
    assert main(["anonymize", str(src), str(fresh), *ARGS]) == 0
    boxes = {
        r["path"]: r["box"] for r in json.loads((src / "face_boxes.json").read_text())["images"]
    }
    m = json.loads((dst / MANIFEST).read_text())
    ref = json.loads((fresh / MANIFEST).read_text())
    assert sorted(m["files"]) == sorted(ref["files"])
    assert sorted(c["path"] for c in m["corrupt"]) == sorted(c["path"] for c in ref["corrupt"])
    readable = []
    for rel in sorted(boxes):
        try:
            read_rgb(src / rel)
        except ImageReadError:
            continue
        readable.append(str(Path(rel).with_suffix(".png")))
    assert sorted(m["files"]) == readable
    for out, entry in m["files"].items():
        got = read_rgb(dst / out)
        assert np.array_equal(
            got, _expected_pixels(src, entry["source"], boxes[entry["source"]])
        ), out
        assert (dst / out).read_bytes() == (fresh / out).read_bytes(), out
    assert (dst / "face_boxes.json").read_bytes() == (src / "face_boxes.json").read_bytes()
    assert not [n for _d, _s, names in os.walk(dst) for n in names if n.endswith(".tmp")]


# ---------------------------------------------------------------- scenarios


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(src, tmp_path):
    dst = tmp_path / "out"
    killed = 0
    for seed in range(3):
        rnd = random.Random(seed)
        if (
            seed == 1
        ):  # a random moment after the first new output (mid-batch, mid-write, mid-journal line)
            rc = _kill_after(src, dst, _outputs(dst) + 1, delay=rnd.uniform(0.0, 0.2))
        else:  # as soon as a random number of further outputs exist
            rc = _kill_after(src, dst, _outputs(dst) + rnd.randint(1, 80))
        assert rc in (-signal.SIGKILL, 0), rc
        _assert_journal_truthful(dst)
        if rc == -signal.SIGKILL:
            killed += 1
            assert not (
                dst / MANIFEST
            ).exists()  # an interrupted export never claims to be complete
    assert killed >= 2, "the kills came too late to interrupt anything"
    r = _anonymize(src, dst)
    assert r.returncode == 0, r.stderr
    assert f"wrote {N_IMAGES} images" in r.stdout
    _assert_export_correct(src, dst, tmp_path / "fresh")


@pytest.mark.slow
def test_damaged_outputs_and_changed_sources_are_redone(src, tmp_path):
    dst = tmp_path / "out"
    r = _anonymize(src, dst)
    assert r.returncode == 0, r.stderr
    m = json.loads((dst / MANIFEST).read_text())
    outs = sorted(m["files"])
    rnd = random.Random(0)
    picked = rnd.sample(outs, 14)
    for out in picked[:3]:  # truncated
        data = (dst / out).read_bytes()
        (dst / out).write_bytes(data[: rnd.randint(0, len(data) - 1)])
    for out in picked[3:6]:  # bytes flipped, same size
        data = bytearray((dst / out).read_bytes())
        for _ in range(3):
            data[rnd.randrange(len(data))] ^= 0xFF
        (dst / out).write_bytes(bytes(data))
    sources = [m["files"][o]["source"] for o in picked]
    rng = np.random.default_rng(1)
    for rel in sources[6:9]:  # modified sources (same format and size, new pixels)
        h, w = read_rgb(src / rel).shape[:2]
        _write_image(src / rel, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (src / sources[9]).unlink()
    os.symlink(
        tmp_path / "gone.png", src / sources[9]
    )  # became unreadable (as root, chmod 000 would not do)
    (src / sources[10]).write_bytes(
        b"\x89PNG\r\n\x1a\n not an image any more"
    )  # became undecodable
    (src / sources[11]).unlink()  # deleted
    r = _anonymize(src, dst)
    assert r.returncode == 0, r.stderr
    resume = json.loads((dst / MANIFEST).read_text())["resume"]
    assert resume["redone_output_mismatch"] == 6 and resume["redone_source_changed"] == 5
    assert resume["removed_source_deleted"] == 1 and resume["checked_hashes"] is True
    assert "6 finished outputs are missing or no longer match" in r.stderr
    assert (
        "5 sources changed or became unreadable" in r.stderr
        and "1 sources were deleted" in r.stderr
    )
    for rel in sources[9:12]:  # no stale output of an unreadable or deleted source
        assert not (dst / Path(rel).with_suffix(".png")).exists()
    corrupt = {c["path"] for c in json.loads((dst / MANIFEST).read_text())["corrupt"]}
    assert corrupt == {sources[9], sources[10]}
    _assert_export_correct(src, dst, tmp_path / "fresh")


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a small tmpfs to fill the destination disk: {e}")
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs to fill the destination disk (needs root / CAP_SYS_ADMIN): "
            f"{r.stderr.strip()}"
        )


@pytest.mark.slow
def test_full_destination_disk_one_error_line_then_resume(src, tmp_path):
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "200k")
    try:
        dst = mnt / "out"
        r = _anonymize(src, dst)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr
        errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and errors[0].startswith("reidlab anonymize: error: destination ")
        assert "is full" in errors[0] and str(dst) in errors[0]
        assert "wrote" not in r.stdout and not (dst / MANIFEST).exists()
        _assert_journal_truthful(dst)
        n_done = sum(1 for x in _journal_records(dst).values() if x["type"] == "image")
        assert 0 < n_done < N_IMAGES
        # make room: grow the file system, resume, and everything ends up correct
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True, timeout=30)
        r = _anonymize(src, dst)
        assert r.returncode == 0, r.stderr
        assert f"wrote {N_IMAGES} images" in r.stdout
        _assert_export_correct(src, dst, tmp_path / "fresh")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30, check=False)
