"""Query x gallery distance matrices, computed in memory-bounded chunks.

``euclidean`` is the *squared* euclidean distance ``||q||^2 + ||g||^2 - 2 q.g`` clamped at 0
(what torchreid and fast-reid rank by; the square root does not change any ranking, but does
change k-reciprocal re-ranking's weights). ``cosine`` is ``1 - cos(q, g)`` in ``[0, 2]``.
"""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "cosine")


def _rows_per_chunk(n_gallery: int, dim: int, max_memory_mb: float) -> int:
    # per query row: one float32 output row of the matmul plus its temporaries (x3)
    per_row = 4 * (3 * n_gallery + dim)
    return max(1, int(max_memory_mb * 2**20 // per_row))


def pairwise_distance(
    qf,
    gf,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    max_memory_mb: float = 256.0,
):
    """Distances between query and gallery features.

    Args:
        qf: ``(Q, D)`` query features; gf: ``(G, D)`` gallery features. torch tensors (any
            device; both on the same one) or numpy arrays.
        metric: ``"euclidean"`` (squared) or ``"cosine"`` (``1 - cosine similarity``).
        chunk_size: query rows per chunk; default from ``max_memory_mb``.
        max_memory_mb: bound on the *temporary* memory per chunk (the ``(Q, G)`` result itself
            is the caller's). Chunking changes results only by float32 rounding (BLAS blocks
            a matrix product by its shape).

    Returns:
        ``(Q, G)`` float32: a torch tensor on the features' device for torch input, a numpy
        array for numpy input. Computed in float32 whatever the input dtype.

    Example:
        >>> import numpy as np
        >>> pairwise_distance(np.array([[0.0, 1.0]]), np.array([[0.0, 3.0], [1.0, 1.0]]))
        array([[4., 1.]], dtype=float32)
    """
    import torch

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    as_numpy = not isinstance(qf, torch.Tensor)
    q = torch.as_tensor(np.asarray(qf) if as_numpy else qf).float()
    g = torch.as_tensor(np.asarray(gf) if not isinstance(gf, torch.Tensor) else gf).float()
    g = g.to(q.device)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"features must be (Q, D) and (G, D) with equal D, got {tuple(q.shape)}, {tuple(g.shape)}"
        )
    Q, G = q.shape[0], g.shape[0]
    step = chunk_size or _rows_per_chunk(G, q.shape[1], max_memory_mb)
    out = torch.empty((Q, G), dtype=torch.float32, device=q.device)
    with torch.no_grad():
        if metric == "cosine":
            g = torch.nn.functional.normalize(g, dim=1)
        else:
            g2 = (g * g).sum(1)
        gt = g.t()
        for s in range(0, Q, step):
            qc = q[s : s + step]
            o = out[s : s + step]
            if metric == "cosine":
                torch.mm(torch.nn.functional.normalize(qc, dim=1), gt, out=o)
                o.neg_().add_(1.0)
            else:
                torch.mm(qc, gt, out=o)
                o.mul_(-2.0).add_((qc * qc).sum(1, keepdim=True)).add_(g2[None, :]).clamp_(min=0.0)
    return out.cpu().numpy() if as_numpy else out
