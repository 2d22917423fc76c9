"""Multi-GPU (or multi-process CPU) training with torch DistributedDataParallel.

Launch with torchrun; each process reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and
``MASTER_ADDR``/``MASTER_PORT``) from the environment::

    torchrun --nproc_per_node 4 -m reidlab.training.ddp --config cfg.json

``cfg.json`` holds :class:`~reidlab.training.TrainConfig` fields. The backend is NCCL on CUDA and
gloo on CPU. Each rank takes its own PK batches (:class:`~reidlab.training.sampler.PKBatchSampler`
with ``rank``/``world_size``), so the global batch is ``world_size * P * K``; ``sync_bn`` converts
BatchNorm to SyncBatchNorm; only rank 0 writes metrics, checkpoints and evaluates.
:func:`launch_local` spawns N processes on this machine without torchrun (tests, CPU).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from reidlab.training.loop import TrainConfig, train

log = logging.getLogger(__name__)


def _init(rank: int, world: int, local_rank: int, cfg: TrainConfig) -> None:
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and (cfg.device or "cuda").startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m reidlab.training.ddp --config cfg.json`` under torchrun."""
    import torch.distributed as dist

    ap = argparse.ArgumentParser(prog="python -m reidlab.training.ddp")
    ap.add_argument("--config", required=True, help="JSON file of TrainConfig fields")
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_json(args.config)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    _init(rank, world, local_rank, cfg)
    try:
        result = train(cfg)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        log.info("final metrics: %s", result["metrics"])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, cfg_dict: dict, port: int, dump_dir: str | None) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    cfg = TrainConfig.from_dict(cfg_dict)
    _init(rank, world, rank, cfg)
    try:
        result = train(cfg, return_model=True)
        if dump_dir is not None:  # every rank's weights, for checking they agree
            torch.save(result["model_object"].state_dict(), Path(dump_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def launch_local(
    config: TrainConfig | dict, nprocs: int = 2, dump_dir: str | Path | None = None
) -> None:
    """Run ``nprocs`` DDP processes on this machine (``torch.multiprocessing.spawn``, gloo on
    CPU). ``dump_dir``: each rank saves its final ``state_dict`` there as ``rank<r>.pt``."""
    import torch.multiprocessing as mp

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    mp.spawn(
        _worker,
        args=(nprocs, cfg.to_dict(), _free_port(), None if dump_dir is None else str(dump_dir)),
        nprocs=nprocs,
        join=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
