"""Training the ``reidface`` localizer (``reidlab.faces.training``, ``reidlab train-faces``): the
identity split against ``research/reidface/split.json``, a few training steps on synthetic and on
real parsed crops, determinism, and the saved weights loading as a detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_shared

from reidlab.faces import build_detector
from reidlab.faces.face_data import split_ids, split_indices
from reidlab.faces.training import FaceTrainConfig, build_network, face_loss, fit, save_weights

REPO = Path(__file__).resolve().parents[1]
SPLIT_JSON = REPO / "research" / "reidface" / "split.json"


# ----------------------------------------------------------------------------------------------
# split
def test_split_is_by_identity_with_the_documented_sizes():
    pids = [f"{i:04d}" for i in range(1, 752) for _ in range(3)]  # 751 ids, 3 crops each
    s = split_ids(pids, seed=0)
    # round(0.2 * 751) = 150 test, round(0.1 * 751) = 75 tune, 751 - 225 = 526 train
    assert [len(s[k]) for k in ("test", "tune", "train")] == [150, 75, 526]
    parts = [set(s[k]) for k in ("test", "tune", "train")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(pids)
    assert split_ids(pids, seed=1) != s  # the seed matters
    idx = split_indices(np.array(pids), s)
    assert sorted(np.concatenate(list(idx.values())).tolist()) == list(range(len(pids)))
    for k, rows in idx.items():  # every crop of an id lands in that id's part
        assert {pids[i] for i in rows} == set(s[k])


def test_split_indices_by_hand():
    s = {"test": ["0002"], "tune": ["0007"], "train": ["0010", "0011"]}
    idx = split_indices(np.array(["0002", "0010", "0007", "0002", "0011"]), s)
    assert {k: v.tolist() for k, v in idx.items()} == {
        "test": [0, 3],
        "tune": [2],
        "train": [1, 4],
    }


def test_bad_split_fractions_are_refused():
    with pytest.raises(ValueError, match="split fractions"):
        split_ids(["0001", "0002"], test_frac=0.8, tune_frac=0.5)


def test_default_split_reproduces_research_split_json():
    if not SPLIT_JSON.is_file():
        pytest.skip(f"{SPLIT_JSON} is absent (it is committed in a full clone)")
    ref = json.loads(SPLIT_JSON.read_text())
    assert ref["split_seed"] == 0
    all_ids = ref["test"] + ref["tune"] + ref["train"]
    s = split_ids(all_ids, seed=0)
    assert {k: s[k] for k in ("test", "tune", "train")} == {
        k: ref[k] for k in ("test", "tune", "train")
    }


# ----------------------------------------------------------------------------------------------
# a few training steps
def synthetic_crops(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 128x64 crops: a smooth random background, a dark 'body' block and, in 2 of 3 crops,
    a skin-coloured disc (the face) whose pixels are the mask."""
    import cv2

    rng = np.random.default_rng(seed)
    images = np.empty((n, 128, 64, 3), np.uint8)
    faces = np.zeros((n, 128, 64), np.uint8)
    for i in range(n):
        bg = rng.integers(40, 200, (8, 4, 3)).astype(np.uint8)
        im = cv2.resize(bg, (64, 128), interpolation=cv2.INTER_LINEAR)
        im[50:120, 16:48] = rng.integers(20, 90, 3)
        if i % 3:
            cx, cy, r = (
                int(rng.integers(24, 40)),
                int(rng.integers(14, 34)),
                int(rng.integers(6, 10)),
            )
            cv2.circle(im, (cx, cy), r, (224, 172, 140), -1)
            cv2.circle(faces[i], (cx, cy), r, 1, -1)
        images[i] = im
    return images, faces


def _loss(state_or_none, images, faces, seed=0):
    """The training loss on the un-augmented crops (BatchNorm on batch statistics) of the
    network seeded with ``seed`` (before training) or of ``state``."""
    import torch

    torch.manual_seed(seed)
    net = build_network()
    if state_or_none is not None:
        net.load_state_dict(state_or_none)
    net.train()
    with torch.no_grad():
        return float(face_loss(net, images, faces))


def _check_weights_load(tmp_path, state, cfg, images):
    """The saved file loads through build_detector and holds the trained network: its soft masks
    equal the trained network's probabilities upsampled (BatchNorm folded: float rounding)."""
    import cv2
    import torch

    from reidlab.faces.training import predict_maps

    path = save_weights(tmp_path / "w.pt", state, cfg)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["widths"] == [12, 24, 48, 64] and ckpt["cls_head"] is True
    det = build_detector("reidface", weights=str(path))
    boxes = det.detect_batch(list(images[:4]))
    assert all(b.dtype == np.float32 and b.shape[1] == 5 for b in boxes)
    net = build_network()
    net.load_state_dict(state)
    p, _ = predict_maps(net, images[:4])
    expected = [cv2.resize(q, (64, 128), interpolation=cv2.INTER_LINEAR) for q in p]
    got = det.soft_masks(list(images[:4]))
    np.testing.assert_allclose(np.stack(got), np.stack(expected), atol=1e-4)


def test_a_few_steps_on_synthetic_faces_lower_the_loss_and_save_loadable_weights(tmp_path):
    images, faces = synthetic_crops(24)
    cfg = FaceTrainConfig(epochs=1, batch=8, device="cpu")  # 24 crops: 3 steps
    before = _loss(None, images, faces)
    state, history = fit(images, faces, cfg, progress=False)
    assert len(history) == 1 and len(history[0]["step_losses"]) == 3
    after = _loss(state, images, faces)
    assert after < before - 0.05, (before, after)
    _check_weights_load(tmp_path, state, cfg, images)


def test_same_seed_same_weights_other_seed_other_weights():
    import torch

    images, faces = synthetic_crops(16)
    cfg = FaceTrainConfig(epochs=1, batch=8, device="cpu")  # 2 steps
    a, ha = fit(images, faces, cfg, progress=False)
    b, hb = fit(images, faces, cfg, progress=False)
    c, _ = fit(
        images, faces, FaceTrainConfig(epochs=1, batch=8, device="cpu", seed=1), progress=False
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ha[0]["step_losses"] == hb[0]["step_losses"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_restores_torch_threads_and_refuses_a_batch_larger_than_the_data():
    import torch

    images, faces = synthetic_crops(8)
    threads = torch.get_num_threads()
    other = 1 if threads != 1 else 2
    fit(
        images,
        faces,
        FaceTrainConfig(epochs=1, batch=8, threads=other, device="cpu"),
        progress=False,
    )
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="batch: 16 is more than the 8 training crops"):
        fit(images, faces, FaceTrainConfig(epochs=1, batch=16, device="cpu"), progress=False)


@pytest.mark.shared
def test_a_few_steps_on_real_parsed_crops(tmp_path):
    from reidlab.faces.face_data import load_parsed_crops, parsed_crop_names

    root = require_shared("market1501")
    require_shared("market1501", "bounding_box_train_parsing_pgt")
    data = load_parsed_crops(root, parsed_crop_names(root)[:16], progress=False)
    assert data["images"].shape == (16, 128, 64, 3) and data["faces"].max() == 1
    cfg = FaceTrainConfig(epochs=1, batch=8, device="cpu")
    before = _loss(None, data["images"], data["faces"])
    state, _ = fit(data["images"], data["faces"], cfg, progress=False)
    assert _loss(state, data["images"], data["faces"]) < before - 0.05
    _check_weights_load(tmp_path, state, cfg, data["images"])


# ----------------------------------------------------------------------------------------------
# the command
def _market_layout(root: Path, ids: int = 10, per_id: int = 3) -> Path:
    """A Market-1501-layout folder of synthetic crops with parsing masks (face = label 13)."""
    import cv2

    images, faces = synthetic_crops(ids * per_id)
    (root / "bounding_box_train").mkdir(parents=True)
    (root / "bounding_box_train_parsing_pgt").mkdir()
    for i, (im, f) in enumerate(zip(images, faces)):
        name = f"{i // per_id + 1:04d}_c1s1_{i:06d}_00"
        cv2.imwrite(str(root / "bounding_box_train" / f"{name}.jpg"), im[..., ::-1])
        label = np.where(f > 0, 13, 5).astype(np.uint8)  # 5 (upper clothes) elsewhere
        cv2.imwrite(str(root / "bounding_box_train_parsing_pgt" / f"{name}.png"), label)
    return root


def test_cli_trains_and_writes_weights_and_log(tmp_path, capsys):
    from reidlab.cli import main

    root = _market_layout(tmp_path / "m")
    out = tmp_path / "out" / "w.pt"
    args = ["train-faces", "--root", str(root), "--out", str(out), "--epochs", "2", "--batch", "8"]
    assert main([*args, "--device", "cpu", "--no-progress"]) == 0
    log = json.loads(out.with_suffix(".log.json").read_text())
    # 10 ids: 2 test, 1 tune, 7 train (21 crops: 2 steps of 8 per epoch)
    assert [len(log["split"][k]) for k in ("test", "tune", "train")] == [2, 1, 7]
    assert log["crops_per_part"] == {"test": 6, "tune": 3, "train": 21}
    assert [r["epoch"] for r in log["history"]] == [1, 2]
    assert all(len(r["step_losses"]) == 2 for r in log["history"])
    assert "tune" in log["history"][-1] and log["recipe"]["epochs"] == 2
    assert log["wall_s"] > 0 and len(log["split"]["sha"]) == 12
    assert "wrote" in capsys.readouterr().out
    build_detector("reidface", weights=str(out)).detect_batch([np.zeros((128, 64, 3), np.uint8)])


def test_cli_missing_masks_folder_is_one_line_naming_it(tmp_path, capsys):
    from reidlab.cli import main

    (tmp_path / "bounding_box_train").mkdir()
    assert main(["train-faces", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "bounding_box_train_parsing_pgt") in err


def test_cli_cuda_without_cuda_is_one_line(tmp_path, capsys):
    import torch

    from reidlab.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    root = _market_layout(tmp_path / "m", ids=2, per_id=1)
    assert main(["train-faces", "--root", str(root), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cuda was asked for" in err
