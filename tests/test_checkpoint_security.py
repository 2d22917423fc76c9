"""Checkpoint loading never unpickles arbitrary objects unless the caller opts in
(``trust_checkpoint=True``), and files that are not checkpoints give one clear error line."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from reidlab.errors import ReidlabError
from reidlab.models import ModelError, build_model, load_checkpoint
from reidlab.models.checkpoint import read_state_dict, save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: stands for any code a crafted file could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _tiny_state():
    torch.manual_seed(0)
    m = build_model("tiny", num_classes=3)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    return m.state_dict()


def _crafted(tmp_path: Path, how: str) -> tuple[Path, Path]:
    """A checkpoint whose state dict is valid but which also pickles a code-running object."""
    marker = tmp_path / f"MARKER-{how}"
    obj = {"state_dict": _tiny_state(), "epoch": 3, "extra": TouchOnUnpickle(marker)}
    path = tmp_path / f"crafted-{how}.pth"
    if how == "zip":
        torch.save(obj, path)
    elif how == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:  # a plain pickle
        with path.open("wb") as f:
            pickle.dump(obj, f)
    return path, marker


def _assert_one_line(e: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(e.value)
    assert isinstance(e.value, ModelError) and isinstance(e.value, ReidlabError)
    assert "\n" not in msg and "\r" not in msg and "\x1b" not in msg, msg
    assert str(path) in msg
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained traceback
    return msg


@pytest.mark.parametrize("how", ["zip", "legacy"])
def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path, how):
    path, marker = _crafted(tmp_path, how)
    loaders = [
        lambda: read_state_dict(path),
        lambda: load_checkpoint(build_model("tiny", num_classes=3), path),
        lambda: build_model("osnet_x0_25", pretrained=str(path)),
    ]
    for load in loaders:
        with pytest.raises(ModelError) as e:
            load()
        msg = _assert_one_line(e, path)
        assert "holds pickled Python objects beyond tensors" in msg
        assert "trust_checkpoint=True" in msg and "--trust-checkpoint" in msg
        assert "pathlib" in msg  # names what it would have called
        assert not marker.exists(), "loading ran code from the file"


def test_plain_pickle_is_refused_even_with_trust_and_runs_nothing(tmp_path):
    """torch.load can't read a plain pickle.dump file anyway (it would run the code, then fail
    on the magic number): refused without unpickling, with or without the opt-in."""
    path, marker = _crafted(tmp_path, "pickle")
    for trust in (False, True):
        with pytest.raises(ModelError) as e:
            load_checkpoint(build_model("tiny", num_classes=3), path, trust_checkpoint=trust)
        msg = _assert_one_line(e, path)
        assert "plain Python pickle" in msg and "pathlib.Path.touch" in msg
        assert "--trust-checkpoint" not in msg
        assert not marker.exists()


@pytest.mark.parametrize("how", ["zip", "legacy"])
def test_trust_checkpoint_unpickles_records_it_and_warns(tmp_path, how, caplog):
    path, marker = _crafted(tmp_path, how)
    dst = build_model("tiny", num_classes=3)
    with caplog.at_level(logging.WARNING, logger="reidlab.models.checkpoint"):
        report = load_checkpoint(dst, path, trust_checkpoint=True)
    assert marker.exists()  # the old, unsafe behaviour: this is what the refusal prevents
    assert report["trusted"] is True
    assert any(
        "weights_only=False" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )
    ref = _tiny_state()
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in ref.items())


def test_old_torchreid_checkpoint_with_numpy_scalars_needs_the_opt_in(tmp_path):
    sd = _tiny_state()
    path = tmp_path / "model.pth.tar"  # torchreid save_checkpoint: numpy metrics next to weights
    torch.save({"state_dict": sd, "epoch": 60, "rank1": np.float64(0.871), "optimizer": None}, path)
    with pytest.raises(ModelError) as e:
        load_checkpoint(build_model("tiny", num_classes=3), path)
    msg = _assert_one_line(e, path)
    assert "beyond tensors" in msg and "numpy" in msg and "--trust-checkpoint" in msg
    dst = build_model("tiny", num_classes=3)
    report = load_checkpoint(dst, path, trust_checkpoint=True)
    assert report["trusted"] is True and report["format"] == "torchreid"
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    # osnet_x0_25 through build_model: the keyword reaches load_checkpoint
    src = build_model("osnet_x0_25", num_classes=5)
    torch.save(
        {"state_dict": src.state_dict(), "rank1": np.float64(0.5)}, tmp_path / "osnet.pth.tar"
    )
    with pytest.raises(ModelError, match="trust-checkpoint"):
        build_model("osnet_x0_25", num_classes=5, pretrained=tmp_path / "osnet.pth.tar")
    m = build_model(
        "osnet_x0_25", num_classes=5, pretrained=tmp_path / "osnet.pth.tar", trust_checkpoint=True
    )
    assert m.checkpoint_trusted is True
    assert all(torch.equal(m.state_dict()[k], v) for k, v in src.state_dict().items())


def test_safe_file_is_not_marked_trusted_even_when_trust_is_allowed(tmp_path):
    sd = _tiny_state()
    torch.save(sd, tmp_path / "plain.pth")
    for trust in (False, True):
        dst = build_model("tiny", num_classes=3)
        report = load_checkpoint(dst, tmp_path / "plain.pth", trust_checkpoint=trust)
        assert report["trusted"] is False
        assert all(torch.equal(dst.state_dict()[k], v) for k, v in sd.items())
    m = build_model("osnet_x0_25", pretrained=False)
    assert m.checkpoint_trusted is False


def _garbage(tmp_path: Path, kind: str) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / f"{kind}.pth"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("model: osnet_x0_25\nweights: see README\n")
    elif kind in ("truncated-zip", "truncated-legacy"):
        full = tmp_path / "full.pth"
        torch.save(
            {"state_dict": _tiny_state()},
            full,
            _use_new_zipfile_serialization=kind == "truncated-zip",
        )
        data = full.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "other-zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "not a checkpoint")
    elif kind == "safetensors":
        path = tmp_path / "weights.safetensors"
        path.write_bytes(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    return path


@pytest.mark.parametrize(
    "kind",
    ["empty", "random", "text", "truncated-zip", "truncated-legacy", "other-zip", "safetensors"],
)
def test_files_that_are_not_checkpoints_give_one_line(tmp_path, kind):
    path = _garbage(tmp_path, kind)
    expect = {
        "empty": "the file is empty (0 bytes)",
        "text": "not a PyTorch checkpoint: a text file",
        "truncated-zip": "a damaged zip archive: truncated or corrupt",
        "truncated-legacy": "damaged or truncated",
        "random": "not a PyTorch checkpoint: neither a zip archive nor a complete pickle",
        "other-zip": "not a torch.save checkpoint",
        "safetensors": "not a readable safetensors file",
    }
    for trust in (False, True):
        with pytest.raises(ModelError) as e:
            load_checkpoint(build_model("tiny", num_classes=3), path, trust_checkpoint=trust)
        msg = _assert_one_line(e, path)
        assert expect[kind] in msg, msg
        # not a checkpoint holding objects: opting in would not help, so it is not suggested
        assert "--trust-checkpoint" not in msg, msg


def test_folder_and_missing_file_give_one_line(tmp_path):
    for path, what in ((tmp_path, "a folder"), (tmp_path / "nope.pth", "nothing")):
        with pytest.raises(ModelError) as e:
            load_checkpoint(build_model("tiny"), path)
        assert what in str(e.value) and "\n" not in str(e.value)


def test_save_checkpoint_output_loads_with_weights_only(tmp_path):
    m = build_model("tiny", num_classes=3)
    path = save_checkpoint(
        tmp_path / "ck.pth",
        m,
        epoch=np.int64(4),
        config={"lr": np.float64(0.01), "root": tmp_path, "size": (np.int32(128), 64)},
        history=[{"loss": np.float32(0.5)}],
        table=np.arange(3),
        rng=torch.get_rng_state(),
    )
    ck = torch.load(path, weights_only=True)  # raises if anything beyond tensors was pickled
    assert ck["epoch"] == 4 and type(ck["epoch"]) is int
    assert ck["config"] == {"lr": 0.01, "root": str(tmp_path), "size": (128, 64)}
    assert type(ck["config"]["lr"]) is float and ck["history"] == [{"loss": 0.5}]
    assert torch.equal(ck["table"], torch.arange(3)) and torch.equal(
        ck["rng"], torch.get_rng_state()
    )
    report = load_checkpoint(build_model("tiny", num_classes=3), path)
    assert report["trusted"] is False and report["loaded"] > 0
