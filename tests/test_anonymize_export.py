"""The dataset anonymizer (export + verify) on the synthetic dataset and tiny hand-made folders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reidlab.anonymize import Anonymizer, box_masks
from reidlab.anonymize.export import (
    JOURNAL,
    MANIFEST,
    ExportError,
    boxes_faces,
    export_dataset,
    verify_export,
)
from reidlab.imageio import read_rgb


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture
def tiny(tmp_path):
    """A hand-made dataset: 5 PNG crops in two folders, a corrupt JPEG, an empty PNG, a readme and a Thumbs.db."""
    root = tmp_path / "src"
    rng = np.random.default_rng(0)
    boxes = {}
    for i, rel in enumerate(
        [
            "query/0001_c1s1_000001_00.png",
            "query/0002_c2s1_000002_00.png",
            "bounding_box_test/0001_c3s1_000003_00.png",
            "bounding_box_test/0002_c1s1_000004_00.png",
            "bounding_box_test/0003_c2s1_000005_00.png",
        ]
    ):
        write_png(root / rel, rng.integers(0, 256, (32, 16, 3), dtype=np.uint8))
        boxes[str(root / rel)] = (
            np.array([[3.0 + i % 3, 2.0, 11.0 + i % 3, 12.0]], np.float32)
            if i != 4
            else np.zeros((0, 4), np.float32)
        )
    (root / "query" / "0009_c1s1_000009_00.jpg").write_bytes(b"this is not a jpeg")
    (root / "query" / "0010_c1s1_000010_00.png").write_bytes(b"")
    (root / "readme.txt").write_text("a dataset\n")
    (root / "query" / "Thumbs.db").write_bytes(b"\x00\x01")
    return root, boxes


def _anon(**kw):
    return Anonymizer(kw.pop("method", "zero"), **kw)


def test_tiny_export_pixels_manifest_corrupt_and_verify(tiny, tmp_path):
    src, boxes = tiny
    before = tree_hashes(src)
    dst = tmp_path / "out"
    anon = _anon(method="blur", mask="ellipse", scale=1.2, feather=1.0)
    m = export_dataset(
        src,
        dst,
        faces=boxes_faces(boxes),
        anonymizer=anon,
        fmt="png",
        detector_info={"name": "given", "params": {"x": 1}},
        progress=False,
    )
    assert tree_hashes(src) == before  # the source is never touched
    # layout and names preserved, non-image files copied, Thumbs.db skipped
    assert (dst / "readme.txt").read_text() == "a dataset\n"
    assert not (dst / "query" / "Thumbs.db").exists()
    assert sorted(m["files"]) == sorted(
        p.relative_to(src).as_posix() for p in src.rglob("*.png") if p.stat().st_size > 0
    )
    # corrupt and empty sources are listed, not dropped
    assert sorted(c["path"] for c in m["corrupt"]) == [
        "query/0009_c1s1_000009_00.jpg",
        "query/0010_c1s1_000010_00.png",
    ]
    assert m["counts"] == {
        "source_images": 7,
        "images_written": 5,
        "with_face": 4,
        "without_face": 1,
        "fail_closed": 0,
        "invalid_boxes": 0,
        "corrupt": 2,
        "copied": 1,
    }
    assert m["anonymizer"] == anon.settings() and m["detector"] == {
        "name": "given",
        "params": {"x": 1},
    }
    assert set(m["versions"]) >= {"torch", "kornia", "opencv", "reidlab"}
    assert m["copied"]["readme.txt"]["sha256"] == before["readme.txt"]
    for rel, entry in m["files"].items():
        assert entry["src_sha256"] == before[rel]
        assert entry["sha256"] == hashlib.sha256((dst / rel).read_bytes()).hexdigest()
        gt = boxes[str(src / rel)]
        assert np.allclose(np.asarray(entry["boxes"]).reshape(-1, 5)[:, :4], gt)
        # PNG is lossless: every pixel outside the (scaled, ellipse) mask is bit-identical
        a, b = read_rgb(src / rel), read_rgb(dst / rel)
        mask = box_masks(
            torch.from_numpy(gt)[None], None, a.shape[:2], shape="ellipse", scale=1.2, feather=1.0
        )[0, 0].numpy()
        assert np.array_equal(a[mask == 0], b[mask == 0])
        if len(gt):
            assert (a[mask == 1] != b[mask == 1]).mean() > 0.5
    assert json.loads((dst / MANIFEST).read_text())["files"] == m["files"]
    assert verify_export(dst) == []


def test_verify_detects_tampering_missing_and_extra_files(tiny, tmp_path):
    from reidlab.cli import main

    src, boxes = tiny
    dst = tmp_path / "out"
    export_dataset(
        src, dst, faces=boxes_faces(boxes), anonymizer=_anon(), fmt="png", progress=False
    )
    assert main(["verify", str(dst)]) == 0
    victim = dst / "query" / "0001_c1s1_000001_00.png"
    data = bytearray(victim.read_bytes())
    data[-20] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert verify_export(dst) == ["checksum mismatch: query/0001_c1s1_000001_00.png"]
    (dst / "bounding_box_test" / "0002_c1s1_000004_00.png").unlink()
    write_png(dst / "query" / "extra.png", np.zeros((4, 4, 3), np.uint8))
    problems = verify_export(dst)
    assert "missing: bounding_box_test/0002_c1s1_000004_00.png" in problems
    assert "not in manifest: query/extra.png" in problems
    assert main(["verify", str(dst)]) == 1
    assert main(["verify", str(tmp_path)]) == 2  # no manifest at all: bad input, one line


def test_destination_inside_or_equal_source_refused(tiny, tmp_path):
    src, boxes = tiny
    kw = {"faces": boxes_faces(boxes), "anonymizer": _anon(), "progress": False}
    before = tree_hashes(src)
    for bad in (src, src / "anon", src / "query" / ".." / "x"):
        with pytest.raises(ExportError, match="inside|source folder"):
            export_dataset(src, bad, **kw)
    link = tmp_path / "link"
    os.symlink(src / "query", link)
    with pytest.raises(ExportError):
        export_dataset(src, link / "out", **kw)  # resolves into SRC
    with pytest.raises(ExportError, match="contains"):
        export_dataset(src, tmp_path, **kw)
    assert tree_hashes(src) == before


def test_resume_after_interruption_does_not_redo_finished_files(tiny, tmp_path):
    src, boxes = tiny
    dst = tmp_path / "out"
    seen: list[str] = []
    base = boxes_faces(boxes)

    def faces(paths, images):
        if len(seen) >= 2 and interrupt:
            raise KeyboardInterrupt  # simulated ^C in the middle of the run
        seen.extend(paths)
        return base(paths, images)

    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        export_dataset(
            src, dst, faces=faces, anonymizer=_anon(), fmt="png", batch_size=2, progress=False
        )
    first = list(seen)
    assert len(first) == 2 and not (dst / MANIFEST).exists() and (dst / JOURNAL).exists()
    interrupt = False
    seen.clear()
    m = export_dataset(
        src, dst, faces=faces, anonymizer=_anon(), fmt="png", batch_size=2, progress=False
    )
    assert not set(first) & set(seen), "finished files were processed again"
    assert len(first) + len(seen) == 5
    assert m["counts"]["images_written"] == 5 and verify_export(dst) == []
    # a finished export re-run does nothing, and other settings are refused
    seen.clear()
    export_dataset(
        src, dst, faces=faces, anonymizer=_anon(), fmt="png", batch_size=2, progress=False
    )
    assert seen == []
    with pytest.raises(ExportError, match="other settings"):
        export_dataset(
            src, dst, faces=faces, anonymizer=_anon(method="blur"), fmt="png", progress=False
        )


def test_fail_closed_prior_used_where_no_face(tiny, tmp_path):
    src, _boxes = tiny
    dst = tmp_path / "out"
    m = export_dataset(
        src,
        dst,
        faces=boxes_faces({}),
        anonymizer=_anon(),
        fmt="png",
        fail_closed=0.25,
        progress=False,
    )
    assert m["counts"]["fail_closed"] == 5 and m["counts"]["without_face"] == 5
    assert m["fail_closed"] == {"height": 0.25, "width": 0.6, "top": 0.0}
    e = m["files"]["query/0001_c1s1_000001_00.png"]
    assert e["fail_closed"] and e["detected"] == 0
    out = read_rgb(dst / "query/0001_c1s1_000001_00.png")
    assert out[:8, 4:12].max() == 0 and np.array_equal(
        out[8:], read_rgb(src / "query/0001_c1s1_000001_00.png")[8:]
    )


def test_synthetic_source_format_readable_by_loader_and_cli(synthetic_root, tmp_path):
    from reidlab.cli import main
    from reidlab.datasets import build_dataset

    dst = tmp_path / "anon"
    rc = main(
        [
            "anonymize",
            str(synthetic_root),
            str(dst),
            "--dataset",
            "synthetic",
            "--detector",
            "oracle",
            "--method",
            "pixelate",
            "--mask",
            "ellipse",
            "--quality",
            "90",
            "--no-progress",
        ]
    )
    assert rc == 0
    m = json.loads((dst / MANIFEST).read_text())
    assert m["detector"]["name"] == "oracle" and m["output"] == {"format": "source", "quality": 90}
    assert m["anonymizer"]["method"] == "pixelate" and m["anonymizer"]["scale"] == 1.2
    src_ds, dst_ds = build_dataset("synthetic", synthetic_root), build_dataset("synthetic", dst)
    assert dst_ds.stats() == src_ds.stats()
    assert [Path(s.path).name for s in dst_ds.query] == [Path(s.path).name for s in src_ds.query]
    from reidlab.datasets.synthetic import load_face_boxes

    gt = {
        Path(k).relative_to(Path(synthetic_root).resolve()).as_posix(): v
        for k, v in load_face_boxes(synthetic_root).items()
    }
    assert m["counts"]["with_face"] == sum(1 for v in gt.values() if len(v))
    assert main(["verify", str(dst)]) == 0


@pytest.mark.slow
@pytest.mark.shared
def test_market_query_subset_with_centerface(tmp_path):
    """Real data, real detector: 48 Market-1501 query crops through CenterFace + blur, then verify."""
    from conftest import require_shared

    from reidlab.anonymize.export import detector_faces
    from reidlab.faces import build_detector

    query = require_shared("market1501", "query")
    src = tmp_path / "src" / "query"
    src.mkdir(parents=True)
    for p in sorted(query.glob("*.jpg"))[:48]:
        os.symlink(p, src / p.name)  # links, not copies, of the shared images
    det = build_detector("centerface", upscale=2.0, threshold=0.5)
    dst = tmp_path / "out"
    m = export_dataset(
        src.parent,
        dst,
        faces=detector_faces(det),
        anonymizer=_anon(method="blur", scale=1.2),
        detector_info={"name": det.name, "params": det.params},
        fail_closed=0.3,
        fmt="png",
        progress=False,
    )
    c = m["counts"]
    assert c["images_written"] == 48 and c["with_face"] + c["without_face"] == 48
    assert 0 < c["with_face"] < 48 and c["fail_closed"] == c["without_face"]
    assert all(f["boxes"] for f in m["files"].values())  # every crop got a face box or the prior
    assert verify_export(dst) == []


# ---------------------------------------------------------------- fail closed: unusable boxes from the face source


def _prior_region(h, w, height=0.3, width=0.6):
    """Independent reference of the head prior's pixels: centred, ``width`` wide, top ``height``."""
    x1, x2, y2 = (w - width * w) / 2, (w + width * w) / 2, height * h
    cols = [c for c in range(w) if x1 <= c + 0.5 < x2]
    rows = [r for r in range(h) if 0 <= r + 0.5 < y2]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@pytest.mark.parametrize("fail_closed", [None, 0.25])
def test_unusable_boxes_from_the_face_source_get_the_head_prior(tiny, tmp_path, fail_closed):
    src, _boxes = tiny
    nan, inf = float("nan"), float("inf")
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png") if p.stat().st_size)
    given = {  # what the face source answers per crop (32x16 crops)
        names[0]: np.array([[nan, 2.0, 10.0, 12.0]], np.float32),
        names[1]: np.array([[2.0, 2.0, inf, 12.0, 0.9]], np.float32),
        names[2]: np.array(
            [[10.0, 2.0, 4.0, 12.0], [3.0, 2.0, 11.0, 12.0]], np.float32
        ),  # one inverted, one fine
        names[3]: np.array(
            [[1.0e4, 2.0, 1.1e4, 12.0]], np.float32
        ),  # far outside a 16 px wide crop
        names[4]: np.array([[3.0, 2.0, 11.0]], np.float32),  # wrong shape
    }
    expect_rows = {
        names[0]: [["nan", 2.0, 10.0, 12.0]],
        names[1]: [[2.0, 2.0, "inf", 12.0, pytest.approx(0.9)]],
        names[2]: [[10.0, 2.0, 4.0, 12.0], [3.0, 2.0, 11.0, 12.0]],
        names[3]: [[1.0e4, 2.0, 1.1e4, 12.0]],
        names[4]: [[3.0, 2.0, 11.0]],
    }

    def faces(paths, images):
        return [given[Path(p).relative_to(src).as_posix()] for p in paths]

    dst = tmp_path / "out"
    m = export_dataset(
        src,
        dst,
        faces=faces,
        anonymizer=_anon(),
        fmt="png",
        fail_closed=fail_closed,
        progress=False,
    )
    assert m["counts"]["invalid_boxes"] == 5 and m["counts"]["images_written"] == 5
    assert m["counts"]["fail_closed"] == 5 and m["counts"]["with_face"] == 0
    rows, cols = _prior_region(32, 16, height=fail_closed or 0.3)
    for rel in names:
        e = m["files"][rel]
        assert e["invalid_boxes"] == expect_rows[rel] and e["fail_closed"] and e["detected"] == 0
        a, b = read_rgb(src / rel), read_rgb(dst / rel)
        inside = np.zeros(a.shape[:2], bool)
        inside[rows, cols] = True
        assert b[inside].max() == 0  # the head is blacked out
        assert np.array_equal(a[~inside], b[~inside])  # and nothing else changed
    assert (
        json.loads((dst / MANIFEST).read_text(), parse_constant=pytest.fail)["counts"][
            "invalid_boxes"
        ]
        == 5
    )
    assert verify_export(dst) == []


def test_face_source_answering_for_the_wrong_number_of_images_is_an_export_error(tiny, tmp_path):
    src, _ = tiny
    with pytest.raises(ExportError, match="face source answered 1 box sets for 2 images"):
        export_dataset(
            src,
            tmp_path / "out",
            faces=lambda paths, images: [np.zeros((0, 4))],
            anonymizer=_anon(),
            fmt="png",
            batch_size=2,
            progress=False,
        )


# ---------------------------------------------------------------- resume trusts nothing it can check


def _export(src, dst, **kw):
    kw = {
        "faces": boxes_faces(kw.pop("boxes")),
        "anonymizer": _anon(method="blur"),
        "fmt": "png",
        "progress": False,
        **kw,
    }
    return export_dataset(src, dst, **kw)


def _same_as_fresh_export(src, dst, boxes, tmp_path, name="fresh"):
    """Every output equals, byte for byte, a fresh export of the same sources into a clean folder."""
    fresh = tmp_path / name
    ref = _export(src, fresh, boxes=boxes)
    got = json.loads((dst / MANIFEST).read_text())
    assert sorted(got["files"]) == sorted(ref["files"])
    for rel in ref["files"]:
        assert (dst / rel).read_bytes() == (fresh / rel).read_bytes(), rel
    assert sorted(c["path"] for c in got["corrupt"]) == sorted(c["path"] for c in ref["corrupt"])


def test_resume_redoes_damaged_outputs_and_changed_sources(tiny, tmp_path, caplog):
    src, boxes = tiny
    dst = tmp_path / "out"
    _export(src, dst, boxes=boxes)
    q1, q2 = "query/0001_c1s1_000001_00.png", "query/0002_c2s1_000002_00.png"
    t3, t4, t5 = (
        "bounding_box_test/0001_c3s1_000003_00.png",
        "bounding_box_test/0002_c1s1_000004_00.png",
        "bounding_box_test/0003_c2s1_000005_00.png",
    )
    good = (dst / q1).read_bytes()
    (dst / q1).write_bytes(good[: len(good) // 2])  # truncated output
    flipped = bytearray((dst / q2).read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # corrupted output, same size
    (dst / q2).write_bytes(bytes(flipped))
    write_png(src / t3, np.full((32, 16, 3), 200, np.uint8))  # a changed source
    (src / t4).unlink()
    os.symlink(tmp_path / "nowhere.png", src / t4)  # a source that became unreadable
    (src / t5).unlink()  # a deleted source
    (src / "readme.txt").write_text("changed\n")  # a changed non-image file
    assert (dst / t5).exists()
    caplog.set_level("WARNING")
    m = _export(src, dst, boxes=boxes)
    # kept: the two corrupt sources, unchanged; changed: t3, t4 (now unreadable) and the readme
    assert m["resume"] == {
        "kept": 2,
        "redone_output_mismatch": 2,
        "redone_source_changed": 3,
        "removed_source_deleted": 1,
        "retried_unreadable": 0,
        "checked_hashes": True,
    }
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "2 finished outputs are missing or no longer match" in warned
    assert "3 sources changed or became unreadable" in warned and "1 sources were deleted" in warned
    assert not (dst / t4).exists() and not (dst / t5).exists()  # no stale output of either
    assert [c["path"] for c in m["corrupt"] if c["path"] == t4] == [t4]
    assert (dst / "readme.txt").read_text() == "changed\n"
    assert verify_export(dst) == []
    _same_as_fresh_export(src, dst, boxes, tmp_path)
    # and a resume of a finished, intact export redoes nothing
    caplog.clear()
    m = _export(src, dst, boxes=boxes)
    assert m["resume"]["redone_output_mismatch"] == m["resume"]["redone_source_changed"] == 0
    assert m["resume"]["removed_source_deleted"] == 0 and not [
        r for r in caplog.records if r.levelname == "WARNING" and "resuming" in r.getMessage()
    ]


def test_resume_by_size_only_and_old_journals_without_sizes(tiny, tmp_path):
    src, boxes = tiny
    dst = tmp_path / "out"
    _export(src, dst, boxes=boxes)
    q1, q2 = "query/0001_c1s1_000001_00.png", "query/0002_c2s1_000002_00.png"
    (dst / q1).write_bytes((dst / q1).read_bytes()[:-10])  # truncated: found by size
    flipped = bytearray((dst / q2).read_bytes())
    flipped[-20] ^= 0xFF  # same size: not found by size alone
    (dst / q2).write_bytes(bytes(flipped))
    m = _export(src, dst, boxes=boxes, check_hashes=False)
    assert m["resume"]["redone_output_mismatch"] == 1 and m["resume"]["checked_hashes"] is False
    assert verify_export(dst, check_hashes=False) == []
    assert verify_export(dst) == [f"checksum mismatch: {q2}"]
    # an older journal has no sizes: then the hash is checked even with check_hashes=False
    lines = [json.loads(x) for x in (dst / JOURNAL).read_text().splitlines()]
    for r in lines:
        r.pop("size", None)
        r.pop("src_size", None)
    (dst / JOURNAL).write_text("".join(json.dumps(r) + "\n" for r in lines))
    m = _export(src, dst, boxes=boxes, check_hashes=False)
    assert m["resume"]["redone_output_mismatch"] == 1 and verify_export(dst) == []
    _same_as_fresh_export(src, dst, boxes, tmp_path)


def test_disk_full_is_one_export_error_and_nothing_unfinished_is_journaled(
    tiny, tmp_path, monkeypatch
):
    import errno

    import reidlab.anonymize.export as ex

    src, boxes = tiny
    dst = tmp_path / "out"
    real = ex._atomic_write
    calls = []

    def full_after_three(path, data, mode=None):
        calls.append(Path(path).name)
        if len(calls) > 3:
            tmp = Path(path).parent / f".{Path(path).name}.x.tmp"
            tmp.write_bytes(data[:5])  # a partial temporary file, as a real full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        real(path, data, mode)

    monkeypatch.setattr(ex, "_atomic_write", full_after_three)
    with pytest.raises(
        ExportError, match=r"destination .*out is full \(No space left on device"
    ) as err:
        _export(src, dst, boxes=boxes, batch_size=2)
    assert "run the same command again to resume" in str(err.value)
    records = [json.loads(x) for x in (dst / JOURNAL).read_text().splitlines()][1:]
    written = [r for r in records if r["type"] in ("image", "copy")]
    assert (
        len(written) == 3
    )  # the readme and two images; the fourth write failed and is not journaled
    for r in written:
        assert hashlib.sha256((dst / r["out"]).read_bytes()).hexdigest() == r["sha256"]
    assert not (dst / MANIFEST).exists()
    monkeypatch.setattr(ex, "_atomic_write", real)
    m = _export(src, dst, boxes=boxes, batch_size=2)
    assert m["counts"]["images_written"] == 5 and verify_export(dst) == []
    assert not list(dst.rglob("*.tmp"))  # leftovers of the failed run are gone
    _same_as_fresh_export(src, dst, boxes, tmp_path)


# ---------------------------------------------------------------- permissions and verify sizes


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tiny, tmp_path, umask, mode):
    src, boxes = tiny
    old = os.umask(umask)
    try:
        _export(src, tmp_path / "out", boxes=boxes)
    finally:
        os.umask(old)
    out = tmp_path / "out"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {MANIFEST, "readme.txt", "0001_c1s1_000001_00.png", JOURNAL} <= {p.name for p in files}
    for p in files:
        assert p.stat().st_mode & 0o777 == mode, p


def test_verify_checks_sizes_even_without_hashes(tiny, tmp_path):
    from reidlab.cli import main

    src, boxes = tiny
    dst = tmp_path / "out"
    m = _export(src, dst, boxes=boxes)
    rel = "query/0001_c1s1_000001_00.png"
    assert m["files"][rel]["size"] == (dst / rel).stat().st_size
    assert m["copied"]["readme.txt"]["size"] == len("a dataset\n")
    (dst / rel).write_bytes((dst / rel).read_bytes() + b"\0")
    expected = f"size mismatch: {rel} ({m['files'][rel]['size'] + 1} bytes, the manifest says {m['files'][rel]['size']})"
    assert verify_export(dst, check_hashes=False) == [expected]
    assert verify_export(dst) == [expected]
    assert main(["verify", "--no-hash", str(dst)]) == 1


def test_segmentation_export_uses_the_maps_and_falls_back_to_boxes(tiny, tmp_path):
    from reidlab.anonymize.masks import anonymization_masks

    src, boxes = tiny
    rels = [
        "query/0001_c1s1_000001_00.png",  # a map at 1/4 resolution with a face
        "query/0002_c2s1_000002_00.png",  # no map: its box
        "bounding_box_test/0001_c3s1_000003_00.png",  # a NaN map: unusable, its box
        "bounding_box_test/0002_c1s1_000004_00.png",  # an empty map: its box
        "bounding_box_test/0003_c2s1_000005_00.png",  # no box, a full-size binary map
    ]
    small = np.zeros((8, 4), np.float32)
    small[2:4, 1:3] = 0.5
    full = np.zeros((32, 16), np.float32)
    full[20:23, 4:9] = 1.0
    nan = np.full((8, 4), np.nan, np.float32)
    table = dict(zip(rels, [small, None, nan, np.zeros((8, 4), np.float32), full]))

    def maps(paths, images):
        return [table[Path(p).relative_to(src).as_posix()] for p in paths]

    anon = _anon(method="zero", mask="segmentation", mask_dilate=1, scale=1.2)
    dst = tmp_path / "seg"
    m = export_dataset(
        src, dst, faces=boxes_faces(boxes), maps=maps, anonymizer=anon, fmt="png", progress=False
    )
    assert m["anonymizer"]["mask"] == "segmentation"
    assert (m["anonymizer"]["mask_threshold"], m["anonymizer"]["mask_dilate"]) == (0.02, 1)
    assert m["face_maps"]["resize"].startswith("bilinear")
    files = m["files"]
    assert [files[r]["mask_from"] for r in rels] == [
        "segmentation",
        "boxes",
        "boxes",
        "boxes",
        "segmentation",
    ]
    assert "finite" in files[rels[2]]["invalid_map"] and "invalid_map" not in files[rels[0]]
    assert m["counts"]["mask_from_segmentation"] == 2 and m["counts"]["invalid_map"] == 1
    for rel in rels:
        a, b = read_rgb(src / rel), read_rgb(dst / rel)
        fm = table[rel]
        fm = None if fm is None or np.isnan(fm).any() else torch.from_numpy(fm)
        region = (
            anonymization_masks(
                [torch.from_numpy(boxes[str(src / rel)])],
                None,
                a.shape[:2],
                "segmentation",
                scale=1.2,
                face_maps=[fm],
                mask_dilate=1,
            )[0, 0].numpy()
            > 0
        )
        assert region.any() and np.array_equal(a[~region], b[~region]) and (b[region] == 0).all()
    # the full-size binary map by hand: rows 19..23 x cols 3..9 after a 1 px dilation
    hand = np.zeros((32, 16), bool)
    hand[19:24, 3:10] = True
    b = read_rgb(dst / rels[4])
    assert np.array_equal((b == 0).all(axis=2) | hand, hand) and (b[hand] == 0).all()
    assert verify_export(dst) == []
    # segmentation without maps is refused up front
    with pytest.raises(ExportError, match="needs face maps"):
        export_dataset(src, tmp_path / "x", faces=boxes_faces(boxes), anonymizer=anon)


def test_segmentation_cli_with_reidface_and_a_boxes_only_detector(tiny, tmp_path, capsys):
    from reidlab.cli import main

    src, _ = tiny
    dst = tmp_path / "cli"
    argv = ["anonymize", str(src), str(dst), "--method", "zero", "--format", "png"]
    rc = main([*argv, "--detector", "reidface", "--mask", "segmentation", "--no-progress"])
    assert rc == 0
    m = json.loads((dst / MANIFEST).read_text())
    assert m["detector"]["name"] == "reidface"
    assert {k: m["anonymizer"][k] for k in ("mask", "mask_threshold", "mask_dilate")} == {
        "mask": "segmentation",
        "mask_threshold": 0.02,
        "mask_dilate": 2,
    }
    assert all(f["mask_from"] in ("segmentation", "boxes") for f in m["files"].values())
    assert "face-map pixels anonymized in" in capsys.readouterr().out
    rc = main(
        [
            *argv[:2],
            str(tmp_path / "cf"),
            *argv[3:],
            "--detector",
            "centerface",
            "--mask",
            "segmentation",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "centerface gives boxes only" in err and len(err.strip().splitlines()) == 1
