"""The face-only re-identification attacker and the chance levels next to its numbers.

A small CNN sees only the face region of each crop (:mod:`reidlab.privacy.faces`, 32x32 by
default), is trained with label-smoothed cross-entropy (:func:`reidlab.training.losses.cross_entropy_ls`)
to tell the *train* identities apart, and re-identifies *query* faces among *gallery* faces by
the cosine distance of its penultimate-layer features, scored by the same metric as the body
models (:func:`reidlab.evaluation.metrics.rank_metrics`, Market-1501 rule). Two threat models
(Hao et al. 2019) differ only in what it is trained on: naive = original train faces, adaptive =
train faces anonymized exactly as the released test faces.

Why not :func:`reidlab.training.train`: that loop trains body models on image files with PK
batches, triplet loss and checkpoints; a face attacker on a few hundred 32x32 in-memory crops
trains in seconds with this short loop, and the adaptive attacker needs one per curve point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reidlab.errors import ReidlabError


class SplitError(ReidlabError):
    """Attacker trained on identities it is tested on."""


def identities(pids) -> set[int]:
    """The identities among ``pids``: pid 0 (distractors) and -1 (junk) are not identities."""
    return {int(p) for p in np.asarray(pids).reshape(-1) if p > 0}


def check_split(train_pids, *test_pids) -> None:
    """Raise :class:`SplitError` naming the shared identities when the training identities meet
    any of the test ones."""
    train = identities(train_pids)
    shared = sorted(set().union(*(identities(p) for p in test_pids)) & train)
    if shared:
        raise SplitError(
            f"face attacker: {len(shared)} test identities were seen in training "
            f"(e.g. {shared[:5]}); train on train identities only"
        )


def build_face_net(num_classes: int, width: int = 16, dim: int = 128):
    """Four 3x3 conv blocks (``width`` .. ``8 * width`` channels, max-pooled), global average pool,
    a ``dim``-d embedding with batch norm (the features), and a linear classifier."""
    import torch
    from torch import nn

    class FaceNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers, c_in = [], 3
            for k, c in enumerate((width, 2 * width, 4 * width, 8 * width)):
                layers += [
                    nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                ]
                if k < 3:
                    layers.append(nn.MaxPool2d(2))
                c_in = c
            self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.embed = nn.Sequential(nn.Linear(c_in, dim, bias=False), nn.BatchNorm1d(dim))
            self.classifier = nn.Linear(dim, num_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.embed(self.body(x - 0.5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.features(x))

    return FaceNet()


@dataclass
class FaceAttacker:
    """A trained face attacker: the network and the identities it was trained on."""

    net: object  # the FaceNet module, in eval mode
    train_pids: np.ndarray  # pid of every training face (the data it actually used)
    settings: dict

    def features(self, faces, batch_size: int = 512):
        """L2-normalised features ``(N, D)`` of faces ``(N, 3, S, S)`` (a tensor)."""
        import torch
        import torch.nn.functional as F

        self.net.eval()
        with torch.no_grad():
            out = [
                self.net.features(faces[i : i + batch_size])
                for i in range(0, len(faces), batch_size)
            ]
        return F.normalize(torch.cat(out) if out else torch.zeros(0, 1), dim=1)


def _augment(x, gen):
    """Random horizontal flip, shift by up to 2 px (reflect-padded) and brightness x[0.8, 1.2],
    per face, drawn from ``gen`` (cameras differ in framing and gain)."""
    import torch
    import torch.nn.functional as F

    b, _, s, _ = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    p = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dy, dx = torch.randint(0, 5, (2, b), generator=gen).tolist()
    x = torch.stack([p[i, :, dy[i] : dy[i] + s, dx[i] : dx[i] + s] for i in range(b)])
    gain = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=gen)
    return (x * gain).clamp(0, 1)


def train_attacker(
    train,
    *,
    epochs: int = 40,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    width: int = 16,
    dim: int = 128,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = False,
    desc: str = "face attacker",
) -> FaceAttacker:
    """Train the attacker on ``train`` (a :class:`~reidlab.privacy.faces.FaceSet` of train
    identities). Seeded: the same faces and seed give the same weights (for a fixed CPU thread
    count), and the global torch RNG is left as it was.

    ``threads``: torch CPU threads while training (restored after; None = leave as is). One by
    default: on these tiny tensors more threads spin more than they work (measured on the busy
    2-core machine: 0.27 s CPU per step with 2 threads, 0.035 s with 1), and a fixed count keeps
    the numbers reproducible (see "Same seed, same numbers" in docs/architecture.md)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _train(
            train, epochs, batch_size, lr, weight_decay, width, dim, seed, threads, progress, desc
        )
    finally:
        torch.set_num_threads(before)


def _train(train, epochs, batch_size, lr, weight_decay, width, dim, seed, threads, progress, desc):
    import torch
    from tqdm.auto import trange

    from reidlab.training.losses import cross_entropy_ls

    pids = np.asarray(train.pids)
    classes = np.unique(pids)
    if len(classes) < 2:
        raise ValueError(f"face attacker: need faces of at least 2 identities, got {len(classes)}")
    if epochs < 1 or batch_size < 2:
        raise ValueError(
            f"face attacker: need epochs >= 1 and batch_size >= 2, got {epochs}, {batch_size}"
        )
    labels = torch.from_numpy(np.searchsorted(classes, pids))
    x = train.faces
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_face_net(len(classes), width=width, dim=dim)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    net.train()
    for _ in trange(epochs, desc=desc, disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=gen)
        for k in range(steps_per_epoch):
            idx = order[k * batch_size : (k + 1) * batch_size]
            loss = cross_entropy_ls(net(_augment(x[idx], gen)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "width": width,
        "dim": dim,
        "seed": seed,
        "threads": threads,
        "faces": dict(train.settings),
    }
    return FaceAttacker(net, pids.copy(), settings)


def chance_levels(
    q_pids, g_pids, q_camids, g_camids, *, dim: int = 128, repeats: int = 10, seed: int = 0
) -> dict:
    """What guessing scores on this query/gallery split.

    * ``rank1``: ``1 / number of gallery identities`` (pids > 0);
    * ``mAP``: the mean mAP of ``repeats`` draws of random Gaussian features (``dim``-d, seeded),
      scored by the same metric and Market-1501 rule as the attacker;
    * ``random_rank1``: the rank-1 of those same random features (for comparison).
    """
    import torch

    from reidlab.evaluation.distance import pairwise_distance
    from reidlab.evaluation.metrics import rank_metrics

    n_ids = len(identities(g_pids))
    if n_ids == 0:
        raise ValueError("chance levels: the gallery holds no identity (pids > 0)")
    gen = torch.Generator().manual_seed(seed)
    maps, r1s = [], []
    for _ in range(repeats):
        qf = torch.randn(len(q_pids), dim, generator=gen)
        gf = torch.randn(len(g_pids), dim, generator=gen)
        m = rank_metrics(pairwise_distance(qf, gf, "cosine"), q_pids, g_pids, q_camids, g_camids)
        maps.append(m.mAP)
        r1s.append(float(m.cmc[0]))
    return {
        "rank1": 1.0 / n_ids,
        "mAP": float(np.mean(maps)),
        "random_rank1": float(np.mean(r1s)),
        "gallery_ids": n_ids,
    }


def evaluate_attacker(
    attacker: FaceAttacker, query, gallery, *, chance_repeats: int = 10, seed: int = 0
) -> dict:
    """Re-identify ``query`` faces among ``gallery`` faces (FaceSets of test identities).

    Raises :class:`SplitError` if the attacker was trained on any query or gallery identity.
    Returns metrics as fractions: ``mAP``, ``rank1``, ``chance_rank1``, ``chance_mAP``, and the
    counts ``n_query``, ``n_gallery``, ``gallery_ids``.
    """
    from reidlab.evaluation.distance import pairwise_distance
    from reidlab.evaluation.metrics import rank_metrics

    check_split(attacker.train_pids, query.pids, gallery.pids)
    if len(query) == 0 or len(gallery) == 0:
        raise ValueError(
            f"face attacker: {len(query)} query and {len(gallery)} gallery faces; need both"
        )
    import torch

    # rank_metrics breaks distance ties by gallery index, and the gallery is in pid order: faces
    # anonymized to one constant give equal features, and that order would score above chance.
    # A seeded random gallery order makes ties random (metrics without ties do not change).
    perm = torch.randperm(len(gallery), generator=torch.Generator().manual_seed(seed))
    gf = attacker.features(gallery.faces)[perm]
    d = pairwise_distance(attacker.features(query.faces), gf, "cosine")
    p = perm.numpy()
    m = rank_metrics(d, query.pids, gallery.pids[p], query.camids, gallery.camids[p])
    chance = chance_levels(
        query.pids, gallery.pids, query.camids, gallery.camids, repeats=chance_repeats, seed=seed
    )
    return {
        "mAP": m.mAP,
        "rank1": float(m.cmc[0]),
        "chance_rank1": chance["rank1"],
        "chance_mAP": chance["mAP"],
        "n_query": len(query),
        "n_gallery": len(gallery),
        "gallery_ids": chance["gallery_ids"],
        "valid_queries": m.num_valid_queries,
    }
