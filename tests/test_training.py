"""Losses against hand-computed references, PK sampling, schedules, augmentation that moves
boxes, the tiny model learning synthetic identities, resume, anonymized training, DDP on gloo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from reidlab.evaluation import EvalConfig
from reidlab.training import RECIPES, TrainConfig, TrainingError, lr_factor, train
from reidlab.training.loop import Step, apply_gradients, train_step
from reidlab.training.losses import ReIDLoss, batch_hard_triplet, cross_entropy_ls
from reidlab.training.sampler import PKBatchSampler
from reidlab.training.transforms import PairAugment

FAST = {
    "model": "tiny",
    "dataset": "synthetic",
    "progress": False,
    "cpu_threads": 1,
    "final_eval": False,
    "batch_p": 4,
    "batch_k": 4,
    "random_erasing": 0.0,
}


# ---------------------------------------------------------------- losses
def test_label_smoothing_ce_matches_manual_formula():
    torch.manual_seed(0)
    logits = torch.randn(5, 7)
    y = torch.tensor([0, 3, 6, 2, 2])
    eps = 0.1
    logp = torch.log_softmax(logits, 1)
    q = torch.full((5, 7), eps / 7)
    q[torch.arange(5), y] += 1 - eps
    manual = -(q * logp).sum(1).mean()
    assert torch.allclose(cross_entropy_ls(logits, y, eps), manual, atol=1e-6)
    assert torch.allclose(
        cross_entropy_ls(logits, y, 0.0), -logp[torch.arange(5), y].mean(), atol=1e-6
    )


def test_batch_hard_triplet_four_samples_by_hand():
    # points on a line: ids 0 -> {0, 1}, ids 1 -> {3, 5}
    f = torch.tensor([[0.0, 0], [1, 0], [3, 0], [5, 0]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor: (hardest pos, hardest neg): 0:(1,3) 1:(1,2) 3:(2,2) 5:(2,4)
    hinge = [max(0, 1 - 3 + 0.3), max(0, 1 - 2 + 0.3), max(0, 2 - 2 + 0.3), max(0, 2 - 4 + 0.3)]
    assert math.isclose(float(batch_hard_triplet(f, y, 0.3)), sum(hinge) / 4, abs_tol=1e-5)
    sp = [math.log1p(math.exp(d)) for d in (1 - 3, 1 - 2, 2 - 2, 2 - 4)]
    assert math.isclose(float(batch_hard_triplet(f, y, None)), sum(sp) / 4, abs_tol=1e-5)
    # margin 2: every anchor active
    assert math.isclose(float(batch_hard_triplet(f, y, 2.0)), (0 + 1 + 2 + 0) / 4, abs_tol=1e-5)


def test_reid_loss_sums_terms_and_handles_part_lists():
    torch.manual_seed(0)
    y = torch.tensor([0, 0, 1, 1])
    lg, f = torch.randn(4, 3), torch.randn(4, 8)
    crit = ReIDLoss(3, 8, label_smoothing=0.1, triplet_weight=1.0, triplet_margin=0.3)
    total, _ = crit({"logits": lg, "features": f}, y)
    assert math.isclose(
        float(total), float(cross_entropy_ls(lg, y) + batch_hard_triplet(f, y)), rel_tol=1e-6
    )
    total2, _ = crit({"logits": [lg, lg * 2], "features": [f, f]}, y)
    ref = (cross_entropy_ls(lg, y) + cross_entropy_ls(lg * 2, y)) / 2 + batch_hard_triplet(f, y)
    assert math.isclose(float(total2), float(ref), rel_tol=1e-6)
    crit_c = ReIDLoss(3, 8, center_weight=0.5)
    tot_c, parts_c = crit_c({"logits": lg, "features": f}, y)
    cen = ((f - crit_c.center.centers[y]) ** 2).sum(1).mean()
    assert math.isclose(parts_c["center"], float(cen.detach()), rel_tol=1e-5)
    assert math.isclose(
        float(tot_c.detach()),
        parts_c["ce"] + parts_c["triplet"] + 0.5 * parts_c["center"],
        rel_tol=1e-5,
    )


# ---------------------------------------------------------------- sampler
def test_pk_sampler_properties():
    pids = [0] * 10 + [1] * 5 + [2] * 1 + [3] * 3 + [4] * 8  # id 2 and 3 have fewer than K=4
    s = PKBatchSampler(pids, p=3, k=4, num_batches=50, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == 50
    seen = set()
    for b in batches:
        assert len(b) == 12
        ids = [pids[i] for i in b]
        counts = {i: ids.count(i) for i in set(ids)}
        assert len(counts) == 3 and set(counts.values()) == {4}
        for pid in counts:
            own = [i for i in b if pids[i] == pid]
            n_avail = pids.count(pid)
            if n_avail >= 4:
                assert len(set(own)) == 4  # without replacement when possible
            else:
                assert set(own) <= {i for i, p in enumerate(pids) if p == pid}
        seen |= set(ids)
    assert seen == {0, 1, 2, 3, 4}  # the 1-image identity is sampled too
    assert list(PKBatchSampler(pids, 3, 4, num_batches=50, seed=1)) == batches  # seeded
    s.set_epoch(1)
    assert list(s) != batches
    with pytest.raises(Exception, match="exceeds the 5 training identities"):
        PKBatchSampler(pids, p=6, k=2)


def test_pk_sampler_ranks_split_the_global_batches():
    pids = np.repeat(np.arange(20), 6).tolist()
    single = list(PKBatchSampler(pids, 4, 3, num_batches=6, seed=3))
    r0 = list(PKBatchSampler(pids, 4, 3, num_batches=3, seed=3, rank=0, world_size=2))
    r1 = list(PKBatchSampler(pids, 4, 3, num_batches=3, seed=3, rank=1, world_size=2))
    assert r0 == single[0::2] and r1 == single[1::2]


# ---------------------------------------------------------------- schedule
def test_schedule_values():
    c = TrainConfig(
        epochs=10,
        warmup_epochs=4,
        warmup_factor=0.01,
        schedule="step",
        milestones=[6, 8],
        gamma=0.1,
    )
    vals = [lr_factor(e, c) for e in range(10)]
    assert np.allclose(vals[:4], [0.01, 0.01 + 0.99 / 4, 0.01 + 0.99 / 2, 0.01 + 0.99 * 3 / 4])
    assert np.allclose(vals[4:], [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor(0, TrainConfig(epochs=1)) == 1.0  # default milestones never cut epoch 1
    assert [lr_factor(e, TrainConfig(epochs=8)) for e in (3, 4, 5, 6)] == [1.0, 0.1, 0.1, 0.1**2]
    c2 = TrainConfig(epochs=10, warmup_epochs=0, schedule="cosine")
    assert np.allclose([lr_factor(e, c2) for e in (0, 5, 10)], [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="schedule must be one of step, cosine, constant"):
        TrainConfig(schedule="linear")
    bad = TrainConfig()
    bad.schedule = "linear"  # set after the check: lr_factor still refuses it
    with pytest.raises(TrainingError, match="unknown schedule"):
        lr_factor(0, bad)


# ---------------------------------------------------------------- config
def test_train_config_checks_converts_and_round_trips():
    c = TrainConfig(lr=np.float64(0.01), input_size=[64, 32], eval={"distance": "cosine"})
    assert type(c.lr) is float and c.input_size == (64, 32)
    assert isinstance(c.eval, EvalConfig) and c.eval.distance == "cosine"
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    for bad, msg in [
        ({"epochs": 0}, "epochs must be > 0"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, adamw, sgd"),
        ({"flip_p": 1.5}, r"flip_p must be in \[0, 1\]"),
        ({"iters_per_epoch": 0}, "iters_per_epoch must be > 0"),
        ({"eval": {"k1": 0}}, "k1 must be > 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**bad)
    assert TrainConfig(iters_per_epoch=None, triplet_margin=None).triplet_margin is None
    with pytest.raises(TypeError, match="unknown EvalConfig setting.*bogus.*known: amp"):
        TrainConfig(eval={"bogus": 1})
    # a config file from before ``eval``: its eval_options are still read
    old = TrainConfig.from_dict({"eval_options": {"anonymize_eval": True, "flip": True}})
    assert old.anonymize_eval and old.eval.flip


def test_recipes():
    assert isinstance(vars(TrainConfig)["from_recipe"], classmethod)  # not patched on later
    c = TrainConfig.from_recipe("tiny", epochs=3)
    assert (c.lr, c.schedule, c.epochs) == (RECIPES["tiny"]["lr"], "cosine", 3)
    assert TrainConfig.from_recipe("bot").milestones == [40, 70]
    with pytest.raises(TrainingError, match="unknown recipe 'nope'"):
        TrainConfig.from_recipe("nope")


# ---------------------------------------------------------------- one step: AMP and the centre loss
class _Net(torch.nn.Module):
    """A train-mode re-ID model in two layers: flattened image -> features -> logits."""

    def __init__(self, num_classes=4, dim=8, size=(8, 4)):
        super().__init__()
        self.feat = torch.nn.Linear(3 * size[0] * size[1], dim)
        self.cls = torch.nn.Linear(dim, num_classes)

    def forward(self, x):
        f = self.feat(x.flatten(1))
        return {"features": f, "logits": self.cls(f)}


def _step(scaler, device="cpu", amp=False, weight=0.0005):
    """A Step with a centre loss of ``weight`` (built from seed 0) and one batch of 4 ids x 2."""
    torch.manual_seed(0)
    net = _Net().to(device)
    crit = ReIDLoss(4, 8, center_weight=weight).to(device)
    step = Step(
        model=net,
        criterion=crit,
        opt=torch.optim.SGD(net.parameters(), lr=0.1),
        scaler=scaler,
        device=torch.device(device),
        mean=torch.zeros(1, 3, 1, 1, device=device),
        std=torch.ones(1, 3, 1, 1, device=device),
        amp=amp,
        center_opt=torch.optim.SGD(crit.center.parameters(), lr=0.5),
        center_loss_weight=weight,
    )
    g = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(8, 3, 8, 4, generator=g),
        "pid": torch.arange(4).repeat_interleave(2),
    }
    return step, batch


def test_centre_optimizer_sees_unscaled_gradients():
    """With the grad scaler on (a power-of-two scale, so exact), the centres get the gradient of
    the unweighted centre loss, as without it (before: multiplied by the scale factor)."""
    seen, after = {}, {}
    for name, scaler in [
        ("fp32", torch.amp.GradScaler("cpu", enabled=False)),
        ("scaled", torch.amp.GradScaler("cpu", init_scale=2.0**10)),
    ]:
        step, batch = _step(scaler)
        centres = step.criterion.center.centers
        with torch.no_grad():
            f = step.model(batch["image"])["features"]
            c = centres[batch["pid"]]
            expected = torch.zeros_like(centres).index_add_(0, batch["pid"], -2 * (f - c) / len(f))
        step.center_opt.register_step_pre_hook(
            lambda opt, args, kwargs, name=name, p=centres: seen.__setitem__(name, p.grad.clone())
        )
        loss, parts, n = train_step(step, batch)
        assert n == 8 and math.isfinite(float(loss)) and "center" in parts
        torch.testing.assert_close(seen[name], expected, rtol=1e-4, atol=1e-6)
        after[name] = [p.detach().clone() for p in (*step.model.parameters(), centres)]
    assert scaler.get_scale() == 2.0**10  # nothing was skipped
    for a, b in zip(after["fp32"], after["scaled"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_inf_gradient_skips_both_optimizers():
    w = torch.nn.Parameter(torch.ones(3))
    c = torch.nn.Parameter(torch.ones(2))
    opt, center_opt = torch.optim.SGD([w], lr=1.0), torch.optim.SGD([c], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler.scale((w.sum() + 0.5 * c.sum()) * float("inf")).backward()
    apply_gradients(scaler, opt, center_opt, 0.5)
    assert torch.equal(w.detach(), torch.ones(3)) and torch.equal(c.detach(), torch.ones(2))
    assert scaler.get_scale() == 2.0**9  # the scaler saw the inf and backed off
    opt.zero_grad()
    center_opt.zero_grad()
    scaler.scale(w.sum() + 0.5 * c.sum()).backward()  # finite: both step, unscaled
    apply_gradients(scaler, opt, center_opt, 0.5)
    assert torch.equal(w.detach(), torch.zeros(3)) and torch.equal(c.detach(), torch.zeros(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_amp_step_moves_centres_like_a_float32_step():
    fp32, batch = _step(torch.amp.GradScaler("cuda", enabled=False), "cuda", amp=False)
    amp, _ = _step(torch.amp.GradScaler("cuda", init_scale=2.0**16), "cuda", amp=True)
    c0 = fp32.criterion.center.centers.detach().clone()
    train_step(fp32, batch)
    train_step(amp, batch)
    assert amp.scaler.get_scale() == 2.0**16, "the AMP step was skipped"
    c32 = fp32.criterion.center.centers.detach()
    c16 = amp.criterion.center.centers.detach()
    assert not torch.equal(c32, c0)
    # fp16 features move the centres a little differently; unscaled they move the same way
    torch.testing.assert_close(c16, c32, rtol=1e-2, atol=2e-3)


# ---------------------------------------------------------------- augmentation
def test_pair_augment_moves_boxes_with_the_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 100, (128, 64, 3), dtype=np.uint8)
    box = np.array([[20, 10, 40, 30]], np.float32)
    img[10:30, 20:40] = (255, 0, 255)  # the face region, a unique colour
    flip = PairAugment((128, 64), flip_p=1.0, pad=0, seed=0)
    out, b = flip(img, box)
    assert np.allclose(b, [[64 - 40, 10, 64 - 20, 30]])
    aug = PairAugment((256, 128), flip_p=0.5, pad=10, seed=1)
    for _ in range(20):
        out, b = aug(img, box)
        assert out.shape == (256, 128, 3)
        for x1, y1, x2, y2 in b.round().astype(int):
            patch = out[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].reshape(-1, 3).astype(int)
            assert len(patch) and (np.abs(patch - [255, 0, 255]).max(1) < 40).mean() > 0.95


# ---------------------------------------------------------------- training
@pytest.fixture(scope="module")
def syn40(tmp_path_factory):
    from reidlab.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("syn40")
    generate(root, num_ids=40, seed=0)
    return str(root)


def test_tiny_model_learns_synthetic_identities(syn40, tmp_path):
    """Chance = a random-init tiny model's mAP on the same query/gallery (measured about 0.065);
    8 epochs x 8 PK batches reach about 0.30 (measured while writing this test)."""
    from reidlab.datasets import build_dataset
    from reidlab.evaluation import evaluate
    from reidlab.models import build_model

    ds = build_dataset("synthetic", syn40)
    chance = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        chance.append(evaluate(build_model("tiny", 20).eval(), ds, progress=False).metrics["mAP"])
    chance = float(np.mean(chance))
    cfg = TrainConfig(
        **{**FAST, "batch_p": 8, "final_eval": True},
        root=syn40,
        epochs=8,
        iters_per_epoch=8,
        lr=1e-2,
        schedule="cosine",
        pad=4,
        out_dir=str(tmp_path / "run"),
    )
    res = train(cfg)
    m = res["metrics"]["mAP"]
    assert m > chance + 0.12 and m > 2.5 * chance, (m, chance)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["loss"] < json.loads(lines[0])["loss"]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["seed"] == 0 and saved["pretrained_source"] == "scratch"


def test_resume_continues_from_saved_epoch(syn40, tmp_path):
    out = str(tmp_path / "r")
    first = train(TrainConfig(**FAST, root=syn40, epochs=2, iters_per_epoch=2, out_dir=out))
    assert [h["epoch"] for h in first["history"]] == [1, 2]
    ck = torch.load(tmp_path / "r" / "checkpoint.pth", weights_only=False)
    assert ck["epoch"] == 2 and {"optimizer", "scheduler", "config", "state_dict"} <= set(ck)
    second = train(
        TrainConfig(**FAST, root=syn40, epochs=3, iters_per_epoch=2, out_dir=out, resume=True)
    )
    assert [h["epoch"] for h in second["history"]] == [1, 2, 3]
    assert second["history"][:2] == first["history"]
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 3
    with pytest.raises(TrainingError, match="expected a checkpoint"):
        train(
            TrainConfig(**FAST, root=syn40, epochs=1, out_dir=str(tmp_path / "none"), resume=True)
        )


def test_anonymized_training_records_settings(syn40, tmp_path):
    res = train(
        TrainConfig(
            **FAST,
            root=syn40,
            epochs=1,
            iters_per_epoch=1,
            out_dir=str(tmp_path / "a"),
            anonymizer={"method": "fill"},
            boxes="oracle",
        )
    )
    assert res["anonymizer"]["method"] == "fill"
    assert res["config"]["anonymizer"] == {"method": "fill"}


def test_out_of_memory_is_reraised_with_advice(syn40, tmp_path, monkeypatch):
    def boom(self, outputs, targets):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(ReIDLoss, "forward", boom)
    with pytest.raises(TrainingError, match="lower --batch-p"):
        train(
            TrainConfig(
                **FAST, root=syn40, epochs=1, iters_per_epoch=1, out_dir=str(tmp_path / "o")
            )
        )


def test_unknown_option_is_rejected():
    with pytest.raises(TrainingError, match="unknown training option"):
        TrainConfig.from_dict({"modle": "tiny"})


def test_ddp_gloo_two_processes_end_with_identical_weights(syn40, tmp_path):
    from reidlab.training.ddp import launch_local

    cfg = TrainConfig(
        **FAST, root=syn40, epochs=1, iters_per_epoch=2, out_dir=str(tmp_path / "d"), device="cpu"
    )
    launch_local(cfg, nprocs=2, dump_dir=tmp_path)
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = (
        __import__("reidlab.models", fromlist=["build_model"]).build_model("tiny", 20).state_dict()
    )
    names = [k for k in w0 if "running" not in k and "num_batches" not in k]
    assert names and all(torch.equal(w0[k], w1[k]) for k in names)
    assert any(not torch.equal(w0[k], init[k]) for k in names)  # it did train
    assert (tmp_path / "d" / "metrics.jsonl").is_file()  # written by rank 0
    row = json.loads((tmp_path / "d" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["images"] == 2 * 2 * 16  # 2 ranks x 2 batches x P*K


def test_cli_train_with_recipe(syn40, tmp_path, capsys):
    from reidlab.cli import main

    rc = main(
        [
            "train",
            "--recipe",
            "tiny",
            "--root",
            syn40,
            "--epochs",
            "1",
            "--iters",
            "1",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert rc == 0
    saved = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert saved["config"]["lr"] == 1e-2 and saved["config"]["epochs"] == 1
    assert 0.0 <= saved["metrics"]["mAP"] <= 1.0
    assert '"mAP"' in capsys.readouterr().out
    assert main(["train", "--recipe", "nope", "--out", str(tmp_path / "x")]) == 2


class _TouchOnUnpickle:
    """Unpickling this creates ``marker`` (stands for any code a crafted file could run)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_resume_reads_weights_only_and_refuses_pickled_code(syn40, tmp_path):
    """Resume loads with weights_only=True (before: weights_only=False, which ran any code in the
    file). reidlab's own checkpoints load that way, numpy numbers in the config included."""
    from reidlab.models import build_model, load_checkpoint

    out = tmp_path / "w"
    cfg = dict(
        FAST,
        root=syn40,
        iters_per_epoch=1,
        out_dir=str(out),
        lr=np.float64(1e-2),
        gamma=np.float64(0.5),
    )
    first = train(TrainConfig(**cfg, epochs=1))
    ck = torch.load(out / "checkpoint.pth", weights_only=True)  # raises if objects were pickled
    assert ck["epoch"] == 1 and ck["config"]["lr"] == 1e-2 and type(ck["config"]["lr"]) is float
    assert isinstance(ck["torch_rng"], torch.Tensor)
    second = train(TrainConfig(**cfg, epochs=2, resume=True))
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["history"][0] == first["history"][0]
    # the final model.pth goes through the safe path of load_checkpoint
    report = load_checkpoint(
        build_model("tiny", num_classes=second["num_classes"]), out / "model.pth"
    )
    assert report["trusted"] is False and not report["missing"]
    # a crafted checkpoint: refused in one line, and its code never runs
    marker = tmp_path / "MARKER"
    ck["extra"] = _TouchOnUnpickle(marker)
    torch.save(ck, tmp_path / "crafted.pth")
    with pytest.raises(TrainingError, match="weights_only=True") as e:
        train(
            TrainConfig(
                **{**cfg, "out_dir": str(tmp_path / "c")},
                epochs=2,
                resume=str(tmp_path / "crafted.pth"),
            )
        )
    assert "\n" not in str(e.value) and str(tmp_path / "crafted.pth") in str(e.value)
    assert not marker.exists()
    # a weights-only file can't resume: one line instead of a KeyError
    torch.save(ck["state_dict"], tmp_path / "weights.pth")
    with pytest.raises(TrainingError, match="not a reidlab training checkpoint"):
        train(
            TrainConfig(
                **{**cfg, "out_dir": str(tmp_path / "s")},
                epochs=2,
                resume=str(tmp_path / "weights.pth"),
            )
        )
