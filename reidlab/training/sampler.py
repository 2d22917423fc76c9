"""PK identity sampling: batches of P identities x K images each, DDP-aware.

Each batch draws P distinct identities uniformly without replacement, then K of each identity's
images: without replacement when it has at least K, with replacement otherwise (handled, not an
error). Batches come from a ``numpy`` generator seeded by ``(seed, epoch)``, so every rank builds
the same global batch list and rank ``r`` of ``world_size`` takes batches ``r, r + W, ...``:
ranks see disjoint batches and the same number of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from reidlab.errors import ReidlabError


class PKBatchSampler:
    """A ``batch_sampler`` for ``torch.utils.data.DataLoader`` yielding lists of P*K indices.

    Args:
        pids: the identity label of every dataset item.
        p, k: identities per batch, images per identity.
        num_batches: batches per epoch per rank (default: ``len(pids) // (p*k) // world_size``,
            at least 1).
        seed: base seed; call :meth:`set_epoch` each epoch for a new draw.
        rank, world_size: this process's slot in distributed training.

    Raises:
        ReidlabError: ``p`` exceeds the number of identities, or ``p``/``k`` < 1.
    """

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        num_batches: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            self.index_by_pid[int(pid)].append(i)
        self.ids = sorted(self.index_by_pid)
        if p < 1 or k < 1:
            raise ReidlabError(f"PK sampler: P and K must be >= 1, got P={p}, K={k}")
        if p > len(self.ids):
            raise ReidlabError(
                f"PK sampler: batch P={p} identities exceeds the {len(self.ids)} training "
                f"identities; lower --batch-p"
            )
        self.p, self.k = int(p), int(k)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        default = max(1, len(pids) // (self.p * self.k) // self.world_size)
        self.num_batches = int(num_batches) if num_batches else default
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for b in range(self.num_batches * self.world_size):
            chosen = rng.choice(len(self.ids), size=self.p, replace=False)
            batch: list[int] = []
            for j in chosen:
                idx = self.index_by_pid[self.ids[j]]
                pick = rng.choice(len(idx), size=self.k, replace=len(idx) < self.k)
                batch.extend(idx[t] for t in pick)
            if b % self.world_size == self.rank:
                yield batch
